//! The teacher-student loss of a dataset with batchnorm in eval mode: the validation loss.

use anyhow::Result;

use crate::autograd::Tape;
use crate::data::{load_batch, Dataset, Order};
use crate::gpu::Tensor;
use crate::gpu::{Dispatch, Gpu};
use crate::model::{HeadKind, Heads, Model};
use crate::ops::batchnorm::BnMode;
use crate::ops::teacher_loss::TeacherLoss;

pub struct EvalLoss {
    batch: usize,
    input: Tensor,
    /// Per head, in the order of `arch.heads`: its kind, teacher and loss.
    heads: Vec<(HeadKind, Tensor, Tensor)>,
    forward: Vec<Dispatch>,
}

impl EvalLoss {
    /// Records a forward pass of `batch` clips of `samples` samples and each head's `loss`.
    pub fn new(gpu: &Gpu, model: &Model, batch: usize, samples: usize, loss: TeacherLoss) -> Result<EvalLoss> {
        let steps = model.arch.lengths(samples).map(|l| l.steps).unwrap_or(0);
        let mut tape = Tape::new(gpu);
        let input = Tensor::zeros(gpu, &[batch, 1, samples], "val waveform")?;
        let x = tape.input(&input);
        let out = model.forward(&mut tape, x, BnMode::Eval, None)?;
        let mut heads = Vec::with_capacity(out.heads.len());
        for (head, logits) in model.arch.heads.iter().zip(out.heads) {
            let teacher = Tensor::zeros(gpu, &[batch, head.classes, steps], &format!("val teacher {}", head.name))?;
            let p = tape.input(&teacher);
            let value = tape.teacher_loss(loss, p, logits, &format!("val {} loss", head.name))?;
            let kind = HeadKind::from_name(head.name).expect("a known head");
            heads.push((kind, teacher, value));
        }
        Ok(EvalLoss { batch, input, heads, forward: tape.forward })
    }

    /// Mean loss of the objects and the scenes head over the dataset (None for a head the model does
    /// not have), in batches in manifest order (a dataset smaller than a batch is wrapped around to
    /// fill one).
    pub fn run(&mut self, gpu: &Gpu, dataset: &dyn Dataset) -> Result<Heads<Option<f32>>> {
        let order = Order::new(dataset.len(), self.batch, 0, false);
        let batches = order.batches_per_epoch();
        let mut sum = Heads::<Option<f64>>::default();
        for b in 0..batches {
            let batch = load_batch(dataset, &order.batch(b))?;
            self.input.write(gpu, &batch.waveform)?;
            for (h, teacher, _) in &self.heads {
                teacher.write(gpu, batch.teacher(*h))?;
            }
            let mut encoder = gpu.encoder("validation");
            for d in &self.forward {
                d.encode(gpu, &mut encoder);
            }
            gpu.submit(encoder);
            for (h, _, loss) in &self.heads {
                *sum.get_mut(*h).get_or_insert(0.0) += f64::from(loss.read(gpu)?[0]);
            }
        }
        Ok(sum.map(|s| s.map(|s| (s / batches as f64) as f32)))
    }
}
