//! `sn-wgpu filters`: the first layer's filters, the paper's Figure 5. Each conv1 filter is drawn
//! as its waveform (the kernel's taps in time) and as its magnitude frequency response on a Hz
//! axis, and the text report gives each one's peak frequency and -3 dB band, so "low and high
//! frequencies, wavelet-like patterns" can be read off without the picture too.

mod chart;
pub mod response;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

pub use response::Response;

use crate::checkpoint::Checkpoint;
use crate::data::SAMPLE_RATE;
use crate::model::Arch;
use crate::out_folder::write_file;

/// The first layer's weights.
const CONV1: &str = "conv1.weight";

pub struct FiltersOptions {
    pub weights: PathBuf,
    /// How many filters, from the first (the paper shows 16).
    pub count: usize,
    pub png: PathBuf,
}

/// One filter: its taps and what its frequency response says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filter {
    pub index: usize,
    pub taps: Vec<f32>,
    /// The frequency of the largest magnitude, in Hz.
    pub peak_hz: f64,
    /// Where the magnitude stays within 3 dB of the peak, around it, in Hz.
    pub band_hz: [f64; 2],
    /// Sum of squared taps: how much the filter passes overall.
    pub energy: f64,
    #[serde(skip)]
    pub response: Response,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiltersReport {
    pub weights: PathBuf,
    pub model: String,
    /// conv1's shape `[out channels, in channels, kernel]`.
    pub shape: [usize; 3],
    pub filters: Vec<Filter>,
    pub png: PathBuf,
}

/// Reads conv1 from the checkpoint, computes each filter's response and draws them.
pub fn run(opts: &FiltersOptions) -> Result<FiltersReport> {
    let checkpoint = Checkpoint::load(&opts.weights)?;
    let model = checkpoint
        .meta("model")
        .with_context(|| format!("{}: not an sn-wgpu checkpoint", opts.weights.display()))?
        .to_string();
    let arch = Arch::by_name(&model).with_context(|| format!("{}", opts.weights.display()))?;
    let first = &arch.body[0];
    let shape = [first.cout, first.cin, first.k];
    let taps = checkpoint.get(CONV1, &shape).with_context(|| format!("{}", opts.weights.display()))?;
    ensure!(
        opts.count >= 1 && opts.count <= first.cout,
        "--count {}: {model} has {} conv1 filters",
        opts.count,
        first.cout
    );
    let filters: Vec<Filter> = (0..opts.count)
        .map(|i| {
            let taps = taps[i * first.k..(i + 1) * first.k].to_vec();
            let response = Response::of(&taps, SAMPLE_RATE as f64);
            Filter {
                index: i,
                peak_hz: response.peak_hz(),
                band_hz: response.band_hz(3.0),
                energy: taps.iter().map(|&t| f64::from(t) * f64::from(t)).sum(),
                taps,
                response,
            }
        })
        .collect();
    let which = if opts.count == first.cout {
        format!("conv1's {} filters", first.cout)
    } else {
        format!("the first {} of conv1's {} filters", opts.count, first.cout)
    };
    let title = format!("{}: {which} ({} taps), waveform and |H(f)|", name(&opts.weights), first.k);
    write_file(&opts.png, "--out", |png| chart::draw(png, &title, &filters))?;
    Ok(FiltersReport { weights: opts.weights.clone(), model, shape, filters, png: opts.png.clone() })
}

fn name(path: &Path) -> String {
    path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned()
}

impl FiltersReport {
    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let [o, i, k] = self.shape;
        let _ = writeln!(s, "{} ({}): conv1 [{o}, {i}, {k}]", self.weights.display(), self.model);
        for f in &self.filters {
            let _ = writeln!(
                s,
                "filter {:2}: peak {:7.0} Hz, -3 dB band {:5.0}-{:5.0} Hz, energy {:.3}",
                f.index, f.peak_hz, f.band_hz[0], f.band_hz[1], f.energy
            );
        }
        let _ = writeln!(s, "wrote {}", self.png.display());
        s
    }
}
