//! The profile as a table: one row per (layer, kernel), averaged over the timed steps.

use std::fmt::Write;

use super::{Clock, Profile};
use crate::gpu::Cost;

/// Row order of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// The order the kernels run in.
    Order,
    /// Most time first.
    Time,
}

/// One (layer, kernel) pair, per step.
#[derive(Debug, Clone)]
pub struct Row {
    pub layer: String,
    pub kernel: String,
    pub launches: f64,
    pub nanos: f64,
    pub cost: Cost,
    pub floor_nanos: f64,
}

impl Row {
    /// Whether the floor comes from arithmetic rather than memory traffic.
    fn compute_bound(&self, profile: &Profile) -> bool {
        self.cost.flops / profile.ceilings.gflops > self.cost.bytes / profile.ceilings.gbs
    }
}

impl Profile {
    /// Per-step averages of every (layer, kernel) pair, in the order they first ran.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        for t in self.steps.iter().flatten() {
            let floor = self.ceilings.floor_nanos(&t.info.cost);
            let i = match rows.iter().position(|r| r.layer == t.info.scope && r.kernel == t.info.kernel) {
                Some(i) => i,
                None => {
                    rows.push(Row {
                        layer: t.info.scope.clone(),
                        kernel: t.info.kernel.clone(),
                        launches: 0.0,
                        nanos: 0.0,
                        cost: Cost::default(),
                        floor_nanos: 0.0,
                    });
                    rows.len() - 1
                }
            };
            let r = &mut rows[i];
            r.launches += 1.0;
            r.nanos += t.nanos;
            r.cost = r.cost + t.info.cost;
            r.floor_nanos += floor;
        }
        let steps = self.steps.len() as f64;
        for r in &mut rows {
            r.launches /= steps;
            r.nanos /= steps;
            r.cost = Cost { flops: r.cost.flops / steps, bytes: r.cost.bytes / steps };
            r.floor_nanos /= steps;
        }
        rows
    }

    /// The whole report: what was timed and how, the ceilings, the table and the totals.
    pub fn table(&self, sort: SortBy) -> String {
        let mut rows = self.rows();
        if sort == SortBy::Time {
            rows.sort_by(|a, b| b.nanos.total_cmp(&a.nanos));
        }
        let kernel_nanos: f64 = rows.iter().map(|r| r.nanos).sum();
        let floor_nanos: f64 = rows.iter().map(|r| r.floor_nanos).sum();
        let total = rows.iter().fold(Cost::default(), |a, r| a + r.cost);
        let wall = self.wall_nanos.iter().sum::<f64>() / self.wall_nanos.len() as f64;
        let source = if self.ceilings.measured { "measured with shaders/ceiling.wgsl" } else { "given" };

        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "adapter:  {}", self.adapter);
        let _ = writeln!(w, "workload: {}, mean of {} timed steps", self.workload, self.steps.len());
        let _ = writeln!(w, "timing:   {}", self.clock.describe());
        let _ = writeln!(
            w,
            "ceilings: {:.1} GFLOP/s (FMA), {:.1} GB/s (copy), {source}",
            self.ceilings.gflops, self.ceilings.gbs
        );
        let _ = writeln!(
            w,
            "floor:    a kernel needs at least max(FLOP / peak FLOP/s, bytes / peak bandwidth); x floor = measured / floor\n"
        );
        let _ = writeln!(
            w,
            "{:<20} {:<28} {:>4} {:>10} {:>6} {:>9} {:>9} {:>9} {:>8} {:>10} {:>8} {:>5}",
            "layer",
            "kernel",
            "runs",
            "ms/step",
            "share",
            "MFLOP",
            "MB",
            "GFLOP/s",
            "GB/s",
            "floor ms",
            "x floor",
            "bound"
        );
        for r in &rows {
            let _ = writeln!(
                w,
                "{:<20} {:<28} {:>4} {:>10.3} {:>5.1}% {:>9.1} {:>9.2} {:>9.2} {:>8.2} {:>10.4} {:>8.1} {:>5}",
                if r.layer.is_empty() { "-" } else { &r.layer },
                r.kernel,
                r.launches.round(),
                r.nanos / 1e6,
                100.0 * r.nanos / kernel_nanos,
                r.cost.flops / 1e6,
                r.cost.bytes / 1e6,
                r.cost.flops / r.nanos,
                r.cost.bytes / r.nanos,
                r.floor_nanos / 1e6,
                r.nanos / r.floor_nanos.max(1e-9),
                if r.compute_bound(self) { "FLOP" } else { "mem" },
            );
        }
        let _ = writeln!(
            w,
            "\ntotal:    {:.3} ms of kernels per step ({} launches), {:.1} GFLOP and {:.1} MB at least",
            kernel_nanos / 1e6,
            rows.iter().map(|r| r.launches).sum::<f64>().round(),
            total.flops / 1e9,
            total.bytes / 1e6
        );
        let _ = writeln!(
            w,
            "          {:.2} GFLOP/s over the kernels; floor {:.3} ms, so {:.1}x from the device's limits",
            total.flops / kernel_nanos,
            floor_nanos / 1e6,
            kernel_nanos / floor_nanos.max(1e-9)
        );
        let per_second = 1e9 / wall;
        let _ = writeln!(
            w,
            "wall:     {:.3} ms per step (CPU clock, submission to completion{}), {:.2} clips/s",
            wall / 1e6,
            if self.clock == Clock::CpuWall { ", one submission per kernel" } else { ", one submission" },
            self.clips as f64 * per_second
        );
        let _ = writeln!(
            w,
            "host:     {:.3} ms per step outside the kernels (wall - kernels: upload, submission, readback), {:.1}% of the step",
            (wall - kernel_nanos).max(0.0) / 1e6,
            100.0 * (wall - kernel_nanos).max(0.0) / wall
        );
        if self.choices.iter().any(|c| !c.choice.nanos.is_empty()) {
            let _ = writeln!(
                w,
                "
conv kernels, as measured on this adapter (ms per pass; * chosen; sn-wgpu tune):"
            );
            out += &crate::model::tune::table(&self.choices);
        }
        out
    }
}
