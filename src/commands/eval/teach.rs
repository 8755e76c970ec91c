//! `sn-wgpu teach`: a trained SoundNet as the teacher of unlabeled audio. It writes a dataset
//! folder that `sn-wgpu train --data` reads: `manifest.csv` (the audio where it lies, as absolute
//! paths) and one `.npy` per clip and head under `teacher/`, `[rows, classes]` softmax
//! probabilities (of logits / temperature).
//!
//! Rows are the trainer's 5 s: row r holds the teacher's view of seconds `5r .. 5r + 5` of the
//! clip, the mean of the probabilities of every head step whose receptive field is centred in
//! that stretch (or, when none is, of the step centred nearest to its middle). A clip has
//! `ceil(seconds / 5)` rows. Short clips are tiled to 20 s first, as `predict` does, and steps
//! whose window covers the zero padding past the end are left out (see `predict::clean_steps`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use super::extract::write_npy;
use super::extractor::Extractor;
use super::geometry::Geometry;
use super::inputs::audio_files;
use super::load_model;
use super::predict::{clean_steps, TILE_SECONDS};
use super::shard::Shard;
use crate::data::audio::{self, AudioError};
use crate::data::SAMPLE_RATE;
use crate::gpu::Gpu;
use crate::model::probabilities::softmax_columns;
use crate::out_folder::OutFolder;

pub use crate::data::teacher::ROW_SAMPLES;

pub struct TeachOptions {
    /// Audio files, or folders whose audio files (wav, mp3, flac, ogg) are all taken, sorted.
    pub paths: Vec<PathBuf>,
    pub weights: Option<PathBuf>,
    /// The dataset folder written.
    pub out: PathBuf,
    /// Softmax temperature: above 1 softens the teacher's distributions, below 1 sharpens them.
    pub temperature: f64,
    /// Take only this shard of the inputs.
    pub shard: Option<Shard>,
    pub chunk_samples: usize,
}

/// One clip taught: its audio, its rows, and any tiling note.
#[derive(Debug, Clone, PartialEq)]
pub struct Taught {
    pub clip: PathBuf,
    pub rows: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeachSummary {
    pub out: PathBuf,
    /// Each head written: its name (the manifest column) and classes.
    pub heads: Vec<(String, usize)>,
    pub taught: Vec<Taught>,
    /// Inputs that belong to other shards.
    pub other_shards: usize,
    /// The files that could not be read, and why (see `bad_files` for what the command does).
    pub errors: Vec<AudioError>,
}

impl TeachSummary {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for t in &self.taught {
            let _ = writeln!(s, "{}: {} row{}", t.clip.display(), t.rows, if t.rows == 1 { "" } else { "s" });
            if let Some(note) = &t.note {
                let _ = writeln!(s, "  note: {note}");
            }
        }
        let heads: Vec<String> = self.heads.iter().map(|(n, c)| format!("{n} [rows, {c}]")).collect();
        let _ = writeln!(
            s,
            "wrote {} with {} clip(s), {}{}",
            self.out.join(crate::data::manifest::MANIFEST).display(),
            self.taught.len(),
            heads.join(" and "),
            match self.other_shards {
                0 => String::new(),
                n => format!("; {n} input(s) belong to other shards"),
            }
        );
        s
    }
}

/// Teaches every input of this shard and writes the dataset folder. A file that cannot be read
/// is listed in `errors` and the rest are still taught; the manifest holds the good ones.
pub fn teach(gpu: &Gpu, opts: &TeachOptions) -> Result<TeachSummary> {
    ensure!(
        opts.temperature.is_finite() && opts.temperature > 0.0,
        "--temperature {} must be a positive number",
        opts.temperature
    );
    let mut files = audio_files(&opts.paths)?;
    let listed = files.len();
    if let Some(shard) = opts.shard {
        files.retain(|f| shard.takes(f));
    }
    let other_shards = listed - files.len();
    // Arrays are named after the clip's file stem: two clips with one stem would collide.
    let mut stems: HashMap<String, &Path> = HashMap::new();
    let mut names = Vec::with_capacity(files.len());
    for file in &files {
        let stem = file
            .file_stem()
            .with_context(|| format!("{}: no file name", file.display()))?
            .to_string_lossy()
            .into_owned();
        if let Some(other) = stems.insert(stem.clone(), file) {
            bail!(
                "{} and {} would both write teacher/{stem}.*.npy in {}",
                other.display(),
                file.display(),
                opts.out.display()
            );
        }
        names.push(stem);
    }
    let model = load_model(gpu, opts.weights.as_deref(), "teach")?;
    ensure!(
        model.arch.head_classes().classes.is_none(),
        "teach writes objects and scenes distributions for `train --data`, and {} holds a classifier of {} classes \
         trained with --labels; name its classes with `sn-wgpu predict --weights {}`",
        opts.weights.as_deref().unwrap_or(std::path::Path::new("?")).display(),
        model.class_names.len(),
        opts.weights.as_deref().unwrap_or(std::path::Path::new("?")).display()
    );
    let heads: Vec<(String, usize)> = model.arch.heads.iter().map(|h| (h.name.to_string(), h.classes)).collect();
    let head_names: Vec<&str> = heads.iter().map(|(n, _)| n.as_str()).collect();
    let mut extractor = Extractor::new(&model, &head_names, opts.chunk_samples)?
        .tile_short_clips_to(TILE_SECONDS * SAMPLE_RATE as usize);
    let geometry = extractor.geometries()[0].clone();
    let array_name = |stem: &str, head: &str| format!("teacher/{stem}.{head}.npy");
    let mut outputs = vec![crate::data::manifest::MANIFEST.to_string()];
    outputs.extend(names.iter().flat_map(|stem| head_names.iter().map(move |h| array_name(stem, h))));
    // Held until the manifest is written: one writer in the folder, and only its own files replaced.
    let mut folder = OutFolder::lock(&opts.out, "--out")?.reading(&files);
    folder.claim(&outputs)?;

    let mut manifest = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["audio".to_string()];
    header.extend(heads.iter().map(|(n, _)| n.clone()));
    manifest.write_record(&header)?;
    let mut taught = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for (file, stem) in files.iter().zip(&names) {
        let waveform = match audio::load(file) {
            Ok(w) => w,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let out =
            extractor.extract(gpu, &waveform).with_context(|| format!("{}: running the teacher", file.display()))?;
        let (steps, _) = clean_steps(&model.arch, out.samples, out.features[0].steps);
        let groups = row_steps(&geometry, steps, waveform.len());
        let mut record = vec![std::fs::canonicalize(file)
            .with_context(|| format!("{}: cannot resolve the path", file.display()))?
            .to_string_lossy()
            .into_owned()];
        for f in &out.features {
            let logits: Vec<f32> = f.data.iter().map(|&z| (f64::from(z) / opts.temperature) as f32).collect();
            let probs = softmax_columns(&logits, f.channels, f.steps);
            let rows = mean_rows(&probs, &groups);
            let name = array_name(stem, &f.layer);
            let path = opts.out.join(&name);
            write_npy(&path, &[groups.len(), f.channels], &rows)
                .with_context(|| format!("{}: writing the teacher rows of {}", path.display(), file.display()))?;
            record.push(name);
        }
        manifest.write_record(&record)?;
        taught.push(Taught { clip: file.clone(), rows: groups.len(), note: out.note });
    }
    let path = opts.out.join(crate::data::manifest::MANIFEST);
    let text = manifest.into_inner().context("finishing the manifest")?;
    std::fs::write(&path, text).with_context(|| format!("{}: cannot write the manifest", path.display()))?;
    Ok(TeachSummary { out: opts.out.clone(), heads, taught, other_shards, errors })
}

/// For each 5 s row of a clip of `samples`, the head steps (of the first `steps`) it averages:
/// those whose receptive field is centred inside the row's stretch, or else the one centred
/// nearest to its middle.
pub fn row_steps(geometry: &Geometry, steps: usize, samples: usize) -> Vec<Vec<usize>> {
    assert!(steps >= 1, "a teacher pass gives at least one step");
    let centre = |t: usize| (t * geometry.stride) as f64 - geometry.offset as f64 + geometry.field as f64 / 2.0;
    let rows = samples.div_ceil(ROW_SAMPLES).max(1);
    (0..rows)
        .map(|r| {
            let (start, end) = ((r * ROW_SAMPLES) as f64, ((r + 1) * ROW_SAMPLES) as f64);
            let inside: Vec<usize> = (0..steps).filter(|&t| (start..end).contains(&centre(t))).collect();
            if !inside.is_empty() {
                return inside;
            }
            let middle = (start + end) / 2.0;
            let nearest = (0..steps).min_by(|&a, &b| (centre(a) - middle).abs().total_cmp(&(centre(b) - middle).abs()));
            vec![nearest.expect("at least one step")]
        })
        .collect()
}

/// Row-major `[rows, classes]`: each row the mean of the probability vectors of its steps.
fn mean_rows(probs: &[Vec<f32>], groups: &[Vec<usize>]) -> Vec<f32> {
    let classes = probs[0].len();
    let mut out = Vec::with_capacity(groups.len() * classes);
    for group in groups {
        let mut sum = vec![0.0f64; classes];
        for &t in group {
            sum.iter_mut().zip(&probs[t]).for_each(|(s, &p)| *s += f64::from(p));
        }
        out.extend(sum.iter().map(|s| (s / group.len() as f64) as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::soundnet8;

    #[test]
    fn rows_take_the_steps_centred_in_their_five_seconds() {
        let g = Geometry::of(&soundnet8(), "objects").unwrap();
        // SoundNet-8's step t is centred at 104,687 + 65,536 t samples (4.75 s + 2.97 t s).
        assert_eq!((g.stride, g.offset, g.field), (65_536, 55_584, 320_542));
        // A 5 s clip tiled to 20 s: 4 clean steps, one row, step 0 (centred at 4.75 s) alone.
        assert_eq!(row_steps(&g, 4, ROW_SAMPLES), vec![vec![0]]);
        // 60 s: 12 rows. Row 0 holds step 0; row 1 (5-10 s) steps 1 and 2 (7.7 s, 10.7 s is out).
        let rows = row_steps(&g, 16, 12 * ROW_SAMPLES);
        assert_eq!(rows.len(), 12);
        assert_eq!(rows[0], vec![0]);
        assert_eq!(rows[1], vec![1]);
        assert_eq!(rows[2], vec![2, 3]);
        // Step 15 is centred at 49.3 s; the last two rows have none inside: the nearest, step 15.
        assert_eq!(rows[9], vec![14, 15]);
        assert_eq!((&rows[10], &rows[11]), (&vec![15], &vec![15]));
        // Every step used lies in exactly one row until the steps run out.
        let used: Vec<usize> = rows.iter().flatten().copied().collect();
        assert!(used.windows(2).all(|w| w[0] <= w[1]), "{used:?}");
        assert_eq!(mean_rows(&[vec![0.2, 0.8], vec![0.6, 0.4]], &[vec![0, 1], vec![1]]), vec![0.4, 0.6, 0.6, 0.4]);
    }
}
