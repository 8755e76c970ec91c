//! SoundNet-8 and SoundNet-5 described as data.

pub mod arch;
pub mod params;

pub use arch::{soundnet5, soundnet8, Arch, ConvLayer, Head};
