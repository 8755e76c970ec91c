//! placeholder: being written
mod common;
