//! The excerpts a page plays: each (clip, position) among the units' top k, cut to the layer's
//! receptive field from the clip at 22,050 Hz (as the network heard it) and written once as a
//! 16-bit mono WAV, however many units share it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::data::{audio, SAMPLE_RATE, SCALE};
use crate::eval::Geometry;

/// Where the WAVs go, under the page's folder.
pub const FOLDER: &str = "excerpts";

/// The WAV of every (clip, position) in `wanted`, written under `out/excerpts/` and named
/// `<clip index>-<clip stem>-<position>.wav` (characters outside `A-Za-z0-9._-` become `_`, so
/// names need no escaping in the page). Returns the path of each, relative to `out`.
pub fn write(
    out: &Path,
    files: &[PathBuf],
    g: &Geometry,
    wanted: &[(usize, usize)],
) -> Result<BTreeMap<(usize, usize), String>> {
    let folder = out.join(FOLDER);
    std::fs::create_dir_all(&folder).with_context(|| format!("{}: cannot create the folder", folder.display()))?;
    // Excerpts of an earlier run are replaced, not mixed in; nothing else in the folder is touched.
    for entry in std::fs::read_dir(&folder).with_context(|| format!("{}: cannot list", folder.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wav") {
            std::fs::remove_file(&path)
                .with_context(|| format!("{}: cannot remove the old excerpt", path.display()))?;
        }
    }
    let mut by_clip: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(clip, position) in wanted {
        by_clip.entry(clip).or_default().push(position);
    }
    let mut names = BTreeMap::new();
    for (clip, positions) in by_clip {
        let file = &files[clip];
        let waveform = audio::load(file)?;
        let stem: String = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
            .collect();
        for position in positions {
            let (start, end) = g.span(position, waveform.len());
            let name = format!("{FOLDER}/{clip}-{stem}-{position}.wav");
            write_wav(&out.join(&name), &waveform[start..end])
                .with_context(|| format!("{}: writing an excerpt of {}", out.join(&name).display(), file.display()))?;
            names.insert((clip, position), name);
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
