//! A dataset folder: `manifest.csv` with columns `audio` and `objects`, `scenes` or both (paths
//! relative to the folder, or absolute), the audio files and the teachers' `.npy` arrays. Several
//! folders (the shards `sn-wgpu teach --shard` writes) open as one dataset. The arrays' widths size
//! the heads. Everything is validated when the folders are opened, so a bad file stops the run
//! before training rather than hours into it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::crop::{tile, tile_rows, Crop};
use super::problem::{Problem, ValidationError};
use super::tiling::{self, Tiled};
use super::{audio, csv_lines, teacher, Dataset, Example};
use crate::model::{HeadKind, Heads};

pub const MANIFEST: &str = "manifest.csv";

/// How to open a dataset folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetOptions {
    pub crop: Crop,
    /// Leave bad items out (and list them) instead of failing.
    pub skip_bad: bool,
    /// Decoded clips are kept in memory until they take this many bytes; the rest are decoded
    /// again each time they are served.
    pub cache_bytes: usize,
    /// Which teacher columns (objects, scenes) to read where the manifests have them
    /// (`train --teacher`); a column left unread is not checked either.
    pub columns: Heads<bool>,
}

impl DatasetOptions {
    pub fn new(crop: Crop) -> DatasetOptions {
        DatasetOptions {
            crop,
            skip_bad: false,
            cache_bytes: 1 << 30,
            columns: Heads { objects: true, scenes: true, classes: false },
        }
    }
}

/// An item that was left out by `skip_bad`: the file and why.
pub type Skipped = Problem;

/// Validated dataset folders, as one dataset.
#[derive(Debug)]
pub struct ManifestDataset {
    dirs: Vec<PathBuf>,
    crop: Crop,
    items: Vec<Item>,
    tiled: Vec<Tiled>,
    /// The width of each teacher column read (objects, scenes), None for a column not read.
    classes: Heads<Option<usize>>,
}

#[derive(Debug)]
struct Item {
    audio: PathBuf,
    /// The first rows of each teacher array read (objects, scenes; empty when not read), up to the
    /// crop's steps (later rows are never used).
    targets: Heads<Vec<f32>>,
    /// The decoded clip, cut to the crop length, when the cache had room for it.
    clip: Option<Vec<f32>>,
    /// The decoded clip's whole length, for the note on clips tiled many times.
    samples: usize,
    /// Each teacher array read: its classes and its file, and the manifest line, for the check
    /// that all agree.
    widths: Heads<usize>,
    paths: Heads<PathBuf>,
    line: u64,
}

impl ManifestDataset {
    /// Opens and validates the whole of `dirs`, one dataset in their order. Without `skip_bad`,
    /// any problem fails with a [`ValidationError`] listing all of them; with it, the bad items are
    /// returned as skipped. A missing or unreadable manifest, a missing column, or no usable item
    /// in all of them always fails (one folder may be empty: a shard that got no input). Clips the
    /// crop repeats more than 4 times are listed on stderr (see `tiling`).
    pub fn open(dirs: &[PathBuf], options: &DatasetOptions) -> Result<(ManifestDataset, Vec<Skipped>)> {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let fail = |problems: Vec<Problem>| ValidationError { dataset: PathBuf::from(names.join(", ")), problems };
        let mut rows = Vec::new();
        let mut has = Vec::new();
        for dir in dirs {
            let (columns, mut more) = read_manifest(dir).map_err(|p| fail(vec![p]))?;
            has.push((dir.join(MANIFEST), columns));
            rows.append(&mut more);
        }
        let read = columns_to_read(&has, options.columns).map_err(|p| fail(vec![p]))?;
        let cache_left = AtomicUsize::new(options.cache_bytes);
        let results = validate_all(&rows, read, options.crop, &cache_left);
        let mut items = Vec::with_capacity(results.len());
        let mut problems = Vec::new();
        for result in results {
            match result {
                Ok(item) => items.push(item),
                Err(p) => problems.extend(p),
            }
        }
        let classes = agree_on_widths(&mut items, &mut problems, read);
        if items.is_empty() || (!problems.is_empty() && !options.skip_bad) {
            if items.is_empty() && problems.is_empty() {
                problems.push(Problem::new(dirs[0].join(MANIFEST), "no items: expected at least one row"));
            }
            return Err(fail(problems).into());
        }
        let tiled: Vec<Tiled> =
            items.iter().filter_map(|i| Tiled::check(i.audio.clone(), i.samples, options.crop)).collect();
        if let Some(note) = tiling::note(&tiled, options.crop) {
            eprintln!("{note}");
        }
        Ok((ManifestDataset { dirs: dirs.to_vec(), crop: options.crop, items, tiled, classes }, problems))
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The audio file of item `i`.
    pub fn audio_path(&self, i: usize) -> &Path {
        &self.items[i].audio
    }

    /// The clips the crop repeats more than 4 times, in manifest order.
    pub fn tiled(&self) -> &[Tiled] {
        &self.tiled
    }
}

impl Dataset for ManifestDataset {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn crop(&self) -> Crop {
        self.crop
    }

    fn classes(&self) -> Heads<Option<usize>> {
        self.classes
    }

    fn example(&self, i: usize) -> Result<Example> {
        let item = &self.items[i];
        let waveform = match &item.clip {
            Some(clip) => tile(clip, self.crop.samples),
            None => tile(&audio::load(&item.audio)?, self.crop.samples),
        };
        let Heads { objects, scenes, .. } = Heads::from_fn(|h| match *self.classes.get(h) {
            Some(classes) => tile_rows(item.targets.get(h), classes, self.crop.steps),
            None => Vec::new(),
        });
        Ok(Example { waveform, objects, scenes, classes: Vec::new() })
    }
}

/// The teacher columns to read: those `wanted` that the manifests have. A wanted column that
/// some manifests have and others lack is a problem (shards of one teacher have the same columns),
/// and so is reading none.
fn columns_to_read(has: &[(PathBuf, Heads<bool>)], wanted: Heads<bool>) -> Result<Heads<bool>, Problem> {
    let mut read = Heads::default();
    for h in HeadKind::TEACHERS {
        let with: Vec<&PathBuf> = has.iter().filter(|(_, c)| *c.get(h)).map(|(p, _)| p).collect();
        if let (Some(a), Some((b, _))) = (with.first(), has.iter().find(|(_, c)| !*c.get(h))) {
            if *wanted.get(h) {
                return Err(Problem::new(
                    b,
                    format!("no `{h}` column, which {} has: the folders must come from one teacher", a.display()),
                ));
            }
        }
        *read.get_mut(h) = *wanted.get(h) && with.len() == has.len();
    }
    if read == Heads::default() {
        let wanted: Vec<&str> = wanted.iter().filter(|(_, &w)| w).map(|(h, _)| h.name()).collect();
        return Err(Problem::new(
            &has[0].0,
            format!("no teacher column to train on: expected a column {} besides audio", wanted.join(" or ")),
        ));
    }
    Ok(read)
}

/// The width of each column read: the one most items have (the first of equals). Items whose
/// arrays are another width are moved to `problems` (a teacher gives every clip the same classes).
fn agree_on_widths(items: &mut Vec<Item>, problems: &mut Vec<Problem>, read: Heads<bool>) -> Heads<Option<usize>> {
    let classes = Heads::from_fn(|h| {
        let widths: Vec<usize> = items.iter().map(|i| *i.widths.get(h)).collect();
        let count = |w: usize| widths.iter().filter(|&&x| x == w).count();
        read.get(h).then(|| widths.iter().copied().max_by(|&a, &b| count(a).cmp(&count(b)).then(b.cmp(&a)))).flatten()
    });
    items.retain(|item| {
        let wrong: Vec<Problem> = classes
            .present()
            .filter(|&(h, &c)| *item.widths.get(h) != c)
            .map(|(h, &c)| {
                let reason = format!(
                    "{} classes per row, but most of the dataset's {h} arrays have {c}: one teacher gives every clip \
                     the same classes",
                    item.widths.get(h)
                );
                with_line(Problem::new(item.paths.get(h), reason), item.line)
            })
            .collect();
        let good = wrong.is_empty();
        problems.extend(wrong);
        good
    });
    classes
}

/// One manifest line: its line number in the file (the header is line 1), its audio path and
/// its teacher paths (objects, scenes; None for a column the manifest lacks).
pub struct Row {
    line: u64,
    paths: Result<(PathBuf, Heads<Option<PathBuf>>), Problem>,
}

/// The teacher columns `dir`'s manifest has (objects, scenes), and its rows.
fn read_manifest(dir: &Path) -> Result<(Heads<bool>, Vec<Row>), Problem> {
    let path = dir.join(MANIFEST);
    // Read whole, so each record's line can be counted from its byte offset.
    let text = std::fs::read(&path).map_err(|e| Problem::new(&path, format!("cannot read the manifest ({e})")))?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_slice());
    let header = reader.headers().map_err(|e| Problem::new(&path, format!("cannot read the header ({e})")))?.clone();
    let found: Vec<&str> = header.iter().collect();
    let audio = found.iter().position(|h| *h == "audio");
    let teachers = Heads::from_fn(|kind| found.iter().position(|h| *h == kind.name()));
    let Some(audio) = audio.filter(|_| teachers.present().next().is_some()) else {
        return Err(Problem::new(
            &path,
            format!(
                "expected columns audio and objects, scenes or both (audio,objects,scenes), found {}",
                found.join(",")
            ),
        ));
    };
    let has = teachers.map(|c| c.is_some());
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = csv_lines::Lines::new(&text);
    loop {
        let before = reader.position().clone();
        let row = match reader.read_record(&mut record) {
            Ok(false) => return Ok((has, rows)),
            Ok(true) => {
                let line = csv_lines::record_line(&mut lines, &record, &before);
                let field = |column: usize, name: &str| -> Result<PathBuf, Problem> {
                    match record.get(column) {
                        Some(v) if !v.is_empty() => Ok(dir.join(v)),
                        _ => Err(Problem::new(&path, format!("line {line}: empty `{name}` field"))),
                    }
                };
                let teacher = |h: HeadKind| teachers.get(h).map(|c| field(c, h.name())).transpose();
                let paths = field(audio, "audio").and_then(|a| {
                    Ok((
                        a,
                        Heads {
                            objects: teacher(HeadKind::Objects)?,
                            scenes: teacher(HeadKind::Scenes)?,
                            classes: None,
                        },
                    ))
                });
                Row { line, paths }
            }
            Err(e) => {
                let line = lines.line_at(before.byte());
                Row { line, paths: Err(Problem::new(&path, csv_lines::read_error(&mut lines, &e, &before))) }
            }
        };
        rows.push(row);
    }
}

/// The rows of `dirs`' manifests, in order, and the teacher columns to read of those `wanted`, for
/// a reader that takes the items one by one instead of all up front (`sn-wgpu pack`).
pub fn read_rows(dirs: &[PathBuf], wanted: Heads<bool>) -> Result<(Vec<Row>, Heads<bool>), Problem> {
    let mut rows = Vec::new();
    let mut has = Vec::new();
    for dir in dirs {
        let (columns, mut more) = read_manifest(dir)?;
        has.push((dir.join(MANIFEST), columns));
        rows.append(&mut more);
    }
    let read = columns_to_read(&has, wanted)?;
    Ok((rows, read))
}

/// A whole item: its audio file, its clip, and each teacher's rows with their width.
pub type WholeItem = (PathBuf, Vec<f32>, Heads<(Vec<f32>, usize)>);

/// One item whole: its audio file, every sample of its clip, and all rows of each teacher read
/// (with its width; empty and 0 for one not read). Problems carry the manifest line.
pub fn load_whole(row: &Row, read: Heads<bool>) -> Result<WholeItem, Vec<Problem>> {
    let (audio_path, teacher_paths) = row.paths.clone().map_err(|p| vec![p])?;
    let mut problems = Vec::new();
    let clip = audio::load(&audio_path).map_err(|e| problems.push(Problem::new(e.file, e.reason))).ok();
    let mut tables: Heads<(Vec<f32>, usize)> = Heads::default();
    for h in HeadKind::TEACHERS.into_iter().filter(|&h| *read.get(h)) {
        let path = teacher_paths.get(h).clone().expect("a column read is in every manifest");
        match teacher::read(&path, None) {
            Ok(t) => *tables.get_mut(h) = (t.data, t.classes),
            Err(p) => problems.extend(p),
        }
    }
    match clip {
        Some(clip) if problems.is_empty() => Ok((audio_path, clip, tables)),
        _ => Err(problems.into_iter().map(|p| with_line(p, row.line)).collect()),
    }
}

/// Validates every row, spread over the machine's cores (decoding dominates), keeping results
/// in manifest order.
fn validate_all(
    rows: &[Row],
    read: Heads<bool>,
    crop: Crop,
    cache_left: &AtomicUsize,
) -> Vec<Result<Item, Vec<Problem>>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows.len().max(1));
    let mut results: Vec<Option<Result<Item, Vec<Problem>>>> = (0..rows.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    (w..rows.len())
                        .step_by(workers)
                        .map(|i| (i, validate(&rows[i], read, crop, cache_left)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("a validation worker panicked") {
                results[i] = Some(r);
            }
        }
    });
    results.into_iter().map(|r| r.expect("every row validated")).collect()
}

fn validate(row: &Row, read: Heads<bool>, crop: Crop, cache_left: &AtomicUsize) -> Result<Item, Vec<Problem>> {
    let (audio, mut clip, tables) = load_whole(row, read)?;
    let teacher_paths = row.paths.as_ref().map(|(_, t)| t.clone()).expect("a row that loaded has its paths");
    let paths = Heads::from_fn(|h| teacher_paths.get(h).clone().unwrap_or_default());
    // Rows past the crop's steps are never used: only those are kept.
    let targets = Heads::from_fn(|h| {
        let (data, classes) = tables.get(h);
        data[..data.len().min(crop.steps * classes)].to_vec()
    });
    let widths = tables.map(|t| t.1);
    let samples = clip.len();
    clip.truncate(crop.samples);
    clip.shrink_to_fit();
    let bytes = clip.len() * std::mem::size_of::<f32>();
    let room = cache_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(bytes));
    let clip = room.is_ok().then_some(clip);
    Ok(Item { audio, targets, widths, paths, line: row.line, clip, samples })
}

/// Adds the manifest line to a problem's reason, so it can be found in a long manifest.
fn with_line(p: Problem, line: u64) -> Problem {
    Problem { reason: format!("{} (manifest line {line})", p.reason), ..p }
}
