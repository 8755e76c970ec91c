//! The teacher-student losses: how far the softmax over channels of the student's logits `Z` is
//! from the teacher's probabilities `P`, both `[N, C, T]`, per (n, t) column, averaged over the
//! `N * T` columns. `q = softmax(Z)` over the `C` classes of a column.
//!
//! - `TeacherLoss::Kl`, the paper's: `loss = 1/(N*T) * sum_{n,t} sum_c P (log P - log q)`, with
//!   `0 log 0 = 0`. Backward `dZ = grad_scale/(N*T) * (q * sum_c P - P)`. On one-hot rows
//!   (`train --labels`) this is cross-entropy, `-log q[label]`, with `dZ ∝ q - onehot`.
//! - `TeacherLoss::L2`, the paper's comparison (Table 5, "L2"): `loss = 1/(N*T) * sum_{n,t} sum_c
//!   (q - P)^2`. Backward `dZ = grad_scale/(N*T) * 2 q (r - sum_c q r)`, `r = q - P`.
//!
//! The two share everything but that per-column math: the column layout and its shape, the
//! parameters, the checks, the scratch, the final reduction, the `Tape` method and the backward
//! node. Shader: `shaders/teacher_loss.wgsl` (an entry point per loss and pass, the helpers and the
//! reduction once).

pub mod selftest;

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, Cost, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/teacher_loss.wgsl, each named once; launches bind them by these
// names.
const TEACHER: Binding = Binding::read(1, "teacher");
const LOGITS: Binding = Binding::read(2, "logits");
const COLUMN_LOSS: Binding = Binding::read_write(3, "column_loss");
const LOSS: Binding = Binding::read_write(4, "loss");
const DLOGITS: Binding = Binding::read_write(5, "dlogits");

/// `shaders/teacher_loss.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "teacher_loss",
    source: include_str!("../../../shaders/teacher_loss.wgsl"),
    bindings: &[TEACHER, LOGITS, COLUMN_LOSS, LOSS, DLOGITS],
    needs_subgroups: false,
};

/// How the student's probabilities are compared with the teacher's (`--loss`, the paper's Table 5).
/// Its `Display` and `FromStr` spelling (`kl`, `l2`) is the one `--loss` takes and run records keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherLoss {
    /// KL(teacher || softmax(logits)): the paper's loss.
    #[default]
    Kl,
    /// Squared error between softmax(logits) and the teacher's probabilities.
    L2,
}

/// A loss's two per-column kernels in `shaders/teacher_loss.wgsl` and their arithmetic per value.
struct Kernels {
    forward: &'static str,
    backward: &'static str,
    forward_flops: usize,
    backward_flops: usize,
}

impl TeacherLoss {
    pub const ALL: [TeacherLoss; 2] = [TeacherLoss::Kl, TeacherLoss::L2];

    /// The op's name in errors and in selftest checks.
    pub fn op(self) -> &'static str {
        match self {
            TeacherLoss::Kl => "teacher_loss kl",
            TeacherLoss::L2 => "teacher_loss l2",
        }
    }

    fn kernels(self) -> Kernels {
        match self {
            // Forward, per value: max, exp and sum for the log-sum-exp, then p * (log p - log q).
            // Backward: max, exp, sum, the teacher's mass, q * mass - p.
            TeacherLoss::Kl => {
                Kernels { forward: "kl_forward_columns", backward: "kl_backward", forward_flops: 8, backward_flops: 6 }
            }
            // Forward: max, exp and sum for the softmax, then (q - p)^2. Backward: the softmax,
            // sum_c q r, then 2 q (r - sum_c q r), with q computed twice.
            TeacherLoss::L2 => {
                Kernels { forward: "l2_forward_columns", backward: "l2_backward", forward_flops: 8, backward_flops: 10 }
            }
        }
    }
}

impl std::str::FromStr for TeacherLoss {
    type Err = String;
    fn from_str(s: &str) -> Result<TeacherLoss, String> {
        match s {
            "kl" => Ok(TeacherLoss::Kl),
            "l2" => Ok(TeacherLoss::L2),
            other => Err(format!("unknown loss {other:?}: expected kl or l2")),
        }
    }
}

impl std::fmt::Display for TeacherLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            TeacherLoss::Kl => "kl",
            TeacherLoss::L2 => "l2",
        })
    }
}

/// `n` clips, `c` classes (the softmax axis), `t` output steps: `N * T` columns of `C` values,
/// element `(n, c, t)` at `(n * C + c) * T + t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnShape {
    pub n: usize,
    pub c: usize,
    pub t: usize,
}

impl ColumnShape {
    /// The number of (n, t) columns, each one distribution over the classes.
    pub fn columns(&self) -> usize {
        self.n * self.t
    }

    pub fn dims(&self) -> [usize; 3] {
        [self.n, self.c, self.t]
    }

    /// Refuses an empty dimension, indices past u32, and teacher probabilities `p` or student
    /// logits `z` of another shape; `op` names the loss in the error.
    fn check_inputs(&self, op: &str, p: &Tensor, z: &Tensor) -> Result<()> {
        ensure!(self.n > 0 && self.c > 0 && self.t > 0, "{op}: shape {self:?} has an empty dimension");
        ensure!(
            self.n * self.c * self.t <= u32::MAX as usize,
            "{op}: shape {self:?} has more elements than a u32 index reaches"
        );
        self.expect(op, "teacher probabilities P", p)?;
        self.expect(op, "student logits Z", z)
    }

    fn expect(&self, op: &str, name: &str, tensor: &Tensor) -> Result<()> {
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
struct Params {
    n: u32,
    c: u32,
    t: u32,
    /// What the result is multiplied by: 1/(N*T) for the loss, grad_scale/(N*T) for dZ.
    scale: f32,
}

fn params(shape: &ColumnShape, scale: f64) -> Params {
    Params { n: shape.n as u32, c: shape.c as u32, t: shape.t as u32, scale: scale as f32 }
}

/// Records `loss[0]`, the `kind` loss of `softmax(z)` against `p` averaged over the columns. Two
/// kernels: one workgroup per column writes that column's loss into `column_loss` (`N * T` values,
/// scratch the caller owns), then a single workgroup adds them up. `p` holds probabilities (for KL
/// any non-negative values work; zeros add nothing), `z` logits; `loss` has one element.
pub fn encode_forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    kind: TeacherLoss,
    shape: &ColumnShape,
    (p, z): (&Tensor, &Tensor),
    column_loss: &Tensor,
    loss: &Tensor,
) -> Result<()> {
    let op = kind.op();
    shape.check_inputs(op, p, z)?;
    ensure!(
        column_loss.numel() == shape.columns(),
        "{op}: column loss scratch has shape {:?}, expected N*T = {} elements for shape {shape:?}",
        column_loss.shape,
        shape.columns()
    );
    ensure!(loss.numel() == 1, "{op}: loss has shape {:?}, expected one element", loss.shape);
    let (columns, kernels) = (shape.columns(), kind.kernels());
    gpu.dispatch(
        rec,
        SHADER.entry(kernels.forward),
        &params(shape, 1.0),
        &[(TEACHER, p), (LOGITS, z), (COLUMN_LOSS, column_loss)],
        grid(columns as u32),
        Cost::new(kernels.forward_flops * z.numel(), p.numel() + z.numel() + columns),
    );
    let mean = params(shape, 1.0 / columns as f64);
    let buffers = [(COLUMN_LOSS, column_loss), (LOSS, loss)];
    gpu.dispatch(rec, SHADER.entry("reduce_columns"), &mean, &buffers, [1, 1, 1], Cost::new(columns, columns + 1));
    Ok(())
}

/// Records `dz`, the gradient of the `kind` loss with respect to `z` times the upstream gradient
/// `grad_scale` (1.0 when the loss is the output); the formulas are in the module's header. `dz` is
/// overwritten and may not alias `p` or `z`.
pub fn encode_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    kind: TeacherLoss,
    shape: &ColumnShape,
    (p, z): (&Tensor, &Tensor),
    dz: &Tensor,
    grad_scale: f32,
) -> Result<()> {
    let op = kind.op();
    shape.check_inputs(op, p, z)?;
    shape.expect(op, "logit gradient dZ", dz)?;
    let (columns, kernels) = (shape.columns(), kind.kernels());
    gpu.dispatch(
        rec,
        SHADER.entry(kernels.backward),
        &params(shape, f64::from(grad_scale) / columns as f64),
        &[(TEACHER, p), (LOGITS, z), (DLOGITS, dz)],
        grid(columns as u32),
        Cost::new(kernels.backward_flops * z.numel(), p.numel() + z.numel() + dz.numel()),
    );
    Ok(())
}

impl Tape<'_> {
    /// The `kind` loss of softmax(logits) against the teacher over the channel axis, averaged over
    /// batch and steps, into a one-element tensor. A loss is a root: `backward` starts from it.
    pub fn teacher_loss(&mut self, kind: TeacherLoss, teacher: Var, logits: Var, label: &str) -> Result<Tensor> {
        let what = format!("{}: logits [N, C, T]", kind.op());
        let zs = self.shape_of(logits, 3, &what).map_err(|e| e.context(label.to_string()))?;
        ensure!(
            self.value(teacher).shape == zs,
            "{label}: teacher {:?} and logits {zs:?} differ",
            self.value(teacher).shape
        );
        let shape = ColumnShape { n: zs[0], c: zs[1], t: zs[2] };
        let scratch = self.alloc(&[shape.columns()], &format!("{kind} column losses"))?;
        let loss = self.alloc(&[1], label)?;
        let (p, z) = (self.value(teacher).clone(), self.value(logits).clone());
        let node = TeacherLossNode { kind, shape, teacher, logits };
        self.record(label, Some(Box::new(node)), |g, rec| {
            encode_forward(g, rec, kind, &shape, (&p, &z), &scratch, &loss)
        })?;
        Ok(loss)
    }
}

/// A teacher loss on the tape: which one, the teacher and the logits, from which the backward
/// recomputes the softmax.
struct TeacherLossNode {
    kind: TeacherLoss,
    shape: ColumnShape,
    teacher: Var,
    logits: Var,
}

impl Backward for TeacherLossNode {
    fn record_backward(&self, tape: &mut Tape, grad_scale: f32) -> Result<()> {
        if !tape.needs_grad(self.logits) {
            return Ok(());
        }
        let dz = tape.fresh_grad(self.logits, "logits")?;
        let (p, z) = (tape.value(self.teacher).clone(), tape.value(self.logits).clone());
        encode_backward(tape.gpu(), &mut tape.backward, self.kind, &self.shape, (&p, &z), &dz, grad_scale)
    }
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
/// Tensors are flat `[N, C, T]` slices, element `(n, c, t)` at `(n * C + c) * T + t`. `forward`
/// and `backward` walk the columns; `kl` and `l2` hold each loss's math on one column's `C` values.
pub mod reference {
    use super::{ColumnShape, TeacherLoss};

    /// The flat indices of each (n, t) column, one per class.
    fn columns(shape: &ColumnShape) -> impl Iterator<Item = Vec<usize>> + '_ {
        (0..shape.n).flat_map(move |n| {
            (0..shape.t).map(move |t| (0..shape.c).map(|c| (n * shape.c + c) * shape.t + t).collect())
        })
    }

    fn gather(values: &[f64], indices: &[usize]) -> Vec<f64> {
        indices.iter().map(|&i| values[i]).collect()
    }

    /// The loss, averaged over the columns.
    pub fn forward(kind: TeacherLoss, shape: &ColumnShape, p: &[f64], z: &[f64]) -> f64 {
        let mut total = 0.0;
        for indices in columns(shape) {
            let (p, z) = (gather(p, &indices), gather(z, &indices));
            total += match kind {
                TeacherLoss::Kl => kl::column_loss(&p, &z),
                TeacherLoss::L2 => l2::column_loss(&p, &z),
            };
        }
        total / shape.columns() as f64
    }

    /// The gradient of `forward` with respect to `z`, times `grad_scale`.
    pub fn backward(kind: TeacherLoss, shape: &ColumnShape, p: &[f64], z: &[f64], grad_scale: f64) -> Vec<f64> {
        let scale = grad_scale / shape.columns() as f64;
        let mut dz = vec![0.0; p.len()];
        for indices in columns(shape) {
            let (p, z) = (gather(p, &indices), gather(z, &indices));
            let grad = match kind {
                TeacherLoss::Kl => kl::column_grad(&p, &z),
                TeacherLoss::L2 => l2::column_grad(&p, &z),
            };
            for (&i, g) in indices.iter().zip(grad) {
                dz[i] = scale * g;
            }
        }
        dz
    }

    /// `log_softmax` of one column's logits, shifted by the max so large logits stay finite.
    fn log_softmax(z: &[f64]) -> Vec<f64> {
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum_exp = z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
        z.iter().map(|&v| v - max - log_sum_exp).collect()
    }

    /// `softmax` of one column's logits, shifted by the max likewise.
    fn softmax(z: &[f64]) -> Vec<f64> {
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
        z.iter().map(|&v| (v - max).exp() / sum).collect()
    }

    /// KL divergence on one column: teacher probabilities `p` and student logits `z`, `C` each.
    pub mod kl {
        /// `sum_c p (log p - log q)`, with `0 log 0 = 0`.
        pub fn column_loss(p: &[f64], z: &[f64]) -> f64 {
            let terms = p.iter().zip(super::log_softmax(z));
            terms.filter(|&(&p, _)| p > 0.0).map(|(&p, log_q)| p * (p.ln() - log_q)).sum()
        }

        /// Its gradient with respect to `z`: `q * sum_c p - p`. Keeping `sum_c p` rather than
        /// assuming it is 1 makes it exact for any teacher.
        pub fn column_grad(p: &[f64], z: &[f64]) -> Vec<f64> {
            let teacher_mass: f64 = p.iter().sum();
            p.iter().zip(super::log_softmax(z)).map(|(&p, log_q)| log_q.exp() * teacher_mass - p).collect()
        }
    }

    /// Squared error of the probabilities on one column: teacher `p` and student logits `z`.
    pub mod l2 {
        /// `sum_c (q - p)^2`.
        pub fn column_loss(p: &[f64], z: &[f64]) -> f64 {
            p.iter().zip(super::softmax(z)).map(|(&p, q)| (q - p).powi(2)).sum()
        }

        /// Its gradient with respect to `z`: `2 q (r - sum_c q r)`, `r = q - p`.
        pub fn column_grad(p: &[f64], z: &[f64]) -> Vec<f64> {
            let q = super::softmax(z);
            let q_dot_r: f64 = q.iter().zip(p).map(|(&q, &p)| q * (q - p)).sum();
            q.iter().zip(p).map(|(&q, &p)| 2.0 * q * ((q - p) - q_dot_r)).collect()
        }
    }
}
