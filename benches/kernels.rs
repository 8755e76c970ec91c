//! Per-kernel benchmarks at SoundNet-8 layer shapes (batch `SN_BENCH_BATCH`, default 1, of
//! `SN_BENCH_SECONDS`, default 20, seconds of audio).
//!
//!     cargo bench --bench kernels                 # all kernels
//!     cargo bench --bench kernels -- conv1d       # those whose name contains "conv1d"
//!
//! Time is GPU time from timestamp queries around each kernel's compute passes where the adapter
//! has them, and wall-clock time of submit-and-wait otherwise (which then includes submission
//! overhead); the table at the end says which, and on which adapter. Next to each time: the FLOPs
//! and the minimum bytes the kernels must move (each input read once, each output written once),
//! the sum of the `Cost` each launch carries, turned into GFLOP/s and GB/s. Every op family of
//! `sn_wgpu::ops::FAMILIES` has cases here; the bench stops before timing when one has none.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::Criterion;
use sn_wgpu::gpu::{Dispatch, MAX_TIMED_PASSES};
use sn_wgpu::model::params::parameter_specs;
use sn_wgpu::model::soundnet8;
use sn_wgpu::ops::adam::{self, AdamConfig};
use sn_wgpu::ops::batchnorm::{self, Affine, BatchNormShape, Grads, RunningStats, Saved, TrainStats};
use sn_wgpu::ops::bn_relu_pool::{self, BnReluPoolShape};
use sn_wgpu::ops::conv1d::{self, Conv1dShape, ConvKernel};
use sn_wgpu::ops::maxpool1d::{self, MaxPool1dShape};
use sn_wgpu::ops::relu;
use sn_wgpu::ops::teacher_loss::{self, ColumnShape, TeacherLoss};
use sn_wgpu::{Gpu, Tensor};

/// One benchmarked kernel (or an op's group of passes): its launches, prepared once, and their
/// least work and traffic.
struct Case {
    name: String,
    flops: f64,
    bytes: f64,
    launches: Vec<Dispatch>,
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
        for launch in &case.launches {
            launch.encode(gpu, &mut encoder);
        }
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

/// The case `name` of the launches `record` makes, with their costs added up.
fn case(gpu: &Gpu, name: String, record: impl FnOnce(&Gpu, &mut Vec<Dispatch>)) -> Case {
    let mut launches = Vec::new();
    record(gpu, &mut launches);
    let (flops, bytes) =
        launches.iter().fold((0.0, 0.0), |(f, b), d| (f + d.info().cost.flops, b + d.info().cost.bytes));
    Case { name, flops, bytes, launches }
}

/// Stops unless every op family has a case (its shader among some case's launches).
fn check_every_family_has_a_case(cases: &[Case]) {
    for family in sn_wgpu::ops::FAMILIES {
        let covered = cases.iter().flat_map(|c| &c.launches).any(|d| {
            let shader = d.interface().0;
            family.shaders.iter().any(|s| s.name == shader.name)
        });
        assert!(covered, "benches/kernels.rs has no case for the {} family of sn_wgpu::ops::FAMILIES", family.name);
    }
}

/// The kernels at every SoundNet-8 layer shape: each body layer's conv, batchnorm, ReLU and pool
/// forward and backward, the heads, the loss and one Adam step over every parameter.
fn cases(gpu: &Gpu, batch: usize, samples: usize) -> Vec<Case> {
    let arch = soundnet8();
    let lengths = arch.lengths(samples).expect("input too short for SoundNet-8");
    let mut cases = Vec::new();
    let mut len = samples;
    let mut cin = 1;
    let mut convs: Vec<(String, Conv1dShape)> = Vec::new();
    for (layer, &(conv_len, pooled)) in arch.body.iter().zip(&lengths.body) {
        let shape =
            Conv1dShape { n: batch, cin, cout: layer.cout, l: len, k: layer.k, stride: layer.stride, pad: layer.pad };
        convs.push((layer.name.to_string(), shape));
        let act = [batch, layer.cout, conv_len];
        let bn = BatchNormShape { n: batch, c: layer.cout, l: conv_len };
        let (x, y, dy, dx) =
            (tensor(gpu, &act, "x"), tensor(gpu, &act, "y"), tensor(gpu, &act, "dy"), tensor(gpu, &act, "dx"));
        let per_channel = || tensor(gpu, &[layer.cout], "per channel");
        let (gamma, beta, rm, rv, mean, invstd, dg, db) = (
            per_channel(),
            per_channel(),
            per_channel(),
            per_channel(),
            per_channel(),
            per_channel(),
            per_channel(),
            per_channel(),
        );
        let sums = tensor(gpu, &[2, layer.cout], "sums");
        {
            let (x, y, g, b, rm, rv, mean, invstd) = (
                x.clone(),
                y.clone(),
                gamma.clone(),
                beta.clone(),
                rm.clone(),
                rv.clone(),
                mean.clone(),
                invstd.clone(),
            );
            cases.push(case(gpu, format!("batchnorm train forward {} {act:?}", layer.name), move |g_, e| {
                batchnorm::encode_forward_train(
                    g_,
                    e,
                    &bn,
                    (&x, &y),
                    Affine { gamma: &g, beta: &b },
                    TrainStats {
                        running: RunningStats { mean: &rm, var: &rv },
                        saved: Saved { mean: &mean, invstd: &invstd },
                        eps: batchnorm::DEFAULT_EPS,
                        momentum: batchnorm::DEFAULT_MOMENTUM,
                    },
                )
                .unwrap()
            }));
        }
        {
            let (x, dy, dx, g) = (x.clone(), dy.clone(), dx.clone(), gamma.clone());
            cases.push(case(gpu, format!("batchnorm backward {} {act:?}", layer.name), move |g_, e| {
                batchnorm::encode_backward(
                    g_,
                    e,
                    &bn,
                    (&x, &dy),
                    &g,
                    Saved { mean: &mean, invstd: &invstd },
                    Grads { dx: &dx, dgamma: &dg, dbeta: &db, channel_sums: &sums, accumulate: true },
                )
                .unwrap()
            }));
        }
        {
            let (x, y) = (x.clone(), y.clone());
            cases.push(case(gpu, format!("relu forward {} {act:?}", layer.name), move |g_, e| {
                relu::encode_forward(g_, e, &x, &y).unwrap()
            }));
        }
        {
            let (x, dy, dx) = (x.clone(), dy.clone(), dx.clone());
            cases.push(case(gpu, format!("relu backward {} {act:?}", layer.name), move |g_, e| {
                relu::encode_backward(g_, e, &x, &dy, &dx).unwrap()
            }));
        }
        if let Some(k) = layer.pool {
            let shape = MaxPool1dShape { n: batch, c: layer.cout, l: conv_len, k, stride: k };
            let out = [batch, layer.cout, pooled];
            let (py, arg, pdy) =
                (tensor(gpu, &out, "pool y"), tensor(gpu, &out, "argmax"), tensor(gpu, &out, "pool dy"));
            {
                let (x, py, arg) = (x.clone(), py.clone(), arg.clone());
                cases.push(case(gpu, format!("maxpool forward {} {act:?}", layer.name), move |g_, e| {
                    maxpool1d::encode_forward(g_, e, &shape, &x, &py, &arg).unwrap()
                }));
            }
            {
                let (x, py, arg) = (x.clone(), py.clone(), arg.clone());
                let (g, b, rm, rv) = (per_channel(), per_channel(), per_channel(), per_channel());
                let (mean, invstd) = (per_channel(), per_channel());
                let fused = BnReluPoolShape::new(batch, layer.cout, conv_len, k).unwrap();
                cases.push(case(gpu, format!("bn_relu_pool train forward {} {act:?}", layer.name), move |g_, e| {
                    let stats = TrainStats {
                        running: RunningStats { mean: &rm, var: &rv },
                        saved: Saved { mean: &mean, invstd: &invstd },
                        eps: batchnorm::DEFAULT_EPS,
                        momentum: batchnorm::DEFAULT_MOMENTUM,
                    };
                    let affine = Affine { gamma: &g, beta: &b };
                    bn_relu_pool::encode_forward_train(g_, e, &fused, (&x, None), (&py, Some(&arg)), affine, stats)
                        .unwrap()
                }));
            }
            cases.push(case(gpu, format!("maxpool backward {} {act:?}", layer.name), move |g_, e| {
                maxpool1d::encode_backward(g_, e, &shape, &arg, &pdy, &dx).unwrap()
            }));
        }
        len = pooled;
        cin = layer.cout;
    }
    for head in &arch.heads {
        let shape =
            Conv1dShape { n: batch, cin, cout: head.classes, l: len, k: head.k, stride: head.stride, pad: head.pad };
        convs.push((head.name.to_string(), shape));
    }
    for (name, s) in convs {
        let l_out = s.l_out().unwrap();
        let (xs, ws, ys) = ([s.n, s.cin, s.l], [s.cout, s.cin, s.k], [s.n, s.cout, l_out]);
        let (x, w, b, y) =
            (tensor(gpu, &xs, "x"), tensor(gpu, &ws, "w"), tensor(gpu, &[s.cout], "b"), tensor(gpu, &ys, "y"));
        let (dx, dw, db) = (tensor(gpu, &xs, "dx"), tensor(gpu, &ws, "dw"), tensor(gpu, &[s.cout], "db"));
        for kernel in [ConvKernel::Plain, ConvKernel::Tiled, ConvKernel::Cpu] {
            {
                let (x, w, b, y) = (x.clone(), w.clone(), b.clone(), y.clone());
                cases.push(case(
                    gpu,
                    format!("conv1d {kernel:?} forward {name} {xs:?} k{} s{}", s.k, s.stride),
                    move |g_, e| {
                        conv1d::encode_forward(g_, e, kernel, &s, conv1d::ForwardTensors { x: &x, w: &w, b: &b, y: &y })
                            .unwrap()
                    },
                ));
            }
            if s.cin > 1 {
                let (w, y, dx) = (w.clone(), y.clone(), dx.clone());
                cases.push(case(gpu, format!("conv1d {kernel:?} backward_input {name} {xs:?}"), move |g_, e| {
                    conv1d::encode_backward_input(
                        g_,
                        e,
                        kernel,
                        &s,
                        conv1d::InputGradTensors { dy: &y, w: &w, dx: &dx },
                        false,
                    )
                    .unwrap()
                }));
            }
            let (x, y, dw, db) = (x.clone(), y.clone(), dw.clone(), db.clone());
            let partials = match conv1d::weight_grad_partials(gpu, kernel, &s).unwrap() {
                0 => None,
                len => Some(tensor(gpu, &[len], "dw partial sums")),
            };
            cases.push(case(
                gpu,
                format!("conv1d {kernel:?} backward_params (dW and db) {name} {ws:?}"),
                move |g_, e| {
                    let partials = partials.as_ref();
                    conv1d::encode_backward_params(
                        g_,
                        e,
                        kernel,
                        &s,
                        conv1d::ParamGradTensors { x: &x, dy: &y, dw: &dw, db: &db, partials },
                        true,
                    )
                    .unwrap()
                },
            ));
        }
        cases.push(case(gpu, format!("conv1d backward_bias {name} [{}]", s.cout), move |g_, e| {
            conv1d::encode_backward_bias(g_, e, &s, &y, &db, true).unwrap()
        }));
    }
    for head in &arch.heads {
        let shape = ColumnShape { n: batch, c: head.classes, t: lengths.steps };
        let dims = [batch, head.classes, lengths.steps];
        let (p, z, dz) = (tensor(gpu, &dims, "p"), tensor(gpu, &dims, "z"), tensor(gpu, &dims, "dz"));
        let (scratch, loss) = (tensor(gpu, &[batch * lengths.steps], "columns"), tensor(gpu, &[1], "loss"));
        {
            let (p, z) = (p.clone(), z.clone());
            cases.push(case(gpu, format!("teacher_loss kl forward {} {dims:?}", head.name), move |g_, e| {
                teacher_loss::encode_forward(g_, e, TeacherLoss::Kl, &shape, (&p, &z), &scratch, &loss).unwrap()
            }));
        }
        cases.push(case(gpu, format!("teacher_loss kl backward {} {dims:?}", head.name), move |g_, e| {
            teacher_loss::encode_backward(g_, e, TeacherLoss::Kl, &shape, (&p, &z), &dz, 1.0).unwrap()
        }));
    }
    let params: usize = parameter_specs(&arch).iter().map(|s| s.shape.iter().product::<usize>()).sum();
    let (p, g, m, v) = (
        tensor(gpu, &[params], "p"),
        tensor(gpu, &[params], "g"),
        tensor(gpu, &[params], "m"),
        tensor(gpu, &[params], "v"),
    );
    cases.push(case(gpu, format!("adam step, all {params} parameters"), move |g_, e| {
        adam::encode_step(g_, e, &AdamConfig::default(), 1, (&p, &g), (&m, &v)).unwrap()
    }));
    cases
}

fn main() {
    let gpu = Gpu::new().unwrap_or_else(|e| panic!("{e:#}"));
    let batch = env_usize("SN_BENCH_BATCH", 1);
    let seconds = env_usize("SN_BENCH_SECONDS", 20);
    let samples = seconds * 22_050;
    // No HTML plots: criterion's plotting needs system fonts, and the table below is the report.
    let mut criterion = Criterion::default()
        .without_plots()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let measured = RefCell::new(Vec::<Measured>::new());
    let cases = cases(&gpu, batch, samples);
    check_every_family_has_a_case(&cases);
    for case in cases {
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
            measured.borrow_mut().push(Measured {
                name: case.name,
                flops: case.flops,
                bytes: case.bytes,
                total,
                iters: count,
            });
        }
    }
    criterion.final_summary();
    let clock =
        if gpu.has_timestamps() { "GPU timestamps" } else { "wall clock (no timestamp queries on this adapter)" };
    println!("\nadapter: {}\ntiming: {clock}; batch {batch}, {seconds} s of audio", gpu.describe());
    println!("{:<56} {:>12} {:>10} {:>10}", "kernel", "time/iter", "GFLOP/s", "GB/s");
    for m in measured.into_inner() {
        let secs = m.total.as_secs_f64() / m.iters as f64;
        println!("{:<56} {:>9.3} ms {:>10.2} {:>10.2}", m.name, secs * 1e3, m.flops / secs / 1e9, m.bytes / secs / 1e9);
    }
}
