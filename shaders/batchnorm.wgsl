// Batch normalization over [N, C, L] (PyTorch BatchNorm1d): every channel c is normalized over
// its M = N * L values x[n, c, l], then scaled by gamma[c] and shifted by beta[c].
//
// Two kinds of kernel:
//   * Per-channel reductions (train_stats, backward_sums): ONE WORKGROUP PER CHANNEL. The 256
//     invocations stride over the channel's M values (invocation t takes m = t, t + 256, ...),
//     each keeps a partial sum, and a tree reduction in workgroup memory adds the 256 partials.
//     Channel c = wid.y * nwg.x + wid.x (the 2-D grid trick; groups past C do nothing).
//   * Elementwise passes (normalize_train, normalize_eval, backward_dx): one invocation per
//     element i = (wid.y * nwg.x + wid.x) * 256 + lid.x of x, channel c = (i / L) % C.
//
// train_stats (training mode) uses two passes over the channel, mean first and then the mean of
// squared deviations, because E[x^2] - E[x]^2 loses every digit when |mean| >> std:
//   mean   = sum x / M
//   var    = sum (x - mean)^2 / M                     (biased: what normalization uses)
//   invstd = 1 / sqrt(var + eps)                      (saved with mean for the backward pass)
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)
// train_stats_merge computes the same statistics without reading x, from per-tile statistics that
// conv1d_tiled.wgsl's forward_stats left while producing x: tile i holds (count n_i, mean_i, M2_i)
// of channel c at tile_stats[(i * C + c) * 3]. With M = sum n_i:
//   mean = sum n_i * mean_i / M
//   var  = sum (M2_i + n_i * (mean_i - mean)^2) / M   (every term >= 0: no cancellation)
// normalize_train: y = gamma * (x - mean) * invstd + beta, with the saved mean and invstd.
// normalize_eval:  y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
//
// Backward (training mode; the batch statistics depend on x, so every x gets a share of the
// gradient through mean and var). With xhat = (x - mean) * invstd and sums over the channel:
//   backward_sums: dbeta = sum dy,  dgamma = sum dy * xhat
//       The sums of THIS batch go to channel_sums (sum dy at [c], sum dy * xhat at [C + c]);
//       dgamma/dbeta get them written (accumulate = 0) or added (accumulate = 1), so that
//       gradient accumulation over micro-batches does not leak into dx.
//   backward_dx:   dx = gamma * invstd / M * (M * dy - sum dy - xhat * sum dy * xhat)
//       computed as gamma * invstd * (dy - sum_dy / M - xhat * sum_dy_xhat / M) to keep the
//       terms at the scale of dy.

struct Params {
    n: u32,
    c: u32,
    l: u32,
    accumulate: u32,
    eps: f32,
    momentum: f32,
    tiles: u32, // train_stats_merge: tiles per channel in tile_stats
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(13) var<storage, read_write> channel_sums: array<f32>;
@group(0) @binding(14) var<storage, read> tile_stats: array<f32>;

const WG: u32 = 256u;
// Invocations that take part in workgroup_sum: the whole workgroup.
const REDUCE_WG: u32 = WG;

var<workgroup> partial: array<vec2<f32>, WG>;

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Where the m-th value (m = n * L + l) of channel c lives in the [N, C, L] buffer.
fn channel_index(c: u32, m: u32) -> u32 {
    return (m / p.l) * p.c * p.l + c * p.l + m % p.l;
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

@compute @workgroup_size(256)
fn train_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let lid = lid3.x;
    let m_total = p.n * p.l;
    let count = f32(m_total);

    var sum = 0.0;
    for (var m = lid; m < m_total; m = m + WG) {
        sum = sum + x[channel_index(c, m)];
    }
    let mean = workgroup_sum(lid, vec2<f32>(sum, 0.0)).x / count;

    var squares = 0.0;
    for (var m = lid; m < m_total; m = m + WG) {
        let d = x[channel_index(c, m)] - mean;
        squares = squares + d * d;
    }
    let variance = workgroup_sum(lid, vec2<f32>(squares, 0.0)).x / count;
    if (lid == 0u) {
        save_statistics(c, mean, variance, count);
    }
}

// The saved statistics and the running ones' update, from the batch mean and biased variance.
fn save_statistics(c: u32, mean: f32, variance: f32, count: f32) {
    save_mean[c] = mean;
    save_invstd[c] = 1.0 / sqrt(variance + p.eps);
    let unbiased = variance * count / (count - 1.0);
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
}

@compute @workgroup_size(256)
fn train_stats_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let lid = lid3.x;

    var weighted = vec2<f32>(); // (sum n_i * mean_i, sum n_i)
    for (var i = lid; i < p.tiles; i = i + WG) {
        let at = (i * p.c + c) * 3u;
        weighted = weighted + vec2<f32>(tile_stats[at] * tile_stats[at + 1u], tile_stats[at]);
    }
    let totals = workgroup_sum(lid, weighted);
    let mean = totals.x / totals.y;

    var spread = 0.0;
    for (var i = lid; i < p.tiles; i = i + WG) {
        let at = (i * p.c + c) * 3u;
        let d = tile_stats[at + 1u] - mean;
        spread = spread + tile_stats[at + 2u] + tile_stats[at] * d * d;
    }
    let variance = workgroup_sum(lid, vec2<f32>(spread, 0.0)).x / totals.y;
    if (lid == 0u) {
        save_statistics(c, mean, variance, totals.y);
    }
}

@compute @workgroup_size(256)
fn normalize_train(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.c * p.l) { return; }
    let c = (i / p.l) % p.c;
    y[i] = gamma[c] * (x[i] - save_mean[c]) * save_invstd[c] + beta[c];
}

@compute @workgroup_size(256)
fn normalize_eval(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.c * p.l) { return; }
    let c = (i / p.l) % p.c;
    y[i] = gamma[c] * (x[i] - running_mean[c]) / sqrt(running_var[c] + p.eps) + beta[c];
}

@compute @workgroup_size(256)
fn backward_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let lid = lid3.x;
    let mean = save_mean[c];
    let invstd = save_invstd[c];

    var sums = vec2<f32>(0.0, 0.0);
    for (var m = lid; m < p.n * p.l; m = m + WG) {
        let i = channel_index(c, m);
        let xhat = (x[i] - mean) * invstd;
        sums = sums + vec2<f32>(dy[i], dy[i] * xhat);
    }
    let total = workgroup_sum(lid, sums);

    if (lid == 0u) {
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
}

@compute @workgroup_size(256)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.c * p.l) { return; }
    let c = (i / p.l) % p.c;
    let count = f32(p.n * p.l);
    let invstd = save_invstd[c];
    let xhat = (x[i] - save_mean[c]) * invstd;
    let mean_dy = channel_sums[c] / count;
    let mean_dy_xhat = channel_sums[p.c + c] / count;
    dx[i] = gamma[c] * invstd * (dy[i] - mean_dy - xhat * mean_dy_xhat);
}
