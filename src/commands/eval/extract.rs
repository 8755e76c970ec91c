//! `sn-wgpu extract`: one layer's features of every clip, one float32 `.npy` per clip, named after
//! the clip's file stem: `[C, T]`, or `[C]` pooled over time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use npyz::WriterBuilder;

use super::extractor::{Extractor, Features};
use super::inputs::audio_files;
use super::load_model;
use crate::data::audio::{self, AudioError};
use crate::gpu::Gpu;
use crate::out_folder::OutFolder;

/// Pooling over time, turning `[C, T]` into `[C]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Mean,
    Max,
}

impl FromStr for Pool {
    type Err = String;
    fn from_str(s: &str) -> Result<Pool, String> {
        match s {
            "mean" => Ok(Pool::Mean),
            "max" => Ok(Pool::Max),
            other => Err(format!("unknown pooling {other:?}: expected mean or max")),
        }
    }
}

impl Pool {
    /// Each channel's mean or maximum over the steps.
    pub fn apply(self, f: &Features) -> Vec<f32> {
        f.data
            .chunks_exact(f.steps)
            .map(|row| match self {
                Pool::Mean => (row.iter().map(|&v| f64::from(v)).sum::<f64>() / f.steps as f64) as f32,
                Pool::Max => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            })
            .collect()
    }
}

pub struct ExtractOptions {
    /// Audio files, or folders whose audio files (wav, mp3, flac, ogg) are all taken, sorted.
    pub paths: Vec<PathBuf>,
    pub weights: Option<PathBuf>,
    pub layer: String,
    pub out: PathBuf,
    pub pool: Option<Pool>,
    pub chunk_samples: usize,
}

/// One clip written: its source, the `.npy` path, the array's shape and any tiling note.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub clip: PathBuf,
    pub npy: PathBuf,
    pub shape: Vec<usize>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExtractSummary {
    pub layer: String,
    pub written: Vec<Written>,
    /// The files that could not be read, and why (see `bad_files` for what the command does).
    pub errors: Vec<AudioError>,
}

impl ExtractSummary {
    /// What was written; files that could not be read are left to `bad_files`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for w in &self.written {
            let _ = writeln!(s, "{} -> {} {:?}", w.clip.display(), w.npy.display(), w.shape);
            if let Some(note) = &w.note {
                let _ = writeln!(s, "  note: {note}");
            }
        }
        let _ = writeln!(
            s,
            "wrote {} {} feature file{}",
            self.written.len(),
            self.layer,
            if self.written.len() == 1 { "" } else { "s" }
        );
        s
    }
}

/// Extracts `opts.layer` of every clip into `opts.out/<stem>.npy`. Output names are checked for
/// clashes before any work, so two clips never overwrite each other's features. A file that
/// cannot be read is listed in `errors` and the rest are still extracted.
pub fn extract(gpu: &Gpu, opts: &ExtractOptions) -> Result<ExtractSummary> {
    let files = audio_files(&opts.paths)?;
    let mut stems: HashMap<String, &Path> = HashMap::new();
    let mut outputs = Vec::with_capacity(files.len());
    for file in &files {
        let stem = file
            .file_stem()
            .with_context(|| format!("{}: no file name", file.display()))?
            .to_string_lossy()
            .into_owned();
        if let Some(other) = stems.insert(stem.clone(), file) {
            bail!("{} and {} would both write {stem}.npy in {}", other.display(), file.display(), opts.out.display());
        }
        outputs.push(format!("{stem}.npy"));
    }
    let model = load_model(gpu, opts.weights.as_deref(), "extract")?;
    let mut extractor = Extractor::new(&model, &[opts.layer.as_str()], opts.chunk_samples)?;
    // Held until every file is written: one writer in the folder, and only its own files replaced.
    let mut folder = OutFolder::lock(&opts.out, "--out")?.reading(&files);
    let outputs = folder.claim(&outputs)?;
    let mut written = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for (file, npy) in files.iter().zip(outputs) {
        let waveform = match audio::load(file) {
            Ok(w) => w,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let mut out =
            extractor.extract(gpu, &waveform).with_context(|| format!("{}: running the model", file.display()))?;
        let f = out.features.pop().expect("one layer");
        let (shape, data) = match opts.pool {
            Some(pool) => (vec![f.channels], pool.apply(&f)),
            None => (vec![f.channels, f.steps], f.data),
        };
        write_npy(&npy, &shape, &data)
            .with_context(|| format!("{}: writing features of {}", npy.display(), file.display()))?;
        written.push(Written { clip: file.clone(), npy, shape, note: out.note });
    }
    Ok(ExtractSummary { layer: opts.layer.clone(), written, errors })
}

/// A little-endian float32, C-order `.npy` of `shape`.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer =
        npyz::WriteOptions::<f32>::new().default_dtype().shape(&shape).writer(BufWriter::new(file)).begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()?;
    Ok(())
}
