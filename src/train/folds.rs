//! `train --labels DIR --folds all` (or `--folds 1,3`): leave-one-fold-out training, the paper's
//! protocol. Each fold in turn is held out of a run of its own in `OUT/fold-N` (a run like any
//! other: checkpoints, metrics, loss curve, resumable with `--resume OUT/fold-N`) whose last step
//! classifies the held-out clips; `OUT/folds.json` gathers the folds' accuracies, rewritten after
//! each fold, so a stopped sweep keeps what it finished. The same command again continues the
//! sweep: a fold already in the table at the steps asked for is kept, a fold with a checkpoint
//! is resumed from it, and the rest start (`--overwrite` starts the sweep over).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use super::request::TrainFlags;
use super::run::{run, TrainSummary};
use super::run_dir;
use crate::data::meta::Meta;
use crate::out_folder::OutFolder;

/// The table of a sweep, in the folder it trained in.
pub const FOLDS_FILE: &str = "folds.json";

/// One fold's run, as the table shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FoldRow {
    pub fold: u32,
    pub clips: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub steps: u64,
    /// Mean training loss of the run's first and last steps (as `train` reports them).
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
    /// Wall time of the fold's run, held-out pass included.
    pub seconds: f64,
    pub run: PathBuf,
}

/// What `folds.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct FoldsReport {
    pub labels: PathBuf,
    pub model: String,
    pub head: Option<String>,
    pub freeze: Option<String>,
    pub init: Option<PathBuf>,
    pub folds: Vec<FoldRow>,
    /// The mean of the folds' accuracies (the paper's figure), and the clips right over all folds.
    pub mean_accuracy: f64,
    pub pooled_accuracy: f64,
    /// The signal that stopped the sweep, if one did.
    #[serde(skip)]
    pub interrupted: Option<i32>,
    #[serde(skip)]
    pub out: PathBuf,
}

/// `all` or a comma-separated list of folds of `meta`.
fn parse_folds(spec: &str, meta: &Meta) -> Result<Vec<u32>> {
    let known = || meta.folds.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    if spec == "all" {
        return Ok(meta.folds.clone());
    }
    let mut folds = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let fold: u32 = part.parse().map_err(|_| {
            anyhow::anyhow!("--folds {spec:?}: {part:?} is not a fold number; give `all` or folds such as 1,2")
        })?;
        ensure!(
            meta.folds.contains(&fold),
            "--folds {spec}: {} has no fold {fold}; its folds are {}",
            meta.path().display(),
            known()
        );
        if !folds.contains(&fold) {
            folds.push(fold);
        }
    }
    Ok(folds)
}

/// Trains one run per fold of `spec`, each holding that fold out, and writes the table.
pub fn run_folds(flags: TrainFlags, spec: &str) -> Result<FoldsReport> {
    let Some(labels) = flags.settings.labels.clone().flatten() else {
        bail!("--folds needs --labels DIR: folds are those of a labeled folder's meta.csv");
    };
    ensure!(
        flags.resume.is_none(),
        "--folds starts a sweep; to continue one fold's run, pass --resume OUT/fold-N without --folds"
    );
    let meta = Meta::read(&labels).with_context(|| format!("--labels {}", labels.display()))?;
    let folds = parse_folds(spec, &meta)?;
    let out = match &flags.out {
        Some(out) => out.clone(),
        None => run_dir::fresh(Path::new("runs"))?,
    };
    // One sweep per folder: its runs are its subfolders, each locked by its own run in turn.
    let mut folder = OutFolder::lock(&out, "--out")?;
    let table = folder.claim(&[FOLDS_FILE])?.remove(0);
    let finished = match flags.overwrite {
        true => Vec::new(),
        false => finished_rows(&table)?,
    };
    println!("leave-one-fold-out on {}: folds {} in turn, in {}", labels.display(), join(&folds), out.display());
    let mut report = FoldsReport {
        labels,
        model: String::new(),
        head: None,
        freeze: None,
        init: flags.init.clone(),
        folds: Vec::new(),
        mean_accuracy: 0.0,
        pooled_accuracy: 0.0,
        interrupted: None,
        out: out.clone(),
    };
    for &fold in &folds {
        let dir = out.join(format!("fold-{fold}"));
        println!("\n== fold {fold} held out ==");
        let mut one = flags.clone();
        one.settings.held_out = Some(Some(fold));
        one.out = Some(dir.clone());
        if !flags.overwrite && run_dir::resume_point(&dir).is_ok() {
            // The run's record holds what --init gave it; its other flags must agree with it.
            (one.resume, one.init) = (Some(dir.clone()), None);
        }
        let resuming = one.resume.is_some();
        let opts = one.resolve().with_context(|| match resuming {
            true => format!(
                "fold {fold} of the sweep in {}: its run holds other settings; pass --overwrite to start the sweep \
                 over, or choose another --out",
                out.display()
            ),
            false => format!("fold {fold}"),
        })?;
        let done = finished.iter().find(|r| r.fold == fold && r.steps == opts.settings.steps);
        if let Some(row) = done.filter(|_| opts.resume.is_some()) {
            println!("fold {fold}: done before ({:.2}% at step {}), kept", 100.0 * row.accuracy, row.steps);
            report.folds.push(row.clone());
            continue;
        }
        (report.model, report.head, report.freeze) =
            (opts.settings.model.clone(), opts.settings.head.clone(), opts.settings.freeze.clone());
        let started = Instant::now();
        let summary: TrainSummary = run(&opts)?;
        print!("{}", summary.describe(false));
        report.interrupted = summary.interrupted;
        if let Some(r) = summary.held_out {
            report.folds.push(FoldRow {
                fold,
                clips: r.clips,
                correct: r.correct,
                accuracy: r.accuracy,
                steps: summary.steps_done,
                first_loss: summary.first_loss,
                last_loss: summary.last_loss,
                seconds: started.elapsed().as_secs_f64(),
                run: opts.out.clone(),
            });
        }
        report.settle();
        let json = serde_json::to_string_pretty(&report).expect("a report serialises");
        std::fs::write(&table, json).with_context(|| format!("writing {}", table.display()))?;
        if report.interrupted.is_some() {
            break;
        }
    }
    Ok(report)
}

/// The folds an earlier sweep in this folder finished, from its table (none when there is none).
fn finished_rows(table: &Path) -> Result<Vec<FoldRow>> {
    #[derive(serde::Deserialize)]
    struct Table {
        folds: Vec<FoldRow>,
    }
    match std::fs::read_to_string(table) {
        Ok(text) => match serde_json::from_str::<Table>(&text) {
            Ok(t) => Ok(t.folds),
            Err(e) => bail!(
                "{}: not a sweep's table ({e}); pass --overwrite to start the sweep over, or choose another --out",
                table.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", table.display())),
    }
}

fn join(folds: &[u32]) -> String {
    folds.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

impl FoldsReport {
    fn settle(&mut self) {
        let n = self.folds.len().max(1) as f64;
        self.mean_accuracy = self.folds.iter().map(|f| f.accuracy).sum::<f64>() / n;
        let (right, clips) = self.folds.iter().fold((0, 0), |(r, c), f| (r + f.correct, c + f.clips));
        self.pooled_accuracy = right as f64 / clips.max(1) as f64;
    }

    /// The table `train --folds` ends with.
    pub fn describe(&self) -> String {
        let mut s = format!("\nheld-out clip accuracy, {} on {}:\n", self.model, self.labels.display());
        s.push_str("fold  clips  right  accuracy  steps  loss first -> last  minutes\n");
        for f in &self.folds {
            let loss = |l: Option<f32>| l.map_or("-".to_string(), |l| format!("{l:.3}"));
            s.push_str(&format!(
                "{:>4}  {:>5}  {:>5}  {:>7.2}%  {:>5}  {:>8} -> {:<6}  {:>7.1}\n",
                f.fold,
                f.clips,
                f.correct,
                100.0 * f.accuracy,
                f.steps,
                loss(f.first_loss),
                loss(f.last_loss),
                f.seconds / 60.0
            ));
        }
        s.push_str(&format!(
            "mean  {:>5}  {:>5}  {:>7.2}%  (pooled over clips: {:.2}%)\n",
            self.folds.iter().map(|f| f.clips).sum::<usize>(),
            self.folds.iter().map(|f| f.correct).sum::<usize>(),
            100.0 * self.mean_accuracy,
            100.0 * self.pooled_accuracy
        ));
        s.push_str(&format!("table: {}\n", self.out.join(FOLDS_FILE).display()));
        s
    }
}
