//! Squared-error loss on the probabilities (`--loss l2`): GPU against the f64 reference (awkward
//! shapes, zeros and one-hot teachers, huge logits, many columns), finite differences on the
//! reference, and the PyTorch fixture.

mod common;
use common::*;
use rand::rngs::StdRng;
use rand::Rng;
use sn_wgpu::ops::kl_div::KlDivShape;
use sn_wgpu::ops::l2_prob;

/// Teacher probabilities: a softmax over the classes of random logits, per column.
fn random_teacher(r: &mut StdRng, shape: &KlDivShape) -> Vec<f32> {
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

/// Runs forward and backward on the GPU and compares both with the reference.
fn check(what: &str, shape: KlDivShape, p: &[f32], z: &[f32], grad_scale: f32) {
    let dims = shape.dims();
    let (pg, zg) = (upload(p, &dims), upload(z, &dims));
    let (column_loss, loss, dz) = (poisoned(&[shape.columns()]), poisoned(&[1]), poisoned(&dims));
    run(|enc| {
        l2_prob::encode_forward(gpu(), enc, &shape, &pg, &zg, &column_loss, &loss).unwrap();
        l2_prob::encode_backward(gpu(), enc, &shape, &pg, &zg, &dz, grad_scale).unwrap();
    });
    let (p64, z64) = (to_f64(p), to_f64(z));
    let want_loss = l2_prob::reference::forward(&shape, &p64, &z64);
    let want_dz = l2_prob::reference::backward(&shape, &p64, &z64, f64::from(grad_scale));
    assert_close(&format!("{what} {shape:?} loss"), &loss.read(gpu()).unwrap(), &[want_loss], 1e-5);
    assert_close(&format!("{what} {shape:?} dZ"), &dz.read(gpu()).unwrap(), &want_dz, 1e-4);
}

fn check_random(shape: KlDivShape, seed: u64) {
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
        (1, 1, 4),    // a single class: softmax is 1, and dZ is 0
        (3, 5, 7),
    ];
    for (i, (n, c, t)) in shapes.into_iter().enumerate() {
        check_random(KlDivShape { n, c, t }, i as u64);
    }
}

#[test]
fn matches_reference_on_random_shapes() {
    let mut r = rng(100);
    for seed in 0..4 {
        let shape = KlDivShape { n: r.random_range(1..4), c: r.random_range(2..600), t: r.random_range(1..6) };
        check_random(shape, 200 + seed);
    }
}

#[test]
fn teacher_zeros_and_one_hot_rows() {
    let shape = KlDivShape { n: 2, c: 401, t: 3 };
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
    let shape = KlDivShape { n: 2, c: 300, t: 2 };
    let mut r = rng(8);
    let p: Vec<f32> = random_teacher(&mut r, &shape).into_iter().map(|v| 1.3 * v).collect();
    let z = randn(&mut r, p.len());
    check("unnormalised teacher", shape, &p, &z, -2.5);
}

#[test]
fn huge_logits_stay_finite_and_right() {
    let shape = KlDivShape { n: 2, c: 1000, t: 2 };
    let mut r = rng(9);
    let p = random_teacher(&mut r, &shape);
    // Logits of +-1e4: exp() of them overflows f32 without the max shift.
    let z: Vec<f32> = randn(&mut r, p.len()).into_iter().map(|v| if v > 0.0 { 1e4 } else { -1e4 } + v).collect();
    check("huge logits", shape, &p, &z, 1.0);
}

#[test]
fn many_columns_final_reduction_takes_several_strides() {
    // 3,000 columns: each of the reducing workgroup's 256 invocations adds about 12 of them.
    check_random(KlDivShape { n: 3, c: 7, t: 1000 }, 11);
}

#[test]
fn columns_beyond_65535_workgroups_use_the_2d_grid() {
    check_random(KlDivShape { n: 65_600, c: 3, t: 1 }, 12);
}

#[test]
fn rejects_mismatched_shapes() {
    let shape = KlDivShape { n: 2, c: 5, t: 3 };
    let good = upload(&[0.0; 30], &[2, 5, 3]);
    let wrong = upload(&[0.0; 30], &[2, 3, 5]);
    let (column_loss, loss, dz) = (poisoned(&[6]), poisoned(&[1]), poisoned(&[2, 5, 3]));
    let mut enc = gpu().encoder("rejects");
    let err = l2_prob::encode_forward(gpu(), &mut enc, &shape, &good, &wrong, &column_loss, &loss).unwrap_err();
    assert!(err.to_string().contains("student logits"), "{err}");
    let err = l2_prob::encode_forward(gpu(), &mut enc, &shape, &good, &good, &poisoned(&[5]), &loss).unwrap_err();
    assert!(err.to_string().contains("scratch"), "{err}");
    let err = l2_prob::encode_backward(gpu(), &mut enc, &shape, &wrong, &good, &dz, 1.0).unwrap_err();
    assert!(err.to_string().contains("teacher"), "{err}");
}

#[test]
fn reference_backward_matches_finite_differences() {
    let shape = KlDivShape { n: 2, c: 5, t: 3 };
    let mut r = rng(13);
    let mut p = to_f64(&random_teacher(&mut r, &shape));
    // A zero, and columns whose mass is not 1, since the gradient must be exact for those too.
    p[4] = 0.0;
    p.iter_mut().skip(10).for_each(|v| *v *= 0.7);
    let z = to_f64(&randn(&mut r, p.len()));
    let numeric = numeric_grad(|z| l2_prob::reference::forward(&shape, &p, z), &z, 1e-6);
    let analytic = l2_prob::reference::backward(&shape, &p, &z, 1.0);
    assert!(rel_err_f64(&analytic, &numeric) < 1e-8, "error {}", rel_err_f64(&analytic, &numeric));
    // The upstream gradient scales the result linearly.
    let scaled: Vec<f64> = numeric.iter().map(|g| 3.0 * g).collect();
    assert!(rel_err_f64(&l2_prob::reference::backward(&shape, &p, &z, 3.0), &scaled) < 1e-8);
}

#[test]
fn matches_pytorch_fixture() {
    let f = Fixture::load("l2_prob");
    for case in f.cases() {
        let (p, dims) = f.tensor(&format!("{case}.p"));
        let (z, _) = f.tensor(&format!("{case}.z"));
        let shape = KlDivShape { n: dims[0], c: dims[1], t: dims[2] };
        let grad_scale: f32 = f.meta(&format!("{case}.grad_scale"));
        let (pg, zg) = (upload(&p, &dims), upload(&z, &dims));
        let (column_loss, loss, dz) = (poisoned(&[shape.columns()]), poisoned(&[1]), poisoned(&dims));
        run(|enc| {
            l2_prob::encode_forward(gpu(), enc, &shape, &pg, &zg, &column_loss, &loss).unwrap();
            l2_prob::encode_backward(gpu(), enc, &shape, &pg, &zg, &dz, grad_scale).unwrap();
        });
        assert_close(
            &format!("{case} loss"),
            &loss.read(gpu()).unwrap(),
            &to_f64(&f.tensor(&format!("{case}.loss")).0),
            1e-5,
        );
        assert_close(
            &format!("{case} dz"),
            &dz.read(gpu()).unwrap(),
            &to_f64(&f.tensor(&format!("{case}.dz")).0),
            1e-4,
        );
    }
}
