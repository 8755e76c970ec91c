// The teacher-student losses: a teacher's probabilities P against the softmax of a student's
// logits Z, both [N, C, T] (row-major, index (n * C + c) * T + t), the softmax taken over the
// channel axis C. C is the number of classes (1000 or 401), T the output steps; each (n, t) column
// is one distribution. Both losses are averaged over the N * T columns; q = softmax(Z) per column.
//
//   KL (SoundNet's loss, `--loss kl`):
//     loss = 1/(N*T) * sum_{n,t} sum_c P[c] * (log P[c] - log q[c]),   with 0 log 0 = 0,
//     which is PyTorch's F.kl_div(F.log_softmax(Z, 1), P, reduction='sum') / (N*T).
//     With one-hot P (`train --labels`: the clip's label at every step) it is cross-entropy,
//     -log q[label] averaged over the columns, PyTorch's F.cross_entropy(Z, labels).
//   L2 (the paper's comparison, Table 5, `--loss l2`):
//     loss = 1/(N*T) * sum_{n,t} sum_c (q[c] - P[c])^2,
//     which is PyTorch's ((F.softmax(Z, 1) - P) ** 2).sum() / (N*T).
//
// Indexing: every entry point but `reduce_columns` gives one WORKGROUP of 256 to one (n, t) column.
// Its invocations take the channels lid.x, lid.x + 256, ... (so any C works), and the column's max,
// sum of exps and loss terms are combined by tree reductions in workgroup memory. Columns are spread
// over a 2-D grid of workgroups (column = wid.y * nwg.x + wid.x) so N*T may exceed 65,535; surplus
// workgroups return at once (the whole group together, so no barrier is skipped by half a group).
// Both losses start from the column's max and sum of exps (column_softmax):
//   q[c] = exp(Z[c] - max) / sum_c' exp(Z[c'] - max),   log q[c] = (Z[c] - max) - log(sum_c' exp(Z[c'] - max));
//   subtracting the column max first keeps exp() finite for logits of any size.
//
// kl_forward_columns: column_loss[n*T + t] = sum_c P log P - P log q   (unscaled)
// l2_forward_columns: column_loss[n*T + t] = sum_c (q[c] - P[c])^2      (unscaled)
// reduce_columns (ONE workgroup, either loss): loss[0] = scale * sum of column_loss, scale = 1/(N*T).
//   Each invocation sums a strided share of the columns, then a tree reduction adds the 256 shares.
//
// Backward, scale = grad_scale / (N*T), dZ overwritten:
// kl_backward: dZ[c] = scale * (q[c] * sum_c' P[c'] - P[c]).
//   From d/dZ[c] of -sum_c' P[c'] log q[c'] = -P[c] + q[c] * sum_c' P[c']; keeping sum P (rather
//   than assuming it is 1) makes this the exact gradient of the loss above for any teacher. The
//   P log P term does not depend on Z.
// l2_backward: dZ[c] = scale * 2 q[c] (r[c] - sum_c' q[c'] r[c']),  r = q - P.
//   From dq[j]/dZ[c] = q[j] (delta_jc - q[c]):
//   d/dZ[c] sum_j r[j]^2 = sum_j 2 r[j] q[j] (delta_jc - q[c]) = 2 q[c] r[c] - 2 q[c] sum_j q[j] r[j].

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
// (Identical in every shader that reduces; tests/portability.rs keeps it so.)
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

// The softmax of one column: its max, and its sum of exps shifted by that max.
struct Softmax {
    zmax: f32,
    sum_exp: f32,
}

// The softmax of the column whose channel 0 is at base. Every invocation of the workgroup must
// call it (it holds barriers).
fn column_softmax(lid: u32, base: u32) -> Softmax {
    var largest = LOWEST_F32;
    for (var c = lid; c < params.c; c += WG) {
        largest = max(largest, logits[base + c * params.t]);
    }
    let zmax = workgroup_max(lid, largest);
    var mine = 0.0;
    for (var c = lid; c < params.c; c += WG) {
        mine += exp(logits[base + c * params.t] - zmax);
    }
    return Softmax(zmax, workgroup_sum(lid, mine));
}

// softmax(Z) at flat index i of the column whose softmax is s.
fn q_at(i: u32, s: Softmax) -> f32 {
    return exp(logits[i] - s.zmax) / s.sum_exp;
}

// A forward pass's last step: adds up the invocations' shares of the column's loss and stores it.
fn store_column_loss(lid: u32, column: u32, mine: f32) {
    let total = workgroup_sum(lid, mine);
    if (lid == 0u) {
        column_loss[column] = total;
    }
}

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// ---- KL ----

@compute @workgroup_size(256)
fn kl_forward_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let s = column_softmax(lid.x, base);
    let log_sum_exp = log(s.sum_exp);
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let p = teacher[i];
        // 0 log 0 = 0: a class the teacher rules out adds nothing, whatever the student says.
        if (p > 0.0) {
            let log_q = (logits[i] - s.zmax) - log_sum_exp;
            mine += p * (log(p) - log_q);
        }
    }
    store_column_loss(lid.x, column, mine);
}

@compute @workgroup_size(256)
fn kl_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let s = column_softmax(lid.x, base);
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        mine += teacher[base + c * params.t];
    }
    let teacher_mass = workgroup_sum(lid.x, mine);
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let q = q_at(i, s);
        dlogits[i] = params.scale * (q * teacher_mass - teacher[i]);
    }
}

// ---- L2 ----

@compute @workgroup_size(256)
fn l2_forward_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let s = column_softmax(lid.x, base);
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let r = q_at(i, s) - teacher[i];
        mine += r * r;
    }
    store_column_loss(lid.x, column, mine);
}

@compute @workgroup_size(256)
fn l2_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = flat_group(wid, nwg);
    if (column >= params.n * params.t) { return; }
    let base = column_base(column);
    let s = column_softmax(lid.x, base);
    var mine = 0.0;
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let q = q_at(i, s);
        mine += q * (q - teacher[i]);
    }
    let q_dot_r = workgroup_sum(lid.x, mine);
    for (var c = lid.x; c < params.c; c += WG) {
        let i = base + c * params.t;
        let q = q_at(i, s);
        dlogits[i] = params.scale * 2.0 * q * ((q - teacher[i]) - q_dot_r);
    }
}

// ---- either loss ----

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
