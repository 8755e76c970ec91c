//! Batch normalization over `[N, C, L]` (PyTorch `BatchNorm1d`): each channel is normalized over
//! its `M = N * L` values, then scaled by `gamma` and shifted by `beta`. Training mode uses the
//! batch's statistics and updates the running ones; eval mode uses the running ones.
//! Shader: `shaders/batchnorm.wgsl`.

pub mod selftest;

use anyhow::{bail, ensure, Result};
use bytemuck::{Pod, Zeroable};

use super::conv1d::TileStats;
use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, groups_for, Cost, Dispatch, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/batchnorm.wgsl, each named once; launches bind them by these names.
const X: Binding = Binding::read(1, "x");
const GAMMA: Binding = Binding::read(2, "gamma");
const BETA: Binding = Binding::read(3, "beta");
const RUNNING_MEAN: Binding = Binding::read_write(4, "running_mean");
const RUNNING_VAR: Binding = Binding::read_write(5, "running_var");
const Y: Binding = Binding::read_write(6, "y");
const SAVE_MEAN: Binding = Binding::read_write(7, "save_mean");
const SAVE_INVSTD: Binding = Binding::read_write(8, "save_invstd");
const DY: Binding = Binding::read(9, "dy");
const DX: Binding = Binding::read_write(10, "dx");
const DGAMMA: Binding = Binding::read_write(11, "dgamma");
const DBETA: Binding = Binding::read_write(12, "dbeta");
const CHANNEL_SUMS: Binding = Binding::read_write(13, "channel_sums");
const TILE_STATS: Binding = Binding::read(14, "tile_stats");

/// `shaders/batchnorm.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "batchnorm",
    source: include_str!("../../../shaders/batchnorm.wgsl"),
    bindings: &[
        X,
        GAMMA,
        BETA,
        RUNNING_MEAN,
        RUNNING_VAR,
        Y,
        SAVE_MEAN,
        SAVE_INVSTD,
        DY,
        DX,
        DGAMMA,
        DBETA,
        CHANNEL_SUMS,
        TILE_STATS,
    ],
    needs_subgroups: false,
};

/// PyTorch's default `eps`, added to the variance before the square root.
pub const DEFAULT_EPS: f32 = 1e-5;
/// PyTorch's default `momentum`: the weight of the new batch in the running statistics.
pub const DEFAULT_MOMENTUM: f32 = 0.1;

const WG: u32 = 256;

/// `[N, C, L]`: batch, channels, length. Statistics are per channel over `M = N * L` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    pub n: usize,
    pub c: usize,
    pub l: usize,
}

impl BatchNormShape {
    pub fn new(n: usize, c: usize, l: usize) -> Result<BatchNormShape> {
        let shape = BatchNormShape { n, c, l };
        shape.validate()?;
        Ok(shape)
    }

    pub fn validate(&self) -> Result<()> {
        let BatchNormShape { n, c, l } = *self;
        ensure!(n > 0 && c > 0 && l > 0, "batchnorm: shape [N={n}, C={c}, L={l}] has an empty dimension");
        ensure!(
            n.checked_mul(c).and_then(|nc| nc.checked_mul(l)).is_some_and(|e| e <= u32::MAX as usize),
            "batchnorm: shape [N={n}, C={c}, L={l}] has more than 2^32 elements"
        );
        Ok(())
    }

    /// Values per channel.
    pub fn m(&self) -> usize {
        self.n * self.l
    }

    pub fn numel(&self) -> usize {
        self.n * self.c * self.l
    }

    fn dims(&self) -> Vec<usize> {
        vec![self.n, self.c, self.l]
    }
}

fn expect_shape(op: &str, name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    ensure!(t.shape == expected, "{op}: {name} has shape {:?}, expected {expected:?}", t.shape);
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    c: u32,
    l: u32,
    accumulate: u32,
    eps: f32,
    momentum: f32,
    tiles: u32,
    _pad: u32,
}

fn params(shape: &BatchNormShape, accumulate: bool, eps: f32, momentum: f32) -> Params {
    Params {
        n: shape.n as u32,
        c: shape.c as u32,
        l: shape.l as u32,
        accumulate: u32::from(accumulate),
        eps,
        momentum,
        tiles: 0,
        _pad: 0,
    }
}

/// One workgroup per channel, for the reductions.
fn per_channel(shape: &BatchNormShape) -> [u32; 3] {
    grid(groups_for(shape.c, 1))
}

/// One invocation per element.
fn per_element(shape: &BatchNormShape) -> [u32; 3] {
    grid(groups_for(shape.numel(), WG))
}

/// The checks of the training statistics' tensors, shared with the CPU-shaped statistics of
/// `bn_relu_pool`: the shapes, and more than one value per channel (`M = N * L = 1` leaves the
/// unbiased variance undefined).
pub fn check_train_stats(
    shape: &BatchNormShape,
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
) -> Result<()> {
    const OP: &str = "batchnorm statistics (training)";
    shape.validate()?;
    if shape.m() == 1 {
        bail!(
            "{OP}: shape [N={}, C={}, L={}] gives one value per channel; training needs more than one \
             to estimate a variance (PyTorch refuses too). Use a larger batch or eval mode",
            shape.n,
            shape.c,
            shape.l
        );
    }
    expect_shape(OP, "x", x, &shape.dims())?;
    for (name, t) in [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("save_mean", save_mean),
        ("save_invstd", save_invstd),
    ] {
        expect_shape(OP, name, t, &[shape.c])?;
    }
    Ok(())
}

/// A batchnorm layer's learned scale and shift, `[C]` each.
#[derive(Clone, Copy)]
pub struct Affine<'t> {
    pub gamma: &'t Tensor,
    pub beta: &'t Tensor,
}

/// What a training-mode forward saves for its backward: the batch mean and `1 / sqrt(var + eps)`,
/// `[C]` each.
#[derive(Clone, Copy)]
pub struct Saved<'t> {
    pub mean: &'t Tensor,
    pub invstd: &'t Tensor,
}

/// Where a training-mode forward puts the batch statistics, and how it makes them: the running
/// statistics it updates in place (by `momentum`), the batch's saved for the backward, and the
/// `eps` added to the variance.
#[derive(Clone, Copy)]
pub struct TrainStats<'t> {
    pub running: RunningStats<'t>,
    pub saved: Saved<'t>,
    pub eps: f32,
    pub momentum: f32,
}

/// What a backward writes: the input's gradient, overwritten; gamma's and beta's, overwritten, or
/// added to when `accumulate` (micro-batches); and first `channel_sums`, this batch's two sums per
/// channel that dx needs even when the parameter gradients accumulate (`[2, C]` for the plain
/// batchnorm, `bn_relu_pool::channel_sums_shape` for the fused layer).
#[derive(Clone, Copy)]
pub struct Grads<'t> {
    pub dx: &'t Tensor,
    pub dgamma: &'t Tensor,
    pub dbeta: &'t Tensor,
    pub channel_sums: &'t Tensor,
    pub accumulate: bool,
}

/// Records the batch statistics of training mode: the per-channel mean and biased variance of
/// `x`, written as `stats.saved` (the mean and `1 / sqrt(var + eps)`, `[C]`), and the update of
/// `stats.running` in place (the variance unbiased, as PyTorch does). One launch;
/// [`encode_forward_train`] and the fused `bn_relu_pool` forward both start with it. With
/// `tile_stats` it merges those instead of reading `x` (train_stats_merge).
/// Refuses `M = N * L = 1`, where the unbiased variance is undefined.
pub fn encode_train_stats(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &BatchNormShape,
    x: &Tensor,
    tile_stats: Option<&TileStats>,
    stats: TrainStats,
) -> Result<()> {
    let TrainStats { running, saved, eps, momentum } = stats;
    let (running_mean, running_var, save_mean, save_invstd) = (running.mean, running.var, saved.mean, saved.invstd);
    check_train_stats(shape, x, running_mean, running_var, save_mean, save_invstd)?;
    let outputs =
        [(RUNNING_MEAN, running_mean), (RUNNING_VAR, running_var), (SAVE_MEAN, save_mean), (SAVE_INVSTD, save_invstd)];
    match tile_stats {
        None => gpu.dispatch(
            rec,
            SHADER.entry("train_stats"),
            &params(shape, false, eps, momentum),
            &[&[(X, x)], outputs.as_slice()].concat(),
            per_channel(shape),
            // Sum, then squared deviations: x needs reading once at least.
            Cost::new(4 * shape.numel(), shape.numel() + 6 * shape.c),
        ),
        Some(TileStats { stats, tiles }) => {
            expect_shape("batchnorm statistics (training)", "tile statistics", stats, &[*tiles, shape.c, 3])?;
            let mut p = params(shape, false, eps, momentum);
            p.tiles = u32::try_from(*tiles)?;
            gpu.dispatch(
                rec,
                SHADER.entry("train_stats_merge"),
                &p,
                &[&[(TILE_STATS, stats)], outputs.as_slice()].concat(),
                per_channel(shape),
                Cost::new(7 * stats.numel() / 3, stats.numel() + 6 * shape.c),
            );
        }
    }
    Ok(())
}

/// Records training-mode batch normalization: the batch statistics ([`encode_train_stats`], into
/// `stats`), then `y = gamma * (x - mean) / sqrt(var + eps) + beta` with them.
pub fn encode_forward_train(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &BatchNormShape,
    (x, y): (&Tensor, &Tensor),
    Affine { gamma, beta }: Affine,
    stats: TrainStats,
) -> Result<()> {
    let TrainStats { saved, eps, momentum, .. } = stats;
    const OP: &str = "batchnorm forward (training)";
    shape.validate()?;
    expect_shape(OP, "y", y, &shape.dims())?;
    for (name, t) in [("gamma", gamma), ("beta", beta)] {
        expect_shape(OP, name, t, &[shape.c])?;
    }
    let (save_mean, save_invstd) = (saved.mean, saved.invstd);
    encode_train_stats(gpu, rec, shape, x, None, stats)?;
    gpu.dispatch(
        rec,
        SHADER.entry("normalize_train"),
        &params(shape, false, eps, momentum),
        &[(X, x), (GAMMA, gamma), (BETA, beta), (Y, y), (SAVE_MEAN, save_mean), (SAVE_INVSTD, save_invstd)],
        per_element(shape),
        Cost::new(3 * shape.numel(), 2 * shape.numel() + 4 * shape.c),
    );
    Ok(())
}

/// Records eval-mode batch normalization with the running statistics:
/// `y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta`.
pub fn encode_forward_eval(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &BatchNormShape,
    (x, y): (&Tensor, &Tensor),
    Affine { gamma, beta }: Affine,
    running: RunningStats,
    eps: f32,
) -> Result<()> {
    let (running_mean, running_var) = (running.mean, running.var);
    const OP: &str = "batchnorm forward (eval)";
    shape.validate()?;
    let (dims, channel) = (shape.dims(), [shape.c]);
    expect_shape(OP, "x", x, &dims)?;
    expect_shape(OP, "y", y, &dims)?;
    for (name, t) in [("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)] {
        expect_shape(OP, name, t, &channel)?;
    }
    gpu.dispatch(
        rec,
        SHADER.entry("normalize_eval"),
        &params(shape, false, eps, 0.0),
        &[(X, x), (GAMMA, gamma), (BETA, beta), (RUNNING_MEAN, running_mean), (RUNNING_VAR, running_var), (Y, y)],
        per_element(shape),
        Cost::new(3 * shape.numel(), 2 * shape.numel() + 4 * shape.c),
    );
    Ok(())
}

/// Records the training-mode backward pass from the forward's `x`, `gamma` and saved
/// statistics: `dx`, and `dgamma = sum dy * xhat`, `dbeta = sum dy` (see [`Grads`]).
pub fn encode_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &BatchNormShape,
    (x, dy): (&Tensor, &Tensor),
    gamma: &Tensor,
    Saved { mean: save_mean, invstd: save_invstd }: Saved,
    Grads { dx, dgamma, dbeta, channel_sums, accumulate }: Grads,
) -> Result<()> {
    const OP: &str = "batchnorm backward";
    shape.validate()?;
    let (dims, channel) = (shape.dims(), [shape.c]);
    for (name, t) in [("x", x), ("dy", dy), ("dx", dx)] {
        expect_shape(OP, name, t, &dims)?;
    }
    for (name, t) in
        [("gamma", gamma), ("save_mean", save_mean), ("save_invstd", save_invstd), ("dgamma", dgamma), ("dbeta", dbeta)]
    {
        expect_shape(OP, name, t, &channel)?;
    }
    expect_shape(OP, "channel_sums", channel_sums, &[2, shape.c])?;
    let p = params(shape, accumulate, 0.0, 0.0);
    gpu.dispatch(
        rec,
        SHADER.entry("backward_sums"),
        &p,
        &[
            (X, x),
            (SAVE_MEAN, save_mean),
            (SAVE_INVSTD, save_invstd),
            (DY, dy),
            (DGAMMA, dgamma),
            (DBETA, dbeta),
            (CHANNEL_SUMS, channel_sums),
        ],
        per_channel(shape),
        Cost::new(5 * shape.numel(), 2 * shape.numel() + 8 * shape.c),
    );
    gpu.dispatch(
        rec,
        SHADER.entry("backward_dx"),
        &p,
        &[
            (X, x),
            (GAMMA, gamma),
            (SAVE_MEAN, save_mean),
            (SAVE_INVSTD, save_invstd),
            (DY, dy),
            (DX, dx),
            (CHANNEL_SUMS, channel_sums),
        ],
        per_element(shape),
        Cost::new(7 * shape.numel(), 3 * shape.numel() + 5 * shape.c),
    );
    Ok(())
}

/// Batchnorm's behaviour: batch statistics (and running-stat updates) or the running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    Train,
    Eval,
}

/// The running statistics a batchnorm layer keeps outside the tape, `[C]` each.
#[derive(Clone, Copy)]
pub struct RunningStats<'a> {
    pub mean: &'a Tensor,
    pub var: &'a Tensor,
}

impl Tape<'_> {
    /// `batchnorm(x)` with scale `gamma` and shift `beta`: in training with the batch statistics
    /// (updating `stats`), in eval with `stats`.
    pub fn batchnorm(
        &mut self,
        x: Var,
        (gamma, beta): (Var, Var),
        stats: RunningStats,
        mode: BnMode,
        label: &str,
    ) -> Result<Var> {
        let xs = self.shape_of(x, 3, "batchnorm: [N, C, L]").map_err(|e| e.context(label.to_string()))?;
        let shape = BatchNormShape { n: xs[0], c: xs[1], l: xs[2] };
        // Eval mode has no backward: its output carries no gradient.
        let grad_inputs: &[Var] = if mode == BnMode::Train { &[x, gamma, beta] } else { &[] };
        let y = self.output(&xs, label, grad_inputs)?;
        let [xt, gt, bt, yt] = [x, gamma, beta, y].map(|v| self.value(v).clone());
        let affine = Affine { gamma: &gt, beta: &bt };
        if mode == BnMode::Eval {
            let record = |g, rec: &mut Vec<Dispatch>| {
                encode_forward_eval(g, rec, &shape, (&xt, &yt), affine, stats, DEFAULT_EPS)
            };
            return self.record(label, None, record).map(|()| y);
        }
        let (mean, invstd) = (self.alloc(&[shape.c], "bn saved mean")?, self.alloc(&[shape.c], "bn saved invstd")?);
        let channel_sums = self.alloc(&[2, shape.c], "bn channel sums")?;
        let saved = [mean.clone(), invstd.clone()];
        let node = BatchNormNode { shape, x, gamma, y, grads_of: [gamma, beta], saved, channel_sums };
        self.record(label, Some(Box::new(node)), |g, rec| {
            let saved = Saved { mean: &mean, invstd: &invstd };
            let stats = TrainStats { running: stats, saved, eps: DEFAULT_EPS, momentum: DEFAULT_MOMENTUM };
            encode_forward_train(g, rec, &shape, (&xt, &yt), affine, stats)
        })?;
        Ok(y)
    }
}

/// Training-mode batchnorm on the tape: its input, its scale (beta's gradient needs no more), and
/// what its forward saved.
struct BatchNormNode {
    shape: BatchNormShape,
    x: Var,
    gamma: Var,
    y: Var,
    /// gamma and beta, whose gradients it adds to.
    grads_of: [Var; 2],
    /// The batch mean and invstd.
    saved: [Tensor; 2],
    channel_sums: Tensor,
}

impl Backward for BatchNormNode {
    fn record_backward(&self, tape: &mut Tape, _grad_scale: f32) -> Result<()> {
        let Some(dy) = tape.upstream(self.y) else { return Ok(()) };
        let [dgamma, dbeta] = tape.parameter_grads(self.grads_of, "batchnorm's gamma and beta")?;
        let dx = tape.fresh_grad(self.x, "bn input")?;
        let (x, gamma) = (tape.value(self.x).clone(), tape.value(self.gamma).clone());
        let saved = Saved { mean: &self.saved[0], invstd: &self.saved[1] };
        let grads =
            Grads { dx: &dx, dgamma: &dgamma, dbeta: &dbeta, channel_sums: &self.channel_sums, accumulate: true };
        let (g, rec) = (tape.gpu(), &mut tape.backward);
        encode_backward(g, rec, &self.shape, (&x, &dy), &gamma, saved, grads)
    }
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
/// Tensors are flat row-major `[N, C, L]` (activations) and `[C]` (per-channel values).
pub mod reference {
    use super::BatchNormShape;

    /// Index of value `m = n * L + l` of channel `c`.
    fn at(s: &BatchNormShape, c: usize, m: usize) -> usize {
        (m / s.l) * s.c * s.l + c * s.l + m % s.l
    }

    pub struct TrainOutput {
        pub y: Vec<f64>,
        pub mean: Vec<f64>,
        pub invstd: Vec<f64>,
        pub running_mean: Vec<f64>,
        pub running_var: Vec<f64>,
    }

    pub fn forward_train(
        s: &BatchNormShape,
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        (running_mean, running_var): (&[f64], &[f64]),
        (eps, momentum): (f64, f64),
    ) -> TrainOutput {
        let m = s.m() as f64;
        let mut out = TrainOutput {
            y: vec![0.0; s.numel()],
            mean: vec![0.0; s.c],
            invstd: vec![0.0; s.c],
            running_mean: vec![0.0; s.c],
            running_var: vec![0.0; s.c],
        };
        for c in 0..s.c {
            let mean = (0..s.m()).map(|i| x[at(s, c, i)]).sum::<f64>() / m;
            let var = (0..s.m()).map(|i| (x[at(s, c, i)] - mean).powi(2)).sum::<f64>() / m;
            let invstd = 1.0 / (var + eps).sqrt();
            for i in 0..s.m() {
                let j = at(s, c, i);
                out.y[j] = gamma[c] * (x[j] - mean) * invstd + beta[c];
            }
            out.mean[c] = mean;
            out.invstd[c] = invstd;
            out.running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean;
            out.running_var[c] = (1.0 - momentum) * running_var[c] + momentum * var * m / (m - 1.0);
        }
        out
    }

    pub fn forward_eval(
        s: &BatchNormShape,
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        running_mean: &[f64],
        running_var: &[f64],
        eps: f64,
    ) -> Vec<f64> {
        let mut y = vec![0.0; s.numel()];
        for c in 0..s.c {
            for i in 0..s.m() {
                let j = at(s, c, i);
                y[j] = gamma[c] * (x[j] - running_mean[c]) / (running_var[c] + eps).sqrt() + beta[c];
            }
        }
        y
    }

    pub struct Grads {
        pub dx: Vec<f64>,
        pub dgamma: Vec<f64>,
        pub dbeta: Vec<f64>,
    }

    /// Gradients of training mode, from the forward's `mean` and `invstd`.
    pub fn backward(s: &BatchNormShape, x: &[f64], dy: &[f64], gamma: &[f64], mean: &[f64], invstd: &[f64]) -> Grads {
        let m = s.m() as f64;
        let mut g = Grads { dx: vec![0.0; s.numel()], dgamma: vec![0.0; s.c], dbeta: vec![0.0; s.c] };
        for c in 0..s.c {
            let xhat = |j: usize| (x[j] - mean[c]) * invstd[c];
            let dbeta: f64 = (0..s.m()).map(|i| dy[at(s, c, i)]).sum();
            let dgamma: f64 = (0..s.m()).map(|i| dy[at(s, c, i)] * xhat(at(s, c, i))).sum();
            for i in 0..s.m() {
                let j = at(s, c, i);
                g.dx[j] = gamma[c] * invstd[c] / m * (m * dy[j] - dbeta - xhat(j) * dgamma);
            }
            g.dgamma[c] = dgamma;
            g.dbeta[c] = dbeta;
        }
        g
    }
}
