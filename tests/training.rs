//! `sn-wgpu train` end to end on a narrow SoundNet-8 (`soundnet8-narrow8`: every body layer's
//! channels divided by 8, full heads), so each step takes a fraction of a second on lavapipe:
//! determinism, exact resume, the loss falling on the demo, flat GPU memory, validation on a
//! dataset folder, refusing to save non-finite weights, clear data errors, and Ctrl-C.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_close, gpu, logged_losses, randn, rng, temp_dir, to_f64, write_npy, write_wav, TestDir};
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::{DemoDataset, OBJECT_CLASSES, SCENE_CLASSES};
use sn_wgpu::model::{Arch, Heads, Model};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::train::eval_loss::EvalLoss;
use sn_wgpu::train::{self, RunSettings, SettingFlags, StepShape, TrainOptions, TrainStep};

const MODEL: &str = "soundnet8-narrow8";
/// The shortest whole-tenth length SoundNet-8 takes (it needs 209,374 samples).
const SECONDS: f64 = 9.5;

fn options(out: &Path, steps: u64) -> TrainOptions {
    let settings = RunSettings {
        model: MODEL.into(),
        batch_size: 2,
        seconds: SECONDS,
        steps,
        seed: 7,
        save_every: 0,
        val_every: 0,
        demo_clips_per_class: 1,
        ..SettingFlags::default().new_run()
    };
    TrainOptions { settings, out: out.to_path_buf(), keep_last: None, overwrite: false, resume: None, init: None }
}

/// `options(out, steps)` with its settings changed by `change`.
fn tweaked(out: &Path, steps: u64, change: impl FnOnce(&mut RunSettings)) -> TrainOptions {
    let mut opts = options(out, steps);
    change(&mut opts.settings);
    opts
}

#[test]
fn same_seed_gives_the_same_losses_and_resume_continues_exactly() {
    let straight = temp_dir("straight");
    let whole = train::run(&options(&straight, 6)).unwrap();
    let split = temp_dir("split");
    train::run(&options(&split, 3)).unwrap();
    let resumed = TrainOptions { resume: Some(split.to_path_buf()), ..options(&split, 6) };
    let continued = train::run(&resumed).unwrap();
    // The resumed run's summary (and loss.png) cover all 6 steps, not only the 3 since the resume.
    assert_eq!((continued.first_loss, continued.last_loss), (whole.first_loss, whole.last_loss));

    // Same seed, same data, same adapter: the same losses, bit for bit.
    let (a, b) = (logged_losses(&straight), logged_losses(&split));
    assert_eq!(a.len(), 6);
    assert_eq!(a, b, "3 steps + resume + 3 steps must log what 6 straight steps log");
    // And the same weights, batchnorm statistics and Adam state.
    let (x, y) = (
        Checkpoint::load(&straight.join("last.safetensors")).unwrap(),
        Checkpoint::load(&split.join("last.safetensors")).unwrap(),
    );
    assert_eq!(x.meta("step").unwrap(), "6");
    assert_eq!(x.tensors, y.tensors);
    assert!(x.tensors.contains_key("adam.m.conv1.weight") && x.tensors.contains_key("bn7.running_var"));
}

#[test]
fn the_loss_falls_on_the_demo() {
    let out = temp_dir("demo");
    let summary = train::run(&tweaked(&out, 8, |s| s.batch_size = 4)).unwrap();
    let (first, last) = (summary.first_loss.unwrap(), summary.last_loss.unwrap());
    assert!(last < 0.8 * first, "loss {first} -> {last}: the demo should be learned quickly");
    assert!(out.join("loss.png").exists() && out.join("last.safetensors").exists());
    assert!(summary.describe(true).contains("--resume"));
}

#[test]
fn gpu_memory_stays_flat_over_50_steps() {
    let g = gpu();
    let model = Model::init(g, Arch::by_name(MODEL).unwrap(), 1).unwrap();
    let samples = (SECONDS * 22_050.0) as usize;
    let shape = StepShape { batch: 2, micro_batches: 2, samples };
    let mut step = TrainStep::new(g, &model, shape, AdamConfig::default(), None).unwrap();
    let demo = DemoDataset::new(sn_wgpu::data::Crop::for_arch(&model.arch, SECONDS).unwrap(), 1, 3);
    let batch = sn_wgpu::data::load_batch(&demo, &[0, 1]).unwrap();
    let live = || {
        let c = g.device.get_internal_counters().hal;
        (c.buffers.read(), c.bind_groups.read(), c.buffer_memory.read())
    };
    let mut run_steps = |n: usize| {
        let mut returned = Vec::new();
        for _ in 0..n {
            returned.extend(step.submit(g, &batch.waveform, batch.targets()).unwrap());
        }
        returned.extend(step.finish(g).unwrap());
        returned
    };
    run_steps(5);
    let before = live();
    assert!(before.0 > 0, "wgpu's internal counters are off: the `counters` feature must be enabled");
    let returned = run_steps(50);
    let steps: Vec<u64> = returned.iter().map(|l| l.step).collect();
    assert_eq!(steps, (6..=55).collect::<Vec<u64>>(), "every step's losses come back once, in order");
    assert_eq!(live(), before, "(buffers, bind groups, buffer bytes) changed over 50 steps");
}

/// `rows` random distributions over `classes`, fixed by `seed`.
fn random_distributions(seed: u64, rows: usize, classes: usize) -> Vec<f32> {
    let logits = randn(&mut rng(seed), rows * classes);
    logits
        .chunks(classes)
        .flat_map(|row| {
            let total: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
            row.iter().map(move |&v| (f64::from(v).exp() / total) as f32)
        })
        .collect()
}

/// A batch of `clips` random waveforms, each with its own random teachers (`[clips, C, steps]`).
struct Inputs {
    clips: usize,
    samples: usize,
    waveform: Vec<f32>,
    objects: Vec<f32>,
    scenes: Vec<f32>,
}

impl Inputs {
    fn random(seed: u64, clips: usize) -> Inputs {
        let samples = (SECONDS * 22_050.0) as usize;
        let steps = Arch::by_name(MODEL).unwrap().lengths(samples).unwrap().steps;
        // Teachers as the step reads them, [n, C, steps]: softmax over C of each (n, t) column.
        let teacher = |seed: u64, classes: usize| -> Vec<f32> {
            let rows = random_distributions(seed, clips * steps, classes); // [(n, t), C]
            let mut out = vec![0.0; rows.len()];
            for n in 0..clips {
                for t in 0..steps {
                    for c in 0..classes {
                        out[(n * classes + c) * steps + t] = rows[(n * steps + t) * classes + c];
                    }
                }
            }
            out
        };
        let waveform = randn(&mut rng(seed), clips * samples).into_iter().map(|v| 40.0 * v).collect();
        Inputs {
            clips,
            samples,
            waveform,
            objects: teacher(seed + 1, OBJECT_CLASSES),
            scenes: teacher(seed + 2, SCENE_CLASSES),
        }
    }

    /// Clips `from..to` alone.
    fn clips(&self, from: usize, to: usize) -> Inputs {
        let part = |v: &[f32]| {
            let per_clip = v.len() / self.clips;
            v[from * per_clip..to * per_clip].to_vec()
        };
        Inputs {
            clips: to - from,
            samples: self.samples,
            waveform: part(&self.waveform),
            objects: part(&self.objects),
            scenes: part(&self.scenes),
        }
    }
}

/// Each parameter's values, by name.
type ByName = std::collections::BTreeMap<String, Vec<f32>>;

fn read_all(tensors: &sn_wgpu::model::params::NamedTensors) -> ByName {
    tensors.specs.iter().zip(&tensors.tensors).map(|(s, t)| (s.name.clone(), t.read(gpu()).unwrap())).collect()
}

/// The same fresh model every time.
fn fresh_model() -> Model {
    Model::init(gpu(), Arch::by_name(MODEL).unwrap(), 3).unwrap()
}

/// One training step of a fresh model on `inputs` in `micro_batches`: the gradients it leaves, the
/// parameters after its Adam update, and its loss per head (the mean over micro-batches).
fn one_step(inputs: &Inputs, micro_batches: usize) -> (ByName, ByName, [f32; 2]) {
    let g = gpu();
    let model = fresh_model();
    let shape = StepShape { batch: inputs.clips, micro_batches, samples: inputs.samples };
    let mut step = TrainStep::new(g, &model, shape, AdamConfig::default(), None).unwrap();
    let mut losses = step
        .submit(g, &inputs.waveform, Heads { objects: &inputs.objects, scenes: &inputs.scenes, classes: &[] })
        .unwrap();
    losses.extend(step.finish(g).unwrap());
    let loss = step.head_losses(&losses[0]);
    let loss = [loss.objects.expect("an objects head"), loss.scenes.expect("a scenes head")];
    (read_all(&step.grads), read_all(&model.params), loss)
}

/// A conv bias that feeds a batchnorm has a gradient of exactly zero in exact arithmetic (the
/// normalisation subtracts it again): what the GPU leaves there is rounding noise, and so is the
/// sign Adam's first step takes from it.
fn inert_under_batchnorm(name: &str) -> bool {
    name.starts_with("conv") && name.ends_with(".bias")
}

/// A step over `micro_batches` equal parts of a batch of `clips` must give the mean of the
/// gradients and losses of the parts computed alone (each part's batchnorm statistics are its
/// own either way), and the Adam update of that mean.
///
/// Within 1e-6 when the count is a power of two: the backward pass is then seeded with an exact
/// 1/n, every product it forms is the part's own scaled exactly, and only the final additions
/// round. Any other n seeds a rounded 1/n that every f32 operation of the backward pass rounds
/// differently (measured: up to 6.6e-6 for bn1.weight with 3, whose gradient sums 200,000
/// products with cancellation), so those counts get 2e-5 on the gradients and losses. Their Adam
/// update is not compared: a first step moves each weight by lr * g / (|g| + eps), about lr times
/// the sign of g, and that rounding flips the sign of the gradients nearest zero.
fn accumulation_is_the_mean_of_its_micro_batches(clips: usize, micro_batches: usize) {
    let tol = if micro_batches.is_power_of_two() { 1e-6 } else { 2e-5 };
    let inputs = Inputs::random(60 + clips as u64, clips);
    let (grads, params, loss) = one_step(&inputs, micro_batches);
    let micro = clips / micro_batches;
    let parts: Vec<_> = (0..micro_batches).map(|i| one_step(&inputs.clips(i * micro, (i + 1) * micro), 1)).collect();
    let what = format!("batch {clips} in {micro_batches} micro-batches");
    let start = read_all(&fresh_model().params);
    let mut compared = 0;
    for (name, got) in &grads {
        if inert_under_batchnorm(name) {
            continue;
        }
        let mean: Vec<f64> = (0..got.len())
            .map(|j| parts.iter().map(|(g, _, _)| f64::from(g[name][j])).sum::<f64>() / micro_batches as f64)
            .collect();
        assert_close(&format!("{what}: gradient of {name}"), got, &mean, tol);
        if micro_batches.is_power_of_two() {
            let (mut param, mut m, mut v) = (to_f64(&start[name]), vec![0.0; got.len()], vec![0.0; got.len()]);
            sn_wgpu::ops::adam::reference::step(&AdamConfig::default(), 1, &mut param, &mean, &mut m, &mut v);
            assert_close(&format!("{what}: {name} after one Adam step"), &params[name], &param, tol);
        }
        compared += 1;
    }
    assert!(compared >= 10, "{what}: only {compared} parameters compared");
    for h in 0..2 {
        let mean = parts.iter().map(|(_, _, l)| f64::from(l[h])).sum::<f64>() / micro_batches as f64;
        assert_close(&format!("{what}: loss of head {h}"), &[loss[h]], &[mean], tol);
    }
}

per_class!(accumulating_micro_batches_equals_averaging_them);
fn accumulating_micro_batches_equals_averaging_them() {
    accumulation_is_the_mean_of_its_micro_batches(4, 2);
    accumulation_is_the_mean_of_its_micro_batches(6, 3);
    // A batch that does not split evenly is refused before anything runs.
    let shape = StepShape { batch: 5, micro_batches: 2, samples: (SECONDS * 22_050.0) as usize };
    let err = TrainStep::new(gpu(), &fresh_model(), shape, AdamConfig::default(), None).err().expect("refused");
    assert!(err.to_string().contains("does not split into 2 equal micro-batches"), "{err}");
}

/// A dataset folder of `clips` tones, each with its own teachers of `rows` rows.
fn tone_dataset(name: &str, clips: usize, rows: usize) -> TestDir {
    let dir = temp_dir(name);
    let mut manifest = String::from("audio,objects,scenes\n");
    for i in 0..clips {
        let freq = 200.0 * (i + 1) as f64;
        let samples: Vec<i16> = (0..22_050 * 6)
            .map(|n| (8000.0 * (std::f64::consts::TAU * freq * n as f64 / 22_050.0).sin()) as i16)
            .collect();
        write_wav(&dir.join(format!("tone{i}.wav")), 22_050, &samples);
        write_npy(
            &dir.join(format!("tone{i}.objects.npy")),
            &[rows, OBJECT_CLASSES],
            &random_distributions(2 * i as u64, rows, OBJECT_CLASSES),
            false,
        );
        write_npy(
            &dir.join(format!("tone{i}.scenes.npy")),
            &[rows, SCENE_CLASSES],
            &random_distributions(2 * i as u64 + 1, rows, SCENE_CLASSES),
            false,
        );
        manifest += &format!("tone{i}.wav,tone{i}.objects.npy,tone{i}.scenes.npy\n");
    }
    std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
    dir
}

#[test]
fn trains_on_a_dataset_folder_with_validation_and_accumulation() {
    let data = tone_dataset("tones", 3, 2);
    let out = temp_dir("tones-run");
    let opts = tweaked(&out, 4, |s| {
        s.data = vec![data.to_path_buf()];
        s.val_data = Some(data.to_path_buf());
        (s.val_every, s.accumulate, s.save_every) = (2, 2, 2);
    });
    train::run(&opts).unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("val_loss")).count(), 2, "{metrics}");
    assert!(out.join("step-000002.safetensors").exists() && out.join("step-000004.safetensors").exists());
}

#[test]
fn validation_changes_nothing_a_run_saves() {
    // Validation runs batchnorm in eval mode: it reads the running statistics and moves none of
    // them, so a run that validates every step saves what the same run without validation saves.
    let data = tone_dataset("val-data", 3, 2);
    let (quiet, validated) = (temp_dir("val-off"), temp_dir("val-on"));
    let opts = |out: &Path, validated: bool| {
        tweaked(out, 3, |s| {
            s.data = vec![data.to_path_buf()];
            if validated {
                (s.val_data, s.val_every) = (Some(data.to_path_buf()), 1);
            }
        })
    };
    train::run(&opts(&quiet, false)).unwrap();
    train::run(&opts(&validated, true)).unwrap();
    let metrics = std::fs::read_to_string(validated.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("val_loss")).count(), 3, "{metrics}");
    assert_eq!(logged_losses(&quiet), logged_losses(&validated));
    let (a, b) = (
        Checkpoint::load(&quiet.join("last.safetensors")).unwrap(),
        Checkpoint::load(&validated.join("last.safetensors")).unwrap(),
    );
    let differ: Vec<&String> = a.tensors.keys().filter(|k| a.tensors[*k] != b.tensors[*k]).collect();
    assert!(differ.is_empty() && a.tensors.len() == b.tensors.len(), "validation changed {differ:?}");
}

#[test]
fn the_validation_loss_of_a_clip_does_not_depend_on_its_batch() {
    // With the running statistics each clip's output is its own: the loss over three clips is the
    // same in one batch of three as in three batches of one. Batch statistics would differ.
    let g = gpu();
    let data = tone_dataset("val-batch", 3, 2);
    let crop = sn_wgpu::data::Crop::for_arch(&Arch::by_name(MODEL).unwrap(), SECONDS).unwrap();
    let (dataset, _) =
        sn_wgpu::data::ManifestDataset::open(&[data.to_path_buf()], &sn_wgpu::data::DatasetOptions::new(crop)).unwrap();
    let model = Model::init(g, Arch::by_name(MODEL).unwrap(), 4).unwrap();
    let loss = |batch: usize| {
        let mut eval = EvalLoss::new(g, &model, batch, crop.samples, train::TeacherLoss::Kl).unwrap();
        eval.run(g, &dataset).unwrap().present_values()
    };
    let (together, apart) = (loss(3), loss(1));
    assert_eq!(together.len(), 2, "both heads");
    for (h, (together, apart)) in ["objects", "scenes"].into_iter().zip(together.into_iter().zip(apart)) {
        let e = (together - apart).abs() / apart.abs();
        assert!(e < 1e-5, "{h} head: {together} in one batch of 3, {apart} in batches of 1");
    }
}

#[test]
fn bad_data_is_named_before_training_starts() {
    let data = tone_dataset("bad", 2, 2);
    std::fs::remove_file(data.join("tone1.wav")).unwrap();
    let out = temp_dir("bad-run");
    let err = format!("{:#}", train::run(&tweaked(&out, 2, |s| s.data = vec![data.to_path_buf()])).unwrap_err());
    assert!(err.contains("tone1.wav"), "{err}");
    assert!(!out.join("metrics.jsonl").exists(), "nothing may be trained on a bad dataset");
    // --skip-bad trains on the rest.
    train::run(&tweaked(&out, 1, |s| (s.data, s.skip_bad) = (vec![data.to_path_buf()], true))).unwrap();
}

#[test]
fn non_finite_weights_are_never_saved() {
    // A learning rate of 4e14 moves every weight by about 4e14 a step: steps 1 and 2 stay within
    // what a checkpoint may hold (±1e15) and are saved, and by step 3 the weights are past it (or
    // the loss overflowed first). Training stops there, and the last good checkpoint is left as it was.
    let out = temp_dir("nan");
    let err = format!("{:#}", train::run(&tweaked(&out, 6, |s| (s.lr, s.save_every) = (4e14, 1))).unwrap_err());
    let good = out.join("last.safetensors");
    assert!(err.contains("--lr") && err.contains(&good.display().to_string()), "{err}");
    let kept: u64 =
        Checkpoint::load(&good).expect("the last good checkpoint loads").meta("step").unwrap().parse().unwrap();
    assert!((1..=2).contains(&kept), "the last good checkpoint must be left as it was, got step {kept}: {err}");

    // 1e30: step 1's weights are already impossible, so nothing is ever saved.
    let out = temp_dir("nan-at-once");
    let err = format!("{:#}", train::run(&tweaked(&out, 4, |s| (s.lr, s.save_every) = (1e30, 1))).unwrap_err());
    assert!(err.contains("became impossible") && err.contains("no checkpoint was saved before it"), "{err}");
    assert!(!out.join("last.safetensors").exists(), "an impossible checkpoint was saved");
}

#[test]
fn a_checkpoint_holding_a_nan_is_refused_naming_the_tensor() {
    let out = temp_dir("nan-ckpt");
    train::run(&tweaked(&out, 1, |s| s.save_every = 1)).unwrap();
    let path = out.join("last.safetensors");
    let mut ckpt = Checkpoint::load(&path).unwrap();
    ckpt.tensors.get_mut("adam.v.conv1.weight").unwrap().1[0] = f32::NAN;
    ckpt.save(&path).unwrap();
    let err = format!("{:#}", Checkpoint::load(&path).unwrap_err());
    assert!(err.contains("adam.v.conv1.weight") && err.contains(&path.display().to_string()), "{err}");
    // Resuming the folder skips the damaged last.safetensors for the step file that loads.
    train::run(&TrainOptions { resume: Some(out.to_path_buf()), ..options(&out, 2) }).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap().meta("step").unwrap(), "2");
}

#[test]
fn a_batch_too_large_for_the_adapter_suggests_accumulation() {
    let g = gpu();
    let model = Model::init(g, sn_wgpu::model::soundnet8(), 0).unwrap();
    let per_clip = 16 * 220_501 * 4u64; // conv1's output for 20 s
    let limit = g.limits.max_storage_buffer_binding_size.min(g.limits.max_buffer_size);
    let batch = (limit / per_clip + 1) as usize;
    let shape = StepShape { batch, micro_batches: 1, samples: 441_000 };
    let err = format!("{:#}", train::memory::plan(g, &model, shape).err().expect("the batch cannot fit"));
    assert!(err.contains("--accumulate") && err.contains("--batch-size") && err.contains("conv1"), "{err}");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_with_130() {
    let out = temp_dir("ctrlc");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"))
        .args(["train", "--model", MODEL, "--seconds", "9.5", "--batch-size", "2", "--steps", "100000", "--out"])
        .arg(&*out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|m| m.lines().count() >= 1) {
        assert!(start.elapsed() < Duration::from_secs(300), "no step was logged in 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "training exited before it was interrupted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "Ctrl-C must end training with 130 (128 + SIGINT), got {status}");
    let ckpt = Checkpoint::load(&out.join("last.safetensors")).unwrap();
    let step: u64 = ckpt.meta("step").unwrap().parse().unwrap();
    assert!((1..100_000).contains(&step));
}

#[test]
fn soundnet5_trains_and_init_starts_a_fresh_optimizer_from_its_weights() {
    let first = temp_dir("sn5");
    let sn5 = |out: &Path, steps| tweaked(out, steps, |s| (s.model, s.seconds) = ("soundnet5-narrow8".into(), 3.0));
    let summary = train::run(&sn5(&first, 2)).unwrap();
    assert!(summary.last_loss.unwrap().is_finite());
    let trained = Checkpoint::load(&first.join("last.safetensors")).unwrap();
    assert_eq!(trained.meta("model").unwrap(), "soundnet5-narrow8");

    let second = temp_dir("sn5-init");
    let init = TrainOptions { init: Some(first.join("last.safetensors")), ..sn5(&second, 1) };
    train::run(&init).unwrap();
    let continued = Checkpoint::load(&second.join("last.safetensors")).unwrap();
    assert_eq!(continued.meta("step").unwrap(), "1", "--init restarts the step count and Adam");
    // One fresh Adam step moves every conv weight by about lr from the initial weights.
    let (before, after) =
        (trained.get("conv2.weight", &[8, 4, 32]).unwrap(), continued.get("conv2.weight", &[8, 4, 32]).unwrap());
    let moved = before.iter().zip(after).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 0.5e-3 && moved < 1.5e-3, "first Adam step moved conv2 by at most {moved}");
}
