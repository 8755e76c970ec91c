//! sn-wgpu: SoundNet on any GPU through wgpu, with every kernel written by hand in WGSL.
//!
//! The folders show the layers. The core, which one training step flows through, bottom to top
//! (each uses only those below it; `tests/layers.rs` checks it):
//! `gpu` (device, pipelines, dispatch, `Tensor`)
//! -> `autograd` (the tape: values, gradients, order, accumulation; it knows no op) -> `ops` (one
//! module per op: its shapes, kernels and their bindings, its `Tape` method and backward node, its
//! f64 reference) -> `model` (SoundNet's layer tables and weights) -> `data` (audio, datasets,
//! batches), `optim` (Adam) -> `train` (the step and the loop of `sn-wgpu train`).
//! `checkpoint`, `out_folder` and `plot` stand alone. On top of the core, `commands/` holds the
//! other commands: `eval` (predict, extract, teach), `probe`, `filters`, `units`, `profile`,
//! `selftest` and `import_soundnet` (the authors' released training set as dataset folders),
//! re-exported here by name.

pub mod autograd;
pub mod checkpoint;
pub mod commands;
pub mod data;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod optim;
pub mod out_folder;
pub mod plot;
pub mod train;

pub use commands::{eval, filters, import_soundnet, pack, probe, profile, selftest, units};
pub use gpu::{Gpu, Tensor};
