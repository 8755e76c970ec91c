//! Each clip's `[C, T]` features, in `meta.csv` order: from the network (every clip tiled to 10 s,
//! the protocol), or from the `.npy` files `sn-wgpu extract --layer L --out DIR` wrote, so the
//! classifiers can be rerun (another --c, the other classifier) without the network.

use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use npyz::{NpyFile, Order};

use super::meta::Meta;
use super::windows::CLIP_SAMPLES;
use crate::data::{audio, crop, Problem, ValidationError};
use crate::eval::{load_model, Extractor, Features};
use crate::gpu::Gpu;

/// Runs the model in `weights` on every clip of `meta` and keeps `layer`. Every audio file is
/// checked to exist first, so a missing one stops the run before any GPU work, with all of them
/// named.
pub fn extract(
    gpu: &Gpu,
    meta: &Meta,
    weights: Option<&Path>,
    layer: &str,
    chunk_samples: usize,
) -> Result<Vec<Features>> {
    let missing: Vec<Problem> = meta
        .clips
        .iter()
        .filter(|c| !c.audio.is_file())
        .map(|c| Problem::new(meta.path(), format!("line {}: audio file {} does not exist", c.line, c.audio.display())))
        .collect();
    if !missing.is_empty() {
        return Err(ValidationError { dataset: meta.dir.clone(), problems: missing }.into());
    }
    let model = load_model(gpu, weights, "probe")?;
    let mut extractor = Extractor::new(&model, &[layer], chunk_samples)?.tile_short_clips_to(CLIP_SAMPLES);
    let bar = progress_bar(meta.clips.len() as u64);
    let mut features = Vec::with_capacity(meta.clips.len());
    for clip in &meta.clips {
        let waveform = audio::load(&clip.audio)?;
        // Exactly 10 s: shorter clips repeat from the start, longer ones keep their first 10 s,
        // so every clip gives the same T and a window is one second.
        let waveform = crop::tile(&waveform, CLIP_SAMPLES);
        let mut out = extractor
            .extract(gpu, &waveform)
            .with_context(|| format!("{}: running the model", clip.audio.display()))?;
        features.push(out.features.pop().expect("one layer asked"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(features)
}

/// Reads `<stem>.npy` under `dir` for every clip of `meta` (`stem`: the clip's file name without
/// its extension, as `extract` names them). Each must be a float32 `[C, T]` array of one common
/// shape; every missing or mismatched file is reported, by name. `layer` labels what they hold.
pub fn read_npy_dir(dir: &Path, meta: &Meta, layer: &str) -> Result<Vec<Features>> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such folder (--features names the --out folder of `sn-wgpu extract`)", dir.display());
    }
    let mut features = Vec::with_capacity(meta.clips.len());
    let mut problems = Vec::new();
    // The first file read and its shape: every other file must match it.
    let mut expected: Option<(PathBuf, usize, usize)> = None;
    for clip in &meta.clips {
        let stem = Path::new(&clip.filename).file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let path = dir.join(format!("{stem}.npy"));
        if !path.is_file() {
            problems.push(Problem::new(
                &path,
                format!(
                    "missing: the features of {} (meta.csv line {}); write them with \
                     `sn-wgpu extract --layer L --out {}` on the clips tiled to 10 s",
                    clip.filename,
                    clip.line,
                    dir.display()
                ),
            ));
            continue;
        }
        match read_npy(&path, layer) {
            Err(reason) => problems.push(Problem::new(&path, reason)),
            Ok(f) => match &expected {
                Some((first, c, t)) if (f.channels, f.steps) != (*c, *t) => problems.push(Problem::new(
                    &path,
                    format!(
                        "shape [{}, {}]: expected [{c}, {t}] like {} (every clip is 10 s, so one layer gives one shape)",
                        f.channels,
                        f.steps,
                        first.display()
                    ),
                )),
                _ => {
                    expected.get_or_insert_with(|| (path.clone(), f.channels, f.steps));
                    features.push(f);
                }
            },
        }
    }
    if problems.is_empty() {
        Ok(features)
    } else {
        Err(ValidationError { dataset: dir.to_path_buf(), problems }.into())
    }
}

/// One float32 `[C, T]` array, C or Fortran order.
fn read_npy(path: &Path, layer: &str) -> Result<Features, String> {
    let file = File::open(path).map_err(|e| format!("cannot open ({e})"))?;
    let npy = NpyFile::new(BufReader::new(file)).map_err(|e| format!("not a .npy file ({e})"))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if shape.len() != 2 || shape.contains(&0) {
        return Err(format!("shape {shape:?}: expected features [C, T] (time pooled away? extract without --pool)"));
    }
    let (channels, steps) = (shape[0], shape[1]);
    let fortran = npy.order() == Order::Fortran;
    let dtype = npy.dtype().descr();
    let stored: Vec<f32> = npy
        .try_data::<f32>()
        .map_err(|_| format!("dtype {dtype}: expected float32 ('<f4'), as `sn-wgpu extract` writes"))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("cannot read the data ({e})"))?;
    let data = if fortran {
        (0..channels * steps).map(|i| stored[(i % steps) * channels + i / steps]).collect()
    } else {
        stored
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!("non-finite value {} at channel {}, step {}", data[i], i / steps, i % steps));
    }
    Ok(Features { layer: layer.to_string(), channels, steps, data })
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} clip {pos}/{len} [{elapsed_precise}, {eta} left]")
            .expect("a valid progress template"),
    );
    bar
}
