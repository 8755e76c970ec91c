//! What `sn-wgpu train` was asked, turned into what it will do: the defaults of a new run, or the
//! settings of the run being resumed. A checkpoint records the settings of the run it belongs to
//! (`RunSettings`, in its metadata), so `--resume DIR` continues that run, not whatever the
//! defaults are today; a flag given again must agree with it, except the few a run may change on
//! the way (declared in `settings`), and `--keep-last`, which is not part of the run.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};

use super::run_dir;
use super::settings::{absolute, RunSettings, SettingFlags};
use crate::checkpoint::Checkpoint;
use crate::model::Arch;

/// Every `sn-wgpu train` flag as given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainFlags {
    #[command(flatten)]
    pub settings: SettingFlags,
    /// Where checkpoints, metrics.jsonl and loss.png go [default: a new folder runs/<UTC date-time>;
    /// with --resume, the run's folder]. A folder that holds another run is refused (--overwrite).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run that --out already holds (its checkpoints, metrics and loss curve).
    #[arg(long)]
    pub overwrite: bool,
    /// Keep only the newest N step-NNNNNN.safetensors files.
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Continue a run: its folder (last.safetensors, or the newest step-N.safetensors that loads)
    /// or a checkpoint file. The run keeps the settings it was started with; only --steps,
    /// --save-every, --keep-last and --val-every may change.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start a new run from the model weights in a checkpoint, with a fresh optimizer. With
    /// --labels: fine-tune it, its body up to --head under a new classifier.
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// With --labels: leave-one-fold-out. Each fold given (`all`, or a list such as 1,3) is held
    /// out of a run of its own in OUT/fold-N, whose clips are classified at its end; OUT/folds.json
    /// holds the table.
    #[arg(long, requires = "labels")]
    pub folds: Option<String>,
}

/// A run to start or continue: its settings, and where and how this invocation writes it.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub settings: RunSettings,
    pub out: PathBuf,
    /// Keep only the newest N step-N.safetensors files.
    pub keep_last: Option<usize>,
    /// Replace the run already in `out` (a new run refuses a folder that holds one).
    pub overwrite: bool,
    /// The checkpoint to continue from.
    pub resume: Option<PathBuf>,
    pub init: Option<PathBuf>,
}

impl TrainOptions {
    /// Refuses settings that cannot train, before anything runs.
    pub fn validate(&self) -> Result<()> {
        self.settings.validate()?;
        ensure!(self.keep_last != Some(0), "--keep-last must be at least 1 (it keeps the newest N step files)");
        Ok(())
    }
}

impl TrainFlags {
    /// The options of the run these flags start or continue, checked before anything runs.
    /// Notes for the user (a changed `--steps`, a fallback checkpoint) are printed.
    pub fn resolve(self) -> Result<TrainOptions> {
        let opts = match self.resume.clone() {
            Some(path) => self.continuing(&path)?,
            None => self.starting()?,
        };
        opts.validate()?;
        Ok(opts)
    }

    fn starting(self) -> Result<TrainOptions> {
        ensure!(
            !self.overwrite || self.out.is_some(),
            "--overwrite needs --out: the default --out is always a new folder"
        );
        let mut settings = self.settings.new_run();
        if let Some(init) = &self.init {
            // The run records the model it trains, which is the checkpoint's, and the layer its
            // classifier sits on, so that --resume rebuilds the same network.
            let model = Checkpoint::load(init)?.meta("model")?.to_string();
            if self.settings.model.as_ref().is_some_and(|m| *m != model) {
                println!(
                    "note: --init {} holds {model}, which is trained instead of --model {}",
                    init.display(),
                    settings.model
                );
            }
            settings.model = model;
            if settings.labels.is_some() && settings.head.is_none() {
                settings.head = Arch::by_name(&settings.model)?.body_outputs().last().cloned();
            }
        }
        Ok(TrainOptions {
            settings,
            out: match self.out {
                Some(out) => out,
                None => run_dir::fresh(Path::new("runs"))?,
            },
            keep_last: self.keep_last,
            overwrite: self.overwrite,
            resume: None,
            init: self.init,
        })
    }

    /// The run recorded in the checkpoint `path` names (a folder or a file).
    fn continuing(self, path: &Path) -> Result<TrainOptions> {
        ensure!(!self.overwrite, "--overwrite starts a new run; it cannot be used with --resume");
        ensure!(self.init.is_none(), "--init starts a new run from a checkpoint's weights; --resume continues one");
        let point = run_dir::resume_point(path)?;
        let Some(recorded) = RunSettings::from_metadata(&point.checkpoint, &point.loaded.metadata)? else {
            bail!(
                "{} was written before sn-wgpu recorded the settings of a run, so --resume cannot tell what to \
                 continue; start a new run from its weights with --init {} (and the flags of the old run)",
                point.checkpoint.display(),
                point.checkpoint.display()
            );
        };
        if let Some(out) = &self.out {
            ensure!(
                absolute(out.clone()) == absolute(point.dir.clone()),
                "--out {} differs from the folder of the run being resumed ({}); a resumed run stays in its folder",
                out.display(),
                point.dir.display()
            );
        }
        let (settings, clashes, notes) = self.settings.continuing(recorded);
        if !clashes.is_empty() {
            bail!(
                "--resume {} continues a run with its own settings, and these flags disagree with them: {}. \
                 Leave them out to continue the run as it was, or start a new run from its weights with --init {}",
                path.display(),
                clashes.join("; "),
                point.checkpoint.display()
            );
        }
        for note in point.note.iter().chain(&notes) {
            println!("note: {note}");
        }
        Ok(TrainOptions {
            settings,
            out: point.dir,
            keep_last: self.keep_last,
            overwrite: false,
            resume: Some(point.checkpoint),
            init: None,
        })
    }
}
