//! Cutting a clip's features into the 1 s windows the classifiers train on.
//!
//! Every clip is tiled to [`CLIP_SECONDS`] before its features are taken, so a layer's `T` frames
//! span 10 s and a second is `T / 10` frames. That is rarely a whole number (pool5 of SoundNet-8
//! gives T = 27), so the window length is rounded down: `w = max(1, floor(T / 10))` frames.
//! Windows are non-overlapping, start at frame 0, and a last partial window is dropped:
//! `floor(T / w)` windows (13 of 2 frames for pool5, not 10). This is exactly what
//! `tools/probe_sklearn.py`, the cross-check, does; rounding down keeps every window inside the
//! clip and at most 1 s long, at the cost of a few more, slightly shorter windows than ten.

use anyhow::{ensure, Result};

use crate::data::SAMPLE_RATE;

/// The length every clip is tiled to before its features are taken.
pub const CLIP_SECONDS: usize = 10;
/// [`CLIP_SECONDS`] in samples at the network's rate: 220,500.
pub const CLIP_SAMPLES: usize = CLIP_SECONDS * SAMPLE_RATE as usize;

/// Frames per window for a clip with `frames` frames: `max(1, floor(frames / CLIP_SECONDS))`.
pub fn frames_per_window(frames: usize) -> usize {
    (frames / CLIP_SECONDS).max(1)
}

/// A clip's windows: `count` examples of `dim` values each, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    pub count: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Windows {
    /// Window `i`'s `dim` values.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Cuts features `[channels, frames]` (row-major, one row per channel) into windows. Each window
/// is the `[channels, w]` block flattened channel-major, as numpy's `reshape(-1)` of that block
/// does: values `0..w` are channel 0's frames, the next `w` channel 1's, and so on.
pub fn cut(features: &[f32], channels: usize, frames: usize) -> Result<Windows> {
    ensure!(channels > 0 && frames > 0, "features are [{channels}, {frames}]: expected at least one channel and frame");
    ensure!(
        features.len() == channels * frames,
        "features hold {} values: expected [{channels}, {frames}] = {}",
        features.len(),
        channels * frames
    );
    let w = frames_per_window(frames);
    let count = frames / w;
    let dim = channels * w;
    let mut data = Vec::with_capacity(count * dim);
    for i in 0..count {
        for c in 0..channels {
            let start = c * frames + i * w;
            data.extend_from_slice(&features[start..start + w]);
        }
    }
    Ok(Windows { count, dim, data })
}
