//! The tiled implicit-GEMM conv1d kernels (`shaders/conv1d_tiled.wgsl`): how each pass is cut into
//! workgroup tiles. `mod.rs` checks the tensors and picks between these and the plain kernels.

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};

use super::{Conv1dShape, Pass, B, DB, DW, DX, DY, PARTIALS, STATS, W, X, Y};
use crate::gpu::{grid, groups_for, Cost, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

/// `shaders/conv1d_tiled.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "conv1d_tiled",
    source: include_str!("../../../shaders/conv1d_tiled.wgsl"),
    bindings: &[X, W, B, Y, DY, DX, DW, DB, PARTIALS, STATS],
    needs_subgroups: false,
};

/// Entries of C per workgroup tile (the shader's TILE), and the reduction chunk (its RK).
const TILE: usize = 4096;
const RK: usize = 8;
const WG: u32 = 256;

/// A split of dW's position sum covers at least this many positions, so that staging a chunk is
/// worth it and the partial sums stay few.
const MIN_ROWS_PER_SPLIT: usize = 512;
/// At most this many partial sums (16 MiB) are kept for one dW, and at most this many splits.
const MAX_PARTIALS: usize = 1 << 22;
const MAX_SPLITS: usize = 1024;

/// How the `rows x cols` output of one pass is cut into tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePlan {
    pub tile_m: usize,
    pub tiles_m: usize,
    pub tiles_n: usize,
}

impl TilePlan {
    /// The tile height (16 to 256; the width is 4096 / height) that wastes the fewest entries on
    /// ragged edges, and among those the squarest, which stages the fewest operands per chunk.
    pub fn for_output(rows: usize, cols: usize) -> TilePlan {
        [16, 32, 64, 128, 256]
            .into_iter()
            .map(|tile_m| TilePlan { tile_m, tiles_m: rows.div_ceil(tile_m), tiles_n: cols.div_ceil(TILE / tile_m) })
            .min_by_key(|t| (t.padded_entries(), t.tile_m + TILE / t.tile_m))
            .expect("five candidates")
    }

    pub fn tile_n(&self) -> usize {
        TILE / self.tile_m
    }

    fn padded_entries(&self) -> usize {
        self.tiles() * TILE
    }

    pub fn tiles(&self) -> usize {
        self.tiles_m * self.tiles_n
    }

    /// Global reads to stage one reduction chunk; each is then used `TILE * RK / reads` times.
    pub fn reads_per_chunk(&self) -> usize {
        RK * (self.tile_m + self.tile_n())
    }
}

/// How dW's sum over `N * Lout` positions is split across workgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightSplit {
    pub splits: usize,
    pub rows_per_split: usize,
}

impl WeightSplit {
    pub fn for_shape(shape: &Conv1dShape) -> Result<WeightSplit> {
        let rows = shape.n * shape.l_out()?;
        let weights = shape.cout * shape.cin * shape.k;
        let wanted = (rows / MIN_ROWS_PER_SPLIT).clamp(1, MAX_SPLITS);
        let splits = wanted.min((MAX_PARTIALS / weights).max(1));
        // Whole chunks per split, then drop any split the rounding left empty.
        let rows_per_split = rows.div_ceil(splits).div_ceil(RK) * RK;
        Ok(WeightSplit { splits: rows.div_ceil(rows_per_split), rows_per_split })
    }

    /// Floats of scratch the split dW and db need for their partial sums (0 with one split).
    pub fn partials_len(&self, shape: &Conv1dShape) -> usize {
        if self.splits == 1 {
            0
        } else {
            self.splits * (shape.cout * shape.cin * shape.k + shape.cout)
        }
    }
}

/// Workgroups the tiled kernel launches for one pass (dW: every split's tiles).
pub fn workgroups_launched(shape: &Conv1dShape, pass: Pass) -> Result<usize> {
    Ok(match pass {
        Pass::Forward => TilePlan::for_output(shape.cout, shape.n * shape.l_out()?).tiles(),
        Pass::InputGrad => TilePlan::for_output(shape.cin, shape.n * residue_columns(shape)).tiles() * shape.stride,
        Pass::WeightGrad => {
            TilePlan::for_output(shape.cout, shape.cin * shape.k).tiles() * WeightSplit::for_shape(shape)?.splits
        }
    })
}

/// Floats of scratch `encode_backward_params` with the tiled kernel needs for `shape`.
pub fn weight_grad_partials(shape: &Conv1dShape) -> Result<usize> {
    Ok(WeightSplit::for_shape(shape)?.partials_len(shape))
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
    tile_m: u32,
    tiles_m: u32,
    tiles_n: u32,
    layers: u32,
    rows_per_split: u32,
    q_len: u32,
    _pad: u32,
}

fn params(shape: &Conv1dShape, accumulate: bool, plan: TilePlan, layers: usize) -> Result<Params> {
    let l_out = shape.l_out()?;
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
        l_out: u(l_out)?,
        accumulate: u32::from(accumulate),
        tile_m: u(plan.tile_m)?,
        tiles_m: u(plan.tiles_m)?,
        tiles_n: u(plan.tiles_n)?,
        layers: u(layers)?,
        rows_per_split: 0,
        q_len: 0,
        _pad: 0,
    })
}

fn workgroups(plan: TilePlan, layers: usize) -> [u32; 3] {
    let groups = plan.tiles() * layers;
    grid(u32::try_from(groups).expect("more than 2^32 workgroups in one dispatch"))
}

/// `y = conv1d(x, w) + b`: rows co, columns (n, lo). The tensors are checked by the caller.
pub(super) fn forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    buffers: &[(Binding, &Tensor)],
    cost: Cost,
) -> Result<()> {
    let plan = TilePlan::for_output(shape.cout, shape.n * shape.l_out()?);
    let params = params(shape, false, plan, 1)?;
    gpu.dispatch(rec, SHADER.entry("forward"), &params, buffers, workgroups(plan, 1), cost);
    Ok(())
}

/// Column tiles of the tiled forward: the rows of the batch statistics it can leave.
pub fn forward_tiles(shape: &Conv1dShape) -> Result<usize> {
    Ok(TilePlan::for_output(shape.cout, shape.n * shape.l_out()?).tiles_n)
}

/// forward, also writing each tile's per-channel (count, mean, M2) of y to `stats`
/// (`[forward_tiles, Cout, 3]`), for batchnorm's train_stats_merge.
pub(super) fn forward_stats(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    buffers: &[(Binding, &Tensor)],
    stats: &Tensor,
    cost: Cost,
) -> Result<()> {
    let plan = TilePlan::for_output(shape.cout, shape.n * shape.l_out()?);
    ensure!(
        stats.shape == [plan.tiles_n, shape.cout, 3],
        "conv1d {shape:?}: tile statistics have shape {:?}, expected {:?}",
        stats.shape,
        [plan.tiles_n, shape.cout, 3]
    );
    let params = params(shape, false, plan, 1)?;
    let buffers = [buffers, &[(STATS, stats)]].concat();
    // Besides the forward: for every output, two additions and a multiply; the statistics written.
    let cost = cost + Cost::new(3 * shape.n * shape.l_out()? * shape.cout, stats.numel());
    gpu.dispatch(rec, SHADER.entry("forward_stats"), &params, &buffers, workgroups(plan, 1), cost);
    Ok(())
}

/// Input positions per residue class: `Q = floor((L - 1 + pad) / stride) + 1` (the shader header).
fn residue_columns(shape: &Conv1dShape) -> usize {
    (shape.l - 1 + shape.pad) / shape.stride + 1
}

/// `dx` (+)= the input gradient: one product per residue of `l + pad` modulo the stride.
pub(super) fn backward_input(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    accumulate: bool,
    buffers: &[(Binding, &Tensor)],
    cost: Cost,
) -> Result<()> {
    let q_len = residue_columns(shape);
    let plan = TilePlan::for_output(shape.cin, shape.n * q_len);
    let mut params = params(shape, accumulate, plan, shape.stride)?;
    params.q_len = u32::try_from(q_len)?;
    gpu.dispatch(rec, SHADER.entry("backward_input"), &params, buffers, workgroups(plan, shape.stride), cost);
    Ok(())
}

/// `dw` and `db` (+)= the parameter gradients: rows co, columns (ci, k), the positions split
/// across workgroups; with several splits their partial sums go to `partials` and a second launch
/// adds them. `db` comes from the dy tiles the same kernel stages.
pub(super) fn backward_params(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    (x, dy): (&Tensor, &Tensor),
    (dw, db): (&Tensor, &Tensor),
    accumulate: bool,
    partials: Option<&Tensor>,
) -> Result<()> {
    let split = WeightSplit::for_shape(shape)?;
    let plan = TilePlan::for_output(shape.cout, shape.cin * shape.k);
    let mut params = params(shape, accumulate, plan, split.splits)?;
    params.rows_per_split = u32::try_from(split.rows_per_split)?;
    let cost = params_cost(shape, (x, dy), (dw, db), accumulate, split.splits)?;
    if split.splits == 1 {
        let buffers = [(X, x), (DY, dy), (DW, dw), (DB, db)];
        gpu.dispatch(rec, SHADER.entry("backward_params"), &params, &buffers, workgroups(plan, 1), cost);
        return Ok(());
    }
    let partials = split_partials(shape, split.splits, partials, "tiled")?;
    let buffers = [(X, x), (DY, dy), (PARTIALS, partials)];
    let groups = workgroups(plan, split.splits);
    gpu.dispatch(rec, SHADER.entry("backward_params_split"), &params, &buffers, groups, cost);
    reduce_splits(gpu, rec, shape, split.splits, (dw, db), accumulate, partials)
}

/// The least cost of dW and db summed over `splits` splits: the multiply-adds and db's additions;
/// x and dy read, and dw and db written (or read and written, with `accumulate`) by one split, or
/// the partial sums written by several (`reduce_splits` then costs its own).
pub(super) fn params_cost(
    shape: &Conv1dShape,
    (x, dy): (&Tensor, &Tensor),
    (dw, db): (&Tensor, &Tensor),
    accumulate: bool,
    splits: usize,
) -> Result<Cost> {
    let terms = shape.n * shape.l_out()? * shape.cout;
    let flops = 2 * terms * shape.cin * shape.k + terms;
    let written = match splits {
        1 => (if accumulate { 2 } else { 1 }) * (dw.numel() + db.numel()),
        _ => splits * (dw.numel() + db.numel()),
    };
    Ok(Cost::new(flops, x.numel() + dy.numel() + written))
}

/// The scratch tensor that `splits` partial sums of `shape`'s dW and db need, or an error saying
/// so (`kernels` names the caller's family).
pub(super) fn split_partials<'t>(
    shape: &Conv1dShape,
    splits: usize,
    partials: Option<&'t Tensor>,
    kernels: &str,
) -> Result<&'t Tensor> {
    let needed = splits * (shape.cout * shape.cin * shape.k + shape.cout);
    partials.filter(|t| t.numel() >= needed).ok_or_else(|| {
        anyhow::anyhow!(
            "conv1d {shape:?}: the {kernels} parameter gradients need a scratch tensor of {needed} floats for \
             their {splits} partial sums (conv1d::weight_grad_partials)"
        )
    })
}

/// `dw` and `db` (+)= the sums over `splits` of the partial sums in `partials`
/// (`[splits, Cout*Cin*K + Cout]`: dw, then db), added in a fixed order. Shared with conv1d_cpu.
pub(super) fn reduce_splits(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    splits: usize,
    (dw, db): (&Tensor, &Tensor),
    accumulate: bool,
    partials: &Tensor,
) -> Result<()> {
    let plan = TilePlan::for_output(shape.cout, shape.cin * shape.k);
    let params = params(shape, accumulate, plan, splits)?;
    let outputs = dw.numel() + db.numel();
    let needed = splits * outputs;
    let cost = Cost::new(needed, needed + if accumulate { 2 } else { 1 } * outputs);
    let buffers = [(DW, dw), (DB, db), (PARTIALS, partials)];
    gpu.dispatch(rec, SHADER.entry("reduce_splits"), &params, &buffers, grid(groups_for(outputs, WG)), cost);
    Ok(())
}
