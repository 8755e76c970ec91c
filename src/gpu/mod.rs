//! Everything that talks to wgpu directly: the device, shader pipelines, dispatch recording,
//! timestamps and readback. Ops above this layer only say which kernel runs on which buffers.

mod context;
mod dispatch;
pub mod info;
mod pipelines;
mod readback;
pub mod shaders;
mod timer;

pub use context::{
    adapters_by_preference, choose_adapter, device_class, instance, wanted_limits, DeviceClass, Gpu, NO_ADAPTER_HELP,
};
pub use dispatch::{grid, groups_for, Cost, Dispatch, KernelInfo, Recorder, MAX_GROUPS_PER_DIM};
pub use pipelines::Constants;
pub use timer::{KernelTime, MAX_TIMED_PASSES};
