//! The excerpts a page plays: each (clip, position) among the units' top k, cut to the layer's
//! receptive field from the clip at 22,050 Hz (as the network heard it) and written once as a
//! 16-bit mono WAV, however many units share it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::data::{audio, SAMPLE_RATE, SCALE};
use crate::eval::Geometry;
use crate::out_folder::OutFolder;

/// Where the WAVs go, under the page's folder.
pub const FOLDER: &str = "excerpts";

/// The WAV of every (clip, position) in `wanted`, written under `excerpts/` of `out` and named
/// `<clip index>-<clip stem>-<position>.wav` (characters outside `A-Za-z0-9._-` become `_`, so
/// names need no escaping in the page). Returns the path of each, relative to the folder.
///
/// The excerpts an earlier run wrote there (by the folder's list) are replaced, not mixed in; any
/// other file stays, and is never overwritten: a name taken by a file sn-wgpu did not write, or by
/// one of the inputs, is an error before anything is removed or written.
pub fn write(
    out: &mut OutFolder,
    files: &[PathBuf],
    g: &Geometry,
    wanted: &[(usize, usize)],
) -> Result<BTreeMap<(usize, usize), String>> {
    let mut by_clip: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(clip, position) in wanted {
        by_clip.entry(clip).or_default().push(position);
    }
    let mut names = BTreeMap::new();
    for (&clip, positions) in &by_clip {
        let stem: String = files[clip]
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
            .collect();
        for &position in positions {
            names.insert((clip, position), format!("{FOLDER}/{clip}-{stem}-{position}.wav"));
        }
    }
    let wanted_names: BTreeSet<&str> = names.values().map(String::as_str).collect();
    let earlier: Vec<String> = out
        .written()
        .filter(|n| n.starts_with(&format!("{FOLDER}/")) && n.ends_with(".wav") && !wanted_names.contains(n))
        .map(str::to_string)
        .collect();
    let paths = out.claim(&names.values().collect::<Vec<_>>())?;
    for name in &earlier {
        out.remove(name)?;
    }
    let paths: BTreeMap<(usize, usize), PathBuf> = names.keys().copied().zip(paths).collect();
    for (&clip, positions) in &by_clip {
        let file = &files[clip];
        let waveform = audio::load(file)?;
        for &position in positions {
            let (start, end) = g.span(position, waveform.len());
            let path = &paths[&(clip, position)];
            write_wav(path, &waveform[start..end])
                .with_context(|| format!("{}: writing an excerpt of {}", path.display(), file.display()))?;
        }
    }
    Ok(names)
}

/// Samples scaled to ±[`SCALE`] as 16-bit PCM at the network's rate (a sample at full scale of a
/// 16-bit file comes back exactly).
pub fn write_wav(path: &Path, samples: &[f32]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        w.write_sample((s / SCALE * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}
