// 1-D max pooling over the last axis of [N, C, L] (PyTorch F.max_pool1d: no padding, floor mode,
// dilation 1), forward and backward.
//
// The N * C rows are independent, so both kernels see the tensor as `rows` rows of length L (input)
// or Lout = floor((L - k) / stride) + 1 (output). Output window o covers inputs
// [o * stride, o * stride + k).
//
// Indexing: one invocation per element of what the kernel WRITES. Workgroups of 256 are laid out on
// a 2-D grid (x up to 65,535) so large tensors fit in one dispatch; the flat element index is
// (wid.y * nwg.x + wid.x) * 256 + lid.x, and invocations past the element count do nothing.
//
// forward:  one invocation per output element (row, o):
//           y[row, o] = max_{j < k} x[row, o * stride + j]
//           argmax[row, o] = the index into L of that maximum; on ties the FIRST one (strict >
//           while scanning left to right), as PyTorch does, so the two agree on which input
//           receives the gradient.
// backward: one invocation per input element (row, i), a GATHER over the windows that contain i:
//           dx[row, i] = sum over windows o with o * stride <= i < o * stride + k and
//                        argmax[row, o] == i of dy[row, o]
//           At most ceil(k / stride) windows contain i. Gathering (instead of every window
//           scattering into dx) means no two invocations write the same dx element, so it is
//           race-free when windows overlap (k > stride), and every dx element is written, zero where
//           no window picked it (gaps when k < stride, the tail past the last window).

struct Params {
    rows: u32,    // N * C
    l: u32,       // input length
    l_out: u32,   // output length
    k: u32,       // window size
    stride: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(4) var<storage, read> saved_argmax: array<u32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

const WG: u32 = 256u;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return flat_group(wid, nwg) * WG + lid.x;
}

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, nwg, lid);
    if (e >= p.rows * p.l_out) { return; }
    let row = e / p.l_out;
    let start = (e % p.l_out) * p.stride;
    let row_x = row * p.l;
    var best = x[row_x + start];
    var best_i = start;
    for (var i = start + 1u; i < start + p.k; i++) {
        let v = x[row_x + i];
        if (v > best) {
            best = v;
            best_i = i;
        }
    }
    y[e] = best;
    argmax[e] = best_i;
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, nwg, lid);
    if (e >= p.rows * p.l) { return; }
    let row = e / p.l;
    let i = e % p.l;
    // Windows o containing i satisfy i - k < o * stride <= i, i.e.
    // ceil((i + 1 - k) / stride) <= o <= floor(i / stride), and o < Lout.
    var first = 0u;
    if (i + 1u > p.k) {
        first = (i + 1u - p.k + p.stride - 1u) / p.stride;
    }
    let end = min(i / p.stride + 1u, p.l_out);
    let row_out = row * p.l_out;
    var sum = 0.0;
    for (var o = first; o < end; o++) {
        if (saved_argmax[row_out + o] == i) {
            sum += dy[row_out + o];
        }
    }
    dx[e] = sum;
}
