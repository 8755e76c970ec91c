//! The teacher-student losses, KL divergence and the squared error on the probabilities
//! (`--loss l2`), each through the same battery: GPU against the f64 reference (awkward shapes,
//! zeros and one-hot teachers, teachers that do not sum to one, huge logits, many columns), every
//! output poisoned first; finite differences on the reference; and each loss's PyTorch fixture.

mod common;
use common::*;
use rand::rngs::StdRng;
use rand::Rng;
use sn_wgpu::ops::teacher_loss::{self, reference, ColumnShape, TeacherLoss};

/// The PyTorch fixture of each loss (`tools/fixtures/teacher_loss.py`).
fn fixture_name(kind: TeacherLoss) -> &'static str {
    match kind {
        TeacherLoss::Kl => "kl_div",
        TeacherLoss::L2 => "l2_prob",
    }
}

/// Teacher probabilities: a softmax over the classes of random logits, per column.
fn random_teacher(r: &mut StdRng, shape: &ColumnShape) -> Vec<f32> {
    let logits = to_f64(&randn(r, shape.n * shape.c * shape.t));
    let mut p = vec![0.0f32; logits.len()];
    for n in 0..shape.n {
        for t in 0..shape.t {
            let idx: Vec<usize> = (0..shape.c).map(|c| (n * shape.c + c) * shape.t + t).collect();
            let total: f64 = idx.iter().map(|&i| logits[i].exp()).sum();
            for &i in &idx {
                p[i] = (logits[i].exp() / total) as f32;
            }
        }
    }
    p
}

/// Runs forward and backward of `kind` on the GPU, every output poisoned first: (loss, dZ).
fn gpu_loss_and_grad(kind: TeacherLoss, shape: ColumnShape, p: &[f32], z: &[f32], grad_scale: f32) -> (f32, Vec<f32>) {
    let dims = shape.dims();
    let (pg, zg) = (upload(p, &dims), upload(z, &dims));
    let (column_loss, loss, dz) = (poisoned(&[shape.columns()]), poisoned(&[1]), poisoned(&dims));
    run(|enc| {
        teacher_loss::encode_forward(gpu(), enc, kind, &shape, (&pg, &zg), &column_loss, &loss).unwrap();
        teacher_loss::encode_backward(gpu(), enc, kind, &shape, (&pg, &zg), &dz, grad_scale).unwrap();
    });
    (loss.read(gpu()).unwrap()[0], dz.read(gpu()).unwrap())
}

/// Both losses forward and backward on the GPU, each compared with its reference.
fn check(what: &str, shape: ColumnShape, p: &[f32], z: &[f32], grad_scale: f32) {
    let (p64, z64) = (to_f64(p), to_f64(z));
    for kind in TeacherLoss::ALL {
        let (loss, dz) = gpu_loss_and_grad(kind, shape, p, z, grad_scale);
        let want_loss = reference::forward(kind, &shape, &p64, &z64);
        let want_dz = reference::backward(kind, &shape, &p64, &z64, f64::from(grad_scale));
        assert_close(&format!("{kind} {what} {shape:?} loss"), &[loss], &[want_loss], 1e-5);
        assert_close(&format!("{kind} {what} {shape:?} dZ"), &dz, &want_dz, 1e-4);
    }
}

fn check_random(shape: ColumnShape, seed: u64) {
    let mut r = rng(seed);
    let p = random_teacher(&mut r, &shape);
    let z = randn(&mut r, shape.n * shape.c * shape.t);
    check("random", shape, &p, &z, 1.0);
}

#[test]
fn matches_reference_on_soundnet_and_awkward_shapes() {
    let shapes = [
        (2, 1000, 3), // SoundNet's object head
        (3, 401, 2),  // SoundNet's scene head
        (1, 401, 1),  // T = 1
        (2, 257, 1),  // one channel past the workgroup size
        (1, 1, 4),    // a single class: softmax is 1 and so is the teacher, so loss and dZ are 0
        (3, 5, 7),
    ];
    for (i, (n, c, t)) in shapes.into_iter().enumerate() {
        check_random(ColumnShape { n, c, t }, i as u64);
    }
}

#[test]
fn matches_reference_on_random_shapes() {
    let mut r = rng(100);
    for seed in 0..4 {
        let shape = ColumnShape { n: r.random_range(1..4), c: r.random_range(2..600), t: r.random_range(1..6) };
        check_random(shape, 200 + seed);
    }
}

#[test]
fn teacher_zeros_and_one_hot_rows() {
    let shape = ColumnShape { n: 2, c: 401, t: 3 };
    let mut r = rng(7);
    let mut p = random_teacher(&mut r, &shape);
    let z = randn(&mut r, p.len());
    let at = |n: usize, c: usize, t: usize| (n * shape.c + c) * shape.t + t;
    // Column (0, 0): one-hot on class 17.
    for c in 0..shape.c {
        p[at(0, c, 0)] = if c == 17 { 1.0 } else { 0.0 };
    }
    // Column (1, 2): half the classes exactly zero, the rest renormalised.
    let kept: f32 = (0..shape.c).filter(|c| c % 2 == 1).map(|c| p[at(1, c, 2)]).sum();
    for c in 0..shape.c {
        let i = at(1, c, 2);
        p[i] = if c % 2 == 0 { 0.0 } else { p[i] / kept };
    }
    check("zeros and one-hot", shape, &p, &z, 1.0);
}

#[test]
fn teacher_rows_that_do_not_sum_to_one_and_grad_scale() {
    let shape = ColumnShape { n: 2, c: 300, t: 2 };
    let mut r = rng(8);
    let p: Vec<f32> = random_teacher(&mut r, &shape).into_iter().map(|v| 1.3 * v).collect();
    let z = randn(&mut r, p.len());
    check("unnormalised teacher", shape, &p, &z, -2.5);
}

#[test]
fn huge_logits_stay_finite_and_right() {
    let shape = ColumnShape { n: 2, c: 1000, t: 2 };
    let mut r = rng(9);
    let p = random_teacher(&mut r, &shape);
    // Logits of +-1e4: exp() of them overflows f32 without the max shift.
    let z: Vec<f32> = randn(&mut r, p.len()).into_iter().map(|v| if v > 0.0 { 1e4 } else { -1e4 } + v).collect();
    check("huge logits", shape, &p, &z, 1.0);
}

#[test]
fn many_columns_final_reduction_takes_several_strides() {
    // 3,000 columns: each of the reducing workgroup's 256 invocations adds about 12 of them.
    check_random(ColumnShape { n: 3, c: 7, t: 1000 }, 11);
}

#[test]
fn columns_beyond_65535_workgroups_use_the_2d_grid() {
    check_random(ColumnShape { n: 65_600, c: 3, t: 1 }, 12);
}

#[test]
fn rejects_mismatched_shapes() {
    let shape = ColumnShape { n: 2, c: 5, t: 3 };
    let good = upload(&[0.0; 30], &[2, 5, 3]);
    let wrong = upload(&[0.0; 30], &[2, 3, 5]);
    let (column_loss, loss, dz) = (poisoned(&[6]), poisoned(&[1]), poisoned(&[2, 5, 3]));
    let mut enc = gpu().encoder("rejects");
    for kind in TeacherLoss::ALL {
        let err = teacher_loss::encode_forward(gpu(), &mut enc, kind, &shape, (&good, &wrong), &column_loss, &loss)
            .unwrap_err()
            .to_string();
        assert!(err.contains("student logits") && err.contains(kind.op()), "{err}");
        let err = teacher_loss::encode_forward(gpu(), &mut enc, kind, &shape, (&good, &good), &poisoned(&[5]), &loss)
            .unwrap_err();
        assert!(err.to_string().contains("scratch"), "{err}");
        let err = teacher_loss::encode_backward(gpu(), &mut enc, kind, &shape, (&wrong, &good), &dz, 1.0).unwrap_err();
        assert!(err.to_string().contains("teacher"), "{err}");
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    let shape = ColumnShape { n: 2, c: 5, t: 3 };
    let mut r = rng(13);
    let mut p = to_f64(&random_teacher(&mut r, &shape));
    // A zero, and columns whose mass is not 1, since the gradient must be exact for those too.
    p[4] = 0.0;
    p.iter_mut().skip(10).for_each(|v| *v *= 0.7);
    let z = to_f64(&randn(&mut r, p.len()));
    for kind in TeacherLoss::ALL {
        let numeric = numeric_grad(|z| reference::forward(kind, &shape, &p, z), &z, 1e-6);
        let analytic = reference::backward(kind, &shape, &p, &z, 1.0);
        assert!(rel_err_f64(&analytic, &numeric) < 1e-8, "{kind}: error {}", rel_err_f64(&analytic, &numeric));
        // The upstream gradient scales the result linearly.
        let scaled: Vec<f64> = numeric.iter().map(|g| 3.0 * g).collect();
        assert!(rel_err_f64(&reference::backward(kind, &shape, &p, &z, 3.0), &scaled) < 1e-8, "{kind}");
    }
}

#[test]
fn matches_pytorch_fixture() {
    for kind in TeacherLoss::ALL {
        let f = Fixture::load(fixture_name(kind));
        for case in f.cases() {
            let (p, dims) = f.tensor(&format!("{case}.p"));
            let (z, _) = f.tensor(&format!("{case}.z"));
            let shape = ColumnShape { n: dims[0], c: dims[1], t: dims[2] };
            let grad_scale: f32 = f.meta(&format!("{case}.grad_scale"));
            let (loss, dz) = gpu_loss_and_grad(kind, shape, &p, &z, grad_scale);
            let (want_loss, want_dz) = (f.tensor(&format!("{case}.loss")).0, f.tensor(&format!("{case}.dz")).0);
            assert_close(&format!("{kind} {case} loss"), &[loss], &to_f64(&want_loss), 1e-5);
            assert_close(&format!("{kind} {case} dz"), &dz, &to_f64(&want_dz), 1e-4);
        }
    }
}

/// `train --labels` trains with the KL kernel on one-hot rows: on PyTorch's F.cross_entropy (the
/// fixture's labels stored as those rows), its loss and dZ must be cross-entropy's.
#[test]
fn one_hot_kl_is_pytorch_cross_entropy() {
    let f = Fixture::load("cross_entropy");
    for case in f.cases() {
        let (p, dims) = f.tensor(&format!("{case}.p"));
        let (z, _) = f.tensor(&format!("{case}.z"));
        let shape = ColumnShape { n: dims[0], c: dims[1], t: dims[2] };
        let grad_scale: f32 = f.meta(&format!("{case}.grad_scale"));
        let (loss, dz) = gpu_loss_and_grad(TeacherLoss::Kl, shape, &p, &z, grad_scale);
        let (want_loss, want_dz) = (f.tensor(&format!("{case}.loss")).0, f.tensor(&format!("{case}.dz")).0);
        assert_close(&format!("cross-entropy {case} loss"), &[loss], &to_f64(&want_loss), 1e-5);
        assert_close(&format!("cross-entropy {case} dz"), &dz, &to_f64(&want_dz), 1e-4);
    }
}

/// The same on random shapes against cross-entropy written out in f64, `-log softmax(Z)[label]`
/// and `softmax(Z) - onehot`, a formula of its own rather than the KL reference's.
#[test]
fn one_hot_kl_is_cross_entropy_on_random_shapes() {
    let mut r = rng(11);
    for (n, c, t) in [(1, 2, 1), (3, 10, 4), (2, 51, 3), (5, 257, 1), (1, 7, 9)] {
        let shape = ColumnShape { n, c, t };
        let labels: Vec<usize> = (0..n).map(|_| r.random_range(0..c)).collect();
        let mut p = vec![0.0f32; n * c * t];
        for (i, &label) in labels.iter().enumerate() {
            for s in 0..t {
                p[(i * c + label) * t + s] = 1.0;
            }
        }
        let z: Vec<f32> = randn(&mut r, n * c * t).iter().map(|v| 4.0 * v).collect();
        let (mut want_loss, mut want_dz) = (0.0, vec![0.0; z.len()]);
        let columns = (n * t) as f64;
        for (i, &label) in labels.iter().enumerate() {
            for s in 0..t {
                let at = |k: usize| (i * c + k) * t + s;
                let max = (0..c).map(|k| f64::from(z[at(k)])).fold(f64::MIN, f64::max);
                let sum: f64 = (0..c).map(|k| (f64::from(z[at(k)]) - max).exp()).sum();
                want_loss += -(f64::from(z[at(label)]) - max - sum.ln()) / columns;
                for k in 0..c {
                    let q = (f64::from(z[at(k)]) - max).exp() / sum;
                    want_dz[at(k)] = 0.5 * (q - if k == label { 1.0 } else { 0.0 }) / columns;
                }
            }
        }
        let (loss, dz) = gpu_loss_and_grad(TeacherLoss::Kl, shape, &p, &z, 0.5);
        assert_close(&format!("cross-entropy {shape:?} loss"), &[loss], &[want_loss], 1e-5);
        assert_close(&format!("cross-entropy {shape:?} dz"), &dz, &want_dz, 1e-4);
    }
}
