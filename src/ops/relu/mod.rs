//! ReLU: `y = max(x, 0)`; backward `dx = dy * [x > 0]`. Shader: `shaders/relu.wgsl`.

pub mod selftest;

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::autograd::{Backward, Tape, Var};
use crate::gpu::Tensor;
use crate::gpu::{grid, groups_for, Binding, Cost, Gpu, Recorder, Shader};

// The storage buffers of shaders/relu.wgsl, each named once; launches bind them by these names.
const X: Binding = Binding::read(1, "x");
const Y: Binding = Binding::read_write(2, "y");
const DY: Binding = Binding::read(3, "dy");
const DX: Binding = Binding::read_write(4, "dx");

/// `shaders/relu.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "relu",
    source: include_str!("../../../shaders/relu.wgsl"),
    bindings: &[X, Y, DY, DX],
    needs_subgroups: false,
};

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
    let buffers = [(X, x), (Y, y)];
    gpu.dispatch(rec, SHADER.entry("forward"), &params(n), &buffers, grid(groups_for(n, WG)), Cost::new(n, 2 * n));
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
        SHADER.entry("backward"),
        &params(n),
        &[(X, x), (DY, dy), (DX, dx)],
        grid(groups_for(n, WG)),
        Cost::new(n, 3 * n),
    );
    Ok(())
}

impl Tape<'_> {
    /// `relu(x)`.
    pub fn relu(&mut self, x: Var, label: &str) -> Result<Var> {
        let shape = self.value(x).shape.clone();
        let y = self.output(&shape, label, &[x])?;
        let (xt, yt) = (self.value(x).clone(), self.value(y).clone());
        self.record(label, Some(Box::new(ReluNode { x, y })), |g, rec| encode_forward(g, rec, &xt, &yt))?;
        Ok(y)
    }
}

/// relu on the tape: its input, whose sign masks the gradient, and its output.
struct ReluNode {
    x: Var,
    y: Var,
}

impl Backward for ReluNode {
    fn record_backward(&self, tape: &mut Tape, _grad_scale: f32) -> Result<()> {
        let Some(dy) = tape.upstream(self.y) else { return Ok(()) };
        let dx = tape.fresh_grad(self.x, "relu input")?;
        let x = tape.value(self.x).clone();
        encode_backward(tape.gpu(), &mut tape.backward, &x, &dy, &dx)
    }
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
