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
use serde::ser::{Serialize, SerializeStruct, Serializer};

pub use fixture::Fixture;
pub use kernels::kernel_checks;
pub use step::training_step_checks;

use crate::gpu::Gpu;
use crate::ops::conv1d::cpu;
use crate::ops::conv1d::ConvKernel;

/// One output of one kernel (or of the training step) against its reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub what: String,
    /// Relative error (see [`rel_err`]); infinite when the output holds a NaN or infinity.
    pub error: f64,
    pub tolerance: f64,
}

impl Check {
    /// `out` against `reference` by [`rel_err`].
    pub fn compare(what: impl Into<String>, out: &[f32], reference: &[f64], tolerance: f64) -> Check {
        Check { what: what.into(), error: rel_err(out, reference), tolerance }
    }

    /// Outputs that must match exactly (max-pool argmax indices, values a kernel must leave alone):
    /// error 0 when they do, else infinite.
    pub fn exact<T: PartialEq>(what: impl Into<String>, out: &[T], reference: &[T]) -> Check {
        let error = if out == reference { 0.0 } else { f64::INFINITY };
        Check { what: what.into(), error, tolerance: 0.0 }
    }

    /// Within tolerance; a NaN error never is.
    pub fn passed(&self) -> bool {
        self.error <= self.tolerance
    }
}

/// `passed` goes into the JSON with the fields; serde_json writes an infinite or NaN error as null.
impl Serialize for Check {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Check", 4)?;
        s.serialize_field("what", &self.what)?;
        s.serialize_field("error", &self.error)?;
        s.serialize_field("tolerance", &self.tolerance)?;
        s.serialize_field("passed", &self.passed())?;
        s.end()
    }
}

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

/// The conv kernels that can be forced on `gpu`: plain and tiled anywhere, cpu where the adapter
/// has subgroup operations.
fn forced_conv_kernels(gpu: &Gpu) -> Vec<ConvKernel> {
    let mut kernels = vec![ConvKernel::Plain, ConvKernel::Tiled];
    if cpu::available(gpu) {
        kernels.push(ConvKernel::Cpu);
    }
    kernels
}

/// The name `--conv-kernel` takes for `kernel`.
fn kernel_name(kernel: ConvKernel) -> String {
    format!("{kernel:?}").to_lowercase()
}

/// `||out - ref|| / ||ref||`; infinite when `out` holds a NaN or infinity. When the reference is
/// all zeros, the absolute norm of the difference. Panics when the lengths differ (a caller's
/// mistake, not the device's).
pub fn rel_err(out: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(out.len(), reference.len(), "output has {} values, reference {}", out.len(), reference.len());
    if out.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff: f64 = out.iter().zip(reference).map(|(&o, &r)| (f64::from(o) - r).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = reference.iter().map(|r| r * r).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
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
    fn non_finite_outputs_and_zero_references() {
        assert_eq!(rel_err(&[1.0, f32::NAN], &[1.0, 1.0]), f64::INFINITY);
        assert_eq!(rel_err(&[f32::INFINITY], &[1.0]), f64::INFINITY);
        assert_eq!(rel_err(&[3.0, 4.0], &[0.0, 0.0]), 5.0);
        assert!((rel_err(&[1.0, 1.0], &[1.0, 0.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn argmax_must_match_exactly() {
        assert!(Check::exact("same", &[1u32, 2], &[1, 2]).passed());
        assert!(!Check::exact("off by one", &[1u32, 2], &[1, 3]).passed());
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
