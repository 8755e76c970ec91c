//! One folder per op. Each has the op's shape rules, `encode_*` functions that record its kernels
//! into a caller's command encoder (no submission, no readback), a `reference` module (the same
//! math in plain f64 on the CPU, which is what the tests hold the GPU to) and `selftest.rs`, its
//! outputs held to that reference on the adapter at hand (`check`).

pub mod adam;
pub mod batchnorm;
pub mod bn_relu_pool;
pub mod check;
pub mod conv1d;
pub mod maxpool1d;
pub mod relu;
pub mod teacher_loss;

use anyhow::Result;

use crate::gpu::{Gpu, Shader};

/// One family of kernels: an op and its shaders, by the name that its tests
/// (`tests/<name>.rs`), its self-test (`sn-wgpu selftest`), its benchmarks and its PyTorch
/// fixtures go by.
pub struct Family {
    pub name: &'static str,
    pub shaders: &'static [&'static Shader],
    /// Its golden fixtures, `tests/fixtures/<fixture>.safetensors`, each made by
    /// `tools/fixtures/<fixture>.py` (or the module `tools/make_fixtures.py` names for it).
    pub fixtures: &'static [&'static str],
    /// Its outputs against its f64 reference on a few small shapes, on the adapter at hand: its
    /// part of `sn-wgpu selftest` (`<op>/selftest.rs`).
    pub selftest: fn(&Gpu) -> Result<Vec<check::Check>>,
}

/// Every op, in the order the data flows through a training step: the one list that the binding
/// and translation tests, the self-test, the fixture check and the kernel benchmarks go through,
/// so none of them can leave an op out.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "conv1d",
        shaders: &[&conv1d::PLAIN_SHADER, &conv1d::tiled::SHADER, &conv1d::cpu::SHADER],
        fixtures: &["conv1d"],
        selftest: conv1d::selftest::checks,
    },
    Family {
        name: "batchnorm",
        shaders: &[&batchnorm::SHADER],
        fixtures: &["batchnorm"],
        selftest: batchnorm::selftest::checks,
    },
    Family { name: "relu", shaders: &[&relu::SHADER], fixtures: &["relu"], selftest: relu::selftest::checks },
    Family {
        name: "maxpool1d",
        shaders: &[&maxpool1d::SHADER],
        fixtures: &["maxpool1d"],
        selftest: maxpool1d::selftest::checks,
    },
    Family {
        name: "bn_relu_pool",
        shaders: &[&bn_relu_pool::SHADER, &bn_relu_pool::CPU_SHADER],
        fixtures: &["bn_relu_pool"],
        selftest: bn_relu_pool::selftest::checks,
    },
    Family {
        name: "teacher_loss",
        shaders: &[&teacher_loss::SHADER],
        fixtures: &["kl_div", "l2_prob", "cross_entropy"],
        selftest: teacher_loss::selftest::checks,
    },
    Family { name: "adam", shaders: &[&adam::SHADER], fixtures: &["adam"], selftest: adam::selftest::checks },
];

/// Every shader the ops run, family by family (the profiler's `ceiling.wgsl` is
/// `profile::CEILING_SHADER`).
pub fn shaders() -> impl Iterator<Item = &'static Shader> {
    FAMILIES.iter().flat_map(|f| f.shaders.iter().copied())
}
