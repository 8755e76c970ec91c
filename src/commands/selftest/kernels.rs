//! One check per output of each kernel family, on a few small shapes with random inputs from a
//! fixed seed, every output poisoned with NaN first so an element a kernel leaves unwritten fails.
//! Each family's checks live beside its op (`src/ops/<op>/selftest.rs`); each runs what this
//! adapter runs (the CPU-shaped batchnorm and Adam kernels on a CPU adapter, the GPU ones
//! elsewhere) and every conv kernel it can.

use anyhow::{Context, Result};

use super::Check;
use crate::gpu::Gpu;

/// Every family's checks on `gpu`, in the order of `ops::FAMILIES`; an error names the family
/// that could not run.
pub fn kernel_checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for family in crate::ops::FAMILIES {
        checks.extend((family.selftest)(gpu).with_context(|| format!("selftest of the {} kernels", family.name))?);
    }
    Ok(checks)
}
