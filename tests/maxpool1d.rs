//! Max pooling: GPU against the f64 reference (values, argmax indices exactly, gradients) over
//! SoundNet's windows and the awkward ones, finite differences on the reference, and the PyTorch
//! fixture.

mod common;
use common::*;
use sn_wgpu::ops::maxpool1d::{self, reference, MaxPool1dShape};

fn shape(n: usize, c: usize, l: usize, k: usize, stride: usize) -> MaxPool1dShape {
    MaxPool1dShape { n, c, l, k, stride }
}

/// Runs forward and backward on the GPU: `(y, argmax, dx)`.
fn run_gpu(s: &MaxPool1dShape, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let out_shape = s.output_shape().unwrap();
    let (xg, dyg) = (upload(x, &s.input_shape()), upload(dy, &out_shape));
    let (y, argmax, dx) = (poisoned(&out_shape), poisoned(&out_shape), poisoned(&s.input_shape()));
    run(|enc| {
        maxpool1d::encode_forward(gpu(), enc, s, &xg, &y, &argmax).unwrap();
        maxpool1d::encode_backward(gpu(), enc, s, &argmax, &dyg, &dx).unwrap();
    });
    (y.read(gpu()).unwrap(), argmax.read_u32(gpu()).unwrap(), dx.read(gpu()).unwrap())
}

/// GPU against the reference on `x` (given) and a random `dy`; argmax must match exactly.
fn check_on(s: &MaxPool1dShape, x: &[f32], seed: u64) {
    let what = format!("maxpool1d {s:?}");
    let dy = randn(&mut rng(seed), s.output_shape().unwrap().iter().product());
    let (y, argmax, dx) = run_gpu(s, x, &dy);
    let (y_ref, argmax_ref) = reference::forward(s, &to_f64(x));
    assert_eq!(argmax, argmax_ref, "{what}: argmax indices differ");
    assert_close(&format!("{what} forward"), &y, &y_ref, 1e-5);
    assert_close(&format!("{what} backward"), &dx, &reference::backward(s, &argmax_ref, &to_f64(&dy)), 1e-4);
}

fn check(s: &MaxPool1dShape, seed: u64) {
    let x = randn(&mut rng(seed), s.input_shape().iter().product());
    check_on(s, &x, seed + 1000);
}

/// Small integers, so most windows hold their maximum more than once.
fn tied_values(n: usize, seed: u64) -> Vec<f32> {
    randn(&mut rng(seed), n).into_iter().map(|v| (v * 1.5).round().clamp(-2.0, 2.0)).collect()
}

#[test]
fn soundnet_windows() {
    check(&shape(2, 16, 1024, 8, 8), 1);
    check(&shape(2, 32, 256, 4, 4), 2);
}

#[test]
fn overlapping_gapped_and_exact_windows() {
    check(&shape(2, 3, 50, 5, 2), 3); // k > stride: windows overlap, dx gathers several windows
    check(&shape(1, 4, 64, 7, 1), 4); // stride 1: every input in up to k windows
    check(&shape(2, 3, 50, 2, 5), 5); // k < stride: gaps between windows get zero gradient
    check(&shape(3, 2, 48, 3, 3), 6); // k == stride, L a multiple of it
    check(&shape(3, 2, 53, 4, 4), 7); // L not a multiple of the stride: a tail no window covers
    check(&shape(1, 1, 1, 1, 1), 8); // identity
}

#[test]
fn single_output_per_row() {
    check(&shape(2, 5, 8, 8, 8), 9); // L == k
    check(&shape(2, 5, 11, 8, 8), 10); // L < k + stride: one window and a tail
    check(&shape(1, 3, 9, 9, 2), 11);
}

#[test]
fn random_shapes() {
    let mut r = rng(12);
    for case in 0..20 {
        let v = randn(&mut r, 6);
        let pick = |x: f32, lo: usize, hi: usize| lo + ((x.abs() * 1000.0) as usize) % (hi - lo + 1);
        let k = pick(v[0], 1, 9);
        let stride = pick(v[1], 1, 9);
        let s = shape(pick(v[2], 1, 3), pick(v[3], 1, 5), k + pick(v[4], 0, 60), k, stride);
        check(&s, 100 + case);
    }
}

#[test]
fn ties_pick_the_first_maximum() {
    for (i, s) in
        [shape(2, 3, 64, 8, 8), shape(2, 3, 40, 4, 3), shape(1, 4, 33, 5, 1), shape(2, 2, 30, 2, 4)].iter().enumerate()
    {
        let x = tied_values(s.input_shape().iter().product(), 20 + i as u64);
        check_on(s, &x, 30 + i as u64);
    }
    // A window of equal values sends everything to its first element.
    let s = shape(1, 1, 6, 3, 1);
    let (y, argmax, dx) = run_gpu(&s, &[1.0, 3.0, 3.0, 2.0, 3.0, 3.0], &[1.0, 10.0, 100.0, 1000.0]);
    assert_eq!(y, [3.0, 3.0, 3.0, 3.0]);
    assert_eq!(argmax, [1, 1, 2, 4]); // what PyTorch returns for this input
    assert_eq!(dx, [0.0, 11.0, 100.0, 0.0, 1000.0, 0.0]);
}

#[test]
fn dispatch_beyond_65535_workgroups() {
    // 256 * 65,535 = 16.8 M invocations is the most a 1-D grid holds; both the 16.8 M outputs
    // (forward) and the 16.8 M inputs (backward) go past it.
    check(&shape(2, 4, 2_100_000, 2, 1), 40);
}

#[test]
fn rejects_bad_shapes() {
    let err = shape(1, 2, 5, 8, 8).l_out().unwrap_err().to_string();
    assert!(err.contains("at least 8"), "{err}");
    assert!(shape(1, 2, 5, 0, 1).l_out().is_err());
    assert!(shape(1, 2, 5, 2, 0).l_out().is_err());
    let s = shape(1, 2, 16, 4, 4);
    let (x, y, argmax) = (upload(&[0.0; 32], &[1, 2, 16]), poisoned(&[1, 2, 3]), poisoned(&[1, 2, 4]));
    let mut enc = gpu().encoder("wrong shape");
    let err = maxpool1d::encode_forward(gpu(), &mut enc, &s, &x, &y, &argmax).unwrap_err().to_string();
    assert!(err.contains("[1, 2, 4]"), "{err}");
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (i, s) in [shape(2, 2, 23, 5, 2), shape(1, 3, 20, 2, 3), shape(2, 1, 16, 4, 4)].iter().enumerate() {
        let mut r = rng(50 + i as u64);
        // Continuous random values: no ties, and gaps far wider than the step h.
        let x = to_f64(&randn(&mut r, s.input_shape().iter().product()));
        let w = to_f64(&randn(&mut r, s.output_shape().unwrap().iter().product()));
        let numeric = numeric_grad(|x| dot(&reference::forward(s, x).0, &w), &x, 1e-6);
        let analytic = reference::backward(s, &reference::forward(s, &x).1, &w);
        assert!(rel_err_f64(&analytic, &numeric) < 1e-8, "{s:?}");
    }
}

#[test]
fn matches_pytorch_fixture() {
    let f = Fixture::load("maxpool1d");
    for case in f.cases() {
        let (x, dims) = f.tensor(&format!("{case}.x"));
        let s = shape(dims[0], dims[1], dims[2], f.meta(&format!("{case}.k")), f.meta(&format!("{case}.stride")));
        let (dy, _) = f.tensor(&format!("{case}.dy"));
        let (y, argmax, dx) = run_gpu(&s, &x, &dy);
        let torch_argmax: Vec<u32> = f.tensor(&format!("{case}.argmax")).0.iter().map(|&i| i as u32).collect();
        assert_eq!(argmax, torch_argmax, "{case} argmax");
        assert_close(&format!("{case} y"), &y, &to_f64(&f.tensor(&format!("{case}.y")).0), 1e-5);
        assert_close(&format!("{case} dx"), &dx, &to_f64(&f.tensor(&format!("{case}.dx")).0), 1e-4);
    }
}
