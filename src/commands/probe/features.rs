//! Each clip's `[C, T]` features, in `meta.csv` order: from the network (every clip tiled to 10 s,
//! the protocol; several layers in one pass), or from the `.npy` files `sn-wgpu extract --layer L
//! --out DIR` or `probe --save-features DIR` wrote, so the classifiers can be rerun (another --c,
//! other windows, the other classifier) without the network.
//!
//! Layers go by the network's names (`conv1`..`conv7`, `pool1`, `pool2`, `pool5`, `objects`,
//! `scenes`), plus the paper's name for the output layer: `conv8` in SoundNet-8 (`conv5` in
//! SoundNet-5), the layer after the last body layer, is the two heads' logits side by side,
//! `objects` channels first, then `scenes` (1000 + 401 channels).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use npyz::Order;

use super::windows::CLIP_SAMPLES;
use crate::data::meta::Meta;
use crate::data::{audio, crop, npy, Problem, ValidationError};
use crate::eval::extract::write_npy;
use crate::eval::{load_model, Extractor, Features};
use crate::gpu::Gpu;
use crate::model::Arch;

/// Runs the model in `weights` on every clip of `meta` and keeps `layer`.
pub fn extract(
    gpu: &Gpu,
    meta: &Meta,
    weights: Option<&Path>,
    layer: &str,
    chunk_samples: usize,
) -> Result<Vec<Features>> {
    let mut layers = extract_layers(gpu, meta, weights, &[layer.to_string()], chunk_samples)?;
    Ok(layers.pop().expect("one layer asked"))
}

/// Runs the model in `weights` once on every clip of `meta` and keeps every one of `layers`:
/// `result[l][i]` is layer `l` of clip `i`. Every audio file is checked to exist and every layer
/// name to be known first, so a mistake stops the run before any GPU work, with all of them named.
pub fn extract_layers(
    gpu: &Gpu,
    meta: &Meta,
    weights: Option<&Path>,
    layers: &[String],
    chunk_samples: usize,
) -> Result<Vec<Vec<Features>>> {
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
    // The network layers behind each probe layer, and all of them once, in the order first needed.
    let sources: Vec<Vec<String>> = layers.iter().map(|l| network_layers(&model.arch, l)).collect();
    let mut wanted: Vec<&str> = Vec::new();
    for s in sources.iter().flatten() {
        if !wanted.contains(&s.as_str()) {
            wanted.push(s);
        }
    }
    let names = model.layer_names();
    if let Some(bad) = wanted.iter().find(|w| !names.iter().any(|n| n == *w)) {
        anyhow::bail!(
            "{} has no layer {bad:?}; its layers are {}, and {} (the paper's name for both heads' logits)",
            model.arch.name,
            names.join(", "),
            head_alias(&model.arch)
        );
    }
    let mut extractor = Extractor::new(&model, &wanted, chunk_samples)?.tile_short_clips_to(CLIP_SAMPLES);
    let bar = crate::eval::clip_progress_bar(meta.clips.len() as u64);
    let mut features: Vec<Vec<Features>> = layers.iter().map(|_| Vec::with_capacity(meta.clips.len())).collect();
    for clip in &meta.clips {
        let waveform = audio::load(&clip.audio)?;
        // Exactly 10 s: shorter clips repeat from the start, longer ones keep their first 10 s,
        // so every clip gives the same T and a window is one second.
        let waveform = crop::tile(&waveform, CLIP_SAMPLES);
        let out = extractor
            .extract(gpu, &waveform)
            .with_context(|| format!("{}: running the model", clip.audio.display()))?;
        for ((layer, sources), into) in layers.iter().zip(&sources).zip(&mut features) {
            let parts: Vec<&Features> =
                sources.iter().map(|s| &out.features[wanted.iter().position(|w| w == s).expect("wanted")]).collect();
            into.push(join_channels(layer, &parts));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(features)
}

/// The paper's name for the output layer: `conv<body layers + 1>` (`conv8` for SoundNet-8).
pub fn head_alias(arch: &Arch) -> String {
    format!("conv{}", arch.body.len() + 1)
}

/// The network layers a probe layer is made of: the heads for [`head_alias`], else itself.
fn network_layers(arch: &Arch, layer: &str) -> Vec<String> {
    if layer == head_alias(arch) {
        arch.heads.iter().map(|h| h.name.to_string()).collect()
    } else {
        vec![layer.to_string()]
    }
}

/// `parts` (of one number of steps) stacked along channels, in order, named `layer`.
fn join_channels(layer: &str, parts: &[&Features]) -> Features {
    let steps = parts[0].steps;
    assert!(parts.iter().all(|p| p.steps == steps), "joined layers have one length");
    Features {
        layer: layer.to_string(),
        channels: parts.iter().map(|p| p.channels).sum(),
        steps,
        data: parts.iter().flat_map(|p| p.data.iter().copied()).collect(),
    }
}

/// Writes every clip's features of one layer to `dir/<layer>/<stem>.npy`, the layout
/// `read_npy_dir` reads back for that layer.
pub fn save(dir: &Path, meta: &Meta, layer: &str, features: &[Features]) -> Result<()> {
    // Each layer's folder is locked and listed on its own: the layers of one probe are saved from
    // parallel threads, which one lock on `dir` would turn away from each other.
    let mut folder = crate::out_folder::OutFolder::lock(&dir.join(layer), "--save-features")?;
    let names: Vec<String> = meta.clips.iter().map(|clip| format!("{}.npy", stem(&clip.filename))).collect();
    let paths = folder.claim(&names)?;
    for ((clip, f), path) in meta.clips.iter().zip(features).zip(paths) {
        write_npy(&path, &[f.channels, f.steps], &f.data)
            .with_context(|| format!("{}: writing the {layer} features of {}", path.display(), clip.filename))?;
    }
    Ok(())
}

/// Where the features of `layer` are under a `--features` folder: its subfolder named after the
/// layer when there is one (as `--save-features` writes), else, for a single layer, the folder
/// itself (as `sn-wgpu extract --out` writes).
pub fn layer_dir(dir: &Path, layer: &str, single: bool) -> Result<PathBuf> {
    let sub = dir.join(layer);
    if sub.is_dir() {
        return Ok(sub);
    }
    anyhow::ensure!(
        single,
        "{}: no such folder: with several layers, --features DIR reads DIR/<layer>/<file stem>.npy, as \
         `probe --save-features DIR` writes them",
        sub.display()
    );
    Ok(dir.to_path_buf())
}

fn stem(filename: &str) -> String {
    Path::new(filename).file_stem().unwrap_or_default().to_string_lossy().into_owned()
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
        let path = dir.join(format!("{}.npy", stem(&clip.filename)));
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
    let npy = npy::open(file)?;
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
