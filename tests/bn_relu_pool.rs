//! Fused batchnorm -> ReLU (-> max-pool): GPU against the f64 reference on awkward shapes, against
//! the plain ops' chain on the GPU, finite differences of the reference backward, the PyTorch
//! fixture, and whole SoundNet training steps fused and plain (same results, fewer launches and
//! bytes).

#[macro_use]
mod common;
use common::*;
use sn_wgpu::model::params::NamedTensors;
use sn_wgpu::model::{soundnet8, Fusion, Heads, Model};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::ops::batchnorm::{self, Affine, BnMode, Grads, RunningStats, Saved, DEFAULT_EPS, DEFAULT_MOMENTUM};
use sn_wgpu::ops::bn_relu_pool::{self, reference, BnReluPoolShape};
use sn_wgpu::ops::maxpool1d::{self, MaxPool1dShape};
use sn_wgpu::ops::relu;
use sn_wgpu::train::{StepShape, TrainStep};
use sn_wgpu::Tensor;

const EPS: f64 = DEFAULT_EPS as f64;
const MOMENTUM: f64 = DEFAULT_MOMENTUM as f64;

struct Inputs {
    shape: BnReluPoolShape,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    /// The gradient of the fused output, `[N, C, Lout]`.
    dy: Vec<f32>,
}

/// Random inputs; running variances positive.
fn random_inputs(seed: u64, (n, c, l, k): (usize, usize, usize, usize)) -> Inputs {
    let mut r = rng(seed);
    let shape = BnReluPoolShape::new(n, c, l, k).unwrap();
    Inputs {
        shape,
        x: randn(&mut r, n * c * l),
        gamma: randn(&mut r, c),
        beta: randn(&mut r, c),
        running_mean: randn(&mut r, c),
        running_var: randn(&mut r, c).into_iter().map(|v| 0.5 + v.abs()).collect(),
        dy: randn(&mut r, shape.output_shape().iter().product()),
    }
}

/// What a training step of the layer produced on the GPU: forward, then backward.
struct Outputs {
    y: Vec<f32>,
    argmax: Vec<u32>,
    save_mean: Vec<f32>,
    save_invstd: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// The layer's tensors on the GPU: inputs uploaded, outputs NaN-poisoned. With
/// `accumulate_onto = Some((dgamma, dbeta))` the parameter gradients start from those values.
struct Buffers {
    x: Tensor,
    dy: Tensor,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    save_mean: Tensor,
    save_invstd: Tensor,
    dx: Tensor,
    dgamma: Tensor,
    dbeta: Tensor,
    channel_sums: Tensor,
}

impl Buffers {
    fn new(inp: &Inputs, accumulate_onto: Option<(&[f32], &[f32])>) -> Buffers {
        let s = inp.shape;
        let c = [s.c];
        let (dgamma, dbeta) = match accumulate_onto {
            Some((g, b)) => (upload(g, &c), upload(b, &c)),
            None => (poisoned(&c), poisoned(&c)),
        };
        Buffers {
            x: upload(&inp.x, &s.input_shape()),
            dy: upload(&inp.dy, &s.output_shape()),
            gamma: upload(&inp.gamma, &c),
            beta: upload(&inp.beta, &c),
            running_mean: upload(&inp.running_mean, &c),
            running_var: upload(&inp.running_var, &c),
            save_mean: poisoned(&c),
            save_invstd: poisoned(&c),
            dx: poisoned(&s.input_shape()),
            dgamma,
            dbeta,
            channel_sums: poisoned(&bn_relu_pool::channel_sums_shape(gpu(), &s)),
        }
    }

    fn outputs(&self, y: &Tensor, argmax: Option<&Tensor>) -> Outputs {
        let read = |t: &Tensor| t.read(gpu()).unwrap();
        Outputs {
            y: read(y),
            argmax: argmax.map(|a| a.read_u32(gpu()).unwrap()).unwrap_or_default(),
            save_mean: read(&self.save_mean),
            save_invstd: read(&self.save_invstd),
            running_mean: read(&self.running_mean),
            running_var: read(&self.running_var),
            dx: read(&self.dx),
            dgamma: read(&self.dgamma),
            dbeta: read(&self.dbeta),
        }
    }
}

/// The fused op, forward and backward.
fn run_fused(inp: &Inputs, accumulate_onto: Option<(&[f32], &[f32])>) -> Outputs {
    let s = inp.shape;
    let b = Buffers::new(inp, accumulate_onto);
    let y = poisoned(&s.output_shape());
    let argmax = s.pooled().then(|| poisoned(&s.output_shape()));
    run(|enc| {
        let g = gpu();
        bn_relu_pool::encode_forward_train(
            g,
            enc,
            &s,
            (&b.x, None),
            (&y, argmax.as_ref()),
            Affine { gamma: &b.gamma, beta: &b.beta },
            batchnorm::TrainStats {
                running: RunningStats { mean: &b.running_mean, var: &b.running_var },
                saved: Saved { mean: &b.save_mean, invstd: &b.save_invstd },
                eps: DEFAULT_EPS,
                momentum: DEFAULT_MOMENTUM,
            },
        )
        .unwrap();
        bn_relu_pool::encode_backward(
            g,
            enc,
            &s,
            (&b.x, &b.dy, argmax.as_ref()),
            Affine { gamma: &b.gamma, beta: &b.beta },
            Saved { mean: &b.save_mean, invstd: &b.save_invstd },
            Grads {
                dx: &b.dx,
                dgamma: &b.dgamma,
                dbeta: &b.dbeta,
                channel_sums: &b.channel_sums,
                accumulate: accumulate_onto.is_some(),
            },
        )
        .unwrap();
    });
    b.outputs(&y, argmax.as_ref())
}

/// The same layer from the plain ops: batchnorm, ReLU, max-pool and back, intermediates stored.
fn run_plain(inp: &Inputs) -> Outputs {
    let s = inp.shape;
    let b = Buffers::new(inp, None);
    let full = s.input_shape();
    let (z, r, dr, dz) = (poisoned(&full), poisoned(&full), poisoned(&full), poisoned(&full));
    let pool = MaxPool1dShape { n: s.n, c: s.c, l: s.l, k: s.k, stride: s.k };
    let pooled = s.pooled().then(|| (poisoned(&s.output_shape()), poisoned(&s.output_shape())));
    let channel_sums = poisoned(&[2, s.c]);
    run(|enc| {
        let g = gpu();
        batchnorm::encode_forward_train(
            g,
            enc,
            &s.batchnorm(),
            (&b.x, &z),
            Affine { gamma: &b.gamma, beta: &b.beta },
            batchnorm::TrainStats {
                running: RunningStats { mean: &b.running_mean, var: &b.running_var },
                saved: Saved { mean: &b.save_mean, invstd: &b.save_invstd },
                eps: DEFAULT_EPS,
                momentum: DEFAULT_MOMENTUM,
            },
        )
        .unwrap();
        relu::encode_forward(g, enc, &z, &r).unwrap();
        let upstream = match &pooled {
            Some((y, argmax)) => {
                maxpool1d::encode_forward(g, enc, &pool, &r, y, argmax).unwrap();
                maxpool1d::encode_backward(g, enc, &pool, argmax, &b.dy, &dr).unwrap();
                &dr
            }
            None => &b.dy,
        };
        relu::encode_backward(g, enc, &z, upstream, &dz).unwrap();
        batchnorm::encode_backward(
            g,
            enc,
            &s.batchnorm(),
            (&b.x, &dz),
            &b.gamma,
            Saved { mean: &b.save_mean, invstd: &b.save_invstd },
            Grads { dx: &b.dx, dgamma: &b.dgamma, dbeta: &b.dbeta, channel_sums: &channel_sums, accumulate: false },
        )
        .unwrap();
    });
    match &pooled {
        Some((y, argmax)) => b.outputs(y, Some(argmax)),
        None => b.outputs(&r, None),
    }
}

fn reference_train(inp: &Inputs) -> (reference::TrainOutput, batchnorm::reference::Grads) {
    let s = &inp.shape;
    let (x, gamma, beta) = (to_f64(&inp.x), to_f64(&inp.gamma), to_f64(&inp.beta));
    let (rm, rv) = (to_f64(&inp.running_mean), to_f64(&inp.running_var));
    let fwd = reference::forward_train(s, &x, &gamma, &beta, (&rm, &rv), (EPS, MOMENTUM));
    let grads = reference::backward(s, &x, &to_f64(&inp.dy), &fwd.argmax, &gamma, &beta, (&fwd.mean, &fwd.invstd));
    (fwd, grads)
}

fn check_against_reference(inp: &Inputs) {
    let s = inp.shape;
    let what = format!("bn_relu_pool [N={}, C={}, L={}] k={}", s.n, s.c, s.l, s.k);
    let out = run_fused(inp, None);
    let (fwd, grads) = reference_train(inp);
    assert_eq!(out.argmax, fwd.argmax, "{what}: argmax indices differ");
    assert_close(&format!("{what} y"), &out.y, &fwd.y, 1e-5);
    assert_close(&format!("{what} save_mean"), &out.save_mean, &fwd.mean, 1e-5);
    assert_close(&format!("{what} save_invstd"), &out.save_invstd, &fwd.invstd, 1e-5);
    assert_close(&format!("{what} running_mean"), &out.running_mean, &fwd.running_mean, 1e-5);
    assert_close(&format!("{what} running_var"), &out.running_var, &fwd.running_var, 1e-5);
    assert_close(&format!("{what} dx"), &out.dx, &grads.dx, 1e-4);
    assert_close(&format!("{what} dgamma"), &out.dgamma, &grads.dgamma, 1e-4);
    assert_close(&format!("{what} dbeta"), &out.dbeta, &grads.dbeta, 1e-4);
}

/// (N, C, L, k), each with something awkward about it.
const AWKWARD: [(usize, usize, usize, usize); 12] = [
    (2, 3, 37, 8),   // L not a multiple of k: a tail of 5 in no window
    (1, 5, 16, 4),   // N = 1
    (3, 300, 9, 4),  // C past a workgroup and not a multiple of 256; odd L with a tail
    (2, 3, 8, 8),    // Lout = 1, no tail
    (1, 2, 11, 8),   // Lout = 1 with a tail, N = 1
    (2, 7, 33, 1),   // k = 1: ReLU only, odd L
    (4, 3, 1, 1),    // k = 1, L = 1: statistics over the batch only
    (1, 3, 257, 1),  // M one past the workgroup size
    (2, 2, 3001, 4), // M = 6,002: ~23 values per invocation before the tree reduction
    (3, 1, 50, 8),   // one channel
    // GPU kernels: channels cut into runs of the sums, each run ending mid-row, then merged.
    (3, 2, 6007, 4),  // M = 18,021: 2 runs of 9,011
    (1, 3, 70001, 1), // M = 70,001: 8 runs of 8,751, the last one shorter
];

per_class!(matches_reference_on_awkward_shapes);
fn matches_reference_on_awkward_shapes() {
    for (i, shape) in AWKWARD.into_iter().enumerate() {
        check_against_reference(&random_inputs(i as u64, shape));
    }
    let mut r = rng(100);
    for seed in 0..4 {
        let k = [1, 2, 4, 8][uniform(&mut r, 4)];
        let shape = (1 + uniform(&mut r, 3), 1 + uniform(&mut r, 40), k + uniform(&mut r, 200), k);
        let shape = if shape.0 * shape.2 == 1 { (2, shape.1, 1, 1) } else { shape };
        check_against_reference(&random_inputs(200 + seed, shape));
    }
}

fn uniform(r: &mut rand::rngs::StdRng, n: usize) -> usize {
    use rand::Rng;
    r.random_range(0..n)
}

per_class!(accumulate_adds_parameter_grads_while_dx_uses_this_batch);
fn accumulate_adds_parameter_grads_while_dx_uses_this_batch() {
    for (i, shape) in [(3, 6, 21, 4), (2, 5, 13, 1)].into_iter().enumerate() {
        let inp = random_inputs(40 + i as u64, shape);
        let mut r = rng(50 + i as u64);
        let (old_dgamma, old_dbeta) = (randn(&mut r, shape.1), randn(&mut r, shape.1));
        let out = run_fused(&inp, Some((&old_dgamma, &old_dbeta)));
        let (_, grads) = reference_train(&inp);
        let plus = |old: &[f32], new: &[f64]| old.iter().zip(new).map(|(&o, n)| f64::from(o) + n).collect::<Vec<_>>();
        assert_close(&format!("{shape:?} accumulated dgamma"), &out.dgamma, &plus(&old_dgamma, &grads.dgamma), 1e-4);
        assert_close(&format!("{shape:?} accumulated dbeta"), &out.dbeta, &plus(&old_dbeta, &grads.dbeta), 1e-4);
        assert_close(&format!("{shape:?} dx with accumulate"), &out.dx, &grads.dx, 1e-4);
    }
}

per_class!(fused_matches_the_plain_ops_chain);
fn fused_matches_the_plain_ops_chain() {
    // Same formulas, same rounding of the batchnorm output and the same ReLU test, so the argmax
    // agrees exactly; values are held to 1e-6 rather than bit equality because a compiler may
    // contract multiply-adds differently in two shaders.
    for (i, shape) in AWKWARD.into_iter().enumerate() {
        let inp = random_inputs(300 + i as u64, shape);
        let (fused, plain) = (run_fused(&inp, None), run_plain(&inp));
        let what = format!("{shape:?}");
        assert_eq!(fused.argmax, plain.argmax, "{what}: argmax");
        let pairs = [
            ("y", &fused.y, &plain.y),
            ("save_mean", &fused.save_mean, &plain.save_mean),
            ("save_invstd", &fused.save_invstd, &plain.save_invstd),
            ("running_mean", &fused.running_mean, &plain.running_mean),
            ("running_var", &fused.running_var, &plain.running_var),
            ("dx", &fused.dx, &plain.dx),
            ("dgamma", &fused.dgamma, &plain.dgamma),
            ("dbeta", &fused.dbeta, &plain.dbeta),
        ];
        for (name, f, p) in pairs {
            assert_close(&format!("{what} fused vs plain {name}"), f, &to_f64(p), 1e-6);
        }
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (seed, shape) in [(60, (2, 3, 10, 4)), (61, (2, 2, 5, 1))] {
        let inp = random_inputs(seed, shape);
        let s = inp.shape;
        let (x, gamma, beta) = (to_f64(&inp.x), to_f64(&inp.gamma), to_f64(&inp.beta));
        let (rm, rv) = (to_f64(&inp.running_mean), to_f64(&inp.running_var));
        let w = to_f64(&inp.dy);
        let forward = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            reference::forward_train(&s, x, gamma, beta, (&rm, &rv), (EPS, MOMENTUM))
        };
        let fwd = forward(&x, &gamma, &beta);
        // Finite differences are only valid away from kinks: every batchnorm output well clear of
        // ReLU's 0, and no two values of a window within reach of each other.
        let z = batchnorm::reference::forward_train(&s.batchnorm(), &x, &gamma, &beta, (&rm, &rv), (EPS, MOMENTUM)).y;
        assert!(z.iter().all(|v| v.abs() > 1e-3), "seed {seed}: a batchnorm output sits on ReLU's kink");
        for window in z.chunks(s.k) {
            let mut v: Vec<f64> = window.iter().map(|v| v.max(0.0)).filter(|v| *v > 0.0).collect();
            v.sort_by(f64::total_cmp);
            assert!(v.windows(2).all(|p| p[1] - p[0] > 1e-3), "seed {seed}: a pool window is nearly tied");
        }
        let grads = reference::backward(&s, &x, &w, &fwd.argmax, &gamma, &beta, (&fwd.mean, &fwd.invstd));
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| dot(&forward(x, gamma, beta).y, &w);
        let checks = [
            ("dx", numeric_grad(|v| loss(v, &gamma, &beta), &x, 1e-6), &grads.dx),
            ("dgamma", numeric_grad(|v| loss(&x, v, &beta), &gamma, 1e-6), &grads.dgamma),
            ("dbeta", numeric_grad(|v| loss(&x, &gamma, v), &beta, 1e-6), &grads.dbeta),
        ];
        for (which, numeric, analytic) in checks {
            let e = rel_err_f64(analytic, &numeric);
            assert!(e < 1e-7, "{shape:?} {which}: finite differences disagree with the reference backward by {e:.3e}");
        }
    }
}

per_class!(matches_pytorch_fixture);
fn matches_pytorch_fixture() {
    let f = Fixture::load("bn_relu_pool");
    for case in f.cases() {
        let t = |name: &str| f.tensor(&format!("{case}.{name}")).0;
        let (x, dims) = f.tensor(&format!("{case}.x"));
        let k: usize = f.meta(&format!("{case}.k"));
        assert_eq!(f.meta::<f32>(&format!("{case}.eps")), DEFAULT_EPS);
        assert_eq!(f.meta::<f32>(&format!("{case}.momentum")), DEFAULT_MOMENTUM);
        let inp = Inputs {
            shape: BnReluPoolShape::new(dims[0], dims[1], dims[2], k).unwrap(),
            x,
            gamma: t("gamma"),
            beta: t("beta"),
            running_mean: t("running_mean"),
            running_var: t("running_var"),
            dy: t("dy"),
        };
        let out = run_fused(&inp, None);
        if k > 1 {
            let torch_argmax: Vec<u32> = t("argmax").iter().map(|&i| i as u32).collect();
            assert_eq!(out.argmax, torch_argmax, "{case} argmax");
        }
        assert_close(&format!("{case} y"), &out.y, &to_f64(&t("y")), 1e-5);
        assert_close(&format!("{case} mean"), &out.save_mean, &to_f64(&t("mean")), 1e-5);
        assert_close(&format!("{case} invstd"), &out.save_invstd, &to_f64(&t("invstd")), 1e-5);
        assert_close(&format!("{case} running_mean"), &out.running_mean, &to_f64(&t("running_mean_out")), 1e-5);
        assert_close(&format!("{case} running_var"), &out.running_var, &to_f64(&t("running_var_out")), 1e-5);
        assert_close(&format!("{case} dx"), &out.dx, &to_f64(&t("dx")), 1e-4);
        assert_close(&format!("{case} dgamma"), &out.dgamma, &to_f64(&t("dgamma")), 1e-4);
        assert_close(&format!("{case} dbeta"), &out.dbeta, &to_f64(&t("dbeta")), 1e-4);
    }
}

per_class!(refuses_missing_or_extra_argmax_and_wrong_shapes);
fn refuses_missing_or_extra_argmax_and_wrong_shapes() {
    let g = gpu();
    let s = BnReluPoolShape::new(2, 3, 10, 4).unwrap();
    let (x, c, y) = (upload(&[0.5; 60], &[2, 3, 10]), upload(&[1.0; 3], &[3]), poisoned(&[2, 3, 2]));
    let mut enc = g.encoder("errors");
    let mut forward = |y: &Tensor, argmax: Option<&Tensor>| {
        bn_relu_pool::encode_forward_train(
            g,
            &mut enc,
            &s,
            (&x, None),
            (y, argmax),
            Affine { gamma: &c, beta: &c },
            batchnorm::TrainStats {
                running: RunningStats { mean: &c, var: &c },
                saved: Saved { mean: &c, invstd: &c },
                eps: 1e-5,
                momentum: 0.1,
            },
        )
        .unwrap_err()
        .to_string()
    };
    assert!(forward(&y, None).contains("needs an argmax"));
    let wrong = poisoned(&[2, 3, 3]);
    let err = forward(&wrong, Some(&y));
    assert!(err.contains("y has shape [2, 3, 3], expected [2, 3, 2]"), "{err}");
    let err = BnReluPoolShape::new(1, 2, 5, 8).unwrap_err().to_string();
    assert!(err.contains("L must be at least 8"), "{err}");
}

/// A narrow SoundNet-8 training step with `fusion`, from seed-0 weights, at its shortest input.
fn soundnet8_step(fusion: Fusion) -> (Model, TrainStep) {
    let g = gpu();
    let mut model = Model::init(g, soundnet8().narrow(8, 10, 7), 0).unwrap();
    model.fusion = fusion;
    let shape = StepShape { batch: 2, micro_batches: 1, samples: model.arch.min_samples() };
    let step = TrainStep::new(g, &model, shape, AdamConfig::default(), None).unwrap();
    (model, step)
}

/// A random batch: waveform at SoundNet's scale and teachers normalised per (clip, step).
fn random_batch(step: &TrainStep) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = rng(7);
    let s = step.shape;
    let waveform = randn(&mut r, s.batch * s.samples).into_iter().map(|v| 100.0 * v).collect();
    let mut teacher = |classes: usize| {
        let mut p: Vec<f32> = randn(&mut r, s.batch * classes * step.steps).into_iter().map(f32::exp).collect();
        for n in 0..s.batch {
            for t in 0..step.steps {
                let at = |c: usize| (n * classes + c) * step.steps + t;
                let total: f32 = (0..classes).map(|c| p[at(c)]).sum();
                (0..classes).for_each(|c| p[at(c)] /= total);
            }
        }
        p
    };
    let (objects, scenes) = (teacher(step.heads[0].1), teacher(step.heads[1].1));
    (waveform, objects, scenes)
}

/// A conv bias followed by batchnorm: it cannot change the network's output, and its gradient is
/// rounding noise (see tests/end_to_end.rs).
fn inert_under_batchnorm(name: &str) -> bool {
    name.starts_with("conv") && name.ends_with(".bias")
}

per_class!(fused_and_plain_training_steps_agree);
fn fused_and_plain_training_steps_agree() {
    let g = gpu();
    let (fused_model, mut fused) = soundnet8_step(Fusion::Fused);
    let (plain_model, mut plain) = soundnet8_step(Fusion::Plain);
    let (waveform, objects, scenes) = random_batch(&fused);
    let read = |t: &Tensor| t.read(g).unwrap();
    let conv_biases = |m: &Model| -> Vec<Vec<f32>> {
        (1..=m.arch.body.len()).map(|n| read(m.params.get(&format!("conv{n}.bias")))).collect()
    };
    let mut biases_after1 = (Vec::new(), Vec::new());
    for step in 1..=2 {
        // A step's losses come back from `submit` when the GPU is quick, else from `finish`.
        let losses = |s: &mut TrainStep| {
            let mut done = s.submit(g, &waveform, Heads { objects: &objects, scenes: &scenes, classes: &[] }).unwrap();
            done.extend(s.finish(g).unwrap());
            assert_eq!(done.len(), 1, "step {step}: one step's losses");
            s.head_losses(&done[0]).present_values()
        };
        let (f, p) = (losses(&mut fused), losses(&mut plain));
        assert_close(&format!("step {step} losses"), &f, &to_f64(&p), 1e-5);
        if step == 1 {
            biases_after1 = (conv_biases(&fused_model), conv_biases(&plain_model));
            let grads = fused.grads.specs.iter().zip(fused.grads.tensors.iter().zip(&plain.grads.tensors));
            for (spec, (f, p)) in grads.filter(|(spec, _)| !inert_under_batchnorm(&spec.name)) {
                assert_close(&format!("step 1 gradient of {}", spec.name), &read(f), &to_f64(&read(p)), 1e-4);
            }
        }
    }
    // (name, fused values, plain values) of each tensor of two models' NamedTensors.
    let side_by_side = |f: &NamedTensors, p: &NamedTensors| -> Vec<(String, Vec<f32>, Vec<f32>)> {
        f.specs
            .iter()
            .zip(f.tensors.iter().zip(&p.tensors))
            .map(|(s, (f, p))| (s.name.clone(), read(f), read(p)))
            .collect()
    };
    for (name, f, p) in side_by_side(&fused_model.params, &plain_model.params) {
        if inert_under_batchnorm(&name) {
            // Adam turns the noise into steps of at most ~lr, on either side: bound them instead.
            let bound = 2.01 * AdamConfig::default().lr as f32;
            assert!(f.iter().chain(&p).all(|v| v.abs() <= bound), "{name}: moved more than 2 Adam steps");
            continue;
        }
        // The fused step takes the batch statistics from the conv's per-tile sums, the plain one
        // from the conv output: the same values summed in another order. Adam's first step is
        // g / |g| per weight, so where a gradient is near zero that rounding can pick the other
        // sign; after two steps the two runs agree to about 1e-5, not to f32 rounding.
        assert_close(&format!("{name} after two steps"), &f, &to_f64(&p), 1e-4);
    }
    for (name, f, p) in side_by_side(&fused_model.running, &plain_model.running) {
        let mut expected = to_f64(&p);
        if name.ends_with("running_mean") {
            // Step 2's batch mean includes the conv bias after step 1, noise that differs between
            // the two runs: shift by the difference.
            let layer: usize = name["bn".len()..name.find('.').unwrap()].parse().unwrap();
            let (ours, theirs) = (&biases_after1.0[layer - 1], &biases_after1.1[layer - 1]);
            for ((e, o), t) in expected.iter_mut().zip(ours).zip(theirs) {
                *e += MOMENTUM * (f64::from(*o) - f64::from(*t));
            }
        }
        assert_close(&format!("{name} after two steps"), &f, &expected, 1e-4);
    }
}

per_class!(fused_training_step_has_fewer_launches_and_bytes);
fn fused_training_step_has_fewer_launches_and_bytes() {
    let (model, fused) = soundnet8_step(Fusion::Fused);
    let (_, plain) = soundnet8_step(Fusion::Plain);
    let ((fused_fwd, fused_bwd), (plain_fwd, plain_bwd)) = (fused.pass_launches(), plain.pass_launches());
    let count = |launches: &[sn_wgpu::gpu::Dispatch], kernel: &str| {
        launches.iter().filter(|d| d.label().starts_with(kernel)).count()
    };
    // Per body layer the fused op drops the ReLU launch, and the pool launch where it pools, each
    // way; backward, the GPU kernels add a merge of the channel sums where they cut a channel
    // into several runs.
    let layers = model.arch.body.len();
    let pooled = model.arch.body.iter().filter(|l| l.pool.is_some()).count();
    let merges = count(fused_bwd, "bn_relu_pool::sums_merge");
    assert_eq!(plain_fwd.len() - fused_fwd.len(), layers + pooled, "forward launches");
    assert_eq!(plain_bwd.len() + merges - fused_bwd.len(), layers + pooled, "backward launches");
    for launches in [fused_fwd, fused_bwd] {
        assert_eq!(
            count(launches, "relu::") + count(launches, "maxpool1d::"),
            0,
            "fused steps run no plain ReLU or pool"
        );
    }
    assert!(
        fused.activation_bytes < plain.activation_bytes,
        "fused {} bytes of activations, plain {}",
        fused.activation_bytes,
        plain.activation_bytes
    );
    println!(
        "soundnet8-narrow8 batch 2: forward {} -> {} launches, backward {} -> {}, activations {} -> {} bytes",
        plain_fwd.len(),
        fused_fwd.len(),
        plain_bwd.len(),
        fused_bwd.len(),
        plain.activation_bytes,
        fused.activation_bytes
    );
}

#[test]
fn eval_mode_keeps_the_plain_layers() {
    // Feature extraction needs every conv{n} output: eval passes never fuse.
    let g = gpu();
    let model = Model::init(g, soundnet8().narrow(8, 10, 7), 0).unwrap();
    let input = Tensor::zeros(g, &[1, 1, model.arch.min_samples()], "waveform").unwrap();
    let mut tape = sn_wgpu::autograd::Tape::new(g);
    let x = tape.input(&input);
    let out = model.forward(&mut tape, x, BnMode::Eval, None).unwrap();
    let names: Vec<&str> = out.layers.iter().map(|(n, _)| n.as_str()).collect();
    let expected = model.layer_names();
    assert_eq!(names, expected[..expected.len() - 2]);
}
