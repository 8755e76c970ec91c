//! The held-out fold of a labeled run (`train --labels --folds`): every clip of the fold the run
//! did not train on, classified by the trained network with batchnorm in eval mode. A clip's
//! class is the argmax of the mean, over the network's output steps for the clip at the training
//! crop, of the classifier's softmax: the clip accuracy the paper reports, from one forward pass.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::autograd::Tape;
use crate::data::labeled::LabeledDataset;
use crate::data::{load_batch, Dataset};
use crate::gpu::{Gpu, Tensor};
use crate::model::probabilities::softmax_columns;
use crate::model::Model;
use crate::ops::batchnorm::BnMode;

/// What the held-out fold gave.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOutReport {
    pub fold: u32,
    pub clips: usize,
    pub correct: usize,
    /// `correct / clips`.
    pub accuracy: f64,
    /// Every clip, in `meta.csv` order.
    pub per_clip: Vec<ClipResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClipResult {
    pub file: PathBuf,
    pub label: String,
    pub predicted: String,
    pub correct: bool,
    /// The mean softmax probability of the predicted class.
    pub probability: f32,
}

/// Classifies every clip of `dataset` (fold `fold`) with `model`'s `classes` head, `batch` clips
/// per pass (the last pass filled up with clips again, their results dropped).
pub fn classify(gpu: &Gpu, model: &Model, dataset: &LabeledDataset, batch: usize, fold: u32) -> Result<HeldOutReport> {
    let crop = dataset.crop();
    let mut tape = Tape::new(gpu);
    let input = Tensor::zeros(gpu, &[batch, 1, crop.samples], "held-out waveform")?;
    let x = tape.input(&input);
    let out = model.forward(&mut tape, x, BnMode::Eval, None)?;
    let head = model.arch.heads.iter().position(|h| h.name == "classes");
    let head = head.ok_or_else(|| anyhow::anyhow!("{} has no classes head to classify with", model.arch.name))?;
    let logits = tape.value(out.heads[head]).clone();
    let classes = model.arch.heads[head].classes;
    let names = dataset.names();
    let mut per_clip = Vec::with_capacity(dataset.len());
    for start in (0..dataset.len()).step_by(batch) {
        let real = (dataset.len() - start).min(batch);
        let indices: Vec<usize> = (0..batch).map(|j| start + j % real).collect();
        input.write(gpu, &load_batch(dataset, &indices)?.waveform)?;
        let mut encoder = gpu.encoder("held-out fold");
        for d in &tape.forward {
            d.encode(gpu, &mut encoder);
        }
        gpu.submit(encoder);
        let values = logits.read(gpu)?;
        let per = classes * crop.steps;
        for (j, &i) in indices.iter().take(real).enumerate() {
            let probs = softmax_columns(&values[j * per..(j + 1) * per], classes, crop.steps);
            let mean: Vec<f64> =
                (0..classes).map(|c| probs.iter().map(|p| f64::from(p[c])).sum::<f64>() / crop.steps as f64).collect();
            let predicted = (0..classes).max_by(|&a, &b| mean[a].total_cmp(&mean[b]).then(b.cmp(&a))).expect("classes");
            per_clip.push(ClipResult {
                file: dataset.audio_path(i).to_path_buf(),
                label: names[dataset.class_of(i)].clone(),
                predicted: names[predicted].clone(),
                correct: predicted == dataset.class_of(i),
                probability: mean[predicted] as f32,
            });
        }
    }
    let correct = per_clip.iter().filter(|c| c.correct).count();
    let clips = per_clip.len();
    Ok(HeldOutReport { fold, clips, correct, accuracy: correct as f64 / clips as f64, per_clip })
}
