//! ReLU: GPU against the f64 reference, a finite-difference check, and the PyTorch fixture.

mod common;
use common::*;
use sn_wgpu::ops::relu;

fn check(n: usize, seed: u64) {
    let mut r = rng(seed);
    let x = randn(&mut r, n);
    let dy = randn(&mut r, n);
    let shape = [n];
    let (xg, dyg) = (upload(&x, &shape), upload(&dy, &shape));
    let (y, dx) = (poisoned(&shape), poisoned(&shape));
    run(|enc| {
        relu::encode_forward(gpu(), enc, &xg, &y).unwrap();
        relu::encode_backward(gpu(), enc, &xg, &dyg, &dx).unwrap();
    });
    let (x64, dy64) = (to_f64(&x), to_f64(&dy));
    assert_close(&format!("relu forward n={n}"), &y.read(gpu()).unwrap(), &relu::reference::forward(&x64), 1e-5);
    assert_close(
        &format!("relu backward n={n}"),
        &dx.read(gpu()).unwrap(),
        &relu::reference::backward(&x64, &dy64),
        1e-4,
    );
}

#[test]
fn matches_reference_on_awkward_sizes() {
    for (i, n) in [1, 7, 255, 256, 257, 1000, 65_537].into_iter().enumerate() {
        check(n, i as u64);
    }
}

#[test]
fn dispatch_beyond_65535_workgroups() {
    // 256 * 65,535 = 16.8 M elements is the most a 1-D grid holds; go past it to use the y axis.
    check(256 * 65_535 + 1_000, 99);
}

#[test]
fn reference_backward_matches_finite_differences() {
    let mut r = rng(5);
    // Keep values away from the kink at 0, where the derivative is undefined.
    let x: Vec<f64> =
        to_f64(&randn(&mut r, 50)).into_iter().map(|v| if v.abs() < 0.05 { v + 0.1 } else { v }).collect();
    let w = to_f64(&randn(&mut r, 50));
    let numeric = numeric_grad(|x| dot(&relu::reference::forward(x), &w), &x, 1e-6);
    let analytic = relu::reference::backward(&x, &w);
    assert!(rel_err_f64(&analytic, &numeric) < 1e-8);
}

#[test]
fn matches_pytorch_fixture() {
    let f = Fixture::load("relu");
    for case in f.cases() {
        let (x, shape) = f.tensor(&format!("{case}.x"));
        let (dy, _) = f.tensor(&format!("{case}.dy"));
        let (xg, dyg) = (upload(&x, &shape), upload(&dy, &shape));
        let (y, dx) = (poisoned(&shape), poisoned(&shape));
        run(|enc| {
            relu::encode_forward(gpu(), enc, &xg, &y).unwrap();
            relu::encode_backward(gpu(), enc, &xg, &dyg, &dx).unwrap();
        });
        assert_close(&format!("{case} y"), &y.read(gpu()).unwrap(), &to_f64(&f.tensor(&format!("{case}.y")).0), 1e-5);
        assert_close(
            &format!("{case} dx"),
            &dx.read(gpu()).unwrap(),
            &to_f64(&f.tensor(&format!("{case}.dx")).0),
            1e-4,
        );
    }
}
