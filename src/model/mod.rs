//! SoundNet-8 and SoundNet-5 described as data, their parameters, and their forward pass.

pub mod arch;
pub mod heads;
pub mod network;
pub mod params;
pub mod probabilities;
pub mod tune;

pub use arch::{soundnet5, soundnet8, Arch, ConvLayer, Head};
pub use heads::{HeadKind, Heads};
pub use network::{Fusion, Model, Outputs};
