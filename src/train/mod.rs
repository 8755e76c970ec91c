//! Training: the step plan, loss readback, and the loop behind `sn-wgpu train`.

pub mod loss_readback;
pub mod metrics;
pub mod step;

pub use step::{StepShape, TrainStep};
