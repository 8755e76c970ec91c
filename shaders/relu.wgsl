// ReLU, forward and backward, elementwise over a flat f32 buffer of `n` values.
//
// Indexing: one invocation per element. Workgroups of 256 are laid out on a 2-D grid (x up to
// 65,535) so tensors of more than 16.7 M elements still fit in one dispatch; the flat element index
// is (wid.y * nwg.x + wid.x) * 256 + lid.x, and invocations past `n` do nothing.
//
// forward:  y = max(x, 0)
// backward: dx = dy * [x > 0]   (the subgradient at exactly 0 is taken as 0, as PyTorch does)

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

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
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    y[i] = max(x[i], 0.0);
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    dx[i] = select(0.0, dy[i], x[i] > 0.0);
}
