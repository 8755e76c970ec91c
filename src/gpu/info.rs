//! `sn-wgpu info`: what the machine offers and what sn-wgpu will use.

use std::fmt::Write;

use anyhow::Result;

use super::context::{
    adapters_by_preference, choose_adapter, device_class, instance, wanted_limits, DeviceClass, NO_ADAPTER_HELP,
};

/// SoundNet-8's largest activation is conv1's output: 16 channels x 220,501 steps for 20 s of audio.
const CONV1_BYTES_PER_20S_CLIP: u64 = 16 * 220_501 * 4;

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A report of every adapter seen, the one chosen, its limits and timestamp support. Errors, with
/// what to install, when there is no adapter at all.
pub fn report() -> Result<String> {
    let instance = instance();
    let all = adapters_by_preference(&instance);
    let mut out = String::new();
    writeln!(out, "adapters seen (most preferred first):")?;
    if all.is_empty() {
        writeln!(out, "  none")?;
    }
    for a in &all {
        let i = a.get_info();
        writeln!(
            out,
            "  - {} | backend {:?} | {:?} | driver {} {}",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )?;
    }
    if all.is_empty() {
        anyhow::bail!("{out}\n{NO_ADAPTER_HELP}");
    }
    let chosen = choose_adapter(&instance)?;
    let info = chosen.get_info();
    let limits = wanted_limits(&chosen.limits());
    let features = chosen.features();
    writeln!(out, "\nchosen: {} ({:?}, {:?})", info.name, info.backend, info.device_type)?;
    writeln!(out, "  (override with WGPU_BACKEND=vulkan|metal|dx12|gl and SN_WGPU_ADAPTER=<part of a name>)")?;
    writeln!(out, "\nlimits requested from it:")?;
    writeln!(out, "  max_storage_buffer_binding_size    {}", mib(limits.max_storage_buffer_binding_size))?;
    writeln!(out, "  max_buffer_size                    {}", mib(limits.max_buffer_size))?;
    writeln!(out, "  max_compute_workgroup_storage_size {} bytes", limits.max_compute_workgroup_storage_size)?;
    writeln!(out, "  max_compute_invocations_per_group  {}", limits.max_compute_invocations_per_workgroup)?;
    writeln!(out, "  max_compute_workgroups_per_dim     {}", limits.max_compute_workgroups_per_dimension)?;
    writeln!(out, "  max_storage_buffers_per_stage      {}", limits.max_storage_buffers_per_shader_stage)?;
    let yes_no = |f: wgpu::Features| if features.contains(f) { "yes" } else { "no" };
    writeln!(out, "\ntimestamp queries:")?;
    writeln!(out, "  per compute pass (TIMESTAMP_QUERY)       {}", yes_no(wgpu::Features::TIMESTAMP_QUERY))?;
    writeln!(
        out,
        "  inside encoders                          {}",
        yes_no(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    )?;
    writeln!(
        out,
        "  inside passes                            {}",
        yes_no(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    )?;
    let subgroups = features.contains(wgpu::Features::SUBGROUP);
    writeln!(out, "\nkernels:")?;
    let class = match device_class(&info)? {
        DeviceClass::Cpu => "CPU-shaped (long runs per invocation in registers, no workgroup tiles)",
        DeviceClass::Gpu => "GPU-shaped (workgroup tiles, one invocation per element)",
    };
    writeln!(out, "  shaped for                               {class}")?;
    writeln!(out, "  (override with SN_WGPU_KERNELS=gpu|cpu)")?;
    let lanes = format!("{} to {} lanes", info.subgroup_min_size, info.subgroup_max_size);
    writeln!(out, "  subgroups (the cpu conv kernels)         {}", if subgroups { lanes.as_str() } else { "no" })?;
    let bind = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    writeln!(
        out,
        "\nSoundNet-8 at 20 s: conv1's output is {} per clip, so at most {} clips fit one storage binding",
        mib(CONV1_BYTES_PER_20S_CLIP),
        bind / CONV1_BYTES_PER_20S_CLIP
    )?;
    Ok(out)
}
