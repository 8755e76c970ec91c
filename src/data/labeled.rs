//! A labeled folder (`meta.csv` and `audio/`, read by `meta`) as training examples for
//! `train --labels`: each clip cut or tiled to the crop, its class as one one-hot row per output
//! step. Cross-entropy against a one-hot row is the KL divergence against it: `sum_c P (log P -
//! log q)` with `P` one-hot is `-log q[label]`, as `0 log 0 = 0` and `1 log 1 = 0`. So the
//! teacher loss's KL kernel trains a labeled set unchanged, and its gradient `q * sum_c P - P` is
//! cross-entropy's `q - onehot`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rayon::prelude::*;

use super::crop::{tile, Crop};
use super::meta::Meta;
use super::problem::{Problem, ValidationError};
use super::tiling::{self, Tiled};
use super::{audio, Dataset, Example};
use crate::model::Heads;

/// Decoded clips are kept in memory until they take this many bytes; the rest are decoded again
/// each time they are served.
const CACHE_BYTES: usize = 1 << 30;

/// The clips of some folds of a labeled folder, validated.
#[derive(Debug)]
pub struct LabeledDataset {
    crop: Crop,
    clips: Vec<LabeledClip>,
    /// Every class of `meta.csv`, in its order: the classifier's width, whichever folds are taken.
    names: Vec<String>,
}

#[derive(Debug)]
struct LabeledClip {
    audio: PathBuf,
    class: usize,
    /// The decoded clip cut to the crop, when the cache had room for it.
    clip: Option<Vec<f32>>,
}

impl LabeledDataset {
    /// The clips of `meta` in the folds `take` accepts, decoded now so that a bad file stops the
    /// run before training. Without `skip_bad` any unreadable clip fails with every problem
    /// listed; with it, they are left out and returned. Clips the crop repeats more than 4 times
    /// are listed on stderr.
    pub fn open(
        meta: &Meta,
        take: impl Fn(u32) -> bool,
        crop: Crop,
        skip_bad: bool,
    ) -> Result<(LabeledDataset, Vec<Problem>)> {
        let chosen: Vec<_> = meta.clips.iter().filter(|c| take(c.fold)).collect();
        let fail = |problems: Vec<Problem>| ValidationError { dataset: meta.dir.clone(), problems };
        if chosen.is_empty() {
            return Err(fail(vec![Problem::new(meta.path(), "no clips in the folds asked for")]).into());
        }
        let decoded: Vec<Result<(Vec<f32>, usize), Problem>> = chosen
            .par_iter()
            .map(|c| {
                let mut clip = audio::load(&c.audio)
                    .map_err(|e| Problem::new(e.file, format!("{} (meta.csv line {})", e.reason, c.line)))?;
                let samples = clip.len();
                clip.truncate(crop.samples);
                clip.shrink_to_fit();
                Ok((clip, samples))
            })
            .collect();
        let (mut clips, mut problems, mut tiled) = (Vec::new(), Vec::new(), Vec::new());
        let mut cache_left = CACHE_BYTES;
        for (c, result) in chosen.iter().zip(decoded) {
            match result {
                Ok((clip, samples)) => {
                    tiled.extend(Tiled::check(c.audio.clone(), samples, crop));
                    let bytes = clip.len() * std::mem::size_of::<f32>();
                    let clip = cache_left.checked_sub(bytes).map(|left| {
                        cache_left = left;
                        clip
                    });
                    clips.push(LabeledClip { audio: c.audio.clone(), class: c.class, clip });
                }
                Err(p) => problems.push(p),
            }
        }
        if clips.is_empty() || (!problems.is_empty() && !skip_bad) {
            return Err(fail(problems).into());
        }
        if let Some(note) = tiling::note(&tiled, crop) {
            eprintln!("{note}");
        }
        let names = meta.classes.iter().map(|c| c.name.clone()).collect();
        Ok((LabeledDataset { crop, clips, names }, problems))
    }

    /// The class names, in the classifier's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The class of clip `i`, an index into `names`.
    pub fn class_of(&self, i: usize) -> usize {
        self.clips[i].class
    }

    pub fn audio_path(&self, i: usize) -> &Path {
        &self.clips[i].audio
    }
}

impl Dataset for LabeledDataset {
    fn len(&self) -> usize {
        self.clips.len()
    }

    fn crop(&self) -> Crop {
        self.crop
    }

    fn classes(&self) -> Heads<Option<usize>> {
        Heads { classes: Some(self.names.len()), ..Heads::default() }
    }

    fn example(&self, i: usize) -> Result<Example> {
        let c = &self.clips[i];
        let waveform = match &c.clip {
            Some(clip) => tile(clip, self.crop.samples),
            None => tile(&audio::load(&c.audio)?, self.crop.samples),
        };
        Ok(Example {
            waveform,
            classes: one_hot_rows(c.class, self.names.len(), self.crop.steps),
            ..Example::default()
        })
    }
}

/// `steps` rows `[steps, classes]`, each 1 at `class` and 0 elsewhere.
pub fn one_hot_rows(class: usize, classes: usize, steps: usize) -> Vec<f32> {
    let mut rows = vec![0.0; steps * classes];
    for t in 0..steps {
        rows[t * classes + class] = 1.0;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::one_hot_rows;

    #[test]
    fn one_hot_rows_mark_the_class_at_every_step() {
        assert_eq!(one_hot_rows(2, 3, 2), [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(one_hot_rows(0, 1, 1), [1.0]);
    }
}
