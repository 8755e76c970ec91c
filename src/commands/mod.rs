//! The commands built on the core: inference and teaching (`eval`), the paper's probe, the conv1
//! filter chart, the unit pages, the profiler and the self-test. `sn-wgpu train` is the core's own
//! (`crate::train`).

pub mod eval;
pub mod filters;
pub mod import_soundnet;
pub mod probe;
pub mod profile;
pub mod selftest;
pub mod units;
