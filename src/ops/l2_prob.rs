//! The paper's other teacher-student loss (Table 5, "L2"): squared error between the teacher's
//! probabilities `P` and the softmax over channels of the student's logits `Z`, both `[N, C, T]`,
//! summed over classes and averaged over the `N * T` columns.
//! `loss = 1/(N*T) * sum_{n,t} sum_c (q - P)^2` with `q = softmax(Z)`.
//! Backward `dZ = grad_scale/(N*T) * 2 q (r - sum_c q r)`, `r = q - P`. Shader: `shaders/l2_prob.wgsl`.
//! Its columns are laid out as `kl_div`'s, so it shares `KlDivShape` and its `Params`.

use anyhow::{ensure, Result};

use super::kl_div::{params, KlDivShape};
use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, Cost, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/l2_prob.wgsl, each named once; launches bind them by these names.
const TEACHER: Binding = Binding::read(1, "teacher");
const LOGITS: Binding = Binding::read(2, "logits");
const COLUMN_LOSS: Binding = Binding::read_write(3, "column_loss");
const LOSS: Binding = Binding::read_write(4, "loss");
const DLOGITS: Binding = Binding::read_write(5, "dlogits");

/// `shaders/l2_prob.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "l2_prob",
    source: include_str!("../../shaders/l2_prob.wgsl"),
    bindings: &[TEACHER, LOGITS, COLUMN_LOSS, LOSS, DLOGITS],
    needs_subgroups: false,
};

const OP: &str = "l2_prob";

/// Records `loss[0]`, the squared error of `softmax(z)` against `p` averaged over the columns: one
/// workgroup per column writes its sum into `column_loss` (`N * T` values, scratch the caller
/// owns), then a single workgroup adds them up. `loss` has one element.
pub fn encode_forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &KlDivShape,
    p: &Tensor,
    z: &Tensor,
    column_loss: &Tensor,
    loss: &Tensor,
) -> Result<()> {
    shape.validate(OP)?;
    shape.expect_input(OP, "teacher probabilities P", p)?;
    shape.expect_input(OP, "student logits Z", z)?;
    ensure!(
        column_loss.numel() == shape.columns(),
        "{OP}: column loss scratch has shape {:?}, expected N*T = {} elements for shape {shape:?}",
        column_loss.shape,
        shape.columns()
    );
    ensure!(loss.numel() == 1, "{OP}: loss has shape {:?}, expected one element", loss.shape);
    let columns = shape.columns();
    gpu.dispatch(
        rec,
        &SHADER,
        "forward_columns",
        &params(shape, 1.0),
        &[(TEACHER, p), (LOGITS, z), (COLUMN_LOSS, column_loss)],
        grid(columns as u32),
        // Per value: max, exp and sum for the softmax, then (q - p)^2.
        Cost::new(8 * z.numel(), p.numel() + z.numel() + columns),
    );
    let mean = params(shape, 1.0 / columns as f64);
    let buffers = [(COLUMN_LOSS, column_loss), (LOSS, loss)];
    gpu.dispatch(rec, &SHADER, "reduce_columns", &mean, &buffers, [1, 1, 1], Cost::new(columns, columns + 1));
    Ok(())
}

/// Records `dz = grad_scale/(N*T) * 2 q (r - sum_c q r)`, the gradient of the forward loss with
/// respect to `z` times the upstream gradient `grad_scale`. `dz` is overwritten and may not alias
/// `p` or `z`.
pub fn encode_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &KlDivShape,
    p: &Tensor,
    z: &Tensor,
    dz: &Tensor,
    grad_scale: f32,
) -> Result<()> {
    shape.validate(OP)?;
    shape.expect_input(OP, "teacher probabilities P", p)?;
    shape.expect_input(OP, "student logits Z", z)?;
    shape.expect_input(OP, "logit gradient dZ", dz)?;
    let columns = shape.columns();
    gpu.dispatch(
        rec,
        &SHADER,
        "backward",
        &params(shape, f64::from(grad_scale) / columns as f64),
        &[(TEACHER, p), (LOGITS, z), (DLOGITS, dz)],
        grid(columns as u32),
        Cost::new(10 * z.numel(), p.numel() + z.numel() + dz.numel()),
    );
    Ok(())
}

impl Tape<'_> {
    /// Squared error of softmax(logits) against the teacher over the channel axis, averaged over
    /// batch and steps, into a one-element tensor. A loss is a root: `backward` starts from it.
    pub fn l2_prob(&mut self, teacher: Var, logits: Var, label: &str) -> Result<Tensor> {
        let zs = self.shape_of(logits, 3, "l2_prob: logits [N, C, T]").map_err(|e| e.context(label.to_string()))?;
        ensure!(
            self.value(teacher).shape == zs,
            "{label}: teacher {:?} and logits {zs:?} differ",
            self.value(teacher).shape
        );
        let shape = KlDivShape { n: zs[0], c: zs[1], t: zs[2] };
        let scratch = self.alloc(&[shape.n * shape.t], "l2 column losses")?;
        let loss = self.alloc(&[1], label)?;
        let (p, z) = (self.value(teacher).clone(), self.value(logits).clone());
        let node = L2ProbNode { shape, teacher, logits };
        self.record(label, Some(Box::new(node)), |g, rec| encode_forward(g, rec, &shape, &p, &z, &scratch, &loss))?;
        Ok(loss)
    }
}

/// l2_prob on the tape: the teacher and the logits, from which the backward recomputes the softmax.
struct L2ProbNode {
    shape: KlDivShape,
    teacher: Var,
    logits: Var,
}

impl Backward for L2ProbNode {
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

    /// softmax over the classes of column (n, t): (flat index, probability) per class.
    fn softmax_column(shape: &KlDivShape, z: &[f64], n: usize, t: usize) -> Vec<(usize, f64)> {
        let indices: Vec<usize> = (0..shape.c).map(|c| (n * shape.c + c) * shape.t + t).collect();
        let max = indices.iter().map(|&i| z[i]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = indices.iter().map(|&i| (z[i] - max).exp()).sum();
        indices.into_iter().map(|i| (i, (z[i] - max).exp() / sum)).collect()
    }

    pub fn forward(shape: &KlDivShape, p: &[f64], z: &[f64]) -> f64 {
        let mut total = 0.0;
        for n in 0..shape.n {
            for t in 0..shape.t {
                total += softmax_column(shape, z, n, t).iter().map(|&(i, q)| (q - p[i]).powi(2)).sum::<f64>();
            }
        }
        total / shape.columns() as f64
    }

    pub fn backward(shape: &KlDivShape, p: &[f64], z: &[f64], grad_scale: f64) -> Vec<f64> {
        let scale = grad_scale / shape.columns() as f64;
        let mut dz = vec![0.0; p.len()];
        for n in 0..shape.n {
            for t in 0..shape.t {
                let q = softmax_column(shape, z, n, t);
                let q_dot_r: f64 = q.iter().map(|&(i, q)| q * (q - p[i])).sum();
                for (i, q) in q {
                    dz[i] = scale * 2.0 * q * ((q - p[i]) - q_dot_r);
                }
            }
        }
        dz
    }
}
