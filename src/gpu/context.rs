//! Adapter choice, device creation and the limits this workload asks for.
//!
//! `Gpu::new()` is the one door to the GPU: it picks an adapter (discrete before integrated before
//! software, `WGPU_BACKEND` and `SN_WGPU_ADAPTER` can narrow the choice), then asks the adapter for
//! the largest storage bindings, buffers and workgroup memory it offers, because SoundNet's
//! activations are large (conv1's output at batch 64 x 20 s is 861 MiB).

use anyhow::{bail, Context, Result};

use super::pipelines::PipelineCache;
use super::timer::KernelTimer;
use super::tuning::{cache_file, Tuning};

/// The kind of device kernels are shaped for. GPUs run thousands of invocations side by side and
/// reward workgroup tiles and one invocation per element; CPU drivers (lavapipe, WARP, software
/// WebGPU) run 8 invocations as one SIMD vector, where every load is a loop over its lanes and a
/// barrier switches coroutines, and reward long runs per invocation in registers instead. Ops
/// with both shapes pick by this. It follows the adapter's type; `SN_WGPU_KERNELS=gpu|cpu` sets it
/// (to time or test one shape on the other class of device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    Gpu,
    Cpu,
}

/// The class of kernels for an adapter: its type's, unless `SN_WGPU_KERNELS` says otherwise.
pub fn device_class(info: &wgpu::AdapterInfo) -> Result<DeviceClass> {
    Ok(match std::env::var("SN_WGPU_KERNELS").as_deref() {
        Ok("gpu") => DeviceClass::Gpu,
        Ok("cpu") => DeviceClass::Cpu,
        Ok(other) => bail!("SN_WGPU_KERNELS={other:?}: expected gpu or cpu"),
        Err(_) if info.device_type == wgpu::DeviceType::Cpu => DeviceClass::Cpu,
        Err(_) => DeviceClass::Gpu,
    })
}

/// The device, its queue and what we learned about the adapter.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub class: DeviceClass,
    /// The kernel choices measured on this adapter (see `tuning.rs`).
    pub tuning: Tuning,
    pub(crate) pipelines: PipelineCache,
    pub(crate) timer: KernelTimer,
}

/// What a run can expect when no adapter is found: the usual cause on a machine without a GPU.
pub const NO_ADAPTER_HELP: &str = "no GPU adapter found. On a machine without a GPU install a \
    CPU Vulkan driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`, which provides \
    lavapipe); otherwise install your GPU's Vulkan, Metal or DX12 driver. \
    `WGPU_BACKEND` (vulkan, metal, dx12, gl) and `SN_WGPU_ADAPTER` (part of an adapter name) \
    narrow the choice; run `sn-wgpu info` to see every adapter.";

pub fn instance() -> wgpu::Instance {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() })
}

/// Every adapter the instance sees, in the order we prefer them.
pub fn adapters_by_preference(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| preference_rank(&a.get_info()));
    adapters
}

fn preference_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    // GL is the least capable backend for compute: pick it last among equal devices.
    let backend = u8::from(info.backend == wgpu::Backend::Gl);
    (device, backend)
}

/// The adapter `Gpu::new` would pick, and why others were passed over.
pub fn choose_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let filter = std::env::var("SN_WGPU_ADAPTER").ok().map(|s| s.to_lowercase());
    let all = adapters_by_preference(instance);
    if all.is_empty() {
        bail!("{NO_ADAPTER_HELP}");
    }
    let found = all.iter().find(|a| {
        let info = a.get_info();
        let name_ok = filter.as_ref().is_none_or(|f| info.name.to_lowercase().contains(f));
        name_ok && a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
    });
    match found {
        Some(a) => Ok(a.clone()),
        None => {
            let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
            bail!(
                "no adapter matches SN_WGPU_ADAPTER={:?} with compute shaders; adapters seen: {}",
                filter.unwrap_or_default(),
                names.join(", ")
            )
        }
    }
}

/// The limits we ask for: the defaults, raised to whatever the adapter offers where size matters.
pub fn wanted_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_buffer_size: adapter.max_buffer_size,
        max_compute_workgroup_storage_size: adapter.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: adapter.max_compute_invocations_per_workgroup,
        max_compute_workgroup_size_x: adapter.max_compute_workgroup_size_x,
        max_compute_workgroup_size_y: adapter.max_compute_workgroup_size_y,
        max_storage_buffers_per_shader_stage: adapter.max_storage_buffers_per_shader_stage,
        ..wgpu::Limits::downlevel_defaults().using_resolution(adapter.clone())
    }
}

impl Gpu {
    /// Picks an adapter and opens a device on it, or says what to install.
    pub fn new() -> Result<Gpu> {
        let instance = instance();
        let adapter = choose_adapter(&instance)?;
        let info = adapter.get_info();
        let offered = adapter.features();
        let features = offered
            & (wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
                | wgpu::Features::SUBGROUP);
        let limits = wanted_limits(&adapter.limits());
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sn-wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .with_context(|| format!("could not open a device on adapter {} ({:?})", info.name, info.backend))?;
        let timer = KernelTimer::default();
        let class = device_class(&info)?;
        // A class forced by SN_WGPU_KERNELS asks for that class's kernels, not for the fastest.
        let tuning = match cache_file() {
            Some(path) if std::env::var_os("SN_WGPU_KERNELS").is_none() => Tuning::open(&path, &info),
            _ => Tuning::off(&info),
        };
        let pipelines = PipelineCache::default();
        Ok(Gpu { adapter, device, queue, info, limits, features, class, tuning, pipelines, timer })
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).context("waiting for the GPU")?;
        Ok(())
    }

    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    pub fn submit(&self, encoder: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        self.queue.submit([encoder.finish()])
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// A one-line description of the adapter, for logs and benchmark output.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name, self.info.backend, self.info.device_type, self.info.driver, self.info.driver_info
        )
    }
}
