//! The autograd tape.
//!
//! Building the forward pass of a model on a `Tape` allocates each op's output, records the op's
//! forward kernels and keeps the op's node: the values it read and the state it saved, which knows
//! how to record the op's backward pass. `backward` then walks the nodes in reverse and asks each to
//! record its backward kernels, writing gradients into buffers the tape allocates once. Nothing
//! runs while the tape is built: the recorded launches are a plan that a training step replays
//! into one command encoder every step, so buffers and bind groups are created once, not per step.
//!
//! The tape knows no op. Each op's module (`src/ops/`) adds its method to `Tape` (`Tape::relu` is
//! in `ops/relu.rs`, beside the kernels it records, its node and its reference) and a node type
//! that implements [`Backward`]. What the tape keeps is the bookkeeping every op shares: values,
//! gradients, which values need one, the order, and accumulation.
//!
//! Gradients: the first op to send a gradient to a value overwrites that value's gradient buffer,
//! later ones add to it (a value feeding both heads gets the sum). Parameter gradients are always
//! added: the training step clears them once per step, which also makes micro-batch accumulation
//! free.

use anyhow::{ensure, Result};

use crate::gpu::{Dispatch, Gpu, Tensor};

/// A value on the tape: an index into its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(usize);

/// An op as the tape keeps it after its forward pass: records the op's backward pass.
pub trait Backward {
    /// Records the backward kernels into `tape.backward`, from the gradients of the op's outputs
    /// (`Tape::upstream`) to its inputs' (`Tape::grad_target` and friends). A loss's upstream
    /// gradient is `grad_scale`.
    fn record_backward(&self, tape: &mut Tape, grad_scale: f32) -> Result<()>;
}

pub struct Tape<'g> {
    gpu: &'g Gpu,
    values: Vec<Tensor>,
    /// The gradient buffer of each value that needs one: caller-owned for parameters.
    grads: Vec<Option<Tensor>>,
    needs_grad: Vec<bool>,
    is_parameter: Vec<bool>,
    /// Each op with the layer label it was recorded under.
    nodes: Vec<(String, Box<dyn Backward>)>,
    /// Forward launches in order.
    pub forward: Vec<Dispatch>,
    /// Backward launches in order, filled by `backward`.
    pub backward: Vec<Dispatch>,
    /// Bytes of every tensor the tape allocated (activations, gradients, scratch).
    pub allocated_bytes: u64,
    /// The largest single tensor the tape allocated: its bytes and label.
    pub largest: (u64, String),
}

impl<'g> Tape<'g> {
    pub fn new(gpu: &'g Gpu) -> Tape<'g> {
        Tape {
            gpu,
            values: Vec::new(),
            grads: Vec::new(),
            needs_grad: Vec::new(),
            is_parameter: Vec::new(),
            nodes: Vec::new(),
            forward: Vec::new(),
            backward: Vec::new(),
            allocated_bytes: 0,
            largest: (0, String::new()),
        }
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    fn push(&mut self, value: Tensor, needs_grad: bool, grad: Option<Tensor>) -> Var {
        self.values.push(value);
        self.needs_grad.push(needs_grad);
        self.is_parameter.push(grad.is_some());
        self.grads.push(grad);
        Var(self.values.len() - 1)
    }

    /// A tensor of zeros the tape owns (scratch, saved state), counted in its memory.
    pub fn alloc(&mut self, shape: &[usize], label: &str) -> Result<Tensor> {
        let t = Tensor::zeros(self.gpu, shape, label)?;
        self.allocated_bytes += t.bytes();
        if t.bytes() > self.largest.0 {
            self.largest = (t.bytes(), format!("{label} {shape:?}"));
        }
        Ok(t)
    }

    /// A value with no gradient: the input waveform, the teacher.
    pub fn input(&mut self, value: &Tensor) -> Var {
        self.push(value.clone(), false, None)
    }

    /// A trainable parameter whose gradient is added into `grad`.
    pub fn parameter(&mut self, value: &Tensor, grad: &Tensor) -> Var {
        self.push(value.clone(), true, Some(grad.clone()))
    }

    pub fn value(&self, v: Var) -> &Tensor {
        &self.values[v.0]
    }

    /// The shape of `v`, checked to have `rank` axes (`what` names them for the error).
    pub fn shape_of(&self, v: Var, rank: usize, what: &str) -> Result<Vec<usize>> {
        let shape = &self.values[v.0].shape;
        ensure!(shape.len() == rank, "needs {what}, got {shape:?}");
        Ok(shape.clone())
    }

    /// The gradient of `v` after `backward` (None if nothing sent it one).
    pub fn grad(&self, v: Var) -> Option<&Tensor> {
        self.grads[v.0].as_ref()
    }

    /// A new value of `shape` computed from `inputs`: it needs a gradient when any of them does.
    pub fn output(&mut self, shape: &[usize], label: &str, inputs: &[Var]) -> Result<Var> {
        let t = self.alloc(shape, label)?;
        let needs_grad = inputs.iter().any(|v| self.needs_grad[v.0]);
        Ok(self.push(t, needs_grad, None))
    }

    /// Records one op's forward launches (`encode` appends them), names them after its layer
    /// `label`, and keeps its `node` for `backward` (None: the op has no backward, as eval mode).
    pub fn record(
        &mut self,
        label: &str,
        node: Option<Box<dyn Backward>>,
        encode: impl FnOnce(&'g Gpu, &mut Vec<Dispatch>) -> Result<()>,
    ) -> Result<()> {
        let start = self.forward.len();
        encode(self.gpu, &mut self.forward)?;
        scope(&mut self.forward[start..], label);
        if let Some(node) = node {
            self.nodes.push((label.to_string(), node));
        }
        Ok(())
    }

    /// The gradient that reached `y` from the ops after it, or None when none did (nothing
    /// downstream needs one, so the op's backward records nothing).
    pub fn upstream(&self, y: Var) -> Option<Tensor> {
        self.grads[y.0].clone()
    }

    pub fn needs_grad(&self, v: Var) -> bool {
        self.needs_grad[v.0]
    }

    /// The gradient buffer `v` receives into, and whether the write must add to what is there.
    pub fn grad_target(&mut self, v: Var, label: &str) -> Result<(Tensor, bool)> {
        if self.is_parameter[v.0] {
            return Ok((self.grads[v.0].clone().expect("parameters hold their gradient"), true));
        }
        let accumulate = self.grads[v.0].is_some();
        if !accumulate {
            let shape = self.values[v.0].shape.clone();
            let g = self.alloc(&shape, &format!("grad {label}"))?;
            self.grads[v.0] = Some(g);
        }
        Ok((self.grads[v.0].clone().expect("just allocated"), accumulate))
    }

    /// Like `grad_target` for kernels that can only overwrite: a value used twice must come from an
    /// op whose backward can add.
    pub fn fresh_grad(&mut self, v: Var, label: &str) -> Result<Tensor> {
        let (g, accumulate) = self.grad_target(v, label)?;
        ensure!(!accumulate, "{label}: this value is used by two ops, and its producer cannot sum their gradients");
        Ok(g)
    }

    /// The gradient buffers of `params`, which must all be parameters (always added to); `what`
    /// names them for the error.
    pub fn parameter_grads<const P: usize>(&mut self, params: [Var; P], what: &str) -> Result<[Tensor; P]> {
        ensure!(params.iter().all(|v| self.is_parameter[v.0]), "{what} must all be parameters, or none");
        Ok(params.map(|v| self.grads[v.0].clone().expect("parameters hold their gradient")))
    }

    /// Records the backward pass from every loss on the tape, each with upstream gradient
    /// `grad_scale` (1, or 1/n when n micro-batches are accumulated).
    pub fn backward(&mut self, grad_scale: f32) -> Result<()> {
        let nodes = std::mem::take(&mut self.nodes);
        let result = nodes.iter().rev().try_for_each(|(label, node)| {
            let start = self.backward.len();
            node.record_backward(self, grad_scale)?;
            scope(&mut self.backward[start..], label);
            Ok(())
        });
        self.nodes = nodes;
        result
    }
}

/// Tags launches with the layer they belong to, for profiles and traces.
fn scope(dispatches: &mut [Dispatch], label: &str) {
    for d in dispatches {
        d.set_scope(label);
    }
}
