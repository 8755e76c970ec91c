//! Training-mode batchnorm -> ReLU (-> max-pool with kernel = stride = `k`) as one op, over
//! `[N, C, L]`: `y = maxpool_k(relu(batchnorm(x)))`, or `relu(batchnorm(x))` when `k = 1`.
//! The batchnorm and ReLU outputs are recomputed where needed instead of stored, so a layer moves
//! fewer bytes and records 2 launches forward (batch statistics, fused output) and 2 backward
//! (channel sums, dx) where the plain ops take 3-4 each way. Shader: `shaders/bn_relu_pool.wgsl`;
//! the statistics come from `shaders/batchnorm.wgsl` through [`batchnorm::encode_train_stats`].
//! On a CPU adapter (`DeviceClass::Cpu`) the same launches run `shaders/bn_relu_pool_cpu.wgsl`
//! (statistics included), where an invocation walks a run of one row instead of one element;
//! pool windows wider than [`CPU_MAX_POOL`] stay on the GPU kernels.

pub mod selftest;

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use super::batchnorm::{self, Affine, BatchNormShape, Grads, RunningStats, Saved, TrainStats};
use super::conv1d::TileStats;
use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, groups_for, Cost, DeviceClass, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/bn_relu_pool.wgsl and bn_relu_pool_cpu.wgsl (which declares the
// same 13 and 5 more), each named once; launches bind them by these names.
const X: Binding = Binding::read(1, "x");
const GAMMA: Binding = Binding::read(2, "gamma");
const BETA: Binding = Binding::read(3, "beta");
const SAVE_MEAN: Binding = Binding::read(4, "save_mean");
const SAVE_INVSTD: Binding = Binding::read(5, "save_invstd");
const Y: Binding = Binding::read_write(6, "y");
const ARGMAX: Binding = Binding::read_write(7, "argmax");
const SAVED_ARGMAX: Binding = Binding::read(8, "saved_argmax");
const DY: Binding = Binding::read(9, "dy");
const DX: Binding = Binding::read_write(10, "dx");
const DGAMMA: Binding = Binding::read_write(11, "dgamma");
const DBETA: Binding = Binding::read_write(12, "dbeta");
const CHANNEL_SUMS: Binding = Binding::read_write(13, "channel_sums");
const RUNNING_MEAN: Binding = Binding::read_write(14, "running_mean");
const RUNNING_VAR: Binding = Binding::read_write(15, "running_var");
const STATS_MEAN: Binding = Binding::read_write(16, "stats_mean");
const STATS_INVSTD: Binding = Binding::read_write(17, "stats_invstd");
const TILE_STATS: Binding = Binding::read(18, "tile_stats");

/// `shaders/bn_relu_pool.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "bn_relu_pool",
    source: include_str!("../../../shaders/bn_relu_pool.wgsl"),
    bindings: &[X, GAMMA, BETA, SAVE_MEAN, SAVE_INVSTD, Y, ARGMAX, SAVED_ARGMAX, DY, DX, DGAMMA, DBETA, CHANNEL_SUMS],
    needs_subgroups: false,
};

/// `shaders/bn_relu_pool_cpu.wgsl` and the storage buffers it declares.
pub const CPU_SHADER: Shader = Shader {
    name: "bn_relu_pool_cpu",
    source: include_str!("../../../shaders/bn_relu_pool_cpu.wgsl"),
    bindings: &[
        X,
        GAMMA,
        BETA,
        SAVE_MEAN,
        SAVE_INVSTD,
        Y,
        ARGMAX,
        SAVED_ARGMAX,
        DY,
        DX,
        DGAMMA,
        DBETA,
        CHANNEL_SUMS,
        RUNNING_MEAN,
        RUNNING_VAR,
        STATS_MEAN,
        STATS_INVSTD,
        TILE_STATS,
    ],
    needs_subgroups: false,
};

const WG: u32 = 256;

/// The CPU-shaped kernels: workgroup size, slots per run, and the widest pool window they take
/// (the shader's WG, RUN and MAX_POOL).
const CPU_WG: u32 = 64;
const CPU_RUN: usize = 8;
pub const CPU_MAX_POOL: usize = 16;
/// Channels per workgroup of the CPU statistics merge (one invocation each).
const CPU_MERGE_WG: u32 = 8;

/// Whether `shape` runs on the CPU-shaped kernels on `gpu`.
fn cpu_shaped(gpu: &Gpu, shape: &BnReluPoolShape) -> bool {
    gpu.class == DeviceClass::Cpu && shape.k <= CPU_MAX_POOL
}

/// The CPU kernels' slot length (the shader's POOL): the pool window, or 4 without a pool.
fn cpu_pool(shape: &BnReluPoolShape) -> u32 {
    if shape.pooled() {
        shape.k as u32
    } else {
        4
    }
}

/// Values per channel under which the CPU reductions give a channel 8 invocations instead of 64.
const CPU_FEW_VALUES: usize = 8192;

/// The CPU kernels' overridable constants: the slot length, and the invocations per channel of the
/// reductions (the shader's POOL and REDUCE_WG).
fn cpu_constants(shape: &BnReluPoolShape) -> [(&'static str, u32); 2] {
    let per_channel = if shape.n * shape.l < CPU_FEW_VALUES { 8 } else { CPU_WG };
    [("POOL", cpu_pool(shape)), ("REDUCE_WG", per_channel)]
}

/// Workgroups of the CPU kernels that give one invocation to each run of each row.
fn cpu_run_groups(shape: &BnReluPoolShape) -> [u32; 3] {
    let runs_per_row = shape.l.div_ceil(cpu_pool(shape) as usize).div_ceil(CPU_RUN);
    grid(groups_for(shape.n * shape.c * runs_per_row, CPU_WG))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CpuParams {
    n: u32,
    c: u32,
    l: u32,
    k: u32,
    l_out: u32,
    accumulate: u32,
    eps: f32,
    momentum: f32,
    tiles: u32,
    _pad: [u32; 3],
}

fn cpu_params(shape: &BnReluPoolShape, accumulate: bool, eps: f32, momentum: f32) -> CpuParams {
    CpuParams {
        n: shape.n as u32,
        c: shape.c as u32,
        l: shape.l as u32,
        k: shape.k as u32,
        l_out: shape.l_out() as u32,
        accumulate: u32::from(accumulate),
        eps,
        momentum,
        tiles: 0,
        _pad: [0; 3],
    }
}

/// Input `[n, c, l]`; pool window and stride `k` (1 = no pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnReluPoolShape {
    pub n: usize,
    pub c: usize,
    pub l: usize,
    pub k: usize,
}

impl BnReluPoolShape {
    pub fn new(n: usize, c: usize, l: usize, k: usize) -> Result<BnReluPoolShape> {
        let shape = BnReluPoolShape { n, c, l, k };
        shape.validate()?;
        Ok(shape)
    }

    pub fn validate(&self) -> Result<()> {
        let BnReluPoolShape { n, c, l, k } = *self;
        self.batchnorm().validate()?;
        ensure!(k >= 1, "bn_relu_pool: pool window k={k} must be at least 1 (1 = no pool)");
        ensure!(
            l >= k,
            "bn_relu_pool: input [N={n}, C={c}, L={l}] is too short for pool window k={k}: L must be at least {k}"
        );
        Ok(())
    }

    pub fn pooled(&self) -> bool {
        self.k > 1
    }

    /// Output length: `floor(L / k)` (`L` when `k = 1`).
    pub fn l_out(&self) -> usize {
        self.l / self.k
    }

    pub fn input_shape(&self) -> [usize; 3] {
        [self.n, self.c, self.l]
    }

    pub fn output_shape(&self) -> [usize; 3] {
        [self.n, self.c, self.l_out()]
    }

    pub fn batchnorm(&self) -> BatchNormShape {
        BatchNormShape { n: self.n, c: self.c, l: self.l }
    }

    fn numel(&self) -> usize {
        self.n * self.c * self.l
    }

    fn outputs(&self) -> usize {
        self.n * self.c * self.l_out()
    }

    /// Inputs that some window covers (all of them when `k = 1`).
    fn covered(&self) -> usize {
        self.outputs() * self.k
    }
}

fn expect_shape(op: &str, name: &str, t: &Tensor, expected: &[usize]) -> Result<()> {
    ensure!(t.shape == expected, "{op}: {name} has shape {:?}, expected {expected:?}", t.shape);
    Ok(())
}

/// `argmax` must be there exactly when the layer pools: a `k = 1` layer has none.
fn expect_argmax<'a>(op: &str, shape: &BnReluPoolShape, argmax: Option<&'a Tensor>) -> Result<Option<&'a Tensor>> {
    match argmax {
        Some(a) => {
            ensure!(shape.pooled(), "{op}: k=1 (no pool) takes no argmax tensor");
            expect_shape(op, "argmax", a, &shape.output_shape())?;
        }
        None => ensure!(!shape.pooled(), "{op}: pool window k={} needs an argmax tensor", shape.k),
    }
    Ok(argmax)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    c: u32,
    l: u32,
    k: u32,
    l_out: u32,
    accumulate: u32,
    splits: u32,
    span: u32,
}

/// The GPU backward's channel sums: each workgroup adds up at least this many of a channel's
/// N * L values (32 per invocation), and a channel is cut into at most this many runs (one per
/// invocation of the merge's workgroup). conv1 at batch 32 x 20 s: 256 runs of 27,563 values.
const SUM_SPAN: usize = 8192;
const MAX_SUM_SPLITS: usize = 256;

/// (runs per channel, values per run) of the GPU backward's channel sums.
fn sum_splits(shape: &BnReluPoolShape) -> (usize, usize) {
    let values = shape.n * shape.l;
    let splits = (values / SUM_SPAN).clamp(1, MAX_SUM_SPLITS);
    let span = values.div_ceil(splits);
    (values.div_ceil(span), span)
}

/// The shape of the `channel_sums` scratch [`encode_backward`] needs on `gpu`: the totals
/// (`[2, C]`: sum g, then sum g * xhat), and, where the GPU-shaped kernels cut channels into
/// several runs ([`sum_splits`]), each channel's partial pairs below them.
pub fn channel_sums_shape(gpu: &Gpu, shape: &BnReluPoolShape) -> [usize; 2] {
    match sum_splits(shape).0 {
        splits if splits > 1 && !cpu_shaped(gpu, shape) => [2 + 2 * splits, shape.c],
        _ => [2, shape.c],
    }
}

fn params(shape: &BnReluPoolShape, accumulate: bool) -> Params {
    let (splits, span) = sum_splits(shape);
    // validate() bounds N * C * L by 2^32, so every count fits.
    Params {
        n: shape.n as u32,
        c: shape.c as u32,
        l: shape.l as u32,
        k: shape.k as u32,
        l_out: shape.l_out() as u32,
        accumulate: u32::from(accumulate),
        splits: splits as u32,
        span: span as u32,
    }
}

/// Records the training forward: the batch statistics (`save_mean`, `save_invstd`, running
/// statistics updated in place, as [`batchnorm::encode_forward_train`] does; from `tile_stats`
/// when the conv before left them), then
/// `y = maxpool_k(relu(batchnorm(x)))` in one launch. `y` is `[N, C, floor(L / k)]`; for `k > 1`,
/// `argmax` (same shape, u32 values in an f32-sized buffer) gets the index into L of each window's
/// first maximum. For `k = 1`, `argmax` is `None` and `y` is `relu(batchnorm(x))`, `[N, C, L]`.
pub fn encode_forward_train(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &BnReluPoolShape,
    (x, tile_stats): (&Tensor, Option<&TileStats>),
    (y, argmax): (&Tensor, Option<&Tensor>),
    Affine { gamma, beta }: Affine,
    stats: TrainStats,
) -> Result<()> {
    const OP: &str = "bn_relu_pool forward (training)";
    let TrainStats { running, saved, eps, momentum } = stats;
    let (running_mean, running_var, save_mean, save_invstd) = (running.mean, running.var, saved.mean, saved.invstd);
    shape.validate()?;
    expect_shape(OP, "x", x, &shape.input_shape())?;
    expect_shape(OP, "y", y, &shape.output_shape())?;
    for (name, t) in [("gamma", gamma), ("beta", beta)] {
        expect_shape(OP, name, t, &[shape.c])?;
    }
    let argmax = expect_argmax(OP, shape, argmax)?;
    let bn = shape.batchnorm();
    let cpu = cpu_shaped(gpu, shape);
    if cpu {
        // The checks of the GPU statistics (one value per channel is refused), then the CPU kernel:
        // from the conv's tile statistics when it left them, else from x.
        batchnorm::check_train_stats(&bn, x, running_mean, running_var, save_mean, save_invstd)?;
        let outputs = [
            (RUNNING_MEAN, running_mean),
            (RUNNING_VAR, running_var),
            (STATS_MEAN, save_mean),
            (STATS_INVSTD, save_invstd),
        ];
        let constants = cpu_constants(shape);
        let mut p = cpu_params(shape, false, eps, momentum);
        match tile_stats {
            Some(TileStats { stats, tiles }) => {
                expect_shape(OP, "tile statistics", stats, &[*tiles, shape.c, 3])?;
                p.tiles = u32::try_from(*tiles)?;
                let buffers = [&[(TILE_STATS, stats)], outputs.as_slice()].concat();
                let cost = Cost::new(7 * stats.numel() / 3, stats.numel() + 6 * shape.c);
                let groups = grid(groups_for(shape.c, CPU_MERGE_WG));
                gpu.dispatch(rec, CPU_SHADER.entry("stats_merge").with(&constants), &p, &buffers, groups, cost);
            }
            None => {
                let buffers = [&[(X, x)], outputs.as_slice()].concat();
                // Two passes over x (sum, then squared deviations) and the per-channel outputs.
                let cost = Cost::new(3 * shape.numel(), 2 * shape.numel() + 6 * shape.c);
                let groups = grid(groups_for(shape.c, 1));
                gpu.dispatch(rec, CPU_SHADER.entry("stats").with(&constants), &p, &buffers, groups, cost);
            }
        }
    } else {
        batchnorm::encode_train_stats(gpu, rec, &bn, x, tile_stats, stats)?;
    }
    let mut buffers =
        vec![(X, x), (GAMMA, gamma), (BETA, beta), (SAVE_MEAN, save_mean), (SAVE_INVSTD, save_invstd), (Y, y)];
    let (p, outputs, covered) = (params(shape, false), shape.outputs(), shape.covered());
    let (entry, cost) = match argmax {
        // Per covered input: normalise (3), ReLU (1), compare (1); the covered inputs read once,
        // y and argmax written, four per-channel values read.
        Some(argmax) => {
            buffers.push((ARGMAX, argmax));
            ("forward_relu_pool", Cost::new(5 * covered, covered + 2 * outputs + 4 * shape.c))
        }
        None => ("forward_relu", Cost::new(4 * outputs, 2 * outputs + 4 * shape.c)),
    };
    if cpu {
        let constants = [("POOL", cpu_pool(shape))];
        let p = cpu_params(shape, false, eps, momentum);
        let groups = cpu_run_groups(shape);
        gpu.dispatch(rec, CPU_SHADER.entry(entry).with(&constants), &p, &buffers, groups, cost);
    } else {
        gpu.dispatch(rec, SHADER.entry(entry), &p, &buffers, grid(groups_for(outputs, WG)), cost);
    }
    Ok(())
}

/// Records the backward pass from `dy` (the gradient of `y`), the forward's `x`, `argmax` (`None`
/// when `k = 1`) and saved statistics: `dx`, and `dgamma`, `dbeta` (overwritten, or added to when
/// `accumulate`). The gradient at the batchnorm output is rebuilt from `x` in both launches, never
/// stored. `channel_sums` is scratch of [`channel_sums_shape`].
pub fn encode_backward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &BnReluPoolShape,
    (x, dy, argmax): (&Tensor, &Tensor, Option<&Tensor>),
    Affine { gamma, beta }: Affine,
    Saved { mean: save_mean, invstd: save_invstd }: Saved,
    Grads { dx, dgamma, dbeta, channel_sums, accumulate }: Grads,
) -> Result<()> {
    const OP: &str = "bn_relu_pool backward";
    shape.validate()?;
    for (name, t) in [("x", x), ("dx", dx)] {
        expect_shape(OP, name, t, &shape.input_shape())?;
    }
    expect_shape(OP, "dy", dy, &shape.output_shape())?;
    for (name, t) in [
        ("gamma", gamma),
        ("beta", beta),
        ("save_mean", save_mean),
        ("save_invstd", save_invstd),
        ("dgamma", dgamma),
        ("dbeta", dbeta),
    ] {
        expect_shape(OP, name, t, &[shape.c])?;
    }
    expect_shape(OP, "channel_sums", channel_sums, &channel_sums_shape(gpu, shape))?;
    let argmax = expect_argmax(OP, shape, argmax)?;
    let (entry_sums, entry_dx) =
        if shape.pooled() { ("sums_relu_pool", "dx_relu_pool") } else { ("sums_relu", "dx_relu") };
    let mut inputs = vec![
        (X, x),
        (GAMMA, gamma),
        (BETA, beta),
        (SAVE_MEAN, save_mean),
        (SAVE_INVSTD, save_invstd),
        (DY, dy),
        (CHANNEL_SUMS, channel_sums),
    ];
    if let Some(a) = argmax {
        inputs.push((SAVED_ARGMAX, a));
    }
    let sums_buffers = [inputs.as_slice(), &[(DGAMMA, dgamma), (DBETA, dbeta)]].concat();
    let dx_buffers = [inputs.as_slice(), &[(DX, dx)]].concat();
    let p = params(shape, accumulate);
    let (numel, outputs, covered, c) = (shape.numel(), shape.outputs(), shape.covered(), shape.c);
    // What the gradient at the batchnorm output costs to rebuild: dy and argmax once each, the
    // covered x (the tail has no gradient), 4 FLOPs per covered input to normalise and test it.
    let upstream_reads = outputs * if shape.pooled() { 2 } else { 1 };
    // Plus xhat (2) and two sums (3) per covered input; 4 per-channel reads, 4 writes.
    let sums_cost = Cost::new(9 * covered, covered + upstream_reads + 8 * c);
    // Every x read (dx of the tail is not zero: it still moves with the mean and variance) and dx
    // written; xhat (2) and the dx formula (5) per input on top of the rebuild.
    let dx_cost = Cost::new(4 * covered + 7 * numel, 2 * numel + upstream_reads + 6 * c);
    let per_channel = grid(groups_for(c, 1));
    if cpu_shaped(gpu, shape) {
        let (shader, constants) = (&CPU_SHADER, cpu_constants(shape));
        let p = cpu_params(shape, accumulate, 0.0, 0.0);
        gpu.dispatch(rec, shader.entry(entry_sums).with(&constants), &p, &sums_buffers, per_channel, sums_cost);
        let runs = cpu_run_groups(shape);
        gpu.dispatch(rec, shader.entry(entry_dx).with(&constants), &p, &dx_buffers, runs, dx_cost);
    } else {
        ensure!(c <= u16::MAX as usize, "{OP}: {c} channels, at most 65,535 on the GPU kernels");
        let (splits, _) = sum_splits(shape);
        let pairs = if splits > 1 { 2 * splits * c } else { 0 };
        let split_cost =
            if splits > 1 { Cost::new(9 * covered, covered + upstream_reads + 4 * c + pairs) } else { sums_cost };
        let runs = [splits as u32, c as u32, 1];
        gpu.dispatch(rec, SHADER.entry(entry_sums), &p, &sums_buffers, runs, split_cost);
        if splits > 1 {
            let merge_cost = Cost::new(pairs, pairs + 6 * c);
            let merge_buffers = [(DGAMMA, dgamma), (DBETA, dbeta), (CHANNEL_SUMS, channel_sums)];
            gpu.dispatch(rec, SHADER.entry("sums_merge"), &p, &merge_buffers, per_channel, merge_cost);
        }
        gpu.dispatch(rec, SHADER.entry(entry_dx), &p, &dx_buffers, grid(groups_for(numel, WG)), dx_cost);
    }
    Ok(())
}

impl Tape<'_> {
    /// Training-mode batchnorm, ReLU and, when `k > 1`, max-pool with kernel = stride = `k`, as
    /// one op: the same value as `batchnorm` -> `relu` -> `maxpool` in 2 launches instead of 3-4
    /// each way, and without the full-length batchnorm and ReLU outputs or their gradients.
    /// `conv_stats`: the statistics of `x` its conv left (`Tape::conv1d`), merged instead of
    /// reading `x` again.
    pub fn bn_relu_pool(
        &mut self,
        (x, conv_stats): (Var, Option<&TileStats>),
        (gamma, beta): (Var, Var),
        stats: RunningStats,
        k: usize,
        label: &str,
    ) -> Result<Var> {
        let context = |e: anyhow::Error| e.context(label.to_string());
        let xs = self.shape_of(x, 3, "bn_relu_pool: [N, C, L]").map_err(context)?;
        let shape = BnReluPoolShape::new(xs[0], xs[1], xs[2], k).map_err(context)?;
        let y = self.output(&shape.output_shape(), label, &[x, gamma, beta])?;
        let argmax = if shape.pooled() { Some(self.alloc(&shape.output_shape(), "argmax")?) } else { None };
        let (mean, invstd) = (self.alloc(&[shape.c], "bn saved mean")?, self.alloc(&[shape.c], "bn saved invstd")?);
        let channel_sums = self.alloc(&channel_sums_shape(self.gpu(), &shape), "bn channel sums")?;
        let [xt, gt, bt, yt] = [x, gamma, beta, y].map(|v| self.value(v).clone());
        let saved = [mean.clone(), invstd.clone()];
        let node = BnReluPoolNode { shape, x, y, affine: [gamma, beta], argmax: argmax.clone(), saved, channel_sums };
        let (eps, momentum) = (batchnorm::DEFAULT_EPS, batchnorm::DEFAULT_MOMENTUM);
        self.record(label, Some(Box::new(node)), |g, rec| {
            let (affine, saved) = (Affine { gamma: &gt, beta: &bt }, Saved { mean: &mean, invstd: &invstd });
            let outputs = (&yt, argmax.as_ref());
            let stats = TrainStats { running: stats, saved, eps, momentum };
            encode_forward_train(g, rec, &shape, (&xt, conv_stats), outputs, affine, stats).map_err(context)
        })?;
        Ok(y)
    }
}

/// The fused layer on the tape: its input (the batchnorm and ReLU outputs are rebuilt from it),
/// its scale and shift, the pool's choices (None when it does not pool), and what its forward saved.
struct BnReluPoolNode {
    shape: BnReluPoolShape,
    x: Var,
    y: Var,
    affine: [Var; 2],
    argmax: Option<Tensor>,
    /// The batch mean and invstd.
    saved: [Tensor; 2],
    channel_sums: Tensor,
}

impl Backward for BnReluPoolNode {
    fn record_backward(&self, tape: &mut Tape, _grad_scale: f32) -> Result<()> {
        let Some(dy) = tape.upstream(self.y) else { return Ok(()) };
        let [dgamma, dbeta] = tape.parameter_grads(self.affine, "batchnorm's gamma and beta")?;
        let dx = tape.fresh_grad(self.x, "bn input")?;
        let x = tape.value(self.x).clone();
        let [gamma, beta] = self.affine.map(|v| tape.value(v).clone());
        let affine = Affine { gamma: &gamma, beta: &beta };
        let saved = Saved { mean: &self.saved[0], invstd: &self.saved[1] };
        let grads =
            Grads { dx: &dx, dgamma: &dgamma, dbeta: &dbeta, channel_sums: &self.channel_sums, accumulate: true };
        let (g, rec) = (tape.gpu(), &mut tape.backward);
        encode_backward(g, rec, &self.shape, (&x, &dy, self.argmax.as_ref()), affine, saved, grads)
    }
}

/// The f64 CPU reference: the composition of the plain ops' references, written out.
/// Tensors are flat row-major `[N, C, L]` (input), `[N, C, Lout]` (output), `[C]` (per channel).
pub mod reference {
    use super::BnReluPoolShape;
    use crate::ops::batchnorm::reference as bn;
    use crate::ops::maxpool1d::{reference as maxpool, MaxPool1dShape};
    use crate::ops::relu::reference as relu;

    fn pool_shape(s: &BnReluPoolShape) -> MaxPool1dShape {
        MaxPool1dShape { n: s.n, c: s.c, l: s.l, k: s.k, stride: s.k }
    }

    pub struct TrainOutput {
        pub y: Vec<f64>,
        /// Empty when `k = 1`.
        pub argmax: Vec<u32>,
        pub mean: Vec<f64>,
        pub invstd: Vec<f64>,
        pub running_mean: Vec<f64>,
        pub running_var: Vec<f64>,
    }

    pub fn forward_train(
        s: &BnReluPoolShape,
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        running: (&[f64], &[f64]),
        (eps, momentum): (f64, f64),
    ) -> TrainOutput {
        let norm = bn::forward_train(&s.batchnorm(), x, gamma, beta, running, (eps, momentum));
        let r = relu::forward(&norm.y);
        let (y, argmax) = if s.pooled() { maxpool::forward(&pool_shape(s), &r) } else { (r, Vec::new()) };
        TrainOutput {
            y,
            argmax,
            mean: norm.mean,
            invstd: norm.invstd,
            running_mean: norm.running_mean,
            running_var: norm.running_var,
        }
    }

    /// Gradients from `dy` (`[N, C, Lout]`), the forward's `argmax` (empty when `k = 1`) and its
    /// statistics: back through the pool, the ReLU (at the recomputed batchnorm output) and the
    /// batchnorm.
    pub fn backward(
        s: &BnReluPoolShape,
        x: &[f64],
        dy: &[f64],
        argmax: &[u32],
        gamma: &[f64],
        beta: &[f64],
        (mean, invstd): (&[f64], &[f64]),
    ) -> bn::Grads {
        let z: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / s.l) % s.c;
                gamma[c] * (v - mean[c]) * invstd[c] + beta[c]
            })
            .collect();
        let dr = if s.pooled() { maxpool::backward(&pool_shape(s), argmax, dy) } else { dy.to_vec() };
        let dz = relu::backward(&z, &dr);
        bn::backward(&s.batchnorm(), x, &dz, gamma, mean, invstd)
    }
}
