//! ReLU: `y = max(x, 0)`; backward `dx = dy * [x > 0]`. Shader: `shaders/relu.wgsl`.

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::gpu::{grid, groups_for, Cost, Gpu, Recorder};
use crate::tensor::Tensor;

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

fn params(n: usize) -> Params {
    Params { n: n as u32, _pad: [0; 3] }
}

/// Records `y = relu(x)`. `y` may not alias `x`.
pub fn encode_forward(gpu: &Gpu, rec: &mut impl Recorder, x: &Tensor, y: &Tensor) -> Result<()> {
    ensure!(x.shape == y.shape, "relu: input {:?} and output {:?} differ in shape", x.shape, y.shape);
    let n = x.numel();
    let buffers = [(1, x), (2, y)];
    gpu.dispatch(rec, "relu", "forward", &params(n), &buffers, grid(groups_for(n, WG)), Cost::new(n, 2 * n));
    Ok(())
}

/// Records `dx = dy * [x > 0]`, where `x` is the forward input.
pub fn encode_backward(gpu: &Gpu, rec: &mut impl Recorder, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
    ensure!(
        x.shape == dy.shape && x.shape == dx.shape,
        "relu backward: shapes {:?}, {:?}, {:?} differ",
        x.shape,
        dy.shape,
        dx.shape
    );
    let n = x.numel();
    gpu.dispatch(
        rec,
        "relu",
        "backward",
        &params(n),
        &[(1, x), (3, dy), (4, dx)],
        grid(groups_for(n, WG)),
        Cost::new(n, 3 * n),
    );
    Ok(())
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
pub mod reference {
    pub fn forward(x: &[f64]) -> Vec<f64> {
        x.iter().map(|&v| v.max(0.0)).collect()
    }

    pub fn backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
        x.iter().zip(dy).map(|(&v, &g)| if v > 0.0 { g } else { 0.0 }).collect()
    }
}
