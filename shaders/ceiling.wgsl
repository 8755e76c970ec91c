// Device ceilings for the profiler: how fast this adapter multiplies-and-adds and moves bytes,
// measured, because wgpu reports neither. `sn-wgpu profile` divides each kernel's minimum work
// (its FLOPs and bytes) by these rates to get the time no kernel could beat.
//
// Indexing (both entry points): one invocation per item, flat index
//   i = gid.y * (nwg.x * 256) + gid.x
// (the 2-D grid keeps every dimension within 65,535 workgroups); invocations past p.n return.
//
// fma_rate: invocation i runs p.iterations rounds of two independent vec4 multiply-adds, that is
// 8 scalar FMAs = 16 FLOPs per round. Two chains of vec4 give the GPU eight independent
// dependency chains per invocation, so it does not stall on the latency of the previous FMA. The
// multiplier 0.9999 keeps the values finite for any number of rounds; the final dot product is
// written so the compiler must keep the work.
//
// copy_rate: dst[i] = src[i] over vec4<f32>: 16 bytes read and 16 written per invocation, the
// pattern of an elementwise kernel at its best (coalesced, no reuse).
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

@compute @workgroup_size(256)
fn fma_rate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * (nwg.x * WG) + gid.x;
    if i >= p.n {
        return;
    }
    let seed = f32(i & 1023u) * 1e-3;
    var a = vec4<f32>(seed, seed + 0.25, seed + 0.5, seed + 0.75);
    var b = a + vec4<f32>(1.0);
    let m = vec4<f32>(0.9999);
    let c = vec4<f32>(1e-4);
    for (var r = 0u; r < p.iterations; r++) {
        a = fma(a, m, c);
        b = fma(b, m, c);
    }
    sink[i] = dot(a + b, vec4<f32>(1.0));
}

@compute @workgroup_size(256)
fn copy_rate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * (nwg.x * WG) + gid.x;
    if i >= p.n {
        return;
    }
    dst[i] = src[i];
}
