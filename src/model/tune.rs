//! The convolutions a SoundNet runs at a batch and length, and measuring the kernel of each of
//! their passes on the device (`ops::conv1d::autotune`): what `sn-wgpu tune` does ahead of time
//! and `train` and `profile` do for whatever the file does not hold yet.

use std::time::Instant;

use anyhow::Result;

use super::arch::Arch;
use crate::gpu::tuning::Choice;
use crate::gpu::Gpu;
use crate::ops::conv1d::autotune::{self, pass_name};
use crate::ops::conv1d::{Conv1dShape, ConvKernel, Pass};

/// One pass of one convolution and its kernel choice.
#[derive(Debug, Clone)]
pub struct TunedPass {
    pub layer: String,
    pub shape: Conv1dShape,
    pub pass: Pass,
    pub choice: Choice,
    /// Measured by this call (not read from the file).
    pub measured_now: bool,
}

/// Every conv pass of `arch` over `batch` clips of `samples` samples, in network order: forward,
/// and in training dX (but for conv1, whose input is the waveform) and dW. None when `samples` is
/// too short for one output step.
pub fn conv_passes(
    arch: &Arch,
    batch: usize,
    samples: usize,
    training: bool,
) -> Option<Vec<(String, Conv1dShape, Pass)>> {
    let lengths = arch.lengths(samples)?;
    let mut out = Vec::new();
    let mut push = |name: &str, shape: Conv1dShape, first: bool| {
        out.push((name.to_string(), shape, Pass::Forward));
        if training {
            if !first {
                out.push((name.to_string(), shape, Pass::InputGrad));
            }
            out.push((name.to_string(), shape, Pass::WeightGrad));
        }
    };
    let mut l = samples;
    for (i, layer) in arch.body.iter().enumerate() {
        let (cin, cout, k, stride, pad) = (layer.cin, layer.cout, layer.k, layer.stride, layer.pad);
        push(layer.name, Conv1dShape { n: batch, cin, cout, l, k, stride, pad }, i == 0);
        l = lengths.body[i].1;
    }
    for head in &arch.heads {
        let (cin, cout) = (arch.feature_channels(), head.classes);
        push(head.name, Conv1dShape { n: batch, cin, cout, l, k: head.k, stride: head.stride, pad: head.pad }, false);
    }
    Some(out)
}

/// The kernel choice of every conv pass of `arch` at (`batch`, `samples`), measuring those the
/// adapter's file lacks (the same shape twice is measured once). `progress` hears each pass as it
/// is about to be measured, with its index and the count to measure. Where tuning is off, the
/// first guesses, unmeasured.
pub fn tune_model(
    gpu: &Gpu,
    arch: &Arch,
    batch: usize,
    samples: usize,
    training: bool,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Vec<TunedPass>> {
    let passes = conv_passes(arch, batch, samples, training).unwrap_or_default();
    let missing = |s: &Conv1dShape, p: Pass| gpu.tuning.enabled() && autotune::cached(gpu, s, p).is_none();
    let mut to_measure: Vec<(Conv1dShape, Pass)> = Vec::new();
    for (_, s, p) in &passes {
        if missing(s, *p) && !to_measure.contains(&(*s, *p)) {
            to_measure.push((*s, *p));
        }
    }
    let mut out = Vec::with_capacity(passes.len());
    for (layer, shape, pass) in passes {
        let measured_now = match to_measure.iter().position(|m| *m == (shape, pass)) {
            Some(i) if missing(&shape, pass) => {
                progress(i, to_measure.len(), &format!("{layer} {}", pass_name(pass)));
                true
            }
            _ => false,
        };
        let choice = autotune::tune(gpu, &shape, pass)?;
        out.push(TunedPass { layer, shape, pass, choice, measured_now });
    }
    Ok(out)
}

/// [`tune_model`] for a command about to run `arch` with `kernel`: only `Auto` is tuned. Prints
/// what it measured (with a progress line per pass on a terminal) and any note on the file.
pub fn tune_for_run(
    gpu: &Gpu,
    arch: &Arch,
    kernel: ConvKernel,
    batch: usize,
    samples: usize,
    training: bool,
) -> Result<()> {
    for note in gpu.tuning.take_notes() {
        eprintln!("{note}");
    }
    if kernel != ConvKernel::Auto || !gpu.tuning.enabled() {
        return Ok(());
    }
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("measuring conv kernels {pos}/{len} {msg}").expect("a template"),
    );
    let tuned = tune_model(gpu, arch, batch, samples, training, |i, n, what| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
        bar.set_message(what.to_string());
    })?;
    bar.finish_and_clear();
    for note in gpu.tuning.take_notes() {
        eprintln!("{note}");
    }
    let measured = tuned.iter().filter(|t| t.measured_now).count();
    if measured > 0 {
        let path = gpu.tuning.path().map(|p| p.display().to_string()).unwrap_or_default();
        println!(
            "conv kernels: measured {measured} of {} passes on this adapter in {:.1} s, kept in {path} (sn-wgpu tune)",
            tuned.len(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// A table of the choices: layer, pass, each candidate's time (ms per pass, `*` the chosen).
pub fn table(tuned: &[TunedPass]) -> String {
    let mut out =
        format!("{:<10} {:<12} {:>18} {:>18} {:>18}  chosen\n", "layer", "pass", "cpu ms", "tiled ms", "plain ms");
    for t in tuned {
        let cell = |k: &str| match t.choice.nanos.get(k) {
            Some(ns) => {
                let once = if t.choice.runs.get(k) == Some(&1) { " (1 run)" } else { "" };
                format!("{:.3}{once}{}", ns / 1e6, if t.choice.kernel == k { "*" } else { "" })
            }
            None => "-".to_string(),
        };
        let measured = if t.choice.nanos.is_empty() { " (first guess, not measured)" } else { "" };
        out += &format!(
            "{:<10} {:<12} {:>18} {:>18} {:>18}  {}{measured}\n",
            t.layer,
            pass_name(t.pass),
            cell("cpu"),
            cell("tiled"),
            cell("plain"),
            t.choice.kernel
        );
    }
    out
}
