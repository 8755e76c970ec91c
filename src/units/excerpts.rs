//! The excerpts a page plays: each (clip, position) among the units' top k, cut to the layer's
//! receptive field from the clip at 22,050 Hz (as the network heard it) and written once as a
//! 16-bit mono WAV, however many units share it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::data::{audio, SAMPLE_RATE, SCALE};
use crate::eval::Geometry;

/// Where the WAVs go, under the page's folder.
pub const FOLDER: &str = "excerpts";

/// The excerpts this command wrote in the folder, one file name a line: the only files a later
/// run removes there. A user's own files in the folder are never touched.
pub const WRITTEN: &str = ".written-by-sn-wgpu-units";

/// The WAV of every (clip, position) in `wanted`, written under `out/excerpts/` and named
/// `<clip index>-<clip stem>-<position>.wav` (characters outside `A-Za-z0-9._-` become `_`, so
/// names need no escaping in the page). Returns the path of each, relative to `out`.
///
/// The excerpts an earlier run wrote (by its list, `WRITTEN`) are replaced, not mixed in; any other
/// file stays, and is never overwritten: a name that is taken by a file this command did not write,
/// or by one of the inputs, is an error before anything is removed or written.
pub fn write(
    out: &Path,
    files: &[PathBuf],
    g: &Geometry,
    wanted: &[(usize, usize)],
) -> Result<BTreeMap<(usize, usize), String>> {
    let folder = out.join(FOLDER);
    std::fs::create_dir_all(&folder).with_context(|| format!("{}: cannot create the folder", folder.display()))?;
    let list = folder.join(WRITTEN);
    let earlier: BTreeSet<String> = match std::fs::read_to_string(&list) {
        Ok(text) => text.lines().filter(|l| is_excerpt_name(l)).map(str::to_string).collect(),
        Err(_) => BTreeSet::new(),
    };
    let inputs: BTreeSet<PathBuf> = files.iter().filter_map(|f| f.canonicalize().ok()).collect();
    let is_input = |path: &Path| path.canonicalize().is_ok_and(|p| inputs.contains(&p));

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
            let file = format!("{clip}-{stem}-{position}.wav");
            let path = folder.join(&file);
            if is_input(&path) {
                bail!(
                    "{}: is one of the inputs, and an excerpt would overwrite it; choose another --out",
                    path.display()
                );
            }
            if path.exists() && !earlier.contains(&file) {
                bail!(
                    "{}: exists and was not written by sn-wgpu units, so it is left as it is; move it, or choose another --out",
                    path.display()
                );
            }
            names.insert((clip, position), file);
        }
    }
    for file in &earlier {
        let path = folder.join(file);
        if path.exists() && !is_input(&path) {
            std::fs::remove_file(&path)
                .with_context(|| format!("{}: cannot remove the old excerpt", path.display()))?;
        }
    }
    // The list first names what is about to be written, so a run that dies midway leaves no
    // excerpt of its own that the next run would take for a user's file.
    let written: Vec<&str> = names.values().map(String::as_str).collect();
    std::fs::write(&list, written.join("\n") + "\n").with_context(|| format!("{}: cannot write", list.display()))?;
    for (&clip, positions) in &by_clip {
        let file = &files[clip];
        let waveform = audio::load(file)?;
        for &position in positions {
            let (start, end) = g.span(position, waveform.len());
            let path = folder.join(&names[&(clip, position)]);
            write_wav(&path, &waveform[start..end])
                .with_context(|| format!("{}: writing an excerpt of {}", path.display(), file.display()))?;
        }
    }
    Ok(names.into_iter().map(|(k, file)| (k, format!("{FOLDER}/{file}"))).collect())
}

/// A name this command gives an excerpt (no path, a `.wav`): a list edited into naming anything
/// else, such as `../x`, removes nothing.
fn is_excerpt_name(name: &str) -> bool {
    name.ends_with(".wav")
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
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
