//! One file per op. Each has the op's shape rules, `encode_*` functions that record its kernels
//! into a caller's command encoder (no submission, no readback), and a `reference` module: the
//! same math in plain f64 on the CPU, which is what the tests hold the GPU to.

pub mod adam;
pub mod batchnorm;
pub mod bn_relu_pool;
pub mod conv1d;
pub mod maxpool1d;
pub mod relu;
pub mod teacher_loss;

use crate::gpu::Shader;

/// Every shader the ops run, in the order the data flows through a training step (the profiler's
/// `ceiling.wgsl` is `profile::CEILING_SHADER`). The tests translate and reflect each of them.
pub const SHADERS: &[&Shader] = &[
    &conv1d::PLAIN_SHADER,
    &conv1d::tiled::SHADER,
    &conv1d::cpu::SHADER,
    &batchnorm::SHADER,
    &relu::SHADER,
    &maxpool1d::SHADER,
    &bn_relu_pool::SHADER,
    &bn_relu_pool::CPU_SHADER,
    &teacher_loss::SHADER,
    &adam::SHADER,
];
