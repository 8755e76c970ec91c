//! PyTorch fixtures (`tests/fixtures/NAME.safetensors`, written by
//! `tools/make_fixtures.py`): named f32 tensors plus string metadata. They are safetensors files of
//! the same kind as checkpoints, so `Checkpoint` parses them; this adds lookups that name the
//! fixture when something is missing.

use std::str::FromStr;

use anyhow::{Context, Result};

use crate::checkpoint::Checkpoint;

pub struct Fixture {
    pub name: String,
    contents: Checkpoint,
}

impl Fixture {
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Fixture> {
        let contents = Checkpoint::from_bytes(bytes).with_context(|| format!("fixture {name}"))?;
        Ok(Fixture { name: name.to_string(), contents })
    }

    /// A tensor's values and shape.
    pub fn tensor(&self, key: &str) -> Result<(&[f32], &[usize])> {
        let (shape, values) =
            self.contents.tensors.get(key).with_context(|| format!("fixture {}: no tensor {key}", self.name))?;
        Ok((values, shape))
    }

    /// A metadata value, parsed (a stride, a learning rate, a list of clips).
    pub fn meta<T: FromStr>(&self, key: &str) -> Result<T> {
        let s = self.contents.metadata.get(key).with_context(|| format!("fixture {}: no metadata {key}", self.name))?;
        s.parse().ok().with_context(|| format!("fixture {}: metadata {key}={s} does not parse", self.name))
    }

    /// The case prefixes (`case0`, `case1`, ...) listed in the metadata key `cases`.
    pub fn cases(&self) -> Vec<String> {
        self.contents.metadata.get("cases").map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default()
    }
}
