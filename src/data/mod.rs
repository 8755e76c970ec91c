//! The CPU side of training: audio files and teacher rows in, batches out.
//!
//! `audio` decodes any file to mono 22,050 Hz samples in [-256, 256], refusing damaged files
//! (`wav_header` before decoding, `audio_checks` during it; a decoder panic is `contain`ed to the
//! file); `crop` cuts or tiles a clip and its teacher rows to the training length; `teacher` reads
//! and checks the `.npy` arrays (opened by `npy`, which holds their shape to the file's size);
//! `manifest` opens a dataset folder and validates all of it up front (lines counted by
//! `csv_lines`), noting clips the crop repeats many times (`tiling`); `demo` makes a synthetic set
//! in memory; `batch` orders examples into batches; `loader` builds batches ahead of the consumer
//! on a background thread. `meta` reads a labeled folder (ESC-style `meta.csv`), which `labeled`
//! serves as one-hot rows for `train --labels`. `pack` writes and serves packed shards: clips
//! decoded once, memory-mapped. Every dataset implements [`Dataset`], so the loader
//! serves them all.

pub mod audio;
pub mod audio_checks;
pub mod batch;
pub mod categories;
pub mod contain;
pub mod crop;
pub mod csv_lines;
pub mod demo;
pub mod labeled;
pub mod loader;
pub mod manifest;
pub mod meta;
pub mod npy;
pub mod pack;
pub mod problem;
pub mod teacher;
pub mod tiling;
pub mod wav_header;

pub use batch::{load_batch, load_batch_into, Batch, Order, RandomCrops};
pub use crop::Crop;
pub use demo::{DemoClass, DemoDataset};
pub use loader::Loader;
pub use manifest::{DatasetOptions, ManifestDataset, Skipped};
pub use problem::{Problem, ValidationError};
pub use tiling::Tiled;

/// The sample rate SoundNet was trained at.
pub const SAMPLE_RATE: u32 = 22_050;
/// A float sample in [-1, 1] times this is the network's input scale (16-bit PCM / 128).
pub const SCALE: f32 = 256.0;
/// Classes of the authors' objects head (ImageNet), as the demo and `assets/` name them.
pub const OBJECT_CLASSES: usize = 1000;
/// Classes of the authors' scenes head (Places), as the demo and `assets/` name them.
pub const SCENE_CLASSES: usize = 401;

/// One training example at the crop length: the waveform and the target rows matched to the
/// output steps, row-major `[steps, classes]` (row k belongs to output step k): the teachers'
/// distributions, or one-hot rows of a labeled clip's class; a head the dataset has no targets for
/// is empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Example {
    pub waveform: Vec<f32>,
    pub objects: Vec<f32>,
    pub scenes: Vec<f32>,
    pub classes: Vec<f32>,
}

/// A source of examples that the loader can serve: the manifest dataset and the demo set.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The length every example is cut or tiled to.
    fn crop(&self) -> Crop;
    /// The classes of each teacher (objects, scenes), None for one the dataset does not have:
    /// they size the student's heads.
    fn classes(&self) -> crate::model::Heads<Option<usize>>;
    /// Example `i`, `i < len()`.
    fn example(&self, i: usize) -> anyhow::Result<Example>;
    /// Example `i` with its waveform written into `waveform` (`crop().samples` long) rather
    /// than returned: the loader fills a batch's buffer in place.
    fn example_into(&self, i: usize, waveform: &mut [f32]) -> anyhow::Result<Example> {
        let mut e = self.example(i)?;
        waveform.copy_from_slice(&e.waveform);
        e.waveform = Vec::new();
        Ok(e)
    }
    /// [`Dataset::example_into`] with the crop started `shift`-th of the places it may start,
    /// counted cyclically (`train --random-crop`); a dataset that keeps only the crop ignores it.
    fn example_shifted(&self, i: usize, waveform: &mut [f32], shift: u64) -> anyhow::Result<Example> {
        let _ = shift;
        self.example_into(i, waveform)
    }
    /// Whether [`Dataset::example_shifted`] moves the crop.
    fn shifts_crops(&self) -> bool {
        false
    }
    /// The items of each shard, in order, for a dataset read as a stream of shards (packed
    /// shards): its epochs shuffle shards and then items within a window (see [`Order`]).
    fn shard_sizes(&self) -> Option<Vec<usize>> {
        None
    }
    /// Damaged items met so far and left out (`--skip-bad`).
    fn damaged(&self) -> usize {
        0
    }
}
