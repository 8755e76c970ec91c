//! Writing a pack: items appended to the current shard until it reaches its size, then the
//! shard's index and footer, then `pack.json` last (atomically), so that only a finished pack
//! opens. Every file is claimed in the pack's [`OutFolder`] before it is written. After each shard
//! closes, the caller saves a [`PackProgress`] (`pack-progress.json`, atomically): a stopped pack
//! continues from there, keeping its closed shards.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use super::format::{self, ItemHeader, TableShape};
use super::{PackIndex, ShardEntry, FORMAT_NAME, INDEX, PROGRESS, SKIPPED};
use crate::data::{Problem, SAMPLE_RATE};
use crate::model::Heads;
use crate::out_folder::OutFolder;

/// One clip to pack: its source (for messages), its samples in the network's scale, and its
/// teacher rows, row-major `[rows, width]` (empty for a teacher the pack has not).
#[derive(Debug, Clone, PartialEq)]
pub struct PackItem {
    pub name: String,
    pub clip: Vec<f32>,
    pub objects: Vec<f32>,
    pub scenes: Vec<f32>,
}

/// How far a pack got: saved after each shard closes, removed when `pack.json` is written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PackProgress {
    /// The folders being packed and the shard size, as given: a pack continues only with these.
    pub sources: Vec<String>,
    pub shard_bytes: u64,
    pub objects: Option<usize>,
    pub scenes: Option<usize>,
    /// The first item's source, which the teachers' widths came from.
    pub first_item: String,
    /// Manifest rows (counted over all the folders, in order) written or left out so far.
    pub rows_done: u64,
    pub samples: u64,
    pub shards: Vec<ShardEntry>,
    pub skipped: Vec<Problem>,
}

impl PackProgress {
    /// The CRC-32 of the progress as compact JSON: a progress file that still parses after a
    /// change (a row count one off would lose or repeat rows) is caught by it.
    fn crc32(&self) -> u32 {
        crc32fast::hash(serde_json::to_string(self).expect("progress serialises").as_bytes())
    }

    /// The progress in a file's text, when it parses and its CRC-32 matches.
    pub fn parse(text: &str) -> Option<PackProgress> {
        let saved: SavedProgress = serde_json::from_str(text).ok()?;
        (saved.progress.crc32() == saved.crc32).then_some(saved.progress)
    }

    /// The file's text, as [`PackWriter::save_progress`] writes it.
    pub fn to_file_text(&self) -> String {
        let saved = SavedProgress { crc32: self.crc32(), progress: self.clone() };
        serde_json::to_string_pretty(&saved).expect("progress serialises")
    }
}

/// `pack-progress.json`: the progress and its CRC-32.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedProgress {
    crc32: u32,
    progress: PackProgress,
}

pub struct PackWriter<'a> {
    folder: &'a mut OutFolder,
    classes: Heads<Option<usize>>,
    shard_bytes: u64,
    current: Option<OpenShard>,
    shards: Vec<ShardEntry>,
    body: Vec<u8>,
}

struct OpenShard {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    offsets: Vec<u64>,
    at: u64,
}

pub fn shard_name(k: usize) -> String {
    format!("shard-{k:05}.pack")
}

impl<'a> PackWriter<'a> {
    /// A writer of shards of about `shard_bytes` each (a shard closes after the item that takes it
    /// past that), whose items carry rows of the teachers in `classes`.
    pub fn new(folder: &'a mut OutFolder, classes: Heads<Option<usize>>, shard_bytes: u64) -> PackWriter<'a> {
        Self::after(folder, classes, shard_bytes, Vec::new())
    }

    /// A writer that goes on after the closed shards `shards` of a stopped pack.
    pub fn after(
        folder: &'a mut OutFolder,
        classes: Heads<Option<usize>>,
        shard_bytes: u64,
        shards: Vec<ShardEntry>,
    ) -> PackWriter<'a> {
        PackWriter { folder, classes, shard_bytes: shard_bytes.max(1), current: None, shards, body: Vec::new() }
    }

    /// The shards closed so far.
    pub fn shards(&self) -> &[ShardEntry] {
        &self.shards
    }

    /// Saves how far the pack got (after a shard closed).
    pub fn save_progress(&mut self, progress: &PackProgress) -> Result<()> {
        let tmp = format!("{PROGRESS}.tmp");
        let paths = self.folder.claim(&[tmp.as_str(), PROGRESS])?;
        let json = progress.to_file_text();
        std::fs::write(&paths[0], json)
            .and_then(|()| std::fs::rename(&paths[0], &paths[1]))
            .with_context(|| format!("writing {}", paths[1].display()))
    }

    /// Appends `item`; true when it closed a shard.
    pub fn add(&mut self, item: &PackItem) -> Result<bool> {
        ensure!(!item.clip.is_empty(), "{}: an empty clip cannot be packed", item.name);
        let shape = |rows: &[f32], width: Option<usize>, what: &str| -> Result<TableShape> {
            let width = width.unwrap_or(0);
            ensure!(
                (width == 0 && rows.is_empty()) || (width > 0 && !rows.is_empty() && rows.len().is_multiple_of(width)),
                "{}: {} {what} values are not whole rows of {width}",
                item.name,
                rows.len()
            );
            let rows = rows.len().checked_div(width).unwrap_or(0);
            Ok(TableShape { rows: u32::try_from(rows)?, width: u32::try_from(width)? })
        };
        let objects = shape(&item.objects, self.classes.objects, "objects")?;
        let scenes = shape(&item.scenes, self.classes.scenes, "scenes")?;
        let samples = u32::try_from(item.clip.len()).context("a clip of more than 4 billion samples")?;
        let name = item.name.as_bytes();
        let name_len = u32::try_from(name.len())?;
        self.body.clear();
        self.body.extend_from_slice(name);
        self.body.resize(format::pad4(name.len() as u64) as usize, 0);
        format::encode_clip(&item.clip, &mut self.body);
        self.body.resize(format::pad4(self.body.len() as u64) as usize, 0);
        for v in item.objects.iter().chain(&item.scenes) {
            self.body.extend_from_slice(&v.to_le_bytes());
        }
        let header = ItemHeader { samples, name_len, objects, scenes, crc: crc32fast::hash(&self.body) };
        debug_assert_eq!(header.body_len(), Some(self.body.len() as u64));
        if self.current.is_none() {
            self.open_shard()?;
        }
        let shard = self.current.as_mut().expect("opened");
        shard.offsets.push(shard.at);
        shard
            .out
            .write_all(&header.encode())
            .and_then(|()| shard.out.write_all(&self.body))
            .with_context(|| format!("writing {}", shard.path.display()))?;
        shard.at += (format::ITEM_HEADER + self.body.len()) as u64;
        if shard.at >= self.shard_bytes {
            self.close_shard()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn open_shard(&mut self) -> Result<()> {
        let name = shard_name(self.shards.len());
        let path = self.folder.claim(&[&name])?.remove(0);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&format::file_header()).with_context(|| format!("writing {}", path.display()))?;
        self.current = Some(OpenShard { name, path, out, offsets: Vec::new(), at: format::FILE_HEADER as u64 });
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(mut shard) = self.current.take() else { return Ok(()) };
        let write = |shard: &mut OpenShard| -> std::io::Result<()> {
            for o in &shard.offsets {
                shard.out.write_all(&o.to_le_bytes())?;
            }
            shard.out.write_all(&format::footer(shard.at))?;
            shard.out.flush()?;
            shard.out.get_ref().sync_all()
        };
        write(&mut shard).with_context(|| format!("writing {}", shard.path.display()))?;
        let bytes = shard.at + 8 * shard.offsets.len() as u64 + format::FOOTER as u64;
        self.shards.push(ShardEntry { file: shard.name, items: shard.offsets.len() as u64, bytes });
        Ok(())
    }

    /// Closes the last shard, lists `skipped` in `skipped.txt` and writes `pack.json`.
    pub fn finish(mut self, skipped: &[Problem], sources: Vec<String>) -> Result<PackIndex> {
        self.close_shard()?;
        let index = PackIndex {
            format: FORMAT_NAME.into(),
            version: format::VERSION,
            sample_rate: SAMPLE_RATE,
            objects: self.classes.objects,
            scenes: self.classes.scenes,
            items: self.shards.iter().map(|s| s.items).sum(),
            shards: self.shards,
            skipped: skipped.len() as u64,
            sources,
        };
        let tmp = format!("{INDEX}.tmp");
        let paths = self.folder.claim(&[SKIPPED, tmp.as_str(), INDEX])?;
        let list: String = skipped.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(&paths[0], list).with_context(|| format!("writing {}", paths[0].display()))?;
        let json = serde_json::to_string_pretty(&index).expect("an index serialises");
        std::fs::write(&paths[1], json)
            .and_then(|()| std::fs::rename(&paths[1], &paths[2]))
            .with_context(|| format!("writing {}", paths[2].display()))?;
        self.folder.remove(PROGRESS)?;
        Ok(index)
    }
}
