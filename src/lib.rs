//! sn-wgpu: SoundNet on any GPU through wgpu, with every kernel written by hand in WGSL.
//!
//! Layers, bottom to top: `gpu` (device, pipelines, dispatch) -> `tensor` (a buffer with a shape)
//! -> `ops` (one file per op: shapes, kernel encoding, the f64 CPU reference) -> `model`
//! (SoundNet's layer tables). `selftest` holds the ops and a whole training step to their
//! references on whatever adapter it is given.

pub mod autograd;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod filters;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod probe;
pub mod profile;
pub mod selftest;
pub mod tensor;
pub mod train;
pub mod units;

pub use gpu::Gpu;
pub use tensor::Tensor;
