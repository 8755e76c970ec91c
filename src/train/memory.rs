//! How much GPU memory a training run needs, found before it starts, and a batch size that fits
//! when it does not.
//!
//! The estimate is measured, not modelled: the step is built once for a micro-batch of one clip,
//! and since every activation scales with the micro-batch, its bytes times the micro-batch size
//! give the run's activations. The same goes for the largest single tensor, which must fit one
//! storage binding of the adapter.

use std::fmt;

use anyhow::{bail, Result};

use super::step::{StepShape, TrainStep};
use crate::gpu::Gpu;
use crate::model::Model;
use crate::ops::adam::AdamConfig;

pub struct MemoryPlan {
    pub shape: StepShape,
    pub params: u64,
    pub grads: u64,
    pub adam: u64,
    pub activations: u64,
    pub batch_staging: u64,
    pub largest: (u64, String),
    pub binding_limit: u64,
}

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.params + self.grads + self.adam + self.activations + self.batch_staging
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(
            f,
            "GPU memory for batch {} of {} samples ({} micro-batch(es) of {}):",
            self.shape.batch,
            self.shape.samples,
            self.shape.micro_batches,
            self.shape.micro_batch()
        )?;
        writeln!(f, "  parameters and batchnorm statistics {:>12}", mib(self.params))?;
        writeln!(f, "  gradients                          {:>12}", mib(self.grads))?;
        writeln!(f, "  Adam moments                       {:>12}", mib(self.adam))?;
        writeln!(f, "  activations, their gradients       {:>12}", mib(self.activations))?;
        writeln!(f, "  batch upload buffers               {:>12}", mib(self.batch_staging))?;
        writeln!(f, "  total                              {:>12}", mib(self.total()))?;
        write!(
            f,
            "  largest tensor: {} = {} (the adapter binds at most {} per buffer)",
            self.largest.1,
            mib(self.largest.0),
            mib(self.binding_limit)
        )
    }
}

/// Measures the memory of `shape` on `model`, and refuses, with a batch size that fits, a run
/// whose largest tensor exceeds what the adapter can bind.
pub fn plan(gpu: &Gpu, model: &Model, shape: StepShape) -> Result<MemoryPlan> {
    let one = TrainStep::new(
        gpu,
        model,
        StepShape { batch: 1, micro_batches: 1, samples: shape.samples },
        AdamConfig::default(),
        None,
    )?;
    let micro = shape.micro_batch() as u64;
    let per_clip_largest = one.largest.0;
    let binding_limit = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
    let largest = (per_clip_largest * micro, one.largest.1.replacen("[1,", &format!("[{micro},"), 1));
    if largest.0 > binding_limit {
        let fits = (binding_limit / per_clip_largest).max(1) as usize;
        let accumulate = shape.batch.div_ceil(fits);
        let even = (accumulate..=shape.batch).find(|a| shape.batch.is_multiple_of(*a)).unwrap_or(shape.batch);
        bail!(
            "batch {} of {} samples does not fit this adapter: {} would need {}, but {} binds at most {} per buffer.\n\
             Use --batch-size {fits} or fewer, or keep the batch and add --accumulate {even} (micro-batches of {}).",
            shape.batch,
            shape.samples,
            largest.1,
            mib(largest.0),
            gpu.info.name,
            mib(binding_limit),
            shape.batch / even
        );
    }
    let staging = 4
        * (shape.batch * shape.samples
            + shape.batch * model.arch.heads.iter().map(|h| h.classes).sum::<usize>() * one.steps) as u64;
    Ok(MemoryPlan {
        shape,
        params: model.params.bytes() + model.running.bytes(),
        grads: one.grads.bytes(),
        adam: one.adam.bytes(),
        activations: one.activation_bytes * micro,
        batch_staging: staging,
        largest,
        binding_limit,
    })
}
