// 1-D convolution as tiled implicit GEMM: the same results as conv1d.wgsl (same layouts, same
// bindings plus two scratch buffers, same formulas; read its header first), computed so that each
// value read from global memory is used many times instead of once.
//
//   x  [N, Cin, L]   w  [Cout, Cin, K]   b [Cout]   y, dy [N, Cout, Lout]   dx [N, Cin, L]
//
// Every pass is a matrix product C[m, c] = sum_r A[m, r] * B[r, c] whose operands are gathered
// straight from the tensors ("implicit": no im2col copy is ever stored):
//
//   pass             rows m   columns c         reduction r            A[m, r]        B[r, c]
//   forward          co       (n, lo)           (ci, k)                w[co, ci, k]   x[n, ci, lo*stride + k - pad]
//   backward_input   ci       (n, q), residue   (co, j), k = rho+s*j   w[co, ci, k]   dy[n, co, q - j]
//   backward_params  co       (ci, k)           (n, lo), one split     dy[n, co, lo]  x[n, ci, lo*stride + k - pad]
//
// Operands outside a tensor (padding, ragged tile edges) read as zero.
//
// forward_stats is forward plus, for each tile and channel, the count, mean and sum of squared
// deviations of the tile's outputs, so that the training batchnorm that follows (batchnorm.wgsl's
// train_stats_merge) gets its statistics without reading y again.
//
// backward_input. dx[n,ci,l] = sum over the (co, lo, k) with lo*s + k - pad = l of dy*w (s = the
// stride). Write t = l + pad = q*s + rho with rho = t mod s. The taps that reach l are exactly
// k = rho + s*j (j = 0, 1, ... while k < K), each from output lo = q - j. So for one residue rho
// the gradient is a stride-1 product over (co, j) with K_rho = ceil((K - rho) / s) taps, and no
// term is a multiply by a tap that cannot hit (the plain kernel skips them by looping over lo).
// Columns run over q = 0 .. Q-1, Q = floor((L - 1 + pad) / s) + 1, for every residue; a column whose
// l = q*s + rho - pad falls outside [0, L) is computed and thrown away (at most pad/s + 1 per
// residue and batch item). A residue with K_rho = 0 (stride > K) writes zeros: nothing reaches it.
//
// backward_params. dw is a sum over all N * Lout positions: millions of terms for conv1 and only
// a thousand weights. The positions are cut into `layers` splits of `rows_per_split`; each
// workgroup sums one split for one tile of weights. The bias gradient db[co] = sum_{n,lo} dy[n,co,lo]
// is the sum of A's row co, which the workgroups of the first tile column already stage: their
// first tile_m invocations add up one row each, so db costs no launch and no second read of dy.
// With one split, backward_params writes dw and db; with more, backward_params_split writes each
// split's sums to partials[split, 0 .. Cout*Cin*K + Cout] (dw, then db) and reduce_splits adds
// them up in a fixed order (deterministic, no float atomics).
//
// Tiling. A workgroup of 256 invocations owns a tile of tile_m x tile_n = 4096 entries of C
// (tile_m a power of two from 16 to 256, picked by the host to fit the layer's shape) and walks r
// in chunks of RK = 8. Per chunk it stages A[tile_m x RK] and B[RK x tile_n] in workgroup memory
// (RK * (tile_m + tile_n) global reads, at most 2,176) and then does tile_m * tile_n * RK = 32,768
// multiply-adds: 15 to 32 of them per global read, against one per two reads in conv1d.wgsl.
// Invocation t owns a 4 x 4 block of C, rows t / (tile_n/4) + i * tile_m/4 and columns
// t % (tile_n/4) + j * tile_n/4 (i, j < 4), so neighbouring invocations read neighbouring
// workgroup-memory words and write neighbouring columns (consecutive lo or k) to global memory.
// Workgroups are numbered flat over (tile row, tile column, residue or split).
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
    tile_m: u32,
    tiles_m: u32,
    tiles_n: u32,
    // backward_input: residues (= stride) along the third axis; backward_params: splits.
    layers: u32,
    rows_per_split: u32,
    q_len: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> db: array<f32>;
@group(0) @binding(9) var<storage, read_write> partials: array<f32>;
@group(0) @binding(10) var<storage, read_write> stats: array<f32>;

const WG: u32 = 256u;
const RK: u32 = 8u;
const TILE: u32 = 4096u;

// A chunk's A tile [RK][tile_m] followed by its B tile [RK][tile_n]; 8 * (16 + 256) floats at most.
var<workgroup> tiles: array<f32, 2176>;

struct Tile {
    m0: u32,    // first row of C
    c0: u32,    // first column of C
    layer: u32, // residue (backward_input) or split (backward_params)
}

// log2 of the tile's height and width (powers of two whose product is TILE), so that
// dividing by them is a shift.
fn tile_m_shift() -> u32 {
    return countTrailingZeros(p.tile_m);
}

fn tile_n_shift() -> u32 {
    return countTrailingZeros(TILE) - tile_m_shift();
}

fn tile_n() -> u32 {
    return 1u << tile_n_shift();
}

// The tile this workgroup owns, or false past the last one (the 2-D grid may hold extra groups).
fn tile_of(wid: vec3<u32>, nwg: vec3<u32>, tile: ptr<function, Tile>) -> bool {
    let flat = flat_group(wid, nwg);
    let per_layer = p.tiles_m * p.tiles_n;
    (*tile).m0 = (flat % p.tiles_m) * p.tile_m;
    (*tile).c0 = ((flat / p.tiles_m) % p.tiles_n) * tile_n();
    (*tile).layer = flat / per_layer;
    return flat < per_layer * p.layers;
}

// Adds the staged chunk's product to this invocation's 4 x 4 block of C.
fn multiply_chunk(acc: ptr<function, array<f32, 16>>, t: u32) {
    let tn = tile_n();
    let row = t >> (tile_n_shift() - 2u);
    let col = t & (tn / 4u - 1u);
    let b_base = RK * p.tile_m;
    for (var rr = 0u; rr < RK; rr++) {
        var a: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = tiles[rr * p.tile_m + row + i * (p.tile_m / 4u)];
            bv[i] = tiles[b_base + rr * tn + col + i * (tn / 4u)];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i * 4u + j] = fma(a[i], bv[j], (*acc)[i * 4u + j]);
            }
        }
    }
}

// The C entry (row, column) of element e (= i * 4 + j) of invocation t's block.
fn block_row(t: u32, e: u32) -> u32 {
    return (t >> (tile_n_shift() - 2u)) + (e / 4u) * (p.tile_m / 4u);
}

fn block_col(t: u32, e: u32) -> u32 {
    return (t & (tile_n() / 4u - 1u)) + (e % 4u) * (tile_n() / 4u);
}

// Staging. Each chunk, invocation t stages the A entries e = t, t + 256, ... of the [tile_m x RK]
// block (row e / RK, step e % RK) and the B entries e = t, t + 256, ... of the [RK x tile_n] block
// (step e / tile_n, column e % tile_n). As 256 is a multiple of RK and of tile_n, the A step
// (t % RK) and the B column (t % tile_n) of an invocation never change, and the B steps it stages
// are t / tile_n + j * (256 / tile_n). Those steps are split into two indices (such as ci and k)
// by a division; instead of dividing again for every element of every chunk, an invocation divides
// once and carries the quotient and remainder forward as the step grows.
struct Counter {
    q: u32,
    r: u32,
}

fn counter(v: u32, d: u32) -> Counter {
    return Counter(v / d, v % d);
}

// The counter of v + step, from that of v (a loop of about step / d + 1 subtractions).
fn advance(c: Counter, step: u32, d: u32) -> Counter {
    var next = Counter(c.q, c.r + step);
    while (next.r >= d) {
        next.r -= d;
        next.q += 1u;
    }
    return next;
}

// The first B step invocation t stages, and the distance to its next one.
fn b_first_step(t: u32) -> u32 {
    return t >> tile_n_shift();
}

fn b_step_stride() -> u32 {
    return WG >> tile_n_shift();
}

// ---- forward: rows co, columns (n, lo), reduction r = (ci, k) ----------------------------------

// This invocation's 4 x 4 block of conv(x, w), without the bias.
fn forward_block(tile: Tile, t: u32, acc: ptr<function, array<f32, 16>>) {
    let tn = tile_n();
    let r_len = p.cin * p.k;
    // A = w, read along r: no division needed.
    let a_step = t % RK;
    // B = x: this invocation's column (n, lo) is fixed; its first step's (ci, k) is carried.
    let c = tile.c0 + (t & (tn - 1u));
    let column_valid = c < p.n * p.l_out;
    let x_base = (c / p.l_out) * p.cin * p.l;
    let pos0 = i32((c % p.l_out) * p.stride) - i32(p.pad);
    var b_first = counter(b_first_step(t), p.k); // (ci, k) of step r0 + b_first_step(t)
    for (var r0 = 0u; r0 < r_len; r0 += RK) {
        for (var e = t; e < RK * p.tile_m; e += WG) {
            let co = tile.m0 + e / RK;
            let r = r0 + a_step;
            var v = 0.0;
            if (co < p.cout && r < r_len) {
                v = w[co * r_len + r];
            }
            tiles[a_step * p.tile_m + e / RK] = v;
        }
        var rk = b_first;
        for (var step = b_first_step(t); step < RK; step += b_step_stride()) {
            let pos = pos0 + i32(rk.r);
            var v = 0.0;
            if (column_valid && rk.q < p.cin && pos >= 0 && pos < i32(p.l)) {
                v = x[x_base + rk.q * p.l + u32(pos)];
            }
            tiles[RK * p.tile_m + step * tn + (t & (tn - 1u))] = v;
            rk = advance(rk, b_step_stride(), p.k);
        }
        b_first = advance(b_first, RK, p.k);
        workgroupBarrier();
        multiply_chunk(acc, t);
        workgroupBarrier();
    }
}

// Adds the bias to the block, then writes its real outputs (not the ragged edge's) to y.
fn write_forward_block(tile: Tile, t: u32, acc: ptr<function, array<f32, 16>>) {
    for (var e = 0u; e < 16u; e++) {
        let co = tile.m0 + block_row(t, e);
        let c = tile.c0 + block_col(t, e);
        if (co < p.cout && c < p.n * p.l_out) {
            (*acc)[e] += b[co];
            let n = c / p.l_out;
            y[(n * p.cout + co) * p.l_out + c % p.l_out] = (*acc)[e];
        }
    }
}

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    var tile: Tile;
    if (!tile_of(wid, nwg, &tile)) { return; }
    var acc: array<f32, 16>;
    forward_block(tile, lid.x, &acc);
    write_forward_block(tile, lid.x, &acc);
}

// Adds up v over the tile_n / 4 invocations that share this invocation's block rows, one sum per
// block row i (v[i]); every invocation gets its rows' totals. Uses `tiles` as scratch: call it
// only after the last chunk, from every invocation.
fn row_totals(t: u32, v: vec4<f32>) -> vec4<f32> {
    let group = tile_n() / 4u;
    let col = t & (group - 1u);
    for (var i = 0u; i < 4u; i++) {
        tiles[i * WG + t] = v[i];
    }
    for (var half = group / 2u; half > 0u; half = half / 2u) {
        workgroupBarrier();
        if (col < half) {
            for (var i = 0u; i < 4u; i++) {
                tiles[i * WG + t] += tiles[i * WG + t + half];
            }
        }
    }
    workgroupBarrier();
    let first = t - col;
    let totals = vec4<f32>(tiles[first], tiles[WG + first], tiles[2u * WG + first], tiles[3u * WG + first]);
    // Nobody may overwrite the totals before everyone has read them.
    workgroupBarrier();
    return totals;
}

// forward, and for every channel of the tile the count, mean and sum of squared deviations (M2)
// of y over the tile's columns: stats[(tile column, co)] = (count, mean, M2). Batchnorm's
// train_stats_merge combines them into the batch statistics, so its x is never read again. Both
// moments are taken around the tile's own mean (two passes over the registers), which keeps M2
// accurate when |mean| >> std.
@compute @workgroup_size(256)
fn forward_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    var tile: Tile;
    if (!tile_of(wid, nwg, &tile)) { return; }
    let t = lid.x;
    var acc: array<f32, 16>;
    forward_block(tile, t, &acc);
    write_forward_block(tile, t, &acc);

    let count = min(tile_n(), p.n * p.l_out - tile.c0);
    var sums = vec4<f32>();
    for (var e = 0u; e < 16u; e++) {
        if (tile.c0 + block_col(t, e) < p.n * p.l_out) {
            sums[e / 4u] += acc[e];
        }
    }
    let means = row_totals(t, sums) / f32(count);
    var squares = vec4<f32>();
    for (var e = 0u; e < 16u; e++) {
        if (tile.c0 + block_col(t, e) < p.n * p.l_out) {
            let d = acc[e] - means[e / 4u];
            squares[e / 4u] += d * d;
        }
    }
    let m2 = row_totals(t, squares);
    if ((t & (tile_n() / 4u - 1u)) == 0u) {
        for (var i = 0u; i < 4u; i++) {
            let co = tile.m0 + block_row(t, i * 4u);
            if (co < p.cout) {
                let at = ((tile.c0 >> tile_n_shift()) * p.cout + co) * 3u;
                stats[at] = f32(count);
                stats[at + 1u] = means[i];
                stats[at + 2u] = m2[i];
            }
        }
    }
}

// ---- backward_input: rows ci, columns (n, q) of one residue rho, reduction (co, j) -------------

fn taps_of_residue(rho: u32) -> u32 {
    if (rho >= p.k) { return 0u; }
    return (p.k - rho + p.stride - 1u) / p.stride;
}

@compute @workgroup_size(256)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    var tile: Tile;
    if (!tile_of(wid, nwg, &tile)) { return; }
    let t = lid.x;
    let tn = tile_n();
    let rho = tile.layer;
    let taps = taps_of_residue(rho);
    let d = max(taps, 1u); // with no taps the loop below never runs
    // A = w[co, ci, rho + s*j]: this invocation's step is r0 + t % RK, its (co, j) carried.
    let a_step = t % RK;
    var a_rc = counter(a_step, d);
    // B = dy[n, co, q - j]: the column (n, q) is fixed; the first step's (co, j) is carried.
    let c = tile.c0 + (t & (tn - 1u));
    let column_valid = c < p.n * p.q_len;
    let dy_base = (c / p.q_len) * p.cout * p.l_out;
    let q = i32(c % p.q_len);
    var b_first = counter(b_first_step(t), d);
    var acc: array<f32, 16>;
    for (var r0 = 0u; r0 < p.cout * taps; r0 += RK) {
        for (var e = t; e < RK * p.tile_m; e += WG) {
            let ci = tile.m0 + e / RK;
            var v = 0.0;
            if (ci < p.cin && a_rc.q < p.cout) {
                v = w[(a_rc.q * p.cin + ci) * p.k + rho + p.stride * a_rc.r];
            }
            tiles[a_step * p.tile_m + e / RK] = v;
        }
        a_rc = advance(a_rc, RK, d);
        var rc = b_first;
        for (var step = b_first_step(t); step < RK; step += b_step_stride()) {
            let lo = q - i32(rc.r);
            var v = 0.0;
            if (column_valid && rc.q < p.cout && lo >= 0 && lo < i32(p.l_out)) {
                v = dy[dy_base + rc.q * p.l_out + u32(lo)];
            }
            tiles[RK * p.tile_m + step * tn + (t & (tn - 1u))] = v;
            rc = advance(rc, b_step_stride(), d);
        }
        b_first = advance(b_first, RK, d);
        workgroupBarrier();
        multiply_chunk(&acc, t);
        workgroupBarrier();
    }
    for (var e = 0u; e < 16u; e++) {
        let ci = tile.m0 + block_row(t, e);
        let c = tile.c0 + block_col(t, e);
        let l = i32((c % p.q_len) * p.stride + rho) - i32(p.pad);
        if (ci < p.cin && c < p.n * p.q_len && l >= 0 && l < i32(p.l)) {
            let i = ((c / p.q_len) * p.cin + ci) * p.l + u32(l);
            dx[i] = select(acc[e], dx[i] + acc[e], p.accumulate != 0u);
        }
    }
}

// ---- backward_params: rows co, columns (ci, k), reduction (n, lo) over one split ---------------

// This invocation's 4 x 4 block of dw summed over the positions of the tile's split, and for
// invocation t < tile_m the sum of dy over the same positions for row t (its share of db).
fn params_block(tile: Tile, t: u32, acc: ptr<function, array<f32, 16>>, row_sum: ptr<function, f32>) {
    let tn = tile_n();
    let r_begin = tile.layer * p.rows_per_split;
    let r_end = min(r_begin + p.rows_per_split, p.n * p.l_out);
    // A = dy[n, co, lo]: this invocation's step is r0 + t % RK, its (n, lo) carried.
    let a_step = t % RK;
    var a_nl = counter(r_begin + a_step, p.l_out);
    // B = x[n, ci, lo*stride + k - pad]: the column (ci, k) is fixed; the first step's (n, lo) is carried.
    let c = tile.c0 + (t & (tn - 1u));
    let column_valid = c < p.cin * p.k;
    let ci = c / p.k;
    let k = c % p.k;
    var b_first = counter(r_begin + b_first_step(t), p.l_out);
    for (var r0 = r_begin; r0 < r_end; r0 += RK) {
        for (var e = t; e < RK * p.tile_m; e += WG) {
            let co = tile.m0 + e / RK;
            var v = 0.0;
            if (co < p.cout && r0 + a_step < r_end) {
                v = dy[(a_nl.q * p.cout + co) * p.l_out + a_nl.r];
            }
            tiles[a_step * p.tile_m + e / RK] = v;
        }
        a_nl = advance(a_nl, RK, p.l_out);
        var nl = b_first;
        for (var step = b_first_step(t); step < RK; step += b_step_stride()) {
            let pos = i32(nl.r * p.stride + k) - i32(p.pad);
            var v = 0.0;
            if (column_valid && r0 + step < r_end && pos >= 0 && pos < i32(p.l)) {
                v = x[(nl.q * p.cin + ci) * p.l + u32(pos)];
            }
            tiles[RK * p.tile_m + step * tn + (t & (tn - 1u))] = v;
            nl = advance(nl, b_step_stride(), p.l_out);
        }
        b_first = advance(b_first, RK, p.l_out);
        workgroupBarrier();
        multiply_chunk(acc, t);
        if (t < p.tile_m) {
            for (var rr = 0u; rr < RK; rr++) {
                *row_sum += tiles[rr * p.tile_m + t];
            }
        }
        workgroupBarrier();
    }
}

// One split (layers = 1): the blocks go straight into dw and db.
@compute @workgroup_size(256)
fn backward_params(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    var tile: Tile;
    if (!tile_of(wid, nwg, &tile)) { return; }
    var acc: array<f32, 16>;
    var row_sum = 0.0;
    params_block(tile, lid.x, &acc, &row_sum);
    for (var e = 0u; e < 16u; e++) {
        let co = tile.m0 + block_row(lid.x, e);
        let c = tile.c0 + block_col(lid.x, e);
        if (co < p.cout && c < p.cin * p.k) {
            let i = co * p.cin * p.k + c;
            dw[i] = select(acc[e], dw[i] + acc[e], p.accumulate != 0u);
        }
    }
    let co = tile.m0 + lid.x;
    if (tile.c0 == 0u && lid.x < p.tile_m && co < p.cout) {
        db[co] = select(row_sum, db[co] + row_sum, p.accumulate != 0u);
    }
}

// Several splits: each writes its partial sums, which reduce_splits then adds up.
@compute @workgroup_size(256)
fn backward_params_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid: vec3<u32>) {
    var tile: Tile;
    if (!tile_of(wid, nwg, &tile)) { return; }
    var acc: array<f32, 16>;
    var row_sum = 0.0;
    params_block(tile, lid.x, &acc, &row_sum);
    let weights = p.cout * p.cin * p.k;
    let base = tile.layer * (weights + p.cout);
    for (var e = 0u; e < 16u; e++) {
        let co = tile.m0 + block_row(lid.x, e);
        let c = tile.c0 + block_col(lid.x, e);
        if (co < p.cout && c < p.cin * p.k) {
            partials[base + co * p.cin * p.k + c] = acc[e];
        }
    }
    let co = tile.m0 + lid.x;
    if (tile.c0 == 0u && lid.x < p.tile_m && co < p.cout) {
        partials[base + weights + co] = row_sum;
    }
}

// dw[i] (+)= sum over splits of partials[split, i] for i < Cout*Cin*K, and db likewise for the
// Cout entries after them: one invocation per parameter.
@compute @workgroup_size(256)
fn reduce_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    let weights = p.cout * p.cin * p.k;
    if (i >= weights + p.cout) { return; }
    var sum = 0.0;
    for (var s = 0u; s < p.layers; s++) {
        sum += partials[s * (weights + p.cout) + i];
    }
    if (i < weights) {
        dw[i] = select(sum, dw[i] + sum, p.accumulate != 0u);
    } else {
        db[i - weights] = select(sum, db[i - weights] + sum, p.accumulate != 0u);
    }
}
