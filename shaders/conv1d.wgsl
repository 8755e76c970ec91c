// 1-D convolution (PyTorch's F.conv1d, cross-correlation, no dilation, no groups), forward and
// backward, on contiguous f32 buffers:
//
//   x  [N, Cin, L]      input            w  [Cout, Cin, K]   weight         b [Cout] bias
//   y  [N, Cout, Lout]  output, Lout = floor((L + 2*pad - K) / stride) + 1
//
// Padding is implicit: input position `pos` outside [0, L) reads as zero, so no padded copy of x
// is ever made. Output position lo sees input positions lo*stride - pad + k for k = 0..K-1.
//
// Indexing. Workgroups are laid out on a 2-D grid (x up to 65,535) so that large counts still fit
// in one dispatch; the flat workgroup index is wid.y * nwg.x + wid.x.
//   forward         one invocation per output element y[n, co, lo]    (flat invocation index)
//   backward_input  one invocation per input-gradient element dx[n, ci, l]
//   backward_weight `lanes` consecutive invocations per weight element dw[co, ci, k], so one
//                   workgroup holds 256 / lanes weight elements
//   backward_bias   one workgroup (256 invocations) per bias element db[co]
//   forward_rows, backward_input_rows: the same outputs as forward and backward_input, one
//                   WORKGROUP per output element: its 256 invocations split that element's sum
//                   (forward: the Cin*K products, j = lid, lid + 256, ...; ci = j / K, k = j % K;
//                   backward_input: the Cout * span products, span = the output positions that
//                   touch l, co = j / span) and reduce_partials adds them. For passes with few
//                   outputs and long sums (a head at batch 1: 4,000 outputs of 8,192 products),
//                   where one invocation per output leaves most of a GPU idle.
// The two parameter gradients are sums over all N * Lout output positions: millions for the first
// layer, too many for one invocation. Each of the `lanes` invocations of a weight element adds up
// every lanes-th term, then the partial sums are added pairwise in workgroup memory. `lanes` is a
// power of two the host picks from N * Lout: 256 (a whole workgroup per weight) for long sums,
// down to 1 (no workgroup reduction at all) when there are only a few terms but millions of
// weights, as in the 1024 -> 1000 head, where 256 invocations per weight would mostly idle.
//
// forward:          y[n,co,lo]  = b[co] + sum_{ci,k} w[co,ci,k] * x[n, ci, lo*stride + k - pad]
//
// backward_input:   dx[n,ci,l]  = sum_{co,lo,k : lo*stride + k - pad = l} dy[n,co,lo] * w[co,ci,k]
//                   For a fixed l, the output positions lo that touch it are those whose window
//                   [lo*stride - pad, lo*stride - pad + K) contains l, i.e.
//                   ceil((l + pad - K + 1) / stride) <= lo <= floor((l + pad) / stride), within
//                   [0, Lout); each of them uses exactly one tap, k = l + pad - lo*stride.
//                   Looping over those lo visits only the taps that hit, never testing the others.
//
// backward_weight:  dw[co,ci,k] = sum_{n,lo} dy[n,co,lo] * x[n, ci, lo*stride + k - pad]
//                   (terms whose input position falls in the padding are zero and skipped)
//
// backward_bias:    db[co]      = sum_{n,lo} dy[n,co,lo]
//
// With accumulate = 1 every gradient is added to what dx / dw / db hold (the parameter gradients
// sum over micro-batches; dx sums the gradients of two ops that read the same input, such as the
// two heads on conv7); with 0 they overwrite it.

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
    lanes: u32,
    _pad0: u32,
    _pad1: u32,
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

const WG: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Adds up `partial` within each run of `lanes` consecutive invocations (a power of two), halving
// the number of live values per step. The sum of a run ends in the run's first slot, written last
// by the run's first invocation itself, so that one can read it without another barrier. Every
// invocation of the workgroup must call this, with the same `lanes`.
fn reduce_partials(lid: u32, lanes: u32) {
    let lane = lid % lanes;
    for (var half = lanes / 2u; half > 0u; half = half / 2u) {
        workgroupBarrier();
        if (lane < half) {
            partial[lid] += partial[lid + half];
        }
    }
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.cout * p.l_out) { return; }
    let lo = i % p.l_out;
    let co = (i / p.l_out) % p.cout;
    let n = i / (p.l_out * p.cout);

    // Input position under tap 0 (negative inside the left padding). Only the taps
    // k_first <= k < k_end land inside the input; the others multiply zeros.
    let start = i32(lo * p.stride) - i32(p.pad);
    let k_first = u32(max(-start, 0));
    let k_end = u32(clamp(i32(p.l) - start, 0, i32(p.k)));

    var acc = b[co];
    for (var ci = 0u; ci < p.cin; ci++) {
        let x_row = (n * p.cin + ci) * p.l;
        let w_row = (co * p.cin + ci) * p.k;
        for (var k = k_first; k < k_end; k++) {
            acc += x[x_row + u32(start + i32(k))] * w[w_row + k];
        }
    }
    y[i] = acc;
}

@compute @workgroup_size(256)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= p.n * p.cin * p.l) { return; }
    let l = i % p.l;
    let ci = (i / p.l) % p.cin;
    let n = i / (p.l * p.cin);

    // t = position of l in the padded input; output lo reads it through tap t - lo*stride.
    let t = l + p.pad;
    var lo_first = 0u;
    if (t >= p.k) {
        lo_first = (t - p.k) / p.stride + 1u; // = ceil((t - K + 1) / stride)
    }
    let lo_end = min(t / p.stride + 1u, p.l_out);

    var acc = 0.0;
    for (var co = 0u; co < p.cout; co++) {
        let dy_row = (n * p.cout + co) * p.l_out;
        let w_row = (co * p.cin + ci) * p.k;
        for (var lo = lo_first; lo < lo_end; lo++) {
            acc += dy[dy_row + lo] * w[w_row + t - lo * p.stride];
        }
    }
    dx[i] = select(acc, dx[i] + acc, p.accumulate != 0u);
}

@compute @workgroup_size(256)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let lane = lid.x % p.lanes;
    let wi = flat_group(wid, nwg) * (WG / p.lanes) + lid.x / p.lanes;
    let valid = wi < p.cout * p.cin * p.k;
    let k = wi % p.k;
    let ci = (wi / p.k) % p.cin;
    let co = wi / (p.k * p.cin);

    // No early return for invalid weights: every invocation must reach the barriers.
    var acc = 0.0;
    for (var j = lane; valid && j < p.n * p.l_out; j += p.lanes) {
        let n = j / p.l_out;
        let lo = j % p.l_out;
        let pos = i32(lo * p.stride + k) - i32(p.pad);
        if (pos >= 0 && pos < i32(p.l)) {
            acc += dy[(n * p.cout + co) * p.l_out + lo] * x[(n * p.cin + ci) * p.l + u32(pos)];
        }
    }
    partial[lid.x] = acc;
    reduce_partials(lid.x, p.lanes);
    if (valid && lane == 0u) {
        dw[wi] = select(partial[lid.x], dw[wi] + partial[lid.x], p.accumulate != 0u);
    }
}

@compute @workgroup_size(256)
fn backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let co = flat_group(wid, nwg);
    if (co >= p.cout) { return; }

    var acc = 0.0;
    for (var j = lid.x; j < p.n * p.l_out; j += WG) {
        let n = j / p.l_out;
        let lo = j % p.l_out;
        acc += dy[(n * p.cout + co) * p.l_out + lo];
    }
    partial[lid.x] = acc;
    reduce_partials(lid.x, WG);
    if (lid.x == 0u) {
        db[co] = select(partial[0], db[co] + partial[0], p.accumulate != 0u);
    }
}

@compute @workgroup_size(256)
fn forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    // One workgroup per output: the whole group returns together, so no barrier is skipped.
    let o = flat_group(wid, nwg);
    if (o >= p.n * p.cout * p.l_out) { return; }
    let lo = o % p.l_out;
    let co = (o / p.l_out) % p.cout;
    let n = o / (p.l_out * p.cout);

    var acc = 0.0;
    for (var j = lid.x; j < p.cin * p.k; j += WG) {
        let ci = j / p.k;
        let k = j % p.k;
        let pos = i32(lo * p.stride + k) - i32(p.pad);
        if (pos >= 0 && pos < i32(p.l)) {
            acc += x[(n * p.cin + ci) * p.l + u32(pos)] * w[(co * p.cin + ci) * p.k + k];
        }
    }
    partial[lid.x] = acc;
    reduce_partials(lid.x, WG);
    if (lid.x == 0u) {
        y[o] = b[co] + partial[0];
    }
}

@compute @workgroup_size(256)
fn backward_input_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg);
    if (i >= p.n * p.cin * p.l) { return; }
    let l = i % p.l;
    let ci = (i / p.l) % p.cin;
    let n = i / (p.l * p.cin);

    // The output positions that touch l, as in backward_input.
    let t = l + p.pad;
    var lo_first = 0u;
    if (t >= p.k) {
        lo_first = (t - p.k) / p.stride + 1u;
    }
    let lo_end = min(t / p.stride + 1u, p.l_out);
    let span = select(0u, lo_end - lo_first, lo_end > lo_first);

    var acc = 0.0;
    for (var j = lid.x; j < p.cout * span; j += WG) {
        let co = j / span;
        let lo = lo_first + j % span;
        acc += dy[(n * p.cout + co) * p.l_out + lo] * w[(co * p.cin + ci) * p.k + t - lo * p.stride];
    }
    partial[lid.x] = acc;
    reduce_partials(lid.x, WG);
    if (lid.x == 0u) {
        dx[i] = select(partial[0], dx[i] + partial[0], p.accumulate != 0u);
    }
}
