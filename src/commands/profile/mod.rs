//! `sn-wgpu profile`: where the time of a training step (or an inference pass) goes, kernel by
//! kernel, next to the least time each kernel's work allows on this device.
//!
//! A few steps run on synthetic data (timing does not depend on the values) with every launch in
//! its own timed pass; `table` aggregates them per layer and kernel, `trace` writes one step as a
//! Chrome trace.

mod ceiling;
mod clock;
mod table;
mod trace;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use rand::{Rng, SeedableRng};

pub use ceiling::{Ceilings, SHADER as CEILING_SHADER};
pub use clock::{time_launches, Clock};
pub use table::{Row, SortBy};

use crate::autograd::Tape;
use crate::checkpoint::Checkpoint;
use crate::data::SAMPLE_RATE;
use crate::gpu::Tensor;
use crate::gpu::{Gpu, KernelTime};
use crate::model::tune::{self, TunedPass};
use crate::model::{Arch, Fusion, Model};
use crate::ops::adam::AdamConfig;
use crate::ops::batchnorm::BnMode;
use crate::ops::conv1d::ConvKernel;
use crate::train::{StepShape, TrainStep};

/// Everything `sn-wgpu profile` can be told.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub model: String,
    /// Start from these weights instead of a fresh initialisation (times do not depend on it).
    pub weights: Option<PathBuf>,
    pub batch: usize,
    pub seconds: f64,
    /// Steps timed, after `warmup` untimed ones.
    pub steps: usize,
    pub warmup: usize,
    /// Time eval-mode forward passes instead of training steps.
    pub inference: bool,
    /// Time on the CPU even when the adapter has GPU timestamps.
    pub cpu_timing: bool,
    /// Run the plain kernels instead of the tiled convolutions and fused batchnorm.
    pub plain: bool,
    /// The convolution kernels, when not `plain`.
    pub conv_kernel: ConvKernel,
    /// Datasheet ceilings to use instead of measuring them.
    pub peak_gflops: Option<f64>,
    pub peak_gbs: Option<f64>,
}

/// The timings of a profile run and what they were taken on.
pub struct Profile {
    pub adapter: String,
    pub workload: String,
    pub clock: Clock,
    pub ceilings: Ceilings,
    /// Clips per step, to turn step time into throughput.
    pub clips: usize,
    /// Every launch of every timed step.
    pub steps: Vec<Vec<KernelTime>>,
    /// Wall time of each timed step on the CPU, submission to completion.
    pub wall_nanos: Vec<f64>,
    /// The kernel of each conv pass, with the time of each candidate where it was measured.
    pub choices: Vec<TunedPass>,
}

pub fn run(gpu: &Gpu, opts: &ProfileOptions) -> Result<Profile> {
    ensure!(opts.batch >= 1, "--batch must be at least 1");
    ensure!(opts.steps >= 1, "--steps must be at least 1");
    let mut model = match &opts.weights {
        Some(path) => {
            let checkpoint = Checkpoint::load(path)?;
            Model::from_checkpoint(gpu, &checkpoint).with_context(|| format!("loading {}", path.display()))?
        }
        None => Model::init(gpu, Arch::by_name(&opts.model)?, 0)?,
    };
    model.conv_kernel = opts.conv_kernel;
    if opts.plain {
        (model.fusion, model.conv_kernel) = (Fusion::Plain, ConvKernel::Plain);
    }
    let samples = (opts.seconds * SAMPLE_RATE as f64).round() as usize;
    tune::tune_for_run(gpu, &model.arch, model.conv_kernel, opts.batch, samples, !opts.inference)?;
    let choices = match model.conv_kernel {
        ConvKernel::Auto => tune::tune_model(gpu, &model.arch, opts.batch, samples, !opts.inference, |_, _, _| {})?,
        _ => Vec::new(),
    };
    let clock = Clock::choose(gpu, opts.cpu_timing);
    let ceilings = match (opts.peak_gflops, opts.peak_gbs) {
        (Some(gflops), Some(gbs)) => Ceilings { gflops, gbs, measured: false },
        (flops, bytes) => {
            let measured = ceiling::measure(gpu, clock)?;
            Ceilings {
                gflops: flops.unwrap_or(measured.gflops),
                gbs: bytes.unwrap_or(measured.gbs),
                measured: flops.is_none() || bytes.is_none(),
            }
        }
    };
    let what = if opts.inference { "inference pass (batchnorm in eval mode)" } else { "training step" };
    let kernels = match (opts.plain, opts.conv_kernel) {
        (true, _) => "plain kernels",
        (false, ConvKernel::Auto) if gpu.tuning.enabled() => {
            "each convolution pass with the kernel measured fastest on this adapter, fused batchnorm"
        }
        (false, ConvKernel::Auto) if gpu.class == crate::gpu::DeviceClass::Cpu => {
            "convolutions CPU-shaped where they apply (a CPU adapter), fused batchnorm"
        }
        (false, ConvKernel::Auto) => "convolutions tiled where the tiles fill the GPU, fused batchnorm",
        (false, ConvKernel::Cpu) => "CPU-shaped convolutions where they apply, fused batchnorm",
        (false, ConvKernel::Tiled) => "every convolution tiled, fused batchnorm",
        (false, ConvKernel::Plain) => "plain convolutions, fused batchnorm",
    };
    let workload = format!(
        "{} {what}, batch {} x {:.1} s ({samples} samples), {kernels}",
        model.arch.name, opts.batch, opts.seconds
    );
    let (steps, wall_nanos) = if opts.inference {
        time_inference(gpu, &model, opts, samples, clock)?
    } else {
        time_training(gpu, &model, opts, samples, clock)?
    };
    Ok(Profile { adapter: gpu.describe(), workload, clock, ceilings, clips: opts.batch, steps, wall_nanos, choices })
}

/// Times whole training steps as `train` runs them (one submission each) on random audio and
/// uniform teachers.
fn time_training(
    gpu: &Gpu,
    model: &Model,
    opts: &ProfileOptions,
    samples: usize,
    clock: Clock,
) -> Result<(Vec<Vec<KernelTime>>, Vec<f64>)> {
    let shape = StepShape { batch: opts.batch, micro_batches: 1, samples };
    let mut step = TrainStep::new(gpu, model, shape, AdamConfig::default(), None)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let waveform: Vec<f32> = (0..opts.batch * samples).map(|_| rng.random_range(-256.0..256.0)).collect();
    let teacher = |classes: usize| vec![1.0 / classes.max(1) as f32; opts.batch * classes * step.steps];
    let targets = model.arch.head_classes().map(|c| teacher(c.unwrap_or(0)));
    for _ in 0..opts.warmup {
        step.submit(gpu, &waveform, targets.as_slices())?;
        step.finish(gpu)?;
    }
    let (mut steps, mut walls) = (Vec::new(), Vec::new());
    for _ in 0..opts.steps {
        let start = Instant::now();
        let times = match clock {
            Clock::GpuTimestamps => {
                gpu.start_timing(step.launches().len() as u32);
                step.submit(gpu, &waveform, targets.as_slices())?;
                step.finish(gpu)?;
                gpu.finish_timing()?
            }
            Clock::CpuWall => time_launches(gpu, &step.launches(), clock)?,
        };
        walls.push(start.elapsed().as_nanos() as f64);
        steps.push(times);
    }
    Ok((steps, walls))
}

/// Times eval-mode forward passes through both heads.
fn time_inference(
    gpu: &Gpu,
    model: &Model,
    opts: &ProfileOptions,
    samples: usize,
    clock: Clock,
) -> Result<(Vec<Vec<KernelTime>>, Vec<f64>)> {
    let input = Tensor::zeros(gpu, &[opts.batch, 1, samples], "waveform")?;
    let mut tape = Tape::new(gpu);
    let x = tape.input(&input);
    model.forward(&mut tape, x, BnMode::Eval, None)?;
    let launches: Vec<_> = tape.forward.iter().collect();
    for _ in 0..opts.warmup {
        time_launches(gpu, &launches, clock)?;
    }
    let (mut steps, mut walls) = (Vec::new(), Vec::new());
    for _ in 0..opts.steps {
        let start = Instant::now();
        steps.push(time_launches(gpu, &launches, clock)?);
        walls.push(start.elapsed().as_nanos() as f64);
    }
    Ok((steps, walls))
}
