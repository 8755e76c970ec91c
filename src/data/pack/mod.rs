//! Packed shards: a dataset decoded once, so that serving a clip is a copy out of a memory map
//! instead of a decode. `sn-wgpu pack` writes them (`writer`), `train --data` reads them
//! (`dataset`) like any dataset folder.
//!
//! A pack is a folder:
//! - `pack.json` ([`PackIndex`]): the teachers' widths, the shards with their item counts and
//!   sizes, the items left out when packing. It is written last, so a folder without it is an
//!   unfinished pack.
//! - `shard-NNNNN.pack`, each a few hundred MB to a few GB (`pack --shard-mb`). Its layout, all
//!   little-endian (`format`):
//!   - a 16-byte header: the magic `SNWGPACK`, the format version (u32) and 4 zero bytes;
//!   - the items back to back, each a 32-byte item header, its source's name (UTF-8), its clip as
//!     int16 at 22,050 Hz (the network's [-256, 256] times 128, so 16-bit sources are exact), and
//!     its teacher rows as float32 `[rows, classes]`, objects then scenes, every part padded to
//!     4 bytes. The header holds the lengths and a CRC-32 of everything after it, checked each
//!     time the item is served: a flipped bit is an error naming the shard and the offset, never
//!     a wrong clip.
//!   - the index: one u64 offset per item;
//!   - a 16-byte footer: the index's offset (u64) and the magic `SNWGPEND`. A shard cut short
//!     has no footer; under `--skip-bad` its whole items are found again by walking the headers.
//! - `skipped.txt`: the items left out when packing (`--skip-bad`), one per line with the reason.
//! - `pack-progress.json`, while packing: how far it got, saved as each shard closes, so that the
//!   same command after a stop continues after the last closed shard.

pub mod dataset;
pub mod format;
pub mod writer;

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::Heads;

pub use dataset::PackedDataset;
pub use writer::{PackItem, PackProgress, PackWriter};

/// The file whose presence makes a folder a finished pack.
pub const INDEX: &str = "pack.json";
/// How far an unfinished pack got, so that it continues from there.
pub const PROGRESS: &str = "pack-progress.json";
/// Where the items left out when packing are listed.
pub const SKIPPED: &str = "skipped.txt";
/// What `pack.json`'s `format` field says, so another JSON file is not taken for one.
pub const FORMAT_NAME: &str = "sn-wgpu packed shards";

/// `pack.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackIndex {
    pub format: String,
    pub version: u32,
    pub sample_rate: u32,
    /// The width of each teacher's rows (None: the pack has no rows for it).
    pub objects: Option<usize>,
    pub scenes: Option<usize>,
    pub items: u64,
    pub shards: Vec<ShardEntry>,
    /// Items of the sources left out (`--skip-bad`), listed in `skipped.txt`.
    pub skipped: u64,
    /// The folders packed, as given.
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub file: String,
    pub items: u64,
    pub bytes: u64,
}

impl PackIndex {
    pub fn classes(&self) -> Heads<Option<usize>> {
        Heads { objects: self.objects, scenes: self.scenes, classes: None }
    }

    /// Reads `dir/pack.json`, refusing another format or version by name.
    pub fn read(dir: &Path) -> Result<PackIndex> {
        let path = dir.join(INDEX);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let index: PackIndex = serde_json::from_str(&text).with_context(|| {
            format!("{}: not a pack index (expected the pack.json sn-wgpu pack writes)", path.display())
        })?;
        anyhow::ensure!(
            index.format == FORMAT_NAME && index.version == format::VERSION,
            "{}: format `{}` version {}, but this sn-wgpu reads `{FORMAT_NAME}` version {}",
            path.display(),
            index.format,
            index.version,
            format::VERSION
        );
        Ok(index)
    }
}

/// Whether `dir` is a pack rather than a dataset folder.
pub fn is_pack(dir: &Path) -> bool {
    dir.join(INDEX).is_file()
}
