//! Softmax and log-softmax over the channel axis (axis 1) of `[N, C, T]`, numerically stable for
//! logits of any size, and their backward passes, which take the forward OUTPUT and `dy`.
//! Shader: `shaders/softmax.wgsl`.

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::gpu::{grid, groups_for, Cost, Gpu, Recorder};
use crate::tensor::Tensor;

/// Logits `[n, c, t]`, normalised over `c` separately for every `(n, t)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxShape {
    pub n: usize,
    pub c: usize,
    pub t: usize,
}

impl SoftmaxShape {
    pub fn dims(&self) -> [usize; 3] {
        [self.n, self.c, self.t]
    }

    /// Number of `(n, t)` columns, one workgroup each.
    pub fn columns(&self) -> usize {
        self.n * self.t
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    c: u32,
    t: u32,
    _pad: u32,
}

/// Validates the shape and that every tensor has it; returns the kernel parameters.
fn params(op: &str, shape: &SoftmaxShape, tensors: &[(&str, &Tensor)]) -> Result<Params> {
    ensure!(shape.c >= 1, "{op}: shape {:?} has no channels to normalise over (C must be at least 1)", shape.dims());
    ensure!(
        u32::try_from(shape.n * shape.c * shape.t).is_ok(),
        "{op}: shape {:?} has more elements than the kernel's u32 indices reach",
        shape.dims()
    );
    for (name, t) in tensors {
        ensure!(t.shape == shape.dims(), "{op}: {name} has shape {:?}, expected {:?}", t.shape, shape.dims());
    }
    Ok(Params { n: shape.n as u32, c: shape.c as u32, t: shape.t as u32, _pad: 0 })
}

fn encode(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    entry: &'static str,
    shape: &SoftmaxShape,
    buffers: &[(u32, &str, &Tensor)],
) -> Result<()> {
    let named: Vec<(&str, &Tensor)> = buffers.iter().map(|&(_, name, t)| (name, t)).collect();
    let p = params(entry, shape, &named)?;
    let bindings: Vec<(u32, &Tensor)> = buffers.iter().map(|&(b, _, t)| (b, t)).collect();
    let values = shape.n * shape.c * shape.t;
    // Max, exp and sum for the normaliser, then one more pass to write.
    let cost = Cost::new(5 * values, buffers.len() * values);
    gpu.dispatch(rec, "softmax", entry, &p, &bindings, grid(groups_for(shape.columns(), 1)), cost);
    Ok(())
}

/// Records `out = softmax(z)` over C. `out` may not alias `z`.
pub fn encode_softmax(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &SoftmaxShape,
    z: &Tensor,
    out: &Tensor,
) -> Result<()> {
    encode(gpu, rec, "softmax", shape, &[(1, "z", z), (2, "out", out)])
}

/// Records `out = log_softmax(z)` over C. `out` may not alias `z`.
pub fn encode_log_softmax(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &SoftmaxShape,
    z: &Tensor,
    out: &Tensor,
) -> Result<()> {
    encode(gpu, rec, "log_softmax", shape, &[(1, "z", z), (2, "out", out)])
}

/// Records `dz = out * (dy - sum_c dy * out)`, where `out` is the softmax forward output.
pub fn encode_softmax_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &SoftmaxShape,
    out: &Tensor,
    dy: &Tensor,
    dz: &Tensor,
) -> Result<()> {
    encode(gpu, rec, "softmax_backward", shape, &[(3, "out", out), (4, "dy", dy), (5, "dz", dz)])
}

/// Records `dz = dy - exp(out) * sum_c dy`, where `out` is the log-softmax forward output.
pub fn encode_log_softmax_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &SoftmaxShape,
    out: &Tensor,
    dy: &Tensor,
    dz: &Tensor,
) -> Result<()> {
    encode(gpu, rec, "log_softmax_backward", shape, &[(3, "out", out), (4, "dy", dy), (5, "dz", dz)])
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
/// All tensors are `[N, C, T]` flattened; element `(n, c, t)` is at `(n * C + c) * T + t`.
pub mod reference {
    use super::SoftmaxShape;

    /// Calls `f` with the flat indices of the C elements of every `(n, t)` column.
    fn for_each_column(shape: &SoftmaxShape, mut f: impl FnMut(&[usize])) {
        for n in 0..shape.n {
            for t in 0..shape.t {
                let column: Vec<usize> = (0..shape.c).map(|c| (n * shape.c + c) * shape.t + t).collect();
                f(&column);
            }
        }
    }

    /// `(max_c z, sum_c exp(z - max))` of one column.
    fn max_and_sum_exp(z: &[f64], column: &[usize]) -> (f64, f64) {
        let max = column.iter().map(|&i| z[i]).fold(f64::NEG_INFINITY, f64::max);
        (max, column.iter().map(|&i| (z[i] - max).exp()).sum())
    }

    pub fn softmax(shape: &SoftmaxShape, z: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; z.len()];
        for_each_column(shape, |column| {
            let (max, sum) = max_and_sum_exp(z, column);
            for &i in column {
                out[i] = (z[i] - max).exp() / sum;
            }
        });
        out
    }

    pub fn log_softmax(shape: &SoftmaxShape, z: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; z.len()];
        for_each_column(shape, |column| {
            let (max, sum) = max_and_sum_exp(z, column);
            for &i in column {
                out[i] = z[i] - max - sum.ln();
            }
        });
        out
    }

    /// `dz = s * (dy - sum_c dy * s)`, with `s` the softmax output.
    pub fn softmax_backward(shape: &SoftmaxShape, s: &[f64], dy: &[f64]) -> Vec<f64> {
        let mut dz = vec![0.0; s.len()];
        for_each_column(shape, |column| {
            let dy_dot_s: f64 = column.iter().map(|&i| dy[i] * s[i]).sum();
            for &i in column {
                dz[i] = s[i] * (dy[i] - dy_dot_s);
            }
        });
        dz
    }

    /// `dz = dy - exp(out) * sum_c dy`, with `out` the log-softmax output.
    pub fn log_softmax_backward(shape: &SoftmaxShape, out: &[f64], dy: &[f64]) -> Vec<f64> {
        let mut dz = vec![0.0; out.len()];
        for_each_column(shape, |column| {
            let dy_sum: f64 = column.iter().map(|&i| dy[i]).sum();
            for &i in column {
                dz[i] = dy[i] - out[i].exp() * dy_sum;
            }
        });
        dz
    }
}
