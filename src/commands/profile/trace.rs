//! One profiled step as a Chrome trace (the JSON "Trace Event Format"), which chrome://tracing and
//! https://ui.perfetto.dev open: one complete event per kernel on a single GPU track, named by
//! kernel, grouped by layer, with its minimum work in the event's arguments.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use super::Profile;

impl Profile {
    /// The first timed step as trace JSON. Times are microseconds from the step's first kernel.
    pub fn trace_json(&self) -> Result<serde_json::Value> {
        let step = self.steps.first().context("no timed step to trace")?;
        let mut events = vec![
            json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": self.adapter}}),
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": self.workload}}),
        ];
        for t in step {
            ensure!(t.nanos.is_finite() && t.start_nanos.is_finite(), "{} has no valid time", t.info.kernel);
            events.push(json!({
                "name": t.info.kernel,
                "cat": if t.info.scope.is_empty() { "-" } else { &t.info.scope },
                "ph": "X",
                "pid": 1,
                "tid": 1,
                "ts": t.start_nanos / 1e3,
                "dur": t.nanos / 1e3,
                "args": {
                    "layer": t.info.scope,
                    "GFLOP": t.info.cost.flops / 1e9,
                    "MB": t.info.cost.bytes / 1e6,
                    "floor_us": self.ceilings.floor_nanos(&t.info.cost) / 1e3,
                },
            }));
        }
        Ok(json!({"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"clock": self.clock.describe()}}))
    }

    pub fn write_trace(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(&self.trace_json()?)?;
        crate::out_folder::write_file(path, "--trace", |path| {
            std::fs::write(path, text).with_context(|| format!("writing the trace to {}", path.display()))
        })
    }
}
