//! Adam: several GPU steps in a row against the f64 reference (awkward and huge lengths, other
//! hyperparameters, gradients of very different scales), the first-step property of Adam on the
//! reference, and the PyTorch fixture.

#[macro_use]
mod common;
use common::*;
use sn_wgpu::ops::adam::{self, AdamConfig};
use sn_wgpu::Tensor;

/// The GPU's state for one parameter buffer.
struct GpuAdam {
    param: Tensor,
    m: Tensor,
    v: Tensor,
}

/// The reference's state for the same buffer.
struct RefAdam {
    param: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl GpuAdam {
    fn new(param: &[f32]) -> GpuAdam {
        let zeros = vec![0.0; param.len()];
        let shape = [param.len()];
        GpuAdam { param: upload(param, &shape), m: upload(&zeros, &shape), v: upload(&zeros, &shape) }
    }

    fn step(&self, cfg: &AdamConfig, step: u32, grad: &[f32]) {
        let grad = upload(grad, &[grad.len()]);
        run(|enc| adam::encode_step(gpu(), enc, cfg, step, (&self.param, &grad), (&self.m, &self.v)).unwrap());
    }
}

impl RefAdam {
    fn new(param: &[f32]) -> RefAdam {
        RefAdam { param: to_f64(param), m: vec![0.0; param.len()], v: vec![0.0; param.len()] }
    }

    fn step(&mut self, cfg: &AdamConfig, step: u32, grad: &[f32]) {
        adam::reference::step(cfg, step, &mut self.param, &to_f64(grad), &mut self.m, &mut self.v);
    }
}

/// The values at the given indices, so groups of very different scale are compared on their own.
fn pick<T: Copy>(values: &[T], indices: &[usize]) -> Vec<T> {
    indices.iter().map(|&i| values[i]).collect()
}

/// Runs `grads.len()` steps on the GPU and on the reference and compares param, m and v after
/// each, separately within each index group (all indices when `groups` is one full range).
fn check_steps(what: &str, cfg: &AdamConfig, param: &[f32], grads: &[Vec<f32>], groups: &[Vec<usize>]) {
    let gpu_state = GpuAdam::new(param);
    let mut ref_state = RefAdam::new(param);
    for (s, grad) in grads.iter().enumerate() {
        let step = s as u32 + 1;
        gpu_state.step(cfg, step, grad);
        ref_state.step(cfg, step, grad);
        let (param, m, v) =
            (gpu_state.param.read(gpu()).unwrap(), gpu_state.m.read(gpu()).unwrap(), gpu_state.v.read(gpu()).unwrap());
        for (k, group) in groups.iter().enumerate() {
            let tag = format!("{what} n={} step {step} group {k}", param.len());
            assert_close(&format!("{tag} param"), &pick(&param, group), &pick(&ref_state.param, group), 1e-5);
            assert_close(&format!("{tag} exp_avg"), &pick(&m, group), &pick(&ref_state.m, group), 1e-5);
            assert_close(&format!("{tag} exp_avg_sq"), &pick(&v, group), &pick(&ref_state.v, group), 1e-5);
        }
    }
}

fn random_grads(seed: u64, n: usize, steps: usize) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    (0..steps).map(|_| randn(&mut r, n)).collect()
}

fn other_config() -> AdamConfig {
    AdamConfig { lr: 0.05, beta1: 0.5, beta2: 0.875, eps: 1e-4 }
}

per_class!(steps_in_a_row_match_reference_on_awkward_lengths);
fn steps_in_a_row_match_reference_on_awkward_lengths() {
    // Parameters start at zero, so the comparison of param sees the accumulated updates alone
    // rather than updates hidden under much larger starting values.
    for (i, n) in [1, 7, 255, 257, 1001].into_iter().enumerate() {
        let all = vec![(0..n).collect()];
        check_steps("default", &AdamConfig::default(), &vec![0.0; n], &random_grads(i as u64, n, 4), &all);
        check_steps("other", &other_config(), &vec![0.0; n], &random_grads(10 + i as u64, n, 4), &all);
    }
}

per_class!(steps_from_random_parameters);
fn steps_from_random_parameters() {
    let n = 333;
    let param = randn(&mut rng(20), n);
    check_steps("random start", &other_config(), &param, &random_grads(21, n, 3), &[(0..n).collect()]);
}

per_class!(gradients_of_very_different_scales);
fn gradients_of_very_different_scales() {
    // Even elements get gradients around 1e-8 (where eps = 1e-8 changes the step), odd ones around
    // 1e3. Adam's step is near lr for both, so param compares as one group; m and v per scale.
    let n = 513;
    let grads: Vec<Vec<f32>> = random_grads(30, n, 3)
        .into_iter()
        .map(|g| g.iter().enumerate().map(|(i, &x)| if i % 2 == 0 { 1e-8 * x } else { 1e3 * x }).collect())
        .collect();
    let even: Vec<usize> = (0..n).step_by(2).collect();
    let odd: Vec<usize> = (1..n).step_by(2).collect();
    check_steps("mixed scales", &AdamConfig::default(), &vec![0.0; n], &grads, &[even, odd]);
}

per_class!(dispatch_beyond_65535_workgroups);
fn dispatch_beyond_65535_workgroups() {
    // 256 * 65,535 elements is the most a 1-D grid holds; go past it to use the y axis.
    let n = 256 * 65_535 + 1_001;
    check_steps("2-D grid", &AdamConfig::default(), &vec![0.0; n], &random_grads(40, n, 1), &[(0..n).collect()]);
}

#[test]
fn reference_first_step_moves_each_parameter_by_lr_against_the_gradient_sign() {
    // At step 1, m/(1-b1) = g and sqrt(v/(1-b2)) = |g|, so the update is lr * g / (|g| + eps):
    // lr * sign(g) whenever |g| >> eps, whatever the betas. Wrong bias corrections break this.
    for cfg in [AdamConfig::default(), other_config()] {
        let mut r = rng(50);
        let n = 200;
        let grad: Vec<f64> =
            to_f64(&randn(&mut r, n)).iter().enumerate().map(|(i, g)| g * 10f64.powi(i as i32 % 7 - 1)).collect();
        let start = to_f64(&randn(&mut r, n));
        let (mut param, mut m, mut v) = (start.clone(), vec![0.0; n], vec![0.0; n]);
        adam::reference::step(&cfg, 1, &mut param, &grad, &mut m, &mut v);
        let lr = cfg.lr;
        for i in 0..n {
            let moved = param[i] - start[i];
            let expected = -lr * grad[i].signum();
            let tol = lr * (cfg.eps / grad[i].abs() + 1e-9);
            assert!(
                (moved - expected).abs() <= tol,
                "{cfg:?} element {i}: g = {}, moved {moved}, expected {expected}",
                grad[i]
            );
        }
    }
}

per_class!(rejects_step_zero_and_mismatched_lengths);
fn rejects_step_zero_and_mismatched_lengths() {
    let (a, b) = (upload(&[0.0; 4], &[4]), upload(&[0.0; 5], &[5]));
    let cfg = AdamConfig::default();
    let mut enc = gpu().encoder("rejects");
    let err = adam::encode_step(gpu(), &mut enc, &cfg, 0, (&a, &a), (&a, &a)).unwrap_err();
    assert!(err.to_string().contains("step"), "{err}");
    let err = adam::encode_step(gpu(), &mut enc, &cfg, 1, (&a, &a), (&b, &a)).unwrap_err();
    assert!(err.to_string().contains("same number of elements"), "{err}");
}

per_class!(matches_pytorch_fixture);
fn matches_pytorch_fixture() {
    let f = Fixture::load("adam");
    for case in f.cases() {
        let cfg = AdamConfig {
            lr: f.meta(&format!("{case}.lr")),
            beta1: f.meta(&format!("{case}.beta1")),
            beta2: f.meta(&format!("{case}.beta2")),
            eps: f.meta(&format!("{case}.eps")),
        };
        let tensors: usize = f.meta(&format!("{case}.tensors"));
        let steps: u32 = f.meta(&format!("{case}.steps"));
        let states: Vec<GpuAdam> =
            (0..tensors).map(|k| GpuAdam::new(&f.tensor(&format!("{case}.p{k}.init")).0)).collect();
        for step in 1..=steps {
            // One submission per step, holding every parameter tensor's update, as training will.
            let grads: Vec<Tensor> = (0..tensors)
                .map(|k| {
                    let (g, shape) = f.tensor(&format!("{case}.p{k}.grad{step}"));
                    upload(&g, &[shape.iter().product()])
                })
                .collect();
            run(|enc| {
                for (state, grad) in states.iter().zip(&grads) {
                    adam::encode_step(gpu(), enc, &cfg, step, (&state.param, grad), (&state.m, &state.v)).unwrap();
                }
            });
            for (k, state) in states.iter().enumerate() {
                let expect = |name: &str| to_f64(&f.tensor(&format!("{case}.p{k}.{name}{step}")).0);
                let tag = format!("{case} tensor {k} step {step}");
                assert_close(&format!("{tag} param"), &state.param.read(gpu()).unwrap(), &expect("param"), 1e-5);
                assert_close(&format!("{tag} exp_avg"), &state.m.read(gpu()).unwrap(), &expect("exp_avg"), 1e-5);
                assert_close(&format!("{tag} exp_avg_sq"), &state.v.read(gpu()).unwrap(), &expect("exp_avg_sq"), 1e-5);
            }
        }
    }
}

per_class!(one_launch_updates_every_tensor_of_a_flat_buffer);
fn one_launch_updates_every_tensor_of_a_flat_buffer() {
    use sn_wgpu::model::params::{Init, NamedTensors, TensorSpec};
    // Sizes that are not multiples of the storage-offset alignment, and one of a single element.
    let shapes: [&[usize]; 4] = [&[3, 5, 7], &[1], &[130], &[2, 65]];
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| TensorSpec { name: format!("t{i}"), shape: s.to_vec(), init: Init::Constant(0.0) })
        .collect();
    let mut r = rng(900);
    let values: Vec<Vec<f32>> = shapes.iter().map(|s| randn(&mut r, s.iter().product())).collect();
    let grads: Vec<Vec<f32>> = shapes.iter().map(|s| randn(&mut r, s.iter().product())).collect();
    let g = gpu();
    let params = NamedTensors::upload(g, specs.clone(), &values, "test parameters").unwrap();
    let grad = NamedTensors::upload(g, specs.clone(), &grads, "test gradients").unwrap();
    let (m, v) = (NamedTensors::zeros_like(g, &specs, "m").unwrap(), NamedTensors::zeros_like(g, &specs, "v").unwrap());

    // Every tensor is an aligned view that reads back its own values; the gaps hold zeros.
    let align = g.limits.min_storage_buffer_offset_alignment as u64;
    for (t, expected) in params.tensors.iter().zip(&values) {
        assert_eq!(t.offset % align, 0, "view at byte {} is not aligned to {align}", t.offset);
        assert_eq!(&t.read(g).unwrap(), expected);
    }
    let flat = params.flat.read(g).unwrap();
    let in_views: usize = values.iter().map(Vec::len).sum();
    assert_eq!(flat.iter().filter(|&&x| x != 0.0).count(), in_views, "values outside the views");

    let cfg = AdamConfig::default();
    for step in 1..=3 {
        run(|enc| adam::encode_step(g, enc, &cfg, step, (&params.flat, &grad.flat), (&m.flat, &v.flat)).unwrap());
    }
    for ((t, value), gr) in params.tensors.iter().zip(&values).zip(&grads) {
        let mut reference = RefAdam::new(value);
        for step in 1..=3 {
            reference.step(&cfg, step, gr);
        }
        assert_close(&format!("{:?} after 3 steps", t.shape), &t.read(g).unwrap(), &reference.param, 1e-5);
    }
    let gaps = params.flat.read(g).unwrap().iter().filter(|&&x| x != 0.0).count();
    assert_eq!(gaps, in_views, "Adam moved a gap between tensors");
}
