//! The `sn-wgpu` command line: parse, call one library function, print.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::train::{self, TrainOptions};

#[derive(Parser)]
#[command(name = "sn-wgpu", version, about = "SoundNet training and inference on any GPU through wgpu")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter, the one sn-wgpu picks, its limits and timestamp support.
    Info,
    /// Train SoundNet as a student of a vision teacher (with no --data: on a built-in synthetic demo).
    Train(TrainArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset folder holding manifest.csv (columns audio,objects,scenes). Without it, a synthetic
    /// demo set is generated in memory.
    #[arg(long)]
    data: Option<PathBuf>,
    /// soundnet8 or soundnet5.
    #[arg(long, default_value = "soundnet8")]
    model: String,
    /// Clips per step [default: 8 with --data, 2 on the demo].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Split each batch into N micro-batches whose gradients add up (batchnorm then uses
    /// micro-batch statistics): for batches larger than the GPU holds.
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// Seconds of audio per clip (the first seconds; shorter clips are tiled) [default: 20 with
    /// --data, 10 on the demo].
    #[arg(long)]
    seconds: Option<f64>,
    /// Steps to train to, counted from the start of the run being resumed [default: 1000 with
    /// --data, 20 on the demo].
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.9)]
    beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    eps: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fixed order: manifest order, batches in sequence.
    #[arg(long)]
    no_shuffle: bool,
    /// Where checkpoints, metrics.jsonl and loss.png go [default: runs/train, or the --resume folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write step-NNNNNN.safetensors (and last.safetensors) every N steps; 0 = only at the end
    /// [default: 100 with --data, 10 on the demo].
    #[arg(long)]
    save_every: Option<u64>,
    /// Continue the run in DIR from DIR/last.safetensors (weights, batchnorm statistics, Adam state).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from the model weights in a checkpoint, with a fresh optimizer.
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// A second dataset folder, evaluated (batchnorm in eval mode) every --val-every steps.
    #[arg(long)]
    val_data: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    val_every: u64,
    /// Train on the good items of a dataset with bad ones, listing what was skipped.
    #[arg(long)]
    skip_bad: bool,
}

impl TrainArgs {
    fn options(self) -> TrainOptions {
        let demo = self.data.is_none();
        TrainOptions {
            batch_size: self.batch_size.unwrap_or(if demo { 2 } else { 8 }),
            seconds: self.seconds.unwrap_or(if demo { 10.0 } else { 20.0 }),
            steps: self.steps.unwrap_or(if demo { 20 } else { 1000 }),
            out: self.out.or_else(|| self.resume.clone()).unwrap_or_else(|| PathBuf::from("runs/train")),
            data: self.data,
            model: self.model,
            accumulate: self.accumulate,
            adam: AdamConfig { lr: self.lr, beta1: self.beta1, beta2: self.beta2, eps: self.eps },
            seed: self.seed,
            shuffle: !self.no_shuffle,
            save_every: self.save_every.unwrap_or(if demo { 10 } else { 100 }),
            resume: self.resume,
            init: self.init,
            val_data: self.val_data,
            val_every: self.val_every,
            skip_bad: self.skip_bad,
            demo_clips_per_class: 4,
        }
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Info => print!("{}", sn_wgpu::gpu::info::report()?),
        Command::Train(args) => {
            let demo = args.data.is_none();
            let summary = train::run(&args.options())?;
            print!("{}", summary.describe(demo));
        }
    }
    Ok(())
}
