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
use super::held_out::HeldOutReport;
use super::loss_readback::StepLosses;
use super::metrics::{MetricsLog, TrainRecord, ValRecord};
use super::request::TrainOptions;
use super::settings::{RunSettings, TeacherChoice, RUN_KEY};
use super::step::{StepShape, TrainStep};
use super::{run_dir, signals};
use crate::checkpoint::Checkpoint;
use crate::data::labeled::LabeledDataset;
use crate::data::meta::Meta;
use crate::data::pack::{self, PackedDataset};
use crate::data::{Crop, Dataset, DatasetOptions, DemoDataset, Loader, ManifestDataset, Order};
use crate::gpu::Gpu;
use crate::model::{Arch, HeadKind, Heads, Model};
use crate::ops::teacher_loss::TeacherLoss;
use crate::out_folder::OutFolder;
use crate::plot::loss_curve::{self, Series};

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps_done: u64,
    /// Mean total loss of the first and of the last `loss_window` steps of this run.
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
    pub loss_window: usize,
    pub checkpoint: PathBuf,
    /// The loss trained with, for the summary.
    pub loss: TeacherLoss,
    /// Trained on labels (`--labels`): the loss is cross-entropy, KL against one-hot rows.
    pub labeled: bool,
    /// The signal that stopped the run early, if one did (the process should exit 128 + it).
    pub interrupted: Option<i32>,
    /// The held-out fold's clips classified, for a labeled run that held one out.
    pub held_out: Option<HeldOutReport>,
    pub data: DataReport,
}

/// How the run went through its data, and whether the GPU waited for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataReport {
    pub clips: usize,
    pub steps_per_epoch: usize,
    /// Epochs done at the end of the run, counted from step 0.
    pub epochs: f64,
    /// Damaged items met and left out (`--skip-bad` on packed shards).
    pub damaged: usize,
    /// Seconds the loop waited for the loader, and the loop's wall time, in this process.
    pub wait_s: f64,
    pub wall_s: f64,
}

/// Where a labeled run writes its held-out fold's results.
pub const HELD_OUT_FILE: &str = "held_out.json";

fn open_dataset(
    paths: &[PathBuf],
    crop: Crop,
    skip_bad: bool,
    columns: Heads<bool>,
    what: &str,
) -> Result<Arc<dyn Dataset>> {
    let names = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    let packs = paths.iter().filter(|p| pack::is_pack(p)).count();
    ensure!(
        packs == 0 || packs == paths.len(),
        "{what} {names}: packs (folders with {}) and dataset folders cannot be mixed; pack the folders too",
        pack::INDEX
    );
    let (dataset, skipped): (Arc<dyn Dataset>, _) = if packs > 0 {
        let (dataset, skipped) =
            PackedDataset::open(paths, crop, columns, skip_bad).with_context(|| format!("{what} {names}"))?;
        println!(
            "{}: {} packed clips in {} shard(s) of {names}{}",
            if what == "--data" { "data" } else { what },
            dataset.len(),
            dataset.shard_count(),
            match dataset.skipped_when_packed() {
                0 => String::new(),
                n => format!(" ({n} item(s) were left out when packing: see {} in the pack)", pack::SKIPPED),
            }
        );
        (Arc::new(dataset), skipped)
    } else {
        let options = DatasetOptions { skip_bad, columns, ..DatasetOptions::new(crop) };
        let (dataset, skipped) = ManifestDataset::open(paths, &options).with_context(|| format!("{what} {names}"))?;
        (Arc::new(dataset), skipped)
    };
    if !skipped.is_empty() {
        eprintln!("skipped {} bad item(s) of {names} (--skip-bad):", skipped.len());
        for s in &skipped {
            eprintln!("  {s}");
        }
    }
    ensure!(!dataset.is_empty(), "{what} {names} has no usable clips");
    Ok(dataset)
}

/// The heads the student gets: those of the teachers chosen, as wide as the data's arrays. A
/// teacher asked for by name must be in the data.
fn student_heads(dataset: &dyn Dataset, teacher: Option<TeacherChoice>) -> Result<Heads<Option<usize>>> {
    let classes = dataset.classes();
    let wanted = teacher.unwrap_or(TeacherChoice::Both).columns();
    for h in HeadKind::TEACHERS {
        ensure!(
            teacher.is_none() || !wanted.get(h) || classes.get(h).is_some(),
            "--teacher {} needs the {h} teacher, which the data does not have (it has a column for: {})",
            teacher.expect("checked"),
            classes.present().map(|(h, _)| h.name()).collect::<Vec<_>>().join(", ")
        );
    }
    // A labeled set's classes are always trained; --teacher chooses among the teachers' heads.
    let heads = Heads::from_fn(|h| classes.get(h).filter(|_| h == HeadKind::Classes || *wanted.get(h)));
    ensure!(heads.present().next().is_some(), "the data has no teacher for the heads asked for");
    Ok(heads)
}

/// The architecture the run trains, before its heads are sized: the run's model (with --init, the
/// checkpoint's), ending at --head's layer with the fine-tuning classifier when one is named.
fn shape_arch(settings: &RunSettings) -> Result<Arch> {
    let arch = Arch::by_name(&settings.model)?;
    match &settings.head {
        Some(layer) => arch.with_head_on(layer),
        None => Ok(arch),
    }
}

/// A labeled folder's training clips and, when a fold is held out, its clips to classify.
fn open_labeled(
    dir: &Path,
    held_out: Option<u32>,
    crop: Crop,
    skip_bad: bool,
) -> Result<(Arc<LabeledDataset>, Option<LabeledDataset>)> {
    let meta = Meta::read(dir).with_context(|| format!("--labels {}", dir.display()))?;
    if let Some(fold) = held_out {
        ensure!(
            meta.folds.contains(&fold),
            "--labels {}: there is no fold {fold}; its folds are {}",
            dir.display(),
            meta.folds.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    let report = |skipped: &[crate::data::Problem], what: &str| {
        if !skipped.is_empty() {
            eprintln!("skipped {} bad clip(s) of {} ({what}, --skip-bad):", skipped.len(), dir.display());
            for s in skipped {
                eprintln!("  {s}");
            }
        }
    };
    let context = || format!("--labels {}", dir.display());
    let (train, skipped) =
        LabeledDataset::open(&meta, |f| Some(f) != held_out, crop, skip_bad).with_context(context)?;
    report(&skipped, "training folds");
    let test = match held_out {
        Some(fold) => {
            let (test, skipped) = LabeledDataset::open(&meta, |f| f == fold, crop, skip_bad).with_context(context)?;
            report(&skipped, "held-out fold");
            Some(test)
        }
        None => None,
    };
    Ok((Arc::new(train), test))
}

/// Where the run starts: a model with `heads` (objects, scenes classes), Adam's state (for
/// --resume), the step reached, and the checkpoint it came from. A checkpoint whose heads differ
/// from the data's is refused.
fn starting_point(
    gpu: &Gpu,
    opts: &TrainOptions,
    heads: Heads<Option<usize>>,
) -> Result<(Model, Option<Checkpoint>, u64, Option<PathBuf>)> {
    let check = |model: &Model, path: &Path| {
        let describe = |c: Heads<Option<usize>>| c.describe(usize::to_string);
        ensure!(
            model.arch.head_classes() == heads,
            "{} has heads of {} classes, but the data and --teacher give {}",
            path.display(),
            describe(model.arch.head_classes()),
            describe(heads)
        );
        Ok(())
    };
    if let Some(resume) = &opts.resume {
        let point = run_dir::resume_point(resume)?;
        let (path, ckpt) = (point.checkpoint, point.loaded);
        let step = ckpt.meta("step")?.parse().with_context(|| format!("{}: bad step metadata", path.display()))?;
        let model = Model::from_checkpoint(gpu, &ckpt).with_context(|| format!("loading {}", path.display()))?;
        check(&model, &path)?;
        println!("resuming {} from step {step} ({})", model.arch.name, path.display());
        return Ok((model, Some(ckpt), step, Some(path)));
    }
    let arch = shape_arch(&opts.settings)?.with_heads(heads);
    if let Some(path) = &opts.init {
        let ckpt = Checkpoint::load(path)?;
        if opts.settings.labels.is_some() {
            // Fine-tuning: the pretrained body, a new classifier for the labeled set's classes.
            let model = Model::with_pretrained_body(gpu, arch, &ckpt, opts.settings.seed)
                .with_context(|| format!("--init {}", path.display()))?;
            println!(
                "starting from the body in {} up to {}, with a new classifier (fresh optimizer)",
                path.display(),
                model.arch.head_on.as_deref().unwrap_or("its last layer")
            );
            return Ok((model, None, 0, None));
        }
        let model = Model::from_checkpoint(gpu, &ckpt).with_context(|| format!("--init {}", path.display()))?;
        check(&model, path)?;
        println!("starting from the weights in {} (fresh optimizer)", path.display());
        return Ok((model, None, 0, None));
    }
    Ok((Model::init(gpu, arch, opts.settings.seed)?, None, 0, None))
}

/// Writes the model and Adam state under each of `names` in `folder`, unless a value has become
/// non-finite: then nothing is written and the error names the last good checkpoint.
fn save(
    gpu: &Gpu,
    model: &Model,
    step: &TrainStep,
    record: &RunSettings,
    folder: &mut OutFolder,
    names: &[String],
    last_good: &LastGood,
) -> Result<PathBuf> {
    let mut ckpt = Checkpoint::default();
    model.write_checkpoint(gpu, &mut ckpt)?;
    step.adam.write_checkpoint(gpu, &mut ckpt)?;
    // Never save what loading would refuse: a non-finite value, or a weight past any network's range.
    if let Some(problem) = ckpt.tensors.iter().find_map(|(name, (_, v))| crate::checkpoint::value_problem(name, v)) {
        bail!(
            "by step {} the weights became impossible ({problem}); training stopped without saving them, and \
             {last_good}. Try a lower --lr.",
            step.adam.step,
        );
    }
    ckpt.metadata.insert("step".into(), step.adam.step.to_string());
    ckpt.metadata.insert(RUN_KEY.into(), record.to_json());
    let paths = folder.claim(names)?;
    for path in &paths {
        ckpt.save(path)?;
    }
    Ok(paths.last().expect("at least one name").clone())
}

/// Trains as `opts` says and returns where the result is.
pub fn run(opts: &TrainOptions) -> Result<TrainSummary> {
    opts.validate()?;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let crop = Crop::for_arch(&shape_arch(&opts.settings)?, opts.settings.seconds)?;
    let columns = opts.settings.teacher.unwrap_or(TeacherChoice::Both).columns();
    let mut held_out = None;
    let mut class_names = Vec::new();
    let dataset: Arc<dyn Dataset> = match (&opts.settings.labels, opts.settings.data.as_slice()) {
        (Some(dir), _) => {
            let (train, test) = open_labeled(dir, opts.settings.held_out, crop, opts.settings.skip_bad)?;
            let fold = match (opts.settings.held_out, &test) {
                (Some(f), Some(t)) => format!(", fold {f} ({} clips) held out", t.len()),
                _ => String::new(),
            };
            println!("labels: {} clips of {} classes from {}{fold}", train.len(), train.names().len(), dir.display());
            class_names = train.names().to_vec();
            held_out = opts.settings.held_out.zip(test);
            train
        }
        (None, []) => {
            let demo = DemoDataset::new(crop, opts.settings.demo_clips_per_class, opts.settings.seed);
            println!(
                "no --data: training on the built-in synthetic demo ({} clips of {} s):",
                demo.len(),
                opts.settings.seconds
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
        (None, paths) => {
            let data = open_dataset(paths, crop, opts.settings.skip_bad, columns, "--data")?;
            if data.shard_sizes().is_none() {
                let folders: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                println!("data: {} clips from {}", data.len(), folders.join(", "));
            }
            data
        }
    };
    let heads = student_heads(&*dataset, opts.settings.teacher)?;
    let val = match &opts.settings.val_data {
        Some(path) => {
            let val = open_dataset(std::slice::from_ref(path), crop, opts.settings.skip_bad, columns, "--val-data")?;
            for (h, _) in heads.present() {
                ensure!(
                    val.classes().get(h) == heads.get(h),
                    "--val-data {}: its {h} teacher has {:?} classes, the training data's {:?}",
                    path.display(),
                    val.classes().get(h),
                    heads.get(h)
                );
            }
            Some(val)
        }
        None => None,
    };
    let (mut model, resume_ckpt, start, resumed_from) = starting_point(&gpu, opts, heads)?;
    if !class_names.is_empty() {
        model.class_names = class_names;
    }
    if let Some(layer) = &opts.settings.freeze {
        model.frozen = model.arch.body_depth(layer, "--freeze")?;
        println!(
            "frozen: {} (its batchnorm on its running statistics)",
            model.arch.body_outputs()[..model.frozen].join(", ")
        );
    }
    let out = opts.out.clone();
    // One run per folder: a second train or resume on it is refused here, before either writes
    // anything (everything above only reads), and the lock lasts until this function returns.
    let mut folder = OutFolder::lock(&out, "--out")?;
    run_dir::claim(&mut folder, resumed_from.is_some(), opts.overwrite)?;
    run_dir::remove_partial_saves(&out)?;
    let record = &opts.settings;
    println!("run folder: {}", out.display());
    if model.class_names.is_empty() {
        let widths: Vec<String> = model.arch.heads.iter().map(|h| format!("{} {}", h.name, h.classes)).collect();
        println!("student: {} with heads of {} classes", model.arch.name, widths.join(" and "));
    } else {
        let on = model.arch.body_outputs().last().cloned().unwrap_or_default();
        let head = &model.arch.heads[0];
        println!(
            "classifier: {} up to {on}, then a convolution of kernel {} and stride {} to {} classes ({})",
            model.arch.name,
            head.k,
            head.stride,
            head.classes,
            model.class_names.join(", ")
        );
    }

    let shape =
        StepShape { batch: opts.settings.batch_size, micro_batches: opts.settings.accumulate, samples: crop.samples };
    // The kernels are chosen before anything is sized: their scratch buffers depend on them.
    crate::model::tune::tune_for_run(&gpu, &model.arch, model.conv_kernel, shape.micro_batch(), crop.samples, true)?;
    let memory = super::memory::plan(&gpu, &model, shape)?;
    println!("{memory}");
    let mut step =
        TrainStep::with_loss(&gpu, &model, shape, opts.settings.loss, opts.settings.adam(), resume_ckpt.as_ref())?;
    let mut val_eval = match &val {
        Some(_) => Some(EvalLoss::new(&gpu, &model, shape.micro_batch(), crop.samples, opts.settings.loss)?),
        None => None,
    };
    if opts.settings.accumulate > 1 {
        println!(
            "gradient accumulation: {} micro-batches of {}; batchnorm uses micro-batch statistics",
            opts.settings.accumulate,
            shape.micro_batch()
        );
    }

    let order = Order::for_dataset(&*dataset, opts.settings.batch_size, opts.settings.seed, !opts.settings.no_shuffle);
    let steps_per_epoch = order.batches_per_epoch();
    println!(
        "an epoch is {steps_per_epoch} step(s) of {} clips{}",
        opts.settings.batch_size,
        if dataset.shard_sizes().is_some() { " (shards shuffled, then items within windows)" } else { "" }
    );
    ensure!(
        !opts.settings.random_crop || dataset.shifts_crops(),
        "--random-crop needs packed shards (`sn-wgpu pack`), which keep whole clips; a dataset folder keeps only \
         each clip's first --seconds"
    );
    // The crops' own seed, so that --random-crop leaves the shuffle as it was.
    let crop_seed = opts.settings.random_crop.then_some(opts.settings.seed ^ 0x6372_6f70_7321_0000);
    let mut loader = Loader::spawn(dataset.clone(), order, start as usize, 3, crop_seed)?;
    signals::arm()?;

    let metrics_path = out.join("metrics.jsonl");
    // Steps logged after the checkpoint being resumed (the process died before the next save)
    // are trained again: their old lines go, so no step appears twice. The rest are the history
    // that loss.png and the summary start from.
    let logged = MetricsLog::cut_after(&metrics_path, start)?;
    let mut val_history = logged.val;
    let mut progress = Progress {
        bar: progress_bar(opts.settings.steps.saturating_sub(start)),
        metrics: MetricsLog::open(&metrics_path)?,
        history: logged.train,
        start,
        total_steps: opts.settings.steps,
        started: Instant::now(),
        batch_size: opts.settings.batch_size,
        lr: opts.settings.lr as f32,
    };
    let mut last_good = LastGood(resumed_from);
    let loop_started = Instant::now();
    let mut waited = std::time::Duration::ZERO;
    for k in start + 1..=opts.settings.steps {
        if signals::received().is_some() {
            break;
        }
        let asked = Instant::now();
        let batch = loader.next_batch()?;
        waited += asked.elapsed();
        let done = step.submit(&gpu, &batch.waveform, batch.targets())?;
        // The step has copied the batch out: its buffers go back for the next batch.
        loader.recycle(batch);
        progress.report(done, &gpu, &model, &step, &last_good)?;
        let checkpoint_now = opts.settings.save_every > 0 && k % opts.settings.save_every == 0;
        let validate_now = val_eval.is_some() && opts.settings.val_every > 0 && k % opts.settings.val_every == 0;
        if checkpoint_now || validate_now {
            let done = step.finish(&gpu)?;
            progress.report(done, &gpu, &model, &step, &last_good)?;
        }
        if let (true, Some(eval), Some(val)) = (validate_now, val_eval.as_mut(), val.as_ref()) {
            let heads = eval.run(&gpu, &**val)?;
            let val_loss = total(heads);
            let (val_loss_objects, val_loss_scenes) = (heads.objects, heads.scenes);
            progress.metrics.write(&ValRecord { step: k, val_loss, val_loss_objects, val_loss_scenes })?;
            val_history.push((k, val_loss));
            progress.bar.println(format!("step {k}: validation loss {val_loss:.4}{}", per_head(heads)));
        }
        if checkpoint_now {
            let names = [format!("step-{k:06}.safetensors"), "last.safetensors".into()];
            let saved = save(&gpu, &model, &step, record, &mut folder, &names, &last_good)?;
            last_good = LastGood(Some(saved));
            if let Some(keep) = opts.keep_last {
                run_dir::keep_last(&mut folder, keep)?;
            }
        }
    }
    let done = step.finish(&gpu)?;
    progress.report(done, &gpu, &model, &step, &last_good)?;
    progress.bar.finish_and_clear();
    let wall_s = loop_started.elapsed().as_secs_f64();
    let checkpoint = save(&gpu, &model, &step, record, &mut folder, &["last.safetensors".into()], &last_good)?;
    let steps_done = step.adam.step;
    // The step's buffers go before the held-out pass allocates its own.
    drop(step);
    let held_out = match &held_out {
        Some((fold, test)) if signals::received().is_none() || steps_done >= opts.settings.steps => {
            let report = super::held_out::classify(&gpu, &model, test, shape.micro_batch(), *fold)?;
            let path = folder.claim(&[HELD_OUT_FILE])?.remove(0);
            let json = serde_json::to_string_pretty(&report).expect("a report serialises");
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
            Some(report)
        }
        _ => None,
    };
    let history = progress.history;
    draw_curve(&out, &model.arch.name, &history, &val_history)?;
    let totals: Vec<f32> = history.iter().map(|h| total(h.1)).collect();
    let window = smoothing_window(totals.len());
    let mean = |losses: &[f32]| (!losses.is_empty()).then(|| losses.iter().sum::<f32>() / losses.len() as f32);
    Ok(TrainSummary {
        steps_done,
        first_loss: mean(&totals[..window.min(totals.len())]),
        last_loss: mean(&totals[totals.len().saturating_sub(window)..]),
        loss_window: window,
        checkpoint,
        loss: opts.settings.loss,
        // A signal during the last step stopped nothing.
        interrupted: signals::received().filter(|_| steps_done < opts.settings.steps),
        data: DataReport {
            clips: dataset.len(),
            steps_per_epoch,
            epochs: steps_done as f64 / steps_per_epoch as f64,
            damaged: dataset.damaged(),
            wait_s: waited.as_secs_f64(),
            wall_s,
        },
        labeled: opts.settings.labels.is_some(),
        held_out,
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

/// The sum of the heads' losses.
fn total(losses: Heads<Option<f32>>) -> f32 {
    losses.present().map(|(_, l)| l).sum()
}

/// ` (objects 1.2345, scenes 2.3456)`, naming only the heads there are.
fn per_head(losses: Heads<Option<f32>>) -> String {
    format!(" ({})", losses.describe(|l| format!("{l:.4}")))
}

/// Turns returned losses into metrics lines, the progress bar and the loss history.
struct Progress {
    bar: ProgressBar,
    metrics: MetricsLog,
    history: Vec<(u64, Heads<Option<f32>>)>,
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
            let heads = step.head_losses(&losses);
            if !total(heads).is_finite() {
                let cause = match model.params.first_non_finite(gpu)? {
                    Some(name) => format!("the weights did ({name} holds a NaN or infinity): the updates diverged"),
                    None => "the activations overflowed with finite weights".to_string(),
                };
                bail!(
                    "the loss became non-finite at step {} ({}) because {cause}. Every clip \
                     and teacher row was checked finite before training, so it is the learning rate: try a lower \
                     --lr than {}. Training stopped; {last_good}.",
                    losses.step,
                    per_head(heads).trim().trim_matches(['(', ')']),
                    if (1e-4..1e4).contains(&self.lr) { format!("{}", self.lr) } else { format!("{:e}", self.lr) }
                );
            }
            let steps_per_s = (losses.step - self.start) as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let samples_per_s = steps_per_s * self.batch_size as f64;
            self.metrics.write(&TrainRecord {
                step: losses.step,
                loss: total(heads),
                loss_objects: heads.objects,
                loss_scenes: heads.scenes,
                loss_classes: heads.classes,
                steps_per_s,
                samples_per_s,
                lr: self.lr,
            })?;
            self.history.push((losses.step, heads));
            self.bar.set_position(losses.step - self.start);
            let line = format!("loss {:.4}{}, {samples_per_s:.2} samples/s", total(heads), per_head(heads));
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

fn draw_curve(out: &Path, model: &str, history: &[(u64, Heads<Option<f32>>)], val: &[(u64, f32)]) -> Result<()> {
    let line = |name: &str, f: &dyn Fn(&Heads<Option<f32>>) -> f32| Series {
        name: name.into(),
        points: history.iter().map(|(s, l)| (*s as f64, f64::from(f(l)))).collect(),
    };
    let mut series = vec![line("total", &|l| total(*l))];
    let present = |h: HeadKind| history.first().is_some_and(|(_, l)| l.get(h).is_some());
    let heads: Vec<HeadKind> = HeadKind::ALL.into_iter().filter(|&h| present(h)).collect();
    // One head's line would be the total's, drawn over it.
    if heads.len() > 1 {
        for h in heads {
            series.push(line(h.name(), &move |l: &Heads<Option<f32>>| l.get(h).unwrap_or(0.0)));
        }
    }
    let window = smoothing_window(history.len());
    if window > 1 {
        let totals: Vec<f64> = history.iter().map(|(_, l)| f64::from(total(*l))).collect();
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
            let what = match (self.labeled, self.loss) {
                (true, TeacherLoss::Kl) => "the classifier's cross-entropy".to_string(),
                (true, loss) => format!("the classifier's {loss} loss on one-hot rows"),
                (false, loss) => format!("the heads' {loss} losses summed"),
            };
            s.push_str(&format!("loss {first:.4} -> {last:.4} over the run ({what}, {over})\n"));
        }
        let dir = self.checkpoint.parent().unwrap_or(std::path::Path::new("."));
        if let Some(r) = &self.held_out {
            s.push_str(&format!(
                "held-out fold {}: {}/{} clips right ({:.2}%); each clip's prediction is in {}\n",
                r.fold,
                r.correct,
                r.clips,
                100.0 * r.accuracy,
                dir.join(HELD_OUT_FILE).display()
            ));
        }
        let d = &self.data;
        s.push_str(&format!(
            "data: {:.2} epoch(s) of {} clips; the steps waited {:.1} s for data in {:.1} s of training ({:.0}%){}\n",
            d.epochs,
            d.clips,
            d.wait_s,
            d.wall_s,
            100.0 * d.wait_s / d.wall_s.max(1e-9),
            match d.damaged {
                0 => String::new(),
                n => format!("; {n} damaged item(s) left out (--skip-bad)"),
            }
        ));
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
