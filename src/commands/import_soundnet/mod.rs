//! `sn-wgpu import-soundnet`: the authors' released training set (`release`) as dataset folders
//! for `train --data`, one per list: `OUT/{split}-NNNN/` with `manifest.csv` (the MP3 where it
//! lies, as an absolute path: nothing is copied) and `teacher/<stem>.objects.npy` `[rows, 1000]`
//! and `.scenes.npy` `[rows, 401]`, a row per listed frame (at most 4). A video whose MP3 is
//! missing, or whose rows are not distributions, is left out and listed in the folder's
//! `skipped.txt`; a list whose `prob` files do not match it is refused whole, and the other lists
//! go on. A folder is finished when its manifest is there (written last, atomically), so the same
//! command again skips it; `--shard K/N` takes lists K, K + N, ... (counted from 0), for an array
//! job over many machines.

pub mod release;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use self::release::{Prob, Split, Video, FRAMES};
use crate::data::manifest::MANIFEST;
use crate::data::{Problem, OBJECT_CLASSES, SCENE_CLASSES};
use crate::eval::extract::write_npy;
use crate::eval::shard::Shard;
use crate::model::HeadKind;
use crate::out_folder::OutFolder;

/// Where the released files were unpacked, and what to make of them.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The folder of `{split}_frames4_NNNN.txt`.
    pub lists: PathBuf,
    /// The folder of `VGG16_IMNET_{SPLIT}_BNNNN/prob` and `VGG16_PLACES2_{SPLIT}_BNNNN/prob`.
    pub features: PathBuf,
    /// The MP3 root: video key `k` is `<audio>/<k>.mp3`.
    pub audio: PathBuf,
    pub split: Split,
    pub out: PathBuf,
    pub shard: Option<Shard>,
}

/// What happened to one list.
#[derive(Debug)]
pub enum ListResult {
    Imported { dir: PathBuf, videos: usize, rows: usize, skipped: usize, cut: usize },
    DoneBefore { dir: PathBuf },
    Refused(Problem),
}

#[derive(Debug)]
pub struct ImportSummary {
    pub lists: Vec<(u32, ListResult)>,
}

/// The lists of `split` in `dir`, by number.
fn list_numbers(dir: &Path, split: Split) -> Result<Vec<u32>> {
    let prefix = format!("{}_frames4_", split.name());
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)
        .with_context(|| format!("--lists {}: cannot read the folder", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_prefix(&prefix)?.strip_suffix(".txt")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    ensure!(
        !numbers.is_empty(),
        "--lists {}: no {prefix}NNNN.txt (the release's lists_public.tar.gz unpacks to a folder of them)",
        dir.display()
    );
    Ok(numbers)
}

/// Imports every list of the split (those of `--shard`), each on its own: a refused list is
/// reported, and the others still imported.
pub fn import(opts: &ImportOptions) -> Result<ImportSummary> {
    let numbers = list_numbers(&opts.lists, opts.split)?;
    let mine: Vec<u32> = numbers
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|s| *i as u64 % s.count == s.index))
        .map(|(_, &n)| n)
        .collect();
    let audio_root = std::fs::canonicalize(&opts.audio)
        .with_context(|| format!("--audio {}: no such folder", opts.audio.display()))?;
    let mut lists = Vec::with_capacity(mine.len());
    for n in mine {
        let dir = opts.out.join(format!("{}-{n:04}", opts.split.name()));
        let result = if dir.join(MANIFEST).exists() {
            ListResult::DoneBefore { dir }
        } else {
            match import_list(opts, &audio_root, n, &dir)? {
                Ok(result) => result,
                Err(problem) => ListResult::Refused(problem),
            }
        };
        println!("{}", describe(n, &result));
        lists.push((n, result));
    }
    Ok(ImportSummary { lists })
}

/// One list into `dir`. The outer error is the output failing (nothing to go on with); the inner
/// one a list the release's files do not agree with.
fn import_list(opts: &ImportOptions, audio_root: &Path, n: u32, dir: &Path) -> Result<Result<ListResult, Problem>> {
    let list = opts.split.list(&opts.lists, n);
    let (videos, lines) = match release::read_list(&list) {
        Ok(read) => read,
        Err(p) => return Ok(Err(p)),
    };
    let mut probs = Vec::new();
    for (head, classes) in [(HeadKind::Objects, OBJECT_CLASSES), (HeadKind::Scenes, SCENE_CLASSES)] {
        match Prob::open(&opts.split.prob(&opts.features, head, n), classes, lines) {
            Ok(p) => probs.push((head, p)),
            Err(p) => return Ok(Err(p)),
        }
    }
    let stem = |v: &Video| {
        let base = v.key.rsplit('/').next().unwrap_or(&v.key);
        format!("{:07}-{base}", v.line)
    };
    let array = |v: &Video, head: HeadKind| format!("teacher/{}.{head}.npy", stem(v));
    let mut folder = OutFolder::lock(dir, "--out")?;
    let mut names: Vec<String> = vec![MANIFEST.into(), "skipped.txt".into()];
    names.extend(videos.iter().flat_map(|v| HeadKind::TEACHERS.map(|h| array(v, h))));
    let claimed = folder.claim(&names)?;
    let manifest_path = claimed[0].clone();

    let mut manifest = csv::Writer::from_writer(Vec::new());
    manifest.write_record(["audio", "objects", "scenes"])?;
    let (mut skipped, mut imported, mut rows_written, mut cut) = (Vec::new(), 0, 0, 0);
    for v in &videos {
        let kept = v.frames.min(FRAMES);
        let mut rows = Vec::new();
        let mut bad = None;
        for (_, prob) in probs.iter_mut() {
            // Every row is read, kept or not, so the next video starts at its own.
            let mut values = match prob.rows(v.frames) {
                Ok(values) => values,
                Err(p) => return Ok(Err(p)),
            };
            if let Ok(values) = &mut values {
                values.truncate(kept * prob.classes);
            }
            match values {
                Ok(values) => rows.push(values),
                Err(p) => bad = bad.or(Some(p)),
            }
        }
        let audio = audio_root.join(format!("{}.mp3", v.key));
        let problem =
            bad.or_else(|| (!audio.is_file()).then(|| Problem::new(&audio, format!("missing (list line {})", v.line))));
        if let Some(p) = problem {
            skipped.push(p);
            continue;
        }
        let mut record = vec![audio.to_string_lossy().into_owned()];
        for ((head, prob), values) in probs.iter().zip(rows) {
            let name = array(v, *head);
            write_npy(&dir.join(&name), &[kept, prob.classes], &values)
                .with_context(|| format!("writing {}", dir.join(&name).display()))?;
            record.push(name);
        }
        manifest.write_record(&record)?;
        imported += 1;
        rows_written += kept;
        cut += usize::from(v.frames > FRAMES);
    }
    let mut text = String::new();
    for p in &skipped {
        let _ = writeln!(text, "{p}");
    }
    std::fs::write(&claimed[1], text).with_context(|| format!("writing {}", claimed[1].display()))?;
    // The manifest last, whole or not at all: its presence is what says the folder is finished.
    let partial = dir.join(format!(".{MANIFEST}.partial"));
    std::fs::write(&partial, manifest.into_inner()?).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &manifest_path).with_context(|| format!("writing {}", manifest_path.display()))?;
    Ok(Ok(ListResult::Imported {
        dir: dir.to_path_buf(),
        videos: imported,
        rows: rows_written,
        skipped: skipped.len(),
        cut,
    }))
}

fn describe(n: u32, r: &ListResult) -> String {
    match r {
        ListResult::Imported { dir, videos, rows, skipped, cut } => {
            let mut s = format!("list {n:04}: {videos} videos, {rows} teacher rows -> {}", dir.display());
            if *skipped > 0 {
                let _ = write!(s, "; {skipped} left out, listed in {}", dir.join("skipped.txt").display());
            }
            if *cut > 0 {
                let _ = write!(s, "; {cut} with more than {FRAMES} frames keep their first {FRAMES}");
            }
            s
        }
        ListResult::DoneBefore { dir } => format!("list {n:04}: imported before ({}), kept", dir.display()),
        ListResult::Refused(p) => format!("list {n:04}: refused: {p}"),
    }
}

impl ImportSummary {
    /// The lists refused, as the command's error (None when every list was imported).
    pub fn refused(&self) -> Option<String> {
        let refused: Vec<String> = self
            .lists
            .iter()
            .filter_map(|(n, r)| match r {
                ListResult::Refused(p) => Some(format!("list {n:04}: {p}")),
                _ => None,
            })
            .collect();
        (!refused.is_empty()).then(|| {
            format!(
                "{} of {} lists refused (the others were imported; fix these and run the same command again):\n  {}",
                refused.len(),
                self.lists.len(),
                refused.join("\n  ")
            )
        })
    }
}
