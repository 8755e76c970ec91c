//! `metrics.jsonl`: one JSON object per line, appended as steps complete, so a run can be followed
//! with `tail -f` and reloaded by any tool.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

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
    /// trains those steps again). Lines that are not JSON with a step are kept; a missing file is
    /// left missing.
    pub fn cut_after(path: &Path, step: u64) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
        let logged_after = |line: &str| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s > step)
        };
        let kept: Vec<&str> = text.lines().filter(|line| !logged_after(line)).collect();
        if kept.len() == text.lines().count() {
            return Ok(());
        }
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, kept.iter().map(|l| format!("{l}\n")).collect::<String>())
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cutting {} back to step {step}", path.display()))
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }
}
