// 1-D convolution shaped for CPU drivers: the same results as conv1d.wgsl (same layouts, same
// bindings, same formulas; read its header first), computed the way a CPU Vulkan driver such as
// Mesa's lavapipe runs a shader fastest.
//
//   x  [N, Cin, L]   w  [Cout, Cin, K]   b [Cout]   y, dy [N, Cout, Lout]   dx [N, Cin, L]
//
// How a CPU driver runs this. lavapipe runs 8 invocations as the 8 lanes of one AVX2 vector: an
// add or multiply-add costs one instruction for all 8, but every load or store from a buffer is a
// loop over the lanes, each with a branch and a bounds check, so one load costs about as much as
// 40 multiply-adds. A vec4 load costs what a scalar one does. Workgroup memory is no cheaper and a
// barrier switches between coroutines. So these kernels use no workgroup memory and no barriers;
// each invocation keeps a row of outputs in registers, and the 8 lanes of a subgroup share what
// they load through subgroupShuffle (one vector permute on lavapipe), as if it had been loaded once
// for all of them.
//
// Layout. A workgroup is one subgroup of LANES invocations (8; 4 where subgroups may be that
// small; the host runs these kernels only on adapters with subgroups), lane =
// subgroup_invocation_id. The lanes run over channels: output channels co for forward and dW,
// input channels ci for dX. Each invocation owns COLS consecutive positions along time (forward:
// output positions lo; dX: input positions l; dW: the position sum is walked COLS at a time) of
// ITEMS batch items (forward and dX; 1 except where rows are very short), and the reduction is
// walked in chunks of TAPS kernel taps. COLS, TAPS, ITEMS, STRIDE and LANES are
// pipeline-overridable constants chosen by the host per layer (src/ops/conv1d/cpu.rs), so every
// loop inside a chunk has a constant trip count and the driver unrolls it: the row of
// accumulators, the strip and the weights stay in registers and every index is a constant. (An
// array indexed by a variable anywhere, even in the final stores, goes to memory for the whole
// kernel; and lavapipe unrolls a loop only up to a budget of instructions, which is why a chunk is
// 128 to 192 multiply-adds.)
//
// The strip. For one input channel, the COLS outputs of a chunk read the x positions
//   first + i,  i = j * STRIDE + t   (output j < COLS, tap t < TAPS),
// a contiguous strip of (COLS - 1) * STRIDE + TAPS values. The lanes load it together, LANES
// values a round (lane l loads strip[r * LANES + l] into register r), and `expand` then gives every
// lane value i as subgroupShuffle(register i / LANES, lane i % LANES), once per chunk (the driver
// does not merge repeated shuffles of the same value). Strip loads cost 1 / LANES of a load per
// value; the weights, which differ per lane, come as vec4 loads of 4 taps (rows of w are 16-byte
// aligned because K is a multiple of 4, which the host requires for forward and dX).
//
// forward. Lane co, invocation block (item group, lb): y[n, co, lb*COLS + j] for j < COLS and the
// group's ITEMS items n. Chunk (ci, kc): taps k = kc*TAPS + t, strip from
// first = (lb*COLS)*STRIDE + kc*TAPS - pad, acc[j] += w[co, ci, k] * strip[j*STRIDE + t].
// Positions outside [0, L) read as zero. The strip of chunk kc + 1 is that of chunk kc moved on by
// TAPS = 8 values, a whole number of registers: the registers slide down and only the last ones
// are loaded.
//
// backward_input. Lane ci, invocation block (item group, lb): dx[n, ci, l] for t = l + pad in
// [lb*COLS, lb*COLS + COLS). dx[n,ci,l] = sum over (co, k) with t - k = lo*STRIDE of
// w[co, ci, k] * dy[n, co, lo]. COLS and TAPS are multiples of STRIDE, so whether tap t of a chunk
// reaches output j, (j - t) mod STRIDE == 0, is known when the shader is compiled, and only those
// pairs are multiplied. Chunk (co, kc) reads the dy strip
//   dy[n, co, base + s],  base = (lb*COLS - kc*TAPS) / STRIDE - (TAPS / STRIDE - 1),
// and pair (j, t) takes s = (j - t) / STRIDE + TAPS / STRIDE - 1. Outputs with l outside [0, L)
// are computed over zeros and not written.
//
// backward_params. Lane co, invocation (block of ci_block input channels, tap chunk kc, split),
// one channel ci of the block after the other: dw[co, ci, kc*TAPS + t] for t < TAPS, summed over
// the positions (n, lo) of its split, COLS positions a round:
//   acc[t] += dy[n, co, lo0 + j] * strip[j*STRIDE + t],  strip from lo0*STRIDE + kc*TAPS - pad
// (dy differs per lane: COLS scalar loads a round). db[co] = sum dy is added up by the
// invocations with ci = 0 and kc = 0, which load that dy anyway. With one split the sums go
// straight to dw and db; with several each split writes partials[split, 0 .. Cout*Cin*K + Cout]
// (dw, then db) and conv1d_tiled.wgsl's reduce_splits adds them in a fixed order.
//
// The backward formulas are those of conv1d.wgsl; with accumulate = 1 each pass adds to its output.

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
    blocks: u32,         // forward, dX: position blocks per batch item; dW: position splits
    rows_per_split: u32, // dW: positions (n, lo) per split
    ci_block: u32,       // dW: input channels per invocation
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;
@group(0) @binding(9) var<storage, read_write> partials: array<f32>;
@group(0) @binding(10) var<storage, read_write> stats: array<f32>;

// The convolution's stride, the positions each invocation owns and the taps per chunk (the host
// sets all three for each layer; src/ops/conv1d/cpu.rs says how).
override STRIDE: u32 = 2u;
override COLS: u32 = 16u;
override TAPS: u32 = 8u;
// Batch items per invocation in forward and dX: where rows are short (the heads, conv7), one
// invocation takes several items, so each weight it loads serves all of them.
override ITEMS: u32 = 1u;
// Registers of 8 values the forward and dW strips fill.
override STRIP_REGS: u32 = ((COLS - 1u) * STRIDE + TAPS + LANES - 1u) / LANES;
// dX's dy strip: (COLS + TAPS) / STRIDE - 1 values.
override DY_REGS: u32 = ((COLS + TAPS) / STRIDE + LANES - 2u) / LANES;

// Lanes per workgroup: 8, or 4 on adapters whose subgroups may be that small.
override LANES: u32 = 8u;

// Array sizes must be constants; the overrides use a prefix (the host keeps them within: a strip
// holds at most 128 values, 32 registers of 4 lanes).
const MAX_COLS: u32 = 32u;
const MAX_TAPS: u32 = 16u;
const MAX_REGS: u32 = 32u;
const MAX_STRIP: u32 = 128u;

// Every value of a strip the lanes loaded together, on every lane: value i comes from register
// i / LANES of lane i % LANES. The driver does not merge repeated shuffles of the same value, so
// each is shuffled out once here, not once per multiply-add that uses it.
fn expand(strip: ptr<function, array<f32, MAX_REGS>>, first_reg: u32, regs: u32,
          values: ptr<function, array<f32, MAX_STRIP>>) {
    for (var r = 0u; r < regs; r++) {
        for (var l = 0u; l < LANES; l++) {
            (*values)[r * LANES + l] = subgroupShuffle((*strip)[first_reg + r], l);
        }
    }
}

// Registers [lo, hi) of `strip` get the values of x's row (at index `row`) from position `first`
// (which may be negative) on: register lo + r, lane l holds position first + r * LANES + l;
// positions outside [0, len) read as zero. load_dy_registers does the same from dy.
fn load_x_registers(strip: ptr<function, array<f32, MAX_REGS>>, lo: u32, hi: u32, row: u32, first: i32,
                    len: u32, lane: u32) {
    for (var r = lo; r < hi; r++) {
        let pos = first + i32((r - lo) * LANES + lane);
        var v = 0.0;
        if (pos >= 0 && pos < i32(len)) {
            v = x[row + u32(pos)];
        }
        (*strip)[r] = v;
    }
}

fn load_dy_registers(strip: ptr<function, array<f32, MAX_REGS>>, lo: u32, hi: u32, row: u32, first: i32,
                     len: u32, lane: u32) {
    for (var r = lo; r < hi; r++) {
        let pos = first + i32((r - lo) * LANES + lane);
        var v = 0.0;
        if (pos >= 0 && pos < i32(len)) {
            v = dy[row + u32(pos)];
        }
        (*strip)[r] = v;
    }
}

// Four taps k .. k+3 of w[co, ci, :] (zeros past K or past the last channel).
fn weights(co: u32, ci: u32, k: u32) -> vec4<f32> {
    if (co < p.cout && k < p.k) {
        return w[((co * p.cin + ci) * p.k + k) / 4u];
    }
    return vec4<f32>();
}

// The invocation's lane and its block: the flat workgroup index split as (block, channel group,
// batch item), or false past the last one (the 2-D grid may hold extra groups).
struct Block {
    lane: u32,
    channel: u32, // this lane's channel: co (forward, dW) or ci (dX)
    index: u32,   // position block (forward, dX) or (ci, tap chunk, split) (dW)
    n: u32,
}

fn block_of(wid: vec3<u32>, nwg: vec3<u32>, lane: u32, channels: u32, blocks: u32, items: u32) -> Block {
    let flat = flat_group(wid, nwg);
    let groups = (channels + LANES - 1u) / LANES;
    var blk: Block;
    blk.lane = lane;
    blk.index = flat % blocks;
    blk.channel = ((flat / blocks) % groups) * LANES + lane;
    blk.n = flat / (blocks * groups);
    if (blk.n >= items) {
        blk.n = items; // marks "past the end"
    }
    return blk;
}

// ---- forward ----------------------------------------------------------------------------------

// The block of the invocation in forward and forward_stats: (item group, position block).
fn forward_block(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) -> Block {
    return block_of(wid, nwg, lane, p.cout, p.blocks, (p.n + ITEMS - 1u) / ITEMS);
}

// This invocation's accumulators: acc[i * COLS + j] = y[n0 + i, co, lo0 + j] without the bias.
fn forward_sums(blk: Block, lane: u32, acc: ptr<function, array<f32, MAX_COLS>>) {
    let n0 = blk.n * ITEMS;
    let co = blk.channel;
    let lo0 = blk.index * COLS;
    let first = i32(lo0 * STRIDE) - i32(p.pad);
    // Column c = i * COLS + j is output lo0 + j of batch item n0 + i (items past N read zeros and
    // are not written). Item i's strip is registers [i * STRIP_REGS, (i + 1) * STRIP_REGS), so
    // once expanded its value v is xs[i * STRIP_REGS * LANES + v]. One loop over all columns,
    // rather than one over items around one over positions, keeps every index a constant once
    // the driver unrolls it.
    var strips: array<f32, MAX_REGS>;
    // The strip of chunk k0 + TAPS starts TAPS positions after that of chunk k0: its first
    // STRIP_REGS - slide registers are the last ones of the previous strip, and only `slide` are
    // loaded (TAPS is 8 wherever K has several chunks, a whole number of registers of 4 or 8 lanes).
    let slide = TAPS / LANES;
    // Channels and tap chunks are two loops, not one index divided into both: a vector division
    // is eight scalar ones on a CPU.
    for (var ci = 0u; ci < p.cin; ci++) {
        for (var k0 = 0u; k0 < p.k; k0 += TAPS) {
            for (var i = 0u; i < ITEMS; i++) {
                let r0 = i * STRIP_REGS;
                let len = select(0u, p.l, n0 + i < p.n);
                let row = ((n0 + i) * p.cin + ci) * p.l;
                if (k0 == 0u) {
                    load_x_registers(&strips, r0, r0 + STRIP_REGS, row, first, len, lane);
                } else {
                    for (var r = 0u; r + slide < STRIP_REGS; r++) {
                        strips[r0 + r] = strips[r0 + r + slide];
                    }
                    let start = first + i32(k0 + (STRIP_REGS - slide) * LANES);
                    load_x_registers(&strips, r0 + STRIP_REGS - slide, r0 + STRIP_REGS, row, start, len, lane);
                }
            }
            var xs: array<f32, MAX_STRIP>;
            expand(&strips, 0u, ITEMS * STRIP_REGS, &xs);
            for (var q = 0u; q < TAPS / 4u; q++) {
                let wv = weights(co, ci, k0 + q * 4u);
                for (var c = 0u; c < ITEMS * COLS; c++) {
                    let at = (c / COLS) * STRIP_REGS * LANES + (c % COLS) * STRIDE + q * 4u;
                    for (var e = 0u; e < 4u; e++) {
                        (*acc)[c] = fma(wv[e], xs[at + e], (*acc)[c]);
                    }
                }
            }
        }
    }
}

// Writes y = acc + b for the block's real outputs.
fn store_forward(blk: Block, acc: ptr<function, array<f32, MAX_COLS>>) {
    let n0 = blk.n * ITEMS;
    let co = blk.channel;
    let lo0 = blk.index * COLS;
    if (co >= p.cout) { return; }
    // (Nested loops with small bodies: the driver must unroll this one too, or acc, indexed by a
    // variable, goes to memory for the whole kernel.)
    for (var i = 0u; i < ITEMS; i++) {
        let row = ((n0 + i) * p.cout + co) * p.l_out;
        for (var j = 0u; j < COLS; j++) {
            if (n0 + i < p.n && lo0 + j < p.l_out) {
                y[row + lo0 + j] = (*acc)[i * COLS + j] + b[co];
            }
        }
    }
}

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(LANES)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_invocation_id) lane: u32) {
    let blk = forward_block(wid, nwg, lane);
    if (blk.n * ITEMS >= p.n) { return; }
    var acc: array<f32, MAX_COLS>;
    forward_sums(blk, lane, &acc);
    store_forward(blk, &acc);
}

// forward, and the statistics of the block's outputs (ITEMS = 1): tile n * blocks + block of
// stats[(tile, co)] = (count, mean, M2) of y over the block's positions, for batchnorm.wgsl's
// train_stats_merge, so the training batchnorm that follows never reads y for its statistics.
// Both moments are taken around the block's own mean, from the registers.
@compute @workgroup_size(LANES)
fn forward_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let blk = forward_block(wid, nwg, lane);
    if (blk.n >= p.n) { return; }
    var acc: array<f32, MAX_COLS>;
    forward_sums(blk, lane, &acc);
    store_forward(blk, &acc);
    let co = blk.channel;
    if (co >= p.cout) { return; }
    let lo0 = blk.index * COLS;
    let count = min(COLS, p.l_out - lo0);
    let bias = b[co];
    var sum = 0.0;
    for (var j = 0u; j < COLS; j++) {
        if (j < count) {
            sum += acc[j] + bias;
        }
    }
    let mean = sum / f32(count);
    var m2 = 0.0;
    for (var j = 0u; j < COLS; j++) {
        if (j < count) {
            let d = acc[j] + bias - mean;
            m2 += d * d;
        }
    }
    let at = ((blk.n * p.blocks + blk.index) * p.cout + co) * 3u;
    stats[at] = f32(count);
    stats[at + 1u] = mean;
    stats[at + 2u] = m2;
}

// ---- backward_input ---------------------------------------------------------------------------

@compute @workgroup_size(LANES)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(subgroup_invocation_id) lane: u32) {
    let blk = block_of(wid, nwg, lane, p.cin, p.blocks, (p.n + ITEMS - 1u) / ITEMS);
    if (blk.n * ITEMS >= p.n) { return; }
    let n0 = blk.n * ITEMS;
    let ci = blk.channel;
    let t0 = blk.index * COLS; // t = l + pad
    let lead = TAPS / STRIDE - 1u;
    // acc[i * COLS + j]: position t0 + j of batch item n0 + i (items past N read zeros and are
    // not written).
    var acc: array<f32, MAX_COLS>;
    for (var co = 0u; co < p.cout; co++) {
        for (var k0 = 0u; k0 < p.k; k0 += TAPS) {
            var wts: array<vec4<f32>, MAX_TAPS / 4u>;
            for (var q = 0u; q < TAPS / 4u; q++) {
                wts[q] = weights(co, ci, k0 + q * 4u);
            }
            // Exact: t0 and k0 are multiples of the stride.
            let base = (i32(t0) - i32(k0)) / i32(STRIDE) - i32(lead);
            for (var i = 0u; i < ITEMS; i++) {
                var strip: array<f32, MAX_REGS>;
                let len = select(0u, p.l_out, n0 + i < p.n);
                load_dy_registers(&strip, 0u, DY_REGS, ((n0 + i) * p.cout + co) * p.l_out, base, len, lane);
                var dys: array<f32, MAX_STRIP>;
                expand(&strip, 0u, DY_REGS, &dys);
                // Output j = jj * STRIDE + r takes exactly the taps t = r + m * STRIDE, from dy
                // strip value jj - m + TAPS / STRIDE - 1 (header). Looping over (r, m) outside and
                // jj inside keeps every index a constant once unrolled, with no test of which taps
                // reach which output.
                for (var r = 0u; r < STRIDE; r++) {
                    for (var m = 0u; m < TAPS / STRIDE; m++) {
                        let t = r + m * STRIDE;
                        let wt = wts[t / 4u][t % 4u];
                        for (var jj = 0u; jj < COLS / STRIDE; jj++) {
                            let j = i * COLS + jj * STRIDE + r;
                            acc[j] = fma(wt, dys[jj + TAPS / STRIDE - 1u - m], acc[j]);
                        }
                    }
                }
            }
        }
    }
    if (ci >= p.cin) { return; }
    for (var i = 0u; i < ITEMS; i++) {
        let row = ((n0 + i) * p.cin + ci) * p.l;
        for (var j = 0u; j < COLS; j++) {
            let l = i32(t0 + j) - i32(p.pad);
            if (n0 + i < p.n && l >= 0 && l < i32(p.l)) {
                let at = row + u32(l);
                dx[at] = select(acc[i * COLS + j], dx[at] + acc[i * COLS + j], p.accumulate != 0u);
            }
        }
    }
}

// ---- backward_params --------------------------------------------------------------------------

// The split's dy values of one round for this invocation's channel co: positions lo0 .. lo0 +
// count of item n (zero past count) into gs; returns their sum (db's share).
fn dy_round(co: u32, n: u32, lo0: u32, count: u32, gs: ptr<function, array<f32, MAX_COLS>>) -> f32 {
    let dy_row = (n * p.cout + co) * p.l_out + lo0;
    var sum = 0.0;
    for (var j = 0u; j < COLS; j++) {
        var g = 0.0;
        if (j < count && co < p.cout) {
            g = dy[dy_row + j];
        }
        (*gs)[j] = g;
        sum += g;
    }
    return sum;
}

// acc[t] += sum over the round's positions j of gs[j] * x[n, ci, (lo0 + j) * STRIDE + k0 + t - pad].
fn x_round(ci: u32, n: u32, lo0: u32, k0: u32, lane: u32, gs: ptr<function, array<f32, MAX_COLS>>,
           acc: ptr<function, array<f32, MAX_TAPS>>) {
    let first = i32(lo0 * STRIDE + k0) - i32(p.pad);
    var strip: array<f32, MAX_REGS>;
    load_x_registers(&strip, 0u, STRIP_REGS, (n * p.cin + ci) * p.l, first, p.l, lane);
    var xs: array<f32, MAX_STRIP>;
    expand(&strip, 0u, STRIP_REGS, &xs);
    for (var j = 0u; j < COLS; j++) {
        for (var t = 0u; t < TAPS; t++) {
            (*acc)[t] = fma((*gs)[j], xs[j * STRIDE + t], (*acc)[t]);
        }
    }
}

// This invocation's TAPS sums of dw[co, ci, k0 + t] over the split's positions, COLS a round, and
// the sum of dy[n, co, :] over them.
fn params_sums(co: u32, ci: u32, k0: u32, split: u32, lane: u32,
               acc: ptr<function, array<f32, MAX_TAPS>>) -> f32 {
    let r_begin = split * p.rows_per_split;
    let r_end = min(r_begin + p.rows_per_split, p.n * p.l_out);
    var row_sum = 0.0;
    // The round's (n, lo0) are carried forward, not divided out of r: a vector division is eight
    // scalar ones on a CPU, as slow as the round's multiply-adds.
    var r = r_begin;
    var n = r_begin / p.l_out;
    var lo0 = r_begin % p.l_out;
    while (r < r_end) {
        // This round's positions stay within one batch item and within the split.
        let count = min(min(COLS, p.l_out - lo0), r_end - r);
        var gs: array<f32, MAX_COLS>;
        row_sum += dy_round(co, n, lo0, count, &gs);
        x_round(ci, n, lo0, k0, lane, &gs, acc);
        r += count;
        lo0 += count;
        if (lo0 == p.l_out) {
            lo0 = 0u;
            n += 1u;
        }
    }
    return row_sum;
}

// When the whole split is one round (the short rows of conv5 to conv7 and the heads), its dy
// values are the same for every input channel of the block: they are loaded once, before the
// channel loop, instead of once per channel.
struct OneRound {
    yes: bool,
    n: u32,
    lo0: u32,
    row_sum: f32,
}

fn one_round(co: u32, split: u32, gs: ptr<function, array<f32, MAX_COLS>>) -> OneRound {
    let r_begin = split * p.rows_per_split;
    let count = min(r_begin + p.rows_per_split, p.n * p.l_out) - r_begin;
    let lo0 = r_begin % p.l_out;
    var round = OneRound(count <= COLS && lo0 + count <= p.l_out, r_begin / p.l_out, lo0, 0.0);
    if (round.yes) {
        round.row_sum = dy_round(co, round.n, lo0, count, gs);
    }
    return round;
}

// The sums of one input channel ci: from the hoisted round, or round by round.
fn channel_sums(at: ParamsBlock, ci: u32, lane: u32, round: OneRound, gs: ptr<function, array<f32, MAX_COLS>>,
                acc: ptr<function, array<f32, MAX_TAPS>>) -> f32 {
    if (round.yes) {
        x_round(ci, round.n, round.lo0, at.k0, lane, gs, acc);
        return round.row_sum;
    }
    return params_sums(at.co, ci, at.k0, at.split, lane, acc);
}

// The invocation's share of dW: its lane's channel co, and (ci, first tap, split) from its block.
struct ParamsBlock {
    valid: bool,
    co: u32,
    ci: u32,
    k0: u32,
    split: u32,
}

fn params_block(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) -> ParamsBlock {
    // Blocks are (block of ci_block input channels, tap chunk, split), with one "batch item".
    let chunks = (p.k + TAPS - 1u) / TAPS;
    let ci_blocks = (p.cin + p.ci_block - 1u) / p.ci_block;
    let blk = block_of(wid, nwg, lane, p.cout, ci_blocks * chunks * p.blocks, 1u);
    let chunk = blk.index / p.blocks;
    let ci = (chunk / chunks) * p.ci_block;
    return ParamsBlock(blk.n < 1u, blk.channel, ci, (chunk % chunks) * TAPS, blk.index % p.blocks);
}

// One split (blocks = 1): the sums go straight into dw and db.
@compute @workgroup_size(LANES)
fn backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let at = params_block(wid, nwg, lane);
    if (!at.valid) { return; }
    var gs: array<f32, MAX_COLS>;
    let round = one_round(at.co, at.split, &gs);
    for (var ci = at.ci; ci < min(at.ci + p.ci_block, p.cin); ci++) {
        var acc: array<f32, MAX_TAPS>;
        let row_sum = channel_sums(at, ci, lane, round, &gs, &acc);
        if (at.co < p.cout) {
            for (var t = 0u; t < TAPS; t++) {
                if (at.k0 + t < p.k) {
                    let i = (at.co * p.cin + ci) * p.k + at.k0 + t;
                    dw[i] = select(acc[t], dw[i] + acc[t], p.accumulate != 0u);
                }
            }
            if (ci == 0u && at.k0 == 0u) {
                db[at.co] = select(row_sum, db[at.co] + row_sum, p.accumulate != 0u);
            }
        }
    }
}

// Several splits: each writes its partial sums, which conv1d_tiled.wgsl's reduce_splits adds up.
@compute @workgroup_size(LANES)
fn backward_params_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(subgroup_invocation_id) lane: u32) {
    let at = params_block(wid, nwg, lane);
    if (!at.valid) { return; }
    let weights = p.cout * p.cin * p.k;
    let base = at.split * (weights + p.cout);
    var gs: array<f32, MAX_COLS>;
    let round = one_round(at.co, at.split, &gs);
    for (var ci = at.ci; ci < min(at.ci + p.ci_block, p.cin); ci++) {
        var acc: array<f32, MAX_TAPS>;
        let row_sum = channel_sums(at, ci, lane, round, &gs, &acc);
        if (at.co < p.cout) {
            for (var t = 0u; t < TAPS; t++) {
                if (at.k0 + t < p.k) {
                    partials[base + (at.co * p.cin + ci) * p.k + at.k0 + t] = acc[t];
                }
            }
            if (ci == 0u && at.k0 == 0u) {
                partials[base + weights + at.co] = row_sum;
            }
        }
    }
}
