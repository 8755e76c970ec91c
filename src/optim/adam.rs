//! Adam over every parameter tensor, with PyTorch's semantics (see `ops::adam`). Parameters,
//! gradients and both moments each live in one buffer with the same layout, so a single launch
//! updates them all. It is prepared once; each step only rewrites its parameters (the step count
//! and its bias corrections) and records it again.

use anyhow::{Context, Result};

use crate::checkpoint::Checkpoint;
use crate::gpu::{Dispatch, Gpu};
use crate::model::params::NamedTensors;
use crate::ops::adam::{self, AdamConfig};

pub struct Adam {
    pub config: AdamConfig,
    /// Steps taken so far; the next update is step `step + 1`.
    pub step: u64,
    /// First and second moments, one tensor per parameter, named like the parameters.
    pub m: NamedTensors,
    pub v: NamedTensors,
    /// The one update launch.
    updates: Vec<Dispatch>,
}

impl Adam {
    /// Adam with zero moments, or the moments and step count stored in `resume_from`.
    pub fn new(
        gpu: &Gpu,
        config: AdamConfig,
        params: &NamedTensors,
        grads: &NamedTensors,
        resume_from: Option<&Checkpoint>,
    ) -> Result<Adam> {
        let (m, v, step) = match resume_from {
            Some(c) => (
                NamedTensors::from_checkpoint(gpu, params.specs.clone(), c, "adam.m.", "Adam first moments")?,
                NamedTensors::from_checkpoint(gpu, params.specs.clone(), c, "adam.v.", "Adam second moments")?,
                c.meta("step")?.parse()?,
            ),
            None => (
                NamedTensors::zeros_like(gpu, &params.specs, "Adam first moments")?,
                NamedTensors::zeros_like(gpu, &params.specs, "Adam second moments")?,
                0,
            ),
        };
        let mut updates = Vec::new();
        adam::encode_step(gpu, &mut updates, &config, 1, (&params.flat, &grads.flat), (&m.flat, &v.flat))?;
        for update in &mut updates {
            update.set_scope("adam (every parameter)");
        }
        Ok(Adam { config, step, m, v, updates })
    }

    /// Records one update of every parameter from the gradients.
    pub fn encode_step(&mut self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        self.step += 1;
        let step = u32::try_from(self.step).context("more than 2^32 Adam steps")?;
        for update in &self.updates {
            update.set_params(gpu, &adam::step_params(&self.config, step, self.m.flat.numel())?);
            update.encode(gpu, encoder);
        }
        Ok(())
    }

    /// The update launches: one, over every parameter.
    pub fn launches(&self) -> &[Dispatch] {
        &self.updates
    }

    /// The moments, under `adam.m.<name>` and `adam.v.<name>`.
    pub fn write_checkpoint(&self, gpu: &Gpu, checkpoint: &mut Checkpoint) -> Result<()> {
        self.m.write_to(gpu, checkpoint, "adam.m.")?;
        self.v.write_to(gpu, checkpoint, "adam.v.")
    }

    pub fn bytes(&self) -> u64 {
        self.m.bytes() + self.v.bytes()
    }
}
