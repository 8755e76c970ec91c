//! The folder a run writes to: a fresh one by default, never another run's unless asked, cleaned
//! of a crashed save's temporary files, and the checkpoint to resume from in it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::checkpoint::Checkpoint;
use crate::out_folder::OutFolder;

/// `parent/YYYYMMDD-HHMMSS` (UTC) for a new run, with `-2`, `-3`... when that is taken.
pub fn fresh(parent: &Path) -> Result<PathBuf> {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let stamp = format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rest / 3600, rest / 60 % 60, rest % 60);
    let mut dir = parent.join(&stamp);
    for n in 2.. {
        if !dir.exists() {
            break;
        }
        dir = parent.join(format!("{stamp}-{n}"));
    }
    Ok(dir)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The files of a run in its folder: checkpoints, metrics and the loss curve.
fn run_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == "last.safetensors" || name == "metrics.jsonl" || name == "loss.png" || step_number(&name).is_some() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// N of `step-N.safetensors`.
fn step_number(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.strip_suffix(".safetensors")?.parse().ok()
}

/// The step checkpoints in `dir`, newest first.
fn step_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut steps: Vec<(u64, PathBuf)> = run_files(dir)?
        .into_iter()
        .filter_map(|p| step_number(&p.file_name()?.to_string_lossy()).map(|n| (n, p)))
        .collect();
    steps.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(steps)
}

/// The files a run writes at fixed names (step checkpoints are claimed as they are saved).
const FIXED_FILES: [&str; 3] = ["last.safetensors", "metrics.jsonl", "loss.png"];

/// Makes the locked `folder` ready for a run: refuses one where a file of a run's name is not on
/// the folder's list of what sn-wgpu wrote (training would overwrite or delete it); for a new run
/// (`resuming` false) also one that holds another run, unless `overwrite`, which deletes that run's
/// files (nothing else in the folder).
pub fn claim(folder: &mut OutFolder, resuming: bool, overwrite: bool) -> Result<()> {
    let dir = folder.dir().to_path_buf();
    let existing = run_files(&dir)?;
    let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let foreign: Vec<String> = existing.iter().map(name).filter(|n| !folder.wrote(n)).collect();
    if !foreign.is_empty() {
        bail!(
            "--out {}: {} {} the name of a file a run writes but {} not written by sn-wgpu (the files it wrote \
             there are listed in {}), so training would replace {}; move {}, or choose another --out",
            dir.display(),
            foreign.join(", "),
            if foreign.len() == 1 { "has" } else { "have" },
            if foreign.len() == 1 { "was" } else { "were" },
            crate::out_folder::WRITTEN_LIST,
            if foreign.len() == 1 { "it" } else { "them" },
            if foreign.len() == 1 { "it" } else { "them" },
        );
    }
    if !resuming && !existing.is_empty() {
        if !overwrite {
            bail!(
                "--out {} already holds a run ({}); continue it with `sn-wgpu train --resume {}`, choose another \
                 --out, or pass --overwrite to replace it",
                dir.display(),
                existing
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", "),
                dir.display()
            );
        }
        for file in &existing {
            folder.remove(&name(file)).with_context(|| format!("--overwrite: removing {}", file.display()))?;
        }
        println!("--overwrite: removed the previous run's {} file(s) from {}", existing.len(), dir.display());
    }
    folder.claim(&FIXED_FILES)?;
    Ok(())
}

/// Removes the temporary files a save left when the process died while writing (see
/// `Checkpoint::save`): they are never a valid checkpoint.
pub fn remove_partial_saves(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') && name.contains(".safetensors.tmp-") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            println!("note: removed {}, a checkpoint a crash left half written", path.display());
        }
    }
    Ok(())
}

/// Keeps the newest `keep` step checkpoints sn-wgpu wrote in `folder` and deletes the others.
pub fn keep_last(folder: &mut OutFolder, keep: usize) -> Result<()> {
    let steps = step_checkpoints(folder.dir())?;
    let names: Vec<String> = steps
        .iter()
        .filter_map(|(_, p)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| folder.wrote(n))
        .collect();
    for name in names.iter().skip(keep) {
        folder.remove(name).with_context(|| format!("--keep-last: removing {name}"))?;
    }
    Ok(())
}

/// Where `--resume` continues from.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    pub checkpoint: PathBuf,
    /// Its contents (loading it is how it was found to be whole).
    pub loaded: Checkpoint,
    /// The run's folder.
    pub dir: PathBuf,
    /// Why it is not `last.safetensors`, when it is not.
    pub note: Option<String>,
}

/// The checkpoint `--resume path` means: `path` itself when it is a file; in a folder, its
/// `last.safetensors`, or when that is missing or unreadable (a crash while writing the first
/// one) the newest `step-N.safetensors` that loads.
pub fn resume_point(path: &Path) -> Result<ResumePoint> {
    if path.is_file() {
        let loaded = Checkpoint::load(path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        return Ok(ResumePoint { checkpoint: path.to_path_buf(), loaded, dir, note: None });
    }
    if !path.is_dir() {
        bail!("--resume {}: no such folder or checkpoint file", path.display());
    }
    let last = path.join("last.safetensors");
    let problem = match Checkpoint::load(&last) {
        Ok(loaded) => return Ok(ResumePoint { checkpoint: last, loaded, dir: path.to_path_buf(), note: None }),
        Err(e) if last.exists() => format!("{e:#}"),
        Err(_) => format!("{} does not exist", last.display()),
    };
    for (_, step) in step_checkpoints(path)? {
        if let Ok(loaded) = Checkpoint::load(&step) {
            let note = format!("{problem}; continuing from {}, the newest step checkpoint that loads", step.display());
            return Ok(ResumePoint { checkpoint: step, loaded, dir: path.to_path_buf(), note: Some(note) });
        }
    }
    bail!(
        "--resume {}: no checkpoint to continue from ({problem}, and no step-N.safetensors that loads)",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
    }

    #[test]
    fn step_names_parse() {
        assert_eq!(step_number("step-000120.safetensors"), Some(120));
        assert_eq!(step_number("last.safetensors"), None);
        assert_eq!(step_number("step-x.safetensors"), None);
    }
}
