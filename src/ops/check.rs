//! How a kernel's output is held to its f64 reference on the device at hand: `Check`, the
//! relative error `||out - ref|| / ||ref||` against a tolerance, and `Lab`, a seeded stream of N(0, 1)
//! inputs with NaN-poisoned outputs, so a failure comes back the same run after run and an element a
//! kernel leaves unwritten fails. Each op's `selftest` module uses them for `sn-wgpu selftest`;
//! the kernel tests in `tests/` hold the kernels to the same bounds on many more shapes.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::gpu::{Gpu, Tensor};

/// The bounds the kernel checks hold every forward and backward output to.
pub const FORWARD: f64 = 1e-5;
pub const BACKWARD: f64 = 1e-4;

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

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The device, and a seeded stream of N(0, 1) inputs.
pub struct Lab<'g> {
    pub gpu: &'g Gpu,
    rng: StdRng,
}

impl<'g> Lab<'g> {
    pub fn new(gpu: &'g Gpu, seed: u64) -> Lab<'g> {
        Lab { gpu, rng: StdRng::seed_from_u64(seed) }
    }

    /// `n` samples of N(0, 1).
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect()
    }

    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(self.gpu, data, shape, "selftest input")
    }

    /// An output filled with NaN, so any element the kernel leaves unwritten fails its check.
    pub fn poisoned(&self, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::zeros(self.gpu, shape, "selftest output")?;
        t.poison(self.gpu);
        Ok(t)
    }

    /// Records work with `f` into one encoder and submits it.
    pub fn run(&self, f: impl FnOnce(&Gpu, &mut wgpu::CommandEncoder) -> Result<()>) -> Result<()> {
        let mut encoder = self.gpu.encoder("selftest");
        f(self.gpu, &mut encoder)?;
        self.gpu.submit(encoder);
        Ok(())
    }

    pub fn read(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.read(self.gpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
