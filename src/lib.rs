//! sn-wgpu: SoundNet on any GPU through wgpu, with every kernel written by hand in WGSL.
//!
//! Layers, bottom to top; each uses only those below it (`kernels-tests/layers.rs` checks it):
//! `gpu` (device, pipelines, dispatch, `Tensor`)
//! -> `autograd` (the tape: values, gradients, order, accumulation; it knows no op) -> `ops` (one
//! module per op: its shapes, kernels and their bindings, its `Tape` method and backward node, its
//! f64 reference) -> `model` (SoundNet's layer tables and weights) -> `data` (audio, datasets,
//! batches), `optim` (Adam) -> `train`, `eval`, `probe`, `filters`, `units`, `profile`, `selftest` (the commands).
//! `checkpoint`, `out_folder` and `plot` stand alone.

pub mod autograd;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod filters;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod optim;
pub mod out_folder;
pub mod plot;
pub mod probe;
pub mod profile;
pub mod selftest;
pub mod train;
pub mod units;

pub use gpu::{Gpu, Tensor};
