//! The device's arithmetic and bandwidth ceilings, measured with `shaders/ceiling.wgsl`, unless
//! the user gives datasheet numbers. They turn each kernel's minimum FLOPs and bytes into the
//! least time it could take.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::clock::{time_launches, Clock};
use crate::gpu::{grid, groups_for, Cost, Gpu};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of shaders/ceiling.wgsl.
const SRC: Binding = Binding::read(1, "src");
const DST: Binding = Binding::read_write(2, "dst");
const SINK: Binding = Binding::read_write(3, "sink");

/// `shaders/ceiling.wgsl` and the storage buffers it declares.
pub const SHADER: Shader = Shader {
    name: "ceiling",
    source: include_str!("../../../shaders/ceiling.wgsl"),
    bindings: &[SRC, DST, SINK],
    needs_subgroups: false,
};

const WG: u32 = 256;
/// Invocations of the FMA kernel: enough to fill the largest GPUs (about 270,000 resident threads).
const FMA_INVOCATIONS: usize = 1 << 19;
/// A measurement shorter than this is repeated with more work, so timer resolution does not matter.
const MIN_NANOS: f64 = 2e7;
const COPY_BYTES: u64 = 64 << 20;
const REPEATS: usize = 5;
/// FLOPs per invocation per iteration of fma_rate (ROUNDS = 8 rounds of 12 FMAs), and vec4s per
/// invocation of copy_rate (PER).
const FLOPS_PER_ITERATION: usize = 16 * 12 * 2;
const COPIES_PER_INVOCATION: usize = 4;

/// Peak arithmetic and memory rates, and where they came from.
#[derive(Debug, Clone, Copy)]
pub struct Ceilings {
    pub gflops: f64,
    pub gbs: f64,
    pub measured: bool,
}

impl Ceilings {
    /// The least time, in nanoseconds, that `cost` can take at these rates.
    pub fn floor_nanos(&self, cost: &Cost) -> f64 {
        (cost.flops / self.gflops).max(cost.bytes / self.gbs)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    iterations: u32,
    _pad: [u32; 2],
}

/// Measures both ceilings on `gpu`; the best of a few runs each.
pub fn measure(gpu: &Gpu, clock: Clock) -> Result<Ceilings> {
    Ok(Ceilings { gflops: fma_gflops(gpu, clock)?, gbs: copy_gbs(gpu, clock)?, measured: true })
}

fn best_nanos(gpu: &Gpu, clock: Clock, d: &crate::gpu::Dispatch) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        best = best.min(time_launches(gpu, &[d], clock)?[0].nanos);
    }
    Ok(best)
}

fn fma_gflops(gpu: &Gpu, clock: Clock) -> Result<f64> {
    let sink = Tensor::zeros(gpu, &[FMA_INVOCATIONS], "ceiling sink")?;
    let mut iterations = 2u32;
    loop {
        let params = Params { n: FMA_INVOCATIONS as u32, iterations, _pad: [0; 2] };
        let flops = FLOPS_PER_ITERATION * FMA_INVOCATIONS * iterations as usize;
        let groups = grid(groups_for(FMA_INVOCATIONS, WG));
        let d =
            gpu.prepare(SHADER.entry("fma_rate"), &params, &[(SINK, &sink)], groups, Cost::new(flops, FMA_INVOCATIONS));
        let nanos = best_nanos(gpu, clock, &d)?;
        // (lavapipe before Mesa 23 silently stops a shader after 65,535 loop iterations in all.)
        if nanos >= MIN_NANOS || iterations >= 1 << 14 {
            return Ok(flops as f64 / nanos);
        }
        iterations *= 4;
    }
}

fn copy_gbs(gpu: &Gpu, clock: Clock) -> Result<f64> {
    let bytes = COPY_BYTES.min(gpu.limits.max_storage_buffer_binding_size);
    let floats = (bytes / 16 * 4) as usize;
    let (src, dst) = (Tensor::zeros(gpu, &[floats], "ceiling src")?, Tensor::zeros(gpu, &[floats], "ceiling dst")?);
    let vec4s = floats / 4 / COPIES_PER_INVOCATION * COPIES_PER_INVOCATION;
    let params = Params { n: vec4s as u32, iterations: 0, _pad: [0; 2] };
    let groups = grid(groups_for(vec4s / COPIES_PER_INVOCATION, WG));
    let buffers = [(SRC, &src), (DST, &dst)];
    let d = gpu.prepare(SHADER.entry("copy_rate"), &params, &buffers, groups, Cost::new(0, 8 * vec4s));
    Ok(2.0 * 16.0 * vec4s as f64 / best_nanos(gpu, clock, &d)?)
}
