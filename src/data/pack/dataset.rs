//! Packed shards as a [`Dataset`]: each shard memory-mapped, nothing held per item, so memory is
//! the same for a thousand clips or two million. Opening checks each shard's size, header,
//! footer and index (cheap: no item is read); serving an item checks its header and CRC-32.
//!
//! Damage is named by shard and byte offset. Under `--skip-bad`, a shard whose end is gone is
//! opened by walking its item headers from the start (its whole items are kept), and a damaged
//! item is replaced by the next good one: the replacement depends only on the bytes, so a resumed
//! run still sees the same batches.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, ensure, Context, Result};
use memmap2::Mmap;

use super::format::{self, ItemView};
use super::PackIndex;
use crate::data::crop::tile_rows;
use crate::data::teacher::ROW_SAMPLES;
use crate::data::{Crop, Dataset, Example, Problem};
use crate::model::{HeadKind, Heads};

pub struct PackedDataset {
    dirs: Vec<PathBuf>,
    crop: Crop,
    /// The teachers served (those asked for that the packs have).
    classes: Heads<Option<usize>>,
    /// The teachers' widths stored in the packs, which every item header must repeat.
    stored: Heads<Option<usize>>,
    shards: Vec<Shard>,
    /// The dataset index of each shard's first item, and the total at the end.
    starts: Vec<usize>,
    skip_bad: bool,
    skipped_when_packed: u64,
    /// Damaged items met so far (each reported once).
    damaged: Mutex<BTreeSet<usize>>,
}

struct Shard {
    path: PathBuf,
    map: Mmap,
    offsets: Offsets,
    /// Where the items end: the index's offset, or where the walk stopped.
    items_end: u64,
}

enum Offsets {
    /// Read from the shard's own index, which starts at this offset.
    Index(u64),
    /// Found by walking the item headers of a shard without a usable index.
    Walked(Vec<u64>),
}

impl Shard {
    fn len(&self) -> usize {
        match &self.offsets {
            Offsets::Index(at) => ((self.map.len() as u64 - format::FOOTER as u64 - at) / 8) as usize,
            Offsets::Walked(v) => v.len(),
        }
    }

    fn offset(&self, j: usize) -> u64 {
        match &self.offsets {
            Offsets::Index(at) => {
                let p = (*at as usize) + 8 * j;
                u64::from_le_bytes(self.map[p..p + 8].try_into().expect("8 bytes"))
            }
            Offsets::Walked(v) => v[j],
        }
    }

    /// Item `j`, its end at the next item's start.
    fn item(&self, j: usize) -> Result<ItemView<'_>, String> {
        let offset = self.offset(j);
        let limit = if j + 1 < self.len() { self.offset(j + 1) } else { self.items_end };
        let view = format::item_at(&self.map, offset, limit, true)?;
        if view.end != limit {
            return Err(format!("the item ends at byte {}, but the next starts at {limit}", view.end));
        }
        Ok(view)
    }
}

impl PackedDataset {
    /// Opens the packs `dirs` as one dataset, in their order. Without `skip_bad` any damaged shard
    /// fails; with it, damaged shards are opened as far as their items can be found, and what was
    /// lost is returned.
    pub fn open(
        dirs: &[PathBuf],
        crop: Crop,
        columns: Heads<bool>,
        skip_bad: bool,
    ) -> Result<(PackedDataset, Vec<Problem>)> {
        let mut stored: Option<(PathBuf, Heads<Option<usize>>)> = None;
        let mut shards = Vec::new();
        let mut problems = Vec::new();
        let mut skipped_when_packed = 0;
        for dir in dirs {
            let index = PackIndex::read(dir)?;
            let classes = index.classes();
            match &stored {
                Some((first, c)) if *c != classes => bail!(
                    "{} has teachers of {} classes, but {} has {}: packs trained together must come from one teacher",
                    dir.display(),
                    classes.describe(usize::to_string),
                    first.display(),
                    c.describe(usize::to_string)
                ),
                Some(_) => {}
                None => stored = Some((dir.clone(), classes)),
            }
            skipped_when_packed += index.skipped;
            for entry in &index.shards {
                ensure!(
                    !entry.file.is_empty() && !entry.file.contains(['/', '\\']) && entry.file != "..",
                    "{}: shard name {:?} is not a file name in the pack's folder",
                    dir.join(super::INDEX).display(),
                    entry.file
                );
                match open_shard(&dir.join(&entry.file), entry.bytes, entry.items) {
                    Ok(shard) => shards.push(shard),
                    Err(OpenError::Unreadable(e)) => return Err(e),
                    Err(OpenError::Damaged(problem)) if !skip_bad => {
                        bail!("{problem}; --skip-bad opens it as far as its items can be found")
                    }
                    Err(OpenError::Damaged(problem)) => {
                        let shard = walk_shard(&dir.join(&entry.file))?;
                        problems.push(Problem {
                            reason: format!(
                                "{}; walked its item headers instead and kept {} of its {} items",
                                problem.reason,
                                shard.len(),
                                entry.items
                            ),
                            ..problem
                        });
                        shards.push(shard);
                    }
                }
            }
        }
        let (_, stored) = stored.context("no pack given")?;
        let mut starts = vec![0];
        for s in &shards {
            starts.push(starts.last().expect("starts at 0") + s.len());
        }
        let names = || dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        ensure!(*starts.last().expect("total") > 0, "{} holds no items", names());
        let classes = Heads::from_fn(|h| stored.get(h).filter(|_| *columns.get(h)));
        ensure!(
            classes.present().next().is_some(),
            "{} has no teacher rows for the heads asked for (it has {})",
            names(),
            stored.describe(usize::to_string)
        );
        let dataset = PackedDataset {
            dirs: dirs.to_vec(),
            crop,
            classes,
            stored,
            shards,
            starts,
            skip_bad,
            skipped_when_packed,
            damaged: Mutex::new(BTreeSet::new()),
        };
        Ok((dataset, problems))
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Items of the sources that packing left out.
    pub fn skipped_when_packed(&self) -> u64 {
        self.skipped_when_packed
    }

    fn locate(&self, i: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&start| start <= i) - 1;
        (s, i - self.starts[s])
    }

    /// Item `i`'s teachers, its clip written into `waveform`. With `shift`, the crop starts at
    /// teacher row `shift mod (places it may start)`, every place leaving a whole crop of audio
    /// and of rows; without, at the clip's start.
    fn read(&self, i: usize, waveform: &mut [f32], shift: Option<u64>) -> Result<Example, Problem> {
        let (s, j) = self.locate(i);
        let shard = &self.shards[s];
        let fail = |reason: String| {
            Problem::new(&shard.path, format!("item {j} at byte offset {}: {reason}", shard.offset(j)))
        };
        let view = shard.item(j).map_err(fail)?;
        let header = view.header;
        if header.samples == 0 {
            return Err(fail("an empty clip".into()));
        }
        let first_row = match shift {
            None => 0,
            Some(shift) => {
                let rows = [header.objects, header.scenes]
                    .iter()
                    .zip(HeadKind::TEACHERS)
                    .filter(|(_, h)| self.classes.get(*h).is_some())
                    .map(|(t, _)| t.rows as usize)
                    .min()
                    .unwrap_or(0);
                let by_rows = rows.saturating_sub(self.crop.steps);
                let by_samples = (header.samples as usize).saturating_sub(self.crop.samples) / ROW_SAMPLES;
                (shift % (by_rows.min(by_samples) as u64 + 1)) as usize
            }
        };
        let mut tables: Heads<Vec<f32>> = Heads::default();
        for h in HeadKind::TEACHERS {
            let (shape, bytes) = match h {
                HeadKind::Objects => (header.objects, view.objects),
                _ => (header.scenes, view.scenes),
            };
            let stored = self.stored.get(h).unwrap_or(0);
            if shape.width as usize != stored || (stored > 0 && shape.rows == 0) {
                return Err(fail(format!(
                    "{h} rows of {} x {}, but the pack's {h} teacher has {stored} classes",
                    shape.rows, shape.width
                )));
            }
            if let Some(width) = *self.classes.get(h) {
                // Rows past the crop's steps are never used: only those are read.
                let rows = (shape.rows as usize - first_row).min(self.crop.steps);
                let table = format::decode_table(&bytes[first_row * width * 4..(first_row + rows) * width * 4]);
                *tables.get_mut(h) = tile_rows(&table, width, self.crop.steps);
            }
        }
        let start = 2 * first_row * ROW_SAMPLES;
        format::decode_clip_tiled_into(&view.clip[start..], waveform);
        Ok(Example { waveform: Vec::new(), objects: tables.objects, scenes: tables.scenes, classes: Vec::new() })
    }
}

impl Dataset for PackedDataset {
    fn len(&self) -> usize {
        *self.starts.last().expect("total")
    }

    fn crop(&self) -> Crop {
        self.crop
    }

    fn classes(&self) -> Heads<Option<usize>> {
        self.classes
    }

    fn example(&self, i: usize) -> Result<Example> {
        let mut waveform = vec![0.0; self.crop.samples];
        let e = self.example_into(i, &mut waveform)?;
        Ok(Example { waveform, ..e })
    }

    fn example_into(&self, i: usize, waveform: &mut [f32]) -> Result<Example> {
        self.serve(i, waveform, None)
    }

    fn example_shifted(&self, i: usize, waveform: &mut [f32], shift: u64) -> Result<Example> {
        self.serve(i, waveform, Some(shift))
    }

    fn shifts_crops(&self) -> bool {
        true
    }

    fn shard_sizes(&self) -> Option<Vec<usize>> {
        Some(self.starts.windows(2).map(|w| w[1] - w[0]).collect())
    }

    fn damaged(&self) -> usize {
        self.damaged.lock().expect("not poisoned").len()
    }
}

impl PackedDataset {
    /// Item `i`, or under `--skip-bad` the next good one after it.
    fn serve(&self, i: usize, waveform: &mut [f32], shift: Option<u64>) -> Result<Example> {
        let mut k = i;
        loop {
            match self.read(k, waveform, shift) {
                Ok(e) => return Ok(e),
                Err(problem) if !self.skip_bad => {
                    bail!("{problem}; --skip-bad serves the next good item in its place")
                }
                Err(problem) => {
                    let first_time = self.damaged.lock().expect("not poisoned").insert(k);
                    if first_time {
                        eprintln!("damaged item left out (--skip-bad): {problem}");
                    }
                    k = (k + 1) % self.len();
                    ensure!(k != i, "every item of {} is damaged", self.dirs[0].display());
                }
            }
        }
    }
}

enum OpenError {
    /// The file cannot be opened or mapped at all.
    Unreadable(anyhow::Error),
    /// The file is there but is not what the index says.
    Damaged(Problem),
}

fn map(path: &Path) -> Result<Mmap> {
    let file = File::open(path).with_context(|| format!("cannot open shard {}", path.display()))?;
    // Safety: a pack is written once and only read afterwards; a file changed under the map is
    // caught by the item checks (lengths and CRC), never read past its end.
    unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map shard {}", path.display()))
}

fn open_shard(path: &Path, bytes: u64, items: u64) -> Result<Shard, OpenError> {
    let map = map(path).map_err(OpenError::Unreadable)?;
    let damaged = |reason: String| OpenError::Damaged(Problem::new(path, reason));
    if map.len() as u64 != bytes {
        return Err(damaged(format!(
            "{} bytes, but pack.json says {bytes}: the shard was cut short or changed",
            map.len()
        )));
    }
    format::check_file_header(&map).map_err(damaged)?;
    let (at, count) = format::read_footer(&map).map_err(damaged)?;
    if count != items {
        return Err(damaged(format!("its index lists {count} items, but pack.json says {items}")));
    }
    let shard = Shard { path: path.to_path_buf(), map, offsets: Offsets::Index(at), items_end: at };
    let mut previous = None;
    for j in 0..shard.len() {
        let o = shard.offset(j);
        let fits = match previous {
            None => o == format::FILE_HEADER as u64,
            Some(p) => o > p,
        };
        if !fits || o >= at {
            return Err(damaged(format!("index entry {j} (byte offset {o}) is out of order or past the items")));
        }
        previous = Some(o);
    }
    Ok(shard)
}

/// The whole items of a shard found by walking from its first: the walk stops at the first
/// header that is not an item's or whose item does not fit in the file.
fn walk_shard(path: &Path) -> Result<Shard> {
    let map = map(path)?;
    let mut offsets = Vec::new();
    let mut at = format::FILE_HEADER as u64;
    if format::check_file_header(&map).is_ok() {
        while let Ok(view) = format::item_at(&map, at, map.len() as u64, false) {
            offsets.push(at);
            at = view.end;
        }
    }
    Ok(Shard { path: path.to_path_buf(), map, offsets: Offsets::Walked(offsets), items_end: at })
}
