//! Training-step throughput: clips per second of a whole SoundNet training step (forward, both KL
//! losses, backward, Adam; one submission) at several batch sizes, on synthetic data.
//!
//!     cargo bench --bench train_step
//!     SN_BENCH_MODEL=soundnet8-narrow4 SN_BENCH_SECONDS=10 SN_BENCH_BATCHES=1,4 cargo bench --bench train_step
//!
//! Defaults: SoundNet-8, 20 s clips (its training length), batches 1, 2, 4 and 8; a batch the
//! memory plan refuses on this adapter (largest tensor over the binding limit) is skipped with
//! the plan's reason. Timing is wall clock from submission to completion of each step, the number
//! a training run sees. `tools/time_pytorch.py` times the same step in PyTorch.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rand::{Rng, SeedableRng};
use sn_wgpu::model::{Arch, Heads, Model};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::train::memory;
use sn_wgpu::train::{StepShape, TrainStep};
use sn_wgpu::Gpu;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e:#}"));
    let model_name = env_or("SN_BENCH_MODEL", "soundnet8");
    let seconds: f64 = env_or("SN_BENCH_SECONDS", "20").parse().expect("SN_BENCH_SECONDS: a number");
    let batches: Vec<usize> = env_or("SN_BENCH_BATCHES", "1,2,4,8")
        .split(',')
        .map(|b| b.trim().parse().expect("SN_BENCH_BATCHES: comma-separated batch sizes"))
        .collect();
    let model = Model::init(&gpu, Arch::by_name(&model_name).unwrap_or_else(|e| panic!("{e:#}")), 0).unwrap();
    let samples = (seconds * 22_050.0).round() as usize;
    let mut criterion = Criterion::default()
        .without_plots()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = criterion.benchmark_group(format!("train step {model_name} {seconds} s"));
    let mut results = Vec::new();
    for batch in batches {
        let shape = StepShape { batch, micro_batches: 1, samples };
        if let Err(e) = memory::plan(&gpu, &model, shape) {
            println!("batch {batch}: skipped, {e:#}");
            continue;
        }
        let mut step = TrainStep::new(&gpu, &model, shape, AdamConfig::default(), None).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let waveform: Vec<f32> = (0..batch * samples).map(|_| rng.random_range(-256.0..256.0)).collect();
        let teacher = |classes: usize| vec![1.0 / classes as f32; batch * classes * step.steps];
        let (objects, scenes) = (teacher(step.heads[0].1), teacher(step.heads[1].1));
        let (mut total, mut count) = (Duration::ZERO, 0u64);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    step.submit(&gpu, &waveform, Heads { objects: &objects, scenes: &scenes, classes: &[] }).unwrap();
                    step.finish(&gpu).unwrap();
                }
                let t = start.elapsed();
                (total, count) = (total + t, count + iters);
                t
            })
        });
        results.push((batch, total.as_secs_f64() / count.max(1) as f64));
    }
    group.finish();
    println!("\nadapter: {}\ntiming: wall clock per step, submission to completion", gpu.describe());
    println!("{:<8} {:>12} {:>10}", "batch", "ms/step", "clips/s");
    for (batch, secs) in results {
        println!("{batch:<8} {:>12.1} {:>10.3}", secs * 1e3, batch as f64 / secs);
    }
}
