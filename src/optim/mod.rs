//! Optimizers over the model's parameter tensors.

pub mod adam;

pub use adam::Adam;
