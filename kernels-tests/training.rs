//! `sn-wgpu train` end to end on a narrow SoundNet-8 (`soundnet8-narrow8`: every body layer's
//! channels divided by 8, full heads), so each step takes a fraction of a second on lavapipe:
//! determinism, exact resume, the loss falling on the demo, flat GPU memory, validation on a
//! dataset folder, refusing to save non-finite weights, clear data errors, and Ctrl-C.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{gpu, logged_losses, temp_dir, write_npy, write_wav, TestDir};
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::{DemoDataset, OBJECT_CLASSES, SCENE_CLASSES};
use sn_wgpu::model::{Arch, Model};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::train::{self, StepShape, TrainOptions, TrainStep};

const MODEL: &str = "soundnet8-narrow8";
/// The shortest whole-tenth length SoundNet-8 takes (it needs 209,374 samples).
const SECONDS: f64 = 9.5;

fn options(out: &Path, steps: u64) -> TrainOptions {
    TrainOptions {
        data: Vec::new(),
        teacher: None,
        loss: train::TeacherLoss::Kl,
        model: MODEL.into(),
        batch_size: 2,
        accumulate: 1,
        seconds: SECONDS,
        steps,
        adam: AdamConfig::default(),
        seed: 7,
        shuffle: true,
        out: out.to_path_buf(),
        save_every: 0,
        keep_last: None,
        overwrite: false,
        resume: None,
        init: None,
        val_data: None,
        val_every: 0,
        skip_bad: false,
        demo_clips_per_class: 1,
    }
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
    let summary = train::run(&TrainOptions { batch_size: 4, ..options(&out, 8) }).unwrap();
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
            returned.extend(step.submit(g, &batch.waveform, &batch.objects, &batch.scenes).unwrap());
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

/// A dataset folder of `clips` tones with uniform teachers, `rows` teacher rows each.
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
            &vec![1.0 / OBJECT_CLASSES as f32; rows * OBJECT_CLASSES],
            false,
        );
        write_npy(
            &dir.join(format!("tone{i}.scenes.npy")),
            &[rows, SCENE_CLASSES],
            &vec![1.0 / SCENE_CLASSES as f32; rows * SCENE_CLASSES],
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
    let opts = TrainOptions {
        data: vec![data.to_path_buf()],
        val_data: Some(data.to_path_buf()),
        val_every: 2,
        accumulate: 2,
        save_every: 2,
        ..options(&out, 4)
    };
    train::run(&opts).unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("val_loss")).count(), 2, "{metrics}");
    assert!(out.join("step-000002.safetensors").exists() && out.join("step-000004.safetensors").exists());
}

#[test]
fn bad_data_is_named_before_training_starts() {
    let data = tone_dataset("bad", 2, 2);
    std::fs::remove_file(data.join("tone1.wav")).unwrap();
    let out = temp_dir("bad-run");
    let err =
        format!("{:#}", train::run(&TrainOptions { data: vec![data.to_path_buf()], ..options(&out, 2) }).unwrap_err());
    assert!(err.contains("tone1.wav"), "{err}");
    assert!(!out.join("metrics.jsonl").exists(), "nothing may be trained on a bad dataset");
    // --skip-bad trains on the rest.
    train::run(&TrainOptions { data: vec![data.to_path_buf()], skip_bad: true, ..options(&out, 1) }).unwrap();
}

#[test]
fn non_finite_weights_are_never_saved() {
    // An absurd learning rate: step 1 moves every weight by about 1e30 (still finite, saved), and
    // step 2's forward pass overflows. Training stops at that step, and the last good checkpoint
    // is left as it was.
    let out = temp_dir("nan");
    let absurd = AdamConfig { lr: 1e30, ..AdamConfig::default() };
    let err =
        format!("{:#}", train::run(&TrainOptions { adam: absurd, save_every: 1, ..options(&out, 4) }).unwrap_err());
    let good = out.join("last.safetensors");
    assert!(err.contains("non-finite") && err.contains("--lr") && err.contains(&good.display().to_string()), "{err}");
    let kept = Checkpoint::load(&good).unwrap();
    assert_eq!(kept.meta("step").unwrap(), "1", "the last good checkpoint must be left as it was");
}

#[test]
fn a_checkpoint_holding_a_nan_is_refused_naming_the_tensor() {
    let out = temp_dir("nan-ckpt");
    train::run(&TrainOptions { save_every: 1, ..options(&out, 1) }).unwrap();
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
    let sn5 =
        |out: &Path, steps| TrainOptions { model: "soundnet5-narrow8".into(), seconds: 3.0, ..options(out, steps) };
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
