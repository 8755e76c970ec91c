//! Recording one kernel launch into a command encoder the caller owns.
//!
//! Convention shared by every shader: `@binding(0)` is a uniform struct of parameters, and the
//! storage buffers follow at the binding numbers the shader declares. Callers pass exactly the
//! bindings the entry point uses, as `(binding, buffer)` pairs, so a reader can match each Rust
//! call with the shader's declarations. Nothing here submits or reads back: ops are encoded, not run, so a whole training
//! step can be one submission.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

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

impl Gpu {
    /// Records one dispatch of `shader::entry` in its own compute pass (so it can be timed on its
    /// own, and so wgpu orders it after every earlier write to the same buffers).
    pub fn dispatch<P: Pod>(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shader: &'static str,
        entry: &'static str,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) {
        let pipeline = self.pipelines.get(&self.device, shader, entry);
        let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(entry),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        entries.extend(buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: b.as_entire_binding(),
        }));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let label = format!("{shader}::{entry}");
        let timed = self.timer.pass_writes(&label);
        let timestamp_writes = timed.as_ref().map(|(queries, index)| wgpu::ComputePassTimestampWrites {
            query_set: queries,
            beginning_of_pass_write_index: Some(*index),
            end_of_pass_write_index: Some(index + 1),
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&label),
            timestamp_writes,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
    }
}
