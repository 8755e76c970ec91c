//! Kernel launches: prepared once, recorded into command encoders the caller owns.
//!
//! Convention shared by every shader: `@binding(0)` is a uniform struct of parameters, and the
//! storage buffers follow at the binding numbers the shader declares. Callers pass exactly the
//! buffers the entry point uses, as `(Binding, buffer)` pairs whose `Binding` comes from the
//! shader's table (`Shader::bindings`), so a reader can match each Rust call with the shader's
//! declarations; `tests/bindings.rs` checks every launch against the WGSL with naga.
//!
//! Nothing here submits or reads back: ops are encoded, not run. An op hands its launches to a
//! `Recorder`: a command encoder encodes them at once (tests, one-off work), a `Vec<Dispatch>`
//! keeps them, so a training step built once can be replayed every step with no new buffers or
//! bind groups.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::pipelines::Constants;
use super::shaders::{Binding, Shader};
use super::tensor::Tensor;
use super::Gpu;

/// WebGPU's guaranteed maximum number of workgroups along one dispatch dimension.
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// Workgroups needed to give `n` items to groups of `per_group` invocations.
pub fn groups_for(n: usize, per_group: u32) -> u32 {
    let groups = n.div_ceil(per_group as usize).max(1);
    u32::try_from(groups).expect("more than 2^32 workgroups in one dispatch")
}

/// Spreads `groups` workgroups over x and y so neither dimension exceeds 65,535. A shader recovers
/// the flat workgroup index as `wid.y * nwg.x + wid.x` and must skip indices past its item count,
/// because the rectangle can hold up to `x - 1` more groups than asked for.
pub fn grid(groups: u32) -> [u32; 3] {
    if groups <= MAX_GROUPS_PER_DIM {
        [groups.max(1), 1, 1]
    } else {
        let y = groups.div_ceil(MAX_GROUPS_PER_DIM);
        [groups.div_ceil(y), y, 1]
    }
}

/// The least work a launch must do, counted from its shapes: floating-point operations (a
/// multiply-add is 2) and bytes of global memory, each input read once and each output written
/// once. No kernel can beat `max(flops / peak FLOP/s, bytes / peak bandwidth)`; the profiler
/// compares measured times with that floor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

impl Cost {
    /// `flops` operations on `floats` f32 values read or written.
    pub fn new(flops: usize, floats: usize) -> Cost {
        Cost { flops: flops as f64, bytes: 4.0 * floats as f64 }
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, other: Cost) -> Cost {
        Cost { flops: self.flops + other.flops, bytes: self.bytes + other.bytes }
    }
}

/// What a launch is, for timing and profiles: the layer it belongs to (set by the tape, empty for
/// launches outside a model), its `shader::entry` and its [`Cost`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelInfo {
    pub scope: String,
    pub kernel: String,
    pub cost: Cost,
}

/// One kernel launch with its pipeline, buffers and parameters bound.
pub struct Dispatch {
    info: KernelInfo,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
    workgroups: [u32; 3],
    shader: &'static Shader,
    entry: &'static str,
    bindings: Vec<Binding>,
    params_size: usize,
}

impl Dispatch {
    /// Records the launch in its own compute pass (so it can be timed on its own, and so wgpu
    /// orders it after every earlier write to the same buffers).
    pub fn encode(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) {
        let timed = gpu.timer.pass_writes(&self.info);
        let timestamp_writes = timed.as_ref().map(|(queries, index)| wgpu::ComputePassTimestampWrites {
            query_set: queries,
            beginning_of_pass_write_index: Some(*index),
            end_of_pass_write_index: Some(index + 1),
        });
        let mut pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&self.info.kernel), timestamp_writes });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }

    /// Replaces the uniform parameters (queued: takes effect for the next submission). For values
    /// that change every step, such as Adam's bias corrections.
    pub fn set_params<P: Pod>(&self, gpu: &Gpu, params: &P) {
        gpu.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(params));
    }

    /// `shader::entry`.
    pub fn label(&self) -> &str {
        &self.info.kernel
    }

    pub fn info(&self) -> &KernelInfo {
        &self.info
    }

    /// What it was built from, for checking against the WGSL: the shader, the entry point, the
    /// storage buffers bound and the size of the uniform parameters in bytes.
    pub fn interface(&self) -> (&'static Shader, &'static str, &[Binding], usize) {
        (self.shader, self.entry, &self.bindings, self.params_size)
    }

    /// Names the layer this launch belongs to (`conv3`, `bn3`, ...).
    pub fn set_scope(&mut self, scope: &str) {
        self.info.scope = scope.to_string();
    }
}

/// Where ops put their launches.
pub trait Recorder {
    fn record(&mut self, gpu: &Gpu, dispatch: Dispatch);
}

impl Recorder for wgpu::CommandEncoder {
    fn record(&mut self, gpu: &Gpu, dispatch: Dispatch) {
        dispatch.encode(gpu, self);
    }
}

impl Recorder for Vec<Dispatch> {
    fn record(&mut self, _gpu: &Gpu, dispatch: Dispatch) {
        self.push(dispatch);
    }
}

/// What a launch runs: an entry point of a shader, specialised with its overridable constants
/// (none unless `with` sets them).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'c> {
    pub shader: &'static Shader,
    pub name: &'static str,
    pub constants: &'c Constants,
}

impl Shader {
    /// Its entry point `name`, with no constants set.
    pub fn entry(&'static self, name: &'static str) -> Entry<'static> {
        Entry { shader: self, name, constants: &[] }
    }
}

impl Entry<'_> {
    /// The same entry point with its overridable `constants` set.
    pub fn with(self, constants: &Constants) -> Entry<'_> {
        Entry { shader: self.shader, name: self.name, constants }
    }
}

impl Gpu {
    /// Binds `entry` to its parameters and buffers, for `workgroups` doing at least `cost`.
    pub fn prepare<P: Pod>(
        &self,
        entry: Entry,
        params: &P,
        buffers: &[(Binding, &Tensor)],
        workgroups: [u32; 3],
        cost: Cost,
    ) -> Dispatch {
        let Entry { shader, name: entry, constants } = entry;
        let label = format!("{}::{entry}", shader.name);
        for (binding, _) in buffers {
            assert!(shader.bindings.contains(binding), "{label}: {binding:?} is not in the shader's binding table");
        }
        let pipeline = self.pipelines.get(&self.device, shader, entry, constants);
        let params = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
        entries.extend(buffers.iter().map(|(b, t)| wgpu::BindGroupEntry { binding: b.number, resource: t.binding() }));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            info: KernelInfo { scope: String::new(), kernel: label, cost },
            pipeline,
            bind_group,
            params,
            workgroups,
            shader,
            entry,
            bindings: buffers.iter().map(|(b, _)| *b).collect(),
            params_size: std::mem::size_of::<P>(),
        }
    }

    /// Prepares a launch and hands it to `recorder`.
    pub fn dispatch<P: Pod>(
        &self,
        recorder: &mut impl Recorder,
        entry: Entry,
        params: &P,
        buffers: &[(Binding, &Tensor)],
        workgroups: [u32; 3],
        cost: Cost,
    ) {
        let dispatch = self.prepare(entry, params, buffers, workgroups, cost);
        recorder.record(self, dispatch);
    }
}
