//! `sn-wgpu selftest`: every kernel family on the adapter at hand against its f64 CPU reference,
//! and two whole training steps against PyTorch, as a report a user can run on their own GPU (as
//! ggml's test-backend-ops). The kernel tests in `tests/` check far more shapes; this is the
//! part of them that answers "does this device compute what the tests computed on ours?".

mod fixture;
mod kernels;
pub mod real_shapes;
mod step;

use std::fmt::Write;

use anyhow::Result;

pub use fixture::Fixture;
pub use kernels::kernel_checks;
pub use step::training_step_checks;

use crate::gpu::Gpu;
pub use crate::ops::check::{rel_err, to_f64, Check};
use crate::ops::conv1d::selftest::{forced_conv_kernels, kernel_name};
use crate::ops::conv1d::ConvKernel;

/// Every check of one selftest run, and the adapter it ran on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub adapter: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed()).count()
    }

    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// The adapter, a Markdown table of the checks and the verdict.
    pub fn text(&self) -> String {
        let mut s = format!("adapter: {}\n\n", self.adapter);
        s.push_str("| check | relative error | tolerance | result |\n| --- | --- | --- | --- |\n");
        for c in &self.checks {
            let result = if c.passed() { "ok" } else { "FAILED" };
            let tolerance = if c.tolerance == 0.0 { "exact".to_string() } else { format!("{:.0e}", c.tolerance) };
            let _ = writeln!(s, "| {} | {:.2e} | {tolerance} | {result} |", c.what, c.error);
        }
        let _ = writeln!(s, "\n{}", self.verdict());
        s
    }

    /// One line: how many checks passed, or how many failed, and where.
    pub fn verdict(&self) -> String {
        match self.failed() {
            0 => format!("selftest: {} checks passed on {}", self.checks.len(), self.adapter),
            n => format!("selftest: {n} of {} checks FAILED on {}", self.checks.len(), self.adapter),
        }
    }
}

/// Every kernel family against its reference, then the training step against PyTorch with each
/// choice of convolution kernels the adapter can run.
pub fn run(gpu: &Gpu) -> Result<Report> {
    let mut checks = kernel_checks(gpu)?;
    for kernel in [ConvKernel::Auto].into_iter().chain(forced_conv_kernels(gpu)) {
        checks.extend(training_step_checks(gpu, kernel)?);
    }
    Ok(Report { adapter: gpu.describe(), checks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_error_fails_and_is_counted() {
        let nan = Check { what: "nan".into(), error: f64::NAN, tolerance: 1e-5 };
        let ok = Check::compare("ok", &[1.0, 2.0], &[1.0, 2.0], 1e-5);
        assert!(!nan.passed());
        assert!(ok.passed());
        let report = Report { adapter: "test".into(), checks: vec![ok, nan] };
        assert_eq!(report.failed(), 1);
        assert!(report.verdict().contains("1 of 2 checks FAILED"), "{}", report.verdict());
        assert!(report.text().contains("| nan | NaN | 1e-5 | FAILED |"), "{}", report.text());
    }

    #[test]
    fn json_says_whether_each_check_passed() {
        let report = Report {
            adapter: "test".into(),
            checks: vec![Check::compare("ok", &[1.0], &[1.0], 1e-5), Check::compare("nan", &[f32::NAN], &[1.0], 1e-5)],
        };
        let v: serde_json::Value = serde_json::from_str(&report.json().unwrap()).unwrap();
        assert_eq!(v["adapter"], "test");
        assert_eq!(v["checks"][0]["passed"], true);
        assert_eq!(v["checks"][1]["passed"], false);
        assert!(v["checks"][1]["error"].is_null(), "infinity has no JSON number");
    }
}
