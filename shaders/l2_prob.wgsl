// Squared error between a teacher's probabilities P and the softmax of a student's logits Z, both
// [N, C, T] (row-major, index (n * C + c) * T + t), the softmax taken over the channel axis C: the
// paper's comparison loss to KL (SoundNet, Table 5, "L2"). Averaged over the N * T columns:
//
//   loss = 1/(N*T) * sum_{n,t} sum_c (softmax(Z)[c] - P[c])^2,
//
// which is PyTorch's ((F.softmax(Z, 1) - P) ** 2).sum() / (N*T).
//
// Indexing: as shaders/kl_div.wgsl. Every entry point but `reduce_columns` gives one WORKGROUP of
// 256 to one (n, t) column; its invocations take the channels lid.x, lid.x + 256, ... (so any C
// works), and the column's max, sum of exps and sums are combined by tree reductions in workgroup
// memory. Columns are spread over a 2-D grid of workgroups (column = wid.y * nwg.x + wid.x) so N*T
// may exceed 65,535; surplus workgroups return at once (the whole group together).
//
// forward_columns: column_loss[n*T + t] = sum_c (q[c] - P[c])^2, q = softmax(Z)   (unscaled)
//   q[c] = exp(Z[c] - max) / sum_c' exp(Z[c'] - max): the column max keeps exp() finite.
// reduce_columns (ONE workgroup): loss[0] = scale * sum of column_loss, scale = 1/(N*T).
//
// backward: dZ[c] = scale * 2 q[c] (r[c] - sum_c' q[c'] r[c']),  r = q - P,  scale = grad_scale/(N*T).
//   From dq[j]/dZ[c] = q[j] (delta_jc - q[c]):
//   d/dZ[c] sum_j r[j]^2 = sum_j 2 r[j] q[j] (delta_jc - q[c]) = 2 q[c] r[c] - 2 q[c] sum_j q[j] r[j].
//   dZ is overwritten.

struct Params {
    n: u32,
    c: u32,
    t: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> teacher: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> column_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

const WG: u32 = 256u;
// Invocations that take part in workgroup_sum: the whole workgroup.
const REDUCE_WG: u32 = WG;
const LOWEST_F32: f32 = -3.40282347e38;

var<workgroup> partial: array<f32, WG>;

// Adds up one value from each of the REDUCE_WG invocations taking part (a tree in workgroup
// memory); every one of them gets the total. All of them must call it, as it holds barriers; the
// last barrier keeps partial[0] until everyone has read it, before a next reduction overwrites it.
// (Identical in every shader that reduces; kernels-tests/shader_helpers.rs keeps it so.)
fn workgroup_sum(lid: u32, v: f32) -> f32 {
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

// workgroup_sum with max in place of +.
fn workgroup_max(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var span = REDUCE_WG / 2u; span > 0u; span = span / 2u) {
        if (lid < span) {
            partial[lid] = max(partial[lid], partial[lid + span]);
        }
        workgroupBarrier();
    }
    let largest = partial[0];
    workgroupBarrier();
    return largest;
}

// Index of channel 0 of a column; channel c is at base + c * T.
fn column_base(column: u32) -> u32 {
    let n = column / params.t;
    let t = column % params.t;
    return n * params.c * params.t + t;
}

fn column_max(lid: u32, base: u32) -> f32 {
    var mine = LOWEST_F32;
    for (var c = lid; c < params.c; c += WG) {
        mine = max(mine, logits[base + c * params.t]);
    }
    return workgroup_max(lid, mine);
}

fn column_sum_exp(lid: u32, base: u32, zmax: f32) -> f32 {
    var mine = 0.0;
    for (var c = lid; c < params.c; c += WG) {
        mine += exp(logits[base + c * params.t] - zmax);
    }
    return workgroup_sum(lid, mine);
}

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// softmax(Z) at flat index i, given its column's max and sum of exps.
fn q_at(i: u32, zmax: f32, sum_exp: f32) -> f32 {
    return exp(logits[i] - zmax) / sum_exp;
}

@compute @workgroup_size(256)
fn forward_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let zmax = column_max(lid.x, base);
    let sum_exp = column_sum_exp(lid.x, base, zmax);
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let r = q_at(i, zmax, sum_exp) - teacher[i];
        mine += r * r;
    }
    let total = workgroup_sum(lid.x, mine);
    if (lid.x == 0u) {
        column_loss[column] = total;
    }
}

@compute @workgroup_size(256)
fn reduce_columns(@builtin(local_invocation_id) lid: vec3<u32>) {
    var mine = 0.0;
    for (var i = lid.x; i < params.n * params.t; i += WG) {
        mine += column_loss[i];
    }
    let total = workgroup_sum(lid.x, mine);
    if (lid.x == 0u) {
        loss[0] = total * params.scale;
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let zmax = column_max(lid.x, base);
    let sum_exp = column_sum_exp(lid.x, base, zmax);
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let q = q_at(i, zmax, sum_exp);
        mine += q * (q - teacher[i]);
    }
    let q_dot_r = workgroup_sum(lid.x, mine);
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let q = q_at(i, zmax, sum_exp);
        dlogits[i] = params.scale * 2.0 * q * ((q - teacher[i]) - q_dot_r);
    }
}
