// Fused training-mode batchnorm -> ReLU (-> max-pool), over x of shape [N, C, L]:
//   z = gamma[c] * (x - mean[c]) * invstd[c] + beta[c]      (batchnorm with the batch statistics)
//   r = max(z, 0)                                           (ReLU)
//   y = maxpool_k(r), windows of k with stride k            (only when k > 1)
// k = 1 means no pool: y = r, shape [N, C, L]. For k > 1, y and argmax are [N, C, Lout] with
// Lout = floor(L / k); window o of a row covers [o * k, o * k + k), and the tail l >= Lout * k
// belongs to no window.
//
// Why fuse: the plain ops write z and r (full length) to memory and read them back, forward and
// backward, in 3-4 launches each way. Here z and r are recomputed from x and the per-channel
// statistics wherever they are needed, and never stored: the only per-element tensors are x,
// y (+ argmax) and, backward, dy and dx.
//
// Forward. The statistics (mean, invstd, running statistics) come first, from batchnorm.wgsl's
// train_stats (one workgroup per channel); this file does not repeat them. Then:
//   forward_relu (k = 1): one invocation per element i, y[i] = max(z(i), 0).
//   forward_relu_pool (k > 1): one invocation per OUTPUT element e = (row, o), row = n * C + c:
//       reads the k inputs of its window, y[e] = max over the window of r, argmax[e] = its index
//       into L, the FIRST maximum on ties (strict > scanning left to right), as maxpool1d.wgsl
//       and PyTorch do. Windows that are all <= 0 give y = 0 and argmax = the window's start.
//
// Backward, from dy = dL/dy. The gradient reaching the batchnorm output z at element (n, c, l) is
//   g[l] = dy[o]   if l lies in window o, the window picked l (argmax[o] == l, always true when
//                  k = 1, where o = l) and z(l) > 0 (the ReLU passed it: strictly > 0, as
//                  relu.wgsl's backward, so fused and plain agree exactly),
//   g[l] = 0       otherwise (including the tail past the last window).
// Then the batchnorm backward on g, with xhat = (x - mean) * invstd and M = N * L values per
// channel:
//   dbeta  = sum g,   dgamma = sum g * xhat                              (sums over the channel)
//   dx     = gamma * invstd * (g - sum_g / M - xhat * sum_g_xhat / M)
// Two or three launches, g recomputed in the first and the last from x, dy (+ argmax) and the
// statistics:
//   sums_relu / sums_relu_pool: each channel's M values are cut into `splits` runs of `span`
//       consecutive m (m = n * L + l); workgroup (wid.x, wid.y) = (split s, channel c) adds up run
//       s: its 256 invocations stride over it (m = start + lid, + 256, ...), keep partial sums of
//       (g, g * xhat), and a tree reduction in workgroup memory adds them. The pair goes to
//       channel_sums[2C + (c * splits + s) * 2 + {0, 1}]. Why split: one workgroup per channel
//       left an H200 with 16 busy workgroups for conv1's 16 channels of 7 million values each
//       (29 ms, 44% of a batch-32 step).
//   sums_merge (only when splits > 1; with one run the sums kernel stores as this does): one
//       workgroup per channel adds its `splits` pairs the same way. This batch's sums
//       go to channel_sums ([c] and [C + c]); dgamma/dbeta get them written (accumulate = 0) or
//       added (accumulate = 1, micro-batches), so that accumulation does not leak into dx.
//   dx_relu / dx_relu_pool: one invocation per input element i, channel c = (i / L) % C.
//
// Each entry point has a _relu (k = 1) and a _relu_pool (k > 1) form because a k = 1 layer has
// no argmax buffer, and an entry point must have every buffer it mentions bound.
// Element-wise launches use 256-invocation workgroups on a 2-D grid (x up to 65,535): flat index
// (wid.y * nwg.x + wid.x) * 256 + lid.x; invocations past the count do nothing.

struct Params {
    n: u32,
    c: u32,
    l: u32,
    k: u32,          // pool window and stride; 1 = no pool
    l_out: u32,      // L when k = 1, floor(L / k) otherwise
    accumulate: u32, // backward: add into dgamma/dbeta instead of overwriting
    splits: u32,     // backward sums: runs per channel
    span: u32,       // backward sums: values m per run (the last may be shorter)
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

// The batchnorm output z at element i of channel c, written exactly as batchnorm.wgsl's
// normalize_train writes it, so the fused and plain paths round alike.
fn bn(c: u32, i: u32) -> f32 {
    return gamma[c] * (x[i] - save_mean[c]) * save_invstd[c] + beta[c];
}

// The gradient at z of element i when the layer does not pool (k = 1): dy through the ReLU.
fn grad_relu(c: u32, i: u32) -> f32 {
    return select(0.0, dy[i], bn(c, i) > 0.0);
}

// The gradient at z of element i when the layer pools: dy of its window if the window picked it
// and the ReLU passed it; zero in the tail.
fn grad_relu_pool(c: u32, i: u32) -> f32 {
    let l = i % p.l;
    let o = l / p.k;
    if (o >= p.l_out) { return 0.0; }
    let e = (i / p.l) * p.l_out + o;
    if (saved_argmax[e] != l) { return 0.0; }
    return select(0.0, dy[e], bn(c, i) > 0.0);
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

// (g, g * xhat) for element i of channel c, given its gradient g at z.
fn sum_terms(c: u32, i: u32, g: f32) -> vec2<f32> {
    let xhat = (x[i] - save_mean[c]) * save_invstd[c];
    return vec2<f32>(g, g * xhat);
}

// Invocation 0 stores the channel's totals (sum g, sum g * xhat).
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

// dx of element i of channel c, given its gradient g at z and the channel's sums.
fn dx_from(c: u32, i: u32, g: f32) -> f32 {
    let count = f32(p.n * p.l);
    let invstd = save_invstd[c];
    let xhat = (x[i] - save_mean[c]) * invstd;
    return gamma[c] * invstd * (g - channel_sums[c] / count - xhat * channel_sums[p.c + c] / count);
}

@compute @workgroup_size(256)
fn forward_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.c * p.l) { return; }
    y[i] = max(bn((i / p.l) % p.c, i), 0.0);
}

@compute @workgroup_size(256)
fn forward_relu_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_group(wid, nwg) * WG + lid.x;
    if (e >= p.n * p.c * p.l_out) { return; }
    let row = e / p.l_out;
    let c = row % p.c;
    let start = (e % p.l_out) * p.k;
    let row_x = row * p.l;
    var best = max(bn(c, row_x + start), 0.0);
    var best_l = start;
    for (var l = start + 1u; l < start + p.k; l++) {
        let v = max(bn(c, row_x + l), 0.0);
        if (v > best) {
            best = v;
            best_l = l;
        }
    }
    y[e] = best;
    argmax[e] = best_l;
}

// Where split s's pair of channel c goes in channel_sums, after the channel totals.
fn split_slot(c: u32, s: u32) -> u32 {
    return 2u * p.c + (c * p.splits + s) * 2u;
}

// Invocation 0 stores run s's pair, or, when the channel is one run, the channel's totals at once
// (no sums_merge launch then).
fn store_run(c: u32, s: u32, lid: u32, total: vec2<f32>) {
    if (p.splits == 1u) {
        store_sums(c, lid, total);
    } else if (lid == 0u) {
        channel_sums[split_slot(c, s)] = total.x;
        channel_sums[split_slot(c, s) + 1u] = total.y;
    }
}

@compute @workgroup_size(256)
fn sums_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let s = wid.x;
    let c = wid.y;
    let lid = lid3.x;
    let end = min((s + 1u) * p.span, p.n * p.l);
    var sums = vec2<f32>(0.0, 0.0);
    for (var m = s * p.span + lid; m < end; m = m + WG) {
        let i = channel_index(c, m);
        sums = sums + sum_terms(c, i, grad_relu(c, i));
    }
    store_run(c, s, lid, workgroup_sum(lid, sums));
}

@compute @workgroup_size(256)
fn sums_relu_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let s = wid.x;
    let c = wid.y;
    let lid = lid3.x;
    let end = min((s + 1u) * p.span, p.n * p.l);
    var sums = vec2<f32>(0.0, 0.0);
    for (var m = s * p.span + lid; m < end; m = m + WG) {
        let i = channel_index(c, m);
        sums = sums + sum_terms(c, i, grad_relu_pool(c, i));
    }
    store_run(c, s, lid, workgroup_sum(lid, sums));
}

@compute @workgroup_size(256)
fn sums_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = flat_group(wid, nwg);
    if (c >= p.c) { return; }
    let lid = lid3.x;
    var sums = vec2<f32>(0.0, 0.0);
    for (var s = lid; s < p.splits; s = s + WG) {
        sums = sums + vec2<f32>(channel_sums[split_slot(c, s)], channel_sums[split_slot(c, s) + 1u]);
    }
    store_sums(c, lid, workgroup_sum(lid, sums));
}

@compute @workgroup_size(256)
fn dx_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.c * p.l) { return; }
    let c = (i / p.l) % p.c;
    dx[i] = dx_from(c, i, grad_relu(c, i));
}

@compute @workgroup_size(256)
fn dx_relu_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.c * p.l) { return; }
    let c = (i / p.l) % p.c;
    dx[i] = dx_from(c, i, grad_relu_pool(c, i));
}
