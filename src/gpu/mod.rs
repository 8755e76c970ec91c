//! Everything that talks to wgpu directly: the device, shader pipelines, dispatch recording,
//! timestamps, readback, and `Tensor`, the buffer with a shape that launches bind. Ops above this
//! layer only say which kernel runs on which buffers.

mod context;
mod dispatch;
pub mod info;
mod pipelines;
mod readback;
mod shaders;
mod tensor;
mod timer;
pub mod tuning;

pub use context::{
    adapters_by_preference, choose_adapter, device_class, instance, wanted_limits, DeviceClass, Gpu, NO_ADAPTER_HELP,
};
pub use dispatch::{grid, groups_for, Cost, Dispatch, Entry, KernelInfo, Recorder, MAX_GROUPS_PER_DIM};
pub use pipelines::Constants;
pub use shaders::{Binding, Shader};
pub use tensor::Tensor;
pub use timer::{KernelTime, MAX_TIMED_PASSES};
