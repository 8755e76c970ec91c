// Device ceilings for the profiler: how fast this adapter multiplies-and-adds and moves bytes,
// measured, because wgpu reports neither. `sn-wgpu profile` divides each kernel's minimum work
// (its FLOPs and bytes) by these rates to get the time no kernel could beat.
//
// Indexing (both entry points): one invocation per item, flat index
//   i = gid.y * (nwg.x * 256) + gid.x
// (the 2-D grid keeps every dimension within 65,535 workgroups); invocations past p.n return.
//
// fma_rate: invocation i runs p.iterations iterations of ROUNDS rounds of three independent vec4
// multiply-adds: 12 scalar FMAs = 24 FLOPs per round. Three chains of vec4 are twelve independent
// dependency chains per invocation, enough to cover the FMA latency of a GPU or of a CPU's two
// FMA pipes (a CPU driver runs each as one SIMD register, 8 lanes wide); the constant ROUNDS lets
// the compiler unroll the inner loop, so loop control does not count against the arithmetic. The
// multiplier 0.9999 keeps the values finite for any number of rounds; the final dot product is
// written so the compiler must keep the work.
//
// copy_rate: dst[i] = src[i] over vec4<f32>, PER vec4s per invocation at i, i + n/PER, ...:
// 16 bytes read and 16 written per copy, the pattern of an elementwise kernel at its best
// (coalesced on a GPU, no reuse), with its index arithmetic spread over several copies.
//
// There is no backward pass: nothing here is differentiated.

struct Params {
    n: u32,
    iterations: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> sink: array<f32>;

const WG: u32 = 256u;
const ROUNDS: u32 = 16u;
const CHAINS: u32 = 12u;
const PER: u32 = 4u;

@compute @workgroup_size(256)
fn fma_rate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * (nwg.x * WG) + gid.x;
    var acc: array<f32, CHAINS>;
    for (var c = 0u; c < CHAINS; c++) {
        acc[c] = f32((i + c) & 1023u) * 1e-3;
    }
    for (var it = 0u; it < p.iterations; it++) {
        for (var r = 0u; r < ROUNDS; r++) {
            for (var c = 0u; c < CHAINS; c++) {
                acc[c] = fma(acc[c], 0.9999, 1e-4);
            }
        }
    }
    var total = 0.0;
    for (var c = 0u; c < CHAINS; c++) {
        total += acc[c];
    }
    if i < p.n {
        sink[i] = total;
    }
}

@compute @workgroup_size(256)
fn copy_rate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * (nwg.x * WG) + gid.x;
    if i >= p.n / PER {
        return;
    }
    for (var j = 0u; j < PER; j++) {
        dst[i + j * (p.n / PER)] = src[i + j * (p.n / PER)];
    }
}
