// Fused training-mode batchnorm -> ReLU (-> max-pool), shaped for CPU drivers: the same results as
// bn_relu_pool.wgsl (read its header first: same formulas, same bindings, same rounding of z),
// plus the batch statistics of batchnorm.wgsl's train_stats, computed the way a CPU Vulkan driver
// such as lavapipe runs a shader fastest.
//
// Why another layout. The GPU kernels give each invocation one element and find its channel,
// window and row with divisions, and read gamma, beta, mean and invstd again for every element.
// On a CPU driver 8 invocations are one SIMD vector whose every load is a loop over its lanes and
// whose every division is eight scalar ones: per element that was a dozen loads and five
// divisions for two or three additions. Here an invocation walks a run of one row, so the row and
// channel are worked out once per run, the channel's constants are loaded once per run, and per
// element only x (and, per pool window, dy and argmax) is loaded.
//
// Slots. A row (n, c) of x is cut into slots of POOL positions: slot o covers
// [o * POOL, o * POOL + POOL). With POOL = k > 1 a slot is pool window o (o < Lout), and the last
// slot, when L is not a multiple of k, holds the tail that belongs to no window; with k = 1 (no
// pool) slots are runs of POOL = 4 positions of the ReLU. POOL is a pipeline-overridable constant,
// so the loop over a slot's positions has a constant trip count and is unrolled. Positions past L
// in the last slot are skipped.
//
// Entry points (one invocation = one run of RUN consecutive slots of one row, unless it says
// otherwise):
//   stats: one workgroup per channel; its invocations stride over the channel's runs, the sums of
//       x, then of (x - mean)^2, are added up across the workgroup in workgroup memory (one
//       barrier a reduction, not one per value). Writes save_mean, save_invstd and the running
//       statistics exactly as batchnorm.wgsl's save_statistics does.
//   stats_merge: the same, from the per-tile statistics a conv's forward left; one invocation per
//       channel, 8 to a workgroup, so that even conv1's 16 channels keep two cores busy.
//   forward_relu / forward_relu_pool: y (and argmax) of the run's slots.
//   sums_relu / sums_relu_pool: one workgroup per channel, as stats, for (sum g, sum g * xhat).
//   dx_relu / dx_relu_pool: dx of every position of the run's slots.
// Layout of the runs: flat invocation index = row * runs_per_row + run (one division per run);
// workgroups of 64 on a 2-D grid (x up to 65,535); invocations past the last run do nothing.

struct Params {
    n: u32,
    c: u32,
    l: u32,
    k: u32,          // pool window and stride; 1 = no pool
    l_out: u32,      // L when k = 1, floor(L / k) otherwise
    accumulate: u32, // backward: add into dgamma/dbeta instead of overwriting
    eps: f32,        // stats, stats_merge
    momentum: f32,   // stats, stats_merge
    tiles: u32,      // stats_merge: tiles per channel in tile_stats
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> save_mean: array<f32>;
@group(0) @binding(5) var<storage, read> save_invstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(8) var<storage, read> saved_argmax: array<u32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(13) var<storage, read_write> channel_sums: array<f32>;
@group(0) @binding(14) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(15) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(16) var<storage, read_write> stats_mean: array<f32>;
@group(0) @binding(17) var<storage, read_write> stats_invstd: array<f32>;
@group(0) @binding(18) var<storage, read> tile_stats: array<f32>;

// Positions per slot: the pool window k, or 4 when the layer does not pool.
override POOL: u32 = 8u;
// Slots per run.
const RUN: u32 = 8u;
// The largest POOL (the host runs wider windows on bn_relu_pool.wgsl).
const MAX_POOL: u32 = 16u;
// Tiles stats_merge adds up before adding the block to the channel's sum.
const TILE_BLOCK: u32 = 64u;
const WG: u32 = 64u;
// Invocations per channel in stats, sums_relu and sums_relu_pool: 64, or 8 for channels of few
// values (the deep layers), where the other 56 would idle and the reduction's barriers cost more
// than the sums.
override REDUCE_WG: u32 = 64u;

var<workgroup> partial: array<vec2<f32>, WG>;

fn slots_per_row() -> u32 {
    return (p.l + POOL - 1u) / POOL;
}

fn runs_per_row() -> u32 {
    return (slots_per_row() + RUN - 1u) / RUN;
}

// The per-channel constants the batchnorm output z needs, loaded once per run.
struct Channel {
    gamma: f32,
    beta: f32,
    mean: f32,
    invstd: f32,
}

fn channel(c: u32) -> Channel {
    return Channel(gamma[c], beta[c], save_mean[c], save_invstd[c]);
}

// z, written exactly as batchnorm.wgsl's normalize_train writes it.
fn bn(ch: Channel, v: f32) -> f32 {
    return ch.gamma * (v - ch.mean) * ch.invstd + ch.beta;
}

// Adds up one value from each of the REDUCE_WG invocations taking part (a tree in workgroup
// memory); every one of them gets the total. All of them must call it, as it holds barriers; the
// last barrier keeps partial[0] until everyone has read it, before a next reduction overwrites it.
// (Identical in every shader that reduces; tests/portability.rs keeps it so.)
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lid] = v;
    workgroupBarrier();
    for (var span = REDUCE_WG / 2u; span > 0u; span = span / 2u) {
        if (lid < span) {
            partial[lid] = partial[lid] + partial[lid + span];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// ---- stats ------------------------------------------------------------------------------------

// Sum over channel c of x (centre = 0) or of (x - centre)^2 (square), this invocation's share.
// (Sums are taken slot by slot, then row by row, then over rows: an invocation adds up to millions
// of values, and one running f32 sum of them would lose digits that the statistics need.)
fn channel_share(c: u32, lid: u32, centre: f32, square: bool) -> f32 {
    var sum = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let row = (n * p.c + c) * p.l;
        var row_sum = 0.0;
        for (var slot = lid; slot < slots_per_row(); slot += REDUCE_WG) {
            var slot_sum = 0.0;
            for (var j = 0u; j < POOL; j++) {
                let l = slot * POOL + j;
                if (l < p.l) {
                    let d = x[row + l] - centre;
                    slot_sum += select(d, d * d, square);
                }
            }
            row_sum += slot_sum;
        }
        sum += row_sum;
    }
    return sum;
}

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(REDUCE_WG)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let lid = lid3.x;
    let count = f32(p.n * p.l);
    let mean = workgroup_sum(lid, vec2<f32>(channel_share(c, lid, 0.0, false), 0.0)).x / count;
    let variance = workgroup_sum(lid, vec2<f32>(channel_share(c, lid, mean, true), 0.0)).x / count;
    if (lid == 0u) {
        save_statistics(c, mean, variance, count);
    }
}

// The saved statistics and the running ones' update, as batchnorm.wgsl's save_statistics.
fn save_statistics(c: u32, mean: f32, variance: f32, count: f32) {
    stats_mean[c] = mean;
    stats_invstd[c] = 1.0 / sqrt(variance + p.eps);
    let unbiased = variance * count / (count - 1.0);
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
}

// stats_merge: the same statistics from the per-tile (count, mean, M2) a conv's forward_stats left
// (tile_stats[(tile * C + c) * 3]), merged as batchnorm.wgsl's train_stats_merge merges them, but
// one invocation per channel walking its tiles: no workgroup reduction, whose barriers cost a
// CPU driver more than the few tiles of the deep layers do.
@compute @workgroup_size(8)
fn stats_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = flat_group(wid, nwg) * 8u + lid.x;
    if (c >= p.c) { return; }
    // Sums over blocks of TILE_BLOCK tiles, then over blocks: a conv's forward leaves tens of
    // thousands of tiles per channel, and one running f32 sum of them would lose digits.
    var weighted = vec2<f32>(); // (sum n_i * mean_i, sum n_i)
    for (var first = 0u; first < p.tiles; first += TILE_BLOCK) {
        var block = vec2<f32>();
        for (var i = first; i < min(first + TILE_BLOCK, p.tiles); i++) {
            let at = (i * p.c + c) * 3u;
            block += vec2<f32>(tile_stats[at] * tile_stats[at + 1u], tile_stats[at]);
        }
        weighted += block;
    }
    let mean = weighted.x / weighted.y;
    var spread = 0.0;
    for (var first = 0u; first < p.tiles; first += TILE_BLOCK) {
        var block = 0.0;
        for (var i = first; i < min(first + TILE_BLOCK, p.tiles); i++) {
            let at = (i * p.c + c) * 3u;
            let d = tile_stats[at + 1u] - mean;
            block += tile_stats[at + 2u] + tile_stats[at] * d * d;
        }
        spread += block;
    }
    save_statistics(c, mean, spread / weighted.y, weighted.y);
}

// ---- forward ----------------------------------------------------------------------------------

// The run this invocation owns: its row (n * C + c) and first slot, or false past the last run.
struct Run {
    row: u32,
    first: u32,
}

fn run_of(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, run: ptr<function, Run>) -> bool {
    let i = flat_group(wid, nwg) * WG + lid.x;
    (*run).row = i / runs_per_row();
    (*run).first = (i % runs_per_row()) * RUN;
    return (*run).row < p.n * p.c;
}

@compute @workgroup_size(64)
fn forward_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    var run: Run;
    if (!run_of(wid, nwg, lid, &run)) { return; }
    let ch = channel(run.row % p.c);
    let row = run.row * p.l;
    for (var s = 0u; s < RUN; s++) {
        for (var j = 0u; j < POOL; j++) {
            let l = (run.first + s) * POOL + j;
            if (l < p.l) {
                y[row + l] = max(bn(ch, x[row + l]), 0.0);
            }
        }
    }
}

@compute @workgroup_size(64)
fn forward_relu_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    var run: Run;
    if (!run_of(wid, nwg, lid, &run)) { return; }
    let ch = channel(run.row % p.c);
    let row = run.row * p.l;
    for (var s = 0u; s < RUN; s++) {
        let o = run.first + s;
        if (o < p.l_out) {
            // The first maximum on ties, as bn_relu_pool.wgsl.
            var best = max(bn(ch, x[row + o * POOL]), 0.0);
            var best_l = o * POOL;
            for (var j = 1u; j < POOL; j++) {
                let v = max(bn(ch, x[row + o * POOL + j]), 0.0);
                if (v > best) {
                    best = v;
                    best_l = o * POOL + j;
                }
            }
            y[run.row * p.l_out + o] = best;
            argmax[run.row * p.l_out + o] = best_l;
        }
    }
}

// ---- backward ---------------------------------------------------------------------------------

// x and the gradient at z of the POOL positions of slot o of row `row` (positions past L: zero).
// With a pool, slot o is window o: only the position its argmax picked gets its dy, and only where
// the ReLU passed it; the tail slot (o >= Lout) gets none.
fn slot_grads_pool(ch: Channel, row: u32, o: u32, xs: ptr<function, array<f32, MAX_POOL>>,
                   gs: ptr<function, array<f32, MAX_POOL>>) {
    var up = 0.0;
    var picked = 0u;
    if (o < p.l_out) {
        up = dy[row * p.l_out + o];
        picked = saved_argmax[row * p.l_out + o];
    }
    for (var j = 0u; j < POOL; j++) {
        let l = o * POOL + j;
        if (l < p.l) {
            let v = x[row * p.l + l];
            (*xs)[j] = v;
            (*gs)[j] = select(0.0, up, o < p.l_out && picked == l && bn(ch, v) > 0.0);
        }
    }
}

// Without a pool, every position has its own dy, passed where the ReLU passed.
fn slot_grads_relu(ch: Channel, row: u32, o: u32, xs: ptr<function, array<f32, MAX_POOL>>,
                   gs: ptr<function, array<f32, MAX_POOL>>) {
    for (var j = 0u; j < POOL; j++) {
        let l = o * POOL + j;
        if (l < p.l) {
            let v = x[row * p.l + l];
            (*xs)[j] = v;
            (*gs)[j] = select(0.0, dy[row * p.l + l], bn(ch, v) > 0.0);
        }
    }
}

// (sum g, sum g * xhat) over one slot, from its x and g.
fn slot_sums(ch: Channel, xs: ptr<function, array<f32, MAX_POOL>>, gs: ptr<function, array<f32, MAX_POOL>>)
    -> vec2<f32> {
    var sums = vec2<f32>();
    for (var j = 0u; j < POOL; j++) {
        let xhat = ((*xs)[j] - ch.mean) * ch.invstd;
        sums += vec2<f32>((*gs)[j], (*gs)[j] * xhat);
    }
    return sums;
}

// Invocation 0 stores the channel's totals, as bn_relu_pool.wgsl's store_sums.
fn store_sums(c: u32, lid: u32, total: vec2<f32>) {
    if (lid != 0u) { return; }
    channel_sums[c] = total.x;
    channel_sums[p.c + c] = total.y;
    if (p.accumulate != 0u) {
        dbeta[c] = dbeta[c] + total.x;
        dgamma[c] = dgamma[c] + total.y;
    } else {
        dbeta[c] = total.x;
        dgamma[c] = total.y;
    }
}

// One workgroup per channel; its invocations stride over the channel's slots, row by row.
@compute @workgroup_size(REDUCE_WG)
fn sums_relu_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let ch = channel(c);
    var sums = vec2<f32>();
    for (var n = 0u; n < p.n; n++) {
        var row_sums = vec2<f32>();
        for (var o = lid3.x; o < slots_per_row(); o += REDUCE_WG) {
            var xs: array<f32, MAX_POOL>;
            var gs: array<f32, MAX_POOL>;
            slot_grads_pool(ch, n * p.c + c, o, &xs, &gs);
            row_sums += slot_sums(ch, &xs, &gs);
        }
        sums += row_sums;
    }
    store_sums(c, lid3.x, workgroup_sum(lid3.x, sums));
}

@compute @workgroup_size(REDUCE_WG)
fn sums_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let ch = channel(c);
    var sums = vec2<f32>();
    for (var n = 0u; n < p.n; n++) {
        var row_sums = vec2<f32>();
        for (var o = lid3.x; o < slots_per_row(); o += REDUCE_WG) {
            var xs: array<f32, MAX_POOL>;
            var gs: array<f32, MAX_POOL>;
            slot_grads_relu(ch, n * p.c + c, o, &xs, &gs);
            row_sums += slot_sums(ch, &xs, &gs);
        }
        sums += row_sums;
    }
    store_sums(c, lid3.x, workgroup_sum(lid3.x, sums));
}

// The channel's sums over M = N * L, as bn_relu_pool.wgsl's dx_from divides them.
fn means(c: u32) -> vec2<f32> {
    let count = f32(p.n * p.l);
    return vec2<f32>(channel_sums[c] / count, channel_sums[p.c + c] / count);
}

// dx of the slot's positions from their x and g and the channel's `means` of g and g * xhat.
fn write_dx(ch: Channel, means: vec2<f32>, row: u32, o: u32, xs: ptr<function, array<f32, MAX_POOL>>,
            gs: ptr<function, array<f32, MAX_POOL>>) {
    for (var j = 0u; j < POOL; j++) {
        let l = o * POOL + j;
        if (l < p.l) {
            let xhat = ((*xs)[j] - ch.mean) * ch.invstd;
            dx[row * p.l + l] = ch.gamma * ch.invstd * ((*gs)[j] - means.x - xhat * means.y);
        }
    }
}

@compute @workgroup_size(64)
fn dx_relu_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    var run: Run;
    if (!run_of(wid, nwg, lid, &run)) { return; }
    let c = run.row % p.c;
    let ch = channel(c);
    let m = means(c);
    for (var s = 0u; s < RUN; s++) {
        var xs: array<f32, MAX_POOL>;
        var gs: array<f32, MAX_POOL>;
        slot_grads_pool(ch, run.row, run.first + s, &xs, &gs);
        write_dx(ch, m, run.row, run.first + s, &xs, &gs);
    }
}

@compute @workgroup_size(64)
fn dx_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    var run: Run;
    if (!run_of(wid, nwg, lid, &run)) { return; }
    let c = run.row % p.c;
    let ch = channel(c);
    let m = means(c);
    for (var s = 0u; s < RUN; s++) {
        var xs: array<f32, MAX_POOL>;
        var gs: array<f32, MAX_POOL>;
        slot_grads_relu(ch, run.row, run.first + s, &xs, &gs);
        write_dx(ch, m, run.row, run.first + s, &xs, &gs);
    }
}
