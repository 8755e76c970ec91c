//! What a run is, declared once. Each setting is one entry of `run_settings!` below: the doc of
//! its `sn-wgpu train` flag, its type, its default for a new run (which may depend on whether it
//! trains on the built-in demo), and whether `--resume` may change it (`may_change`) or a flag given
//! again must agree with the run (`fixed`). From that one declaration come `RunSettings`, what a
//! run trains with and every checkpoint records (JSON under the metadata key `run`), and
//! `SettingFlags`, the flags as the command line gives them (None where left out), with how the two
//! meet: defaults for a new run, the recorded values for a resumed one.
//!
//! A new setting is one entry here; what reads it reads `RunSettings`.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::Heads;
use crate::ops::adam::AdamConfig;
use crate::ops::teacher_loss::TeacherLoss;

/// The checkpoint metadata key that holds a run's `RunSettings` as JSON.
pub const RUN_KEY: &str = "run";

/// The longest clip length `--seconds` takes (an hour: far past what any GPU binds for conv1).
const MAX_SECONDS: f64 = 3600.0;

/// `entry := docs [#[arg(..)]] [#[serde(..)]] (fixed | may_change) name: Type = |demo| default;`
macro_rules! run_settings {
    ($(
        $(#[doc = $doc:literal])*
        $(#[arg($($arg:tt)*)])?
        $(#[serde($($serde:tt)*)])?
        $rule:ident $name:ident: $ty:ty = |$demo:ident| $default:expr;
    )*) => {
        /// The settings that make a run what it is, as its checkpoints record them.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct RunSettings {
            $($(#[doc = $doc])* $(#[serde($($serde)*)])? pub $name: $ty,)*
        }

        /// The settings as `sn-wgpu train` was given them: None where left to the default (or,
        /// with `--resume`, to the run being resumed).
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct SettingFlags {
            $($(#[doc = $doc])* #[arg(long $(, $($arg)*)?)] pub $name: Option<$ty>,)*
        }

        impl SettingFlags {
            /// A new run's settings: each flag as given, else its default.
            pub fn new_run(&self) -> RunSettings {
                let demo = self.data.as_ref().is_none_or(|d| d.is_empty()) && self.labels.is_none();
                RunSettings {
                    $($name: match &self.$name {
                        Some(given) => given.clone().absolute(),
                        None => {
                            let $demo = demo;
                            $default
                        }
                    },)*
                }
            }

            /// The settings of the run `recorded` describes, continued: a flag of a setting that
            /// may change replaces it (a note says so); any other flag given that disagrees with
            /// the record is a clash. Returns the settings, the clashes and the notes.
            pub fn continuing(&self, recorded: RunSettings) -> (RunSettings, Vec<String>, Vec<String>) {
                let (mut settings, mut clashes, mut notes) = (recorded, Vec::new(), Vec::new());
                $(if let Some(given) = &self.$name {
                    let given = given.clone().absolute();
                    if given != settings.$name {
                        let flag = format!("--{}", stringify!($name).replace('_', "-"));
                        run_settings!(@$rule flag, given, settings.$name, clashes, notes);
                    }
                })*
                (settings, clashes, notes)
            }
        }
    };
    (@fixed $flag:ident, $given:ident, $recorded:expr, $clashes:ident, $notes:ident) => {
        $clashes.push(format!("{} {} (the run has {})", $flag, $given.show(), $recorded.show()))
    };
    (@may_change $flag:ident, $given:ident, $recorded:expr, $clashes:ident, $notes:ident) => {{
        $notes.push(format!("taking {} {} (the run was started with {})", $flag, $given.show(), $recorded.show()));
        $recorded = $given;
    }};
}

run_settings! {
    /// Dataset folders holding manifest.csv (columns audio and objects, scenes or both), trained on
    /// as one: `--data shard-*` takes the shards of `sn-wgpu teach --shard`. Without it, a
    /// synthetic demo set is generated in memory.
    #[arg(num_args = 1..)]
    #[serde(deserialize_with = "one_or_many")]
    fixed data: Vec<PathBuf> = |_demo| Vec::new();
    /// A labeled folder laid out as ESC-50 ships (meta.csv with columns filename, fold, target and
    /// optionally category; the clips under audio/): the network learns its classes from the
    /// labels, with cross-entropy, through one head as wide as the folder has classes.
    #[arg(num_args = 1, conflicts_with_all = ["data", "teacher", "val_data"])]
    #[serde(default)]
    fixed labels: Option<PathBuf> = |_demo| None;
    /// With --labels: the fold left out of training, whose clips are classified at the end.
    #[arg(hide = true, num_args = 1)]
    #[serde(default)]
    fixed held_out: Option<u32> = |_demo| None;
    /// With --labels: the body layer the classifier sits on (pool1, pool2, conv3, conv4, pool5,
    /// conv6, conv7 for soundnet8), a convolution of kernel 4 and stride 1 as the original
    /// fine-tuning appends; layers above it are left out [default: the layer table's head on the
    /// last body layer from scratch, conv7 (the last layer) with --init].
    #[arg(num_args = 1, requires = "labels")]
    #[serde(default)]
    fixed head: Option<String> = |_demo| None;
    /// With --labels: train none of the body layers up to and including this one (named as for
    /// --head); their batchnorm keeps its running statistics.
    #[arg(num_args = 1, requires = "labels")]
    #[serde(default)]
    fixed freeze: Option<String> = |_demo| None;
    /// Which teachers the student learns from, one head each (objects, scenes or both) [default:
    /// every teacher the data has].
    #[arg(num_args = 1)]
    #[serde(default)]
    fixed teacher: Option<TeacherChoice> = |_demo| None;
    /// How the student's probabilities are compared with the teacher's: kl (KL divergence, the
    /// paper's) or l2 (squared error, the paper's comparison) [default: kl].
    #[serde(default)]
    fixed loss: TeacherLoss = |_demo| TeacherLoss::default();
    /// soundnet8, soundnet5, or soundnet8-narrowN (body channels divided by N) [default: soundnet8].
    fixed model: String = |_demo| "soundnet8".to_string();
    /// Clips per step [default: 8 with --data, 4 on the demo].
    fixed batch_size: usize = |demo| if demo { 4 } else { 8 };
    /// Split each batch into N micro-batches whose gradients add up (batchnorm then uses
    /// micro-batch statistics): for batches larger than the GPU holds [default: 1].
    fixed accumulate: usize = |_demo| 1;
    /// Seconds of audio per clip (the first seconds; shorter clips are tiled) [default: 20 with
    /// --data, 10 on the demo].
    fixed seconds: f64 = |demo| if demo { 10.0 } else { 20.0 };
    /// Steps to train to, counted from the start of the run [default: 1000 with --data, 250 on the
    /// demo; with --resume, the run's own].
    may_change steps: u64 = |demo| if demo { 250 } else { 1000 };
    /// Adam's learning rate [default: 0.001].
    fixed lr: f64 = |_demo| AdamConfig::default().lr;
    /// [default: 0.9]
    fixed beta1: f64 = |_demo| AdamConfig::default().beta1;
    /// [default: 0.999]
    fixed beta2: f64 = |_demo| AdamConfig::default().beta2;
    /// [default: 1e-8]
    fixed eps: f64 = |_demo| AdamConfig::default().eps;
    /// Initialisation, demo data and shuffling [default: 0].
    fixed seed: u64 = |_demo| 0;
    /// Fixed order: manifest order, batches in sequence.
    #[arg(num_args = 0, default_missing_value = "true")]
    #[serde(rename = "shuffle", with = "inverted")]
    fixed no_shuffle: bool = |_demo| false;
    /// With packed shards: start each clip's crop at a random whole teacher row (5 s) of it
    /// instead of at its start, drawn anew at every step (the same on a resume).
    #[arg(num_args = 0, default_missing_value = "true")]
    #[serde(default)]
    fixed random_crop: bool = |_demo| false;
    /// Write step-NNNNNN.safetensors (and last.safetensors) every N steps; 0 = only at the end
    /// [default: 100 with --data, 50 on the demo].
    may_change save_every: u64 = |demo| if demo { 50 } else { 100 };
    /// A second dataset folder, evaluated (batchnorm in eval mode) every --val-every steps.
    #[arg(num_args = 1)]
    fixed val_data: Option<PathBuf> = |_demo| None;
    /// [default: 100]
    may_change val_every: u64 = |_demo| 100;
    /// Train on the good items of a dataset with bad ones, listing what was skipped.
    #[arg(num_args = 0, default_missing_value = "true")]
    fixed skip_bad: bool = |_demo| false;
    /// Clips per synthetic class when training on the demo.
    #[arg(hide = true)]
    fixed demo_clips_per_class: usize = |_demo| 4;
}

impl RunSettings {
    /// A run on the built-in synthetic demo: neither --data nor --labels.
    pub fn is_demo(&self) -> bool {
        self.data.is_empty() && self.labels.is_none()
    }

    pub fn adam(&self) -> AdamConfig {
        AdamConfig { lr: self.lr, beta1: self.beta1, beta2: self.beta2, eps: self.eps }
    }

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
        let AdamConfig { lr, beta1, beta2, eps } = self.adam();
        ensure!(
            lr.is_finite() && lr > 0.0,
            "--lr {lr} must be a positive number (a negative rate would climb the loss instead of descending it)"
        );
        for (flag, beta) in [("--beta1", beta1), ("--beta2", beta2)] {
            ensure!((0.0..1.0).contains(&beta), "{flag} {beta} must lie in [0, 1): Adam divides by 1 - beta^step");
        }
        ensure!(eps.is_finite() && eps > 0.0, "--eps {eps} must be a positive number: Adam divides by sqrt(v) + eps");
        ensure!(
            self.held_out.is_none() || self.labels.is_some(),
            "a held-out fold needs --labels: only a labeled folder has folds"
        );
        ensure!(
            self.val_data.is_none() || self.val_every >= 1,
            "--val-every must be at least 1 when --val-data is given"
        );
        Ok(())
    }

    /// The settings in `checkpoint`'s metadata, or None for checkpoints written before runs were
    /// recorded.
    pub fn from_metadata(
        checkpoint: &Path,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<RunSettings>> {
        metadata
            .get(RUN_KEY)
            .map(|json| {
                serde_json::from_str(json)
                    .with_context(|| format!("{}: the metadata {RUN_KEY:?} is not a run record", checkpoint.display()))
            })
            .transpose()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("run settings serialise")
    }
}

/// `--teacher`: which of the data's teachers the student learns from, a head for each, as wide as
/// its arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherChoice {
    Objects,
    Scenes,
    Both,
}

impl TeacherChoice {
    /// The manifest columns it reads (objects, scenes).
    pub fn columns(self) -> Heads<bool> {
        let (objects, scenes) = match self {
            TeacherChoice::Objects => (true, false),
            TeacherChoice::Scenes => (false, true),
            TeacherChoice::Both => (true, true),
        };
        Heads { objects, scenes, classes: false }
    }
}

impl std::str::FromStr for TeacherChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<TeacherChoice, String> {
        match s {
            "objects" => Ok(TeacherChoice::Objects),
            "scenes" => Ok(TeacherChoice::Scenes),
            "both" => Ok(TeacherChoice::Both),
            other => Err(format!("unknown teacher {other:?}: expected objects, scenes or both")),
        }
    }
}

impl std::fmt::Display for TeacherChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(["objects", "scenes", "both"][*self as usize])
    }
}

/// A setting's value as messages show it, and as it is compared: paths absolute, so a flag given
/// again matches the record from any working folder.
pub trait Setting: Clone + PartialEq {
    fn show(&self) -> String;
    fn absolute(self) -> Self {
        self
    }
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(impl Setting for $t {
        fn show(&self) -> String {
            self.to_string()
        }
    })*};
}
shown_by_display!(usize, u64, f64, String, TeacherLoss);

impl Setting for Option<u32> {
    fn show(&self) -> String {
        self.map_or("none".to_string(), |v| v.to_string())
    }
}

impl Setting for Option<String> {
    fn show(&self) -> String {
        self.clone().unwrap_or_else(|| "none".to_string())
    }
}

impl Setting for bool {
    fn show(&self) -> String {
        (if *self { "given" } else { "left out" }).to_string()
    }
}

impl Setting for Option<TeacherChoice> {
    fn show(&self) -> String {
        self.map_or("every teacher of the data".to_string(), |t| t.to_string())
    }
}

impl Setting for Vec<PathBuf> {
    fn show(&self) -> String {
        if self.is_empty() {
            return "the demo".to_string();
        }
        self.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ")
    }
    fn absolute(self) -> Self {
        self.into_iter().map(absolute).collect()
    }
}

impl Setting for Option<PathBuf> {
    fn show(&self) -> String {
        self.as_ref().map_or("none".to_string(), |p| p.display().to_string())
    }
    fn absolute(self) -> Self {
        self.map(absolute)
    }
}

pub(crate) fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// A list of paths, or one path, or null (none): runs recorded before several folders were
/// allowed hold one path or null.
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

/// `no_shuffle` is recorded as `shuffle`, as runs always recorded it.
mod inverted {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(!value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(!bool::deserialize(d)?)
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
        let parse = |data: &str| serde_json::from_str::<RunSettings>(&recorded(data)).unwrap();
        assert_eq!(parse(r#""/d/one""#).data, vec![PathBuf::from("/d/one")]);
        assert_eq!(parse("null").data, Vec::<PathBuf>::new());
        let many = parse(r#"["/d/a","/d/b"]"#);
        assert_eq!((many.data.len(), many.teacher, many.loss, many.no_shuffle), (2, None, TeacherLoss::Kl, false));
        let again: RunSettings = serde_json::from_str(&many.to_json()).unwrap();
        assert_eq!(again, many);
        assert!(many.to_json().contains(r#""shuffle":true"#), "recorded as runs always recorded it");
    }

    #[test]
    fn a_resumed_run_takes_only_the_settings_that_may_change() {
        let recorded = SettingFlags::default().new_run();
        assert_eq!((recorded.batch_size, recorded.steps, recorded.save_every), (4, 250, 50), "the demo's defaults");
        let flags = SettingFlags {
            steps: Some(300),
            batch_size: Some(4),
            lr: Some(0.5),
            no_shuffle: Some(true),
            ..SettingFlags::default()
        };
        let (settings, clashes, notes) = flags.continuing(recorded.clone());
        assert_eq!(clashes, ["--lr 0.5 (the run has 0.001)", "--no-shuffle given (the run has left out)"]);
        assert_eq!(notes, ["taking --steps 300 (the run was started with 250)"]);
        assert_eq!(settings, RunSettings { steps: 300, ..recorded });
    }
}
