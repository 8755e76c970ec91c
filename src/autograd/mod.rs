//! Reverse-mode differentiation over GPU tensors: a tape of ops, replayed backwards.

pub mod tape;

pub use tape::{BnMode, ConvSpec, RunningStats, Tape, Var};
