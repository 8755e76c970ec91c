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
    pub loss: f32,
    pub loss_objects: f32,
    pub loss_scenes: f32,
    pub steps_per_s: f64,
    pub samples_per_s: f64,
    pub lr: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValRecord {
    pub step: u64,
    pub val_loss: f32,
    pub val_loss_objects: f32,
    pub val_loss_scenes: f32,
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

    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }
}
