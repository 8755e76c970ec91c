//! What `sn-wgpu train` was asked, turned into what it will do: the defaults of a new run, or the
//! settings of the run being resumed. A checkpoint records the run it belongs to (`RunRecord`, in
//! its metadata), so `--resume DIR` continues that run, not whatever the defaults are today; a flag
//! given again must agree with it, except the few a run may change on the way (`--steps`,
//! `--save-every`, `--keep-last`, `--val-every`).

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::run::{TeacherChoice, TrainOptions};
use super::run_dir;
use crate::ops::adam::AdamConfig;
use crate::ops::teacher_loss::TeacherLoss;

/// The checkpoint metadata key that holds a `RunRecord` as JSON.
pub const RUN_KEY: &str = "run";

/// The longest clip length `--seconds` takes (an hour: far past what any GPU binds for conv1).
const MAX_SECONDS: f64 = 3600.0;

/// The settings that make a run what it is, as its checkpoints record them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The dataset folders (absolute); none for the built-in demo. (Runs recorded before several
    /// folders were allowed hold one path or null.)
    #[serde(deserialize_with = "one_or_many")]
    pub data: Vec<PathBuf>,
    /// `--teacher`; None (and in runs recorded before it existed): every teacher the data has.
    #[serde(default)]
    pub teacher: Option<TeacherChoice>,
    /// `--loss`; kl in runs recorded before it existed.
    #[serde(default)]
    pub loss: TeacherLoss,
    pub model: String,
    pub batch_size: usize,
    pub accumulate: usize,
    pub seconds: f64,
    pub steps: u64,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub seed: u64,
    pub shuffle: bool,
    pub val_data: Option<PathBuf>,
    pub val_every: u64,
    pub skip_bad: bool,
    pub save_every: u64,
    pub demo_clips_per_class: usize,
}

impl RunRecord {
    pub fn of(opts: &TrainOptions) -> RunRecord {
        RunRecord {
            data: opts.data.iter().map(|p| absolute(p)).collect(),
            teacher: opts.teacher,
            loss: opts.loss,
            model: opts.model.clone(),
            batch_size: opts.batch_size,
            accumulate: opts.accumulate,
            seconds: opts.seconds,
            steps: opts.steps,
            lr: opts.adam.lr,
            beta1: opts.adam.beta1,
            beta2: opts.adam.beta2,
            eps: opts.adam.eps,
            seed: opts.seed,
            shuffle: opts.shuffle,
            val_data: opts.val_data.as_deref().map(absolute),
            val_every: opts.val_every,
            skip_bad: opts.skip_bad,
            save_every: opts.save_every,
            demo_clips_per_class: opts.demo_clips_per_class,
        }
    }

    /// The record in `checkpoint`'s metadata, or None for checkpoints written before runs were
    /// recorded.
    pub fn from_metadata(
        checkpoint: &Path,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<RunRecord>> {
        metadata
            .get(RUN_KEY)
            .map(|json| {
                serde_json::from_str(json)
                    .with_context(|| format!("{}: the metadata {RUN_KEY:?} is not a run record", checkpoint.display()))
            })
            .transpose()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a run record serialises")
    }
}

/// A list of paths, or one path, or null (none).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Recorded {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match Option::<Recorded>::deserialize(d)? {
        None => Vec::new(),
        Some(Recorded::One(p)) => vec![p],
        Some(Recorded::Many(v)) => v,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Every `sn-wgpu train` flag as given: None where the user left it to the default (or, with
/// `--resume`, to the run being resumed).
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    /// Dataset folders; empty: the demo (or, with `--resume`, the run's).
    pub data: Vec<PathBuf>,
    pub teacher: Option<TeacherChoice>,
    pub loss: Option<TeacherLoss>,
    pub model: Option<String>,
    pub batch_size: Option<usize>,
    pub accumulate: Option<usize>,
    pub seconds: Option<f64>,
    pub steps: Option<u64>,
    pub lr: Option<f64>,
    pub beta1: Option<f64>,
    pub beta2: Option<f64>,
    pub eps: Option<f64>,
    pub seed: Option<u64>,
    pub no_shuffle: bool,
    pub out: Option<PathBuf>,
    pub save_every: Option<u64>,
    pub keep_last: Option<usize>,
    pub resume: Option<PathBuf>,
    pub init: Option<PathBuf>,
    pub val_data: Option<PathBuf>,
    pub val_every: Option<u64>,
    pub skip_bad: bool,
    pub overwrite: bool,
}

impl TrainRequest {
    /// The options of the run this request starts or continues, checked before anything runs.
    /// Notes for the user (a changed `--steps`, a fallback checkpoint) are printed.
    pub fn resolve(self) -> Result<TrainOptions> {
        let opts = match self.resume.clone() {
            Some(path) => self.continuing(&path)?,
            None => self.starting()?,
        };
        opts.validate()?;
        Ok(opts)
    }

    /// A new run: the demo's defaults without --data, the full ones with it.
    fn starting(self) -> Result<TrainOptions> {
        ensure!(
            !self.overwrite || self.out.is_some(),
            "--overwrite needs --out: the default --out is always a new folder"
        );
        let demo = self.data.is_empty();
        let defaults = AdamConfig::default();
        Ok(TrainOptions {
            batch_size: self.batch_size.unwrap_or(if demo { 4 } else { 8 }),
            seconds: self.seconds.unwrap_or(if demo { 10.0 } else { 20.0 }),
            steps: self.steps.unwrap_or(if demo { 250 } else { 1000 }),
            out: match self.out {
                Some(out) => out,
                None => run_dir::fresh(Path::new("runs"))?,
            },
            model: self.model.unwrap_or_else(|| "soundnet8".to_string()),
            accumulate: self.accumulate.unwrap_or(1),
            adam: AdamConfig {
                lr: self.lr.unwrap_or(defaults.lr),
                beta1: self.beta1.unwrap_or(defaults.beta1),
                beta2: self.beta2.unwrap_or(defaults.beta2),
                eps: self.eps.unwrap_or(defaults.eps),
            },
            seed: self.seed.unwrap_or(0),
            shuffle: !self.no_shuffle,
            save_every: self.save_every.unwrap_or(if demo { 50 } else { 100 }),
            keep_last: self.keep_last,
            overwrite: self.overwrite,
            resume: None,
            init: self.init,
            val_data: self.val_data,
            val_every: self.val_every.unwrap_or(100),
            skip_bad: self.skip_bad,
            data: self.data,
            teacher: self.teacher,
            loss: self.loss.unwrap_or_default(),
            demo_clips_per_class: 4,
        })
    }

    /// The run recorded in the checkpoint `path` names (a folder or a file), with the flags that
    /// may change taken from this request and every other flag checked against the record.
    fn continuing(self, path: &Path) -> Result<TrainOptions> {
        ensure!(!self.overwrite, "--overwrite starts a new run; it cannot be used with --resume");
        ensure!(self.init.is_none(), "--init starts a new run from a checkpoint's weights; --resume continues one");
        let point = run_dir::resume_point(path)?;
        let Some(record) = RunRecord::from_metadata(&point.checkpoint, &point.loaded.metadata)? else {
            bail!(
                "{} was written before sn-wgpu recorded the settings of a run, so --resume cannot tell what to \
                 continue; start a new run from its weights with --init {} (and the flags of the old run)",
                point.checkpoint.display(),
                point.checkpoint.display()
            );
        };
        if let Some(out) = &self.out {
            ensure!(
                absolute(out) == absolute(&point.dir),
                "--out {} differs from the folder of the run being resumed ({}); a resumed run stays in its folder",
                out.display(),
                point.dir.display()
            );
        }
        let mut clashes = Vec::new();
        let mut check = |flag: &str, given: Option<String>, recorded: String| {
            if let Some(given) = given {
                if given != recorded {
                    clashes.push(format!("{flag} {given} (the run has {recorded})"));
                }
            }
        };
        let path_text = |p: &Option<PathBuf>| p.as_deref().map(|p| absolute(p).display().to_string());
        let paths_text = |p: &[PathBuf]| p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
        let recorded_path = |p: &Option<PathBuf>, none: &str| match p {
            Some(p) => p.display().to_string(),
            None => none.to_string(),
        };
        let given: Vec<PathBuf> = self.data.iter().map(|p| absolute(p)).collect();
        let recorded_data = if record.data.is_empty() { "the demo".to_string() } else { paths_text(&record.data) };
        check("--data", (!given.is_empty()).then(|| paths_text(&given)), recorded_data);
        let teacher_text =
            |t: Option<TeacherChoice>| t.map_or("every teacher of the data".to_string(), |t| t.to_string());
        check("--teacher", self.teacher.map(|t| t.to_string()), teacher_text(record.teacher));
        check("--loss", self.loss.map(|l| l.to_string()), record.loss.to_string());
        check("--model", self.model.clone(), record.model.clone());
        check("--batch-size", self.batch_size.map(|v| v.to_string()), record.batch_size.to_string());
        check("--accumulate", self.accumulate.map(|v| v.to_string()), record.accumulate.to_string());
        check("--seconds", self.seconds.map(|v| v.to_string()), record.seconds.to_string());
        check("--lr", self.lr.map(|v| v.to_string()), record.lr.to_string());
        check("--beta1", self.beta1.map(|v| v.to_string()), record.beta1.to_string());
        check("--beta2", self.beta2.map(|v| v.to_string()), record.beta2.to_string());
        check("--eps", self.eps.map(|v| v.to_string()), record.eps.to_string());
        check("--seed", self.seed.map(|v| v.to_string()), record.seed.to_string());
        check(
            "--no-shuffle",
            self.no_shuffle.then(|| "given".into()),
            if record.shuffle { "shuffling" } else { "given" }.into(),
        );
        check("--val-data", path_text(&self.val_data), recorded_path(&record.val_data, "none"));
        check(
            "--skip-bad",
            self.skip_bad.then(|| "given".into()),
            if record.skip_bad { "given" } else { "not given" }.into(),
        );
        if !clashes.is_empty() {
            bail!(
                "--resume {} continues a run with its own settings, and these flags disagree with them: {}. \
                 Leave them out to continue the run as it was, or start a new run from its weights with --init {}",
                path.display(),
                clashes.join("; "),
                point.checkpoint.display()
            );
        }
        if let Some(note) = &point.note {
            println!("note: {note}");
        }
        let changed = |flag: &str, given: Option<u64>, recorded: u64| {
            if let Some(given) = given.filter(|&g| g != recorded) {
                println!("note: taking {flag} {given} (the run was started with {recorded})");
            }
        };
        changed("--steps", self.steps, record.steps);
        changed("--save-every", self.save_every, record.save_every);
        changed("--val-every", self.val_every, record.val_every);
        Ok(TrainOptions {
            data: record.data,
            teacher: record.teacher,
            loss: record.loss,
            model: record.model,
            batch_size: record.batch_size,
            accumulate: record.accumulate,
            seconds: record.seconds,
            steps: self.steps.unwrap_or(record.steps),
            adam: AdamConfig { lr: record.lr, beta1: record.beta1, beta2: record.beta2, eps: record.eps },
            seed: record.seed,
            shuffle: record.shuffle,
            out: point.dir,
            save_every: self.save_every.unwrap_or(record.save_every),
            keep_last: self.keep_last,
            overwrite: false,
            resume: Some(point.checkpoint),
            init: None,
            val_data: record.val_data,
            val_every: self.val_every.unwrap_or(record.val_every),
            skip_bad: record.skip_bad,
            demo_clips_per_class: record.demo_clips_per_class,
        })
    }
}

impl TrainOptions {
    /// Refuses settings that cannot train, before anything runs.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.batch_size >= 1, "--batch-size must be at least 1");
        ensure!(self.steps >= 1, "--steps must be at least 1");
        ensure!(
            self.accumulate >= 1 && self.batch_size.is_multiple_of(self.accumulate),
            "--batch-size {} does not split into --accumulate {} equal micro-batches",
            self.batch_size,
            self.accumulate
        );
        ensure!(
            self.seconds.is_finite() && self.seconds > 0.0 && self.seconds <= MAX_SECONDS,
            "--seconds {} must be a number of seconds above 0 and at most {MAX_SECONDS}",
            self.seconds
        );
        let AdamConfig { lr, beta1, beta2, eps } = self.adam;
        ensure!(
            lr.is_finite() && lr > 0.0,
            "--lr {lr} must be a positive number (a negative rate would climb the loss instead of descending it)"
        );
        for (flag, beta) in [("--beta1", beta1), ("--beta2", beta2)] {
            ensure!((0.0..1.0).contains(&beta), "{flag} {beta} must lie in [0, 1): Adam divides by 1 - beta^step");
        }
        ensure!(eps.is_finite() && eps > 0.0, "--eps {eps} must be a positive number: Adam divides by sqrt(v) + eps");
        ensure!(
            self.val_data.is_none() || self.val_every >= 1,
            "--val-every must be at least 1 when --val-data is given"
        );
        ensure!(self.keep_last != Some(0), "--keep-last must be at least 1 (it keeps the newest N step files)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_recorded_with_one_data_folder_or_the_demo_still_load() {
        let recorded = |data: &str| {
            format!(
                r#"{{"data":{data},"model":"soundnet5","batch_size":4,"accumulate":1,"seconds":10.0,"steps":5,
                "lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"seed":0,"shuffle":true,"val_data":null,
                "val_every":100,"skip_bad":false,"save_every":100,"demo_clips_per_class":4}}"#
            )
        };
        let parse = |data: &str| serde_json::from_str::<RunRecord>(&recorded(data)).unwrap();
        assert_eq!(parse(r#""/d/one""#).data, vec![PathBuf::from("/d/one")]);
        assert_eq!(parse("null").data, Vec::<PathBuf>::new());
        let many = parse(r#"["/d/a","/d/b"]"#);
        assert_eq!((many.data.len(), many.teacher, many.loss), (2, None, TeacherLoss::Kl));
        let again: RunRecord = serde_json::from_str(&many.to_json()).unwrap();
        assert_eq!(again, many);
    }
}
