//! Cutting a clip's features into the excerpts the classifiers train on.
//!
//! Every clip is tiled to [`CLIP_SECONDS`] before its features are taken, so a layer's `T` frames
//! span 10 s and a second is `T / 10` frames, whatever the layer (the same rule holds for features
//! read from `.npy` files, where no network says what the layer's stride is). An excerpt of
//! `window` seconds is `w = floor(window * T / 10)` frames (at least 1), and excerpts start every
//! `h = floor(hop * T / 10)` frames (at least 1) from frame 0. The defaults, 1 s windows with a 1 s
//! hop, give `w = h = max(1, floor(T / 10))`: pool5 of SoundNet-8 (T = 27) gives 13 windows of 2
//! frames, exactly what `tools/probe_sklearn.py`, the cross-check, cuts. Rounding down keeps every
//! window inside the clip and at most `window` seconds long.
//!
//! The last partial window. Frames after the last whole window (fewer than `h` of them, or fewer
//! than `w` when `h >= w`) are dropped by default ([`Tail::Drop`], the paper-reproducing protocol
//! above), so every window is a full excerpt starting on the hop grid. [`Tail::End`] adds one more
//! window ending on the last frame whenever frames would be left out, so the clip's end counts too;
//! it overlaps the window before it.

use std::fmt;
use std::str::FromStr;

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::data::SAMPLE_RATE;

/// The length every clip is tiled to before its features are taken.
pub const CLIP_SECONDS: usize = 10;
/// [`CLIP_SECONDS`] in samples at the network's rate: 220,500.
pub const CLIP_SAMPLES: usize = CLIP_SECONDS * SAMPLE_RATE as usize;

/// What happens to the frames after the last whole window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tail {
    /// Left out: every window starts on the hop grid.
    #[default]
    Drop,
    /// Covered by one more window that ends on the last frame.
    End,
}

impl FromStr for Tail {
    type Err = String;
    fn from_str(s: &str) -> Result<Tail, String> {
        match s {
            "drop" => Ok(Tail::Drop),
            "end" => Ok(Tail::End),
            other => Err(format!("unknown tail {other:?}: expected drop or end")),
        }
    }
}

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tail::Drop => "drop",
            Tail::End => "end",
        })
    }
}

/// How clips are cut into excerpts, in seconds of the 10 s clip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowSpec {
    pub window: f64,
    pub hop: f64,
    pub tail: Tail,
}

impl Default for WindowSpec {
    /// The paper's protocol as this probe has always run it: 1 s windows, no overlap.
    fn default() -> WindowSpec {
        WindowSpec { window: 1.0, hop: 1.0, tail: Tail::Drop }
    }
}

impl WindowSpec {
    /// Checks that both lengths are positive and the window fits in a clip.
    pub fn new(window: f64, hop: f64, tail: Tail) -> Result<WindowSpec> {
        ensure!(window.is_finite() && window > 0.0, "--window {window}: expected a positive number of seconds");
        ensure!(hop.is_finite() && hop > 0.0, "--hop {hop}: expected a positive number of seconds");
        ensure!(
            window <= CLIP_SECONDS as f64,
            "--window {window}: longer than the {CLIP_SECONDS} s every clip is tiled to"
        );
        Ok(WindowSpec { window, hop, tail })
    }

    /// `(w, h)`: frames per window and between window starts, for a clip of `frames` frames.
    pub fn frames(&self, frames: usize) -> (usize, usize) {
        let per_second = frames as f64 / CLIP_SECONDS as f64;
        // The small slack keeps products such as 0.3 * 10 from rounding down to 2.
        let whole = |seconds: f64| (seconds * per_second + 1e-9).floor() as usize;
        (whole(self.window).clamp(1, frames.max(1)), whole(self.hop).max(1))
    }

    /// The first frame of every window of a clip of `frames` frames.
    pub fn starts(&self, frames: usize) -> Vec<usize> {
        let (w, h) = self.frames(frames);
        let mut starts: Vec<usize> = (0..).map(|i| i * h).take_while(|s| s + w <= frames).collect();
        let covered = starts.last().map_or(0, |s| s + w);
        if self.tail == Tail::End && covered < frames {
            starts.push(frames - w);
        }
        starts
    }
}

/// Frames per window for a clip with `frames` frames under the default 1 s windows:
/// `max(1, floor(frames / CLIP_SECONDS))`.
pub fn frames_per_window(frames: usize) -> usize {
    WindowSpec::default().frames(frames).0
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

/// Cuts features `[channels, frames]` into the default 1 s, non-overlapping windows.
pub fn cut(features: &[f32], channels: usize, frames: usize) -> Result<Windows> {
    cut_with(features, channels, frames, &WindowSpec::default())
}

/// Cuts features `[channels, frames]` (row-major, one row per channel) into the windows of `spec`.
/// Each window is the `[channels, w]` block flattened channel-major, as numpy's `reshape(-1)` of
/// that block does: values `0..w` are channel 0's frames, the next `w` channel 1's, and so on.
pub fn cut_with(features: &[f32], channels: usize, frames: usize, spec: &WindowSpec) -> Result<Windows> {
    ensure!(channels > 0 && frames > 0, "features are [{channels}, {frames}]: expected at least one channel and frame");
    ensure!(
        features.len() == channels * frames,
        "features hold {} values: expected [{channels}, {frames}] = {}",
        features.len(),
        channels * frames
    );
    let (w, _) = spec.frames(frames);
    let starts = spec.starts(frames);
    let dim = channels * w;
    let mut data = Vec::with_capacity(starts.len() * dim);
    for &s in &starts {
        for c in 0..channels {
            let start = c * frames + s;
            data.extend_from_slice(&features[start..start + w]);
        }
    }
    Ok(Windows { count: starts.len(), dim, data })
}
