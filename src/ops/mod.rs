//! One file per op. Each has the op's shape rules, `encode_*` functions that record its kernels
//! into a caller's command encoder (no submission, no readback), and a `reference` module: the
//! same math in plain f64 on the CPU, which is what the tests hold the GPU to.

pub mod adam;
pub mod batchnorm;
pub mod bn_relu_pool;
pub mod conv1d;
pub mod conv1d_cpu;
pub mod conv1d_tiled;
pub mod kl_div;
pub mod maxpool1d;
pub mod relu;
pub mod softmax;
