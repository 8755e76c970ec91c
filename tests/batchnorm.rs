//! Batch normalization: GPU against the f64 reference (training, eval, running statistics,
//! gradient accumulation), finite differences of the reference backward, and the PyTorch fixture.

mod common;
use common::*;
use sn_wgpu::ops::batchnorm::{self, reference, Affine, BatchNormShape, Grads, RunningStats, Saved};
use sn_wgpu::ops::batchnorm::{DEFAULT_EPS, DEFAULT_MOMENTUM};
use sn_wgpu::Tensor;

const EPS: f64 = DEFAULT_EPS as f64;
const MOMENTUM: f64 = DEFAULT_MOMENTUM as f64;

struct Inputs {
    shape: BatchNormShape,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dy: Vec<f32>,
}

/// Random inputs; `x` is `offset + N(0, 1)`, running variances are positive.
fn random_inputs(seed: u64, (n, c, l): (usize, usize, usize), offset: f32) -> Inputs {
    let mut r = rng(seed);
    let shape = BatchNormShape::new(n, c, l).unwrap();
    Inputs {
        shape,
        x: randn(&mut r, shape.numel()).into_iter().map(|v| v + offset).collect(),
        gamma: randn(&mut r, c),
        beta: randn(&mut r, c),
        running_mean: randn(&mut r, c),
        running_var: randn(&mut r, c).into_iter().map(|v| 0.5 + v.abs()).collect(),
        dy: randn(&mut r, shape.numel()),
    }
}

/// What the GPU produced for one training step (forward, then backward).
struct TrainOutputs {
    y: Vec<f32>,
    save_mean: Vec<f32>,
    save_invstd: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// Runs forward (training) and backward. With `accumulate_onto = Some((dgamma, dbeta))` the
/// parameter gradients start from those values and are accumulated; otherwise they start as NaN
/// and are overwritten.
fn run_train(inp: &Inputs, accumulate_onto: Option<(&[f32], &[f32])>) -> TrainOutputs {
    let s = inp.shape;
    let (dims, c) = ([s.n, s.c, s.l], [s.c]);
    let (x, dy) = (upload(&inp.x, &dims), upload(&inp.dy, &dims));
    let (gamma, beta) = (upload(&inp.gamma, &c), upload(&inp.beta, &c));
    let (running_mean, running_var) = (upload(&inp.running_mean, &c), upload(&inp.running_var, &c));
    let (y, dx, save_mean, save_invstd) = (poisoned(&dims), poisoned(&dims), poisoned(&c), poisoned(&c));
    let channel_sums = poisoned(&[2, s.c]);
    let (dgamma, dbeta) = match accumulate_onto {
        Some((g, b)) => (upload(g, &c), upload(b, &c)),
        None => (poisoned(&c), poisoned(&c)),
    };
    run(|enc| {
        let g = gpu();
        batchnorm::encode_forward_train(
            g,
            enc,
            &s,
            (&x, &y),
            Affine { gamma: &gamma, beta: &beta },
            batchnorm::TrainStats {
                running: RunningStats { mean: &running_mean, var: &running_var },
                saved: Saved { mean: &save_mean, invstd: &save_invstd },
                eps: DEFAULT_EPS,
                momentum: DEFAULT_MOMENTUM,
            },
        )
        .unwrap();
        batchnorm::encode_backward(
            g,
            enc,
            &s,
            (&x, &dy),
            &gamma,
            Saved { mean: &save_mean, invstd: &save_invstd },
            Grads {
                dx: &dx,
                dgamma: &dgamma,
                dbeta: &dbeta,
                channel_sums: &channel_sums,
                accumulate: accumulate_onto.is_some(),
            },
        )
        .unwrap();
    });
    let read = |t: &Tensor| t.read(gpu()).unwrap();
    TrainOutputs {
        y: read(&y),
        save_mean: read(&save_mean),
        save_invstd: read(&save_invstd),
        running_mean: read(&running_mean),
        running_var: read(&running_var),
        dx: read(&dx),
        dgamma: read(&dgamma),
        dbeta: read(&dbeta),
    }
}

fn reference_train(inp: &Inputs) -> (reference::TrainOutput, reference::Grads) {
    let s = &inp.shape;
    let (x, gamma) = (to_f64(&inp.x), to_f64(&inp.gamma));
    let fwd = reference::forward_train(
        s,
        &x,
        &gamma,
        &to_f64(&inp.beta),
        (&to_f64(&inp.running_mean), &to_f64(&inp.running_var)),
        (EPS, MOMENTUM),
    );
    let grads = reference::backward(s, &x, &to_f64(&inp.dy), &gamma, &fwd.mean, &fwd.invstd);
    (fwd, grads)
}

/// GPU training step against the reference; `y_tol` is the forward tolerance for `y`.
fn check_train(inp: &Inputs, y_tol: f64) {
    let s = inp.shape;
    let what = format!("batchnorm [N={}, C={}, L={}]", s.n, s.c, s.l);
    let gpu_out = run_train(inp, None);
    let (fwd, grads) = reference_train(inp);
    assert_close(&format!("{what} y"), &gpu_out.y, &fwd.y, y_tol);
    assert_close(&format!("{what} save_mean"), &gpu_out.save_mean, &fwd.mean, 1e-5);
    assert_close(&format!("{what} save_invstd"), &gpu_out.save_invstd, &fwd.invstd, 1e-5);
    assert_close(&format!("{what} running_mean"), &gpu_out.running_mean, &fwd.running_mean, 1e-5);
    assert_close(&format!("{what} running_var"), &gpu_out.running_var, &fwd.running_var, 1e-5);
    assert_close(&format!("{what} dx"), &gpu_out.dx, &grads.dx, 1e-4);
    assert_close(&format!("{what} dgamma"), &gpu_out.dgamma, &grads.dgamma, 1e-4);
    assert_close(&format!("{what} dbeta"), &gpu_out.dbeta, &grads.dbeta, 1e-4);
}

#[test]
fn training_matches_reference_on_awkward_shapes() {
    let shapes = [
        (2, 1, 3), // one channel
        (4, 3, 1), // L = 1, statistics over the batch only
        (3, 5, 7), // odd everything
        // M = 3. (At M = 2 every xhat is +-1 whatever x is, so dx is ~0 and only rounding is left
        // to compare.)
        (1, 2, 3),
        (2, 300, 3),  // more channels than a workgroup has invocations, not a multiple of 256
        (3, 2, 5000), // M = 15,000: each invocation sums ~59 values before the tree reduction
        (1, 3, 257),  // M one past the workgroup size
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        check_train(&random_inputs(i as u64, shape, 0.0), 1e-5);
    }
    let mut r = rng(100);
    for seed in 0..4 {
        let shape = (1 + uniform(&mut r, 4), 1 + uniform(&mut r, 40), 1 + uniform(&mut r, 300));
        let shape = if shape.0 * shape.2 == 1 { (2, shape.1, 1) } else { shape };
        check_train(&random_inputs(200 + seed, shape, 0.0), 1e-5);
    }
}

fn uniform(r: &mut rand::rngs::StdRng, n: usize) -> usize {
    use rand::Rng;
    r.random_range(0..n)
}

#[test]
fn large_mean_offset_keeps_statistics_accurate() {
    // x = 1000 + N(0, 1): E[x^2] - E[x]^2 would cancel ~6 digits here and miss var by percents;
    // the two-pass variance must keep invstd within 1e-5. y is held to 1e-4: y depends on
    // x - mean, and the f32 mean itself is only good to half an ulp of 1000 (3e-5 of one std),
    // which is what PyTorch's f32 kernels give too.
    let inp = random_inputs(7, (3, 4, 5000), 1000.0);
    check_train(&inp, 1e-4);
}

#[test]
fn running_statistics_follow_consecutive_steps() {
    let s = BatchNormShape::new(2, 5, 33).unwrap();
    let (dims, c) = ([s.n, s.c, s.l], [s.c]);
    let first = random_inputs(11, (s.n, s.c, s.l), 0.0);
    let (gamma, beta) = (upload(&first.gamma, &c), upload(&first.beta, &c));
    let (running_mean, running_var) = (upload(&first.running_mean, &c), upload(&first.running_var, &c));
    let mut r = rng(12);
    // Each step's batch has its own mean and spread, so each update moves the running stats.
    let batches: Vec<Vec<f32>> = (0..3)
        .map(|step| randn(&mut r, s.numel()).into_iter().map(|v| 2.0 * v * (step as f32 + 1.0) + step as f32).collect())
        .collect();
    let xs: Vec<Tensor> = batches.iter().map(|b| upload(b, &dims)).collect();
    let ys: Vec<Tensor> = (0..3).map(|_| poisoned(&dims)).collect();
    let (save_mean, save_invstd) = (poisoned(&c), poisoned(&c));
    run(|enc| {
        for (x, y) in xs.iter().zip(&ys) {
            batchnorm::encode_forward_train(
                gpu(),
                enc,
                &s,
                (x, y),
                Affine { gamma: &gamma, beta: &beta },
                batchnorm::TrainStats {
                    running: RunningStats { mean: &running_mean, var: &running_var },
                    saved: Saved { mean: &save_mean, invstd: &save_invstd },
                    eps: DEFAULT_EPS,
                    momentum: DEFAULT_MOMENTUM,
                },
            )
            .unwrap();
        }
    });
    let (g64, b64) = (to_f64(&first.gamma), to_f64(&first.beta));
    let (mut rm, mut rv) = (to_f64(&first.running_mean), to_f64(&first.running_var));
    for (step, (batch, y)) in batches.iter().zip(&ys).enumerate() {
        let fwd = reference::forward_train(&s, &to_f64(batch), &g64, &b64, (&rm, &rv), (EPS, MOMENTUM));
        assert_close(&format!("step {step} y"), &y.read(gpu()).unwrap(), &fwd.y, 1e-5);
        (rm, rv) = (fwd.running_mean, fwd.running_var);
    }
    assert_close("running_mean after 3 steps", &running_mean.read(gpu()).unwrap(), &rm, 1e-5);
    assert_close("running_var after 3 steps", &running_var.read(gpu()).unwrap(), &rv, 1e-5);
}

#[test]
fn eval_matches_reference() {
    // M = 1 is fine in eval mode: nothing is estimated from the batch.
    for (i, shape) in [(1, 3, 1), (2, 7, 19), (3, 300, 5)].into_iter().enumerate() {
        let inp = random_inputs(30 + i as u64, shape, 0.5);
        let s = inp.shape;
        let (dims, c) = ([s.n, s.c, s.l], [s.c]);
        let x = upload(&inp.x, &dims);
        let (gamma, beta) = (upload(&inp.gamma, &c), upload(&inp.beta, &c));
        let (running_mean, running_var) = (upload(&inp.running_mean, &c), upload(&inp.running_var, &c));
        let y = poisoned(&dims);
        run(|enc| {
            batchnorm::encode_forward_eval(
                gpu(),
                enc,
                &s,
                (&x, &y),
                Affine { gamma: &gamma, beta: &beta },
                RunningStats { mean: &running_mean, var: &running_var },
                DEFAULT_EPS,
            )
            .unwrap();
        });
        let expected = reference::forward_eval(
            &s,
            &to_f64(&inp.x),
            &to_f64(&inp.gamma),
            &to_f64(&inp.beta),
            &to_f64(&inp.running_mean),
            &to_f64(&inp.running_var),
            EPS,
        );
        assert_close(&format!("eval {shape:?} y"), &y.read(gpu()).unwrap(), &expected, 1e-5);
        // Eval must leave the running statistics alone.
        assert_eq!(running_mean.read(gpu()).unwrap(), inp.running_mean);
        assert_eq!(running_var.read(gpu()).unwrap(), inp.running_var);
    }
}

#[test]
fn accumulate_adds_parameter_grads_while_dx_uses_this_batch() {
    let inp = random_inputs(40, (3, 6, 21), 0.0);
    let mut r = rng(41);
    let (old_dgamma, old_dbeta) = (randn(&mut r, 6), randn(&mut r, 6));
    let out = run_train(&inp, Some((&old_dgamma, &old_dbeta)));
    let (_, grads) = reference_train(&inp);
    let plus = |old: &[f32], new: &[f64]| old.iter().zip(new).map(|(&o, n)| f64::from(o) + n).collect::<Vec<f64>>();
    assert_close("accumulated dgamma", &out.dgamma, &plus(&old_dgamma, &grads.dgamma), 1e-4);
    assert_close("accumulated dbeta", &out.dbeta, &plus(&old_dbeta, &grads.dbeta), 1e-4);
    assert_close("dx with accumulate", &out.dx, &grads.dx, 1e-4);
}

#[test]
fn refuses_one_value_per_channel_in_training_and_wrong_shapes() {
    let g = gpu();
    let s = BatchNormShape::new(1, 3, 1).unwrap();
    let (x, c) = (upload(&[0.0; 3], &[1, 3, 1]), upload(&[1.0; 3], &[3]));
    let mut enc = g.encoder("errors");
    let err = batchnorm::encode_forward_train(
        g,
        &mut enc,
        &s,
        (&x, &x),
        Affine { gamma: &c, beta: &c },
        batchnorm::TrainStats {
            running: RunningStats { mean: &c, var: &c },
            saved: Saved { mean: &c, invstd: &c },
            eps: DEFAULT_EPS,
            momentum: DEFAULT_MOMENTUM,
        },
    )
    .unwrap_err();
    assert!(format!("{err}").contains("one value per channel"), "{err}");

    let s = BatchNormShape::new(2, 3, 1).unwrap();
    let err = batchnorm::encode_forward_eval(
        g,
        &mut enc,
        &s,
        (&x, &x),
        Affine { gamma: &c, beta: &c },
        RunningStats { mean: &c, var: &c },
        DEFAULT_EPS,
    )
    .unwrap_err();
    assert!(format!("{err}").contains("expected [2, 3, 1]"), "{err}");
    assert!(BatchNormShape::new(2, 0, 4).is_err());
}

/// The training forward as a function of one of (x, gamma, beta), the others fixed.
fn check_finite_differences(which: &str) {
    let inp = random_inputs(50, (2, 3, 4), 0.3);
    let s = inp.shape;
    let (x, gamma, beta) = (to_f64(&inp.x), to_f64(&inp.gamma), to_f64(&inp.beta));
    let (rm, rv) = (to_f64(&inp.running_mean), to_f64(&inp.running_var));
    let w = to_f64(&inp.dy);
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
        dot(&reference::forward_train(&s, x, gamma, beta, (&rm, &rv), (EPS, MOMENTUM)).y, &w)
    };
    let fwd = reference::forward_train(&s, &x, &gamma, &beta, (&rm, &rv), (EPS, MOMENTUM));
    let grads = reference::backward(&s, &x, &w, &gamma, &fwd.mean, &fwd.invstd);
    let (numeric, analytic) = match which {
        "dx" => (numeric_grad(|v| loss(v, &gamma, &beta), &x, 1e-6), grads.dx),
        "dgamma" => (numeric_grad(|v| loss(&x, v, &beta), &gamma, 1e-6), grads.dgamma),
        "dbeta" => (numeric_grad(|v| loss(&x, &gamma, v), &beta, 1e-6), grads.dbeta),
        _ => unreachable!(),
    };
    let e = rel_err_f64(&analytic, &numeric);
    assert!(e < 1e-7, "{which}: finite differences disagree with the reference backward by {e:.3e}");
}

#[test]
fn reference_backward_matches_finite_differences() {
    for which in ["dx", "dgamma", "dbeta"] {
        check_finite_differences(which);
    }
}

#[test]
fn matches_pytorch_fixture() {
    let f = Fixture::load("batchnorm");
    for case in f.cases() {
        let t = |name: &str| f.tensor(&format!("{case}.{name}")).0;
        let (x, dims) = f.tensor(&format!("{case}.x"));
        let s = BatchNormShape::new(dims[0], dims[1], dims[2]).unwrap();
        let eps: f32 = f.meta(&format!("{case}.eps"));
        let c = [s.c];
        let (xg, gamma, beta) = (upload(&x, &dims), upload(&t("gamma"), &c), upload(&t("beta"), &c));
        let (running_mean, running_var) = (upload(&t("running_mean"), &c), upload(&t("running_var"), &c));
        let y = poisoned(&dims);
        let mode: String = f.meta(&format!("{case}.mode"));
        if mode == "eval" {
            run(|enc| {
                batchnorm::encode_forward_eval(
                    gpu(),
                    enc,
                    &s,
                    (&xg, &y),
                    Affine { gamma: &gamma, beta: &beta },
                    RunningStats { mean: &running_mean, var: &running_var },
                    eps,
                )
                .unwrap();
            });
            assert_close(&format!("{case} y"), &y.read(gpu()).unwrap(), &to_f64(&t("y")), 1e-5);
            continue;
        }
        let momentum: f32 = f.meta(&format!("{case}.momentum"));
        let dy = upload(&t("dy"), &dims);
        let (save_mean, save_invstd, dgamma, dbeta) = (poisoned(&c), poisoned(&c), poisoned(&c), poisoned(&c));
        let (dx, channel_sums) = (poisoned(&dims), poisoned(&[2, s.c]));
        run(|enc| {
            let g = gpu();
            batchnorm::encode_forward_train(
                g,
                enc,
                &s,
                (&xg, &y),
                Affine { gamma: &gamma, beta: &beta },
                batchnorm::TrainStats {
                    running: RunningStats { mean: &running_mean, var: &running_var },
                    saved: Saved { mean: &save_mean, invstd: &save_invstd },
                    eps,
                    momentum,
                },
            )
            .unwrap();
            batchnorm::encode_backward(
                g,
                enc,
                &s,
                (&xg, &dy),
                &gamma,
                Saved { mean: &save_mean, invstd: &save_invstd },
                Grads { dx: &dx, dgamma: &dgamma, dbeta: &dbeta, channel_sums: &channel_sums, accumulate: false },
            )
            .unwrap();
        });
        let read = |t: &Tensor| t.read(gpu()).unwrap();
        assert_close(&format!("{case} y"), &read(&y), &to_f64(&t("y")), 1e-5);
        assert_close(&format!("{case} mean"), &read(&save_mean), &to_f64(&t("mean")), 1e-5);
        assert_close(&format!("{case} invstd"), &read(&save_invstd), &to_f64(&t("invstd")), 1e-5);
        assert_close(&format!("{case} running_mean"), &read(&running_mean), &to_f64(&t("running_mean_out")), 1e-5);
        assert_close(&format!("{case} running_var"), &read(&running_var), &to_f64(&t("running_var_out")), 1e-5);
        assert_close(&format!("{case} dx"), &read(&dx), &to_f64(&t("dx")), 1e-4);
        assert_close(&format!("{case} dgamma"), &read(&dgamma), &to_f64(&t("dgamma")), 1e-4);
        assert_close(&format!("{case} dbeta"), &read(&dbeta), &to_f64(&t("dbeta")), 1e-4);
    }
}
