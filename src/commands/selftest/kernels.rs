//! One check per output of each kernel family, on a few small shapes with random inputs from a
//! fixed seed, every output poisoned with NaN first so an element a kernel leaves unwritten fails.
//! Families mirror `src/ops/`; each runs what this adapter runs (the CPU-shaped batchnorm and Adam
//! kernels on a CPU adapter, the GPU ones elsewhere) and every conv kernel it can.

mod adam;
mod batchnorm;
mod bn_relu_pool;
mod conv1d;
mod lab;
mod maxpool1d;
mod relu;
mod teacher_loss;

use anyhow::{Context, Result};

use super::Check;
use crate::gpu::Gpu;

/// The bounds the kernel tests hold every forward and backward output to.
const FORWARD: f64 = 1e-5;
const BACKWARD: f64 = 1e-4;

/// Runs one family's checks.
type FamilyChecks = fn(&Gpu) -> Result<Vec<Check>>;

/// The checks of the family `name` (of `ops::FAMILIES`).
fn checks_of(name: &str) -> Option<FamilyChecks> {
    Some(match name {
        "conv1d" => conv1d::checks,
        "bn_relu_pool" => bn_relu_pool::checks,
        "batchnorm" => batchnorm::checks,
        "relu" => relu::checks,
        "maxpool1d" => maxpool1d::checks,
        "teacher_loss" => teacher_loss::checks,
        "adam" => adam::checks,
        _ => return None,
    })
}

/// Every family's checks on `gpu`, in the order of `ops::FAMILIES`; an error names the family
/// that could not run, or that has no checks here.
pub fn kernel_checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for family in crate::ops::FAMILIES {
        let run = checks_of(family.name).with_context(|| format!("no selftest of the {} kernels", family.name))?;
        checks.extend(run(gpu).with_context(|| format!("selftest of the {} kernels", family.name))?);
    }
    Ok(checks)
}
