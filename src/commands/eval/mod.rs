//! Inference: features of any layer for clips of any length (`extractor`, cut into chunks by
//! `geometry`), the class predictions behind `sn-wgpu predict`, and the `.npy` features behind
//! `sn-wgpu extract`, and `sn-wgpu teach`, which writes a trained SoundNet's predictions as a
//! training set (`shard` picks one machine's share of the inputs). The commands take files and
//! folders (`inputs`) and go on past files they cannot read, which `bad_files` then lists.

pub mod bad_files;
pub mod extract;
pub mod extractor;
pub mod geometry;
pub mod inputs;
pub mod predict;
pub mod shard;
pub mod teach;

use std::path::Path;

use anyhow::{Context, Result};

pub use extract::{extract, ExtractOptions, ExtractSummary, Pool};
pub use extractor::{Extraction, Extractor, Features, DEFAULT_CHUNK_SAMPLES};
pub use geometry::{Chunk, Chunking, Geometry};
pub use inputs::audio_files;
pub use predict::{predict, PredictOptions, Predictions};
pub use shard::Shard;
pub use teach::{teach, TeachOptions, TeachSummary};

use crate::checkpoint::Checkpoint;
use crate::gpu::Gpu;
use crate::model::Model;

/// The model in the checkpoint at `weights`; `command` names the subcommand for the error
/// given when no checkpoint was named, which says how to make one.
pub fn load_model(gpu: &Gpu, weights: Option<&Path>, command: &str) -> Result<Model> {
    let path = weights.with_context(|| {
        format!(
            "{command} needs --weights CKPT, an sn-wgpu checkpoint: one written by `sn-wgpu train`, or the \
             authors' pretrained SoundNet-8 converted with \
             `python3 tools/import_soundnet8.py path/to/sound8.npy soundnet8.safetensors` (needs numpy)"
        )
    })?;
    let checkpoint = Checkpoint::load(path)?;
    Model::from_checkpoint(gpu, &checkpoint).with_context(|| format!("loading the model in {}", path.display()))
}

/// A bar over clips on stderr for the commands that run a network over a dataset (`probe`, `units`);
/// hidden when stderr is not a terminal, so logs and tests see no escape codes.
pub fn clip_progress_bar(total: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    use std::io::IsTerminal;
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
