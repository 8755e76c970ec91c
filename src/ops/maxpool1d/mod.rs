//! 1-D max pooling over the last axis of `[N, C, L]` (PyTorch `F.max_pool1d` without padding,
//! floor mode, dilation 1): `y[n, c, o] = max_{j < k} x[n, c, o * stride + j]`, with the index of
//! the (first) maximum kept for the backward pass, which routes each `dy` to that index.
//! Shader: `shaders/maxpool1d.wgsl`.

pub mod selftest;

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, groups_for, Cost, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/maxpool1d.wgsl, each named once; launches bind them by these names.
const X: Binding = Binding::read(1, "x");
const Y: Binding = Binding::read_write(2, "y");
const ARGMAX: Binding = Binding::read_write(3, "argmax");
const SAVED_ARGMAX: Binding = Binding::read(4, "saved_argmax");
const DY: Binding = Binding::read(5, "dy");
const DX: Binding = Binding::read_write(6, "dx");

/// `shaders/maxpool1d.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "maxpool1d",
    source: include_str!("../../../shaders/maxpool1d.wgsl"),
    bindings: &[X, Y, ARGMAX, SAVED_ARGMAX, DY, DX],
    needs_subgroups: false,
};

const WG: u32 = 256;

/// Input `[n, c, l]`, window `k`, step `stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool1dShape {
    pub n: usize,
    pub c: usize,
    pub l: usize,
    pub k: usize,
    pub stride: usize,
}

impl MaxPool1dShape {
    /// Output length `floor((l - k) / stride) + 1`; an error when the shape cannot be pooled.
    pub fn l_out(&self) -> Result<usize> {
        ensure!(
            self.k >= 1 && self.stride >= 1,
            "maxpool1d: kernel k={} and stride={} must both be at least 1",
            self.k,
            self.stride
        );
        ensure!(
            self.l >= self.k,
            "maxpool1d: input [{}, {}, {}] is too short for kernel k={}: the length must be at least {}",
            self.n,
            self.c,
            self.l,
            self.k,
            self.k
        );
        Ok((self.l - self.k) / self.stride + 1)
    }

    pub fn input_shape(&self) -> [usize; 3] {
        [self.n, self.c, self.l]
    }

    pub fn output_shape(&self) -> Result<[usize; 3]> {
        Ok([self.n, self.c, self.l_out()?])
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    l: u32,
    l_out: u32,
    k: u32,
    stride: u32,
    _pad: [u32; 3],
}

/// Validates the shape and the tensors shaped like the input or like the output; returns the
/// kernel parameters.
fn params(
    shape: &MaxPool1dShape,
    input_shaped: &[(&str, &Tensor)],
    output_shaped: &[(&str, &Tensor)],
) -> Result<Params> {
    let out_shape = shape.output_shape()?;
    let to_u32 = |v: usize, what: &str| {
        u32::try_from(v).map_err(|_| anyhow::anyhow!("maxpool1d: {what} = {v} does not fit the kernels' u32 indices"))
    };
    to_u32(shape.n * shape.c * shape.l, "N * C * L")?;
    for (name, t) in input_shaped {
        ensure!(
            t.shape == shape.input_shape(),
            "maxpool1d: {name} has shape {:?}, expected the input shape {:?}",
            t.shape,
            shape.input_shape()
        );
    }
    for (name, t) in output_shaped {
        ensure!(
            t.shape == out_shape,
            "maxpool1d: {name} has shape {:?}, expected the output shape {out_shape:?}",
            t.shape
        );
    }
    Ok(Params {
        rows: to_u32(shape.n * shape.c, "N * C")?,
        l: to_u32(shape.l, "L")?,
        l_out: to_u32(out_shape[2], "Lout")?,
        k: to_u32(shape.k, "k")?,
        stride: to_u32(shape.stride, "stride")?,
        _pad: [0; 3],
    })
}

/// Records `y = maxpool(x)` and `argmax` = for each output, the index into L of the first maximum
/// of its window (u32 values in an f32-sized buffer; read with `Tensor::read_u32`).
/// `x` is `[N, C, L]`; `y` and `argmax` are `[N, C, Lout]`.
pub fn encode_forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &MaxPool1dShape,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
) -> Result<()> {
    let p = params(shape, &[("x", x)], &[("y", y), ("argmax", argmax)])?;
    let outputs = y.numel();
    gpu.dispatch(
        rec,
        SHADER.entry("forward"),
        &p,
        &[(X, x), (Y, y), (ARGMAX, argmax)],
        grid(groups_for(outputs, WG)),
        // One comparison per window element read; the input is read once, y and argmax written.
        Cost::new(outputs * shape.k, x.numel() + 2 * outputs),
    );
    Ok(())
}

/// Records `dx[n, c, i] = sum of dy[n, c, o] over the windows o whose argmax is i` (zero where no
/// window picked i). `argmax` is the forward pass's; `dy` is `[N, C, Lout]`, `dx` is `[N, C, L]`.
pub fn encode_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &MaxPool1dShape,
    argmax: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Result<()> {
    let p = params(shape, &[("dx", dx)], &[("argmax", argmax), ("dy", dy)])?;
    let inputs = dx.numel();
    gpu.dispatch(
        rec,
        SHADER.entry("backward"),
        &p,
        &[(SAVED_ARGMAX, argmax), (DY, dy), (DX, dx)],
        grid(groups_for(inputs, WG)),
        Cost::new(0, argmax.numel() + dy.numel() + inputs),
    );
    Ok(())
}

impl Tape<'_> {
    /// Max-pool with kernel = stride = `k`, as SoundNet uses.
    pub fn maxpool(&mut self, x: Var, k: usize, label: &str) -> Result<Var> {
        let xs = self.shape_of(x, 3, "maxpool1d: [N, C, L]").map_err(|e| e.context(label.to_string()))?;
        let shape = MaxPool1dShape { n: xs[0], c: xs[1], l: xs[2], k, stride: k };
        let out = shape.output_shape().map_err(|e| e.context(label.to_string()))?;
        let y = self.output(&out, label, &[x])?;
        let argmax = self.alloc(&out, "argmax")?;
        let (xt, yt) = (self.value(x).clone(), self.value(y).clone());
        let node = MaxPoolNode { shape, x, y, argmax: argmax.clone() };
        self.record(label, Some(Box::new(node)), |g, rec| encode_forward(g, rec, &shape, &xt, &yt, &argmax))?;
        Ok(y)
    }
}

/// maxpool1d on the tape: which input each output took (`argmax`) routes its gradient back.
struct MaxPoolNode {
    shape: MaxPool1dShape,
    x: Var,
    y: Var,
    argmax: Tensor,
}

impl Backward for MaxPoolNode {
    fn record_backward(&self, tape: &mut Tape, _grad_scale: f32) -> Result<()> {
        let Some(dy) = tape.upstream(self.y) else { return Ok(()) };
        let dx = tape.fresh_grad(self.x, "pool input")?;
        encode_backward(tape.gpu(), &mut tape.backward, &self.shape, &self.argmax, &dy, &dx)
    }
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
pub mod reference {
    use super::MaxPool1dShape;

    /// `(y, argmax)`, both `[N, C, Lout]` flattened; argmax indexes into L, first maximum on ties.
    pub fn forward(shape: &MaxPool1dShape, x: &[f64]) -> (Vec<f64>, Vec<u32>) {
        let l_out = shape.l_out().expect("maxpool1d reference: invalid shape");
        let mut y = Vec::with_capacity(shape.n * shape.c * l_out);
        let mut argmax = Vec::with_capacity(y.capacity());
        for row in x.chunks_exact(shape.l) {
            for o in 0..l_out {
                let start = o * shape.stride;
                let mut best = start;
                for i in start + 1..start + shape.k {
                    if row[i] > row[best] {
                        best = i;
                    }
                }
                y.push(row[best]);
                argmax.push(best as u32);
            }
        }
        (y, argmax)
    }

    /// `dx`, `[N, C, L]` flattened: each `dy` goes to the input its window picked.
    pub fn backward(shape: &MaxPool1dShape, argmax: &[u32], dy: &[f64]) -> Vec<f64> {
        let l_out = shape.l_out().expect("maxpool1d reference: invalid shape");
        let mut dx = vec![0.0; shape.n * shape.c * shape.l];
        for (row, dx_row) in dx.chunks_exact_mut(shape.l).enumerate() {
            for o in 0..l_out {
                dx_row[argmax[row * l_out + o] as usize] += dy[row * l_out + o];
            }
        }
        dx
    }
}
