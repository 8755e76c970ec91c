// Adam optimizer step (torch.optim.Adam semantics: no weight decay, no amsgrad) over flat f32
// buffers of `n` elements: parameters, their gradient, and the optimizer's two running moments.
//
// Indexing: `step` has one invocation per element. Workgroups of 256 are laid out on a 2-D grid (x
// up to 65,535) so buffers of more than 16.7 M elements still fit in one dispatch; the flat index
// is (wid.y * nwg.x + wid.x) * 256 + lid.x, and invocations past `n` do nothing.
// `step_vec4` is the same update four elements at a time, for CPU adapters (lavapipe), where every
// load and store is a loop over the SIMD lanes whatever its width: one invocation per vec4 of the
// first 4 * floor(n / 4) elements; `step_tail` then updates the last n mod 4, one invocation each.
//
// step t (1-based), g = grad:
//   m = beta1 * m + (1 - beta1) * g            (exp_avg)
//   v = beta2 * v + (1 - beta2) * g * g        (exp_avg_sq)
//   param -= step_size * m / (sqrt(v) / sqrt_bc2 + eps)
// with step_size = lr / (1 - beta1^t) and sqrt_bc2 = sqrt(1 - beta2^t), the bias corrections that
// undo the moments' start at zero. They depend only on t, so the CPU computes them once in f64,
// and 1 - beta too: rounding beta to f32 first would put 1 - 0.999 off by 1.3e-5 relative.
// eps is added after the division by sqrt_bc2, exactly where PyTorch adds it.

struct Params {
    n: u32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step_size: f32,
    sqrt_bc2: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> v4: array<vec4<f32>>;

const WG: u32 = 256u;

// The flat index of this workgroup in a 2-D grid of them (x up to 65,535; see gpu::grid).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

@compute @workgroup_size(256)
fn step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    update(flat_group(wid, nwg) * WG + lid.x);
}

@compute @workgroup_size(256)
fn step_tail(@builtin(local_invocation_id) lid: vec3<u32>) {
    update(params.n / 4u * 4u + lid.x);
}

fn update(i: u32) {
    if (i >= params.n) { return; }
    let g = grad[i];
    let m_new = params.beta1 * m[i] + params.one_minus_beta1 * g;
    let v_new = params.beta2 * v[i] + params.one_minus_beta2 * g * g;
    m[i] = m_new;
    v[i] = v_new;
    param[i] = param[i] - params.step_size * m_new / (sqrt(v_new) / params.sqrt_bc2 + params.eps);
}

@compute @workgroup_size(256)
fn step_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_group(wid, nwg) * WG + lid.x;
    if (i >= params.n / 4u) { return; }
    let g = grad4[i];
    let m_new = params.beta1 * m4[i] + params.one_minus_beta1 * g;
    let v_new = params.beta2 * v4[i] + params.one_minus_beta2 * g * g;
    m4[i] = m_new;
    v4[i] = v_new;
    param4[i] = param4[i] - params.step_size * m_new / (sqrt(v_new) / params.sqrt_bc2 + params.eps);
}
