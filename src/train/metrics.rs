//! `metrics.jsonl`: one JSON object per line, appended as steps complete, so a run can be followed
//! with `tail -f` and reloaded by any tool.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::model::Heads;

#[derive(Debug, Clone, Serialize)]
pub struct TrainRecord {
    pub step: u64,
    /// The sum of the heads' losses.
    pub loss: f32,
    /// Each head's loss; a head the student does not have is left out of the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_objects: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scenes: Option<f32>,
    /// A labeled run's cross-entropy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_classes: Option<f32>,
    pub steps_per_s: f64,
    pub samples_per_s: f64,
    pub lr: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValRecord {
    pub step: u64,
    pub val_loss: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss_objects: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss_scenes: Option<f32>,
}

/// The losses a run has logged: training ([objects, scenes] per step) and validation (per step).
#[derive(Debug, Default)]
pub struct History {
    pub train: Vec<(u64, Heads<Option<f32>>)>,
    pub val: Vec<(u64, f32)>,
}

impl History {
    fn push(&mut self, step: u64, record: &serde_json::Value) {
        let number = |key: &str| record.get(key).and_then(|x| x.as_f64()).map(|x| x as f32);
        if let Some(val_loss) = number("val_loss") {
            self.val.push((step, val_loss));
        } else if record.get("loss").is_some() {
            self.train.push((
                step,
                Heads {
                    objects: number("loss_objects"),
                    scenes: number("loss_scenes"),
                    classes: number("loss_classes"),
                },
            ));
        }
    }
}

pub struct MetricsLog {
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Opens `path` for appending (a resumed run continues the same file).
    pub fn open(path: &Path) -> Result<MetricsLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(MetricsLog { out: BufWriter::new(file) })
    }

    /// Drops the lines of `path` logged after `step` (a run resumed from the checkpoint of `step`
    /// trains those steps again) and returns the training losses ([objects, scenes] per step) and
    /// validation losses of the lines kept, so a resumed run's curve and summary cover the whole
    /// run. Lines that are not JSON with a step are kept and passed over; a missing file is left
    /// missing, with an empty history.
    pub fn cut_after(path: &Path, step: u64) -> Result<History> {
        let mut history = History::default();
        let Ok(text) = std::fs::read_to_string(path) else { return Ok(history) };
        let mut kept = Vec::new();
        for line in text.lines() {
            let record = serde_json::from_str::<serde_json::Value>(line).ok();
            let logged = record.as_ref().and_then(|v| Some((v.get("step")?.as_u64()?, v)));
            match logged {
                Some((s, _)) if s > step => continue,
                Some((s, v)) => history.push(s, v),
                None => {}
            }
            kept.push(line);
        }
        if kept.len() == text.lines().count() {
            return Ok(history);
        }
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, kept.iter().map(|l| format!("{l}\n")).collect::<String>())
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cutting {} back to step {step}", path.display()))?;
        Ok(history)
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_the_history_up_to_the_step() {
        let path = std::env::temp_dir().join(format!("sn-wgpu-metrics-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = MetricsLog::open(&path).unwrap();
        let train = |step: u64, o: f32, s: Option<f32>| TrainRecord {
            step,
            loss: o + s.unwrap_or(0.0),
            loss_objects: Some(o),
            loss_scenes: s,
            loss_classes: None,
            steps_per_s: 1.0,
            samples_per_s: 4.0,
            lr: 1e-3,
        };
        log.write(&train(1, 2.5, Some(1.5))).unwrap();
        log.write(&ValRecord { step: 1, val_loss: 3.0, val_loss_objects: Some(2.0), val_loss_scenes: Some(1.0) })
            .unwrap();
        log.write(&train(2, 0.75, None)).unwrap();
        log.write(&train(3, 0.5, None)).unwrap();
        drop(log);
        let history = MetricsLog::cut_after(&path, 2).unwrap();
        let heads = |objects, scenes| Heads { objects, scenes, classes: None };
        assert_eq!(history.train, [(1, heads(Some(2.5), Some(1.5))), (2, heads(Some(0.75), None))]);
        assert_eq!(history.val, [(1, 3.0)]);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3, "step 3 is cut");
        std::fs::remove_file(&path).unwrap();
    }
}
