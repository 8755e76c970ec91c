// Softmax and log-softmax over the CHANNEL axis (axis 1) of [N, C, T], forward and backward.
// SoundNet's heads produce C = 1000 (objects) or 401 (scenes) logits for each of T output steps.
//
// Indexing: one WORKGROUP of 256 invocations per column (n, t); columns are numbered
// col = n * T + t and the workgroups are laid out on a 2-D grid (x up to 65,535), so
// col = wid.y * nwg.x + wid.x and workgroups past N * T do nothing. The C elements of a column are
// T apart in memory: element c sits at n * C * T + c * T + t. Invocation lid handles channels
// lid, lid + 256, lid + 512, ... and the workgroup combines the partial results with a tree
// reduction in workgroup memory, so a column of any C costs ceil(C / 256) steps per invocation.
//
// softmax:      out = exp(z - m) / sum_c exp(z - m),   m = max_c z
// log_softmax:  out = z - m - log(sum_c exp(z - m))
//               Subtracting the column maximum m changes nothing mathematically but keeps every
//               exp() argument <= 0, so no logit is too large (no overflow to inf) and the sum is
//               at least 1 (no log(0)).
// softmax_backward, given the forward output s = softmax(z) and dy:
//               dz = s * (dy - sum_c dy * s)
//               (from ds_i/dz_j = s_i * ([i == j] - s_j))
// log_softmax_backward, given the forward output out = log_softmax(z) and dy:
//               dz = dy - exp(out) * sum_c dy
//               (from dout_i/dz_j = [i == j] - softmax(z)_j, and softmax(z) = exp(out))

struct Params {
    n: u32,
    c: u32,
    t: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> saved_out: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;

const WG: u32 = 256u;
// The lowest finite f32: the identity of max() for invocations that hold no channel.
const LOWEST: f32 = -3.40282347e38;

var<workgroup> scratch: array<f32, WG>;

// Tree reductions over the workgroup. Every invocation must call them (they contain barriers);
// all get the result. The trailing barrier lets everyone read scratch[0] before the next
// reduction overwrites it.
fn workgroup_max(v: f32, lid: u32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            scratch[lid] = max(scratch[lid], scratch[lid + width]);
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var width = WG / 2u; width > 0u; width /= 2u) {
        if (lid < width) {
            scratch[lid] += scratch[lid + width];
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

// Index of channel 0 of this workgroup's column; channel c is at base + c * T.
fn column_base(col: u32) -> u32 {
    let n = col / p.t;
    let t = col % p.t;
    return n * p.c * p.t + t;
}

fn column(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// Column maximum and sum_c exp(z - max), shared by both forward entry points.
fn max_and_sum_exp(base: u32, lid: u32) -> vec2<f32> {
    var m = LOWEST;
    for (var c = lid; c < p.c; c += WG) {
        m = max(m, z[base + c * p.t]);
    }
    let column_max = workgroup_max(m, lid);
    var s = 0.0;
    for (var c = lid; c < p.c; c += WG) {
        s += exp(z[base + c * p.t] - column_max);
    }
    return vec2<f32>(column_max, workgroup_sum(s, lid));
}

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = column(wid, nwg);
    // The whole workgroup leaves together, so the barriers below stay in uniform control flow.
    if (col >= p.n * p.t) { return; }
    let base = column_base(col);
    let stats = max_and_sum_exp(base, lid.x);
    let inv_sum = 1.0 / stats.y;
    for (var c = lid.x; c < p.c; c += WG) {
        let i = base + c * p.t;
        out[i] = exp(z[i] - stats.x) * inv_sum;
    }
}

@compute @workgroup_size(256)
fn log_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = column(wid, nwg);
    if (col >= p.n * p.t) { return; }
    let base = column_base(col);
    let stats = max_and_sum_exp(base, lid.x);
    let shift = stats.x + log(stats.y);
    for (var c = lid.x; c < p.c; c += WG) {
        let i = base + c * p.t;
        out[i] = z[i] - shift;
    }
}

@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = column(wid, nwg);
    if (col >= p.n * p.t) { return; }
    let base = column_base(col);
    var partial = 0.0;
    for (var c = lid.x; c < p.c; c += WG) {
        let i = base + c * p.t;
        partial += dy[i] * saved_out[i];
    }
    let dy_dot_s = workgroup_sum(partial, lid.x);
    for (var c = lid.x; c < p.c; c += WG) {
        let i = base + c * p.t;
        dz[i] = saved_out[i] * (dy[i] - dy_dot_s);
    }
}

@compute @workgroup_size(256)
fn log_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = column(wid, nwg);
    if (col >= p.n * p.t) { return; }
    let base = column_base(col);
    var partial = 0.0;
    for (var c = lid.x; c < p.c; c += WG) {
        partial += dy[base + c * p.t];
    }
    let dy_sum = workgroup_sum(partial, lid.x);
    for (var c = lid.x; c < p.c; c += WG) {
        let i = base + c * p.t;
        dz[i] = dy[i] - exp(saved_out[i]) * dy_sum;
    }
}
