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
type Family = fn(&Gpu) -> Result<Vec<Check>>;

/// Every family's checks on `gpu`; an error names the family that could not run.
pub fn kernel_checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let families: [(&str, Family); 7] = [
        ("conv1d", conv1d::checks),
        ("bn_relu_pool", bn_relu_pool::checks),
        ("batchnorm", batchnorm::checks),
        ("relu", relu::checks),
        ("maxpool1d", maxpool1d::checks),
        ("teacher_loss", teacher_loss::checks),
        ("adam", adam::checks),
    ];
    let mut checks = Vec::new();
    for (name, family) in families {
        checks.extend(family(gpu).with_context(|| format!("selftest of the {name} kernels"))?);
    }
    Ok(checks)
}
