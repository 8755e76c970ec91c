//! Training: the step plan, loss readback, and the loop behind `sn-wgpu train`.

pub mod eval_loss;
pub mod folds;
pub mod held_out;
pub mod loss_readback;
pub mod memory;
pub mod metrics;
mod request;
pub mod run;
mod run_dir;
pub mod settings;
mod signals;
pub mod step;

/// `--loss`: the op's enum, which the CLI parses and run records keep.
pub use crate::ops::teacher_loss::TeacherLoss;
pub use request::{TrainFlags, TrainOptions};
pub use run::{run, TrainSummary};
pub use settings::{RunSettings, SettingFlags, TeacherChoice};
pub use step::{StepShape, TrainStep};
