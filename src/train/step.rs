//! One training step as a plan, built once and replayed: upload the batch, then for each
//! micro-batch copy its slice into the network's input, run forward, each head's loss (KL or L2) and
//! backward (gradients add up across micro-batches), then one Adam update — all in one submission.

use anyhow::{ensure, Result};

use super::loss_readback::{LossReadback, StepLosses};
use crate::autograd::Tape;
use crate::checkpoint::Checkpoint;
use crate::gpu::Tensor;
use crate::gpu::{Dispatch, Gpu};
use crate::model::params::NamedTensors;
use crate::model::Model;
use crate::model::{HeadKind, Heads};
use crate::ops::adam::AdamConfig;
use crate::ops::batchnorm::BnMode;
use crate::ops::teacher_loss::TeacherLoss;
use crate::optim::Adam;

/// The batch a step trains on: `batch` clips of `samples` samples, split into `micro_batches`
/// equal micro-batches (batchnorm then uses micro-batch statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    pub batch: usize,
    pub micro_batches: usize,
    pub samples: usize,
}

impl StepShape {
    pub fn micro_batch(&self) -> usize {
        self.batch / self.micro_batches
    }
}

/// GPU buffers the whole batch is written into once per step; each micro-batch copies its share
/// from them into the tape's input tensors.
struct Staging {
    waveform: wgpu::Buffer,
    /// One per head, in the order of `arch.heads`.
    teachers: Vec<wgpu::Buffer>,
}

pub struct TrainStep {
    pub shape: StepShape,
    /// Output steps of the heads for this input length.
    pub steps: usize,
    /// Each head's name and classes, in the order of `arch.heads`.
    pub heads: Vec<(&'static str, usize)>,
    staging: Staging,
    input: Tensor,
    teacher: Vec<Tensor>,
    forward: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    losses: Vec<Tensor>,
    /// Each micro-batch's head losses, side by side: `[micro_batches, heads]`.
    loss_log: wgpu::Buffer,
    pub grads: NamedTensors,
    pub adam: Adam,
    readback: LossReadback,
    /// Bytes of activations, their gradients and scratch, as allocated by the tape.
    pub activation_bytes: u64,
    /// The largest tensor of the step: bytes and what it is.
    pub largest: (u64, String),
}

fn staging_buffer(gpu: &Gpu, values: usize, label: &str) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: 4 * values as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

impl TrainStep {
    /// A step with the KL loss: see `with_loss`.
    pub fn new(
        gpu: &Gpu,
        model: &Model,
        shape: StepShape,
        adam: AdamConfig,
        resume_from: Option<&Checkpoint>,
    ) -> Result<TrainStep> {
        TrainStep::with_loss(gpu, model, shape, TeacherLoss::Kl, adam, resume_from)
    }

    /// Allocates every buffer and records every launch of the step, each head trained with `loss`.
    /// `resume_from` restores Adam's moments and step count.
    pub fn with_loss(
        gpu: &Gpu,
        model: &Model,
        shape: StepShape,
        loss: TeacherLoss,
        adam: AdamConfig,
        resume_from: Option<&Checkpoint>,
    ) -> Result<TrainStep> {
        ensure!(
            shape.micro_batches >= 1 && shape.batch.is_multiple_of(shape.micro_batches),
            "batch size {} does not split into {} equal micro-batches",
            shape.batch,
            shape.micro_batches
        );
        let arch = &model.arch;
        let lengths = arch.lengths(shape.samples).ok_or_else(|| {
            anyhow::anyhow!(
                "{} needs at least {} samples ({:.2} s at {} Hz) for one output step; got {}",
                arch.name,
                arch.min_samples(),
                arch.min_samples() as f64 / f64::from(crate::data::SAMPLE_RATE),
                crate::data::SAMPLE_RATE,
                shape.samples
            )
        })?;
        let steps = lengths.steps;
        let micro = shape.micro_batch();
        let heads: Vec<(&'static str, usize)> = arch.heads.iter().map(|h| (h.name, h.classes)).collect();
        let grads = NamedTensors::zeros_like(gpu, &model.params.specs, "gradients")?;

        let mut tape = Tape::new(gpu);
        let input = Tensor::zeros(gpu, &[micro, 1, shape.samples], "waveform")?;
        let teacher = heads
            .iter()
            .map(|(name, classes)| Tensor::zeros(gpu, &[micro, *classes, steps], &format!("teacher {name}")))
            .collect::<Result<Vec<_>>>()?;
        let x = tape.input(&input);
        let out = model.forward(&mut tape, x, BnMode::Train, Some(&grads))?;
        let mut losses = Vec::with_capacity(heads.len());
        for ((name, _), (p, logits)) in heads.iter().zip(teacher.iter().zip(out.heads)) {
            let p = tape.input(p);
            losses.push(tape.teacher_loss(loss, p, logits, &format!("{name} loss"))?);
        }
        tape.backward(1.0 / shape.micro_batches as f32)?;

        let staging = Staging {
            waveform: staging_buffer(gpu, shape.batch * shape.samples, "batch waveform"),
            teachers: heads
                .iter()
                .map(|(name, classes)| staging_buffer(gpu, shape.batch * classes * steps, &format!("batch {name}")))
                .collect(),
        };
        let adam = Adam::new(gpu, adam, &model.params, &grads, resume_from)?;
        let activation_bytes = tape.allocated_bytes + input.bytes() + teacher.iter().map(Tensor::bytes).sum::<u64>();
        let largest = tape.largest.clone();
        let logged = heads.len() * shape.micro_batches;
        Ok(TrainStep {
            shape,
            steps,
            heads,
            staging,
            input,
            teacher,
            forward: tape.forward,
            backward: tape.backward,
            losses,
            loss_log: staging_buffer(gpu, logged, "loss log"),
            grads,
            adam,
            readback: LossReadback::new(gpu, logged),
            activation_bytes,
            largest,
        })
    }

    /// Records and submits one step on `waveform` `[batch, 1, samples]` and the batch's target rows
    /// per head `[batch, classes, steps]` (only those of the model's heads are read; a dataset
    /// without one gives an empty slice). Returns the losses of earlier steps that have come back.
    pub fn submit(&mut self, gpu: &Gpu, waveform: &[f32], targets: Heads<&[f32]>) -> Result<Vec<StepLosses>> {
        let s = self.shape;
        ensure!(
            waveform.len() == s.batch * s.samples,
            "waveform has {} values, expected {} x {}",
            waveform.len(),
            s.batch,
            s.samples
        );
        for ((name, classes), buffer) in self.heads.iter().zip(&self.staging.teachers) {
            let values = *targets.get(HeadKind::from_name(name).expect("the model's heads are known kinds"));
            ensure!(
                values.len() == s.batch * classes * self.steps,
                "{name} teacher has {} values, expected [{}, {classes}, {}]",
                values.len(),
                s.batch,
                self.steps
            );
            gpu.queue.write_buffer(buffer, 0, bytemuck::cast_slice(values));
        }
        gpu.queue.write_buffer(&self.staging.waveform, 0, bytemuck::cast_slice(waveform));

        let mut encoder = gpu.encoder("train step");
        encoder.clear_buffer(&self.grads.flat.buffer, self.grads.flat.offset, Some(self.grads.flat.bytes()));
        let sources = std::iter::once(&self.staging.waveform).chain(&self.staging.teachers);
        let targets: Vec<&Tensor> = std::iter::once(&self.input).chain(&self.teacher).collect();
        let pairs: Vec<(&wgpu::Buffer, &Tensor)> = sources.zip(targets).collect();
        let n = self.heads.len();
        for i in 0..s.micro_batches {
            for &(source, target) in &pairs {
                encoder.copy_buffer_to_buffer(
                    source,
                    i as u64 * target.bytes(),
                    &target.buffer,
                    target.offset,
                    target.bytes(),
                );
            }
            for d in self.forward.iter().chain(&self.backward) {
                d.encode(gpu, &mut encoder);
            }
            for (h, loss) in self.losses.iter().enumerate() {
                encoder.copy_buffer_to_buffer(&loss.buffer, loss.offset, &self.loss_log, 4 * (n * i + h) as u64, 4);
            }
        }
        self.adam.encode_step(gpu, &mut encoder)?;
        let step = self.adam.step;
        let mut done = self.readback.record_copy(gpu, &mut encoder, &self.loss_log, step)?;
        gpu.submit(encoder);
        self.readback.after_submit();
        done.extend(self.readback.poll(gpu)?);
        Ok(done)
    }

    /// Every kernel launch of one step in the order `submit` records them (without the copies).
    pub fn launches(&self) -> Vec<&Dispatch> {
        let pass = self.forward.iter().chain(&self.backward);
        let passes = std::iter::repeat_n(pass, self.shape.micro_batches).flatten();
        passes.chain(self.adam.launches()).collect()
    }

    /// The launches of one micro-batch: its forward pass (losses included) and its backward pass.
    pub fn pass_launches(&self) -> (&[Dispatch], &[Dispatch]) {
        (&self.forward, &self.backward)
    }

    /// Waits for the GPU and returns the losses of every step not yet returned.
    pub fn finish(&mut self, gpu: &Gpu) -> Result<Vec<StepLosses>> {
        self.readback.drain(gpu)
    }

    /// Mean loss of the objects and the scenes head over the micro-batches of one step (None for
    /// a head the model does not have).
    pub fn head_losses(&self, losses: &StepLosses) -> Heads<Option<f32>> {
        let (n, micro) = (self.heads.len(), self.shape.micro_batches as f32);
        Heads::from_fn(|kind| {
            let h = self.heads.iter().position(|(head, _)| *head == kind.name())?;
            Some(losses.values.iter().skip(h).step_by(n).sum::<f32>() / micro)
        })
    }

    /// Parameter, gradient, Adam and activation bytes this step keeps on the GPU.
    pub fn gpu_bytes(&self, model: &Model) -> u64 {
        model.params.bytes() + model.running.bytes() + self.grads.bytes() + self.adam.bytes() + self.activation_bytes
    }
}
