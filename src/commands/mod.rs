//! The commands built on the core: inference and teaching (`eval`), the paper's probe, the conv1
//! filter chart, the unit pages, the profiler, the self-test, the importer of the paper's data and
//! the packer of datasets. `sn-wgpu train` is the core's own (`crate::train`).

pub mod eval;
pub mod filters;
pub mod import_soundnet;
pub mod pack;
pub mod probe;
pub mod profile;
pub mod selftest;
pub mod units;
