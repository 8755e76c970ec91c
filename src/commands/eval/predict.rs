//! `sn-wgpu predict`: the top objects and scenes of each clip (or the classes of a classifier
//! `train --labels` trained), per output step and for the whole clip, as text or JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use super::extractor::Extractor;
use super::inputs::audio_files;
use super::load_model;
use crate::data::audio::{self, AudioError};
use crate::data::{categories, SAMPLE_RATE};
use crate::gpu::Gpu;
use crate::model::probabilities::softmax_columns;
use crate::model::Arch;
use crate::model::{HeadKind, Heads};

/// Short clips are tiled to SoundNet's training length, 20 s, which gives four output steps whose
/// windows stay clear of the right edge (see `clean_steps`). The original tiled to 10 s, where its
/// single step sees that edge and says the same classes for every sound.
pub const TILE_SECONDS: usize = 20;

pub struct PredictOptions {
    /// Audio files, or folders whose audio files (wav, mp3, flac, ogg) are all taken, sorted.
    pub paths: Vec<PathBuf>,
    pub weights: Option<PathBuf>,
    pub top_k: usize,
    pub chunk_samples: usize,
}

/// One class and its softmax probability.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub index: usize,
    pub class: String,
    pub probability: f32,
}

/// The top classes of each head over some stretch of audio (a head the model lacks is left out).
#[derive(Debug, Clone, Serialize)]
pub struct Top {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Scored>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenes: Option<Vec<Scored>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<Scored>>,
}

impl Top {
    /// From one probability vector per head of `heads` (names and class names).
    fn of(heads: &[(&str, Vec<String>)], probs: &[&[f32]], k: usize) -> Top {
        let mut top = Heads::default();
        for ((name, names), p) in heads.iter().zip(probs) {
            *top.get_mut(HeadKind::from_name(name).expect("the model's heads are known kinds")) =
                Some(top_k(p, names, k));
        }
        Top { objects: top.objects, scenes: top.scenes, classes: top.classes }
    }
}

/// The class names of a teacher's head: the shipped list of its kind where the head is that long
/// (the authors' 1000 ImageNet objects and 401 Places scenes), else `class 0`, `class 1`, ...
pub fn class_names(head: &str, classes: usize) -> Vec<String> {
    let list = match HeadKind::from_name(head) {
        Some(HeadKind::Objects) => categories::objects(),
        Some(HeadKind::Scenes) => categories::scenes(),
        _ => &[],
    };
    if list.len() == classes {
        list.iter().map(|n| n.to_string()).collect()
    } else {
        (0..classes).map(|i| format!("class {i}")).collect()
    }
}

/// A head's class names: a classifier's from its checkpoint, a teacher's head's from `class_names`.
fn head_class_names(model: &crate::model::Model, head: &str, classes: usize) -> Vec<String> {
    match HeadKind::from_name(head) {
        Some(HeadKind::Classes) if model.class_names.len() == classes => model.class_names.clone(),
        _ => class_names(head, classes),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: usize,
    /// The stretch of the (possibly tiled) clip this step's receptive field covers, in seconds.
    pub start_s: f64,
    pub end_s: f64,
    #[serde(flatten)]
    pub top: Top,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClipPrediction {
    pub file: PathBuf,
    /// The clip's own length in seconds, before any tiling.
    pub seconds: f64,
    pub note: Option<String>,
    pub steps: Vec<Step>,
    /// From the mean over steps of each step's probabilities.
    pub clip: Top,
}

#[derive(Debug, Clone, Serialize)]
pub struct Predictions {
    pub weights: PathBuf,
    pub model: String,
    pub clips: Vec<ClipPrediction>,
    /// The files that could not be read, and why (see `bad_files` for what the command does).
    pub errors: Vec<AudioError>,
}

/// Loads the model and predicts every file in order. A file that cannot be read is listed in
/// `errors` and the rest are still predicted.
pub fn predict(gpu: &Gpu, opts: &PredictOptions) -> Result<Predictions> {
    ensure!(opts.top_k >= 1, "--top-k must be at least 1");
    let files = audio_files(&opts.paths)?;
    let model = load_model(gpu, opts.weights.as_deref(), "predict")?;
    let heads: Vec<(&str, Vec<String>)> =
        model.arch.heads.iter().map(|h| (h.name, head_class_names(&model, h.name, h.classes))).collect();
    let head_names: Vec<&str> = heads.iter().map(|(n, _)| *n).collect();
    let mut extractor = Extractor::new(&model, &head_names, opts.chunk_samples)?
        .tile_short_clips_to(TILE_SECONDS * SAMPLE_RATE as usize);
    let geometry = extractor.geometries()[0].clone();
    let mut clips = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for file in &files {
        let waveform = match audio::load(file) {
            Ok(w) => w,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let out =
            extractor.extract(gpu, &waveform).with_context(|| format!("{}: running the model", file.display()))?;
        let probs: Vec<Vec<Vec<f32>>> =
            out.features.iter().map(|f| softmax_columns(&f.data, f.channels, f.steps)).collect();
        let (steps, dropped) = clean_steps(&model.arch, out.samples, out.features[0].steps);
        let mut mean: Vec<Vec<f64>> = out.features.iter().map(|f| vec![0.0; f.channels]).collect();
        let mut per_step = Vec::with_capacity(steps);
        for t in 0..steps {
            for (m, p) in mean.iter_mut().zip(&probs) {
                m.iter_mut().zip(&p[t]).for_each(|(m, &p)| *m += f64::from(p) / steps as f64);
            }
            // A step's receptive field is samples t*S - P ..< t*S - P + R (S the total stride, R
            // the receptive field, P the summed left padding scaled by the stride before each
            // layer; SoundNet-8: S = 65,536 ≈ 2.97 s, R = 320,542 ≈ 14.5 s, P = 55,584), clipped
            // to the clip: neighbouring steps overlap, and each advances S samples.
            let (start, end) = geometry.span(t, out.samples);
            per_step.push(Step {
                step: t,
                start_s: start as f64 / SAMPLE_RATE as f64,
                end_s: end as f64 / SAMPLE_RATE as f64,
                top: Top::of(&heads, &probs.iter().map(|p| p[t].as_slice()).collect::<Vec<_>>(), opts.top_k),
            });
        }
        let mean: Vec<Vec<f32>> = mean.into_iter().map(|m| m.into_iter().map(|v| v as f32).collect()).collect();
        clips.push(ClipPrediction {
            file: file.clone(),
            seconds: waveform.len() as f64 / SAMPLE_RATE as f64,
            note: join_notes(out.note, dropped),
            steps: per_step,
            clip: Top::of(&heads, &mean.iter().map(Vec::as_slice).collect::<Vec<_>>(), opts.top_k),
        });
    }
    let weights = opts.weights.clone().expect("load_model checked it");
    Ok(Predictions { weights, model: model.arch.name.clone(), clips, errors })
}

/// How many leading head steps to keep, and a note when some were dropped.
///
/// Every unpooled conv with an even kernel, stride 2 and padding k/2 gives one output more than
/// its input holds windows for, centred on the zero padding past the end. Pools drop it after
/// conv1, conv2 and conv5, but conv7's last column is such an edge column, and batchnorm turns
/// it into the only strongly active one (on ESC-10 its mean activation is 0.83 against at most
/// 0.002 inside the clip). A head step whose window covers it predicts the padding, the same
/// classes for any input, so only steps t with stride*t + k <= T7 - 1 are kept. SoundNet was
/// trained on 20 s crops, whose four steps never reach that column.
pub fn clean_steps(arch: &Arch, samples: usize, steps: usize) -> (usize, Option<String>) {
    let Some(lengths) = arch.lengths(samples) else { return (steps, None) };
    let last_body = lengths.body.last().map_or(samples, |&(_, pooled)| pooled);
    let head = &arch.heads[0];
    let clean = (last_body.saturating_sub(1) + 2 * head.pad).saturating_sub(head.k) / head.stride + 1;
    let keep = if last_body > head.k { clean.min(steps) } else { steps };
    let dropped = steps - keep;
    let note = (dropped > 0).then(|| {
        format!("the last {dropped} output step(s) left out: their window covers the zero padding past the clip's end")
    });
    (keep, note)
}

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// The `k` most probable classes, most probable first (ties by class index).
fn top_k(probs: &[f32], names: &[String], k: usize) -> Vec<Scored> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.into_iter().map(|i| Scored { index: i, class: names[i].clone(), probability: probs[i] }).collect()
}

impl Predictions {
    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// One block per clip: any note, the whole-clip top classes, then each step's. Files that
    /// could not be read are left to `bad_files`, which lists them on stderr.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let list = |top: &[Scored]| {
            top.iter().map(|c| format!("{} {:.3}", c.class, c.probability)).collect::<Vec<_>>().join(" | ")
        };
        for clip in &self.clips {
            let _ = writeln!(
                s,
                "{} ({:.2} s, {} step{})",
                clip.file.display(),
                clip.seconds,
                clip.steps.len(),
                if clip.steps.len() == 1 { "" } else { "s" }
            );
            if let Some(note) = &clip.note {
                let _ = writeln!(s, "  note: {note}");
            }
            let heads = |s: &mut String, first: &str, top: &Top| {
                let mut lead = first.to_string();
                for (label, head) in [("objects:", &top.objects), ("scenes: ", &top.scenes), ("classes:", &top.classes)]
                {
                    if let Some(head) = head {
                        let _ = writeln!(s, "  {lead:<8} {label} {}", list(head));
                        lead.clear();
                    }
                }
            };
            heads(&mut s, "clip", &clip.clip);
            for step in &clip.steps {
                let _ = writeln!(s, "  step {:<3} {:7.2}-{:<7.2} s", step.step, step.start_s, step.end_s);
                heads(&mut s, "", &step.top);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_over_the_right_edge_are_dropped() {
        let arch = crate::model::arch::soundnet8();
        // 20 s: conv7 has 15 columns, the 4 head steps cover columns 0..14, all clear of column 14.
        assert_eq!(arch.lengths(441_000).unwrap().steps, 4);
        assert_eq!(clean_steps(&arch, 441_000, 4), (4, None));
        // 40 s: conv7 has 28 columns; step 10 covers columns 20..28, the last one included.
        assert_eq!(arch.lengths(882_000).unwrap().steps, 11);
        let (keep, note) = clean_steps(&arch, 882_000, 11);
        assert_eq!(keep, 10);
        assert!(note.unwrap().contains("zero padding"));
    }

    #[test]
    fn classes_are_named_only_from_a_list_of_their_length() {
        assert_eq!(class_names("objects", 1000)[409], "analog clock");
        assert_eq!(class_names("scenes", 401)[0], "abbey");
        assert_eq!(class_names("scenes", 365)[364], "class 364");
        assert_eq!(class_names("objects", 401)[0], "class 0");
    }

    #[test]
    fn top_k_is_sorted_and_named() {
        let top = top_k(&[0.1, 0.6, 0.3], &["a".into(), "b".into(), "c".into()], 2);
        assert_eq!(top.iter().map(|c| c.class.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(top[0].index, 1);
    }
}
