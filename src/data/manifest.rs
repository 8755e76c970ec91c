//! A dataset folder: `manifest.csv` with columns `audio,objects,scenes` (paths relative to the
//! folder), the audio files and the teachers' `.npy` arrays. Everything is validated when the
//! folder is opened, so a bad file stops the run before training rather than hours into it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::crop::{tile, tile_rows, Crop};
use super::problem::{Problem, ValidationError};
use super::tiling::{self, Tiled};
use super::{audio, csv_lines, teacher, Dataset, Example, OBJECT_CLASSES, SCENE_CLASSES};

pub const MANIFEST: &str = "manifest.csv";
const COLUMNS: [&str; 3] = ["audio", "objects", "scenes"];

/// How to open a dataset folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetOptions {
    pub crop: Crop,
    /// Leave bad items out (and list them) instead of failing.
    pub skip_bad: bool,
    /// Decoded clips are kept in memory until they take this many bytes; the rest are decoded
    /// again each time they are served.
    pub cache_bytes: usize,
}

impl DatasetOptions {
    pub fn new(crop: Crop) -> DatasetOptions {
        DatasetOptions { crop, skip_bad: false, cache_bytes: 1 << 30 }
    }
}

/// An item that was left out by `skip_bad`: the file and why.
pub type Skipped = Problem;

/// A validated dataset folder.
#[derive(Debug)]
pub struct ManifestDataset {
    dir: PathBuf,
    crop: Crop,
    items: Vec<Item>,
    tiled: Vec<Tiled>,
}

#[derive(Debug)]
struct Item {
    audio: PathBuf,
    /// The first rows of each teacher array, up to the crop's steps (later rows are never used).
    objects: Vec<f32>,
    scenes: Vec<f32>,
    /// The decoded clip, cut to the crop length, when the cache had room for it.
    clip: Option<Vec<f32>>,
    /// The decoded clip's whole length, for the note on clips tiled many times.
    samples: usize,
}

impl ManifestDataset {
    /// Opens and validates the whole of `dir`. Without `skip_bad`, any problem fails with a
    /// [`ValidationError`] listing all of them; with it, the bad items are returned as skipped.
    /// A missing or unreadable manifest, a missing column, or no usable item always fails.
    /// Clips the crop repeats more than 4 times are listed on stderr (see `tiling`).
    pub fn open(dir: &Path, options: &DatasetOptions) -> Result<(ManifestDataset, Vec<Skipped>)> {
        let fail = |problems: Vec<Problem>| ValidationError { dataset: dir.to_path_buf(), problems };
        let rows = read_manifest(dir).map_err(|p| fail(vec![p]))?;
        let cache_left = AtomicUsize::new(options.cache_bytes);
        let results = validate_all(&rows, options.crop, &cache_left);
        let mut items = Vec::with_capacity(results.len());
        let mut problems = Vec::new();
        for result in results {
            match result {
                Ok(item) => items.push(item),
                Err(p) => problems.extend(p),
            }
        }
        if items.is_empty() || (!problems.is_empty() && !options.skip_bad) {
            if items.is_empty() && problems.is_empty() {
                problems.push(Problem::new(dir.join(MANIFEST), "no items: expected at least one row"));
            }
            return Err(fail(problems).into());
        }
        let tiled: Vec<Tiled> =
            items.iter().filter_map(|i| Tiled::check(i.audio.clone(), i.samples, options.crop)).collect();
        if let Some(note) = tiling::note(&tiled, options.crop) {
            eprintln!("{note}");
        }
        Ok((ManifestDataset { dir: dir.to_path_buf(), crop: options.crop, items, tiled }, problems))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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

    fn example(&self, i: usize) -> Result<Example> {
        let item = &self.items[i];
        let waveform = match &item.clip {
            Some(clip) => tile(clip, self.crop.samples),
            None => tile(&audio::load(&item.audio)?, self.crop.samples),
        };
        Ok(Example {
            waveform,
            objects: tile_rows(&item.objects, OBJECT_CLASSES, self.crop.steps),
            scenes: tile_rows(&item.scenes, SCENE_CLASSES, self.crop.steps),
        })
    }
}

/// One manifest line: its line number in the file (the header is line 1) and its three paths.
struct Row {
    line: u64,
    paths: Result<[PathBuf; 3], Problem>,
}

fn read_manifest(dir: &Path) -> Result<Vec<Row>, Problem> {
    let path = dir.join(MANIFEST);
    // Read whole, so each record's line can be counted from its byte offset.
    let text = std::fs::read(&path).map_err(|e| Problem::new(&path, format!("cannot read the manifest ({e})")))?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_slice());
    let header = reader.headers().map_err(|e| Problem::new(&path, format!("cannot read the header ({e})")))?.clone();
    let found: Vec<&str> = header.iter().collect();
    let mut columns = [0; 3];
    for (slot, name) in columns.iter_mut().zip(COLUMNS) {
        *slot = found.iter().position(|h| *h == name).ok_or_else(|| {
            Problem::new(
                &path,
                format!("missing column `{name}`: expected columns audio,objects,scenes, found {}", found.join(",")),
            )
        })?;
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let before = reader.position().clone();
        let row = match reader.read_record(&mut record) {
            Ok(false) => return Ok(rows),
            Ok(true) => {
                let line = csv_lines::record_line(&text, &record, &before);
                let field = |c: usize| -> Result<PathBuf, Problem> {
                    match record.get(columns[c]) {
                        Some(v) if !v.is_empty() => Ok(dir.join(v)),
                        _ => Err(Problem::new(&path, format!("line {line}: empty `{}` field", COLUMNS[c]))),
                    }
                };
                Row { line, paths: field(0).and_then(|a| Ok([a, field(1)?, field(2)?])) }
            }
            Err(e) => {
                let line = csv_lines::line_at(&text, before.byte());
                Row { line, paths: Err(Problem::new(&path, csv_lines::read_error(&text, &e, &before))) }
            }
        };
        rows.push(row);
    }
}

/// Validates every row, spread over the machine's cores (decoding dominates), keeping results
/// in manifest order.
fn validate_all(rows: &[Row], crop: Crop, cache_left: &AtomicUsize) -> Vec<Result<Item, Vec<Problem>>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows.len().max(1));
    let mut results: Vec<Option<Result<Item, Vec<Problem>>>> = (0..rows.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    (w..rows.len())
                        .step_by(workers)
                        .map(|i| (i, validate(&rows[i], crop, cache_left)))
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

fn validate(row: &Row, crop: Crop, cache_left: &AtomicUsize) -> Result<Item, Vec<Problem>> {
    let [audio_path, objects_path, scenes_path] = row.paths.clone().map_err(|p| vec![p])?;
    let mut problems = Vec::new();
    let mut samples = 0;
    let clip = match audio::load(&audio_path) {
        Ok(mut clip) => {
            samples = clip.len();
            clip.truncate(crop.samples);
            Some(clip)
        }
        Err(e) => {
            problems.push(Problem::new(e.file, e.reason));
            None
        }
    };
    let mut first_rows = |path: &Path, classes: usize| match teacher::read(path, classes) {
        Ok(t) => {
            let mut data = t.data;
            data.truncate(t.rows.min(crop.steps) * classes);
            data.shrink_to_fit();
            Some(data)
        }
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let objects = first_rows(&objects_path, OBJECT_CLASSES);
    let scenes = first_rows(&scenes_path, SCENE_CLASSES);
    match (objects, scenes) {
        (Some(objects), Some(scenes)) if problems.is_empty() => {
            let clip = clip.and_then(|mut c| {
                c.shrink_to_fit();
                let bytes = c.len() * std::mem::size_of::<f32>();
                let room =
                    cache_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(bytes));
                room.is_ok().then_some(c)
            });
            Ok(Item { audio: audio_path, objects, scenes, clip, samples })
        }
        _ => Err(problems.into_iter().map(|p| with_line(p, row.line)).collect()),
    }
}

/// Adds the manifest line to a problem's reason, so it can be found in a long manifest.
fn with_line(p: Problem, line: u64) -> Problem {
    Problem { reason: format!("{} (manifest line {line})", p.reason), ..p }
}
