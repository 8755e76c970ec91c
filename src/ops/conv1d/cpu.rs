//! The CPU-shaped conv1d kernels (`shaders/conv1d_cpu.wgsl`): lanes over channels, a register row
//! of positions per invocation, strips shared through subgroup shuffles. This file picks, per
//! layer, the row length (`COLS`), the taps per chunk (`TAPS`), the batch items per invocation
//! (`ITEMS`), and dW's split and channel blocks; `mod.rs` checks the tensors and decides which
//! passes run here.
//!
//! The sizes below were measured on lavapipe (Mesa 22.3 and 25.0, AVX2): a chunk of 128 to 192
//! multiply-adds per invocation is what the driver still unrolls completely (much more and it keeps
//! the loop, and the row of accumulators goes to memory: 3 to 20x slower).

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{tiled, Conv1dShape, Pass, B, DB, DW, DX, DY, PARTIALS, STATS, W, X, Y};
use crate::gpu::{grid, Cost, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

/// `shaders/conv1d_cpu.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "conv1d_cpu",
    source: include_str!("../../../shaders/conv1d_cpu.wgsl"),
    bindings: &[X, W, B, Y, DY, DX, DW, DB, PARTIALS, STATS],
    needs_subgroups: true,
};

/// Multiply-adds per invocation per chunk that the driver unrolls into straight-line code.
const CHUNK_MACS: usize = 128;
/// Outputs per invocation along time in forward: 24 (192 multiply-adds a chunk of 8 taps), where
/// Mesa 22.3 and 25.0 both still unroll the chunk; at 28 (22.3) or 32 (25.0) they stop, and the
/// kernel runs 10 to 20x slower.
const FORWARD_ROW: usize = 24;
/// Batch items per invocation in forward where a row has one output (the heads of clips under
/// 13 s): 2. Measured on lavapipe (Mesa 25.0.7), SoundNet-8's objects head at 10 s: batch 4, 8
/// and 16 ran 9.7, 16.6 and 32.9 ms with 2 items against 29.1, 55.9 and 116.7 ms with up to 8,
/// and 63 ms at batch 8 with 1 (every item reading the 33 MB of weights again); 3 items ran as
/// slowly as 8 (72.8 ms at batch 8), where the driver no longer keeps the items' strips in registers.
const FORWARD_ITEMS: usize = 2;
/// Positions per round in dW, at most (16 of them times 8 taps, or 8 times 16).
const ROW: usize = 16;
/// Values the strips of one chunk may hold (the shader's MAX_STRIP).
const MAX_STRIP: usize = 128;
/// The shader's MAX_COLS and MAX_TAPS.
const MAX_COLS: usize = 32;
const MAX_TAPS: usize = 16;

/// dW: a split covers at least this many positions, and splits stop once there are this many
/// workgroups (enough for every core of a CPU), or at `MAX_PARTIALS` floats of partial sums.
const MIN_ROWS_PER_SPLIT: usize = 512;
/// dW: and a split covers at most this many positions, for precision: an invocation adds its
/// positions one after the other into one f32, whose error grows with the count. Measured against
/// the f64 reference at SoundNet-8's shapes, batch 8 x 20 s (`sn-wgpu selftest --real-shapes`):
/// with splits only for the workgroup count, conv1's dW (1.76 million products per weight, 2
/// splits of 882,000) was 4.3e-6 and conv2's 4.2e-6, against 1.0e-6 and 4.9e-7 for the tiled
/// kernel; at most 1,024 positions a split they are 9.2e-7 and 6.1e-7, and the step is no slower.
const MAX_ROWS_PER_SPLIT: usize = 1024;
const ENOUGH_GROUPS: usize = 256;
/// dW: input channels an invocation walks one after the other, at most.
const MAX_CI_BLOCK: usize = 8;
const MAX_PARTIALS: usize = 1 << 22;

/// Lanes per workgroup: the subgroup size the kernels share values within. 8 where every
/// subgroup has at least 8 lanes (lavapipe on AVX2), else 4, the least any adapter has.
pub fn lanes(gpu: &Gpu) -> usize {
    if gpu.info.subgroup_min_size >= 8 {
        8
    } else {
        4
    }
}

/// Whether `gpu` can run these kernels at all: they need subgroup operations.
pub fn available(gpu: &Gpu) -> bool {
    gpu.features.contains(wgpu::Features::SUBGROUP)
}

/// Whether these kernels compute `pass` of `shape`: forward and dX read the weights as vec4 rows
/// (K a multiple of 4), and dX needs a chunk of taps that the stride divides (16 at most).
pub fn supports(shape: &Conv1dShape, pass: Pass) -> bool {
    match pass {
        Pass::Forward => shape.k.is_multiple_of(4),
        Pass::InputGrad => shape.k.is_multiple_of(4) && taps_input_grad(shape).is_some(),
        Pass::WeightGrad => weight_plan(shape).is_some(),
    }
}

/// The chunk of taps forward and dX walk: 8, or 4 for K = 4.
fn taps_forward(shape: &Conv1dShape) -> usize {
    if shape.k >= 8 {
        8
    } else {
        4
    }
}

/// The chunk of taps dX walks: forward's, or for strides that do not divide it the least multiple
/// of 4 and of the stride (12 for SoundNet-5's heads, stride 12), up to 16.
fn taps_input_grad(shape: &Conv1dShape) -> Option<usize> {
    let taps = taps_forward(shape);
    if taps.is_multiple_of(shape.stride) {
        return Some(taps);
    }
    let lcm = (1..=MAX_TAPS / 4).map(|m| 4 * m).find(|t| t.is_multiple_of(shape.stride))?;
    Some(lcm)
}

/// How one pass is laid out: the overridable constants and the position blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub cols: usize,
    pub taps: usize,
    /// Position blocks per batch item (forward, dX) or splits of the positions (dW).
    pub blocks: usize,
    /// dW: positions per split.
    pub rows_per_split: usize,
    /// dW: input channels per invocation, one after the other.
    pub ci_block: usize,
    /// forward, dX: batch items per invocation.
    pub items: usize,
}

impl Plan {
    fn constants(&self, shape: &Conv1dShape, lanes: usize) -> [(&'static str, u32); 5] {
        [
            ("STRIDE", shape.stride as u32),
            ("COLS", self.cols as u32),
            ("TAPS", self.taps as u32),
            ("LANES", lanes as u32),
            ("ITEMS", self.items as u32),
        ]
    }

    /// Groups of `items` batch items.
    fn item_groups(&self, shape: &Conv1dShape) -> usize {
        shape.n.div_ceil(self.items)
    }

    /// The plan with one batch item per invocation (forward_stats keeps its tiles per item).
    fn single_items(self) -> Plan {
        Plan { items: 1, ..self }
    }
}

/// Batch items per invocation: as many as keep `per_item` accumulators each within `room` and the
/// items' strips of `strip_regs` registers within the shader's MAX_STRIP values, spread evenly over
/// the groups they make.
fn items(n: usize, per_item: usize, room: usize, strip_regs: usize, lanes: usize) -> usize {
    let most = (room / per_item).min(MAX_STRIP / (strip_regs * lanes).max(1)).clamp(1, n);
    n.div_ceil(n.div_ceil(most))
}

/// forward: rows of up to 24 outputs (fewer for short outputs, and for wide strides, whose
/// strips would not fit), chunks of 8 taps (4 when K is 4).
pub fn forward_plan(shape: &Conv1dShape, lanes: usize) -> Result<Plan> {
    let taps = taps_forward(shape);
    let fits = (MAX_STRIP - taps) / shape.stride + 1;
    let cols = FORWARD_ROW.min(shape.l_out()?).min(fits).max(1);
    // Several batch items per invocation only for rows of one output (the heads of clips under
    // 13 s): measured, that reads the heads' weights a few times instead of once per item and
    // gains 1.6x, where items with longer rows lose more to the bigger body than they save.
    let strip_regs = ((cols - 1) * shape.stride + taps).div_ceil(lanes);
    let items = if cols == 1 { items(shape.n, cols, FORWARD_ITEMS, strip_regs, lanes) } else { 1 };
    Ok(Plan { cols, taps, blocks: shape.l_out()?.div_ceil(cols), rows_per_split: 0, ci_block: 1, items })
}

/// dX: rows of positions t = l + pad, a multiple of the stride long, so that which taps reach
/// which output is fixed; 128 / (taps / stride) of them give the chunk its 128 multiply-adds (at
/// most 32, and no longer than the input).
pub fn input_grad_plan(shape: &Conv1dShape, lanes: usize) -> Result<Plan> {
    let taps = taps_input_grad(shape)
        .filter(|_| supports(shape, Pass::InputGrad))
        .ok_or_else(|| anyhow::anyhow!("conv1d {shape:?}: no CPU-shaped dX for this kernel and stride"))?;
    let span = (shape.l + shape.pad).next_multiple_of(shape.stride);
    let room = (CHUNK_MACS * shape.stride / taps).min(MAX_COLS);
    let cols = room.min(span) / shape.stride * shape.stride;
    let items = items(shape.n, cols, room, 0, lanes);
    Ok(Plan { cols, taps, blocks: (shape.l + shape.pad).div_ceil(cols), rows_per_split: 0, ci_block: 1, items })
}

/// dW: up to 16 taps per invocation, and positions enough for 128 multiply-adds a round (at most
/// 16, and no more than there are).
fn weight_plan(shape: &Conv1dShape) -> Option<(usize, usize)> {
    let taps = shape.k.next_multiple_of(4).min(MAX_TAPS);
    let fits = MAX_STRIP.checked_sub(taps)? / shape.stride + 1;
    let positions = shape.n * shape.l_out().ok()?;
    let cols = (CHUNK_MACS / taps).min(ROW).min(fits).min(positions);
    (cols >= 1).then_some((cols, taps))
}

/// dW's split of the N * Lout positions, for `lanes` lanes per workgroup, and its blocks of input
/// channels. Short position sums (conv7, the heads) would otherwise give hundreds of thousands of
/// workgroups of a few multiply-adds each, and a CPU driver pays for every workgroup; long ones
/// are split until there are enough workgroups for every core.
pub fn weight_grad_plan(shape: &Conv1dShape, lanes: usize) -> Result<Plan> {
    let (cols, taps) = weight_plan(shape).ok_or_else(|| anyhow::anyhow!("conv1d {shape:?}: stride too wide"))?;
    let rows = shape.n * shape.l_out()?;
    let groups = shape.cout.div_ceil(lanes) * shape.cin * shape.k.div_ceil(taps);
    let per_split = shape.cout * shape.cin * shape.k + shape.cout;
    let wanted = ENOUGH_GROUPS.div_ceil(groups);
    let splits = wanted
        .max(rows.div_ceil(MAX_ROWS_PER_SPLIT))
        .min(rows / MIN_ROWS_PER_SPLIT)
        .min(MAX_PARTIALS / per_split)
        .max(1);
    let rows_per_split = rows.div_ceil(splits);
    // Channels per invocation: up to MAX_CI_BLOCK, while ENOUGH_GROUPS workgroups remain.
    let ci_block = (1..=MAX_CI_BLOCK).rev().find(|b| groups / b >= ENOUGH_GROUPS).unwrap_or(1);
    Ok(Plan { cols, taps, blocks: rows.div_ceil(rows_per_split), rows_per_split, ci_block, items: 1 })
}

/// Floats of scratch `encode_backward_params` with these kernels needs for `shape` (0: none).
pub fn weight_grad_partials(shape: &Conv1dShape, lanes: usize) -> Result<usize> {
    let plan = weight_grad_plan(shape, lanes)?;
    Ok(if plan.blocks == 1 { 0 } else { plan.blocks * (shape.cout * shape.cin * shape.k + shape.cout) })
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    l: u32,
    k: u32,
    stride: u32,
    pad: u32,
    l_out: u32,
    accumulate: u32,
    blocks: u32,
    rows_per_split: u32,
    ci_block: u32,
}

fn params(shape: &Conv1dShape, accumulate: bool, plan: &Plan) -> Result<Params> {
    let u = |v: usize| -> Result<u32> {
        u32::try_from(v).map_err(|_| anyhow::anyhow!("conv1d {shape:?}: {v} does not fit in 32 bits"))
    };
    Ok(Params {
        n: u(shape.n)?,
        cin: u(shape.cin)?,
        cout: u(shape.cout)?,
        l: u(shape.l)?,
        k: u(shape.k)?,
        stride: u(shape.stride)?,
        pad: u(shape.pad)?,
        l_out: u(shape.l_out()?)?,
        accumulate: u32::from(accumulate),
        blocks: u(plan.blocks)?,
        rows_per_split: u(plan.rows_per_split)?,
        ci_block: u(plan.ci_block)?,
    })
}

/// Workgroups for `blocks` blocks of each of `channels` channels, `items` times over.
fn workgroups(blocks: usize, channels: usize, items: usize, lanes: usize) -> [u32; 3] {
    let groups = blocks * channels.div_ceil(lanes) * items;
    grid(u32::try_from(groups).expect("more than 2^32 workgroups in one dispatch"))
}

/// `y = conv1d(x, w) + b`. The tensors are checked by the caller.
pub(super) fn forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    buffers: &[(Binding, &Tensor)],
    cost: Cost,
) -> Result<()> {
    let plan = forward_plan(shape, lanes(gpu))?;
    let params = params(shape, false, &plan)?;
    let groups = workgroups(plan.blocks, shape.cout, plan.item_groups(shape), lanes(gpu));
    let constants = plan.constants(shape, lanes(gpu));
    gpu.dispatch(rec, SHADER.entry("forward").with(&constants), &params, buffers, groups, cost);
    Ok(())
}

/// Tiles of batch statistics `forward_stats` leaves: one per (batch item, block of outputs).
pub fn forward_tiles(shape: &Conv1dShape, lanes: usize) -> Result<usize> {
    Ok(shape.n * forward_plan(shape, lanes)?.single_items().blocks)
}

/// forward, also writing each block's per-channel (count, mean, M2) of y to `stats`
/// (`[forward_tiles, Cout, 3]`), for batchnorm's train_stats_merge.
pub(super) fn forward_stats(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    buffers: &[(Binding, &Tensor)],
    stats: &Tensor,
    cost: Cost,
) -> Result<()> {
    let lanes = lanes(gpu);
    let plan = forward_plan(shape, lanes)?.single_items();
    let tiles = shape.n * plan.blocks;
    anyhow::ensure!(
        stats.shape == [tiles, shape.cout, 3],
        "conv1d {shape:?}: tile statistics have shape {:?}, expected {:?}",
        stats.shape,
        [tiles, shape.cout, 3]
    );
    let params = params(shape, false, &plan)?;
    let buffers = [buffers, &[(STATS, stats)]].concat();
    // Besides the forward: per output two additions and a multiply; the statistics written.
    let cost = cost + Cost::new(3 * shape.n * shape.l_out()? * shape.cout, stats.numel());
    let groups = workgroups(plan.blocks, shape.cout, shape.n, lanes);
    let constants = plan.constants(shape, lanes);
    gpu.dispatch(rec, SHADER.entry("forward_stats").with(&constants), &params, &buffers, groups, cost);
    Ok(())
}

/// `dx` (+)= the input gradient.
pub(super) fn backward_input(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    accumulate: bool,
    buffers: &[(Binding, &Tensor)],
    cost: Cost,
) -> Result<()> {
    let plan = input_grad_plan(shape, lanes(gpu))?;
    let params = params(shape, accumulate, &plan)?;
    let groups = workgroups(plan.blocks, shape.cin, plan.item_groups(shape), lanes(gpu));
    let constants = plan.constants(shape, lanes(gpu));
    gpu.dispatch(rec, SHADER.entry("backward_input").with(&constants), &params, buffers, groups, cost);
    Ok(())
}

/// `dw` and `db` (+)= the parameter gradients; with several splits through `partials` and
/// conv1d_tiled's reduce_splits.
pub(super) fn backward_params(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    (x, dy): (&Tensor, &Tensor),
    (dw, db): (&Tensor, &Tensor),
    accumulate: bool,
    partials: Option<&Tensor>,
) -> Result<()> {
    let lanes = lanes(gpu);
    let plan = weight_grad_plan(shape, lanes)?;
    let params = params(shape, accumulate, &plan)?;
    let blocks = shape.cin.div_ceil(plan.ci_block) * shape.k.div_ceil(plan.taps) * plan.blocks;
    let groups = workgroups(blocks, shape.cout, 1, lanes);
    let cost = tiled::params_cost(shape, (x, dy), (dw, db), accumulate, plan.blocks)?;
    if plan.blocks == 1 {
        let buffers = [(X, x), (DY, dy), (DW, dw), (DB, db)];
        let constants = plan.constants(shape, lanes);
        gpu.dispatch(rec, SHADER.entry("backward_params").with(&constants), &params, &buffers, groups, cost);
        return Ok(());
    }
    let partials = tiled::split_partials(shape, plan.blocks, partials, "CPU-shaped")?;
    let buffers = [(X, x), (DY, dy), (PARTIALS, partials)];
    let constants = plan.constants(shape, lanes);
    gpu.dispatch(rec, SHADER.entry("backward_params_split").with(&constants), &params, &buffers, groups, cost);
    tiled::reduce_splits(gpu, rec, shape, plan.blocks, (dw, db), accumulate, partials)
}
