//! Per-kernel benchmarks at SoundNet-8 layer shapes (batch `SN_BENCH_BATCH`, default 1, of
//! `SN_BENCH_SECONDS`, default 20, seconds of audio).
//!
//!     cargo bench --bench kernels                 # all kernels
//!     cargo bench --bench kernels -- conv1d       # those whose name contains "conv1d"
//!
//! Time is GPU time from timestamp queries around each kernel's compute passes where the adapter
//! has them, and wall-clock time of submit-and-wait otherwise (which then includes submission
//! overhead); the table at the end says which, and on which adapter. Next to each time: the FLOPs
//! and the minimum bytes the kernel must move (each input read once, each output written once),
//! turned into GFLOP/s and GB/s.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sn_wgpu::gpu::MAX_TIMED_PASSES;
use sn_wgpu::model::soundnet8;
use sn_wgpu::ops::relu;
use sn_wgpu::{Gpu, Tensor};

/// One benchmarked kernel (or fused group of passes) with its work and traffic.
struct Case {
    name: String,
    flops: f64,
    bytes: f64,
    encode: Box<dyn Fn(&Gpu, &mut wgpu::CommandEncoder)>,
}

/// What was measured for one case, accumulated over criterion's samples.
struct Measured {
    name: String,
    flops: f64,
    bytes: f64,
    total: Duration,
    iters: u64,
}

const MAX_PASSES_PER_CASE: u32 = 8;

/// Runs `iters` repetitions, in as few submissions as the timestamp query set allows, and returns
/// their total time.
fn time_case(gpu: &Gpu, case: &Case, iters: u64) -> Duration {
    let per_submission = u64::from(MAX_TIMED_PASSES / MAX_PASSES_PER_CASE);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(per_submission);
        total += time_submission(gpu, case, n);
        left -= n;
    }
    total
}

fn time_submission(gpu: &Gpu, case: &Case, iters: u64) -> Duration {
    let timed = gpu.start_timing(iters as u32 * MAX_PASSES_PER_CASE);
    let mut encoder = gpu.encoder(&case.name);
    for _ in 0..iters {
        (case.encode)(gpu, &mut encoder);
    }
    let start = Instant::now();
    gpu.submit(encoder);
    gpu.wait().expect("GPU work failed");
    let wall = start.elapsed();
    if timed {
        let nanos: f64 = gpu.finish_timing().expect("reading timestamps").iter().map(|t| t.nanos).sum();
        Duration::from_nanos(nanos as u64)
    } else {
        wall
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tensor(gpu: &Gpu, shape: &[usize], label: &str) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    Tensor::from_slice(gpu, &data, shape, label).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The kernels at every SoundNet-8 layer shape.
fn cases(gpu: &Gpu, batch: usize, samples: usize) -> Vec<Case> {
    let arch = soundnet8();
    let lengths = arch.lengths(samples).expect("input too short for SoundNet-8");
    let mut cases = Vec::new();
    for (layer, &(conv_len, _)) in arch.body.iter().zip(&lengths.body) {
        let shape = [batch, layer.cout, conv_len];
        let n = (batch * layer.cout * conv_len) as f64;
        let (x, y, dy, dx) = (tensor(gpu, &shape, "x"), tensor(gpu, &shape, "y"), tensor(gpu, &shape, "dy"), tensor(gpu, &shape, "dx"));
        cases.push(Case {
            name: format!("relu forward {} {shape:?}", layer.name),
            flops: n,
            bytes: 8.0 * n,
            encode: Box::new(move |g, e| relu::encode_forward(g, e, &x, &y).unwrap()),
        });
        let x = tensor(gpu, &shape, "x");
        cases.push(Case {
            name: format!("relu backward {} {shape:?}", layer.name),
            flops: n,
            bytes: 12.0 * n,
            encode: Box::new(move |g, e| relu::encode_backward(g, e, &x, &dy, &dx).unwrap()),
        });
    }
    cases
}

fn main() {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e:#}"));
    let batch = env_usize("SN_BENCH_BATCH", 1);
    let seconds = env_usize("SN_BENCH_SECONDS", 20);
    let samples = seconds * 22_050;
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let measured = RefCell::new(Vec::<Measured>::new());
    for case in cases(&gpu, batch, samples) {
        let mut total = Duration::ZERO;
        let mut count = 0;
        criterion.bench_function(&case.name, |b| {
            b.iter_custom(|iters| {
                let t = time_case(&gpu, &case, iters);
                total += t;
                count += iters;
                t
            })
        });
        if count > 0 {
            measured.borrow_mut().push(Measured { name: case.name, flops: case.flops, bytes: case.bytes, total, iters: count });
        }
    }
    criterion.final_summary();
    let clock = if gpu.has_timestamps() { "GPU timestamps" } else { "wall clock (no timestamp queries on this adapter)" };
    println!("\nadapter: {}\ntiming: {clock}; batch {batch}, {seconds} s of audio", gpu.describe());
    println!("{:<56} {:>12} {:>10} {:>10}", "kernel", "time/iter", "GFLOP/s", "GB/s");
    for m in measured.into_inner() {
        let secs = m.total.as_secs_f64() / m.iters as f64;
        println!("{:<56} {:>9.3} ms {:>10.2} {:>10.2}", m.name, secs * 1e3, m.flops / secs / 1e9, m.bytes / secs / 1e9);
    }
}
