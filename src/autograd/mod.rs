//! Reverse-mode differentiation over GPU tensors: a tape of ops, replayed backwards. The ops
//! themselves (their `Tape` methods and backward nodes) live in `src/ops/`.

pub mod tape;

pub use tape::{Backward, Tape, Var};
