//! `sn-wgpu train`: data in, checkpoints, metrics and a loss curve out.
//!
//! The loop keeps the GPU busy: batches are decoded ahead on a thread, each step is one submission,
//! and losses come back asynchronously a few steps behind. A checkpoint is written only after the
//! losses of every step before it came back finite, so the last checkpoint on disk is always good.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::eval_loss::EvalLoss;
use super::loss_readback::StepLosses;
use super::metrics::{MetricsLog, TrainRecord, ValRecord};
use super::request::{RunRecord, RUN_KEY};
use super::step::{StepShape, TrainStep};
use super::{run_dir, signals};
use crate::checkpoint::Checkpoint;
use crate::data::{Crop, Dataset, DatasetOptions, DemoDataset, Loader, ManifestDataset, Order};
use crate::gpu::Gpu;
use crate::model::{Arch, Model};
use crate::ops::adam::AdamConfig;
use crate::plot::loss_curve::{self, Series};

/// Everything `sn-wgpu train` can be told.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Dataset folder with manifest.csv; None trains on the built-in synthetic demo.
    pub data: Option<PathBuf>,
    pub model: String,
    pub batch_size: usize,
    pub accumulate: usize,
    pub seconds: f64,
    pub steps: u64,
    pub adam: AdamConfig,
    pub seed: u64,
    pub shuffle: bool,
    pub out: PathBuf,
    pub save_every: u64,
    /// Keep only the newest N step-N.safetensors files.
    pub keep_last: Option<usize>,
    /// Replace the run already in `out` (a new run refuses a folder that holds one).
    pub overwrite: bool,
    /// The run to continue: its folder (its newest checkpoint that loads) or a checkpoint file.
    pub resume: Option<PathBuf>,
    pub init: Option<PathBuf>,
    pub val_data: Option<PathBuf>,
    pub val_every: u64,
    pub skip_bad: bool,
    /// Clips per synthetic class when training on the demo.
    pub demo_clips_per_class: usize,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps_done: u64,
    /// Mean total loss of the first and of the last `loss_window` steps of this run.
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
    pub loss_window: usize,
    pub checkpoint: PathBuf,
    /// The signal that stopped the run early, if one did (the process should exit 128 + it).
    pub interrupted: Option<i32>,
}

fn open_dataset(path: &Path, crop: Crop, skip_bad: bool, what: &str) -> Result<Arc<dyn Dataset>> {
    let options = DatasetOptions { skip_bad, ..DatasetOptions::new(crop) };
    let (dataset, skipped) =
        ManifestDataset::open(path, &options).with_context(|| format!("{what} {}", path.display()))?;
    if !skipped.is_empty() {
        eprintln!("skipped {} bad item(s) of {} (--skip-bad):", skipped.len(), path.display());
        for s in &skipped {
            eprintln!("  {s}");
        }
    }
    ensure!(!dataset.is_empty(), "{what} {} has no usable clips", path.display());
    Ok(Arc::new(dataset))
}

/// Where the run starts: a model, Adam's state (for --resume), the step reached, and the checkpoint
/// it came from.
fn starting_point(gpu: &Gpu, opts: &TrainOptions) -> Result<(Model, Option<Checkpoint>, u64, Option<PathBuf>)> {
    if let Some(resume) = &opts.resume {
        let point = run_dir::resume_point(resume)?;
        let (path, ckpt) = (point.checkpoint, point.loaded);
        let step = ckpt.meta("step")?.parse().with_context(|| format!("{}: bad step metadata", path.display()))?;
        let model = Model::from_checkpoint(gpu, &ckpt).with_context(|| format!("loading {}", path.display()))?;
        println!("resuming {} from step {step} ({})", model.arch.name, path.display());
        return Ok((model, Some(ckpt), step, Some(path)));
    }
    if let Some(path) = &opts.init {
        let ckpt = Checkpoint::load(path)?;
        let model = Model::from_checkpoint(gpu, &ckpt).with_context(|| format!("--init {}", path.display()))?;
        if model.arch.name != opts.model {
            println!(
                "note: --init {} holds {}, which is trained instead of --model {}",
                path.display(),
                model.arch.name,
                opts.model
            );
        }
        println!("starting from the weights in {} (fresh optimizer)", path.display());
        return Ok((model, None, 0, None));
    }
    Ok((Model::init(gpu, Arch::by_name(&opts.model)?, opts.seed)?, None, 0, None))
}

/// Writes the model and Adam state under each of `names` in `dir`, unless a value has become
/// non-finite: then nothing is written and the error names the last good checkpoint.
#[allow(clippy::too_many_arguments)]
fn save(
    gpu: &Gpu,
    model: &Model,
    step: &TrainStep,
    record: &RunRecord,
    dir: &Path,
    names: &[String],
    last_good: &LastGood,
) -> Result<PathBuf> {
    let mut ckpt = Checkpoint::default();
    model.write_checkpoint(gpu, &mut ckpt)?;
    step.adam.write_checkpoint(gpu, &mut ckpt)?;
    if let Some((name, _)) = ckpt.tensors.iter().find(|(_, (_, v))| v.iter().any(|x| !x.is_finite())) {
        bail!(
            "{name} became non-finite by step {}; training stopped without saving it, and {last_good}. \
             Try a lower --lr.",
            step.adam.step,
        );
    }
    ckpt.metadata.insert("step".into(), step.adam.step.to_string());
    ckpt.metadata.insert(RUN_KEY.into(), record.to_json());
    let mut last = dir.join("last.safetensors");
    for name in names {
        last = dir.join(name);
        ckpt.save(&last)?;
    }
    Ok(last)
}

/// Trains as `opts` says and returns where the result is.
pub fn run(opts: &TrainOptions) -> Result<TrainSummary> {
    opts.validate()?;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let (model, resume_ckpt, start, resumed_from) = starting_point(&gpu, opts)?;
    let out = opts.out.clone();
    if resumed_from.is_none() {
        run_dir::claim_for_new_run(&out, opts.overwrite)?;
    }
    run_dir::remove_partial_saves(&out)?;
    let record = RunRecord::of(opts);
    println!("run folder: {}", out.display());
    let crop = Crop::for_arch(&model.arch, opts.seconds)?;

    let dataset: Arc<dyn Dataset> = match &opts.data {
        Some(path) => open_dataset(path, crop, opts.skip_bad, "--data")?,
        None => {
            let demo = DemoDataset::new(crop, opts.demo_clips_per_class, opts.seed);
            println!(
                "no --data: training on the built-in synthetic demo ({} clips of {} s):",
                demo.len(),
                opts.seconds
            );
            for class in DemoDataset::classes() {
                let names = |peaks: &[(&str, f32)]| {
                    peaks.iter().map(|(n, p)| format!("{n} {p:.2}")).collect::<Vec<_>>().join(", ")
                };
                println!(
                    "  {:<13} {:<32} objects: {}; scenes: {}",
                    class.name,
                    class.sound,
                    names(class.objects),
                    names(class.scenes)
                );
            }
            Arc::new(demo)
        }
    };
    let val = match &opts.val_data {
        Some(path) => Some(open_dataset(path, crop, opts.skip_bad, "--val-data")?),
        None => None,
    };

    let shape = StepShape { batch: opts.batch_size, micro_batches: opts.accumulate, samples: crop.samples };
    let memory = super::memory::plan(&gpu, &model, shape)?;
    println!("{memory}");
    let mut step = TrainStep::new(&gpu, &model, shape, opts.adam, resume_ckpt.as_ref())?;
    let mut val_eval = match &val {
        Some(_) => Some(EvalLoss::new(&gpu, &model, shape.micro_batch(), crop.samples)?),
        None => None,
    };
    if opts.accumulate > 1 {
        println!(
            "gradient accumulation: {} micro-batches of {}; batchnorm uses micro-batch statistics",
            opts.accumulate,
            shape.micro_batch()
        );
    }

    let order = Order::new(dataset.len(), opts.batch_size, opts.seed, opts.shuffle);
    let mut loader = Loader::spawn(dataset.clone(), order, start as usize, 3)?;
    signals::arm()?;

    let metrics_path = out.join("metrics.jsonl");
    // Steps logged after the checkpoint being resumed (the process died before the next save)
    // are trained again: their old lines go, so no step appears twice.
    MetricsLog::cut_after(&metrics_path, start)?;
    let mut progress = Progress {
        bar: progress_bar(opts.steps.saturating_sub(start)),
        metrics: MetricsLog::open(&metrics_path)?,
        history: Vec::new(),
        start,
        total_steps: opts.steps,
        started: Instant::now(),
        batch_size: opts.batch_size,
        lr: opts.adam.lr as f32,
    };
    let mut val_history: Vec<(u64, f32)> = Vec::new();
    let mut last_good = LastGood(resumed_from);
    for k in start + 1..=opts.steps {
        if signals::received().is_some() {
            break;
        }
        let batch = loader.next_batch()?;
        let done = step.submit(&gpu, &batch.waveform, &batch.objects, &batch.scenes)?;
        progress.report(done, &gpu, &model, &step, &last_good)?;
        let checkpoint_now = opts.save_every > 0 && k % opts.save_every == 0;
        let validate_now = val_eval.is_some() && opts.val_every > 0 && k % opts.val_every == 0;
        if checkpoint_now || validate_now {
            let done = step.finish(&gpu)?;
            progress.report(done, &gpu, &model, &step, &last_good)?;
        }
        if let (true, Some(eval), Some(val)) = (validate_now, val_eval.as_mut(), val.as_ref()) {
            let [o, s] = eval.run(&gpu, &**val)?;
            progress.metrics.write(&ValRecord { step: k, val_loss: o + s, val_loss_objects: o, val_loss_scenes: s })?;
            val_history.push((k, o + s));
            progress.bar.println(format!("step {k}: validation loss {:.4} (objects {o:.4}, scenes {s:.4})", o + s));
        }
        if checkpoint_now {
            let names = [format!("step-{k:06}.safetensors"), "last.safetensors".into()];
            let saved = save(&gpu, &model, &step, &record, &out, &names, &last_good)?;
            last_good = LastGood(Some(saved));
            if let Some(keep) = opts.keep_last {
                run_dir::keep_last(&out, keep)?;
            }
        }
    }
    let done = step.finish(&gpu)?;
    progress.report(done, &gpu, &model, &step, &last_good)?;
    progress.bar.finish_and_clear();
    let checkpoint = save(&gpu, &model, &step, &record, &out, &["last.safetensors".into()], &last_good)?;
    let history = progress.history;
    draw_curve(&out, &model.arch.name, &history, &val_history)?;
    let totals: Vec<f32> = history.iter().map(|h| h.1[0] + h.1[1]).collect();
    let window = smoothing_window(totals.len());
    let mean = |losses: &[f32]| (!losses.is_empty()).then(|| losses.iter().sum::<f32>() / losses.len() as f32);
    Ok(TrainSummary {
        steps_done: step.adam.step,
        first_loss: mean(&totals[..window.min(totals.len())]),
        last_loss: mean(&totals[totals.len().saturating_sub(window)..]),
        loss_window: window,
        checkpoint,
        // A signal during the last step stopped nothing.
        interrupted: signals::received().filter(|_| step.adam.step < opts.steps),
    })
}

/// The newest checkpoint known to hold finite values, for error messages.
struct LastGood(Option<PathBuf>);

impl std::fmt::Display for LastGood {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.0 {
            Some(path) => write!(f, "the last good checkpoint is {}", path.display()),
            None => write!(f, "no checkpoint was saved before it"),
        }
    }
}

/// Turns returned losses into metrics lines, the progress bar and the loss history.
struct Progress {
    bar: ProgressBar,
    metrics: MetricsLog,
    history: Vec<(u64, [f32; 2])>,
    start: u64,
    total_steps: u64,
    started: Instant,
    batch_size: usize,
    lr: f32,
}

impl Progress {
    fn report(
        &mut self,
        done: Vec<StepLosses>,
        gpu: &Gpu,
        model: &Model,
        step: &TrainStep,
        last_good: &LastGood,
    ) -> Result<()> {
        for losses in done {
            let [o, s] = step.head_losses(&losses);
            if !(o.is_finite() && s.is_finite()) {
                let cause = match model.params.first_non_finite(gpu)? {
                    Some(name) => format!("the weights did ({name} holds a NaN or infinity): the updates diverged"),
                    None => "the activations overflowed with finite weights".to_string(),
                };
                bail!(
                    "the loss became non-finite at step {} (objects {o}, scenes {s}) because {cause}. Every clip \
                     and teacher row was checked finite before training, so it is the learning rate: try a lower \
                     --lr than {}. Training stopped; {last_good}.",
                    losses.step,
                    if (1e-4..1e4).contains(&self.lr) { format!("{}", self.lr) } else { format!("{:e}", self.lr) }
                );
            }
            let steps_per_s = (losses.step - self.start) as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let samples_per_s = steps_per_s * self.batch_size as f64;
            self.metrics.write(&TrainRecord {
                step: losses.step,
                loss: o + s,
                loss_objects: o,
                loss_scenes: s,
                steps_per_s,
                samples_per_s,
                lr: self.lr,
            })?;
            self.history.push((losses.step, [o, s]));
            self.bar.set_position(losses.step - self.start);
            let line = format!("loss {:.4} (objects {o:.4}, scenes {s:.4}), {samples_per_s:.2} samples/s", o + s);
            if self.bar.is_hidden() {
                if losses.step % 10 == 0 || losses.step == self.total_steps || losses.step == self.start + 1 {
                    println!("step {}/{}  {line}", losses.step, self.total_steps);
                }
            } else {
                self.bar.set_message(line);
            }
        }
        Ok(())
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} [{elapsed_precise}, {eta} left]")
            .expect("a valid progress template"),
    );
    bar
}

/// Steps a loss is averaged over to show its trend: a fifteenth of the run, 1 to 50. One batch's
/// loss swings by a factor of two from step to step on small batches.
fn smoothing_window(steps: usize) -> usize {
    (steps / 15).clamp(1, 50)
}

fn draw_curve(out: &Path, model: &str, history: &[(u64, [f32; 2])], val: &[(u64, f32)]) -> Result<()> {
    let line = |name: &str, f: &dyn Fn(&[f32; 2]) -> f32| Series {
        name: name.into(),
        points: history.iter().map(|(s, l)| (*s as f64, f64::from(f(l)))).collect(),
    };
    let mut series = vec![line("total", &|l| l[0] + l[1]), line("objects", &|l| l[0]), line("scenes", &|l| l[1])];
    let window = smoothing_window(history.len());
    if window > 1 {
        let totals: Vec<f64> = history.iter().map(|(_, l)| f64::from(l[0] + l[1])).collect();
        let points = (window..=totals.len())
            .map(|end| (history[end - 1].0 as f64, totals[end - window..end].iter().sum::<f64>() / window as f64))
            .collect();
        series.push(Series { name: format!("total, mean of {window} steps"), points });
    }
    if !val.is_empty() {
        series.push(Series {
            name: "validation".into(),
            points: val.iter().map(|&(s, l)| (s as f64, f64::from(l))).collect(),
        });
    }
    loss_curve::draw(&out.join("loss.png"), &format!("{model} training loss"), &series)
}

impl TrainSummary {
    /// The closing lines of `sn-wgpu train`: what happened and what to run next.
    pub fn describe(&self, demo: bool) -> String {
        let mut s = String::new();
        if let Some(signal) = self.interrupted {
            s.push_str(&format!(
                "interrupted by {}: stopped cleanly after step {}, checkpoint saved\n",
                signals::name(signal),
                self.steps_done
            ));
        }
        if let (Some(first), Some(last)) = (self.first_loss, self.last_loss) {
            let over = match self.loss_window {
                1 => "first and last step".to_string(),
                w => format!("mean of the first and of the last {w} steps"),
            };
            s.push_str(&format!("loss {first:.4} -> {last:.4} over the run (objects + scenes KL, {over})\n"));
        }
        let dir = self.checkpoint.parent().unwrap_or(std::path::Path::new("."));
        s.push_str(&format!("checkpoint: {} (step {})\n", self.checkpoint.display(), self.steps_done));
        s.push_str(&format!(
            "metrics:    {}, loss curve: {}\n",
            dir.join("metrics.jsonl").display(),
            dir.join("loss.png").display()
        ));
        match self.interrupted {
            Some(_) => s.push_str(&format!("next: finish the run with `sn-wgpu train --resume {}`", dir.display())),
            None => s.push_str(&format!(
                "next: train it further with `sn-wgpu train --resume {} --steps N` (N > {})",
                dir.display(),
                self.steps_done
            )),
        }
        if demo {
            s.push_str(", or train on your own data with `sn-wgpu train --data DIR` (see README: dataset format)");
        }
        s.push('\n');
        s
    }
}
