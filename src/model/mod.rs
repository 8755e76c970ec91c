//! SoundNet-8 and SoundNet-5 described as data.

pub mod arch;

pub use arch::{Arch, ConvLayer, Head, SOUNDNET5, SOUNDNET8};
