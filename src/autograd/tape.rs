//! The autograd tape.
//!
//! Building the forward pass of a model on a `Tape` allocates each op's output, records the op's
//! forward kernels and remembers the op as a node. `backward` then walks the nodes in reverse and
//! records each op's backward kernels, writing gradients into buffers it allocates once. Nothing
//! runs while the tape is built: the recorded launches are a plan that a training step replays
//! into one command encoder every step, so buffers and bind groups are created once, not per step.
//!
//! Gradients: the first op to send a gradient to a value overwrites that value's gradient buffer,
//! later ones add to it (a value feeding both heads gets the sum). Parameter gradients are always
//! added: the training step clears them once per step, which also makes micro-batch accumulation
//! free.

use anyhow::{ensure, Result};

use crate::gpu::{Dispatch, Gpu};
use crate::ops::batchnorm::TileStats;
use crate::ops::conv1d::ConvKernel;
use crate::ops::{batchnorm, bn_relu_pool, conv1d, kl_div, maxpool1d, relu};
use crate::tensor::Tensor;

/// A value on the tape: an index into its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(usize);

/// Batchnorm's behaviour: batch statistics (and running-stat updates) or the running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    Train,
    Eval,
}

/// How a convolution is recorded.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub stride: usize,
    pub pad: usize,
    pub kernel: ConvKernel,
    /// Whether a training-mode batchnorm follows: the tiled or cpu forward then leaves per-tile
    /// statistics of the output, which `bn_relu_pool` merges instead of reading the output again.
    pub batch_stats: bool,
}

/// The state a batchnorm layer keeps outside the tape.
pub struct RunningStats<'a> {
    pub mean: &'a Tensor,
    pub var: &'a Tensor,
}

enum Node {
    Conv1d {
        shape: conv1d::Conv1dShape,
        kernel: ConvKernel,
        x: Var,
        w: Var,
        b: Var,
        y: Var,
    },
    BatchNorm {
        shape: batchnorm::BatchNormShape,
        x: Var,
        gamma: Var,
        beta: Var,
        y: Var,
        mean: Tensor,
        invstd: Tensor,
        channel_sums: Tensor,
    },
    /// Batchnorm (training) -> ReLU (-> max-pool) fused: its intermediate values are not on the tape.
    BnReluPool {
        shape: bn_relu_pool::BnReluPoolShape,
        x: Var,
        gamma: Var,
        beta: Var,
        y: Var,
        /// None when the layer does not pool.
        argmax: Option<Tensor>,
        mean: Tensor,
        invstd: Tensor,
        channel_sums: Tensor,
    },
    Relu {
        x: Var,
        y: Var,
    },
    MaxPool {
        shape: maxpool1d::MaxPool1dShape,
        x: Var,
        y: Var,
        argmax: Tensor,
    },
    KlDiv {
        shape: kl_div::KlDivShape,
        teacher: Var,
        logits: Var,
    },
}

pub struct Tape<'g> {
    gpu: &'g Gpu,
    values: Vec<Tensor>,
    /// The gradient buffer of each value that needs one: caller-owned for parameters.
    grads: Vec<Option<Tensor>>,
    needs_grad: Vec<bool>,
    is_parameter: Vec<bool>,
    /// Each op with the layer label it was recorded under.
    nodes: Vec<(String, Node)>,
    /// Forward launches in order.
    pub forward: Vec<Dispatch>,
    /// Backward launches in order, filled by `backward`.
    pub backward: Vec<Dispatch>,
    /// Per-tile batch statistics a conv left with its output, by value (see `ConvSpec::batch_stats`).
    tile_stats: Vec<Option<TileStats>>,
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
            tile_stats: Vec::new(),
            forward: Vec::new(),
            backward: Vec::new(),
            allocated_bytes: 0,
            largest: (0, String::new()),
        }
    }

    fn push(&mut self, value: Tensor, needs_grad: bool, grad: Option<Tensor>) -> Var {
        self.values.push(value);
        self.needs_grad.push(needs_grad);
        self.is_parameter.push(grad.is_some());
        self.grads.push(grad);
        self.tile_stats.push(None);
        Var(self.values.len() - 1)
    }

    fn alloc(&mut self, shape: &[usize], label: &str) -> Result<Tensor> {
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

    /// The gradient of `v` after `backward` (None if nothing sent it one).
    pub fn grad(&self, v: Var) -> Option<&Tensor> {
        self.grads[v.0].as_ref()
    }

    fn output(&mut self, shape: &[usize], label: &str, inputs: &[Var]) -> Result<Var> {
        let t = self.alloc(shape, label)?;
        let needs_grad = inputs.iter().any(|v| self.needs_grad[v.0]);
        Ok(self.push(t, needs_grad, None))
    }

    /// `conv1d(x, w) + b` as `spec` says.
    pub fn conv1d(&mut self, x: Var, w: Var, b: Var, spec: ConvSpec, label: &str) -> Result<Var> {
        let start = self.forward.len();
        let (xs, ws) = (&self.values[x.0].shape, &self.values[w.0].shape);
        ensure!(
            xs.len() == 3 && ws.len() == 3,
            "{label}: conv1d needs [N, Cin, L] and [Cout, Cin, K], got {xs:?} and {ws:?}"
        );
        let ConvSpec { stride, pad, kernel, batch_stats } = spec;
        let shape = conv1d::Conv1dShape { n: xs[0], cin: xs[1], l: xs[2], cout: ws[0], k: ws[2], stride, pad };
        let l_out = shape.l_out().map_err(|e| e.context(label.to_string()))?;
        let y = self.output(&[shape.n, shape.cout, l_out], label, &[x, w, b])?;
        let tiles = if batch_stats { conv1d::stats_tiles(self.gpu, kernel, &shape)? } else { None };
        let stats = match tiles {
            Some(tiles) => {
                Some(TileStats { stats: self.alloc(&[tiles, shape.cout, 3], "conv tile statistics")?, tiles })
            }
            None => None,
        };
        let (xv, wv, bv, yv) = (&self.values[x.0], &self.values[w.0], &self.values[b.0], &self.values[y.0]);
        let rec = &mut self.forward;
        match &stats {
            Some(stats) => conv1d::encode_forward_with_stats(self.gpu, rec, kernel, &shape, xv, wv, bv, yv, stats)?,
            None => conv1d::encode_forward(self.gpu, rec, kernel, &shape, xv, wv, bv, yv)?,
        }
        self.tile_stats[y.0] = stats;
        self.record_node(label, start, Node::Conv1d { shape, kernel, x, w, b, y });
        Ok(y)
    }

    pub fn batchnorm(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        stats: RunningStats,
        mode: BnMode,
        label: &str,
    ) -> Result<Var> {
        let start = self.forward.len();
        let xs = self.values[x.0].shape.clone();
        ensure!(xs.len() == 3, "{label}: batchnorm needs [N, C, L], got {xs:?}");
        let shape = batchnorm::BatchNormShape { n: xs[0], c: xs[1], l: xs[2] };
        // Eval mode has no backward: its output carries no gradient.
        let grad_inputs: &[Var] = if mode == BnMode::Train { &[x, gamma, beta] } else { &[] };
        let y = self.output(&xs, label, grad_inputs)?;
        let (g, t) = (self.gpu, &self.values);
        match mode {
            BnMode::Eval => {
                batchnorm::encode_forward_eval(
                    g,
                    &mut self.forward,
                    &shape,
                    &t[x.0],
                    &t[gamma.0],
                    &t[beta.0],
                    stats.mean,
                    stats.var,
                    &t[y.0],
                    batchnorm::DEFAULT_EPS,
                )?;
                scope(&mut self.forward[start..], label);
            }
            BnMode::Train => {
                let mean = self.alloc(&[shape.c], "bn saved mean")?;
                let invstd = self.alloc(&[shape.c], "bn saved invstd")?;
                let t = &self.values;
                batchnorm::encode_forward_train(
                    g,
                    &mut self.forward,
                    &shape,
                    &t[x.0],
                    &t[gamma.0],
                    &t[beta.0],
                    stats.mean,
                    stats.var,
                    &t[y.0],
                    &mean,
                    &invstd,
                    batchnorm::DEFAULT_EPS,
                    batchnorm::DEFAULT_MOMENTUM,
                )?;
                let channel_sums = self.alloc(&[2, shape.c], "bn channel sums")?;
                self.record_node(
                    label,
                    start,
                    Node::BatchNorm { shape, x, gamma, beta, y, mean, invstd, channel_sums },
                );
            }
        }
        Ok(y)
    }

    /// Training-mode batchnorm, ReLU and, when `k > 1`, max-pool with kernel = stride = `k`, as one
    /// op: the same value as `batchnorm` -> `relu` -> `maxpool` in 2 launches instead of 3-4 each
    /// way, and without the full-length batchnorm and ReLU outputs or their gradients.
    pub fn bn_relu_pool(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        stats: RunningStats,
        k: usize,
        label: &str,
    ) -> Result<Var> {
        let start = self.forward.len();
        let xs = self.values[x.0].shape.clone();
        ensure!(xs.len() == 3, "{label}: bn_relu_pool needs [N, C, L], got {xs:?}");
        let shape =
            bn_relu_pool::BnReluPoolShape::new(xs[0], xs[1], xs[2], k).map_err(|e| e.context(label.to_string()))?;
        let y = self.output(&shape.output_shape(), label, &[x, gamma, beta])?;
        let argmax = if shape.pooled() { Some(self.alloc(&shape.output_shape(), "argmax")?) } else { None };
        let mean = self.alloc(&[shape.c], "bn saved mean")?;
        let invstd = self.alloc(&[shape.c], "bn saved invstd")?;
        let t = &self.values;
        bn_relu_pool::encode_forward_train(
            self.gpu,
            &mut self.forward,
            &shape,
            (&t[x.0], self.tile_stats[x.0].as_ref()),
            &t[gamma.0],
            &t[beta.0],
            stats.mean,
            stats.var,
            &t[y.0],
            argmax.as_ref(),
            &mean,
            &invstd,
            batchnorm::DEFAULT_EPS,
            batchnorm::DEFAULT_MOMENTUM,
        )
        .map_err(|e| e.context(label.to_string()))?;
        let channel_sums = self.alloc(&bn_relu_pool::channel_sums_shape(self.gpu, &shape), "bn channel sums")?;
        self.record_node(
            label,
            start,
            Node::BnReluPool { shape, x, gamma, beta, y, argmax, mean, invstd, channel_sums },
        );
        Ok(y)
    }

    pub fn relu(&mut self, x: Var, label: &str) -> Result<Var> {
        let start = self.forward.len();
        let shape = self.values[x.0].shape.clone();
        let y = self.output(&shape, label, &[x])?;
        relu::encode_forward(self.gpu, &mut self.forward, &self.values[x.0], &self.values[y.0])?;
        self.record_node(label, start, Node::Relu { x, y });
        Ok(y)
    }

    /// Max-pool with kernel = stride = `k`, as SoundNet uses.
    pub fn maxpool(&mut self, x: Var, k: usize, label: &str) -> Result<Var> {
        let start = self.forward.len();
        let xs = self.values[x.0].shape.clone();
        let shape = maxpool1d::MaxPool1dShape { n: xs[0], c: xs[1], l: xs[2], k, stride: k };
        let l_out = shape.l_out().map_err(|e| e.context(label.to_string()))?;
        let y = self.output(&[shape.n, shape.c, l_out], label, &[x])?;
        let argmax = self.alloc(&[shape.n, shape.c, l_out], "argmax")?;
        maxpool1d::encode_forward(self.gpu, &mut self.forward, &shape, &self.values[x.0], &self.values[y.0], &argmax)?;
        self.record_node(label, start, Node::MaxPool { shape, x, y, argmax });
        Ok(y)
    }

    /// KL(teacher || softmax(logits)) over the channel axis, averaged over batch and steps, into a
    /// one-element tensor. A loss is a root: `backward` starts from it.
    pub fn kl_div(&mut self, teacher: Var, logits: Var, label: &str) -> Result<Tensor> {
        let start = self.forward.len();
        let zs = self.values[logits.0].shape.clone();
        ensure!(
            self.values[teacher.0].shape == zs,
            "{label}: teacher {:?} and logits {zs:?} differ",
            self.values[teacher.0].shape
        );
        let shape = kl_div::KlDivShape { n: zs[0], c: zs[1], t: zs[2] };
        let scratch = self.alloc(&[shape.n * shape.t], "kl column losses")?;
        let loss = self.alloc(&[1], label)?;
        kl_div::encode_forward(
            self.gpu,
            &mut self.forward,
            &shape,
            &self.values[teacher.0],
            &self.values[logits.0],
            &scratch,
            &loss,
        )?;
        self.record_node(label, start, Node::KlDiv { shape, teacher, logits });
        Ok(loss)
    }

    /// Remembers an op for `backward` and names the launches it recorded from `start` after its layer.
    fn record_node(&mut self, label: &str, start: usize, node: Node) {
        scope(&mut self.forward[start..], label);
        self.nodes.push((label.to_string(), node));
    }

    /// The gradient buffer `v` receives into, and whether the write must add to what is there.
    fn grad_target(&mut self, v: Var, label: &str) -> Result<(Tensor, bool)> {
        if self.is_parameter[v.0] {
            return Ok((self.grads[v.0].clone().expect("parameters carry their gradient"), true));
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
    fn fresh_grad(&mut self, v: Var, label: &str) -> Result<Tensor> {
        let (g, accumulate) = self.grad_target(v, label)?;
        ensure!(!accumulate, "{label}: this value is used by two ops, and its producer cannot sum their gradients");
        Ok(g)
    }

    /// Where a batchnorm's backward writes: gamma and beta's gradients (parameters, so added to)
    /// and a fresh gradient for its input.
    fn batchnorm_grads(&mut self, x: Var, gamma: Var, beta: Var) -> Result<(Tensor, Tensor, Tensor)> {
        ensure!(
            self.is_parameter[gamma.0] && self.is_parameter[beta.0],
            "batchnorm's gamma and beta must be parameters"
        );
        let (dgamma, _) = self.grad_target(gamma, "bn gamma")?;
        let (dbeta, _) = self.grad_target(beta, "bn beta")?;
        Ok((dgamma, dbeta, self.fresh_grad(x, "bn input")?))
    }

    /// Records the backward pass from every loss on the tape, each with upstream gradient
    /// `grad_scale` (1, or 1/n when n micro-batches are accumulated).
    pub fn backward(&mut self, grad_scale: f32) -> Result<()> {
        let nodes = std::mem::take(&mut self.nodes);
        let result = nodes.iter().rev().try_for_each(|(label, node)| {
            let start = self.backward.len();
            self.backward_node(node, grad_scale)?;
            scope(&mut self.backward[start..], label);
            Ok(())
        });
        self.nodes = nodes;
        result
    }

    fn backward_node(&mut self, node: &Node, grad_scale: f32) -> Result<()> {
        let g = self.gpu;
        match *node {
            Node::KlDiv { ref shape, teacher, logits } => {
                if self.needs_grad[logits.0] {
                    let dz = self.fresh_grad(logits, "logits")?;
                    let t = &self.values;
                    kl_div::encode_backward(
                        g,
                        &mut self.backward,
                        shape,
                        &t[teacher.0],
                        &t[logits.0],
                        &dz,
                        grad_scale,
                    )?;
                }
            }
            Node::Conv1d { ref shape, kernel, x, w, b, y } => {
                let Some(dy) = self.grads[y.0].clone() else { return Ok(()) };
                if self.needs_grad[w.0] || self.needs_grad[b.0] {
                    ensure!(
                        self.is_parameter[w.0] && self.is_parameter[b.0],
                        "conv {shape:?}: its weight and bias must both be parameters, or neither"
                    );
                    let (dw, _) = self.grad_target(w, "conv weight")?;
                    let (db, _) = self.grad_target(b, "conv bias")?;
                    let partials = match conv1d::weight_grad_partials(g, kernel, shape)? {
                        0 => None,
                        len => Some(self.alloc(&[len], "conv parameter gradient partial sums")?),
                    };
                    let (inputs, grads) = ((&self.values[x.0], &dy), (&dw, &db));
                    // Parameter gradients always add: micro-batches sum into them.
                    let rec = &mut self.backward;
                    conv1d::encode_backward_params(g, rec, kernel, shape, inputs, grads, true, partials.as_ref())?;
                }
                if self.needs_grad[x.0] {
                    let (dx, acc) = self.grad_target(x, "conv input")?;
                    let w = &self.values[w.0];
                    conv1d::encode_backward_input(g, &mut self.backward, kernel, shape, &dy, w, &dx, acc)?;
                }
            }
            Node::BatchNorm { ref shape, x, gamma, beta, y, ref mean, ref invstd, ref channel_sums } => {
                let Some(dy) = self.grads[y.0].clone() else { return Ok(()) };
                let (dgamma, dbeta, dx) = self.batchnorm_grads(x, gamma, beta)?;
                let t = &self.values;
                batchnorm::encode_backward(
                    g,
                    &mut self.backward,
                    shape,
                    &t[x.0],
                    &dy,
                    &t[gamma.0],
                    mean,
                    invstd,
                    &dx,
                    &dgamma,
                    &dbeta,
                    channel_sums,
                    true,
                )?;
            }
            Node::BnReluPool { ref shape, x, gamma, beta, y, ref argmax, ref mean, ref invstd, ref channel_sums } => {
                let Some(dy) = self.grads[y.0].clone() else { return Ok(()) };
                let (dgamma, dbeta, dx) = self.batchnorm_grads(x, gamma, beta)?;
                let t = &self.values;
                bn_relu_pool::encode_backward(
                    g,
                    &mut self.backward,
                    shape,
                    &t[x.0],
                    &dy,
                    argmax.as_ref(),
                    &t[gamma.0],
                    &t[beta.0],
                    mean,
                    invstd,
                    &dx,
                    &dgamma,
                    &dbeta,
                    channel_sums,
                    true,
                )?;
            }
            Node::Relu { x, y } => {
                let Some(dy) = self.grads[y.0].clone() else { return Ok(()) };
                let dx = self.fresh_grad(x, "relu input")?;
                relu::encode_backward(g, &mut self.backward, &self.values[x.0], &dy, &dx)?;
            }
            Node::MaxPool { ref shape, x, y, ref argmax } => {
                let Some(dy) = self.grads[y.0].clone() else { return Ok(()) };
                let dx = self.fresh_grad(x, "pool input")?;
                maxpool1d::encode_backward(g, &mut self.backward, shape, argmax, &dy, &dx)?;
            }
        }
        Ok(())
    }
}

/// Tags launches with the layer they belong to, for profiles and traces.
fn scope(dispatches: &mut [Dispatch], label: &str) {
    for d in dispatches {
        d.set_scope(label);
    }
}
