//! Teacher-student loss: KL divergence from the teacher's probabilities `P` to the softmax over
//! channels of the student's logits `Z`, both `[N, C, T]`, averaged over the `N * T` columns.
//! `loss = 1/(N*T) * sum_{n,t} sum_c P (log P - log_softmax(Z))`, with `0 log 0 = 0`.
//! Backward `dZ = grad_scale/(N*T) * (softmax(Z) * sum_c P - P)`. Shader: `shaders/kl_div.wgsl`.

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, Cost, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/kl_div.wgsl, each named once; launches bind them by these names.
const TEACHER: Binding = Binding::read(1, "teacher");
const LOGITS: Binding = Binding::read(2, "logits");
const COLUMN_LOSS: Binding = Binding::read_write(3, "column_loss");
const LOSS: Binding = Binding::read_write(4, "loss");
const DLOGITS: Binding = Binding::read_write(5, "dlogits");

/// `shaders/kl_div.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "kl_div",
    source: include_str!("../../shaders/kl_div.wgsl"),
    bindings: &[TEACHER, LOGITS, COLUMN_LOSS, LOSS, DLOGITS],
    needs_subgroups: false,
};

/// `n` clips, `c` classes (the softmax axis), `t` output steps (also the shape of `l2_prob`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KlDivShape {
    pub n: usize,
    pub c: usize,
    pub t: usize,
}

impl KlDivShape {
    /// The number of (n, t) columns, each one distribution over the classes.
    pub fn columns(&self) -> usize {
        self.n * self.t
    }

    pub fn dims(&self) -> [usize; 3] {
        [self.n, self.c, self.t]
    }

    /// Refuses an empty dimension and indices past u32; `op` names the loss in the error.
    pub(crate) fn validate(&self, op: &str) -> Result<()> {
        ensure!(self.n > 0 && self.c > 0 && self.t > 0, "{op}: shape {self:?} has an empty dimension");
        ensure!(
            self.n * self.c * self.t <= u32::MAX as usize,
            "{op}: shape {self:?} has more elements than a u32 index reaches"
        );
        Ok(())
    }

    pub(crate) fn expect_input(&self, op: &str, name: &str, tensor: &Tensor) -> Result<()> {
        ensure!(
            tensor.shape == self.dims(),
            "{op}: {name} has shape {:?}, expected [N, C, T] = {:?}",
            tensor.shape,
            self.dims()
        );
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Params {
    n: u32,
    c: u32,
    t: u32,
    /// What the result is multiplied by: 1/(N*T) for the loss, grad_scale/(N*T) for dZ.
    scale: f32,
}

pub(crate) fn params(shape: &KlDivShape, scale: f64) -> Params {
    Params { n: shape.n as u32, c: shape.c as u32, t: shape.t as u32, scale: scale as f32 }
}

/// Records `loss[0] = KL(P || softmax(Z))` averaged over the columns. Two kernels: one workgroup
/// per column writes that column's loss into `column_loss` (`N * T` values, scratch the caller
/// owns), then a single workgroup adds them up. `p` holds probabilities (any non-negative values
/// work; zeros add nothing), `z` logits; `loss` has one element.
pub fn encode_forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &KlDivShape,
    p: &Tensor,
    z: &Tensor,
    column_loss: &Tensor,
    loss: &Tensor,
) -> Result<()> {
    shape.validate("kl_div")?;
    shape.expect_input("kl_div", "teacher probabilities P", p)?;
    shape.expect_input("kl_div", "student logits Z", z)?;
    ensure!(
        column_loss.numel() == shape.columns(),
        "kl_div: column loss scratch has shape {:?}, expected N*T = {} elements for shape {shape:?}",
        column_loss.shape,
        shape.columns()
    );
    ensure!(loss.numel() == 1, "kl_div: loss has shape {:?}, expected one element", loss.shape);
    let columns = shape.columns();
    let unscaled = params(shape, 1.0);
    gpu.dispatch(
        rec,
        &SHADER,
        "forward_columns",
        &unscaled,
        &[(TEACHER, p), (LOGITS, z), (COLUMN_LOSS, column_loss)],
        grid(columns as u32),
        // Per value: max, exp and sum for the log-sum-exp, then p * (log p - log q).
        Cost::new(8 * z.numel(), p.numel() + z.numel() + columns),
    );
    let mean = params(shape, 1.0 / columns as f64);
    let buffers = [(COLUMN_LOSS, column_loss), (LOSS, loss)];
    gpu.dispatch(rec, &SHADER, "reduce_columns", &mean, &buffers, [1, 1, 1], Cost::new(columns, columns + 1));
    Ok(())
}

/// Records `dz = grad_scale/(N*T) * (softmax(Z) * sum_c P - P)`, the gradient of the forward loss
/// with respect to `z`, times the upstream gradient `grad_scale` (1.0 when the loss is the output).
/// `dz` is overwritten and may not alias `p` or `z`.
pub fn encode_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &KlDivShape,
    p: &Tensor,
    z: &Tensor,
    dz: &Tensor,
    grad_scale: f32,
) -> Result<()> {
    shape.validate("kl_div")?;
    shape.expect_input("kl_div", "teacher probabilities P", p)?;
    shape.expect_input("kl_div", "student logits Z", z)?;
    shape.expect_input("kl_div", "logit gradient dZ", dz)?;
    let columns = shape.columns();
    let scale = params(shape, f64::from(grad_scale) / columns as f64);
    gpu.dispatch(
        rec,
        &SHADER,
        "backward",
        &scale,
        &[(TEACHER, p), (LOGITS, z), (DLOGITS, dz)],
        grid(columns as u32),
        Cost::new(6 * z.numel(), p.numel() + z.numel() + dz.numel()),
    );
    Ok(())
}

impl Tape<'_> {
    /// KL(teacher || softmax(logits)) over the channel axis, averaged over batch and steps, into a
    /// one-element tensor. A loss is a root: `backward` starts from it.
    pub fn kl_div(&mut self, teacher: Var, logits: Var, label: &str) -> Result<Tensor> {
        let zs = self.shape_of(logits, 3, "kl_div: logits [N, C, T]").map_err(|e| e.context(label.to_string()))?;
        ensure!(
            self.value(teacher).shape == zs,
            "{label}: teacher {:?} and logits {zs:?} differ",
            self.value(teacher).shape
        );
        let shape = KlDivShape { n: zs[0], c: zs[1], t: zs[2] };
        let scratch = self.alloc(&[shape.n * shape.t], "kl column losses")?;
        let loss = self.alloc(&[1], label)?;
        let (p, z) = (self.value(teacher).clone(), self.value(logits).clone());
        let node = KlDivNode { shape, teacher, logits };
        self.record(label, Some(Box::new(node)), |g, rec| encode_forward(g, rec, &shape, &p, &z, &scratch, &loss))?;
        Ok(loss)
    }
}

/// kl_div on the tape: the teacher and the logits, from which the backward recomputes the softmax.
struct KlDivNode {
    shape: KlDivShape,
    teacher: Var,
    logits: Var,
}

impl Backward for KlDivNode {
    fn record_backward(&self, tape: &mut Tape, grad_scale: f32) -> Result<()> {
        if !tape.needs_grad(self.logits) {
            return Ok(());
        }
        let dz = tape.fresh_grad(self.logits, "logits")?;
        let (p, z) = (tape.value(self.teacher).clone(), tape.value(self.logits).clone());
        encode_backward(tape.gpu(), &mut tape.backward, &self.shape, &p, &z, &dz, grad_scale)
    }
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
/// Tensors are flat `[N, C, T]` slices, element `(n, c, t)` at `(n * C + c) * T + t`.
pub mod reference {
    use super::KlDivShape;

    /// The flat indices of column (n, t), one per class.
    fn column(shape: &KlDivShape, n: usize, t: usize) -> impl Iterator<Item = usize> + '_ {
        (0..shape.c).map(move |c| (n * shape.c + c) * shape.t + t)
    }

    /// `log_softmax` over the classes of one column, shifted by the max so large logits stay finite.
    fn log_softmax(z: &[f64], indices: &[usize]) -> Vec<f64> {
        let max = indices.iter().map(|&i| z[i]).fold(f64::NEG_INFINITY, f64::max);
        let log_sum_exp = indices.iter().map(|&i| (z[i] - max).exp()).sum::<f64>().ln();
        indices.iter().map(|&i| z[i] - max - log_sum_exp).collect()
    }

    pub fn forward(shape: &KlDivShape, p: &[f64], z: &[f64]) -> f64 {
        let mut total = 0.0;
        for n in 0..shape.n {
            for t in 0..shape.t {
                let indices: Vec<usize> = column(shape, n, t).collect();
                for (&i, log_q) in indices.iter().zip(log_softmax(z, &indices)) {
                    if p[i] > 0.0 {
                        total += p[i] * (p[i].ln() - log_q);
                    }
                }
            }
        }
        total / shape.columns() as f64
    }

    pub fn backward(shape: &KlDivShape, p: &[f64], z: &[f64], grad_scale: f64) -> Vec<f64> {
        let scale = grad_scale / shape.columns() as f64;
        let mut dz = vec![0.0; p.len()];
        for n in 0..shape.n {
            for t in 0..shape.t {
                let indices: Vec<usize> = column(shape, n, t).collect();
                let teacher_mass: f64 = indices.iter().map(|&i| p[i]).sum();
                for (&i, log_q) in indices.iter().zip(log_softmax(z, &indices)) {
                    dz[i] = scale * (log_q.exp() * teacher_mass - p[i]);
                }
            }
        }
        dz
    }
}
