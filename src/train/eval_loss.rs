//! The teacher-student loss of a dataset with batchnorm in eval mode: the validation loss.

use anyhow::Result;

use crate::autograd::Tape;
use crate::data::{load_batch, Dataset, Order};
use crate::gpu::Tensor;
use crate::gpu::{Dispatch, Gpu};
use crate::model::Model;
use crate::ops::batchnorm::BnMode;

pub struct EvalLoss {
    batch: usize,
    input: Tensor,
    teacher: [Tensor; 2],
    forward: Vec<Dispatch>,
    losses: [Tensor; 2],
}

impl EvalLoss {
    /// Records a forward pass of `batch` clips of `samples` samples and the two losses.
    pub fn new(gpu: &Gpu, model: &Model, batch: usize, samples: usize) -> Result<EvalLoss> {
        let steps = model.arch.lengths(samples).map(|l| l.steps).unwrap_or(0);
        let mut tape = Tape::new(gpu);
        let input = Tensor::zeros(gpu, &[batch, 1, samples], "val waveform")?;
        let teacher = [
            Tensor::zeros(gpu, &[batch, model.arch.heads[0].classes, steps], "val teacher objects")?,
            Tensor::zeros(gpu, &[batch, model.arch.heads[1].classes, steps], "val teacher scenes")?,
        ];
        let x = tape.input(&input);
        let out = model.forward(&mut tape, x, BnMode::Eval, None)?;
        let (po, ps) = (tape.input(&teacher[0]), tape.input(&teacher[1]));
        let losses =
            [tape.kl_div(po, out.objects, "val objects loss")?, tape.kl_div(ps, out.scenes, "val scenes loss")?];
        Ok(EvalLoss { batch, input, teacher, forward: tape.forward, losses })
    }

    /// Mean loss of each head over the dataset, in batches in manifest order (a dataset smaller than
    /// a batch is wrapped around to fill one).
    pub fn run(&mut self, gpu: &Gpu, dataset: &dyn Dataset) -> Result<[f32; 2]> {
        let order = Order::new(dataset.len(), self.batch, 0, false);
        let batches = order.batches_per_epoch();
        let mut sum = [0.0f64; 2];
        for b in 0..batches {
            let batch = load_batch(dataset, &order.batch(b))?;
            self.input.write(gpu, &batch.waveform)?;
            self.teacher[0].write(gpu, &batch.objects)?;
            self.teacher[1].write(gpu, &batch.scenes)?;
            let mut encoder = gpu.encoder("validation");
            for d in &self.forward {
                d.encode(gpu, &mut encoder);
            }
            gpu.submit(encoder);
            for (h, loss) in self.losses.iter().enumerate() {
                sum[h] += f64::from(loss.read(gpu)?[0]);
            }
        }
        Ok(sum.map(|s| (s / batches as f64) as f32))
    }
}
