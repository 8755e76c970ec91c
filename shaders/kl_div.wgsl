// KL divergence between a teacher's probabilities P and a student's logits Z, both [N, C, T]
// (row-major, index (n * C + c) * T + t), with the student's softmax taken over the channel axis C.
// This is SoundNet's teacher-student loss: C is the number of classes (1000 or 401), T the output
// steps. Averaged over the N * T columns:
//
//   loss = 1/(N*T) * sum_{n,t} sum_c P[c] * (log P[c] - log_softmax(Z)[c]),   with 0 log 0 = 0,
//
// which is PyTorch's F.kl_div(F.log_softmax(Z, 1), P, reduction='sum') / (N*T).
//
// Indexing: every entry point but `reduce_columns` gives one WORKGROUP of 256 to one (n, t) column.
// Its invocations take the channels lid.x, lid.x + 256, ... (so any C works), and the column's max,
// sum of exps and loss terms are combined by tree reductions in workgroup memory. Columns are spread
// over a 2-D grid of workgroups (column = wid.y * nwg.x + wid.x) so N*T may exceed 65,535; surplus
// workgroups return at once (the whole group together, so no barrier is skipped by half a group).
//
// forward_columns: column_loss[n*T + t] = sum_c P log P - P log_softmax(Z)   (unscaled)
//   log_softmax(Z)[c] = (Z[c] - max) - log(sum_c' exp(Z[c'] - max)); subtracting the column max
//   first keeps exp() finite for logits of any size.
// reduce_columns (ONE workgroup): loss[0] = scale * sum of column_loss, scale = 1/(N*T). Each
//   invocation sums a strided share of the columns, then a tree reduction adds the 256 shares.
//
// backward: dZ[c] = scale * (softmax(Z)[c] * sum_c' P[c'] - P[c]),   scale = grad_scale / (N*T).
//   From d/dZ[c] of -sum_c' P[c'] log_softmax(Z)[c'] = -P[c] + softmax(Z)[c] * sum_c' P[c'];
//   keeping sum P (rather than assuming it is 1) makes this the exact gradient of the loss above
//   for any teacher. The P log P term does not depend on Z. dZ is overwritten.

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

@compute @workgroup_size(256)
fn forward_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let zmax = column_max(lid.x, base);
    let log_sum_exp = log(column_sum_exp(lid.x, base, zmax));
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let p = teacher[i];
        // 0 log 0 = 0: a class the teacher rules out adds nothing, whatever the student says.
        if (p > 0.0) {
            let log_q = (logits[i] - zmax) - log_sum_exp;
            mine += p * (log(p) - log_q);
        }
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
        mine += teacher[base + c * params.t];
    }
    let teacher_mass = workgroup_sum(lid.x, mine);
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let q = exp(logits[i] - zmax) / sum_exp;
        dlogits[i] = params.scale * (q * teacher_mass - teacher[i]);
    }
}
