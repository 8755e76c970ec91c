//! Softmax and log-softmax over channels: GPU against the f64 reference on SoundNet's head sizes and
//! the awkward ones, huge logits, finite differences on the reference, and the PyTorch fixture.

mod common;
use common::*;
use sn_wgpu::ops::softmax::{self, reference, SoftmaxShape};

fn shape(n: usize, c: usize, t: usize) -> SoftmaxShape {
    SoftmaxShape { n, c, t }
}

/// GPU outputs `[softmax, log_softmax, softmax dz, log_softmax dz]`; each backward runs on the GPU
/// forward output it belongs to.
fn run_gpu(s: &SoftmaxShape, z: &[f32], dy: &[f32]) -> [Vec<f32>; 4] {
    let dims = s.dims();
    let (zg, dyg) = (upload(z, &dims), upload(dy, &dims));
    let outs = [poisoned(&dims), poisoned(&dims), poisoned(&dims), poisoned(&dims)];
    let [sm, lsm, sm_dz, lsm_dz] = &outs;
    run(|enc| {
        softmax::encode_softmax(gpu(), enc, s, &zg, sm).unwrap();
        softmax::encode_log_softmax(gpu(), enc, s, &zg, lsm).unwrap();
        softmax::encode_softmax_backward(gpu(), enc, s, sm, &dyg, sm_dz).unwrap();
        softmax::encode_log_softmax_backward(gpu(), enc, s, lsm, &dyg, lsm_dz).unwrap();
    });
    outs.map(|t| t.read(gpu()).unwrap())
}

/// GPU against the reference on logits `z` (given) and a random `dy`.
fn check_on(s: &SoftmaxShape, z: &[f32], seed: u64) {
    let what = format!("softmax {s:?}");
    let dy = randn(&mut rng(seed), z.len());
    let [sm, lsm, sm_dz, lsm_dz] = run_gpu(s, z, &dy);
    for (name, out) in [("softmax", &sm), ("log_softmax", &lsm), ("softmax dz", &sm_dz), ("log_softmax dz", &lsm_dz)] {
        assert!(out.iter().all(|v| v.is_finite()), "{what}: {name} has non-finite values");
    }
    let (z64, dy64) = (to_f64(z), to_f64(&dy));
    let (sm_ref, lsm_ref) = (reference::softmax(s, &z64), reference::log_softmax(s, &z64));
    assert_close(&format!("{what} softmax"), &sm, &sm_ref, 1e-5);
    assert_close(&format!("{what} log_softmax"), &lsm, &lsm_ref, 1e-5);
    assert_close(&format!("{what} softmax backward"), &sm_dz, &reference::softmax_backward(s, &sm_ref, &dy64), 1e-4);
    assert_close(
        &format!("{what} log_softmax backward"),
        &lsm_dz,
        &reference::log_softmax_backward(s, &lsm_ref, &dy64),
        1e-4,
    );
}

/// Random logits with standard deviation `scale`.
fn logits(s: &SoftmaxShape, scale: f32, seed: u64) -> Vec<f32> {
    randn(&mut rng(seed), s.dims().iter().product()).into_iter().map(|v| v * scale).collect()
}

#[test]
fn soundnet_heads() {
    check_on(&shape(2, 1000, 3), &logits(&shape(2, 1000, 3), 3.0, 1), 2);
    check_on(&shape(3, 401, 2), &logits(&shape(3, 401, 2), 3.0, 3), 4);
    check_on(&shape(1, 1000, 1), &logits(&shape(1, 1000, 1), 3.0, 5), 6);
}

#[test]
fn awkward_sizes() {
    // C = 1 (softmax is 1, log-softmax 0, both gradients 0), C below, at and around the workgroup
    // size of 256 and its multiples, T = 1 and T > 1.
    let shapes =
        [(1, 1, 1), (2, 1, 7), (1, 2, 1), (3, 7, 5), (1, 255, 3), (2, 256, 1), (1, 257, 4), (2, 513, 3), (1, 300, 1)];
    for (i, &(n, c, t)) in shapes.iter().enumerate() {
        let s = shape(n, c, t);
        check_on(&s, &logits(&s, 2.0, 10 + i as u64), 30 + i as u64);
    }
}

#[test]
fn huge_logits_stay_finite_and_correct() {
    // Logits of size ~1e4: exp() of them would overflow without subtracting the column maximum.
    let s = shape(2, 401, 3);
    check_on(&s, &logits(&s, 1e4, 40), 41);
    let s = shape(1, 1000, 2);
    let mut z = logits(&s, 1e4, 42);
    z.iter_mut().step_by(2).for_each(|v| *v = v.abs() + 5e3); // column t=0 all large and positive
    check_on(&s, &z, 43);
    // Column t=0 has one logit 100 above the rest: its probability is 1 up to e^-100, the others
    // underflow f32, and so does that column's softmax gradient (~1e-43). Column t=1 is ordinary,
    // so the relative errors measure column t=0 against the scale of a normal gradient.
    let s = shape(1, 500, 2);
    let mut z = logits(&s, 1.0, 44);
    z[123 * 2] += 100.0;
    check_on(&s, &z, 45);
    let [sm, lsm, ..] = run_gpu(&s, &z, &vec![0.0; z.len()]);
    assert_eq!(sm[123 * 2], 1.0);
    assert!(lsm[123 * 2].abs() < 1e-6 && lsm[0] < -90.0, "log_softmax {} {}", lsm[123 * 2], lsm[0]);
}

#[test]
fn dispatch_beyond_65535_workgroups() {
    // One workgroup per column: 2 * 33,000 = 66,000 columns need the y axis of the grid. All four
    // entry points find their column the same way; lavapipe needs seconds per launch this size,
    // so only softmax and its backward run here.
    let s = shape(2, 3, 33_000);
    let dims = s.dims();
    let (z, dy) = (logits(&s, 2.0, 50), randn(&mut rng(51), 198_000));
    let (zg, dyg) = (upload(&z, &dims), upload(&dy, &dims));
    let (out, dz) = (poisoned(&dims), poisoned(&dims));
    run(|enc| {
        softmax::encode_softmax(gpu(), enc, &s, &zg, &out).unwrap();
        softmax::encode_softmax_backward(gpu(), enc, &s, &out, &dyg, &dz).unwrap();
    });
    let out_ref = reference::softmax(&s, &to_f64(&z));
    assert_close("softmax 66,000 columns", &out.read(gpu()).unwrap(), &out_ref, 1e-5);
    let dz_ref = reference::softmax_backward(&s, &out_ref, &to_f64(&dy));
    assert_close("softmax backward 66,000 columns", &dz.read(gpu()).unwrap(), &dz_ref, 1e-4);
}

#[test]
fn rejects_bad_shapes() {
    let s = shape(1, 4, 2);
    let (z, out) = (upload(&[0.0; 8], &[1, 4, 2]), poisoned(&[1, 2, 4]));
    let mut enc = gpu().encoder("wrong shape");
    let err = softmax::encode_softmax(gpu(), &mut enc, &s, &z, &out).unwrap_err().to_string();
    assert!(err.contains("[1, 2, 4]") && err.contains("[1, 4, 2]"), "{err}");
    let empty = upload(&[], &[1, 0, 2]);
    assert!(softmax::encode_log_softmax(gpu(), &mut enc, &shape(1, 0, 2), &empty, &empty).is_err());
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (i, s) in [shape(2, 5, 3), shape(1, 1, 4), shape(1, 9, 1)].iter().enumerate() {
        let mut r = rng(60 + i as u64);
        let z = to_f64(&randn(&mut r, s.dims().iter().product()));
        let w = to_f64(&randn(&mut r, z.len()));
        let numeric = numeric_grad(|z| dot(&reference::softmax(s, z), &w), &z, 1e-6);
        let analytic = reference::softmax_backward(s, &reference::softmax(s, &z), &w);
        assert!(rel_err_f64(&analytic, &numeric) < 1e-7, "softmax {s:?}");
        let numeric = numeric_grad(|z| dot(&reference::log_softmax(s, z), &w), &z, 1e-6);
        let analytic = reference::log_softmax_backward(s, &reference::log_softmax(s, &z), &w);
        assert!(rel_err_f64(&analytic, &numeric) < 1e-7, "log_softmax {s:?}");
    }
}

#[test]
fn matches_pytorch_fixture() {
    let f = Fixture::load("softmax");
    for case in f.cases() {
        let (z, dims) = f.tensor(&format!("{case}.z"));
        let (dy, _) = f.tensor(&format!("{case}.dy"));
        let outs = run_gpu(&shape(dims[0], dims[1], dims[2]), &z, &dy);
        for (key, out) in ["softmax", "log_softmax", "softmax_dz", "log_softmax_dz"].iter().zip(&outs) {
            let tol = if key.ends_with("_dz") { 1e-4 } else { 1e-5 };
            assert_close(&format!("{case} {key}"), out, &to_f64(&f.tensor(&format!("{case}.{key}")).0), tol);
        }
    }
}
