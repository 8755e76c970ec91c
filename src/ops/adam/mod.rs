//! Adam optimizer step (torch.optim.Adam without weight decay or amsgrad) on flat f32 buffers:
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
//! `param -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`. Shader: `shaders/adam.wgsl`.

pub mod selftest;

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::gpu::{grid, groups_for, Cost, DeviceClass, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/adam.wgsl, each named once; launches bind them by these names.
const PARAM: Binding = Binding::read_write(1, "param");
const GRAD: Binding = Binding::read(2, "grad");
const M: Binding = Binding::read_write(3, "m");
const V: Binding = Binding::read_write(4, "v");
const PARAM4: Binding = Binding::read_write(5, "param4");
const GRAD4: Binding = Binding::read(6, "grad4");
const M4: Binding = Binding::read_write(7, "m4");
const V4: Binding = Binding::read_write(8, "v4");

/// `shaders/adam.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "adam",
    source: include_str!("../../../shaders/adam.wgsl"),
    bindings: &[PARAM, GRAD, M, V, PARAM4, GRAD4, M4, V4],
    needs_subgroups: false,
};

const WG: u32 = 256;

/// Adam's hyperparameters; `Default` is PyTorch's. f64 like PyTorch's Python floats: in f32,
/// 0.999 is 0.99900001, which makes `1 - beta2` 1.3e-5 off from PyTorch's; the CPU derives
/// `1 - beta` and the bias corrections in f64 and rounds only the results to f32 for the shader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// The bias-corrected step size `lr / (1 - beta1^t)` and `sqrt(1 - beta2^t)`, in f64.
fn bias_corrections(cfg: &AdamConfig, step: u32) -> (f64, f64) {
    let bc1 = 1.0 - cfg.beta1.powf(f64::from(step));
    let bc2 = 1.0 - cfg.beta2.powf(f64::from(step));
    (cfg.lr / bc1, bc2.sqrt())
}

/// The kernel's uniform parameters for one step: what changes from step to step is the bias
/// correction, so a prepared launch gets new ones each step (`Dispatch::set_params`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct StepParams {
    n: u32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step_size: f32,
    sqrt_bc2: f32,
}

/// The parameters of step number `step` (1 for the first) over `n` elements.
pub fn step_params(cfg: &AdamConfig, step: u32, n: usize) -> Result<StepParams> {
    ensure!(step >= 1, "adam: step numbers start at 1 (the bias corrections divide by 1 - beta^step), got {step}");
    ensure!(
        (0.0..1.0).contains(&cfg.beta1) && (0.0..1.0).contains(&cfg.beta2),
        "adam: betas must lie in [0, 1) (1 - beta^step divides the step), got {cfg:?}"
    );
    let n_u32 = u32::try_from(n).map_err(|_| anyhow::anyhow!("adam: {n} elements exceed a u32 index"))?;
    let (step_size, sqrt_bc2) = bias_corrections(cfg, step);
    Ok(StepParams {
        n: n_u32,
        beta1: cfg.beta1 as f32,
        one_minus_beta1: (1.0 - cfg.beta1) as f32,
        beta2: cfg.beta2 as f32,
        one_minus_beta2: (1.0 - cfg.beta2) as f32,
        eps: cfg.eps as f32,
        step_size: step_size as f32,
        sqrt_bc2: sqrt_bc2 as f32,
    })
}

/// Records Adam step number `step` (1 for the first) on one parameter buffer: updates `param`,
/// and the running moments `m` (exp_avg) and `v` (exp_avg_sq) in place. `m` and `v` start as
/// zeros and must be kept between steps, one pair per parameter buffer. On a CPU adapter the update
/// runs four elements at a time (`step_vec4`), with a second launch for the last `n mod 4`
/// (`step_tail`); every launch takes the same `step_params`.
pub fn encode_step(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    cfg: &AdamConfig,
    step: u32,
    (param, grad): (&Tensor, &Tensor),
    (m, v): (&Tensor, &Tensor),
) -> Result<()> {
    let n = param.numel();
    ensure!(
        grad.numel() == n && m.numel() == n && v.numel() == n,
        "adam: param {:?}, grad {:?}, exp_avg {:?} and exp_avg_sq {:?} must have the same number of elements",
        param.shape,
        grad.shape,
        m.shape,
        v.shape
    );
    let params = step_params(cfg, step, n)?;
    // Two moment updates, a square root and a division; param, m and v read and written, the
    // gradient read.
    let cost = |elements: usize| Cost::new(12 * elements, 7 * elements);
    let scalar = [(PARAM, param), (GRAD, grad), (M, m), (V, v)];
    if gpu.class == DeviceClass::Gpu {
        gpu.dispatch(rec, SHADER.entry("step"), &params, &scalar, grid(groups_for(n, WG)), cost(n));
        return Ok(());
    }
    let quads = n / 4;
    if quads > 0 {
        let buffers = [(PARAM4, param), (GRAD4, grad), (M4, m), (V4, v)];
        gpu.dispatch(rec, SHADER.entry("step_vec4"), &params, &buffers, grid(groups_for(quads, WG)), cost(4 * quads));
    }
    if !n.is_multiple_of(4) {
        gpu.dispatch(rec, SHADER.entry("step_tail"), &params, &scalar, [1, 1, 1], cost(n % 4));
    }
    Ok(())
}

/// The f64 CPU reference: the readable specification the GPU kernel is tested against.
pub mod reference {
    use super::AdamConfig;

    /// Adam step number `step` (1-based), updating `param`, `m` and `v` in place.
    pub fn step(cfg: &AdamConfig, step: u32, param: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64]) {
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let bc1 = 1.0 - b1.powf(f64::from(step));
        let bc2 = 1.0 - b2.powf(f64::from(step));
        for i in 0..param.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            param[i] -= cfg.lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + cfg.eps);
        }
    }
}
