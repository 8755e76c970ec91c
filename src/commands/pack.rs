//! `sn-wgpu pack`: dataset folders (from `teach`, `import-soundnet` or a hand-made manifest)
//! decoded once into packed shards (`data::pack`), so that training reads clips out of a memory
//! map instead of decoding them at every step.
//!
//! The manifests are read first; then the items are decoded a few batches at a time over every
//! core and written in manifest order, so memory holds a few clips whatever the dataset's size.
//! The teachers' widths are those of the first good item; an item of other widths is bad. A bad
//! item stops the pack, naming the file and its manifest line, unless `--skip-bad`: then it is
//! left out and listed in `skipped.txt`. As each shard closes, how far the pack got is saved; the
//! same command after a stop (a kill, a crash, a full disk) keeps the closed shards and goes on
//! from the manifest row after the last item they hold.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::data::manifest::{self, MANIFEST};
use crate::data::pack::{self, writer::shard_name, PackIndex, PackItem, PackProgress, PackWriter};
use crate::data::{Problem, ValidationError, SAMPLE_RATE};
use crate::model::{HeadKind, Heads};
use crate::out_folder::OutFolder;

#[derive(Debug, Clone)]
pub struct PackOptions {
    pub data: Vec<PathBuf>,
    pub out: PathBuf,
    /// A shard closes once it holds this many bytes.
    pub shard_bytes: u64,
    pub skip_bad: bool,
    /// Replace a finished pack in `out` (only files sn-wgpu wrote there).
    pub overwrite: bool,
}

#[derive(Debug)]
pub struct PackSummary {
    pub index: PackIndex,
    pub samples: u64,
    pub seconds: f64,
    pub skipped: Vec<Problem>,
}

impl std::fmt::Display for PackSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.index;
        let bytes: u64 = i.shards.iter().map(|s| s.bytes).sum();
        write!(
            f,
            "packed {} clips ({:.1} h of audio, {:.2} GB) into {} shard(s) in {:.1} s ({:.0} clips/s); teachers: {}",
            i.items,
            self.samples as f64 / SAMPLE_RATE as f64 / 3600.0,
            bytes as f64 / 1e9,
            i.shards.len(),
            self.seconds,
            i.items as f64 / self.seconds.max(1e-9),
            i.classes().describe(|c| format!("{c} classes")),
        )?;
        if !self.skipped.is_empty() {
            write!(f, "\nleft out {} bad item(s) (--skip-bad), listed in {}", self.skipped.len(), pack::SKIPPED)?;
        }
        Ok(())
    }
}

/// How often a pack without a terminal says how far it got.
const SAY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Items decoded together, per core: enough to keep every core busy, few enough to bound memory.
const ITEMS_PER_CORE: usize = 4;

pub fn pack(opts: &PackOptions) -> Result<PackSummary> {
    ensure!(!opts.data.is_empty(), "give at least one dataset folder to pack");
    let same = |d: &PathBuf| d.canonicalize().ok().is_some_and(|d| Some(d) == opts.out.canonicalize().ok());
    if let Some(d) = opts.data.iter().find(|d| same(d)) {
        bail!(
            "--out {} is also a --data folder: a folder holding {} is read as a pack, so the pack needs a folder of \
             its own",
            d.display(),
            pack::INDEX
        );
    }
    let inputs: Vec<PathBuf> = opts.data.iter().map(|d| d.join(MANIFEST)).collect();
    let mut folder = OutFolder::lock(&opts.out, "--out")?.reading(&inputs);
    if pack::is_pack(&opts.out) && !opts.overwrite {
        bail!(
            "{} is already a finished pack ({} is there); --overwrite packs it again, or choose another --out",
            opts.out.display(),
            pack::INDEX
        );
    }
    let started = Instant::now();
    let all = Heads { objects: true, scenes: true, classes: false };
    let names = opts.data.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    let sources: Vec<String> = opts.data.iter().map(|d| d.display().to_string()).collect();
    let progress = if opts.overwrite { None } else { stopped_pack(&folder, &sources, opts.shard_bytes) };
    // What an earlier pack into this folder left goes first, so no old shard outlives the new
    // index, except the closed shards of a stopped pack that this one continues; only files on
    // the folder's list are touched.
    let kept: Vec<String> = progress.iter().flat_map(|p| p.shards.iter().map(|s| s.file.clone())).collect();
    let old: Vec<String> = folder
        .written()
        .filter(|n| n.starts_with("shard-") || *n == pack::INDEX || *n == pack::PROGRESS)
        .filter(|n| !kept.iter().any(|k| k == n) && (progress.is_none() || *n != pack::PROGRESS))
        .map(str::to_string)
        .collect();
    for name in old {
        folder.remove(&name)?;
    }

    let bar = progress_bar(0);
    let chunk = ITEMS_PER_CORE * rayon::current_num_threads();
    let mut writer: Option<PackWriter> = None;
    let mut classes: Option<(Heads<Option<usize>>, String)> = None;
    let mut skipped = Vec::new();
    let mut samples = 0u64;
    let mut rows_done = 0u64;
    let mut folder_slot = Some(&mut folder);
    if let Some(p) = progress {
        println!(
            "continuing the stopped pack in {}: {} closed shard(s) of {} clips kept, from manifest row {}",
            opts.out.display(),
            p.shards.len(),
            p.shards.iter().map(|s| s.items).sum::<u64>(),
            p.rows_done + 1
        );
        let widths = Heads { objects: p.objects, scenes: p.scenes, classes: None };
        classes = Some((widths, p.first_item));
        (skipped, samples, rows_done) = (p.skipped, p.samples, p.rows_done);
        writer = Some(PackWriter::after(folder_slot.take().expect("once"), widths, opts.shard_bytes, p.shards));
    }
    let bad = |problems: Vec<Problem>, skipped: &mut Vec<Problem>| -> Result<()> {
        if !opts.skip_bad {
            let error = ValidationError { dataset: PathBuf::from(&names), problems };
            bail!("{error}\n--skip-bad leaves bad items out (listed in the pack's {})", pack::SKIPPED);
        }
        skipped.extend(problems);
        Ok(())
    };
    let mut first_columns: Option<(PathBuf, Heads<bool>)> = None;
    let mut last_said = Instant::now();
    // The global index of the next manifest row, over all the folders in order.
    let mut row = 0u64;
    // One folder's rows at a time: the whole release's manifests would hold millions of paths.
    for dir in &opts.data {
        let (rows, read) = manifest::read_rows(std::slice::from_ref(dir), all)
            .map_err(|p| ValidationError { dataset: PathBuf::from(&names), problems: vec![p] })?;
        let (first, columns) = first_columns.get_or_insert_with(|| (dir.clone(), read));
        ensure!(
            *columns == read,
            "{}: teacher columns {}, but {} has {}: the folders of one pack must come from one teacher",
            dir.join(MANIFEST).display(),
            column_names(read),
            first.join(MANIFEST).display(),
            column_names(*columns)
        );
        // Rows a stopped pack already wrote or left out are passed over.
        let done_here = (rows_done.saturating_sub(row) as usize).min(rows.len());
        row += done_here as u64;
        bar.inc_length((rows.len() - done_here) as u64);
        for part in rows[done_here..].chunks(chunk) {
            let loaded: Vec<_> = part.par_iter().map(|row| manifest::load_whole(row, read)).collect();
            for result in loaded {
                row += 1;
                bar.inc(1);
                if bar.is_hidden() && last_said.elapsed() >= SAY_EVERY {
                    // No terminal (a batch job's log): a line a minute instead of the bar.
                    last_said = Instant::now();
                    let done = bar.position();
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    println!("packed {done} clips so far ({rate:.0} clips/s), {} left out", skipped.len());
                }
                let (audio, clip, tables) = match result {
                    Ok(item) => item,
                    Err(problems) => {
                        bad(problems, &mut skipped)?;
                        continue;
                    }
                };
                let widths = Heads::from_fn(|h| (h != HeadKind::Classes && *read.get(h)).then_some(tables.get(h).1));
                let (expected, first) = classes.get_or_insert_with(|| (widths, audio.display().to_string()));
                if widths != *expected {
                    let problem = Problem::new(
                        &audio,
                        format!(
                            "teachers of {}, but {first} (the first item) has {}: one teacher gives every clip the \
                             same classes",
                            widths.describe(usize::to_string),
                            expected.describe(usize::to_string)
                        ),
                    );
                    bad(vec![problem], &mut skipped)?;
                    continue;
                }
                let (expected, first) = (*expected, first.clone());
                let w = match &mut writer {
                    Some(w) => w,
                    None => {
                        writer.insert(PackWriter::new(folder_slot.take().expect("once"), expected, opts.shard_bytes))
                    }
                };
                samples += clip.len() as u64;
                let Heads { objects, scenes, .. } = tables;
                let item = PackItem { name: audio.display().to_string(), clip, objects: objects.0, scenes: scenes.0 };
                if w.add(&item)? {
                    let progress = PackProgress {
                        sources: sources.clone(),
                        shard_bytes: opts.shard_bytes,
                        objects: expected.objects,
                        scenes: expected.scenes,
                        first_item: first,
                        rows_done: row,
                        samples,
                        shards: w.shards().to_vec(),
                        skipped: skipped.clone(),
                    };
                    w.save_progress(&progress)?;
                }
            }
        }
    }
    bar.finish_and_clear();
    let Some(writer) = writer else {
        let mut problems = skipped;
        problems.push(Problem::new(&opts.data[0], "no item could be packed"));
        bail!(ValidationError { dataset: PathBuf::from(&names), problems });
    };
    let index = writer.finish(&skipped, sources)?;
    debug_assert!(index.shards.iter().enumerate().all(|(k, s)| s.file == shard_name(k)));
    Ok(PackSummary { index, samples, seconds: started.elapsed().as_secs_f64(), skipped })
}

/// The progress of a stopped pack in `folder` that this command may continue: one of the same
/// folders and shard size whose closed shards are all there at their sizes. Anything else is
/// said, and the pack starts over.
fn stopped_pack(folder: &OutFolder, sources: &[String], shard_bytes: u64) -> Option<PackProgress> {
    if !folder.wrote(pack::PROGRESS) {
        return None;
    }
    let path = folder.dir().join(pack::PROGRESS);
    let Some(progress) = std::fs::read_to_string(&path).ok().and_then(|t| PackProgress::parse(&t)) else {
        println!("{} cannot be read or was changed: packing from the start", path.display());
        return None;
    };
    let why_not = if progress.sources != sources || progress.shard_bytes != shard_bytes {
        Some("it packed other folders or another --shard-mb".to_string())
    } else {
        progress.shards.iter().enumerate().find_map(|(k, s)| {
            let size = std::fs::metadata(folder.dir().join(&s.file)).map(|m| m.len()).ok();
            (s.file != shard_name(k) || size != Some(s.bytes) || !folder.wrote(&s.file))
                .then(|| format!("its shard {} is not as it was closed", s.file))
        })
    };
    match why_not {
        Some(reason) => {
            println!("not continuing the stopped pack in {}: {reason}; packing from the start", folder.dir().display());
            None
        }
        None => Some(progress),
    }
}

fn column_names(columns: Heads<bool>) -> String {
    columns.iter().filter(|(_, &on)| on).map(|(h, _)| h.name()).collect::<Vec<_>>().join(" and ")
}

fn progress_bar(items: u64) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(items);
    bar.set_style(
        ProgressStyle::with_template("packing {bar:40} {pos}/{len} clips, {per_sec}, {eta} left")
            .expect("a valid template"),
    );
    bar
}
