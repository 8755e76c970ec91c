//! Conv kernels chosen by measuring them on the device: the choice follows the timings, is kept in
//! the kernel-choice file and read back, is measured again for another driver or edited shaders
//! and after damage to the file (with a note, never an error), never changes once written, and
//! `sn-wgpu tune` and `profile` show it.

mod common;

use std::path::Path;
use std::process::Command;

use common::temp_dir;
use sn_wgpu::gpu::tuning::Tuning;
use sn_wgpu::ops::conv1d::autotune::{self, tune_with};
use sn_wgpu::ops::conv1d::{Conv1dShape, ConvKernel, Pass, PassKernel};
use sn_wgpu::Gpu;

const SHAPE: Conv1dShape = Conv1dShape { n: 2, cin: 16, cout: 32, l: 300, k: 32, stride: 2, pad: 16 };

/// A device of the test adapter whose choices live in `file`.
fn gpu_with_file(file: &Path) -> Gpu {
    let mut gpu = Gpu::new().expect("GPU tests need an adapter");
    gpu.tuning = Tuning::open(file, &gpu.info);
    gpu
}

/// Timings that make `fastest` the fastest kernel, counting how often they were asked for.
fn timings(
    fastest: PassKernel,
    asked: &mut usize,
) -> impl FnMut(PassKernel, Option<f64>) -> anyhow::Result<(f64, u32)> + '_ {
    move |kernel, _| {
        *asked += 1;
        Ok((if kernel == fastest { 1e5 } else { 1e6 }, 4))
    }
}

#[test]
fn the_choice_follows_the_timings_and_is_read_back_from_the_file() {
    let dir = temp_dir("tune-follow");
    let file = dir.join("choices.json");
    let gpu = gpu_with_file(&file);
    let candidates = autotune::candidates(&gpu, &SHAPE, Pass::Forward).unwrap();
    assert!(candidates.len() >= 2, "a choice needs candidates: {candidates:?}");
    let first_guess = ConvKernel::Auto.first_guess(&gpu, &SHAPE, Pass::Forward).unwrap();
    // Whichever kernel the built-in rule prefers, the timings decide.
    let fastest = *candidates.iter().find(|k| **k != first_guess).unwrap();
    let mut asked = 0;
    let choice = tune_with(&gpu, &SHAPE, Pass::Forward, timings(fastest, &mut asked)).unwrap();
    assert_eq!(asked, candidates.len(), "every candidate is timed once");
    assert_eq!(choice.kernel, autotune::kernel_name(fastest));
    assert_eq!(ConvKernel::Auto.choose(&gpu, &SHAPE, Pass::Forward).unwrap(), fastest);
    // A forced kernel is still forced.
    assert_eq!(ConvKernel::Plain.choose(&gpu, &SHAPE, Pass::Forward).unwrap(), PassKernel::Plain);
    // Another pass of the same shape is its own choice.
    assert!(autotune::cached(&gpu, &SHAPE, Pass::WeightGrad).is_none());

    // Asked again, and in another process that opens the file: nothing is measured.
    let mut again = 0;
    tune_with(&gpu, &SHAPE, Pass::Forward, timings(first_guess, &mut again)).unwrap();
    let reopened = gpu_with_file(&file);
    assert_eq!(ConvKernel::Auto.choose(&reopened, &SHAPE, Pass::Forward).unwrap(), fastest);
    tune_with(&reopened, &SHAPE, Pass::Forward, timings(first_guess, &mut again)).unwrap();
    assert_eq!(again, 0, "a kept choice is not measured again");
}

type EntryEdit = dyn Fn(&mut serde_json::Value);

/// Rewrites every entry of the choice file with `edit`.
fn edit_entries(file: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    json["entries"].as_array_mut().expect("entries").iter_mut().for_each(edit);
    std::fs::write(file, serde_json::to_vec(&json).unwrap()).unwrap();
}

#[test]
fn another_driver_or_edited_shaders_are_measured_again() {
    let dir = temp_dir("tune-stale");
    let file = dir.join("choices.json");
    let mut asked = 0;
    tune_with(&gpu_with_file(&file), &SHAPE, Pass::InputGrad, timings(PassKernel::Tiled, &mut asked)).unwrap();
    let another_driver = |e: &mut serde_json::Value| {
        e["adapter"] = format!("{} 0.1", e["adapter"].as_str().unwrap()).into();
    };
    let edited_shaders = |e: &mut serde_json::Value| e["sources"] = "0123456789abcdef".into();
    let edits: [(&str, &EntryEdit); 2] = [("another driver", &another_driver), ("edited shaders", &edited_shaders)];
    for (what, edit) in edits {
        edit_entries(&file, edit);
        let gpu = gpu_with_file(&file);
        assert!(autotune::cached(&gpu, &SHAPE, Pass::InputGrad).is_none(), "{what}: the old choice was used");
        let mut asked = 0;
        let choice = tune_with(&gpu, &SHAPE, Pass::InputGrad, timings(PassKernel::Plain, &mut asked)).unwrap();
        assert!(asked > 0 && choice.kernel == "plain", "{what}: not measured again");
    }
    // The stale entries stay in the file beside the new ones (another driver may come back).
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["entries"].as_array().unwrap().len(), 3);
}

#[test]
fn a_damaged_file_is_measured_again_with_a_note() {
    let dir = temp_dir("tune-damaged");
    let file = dir.join("choices.json");
    for damage in
        [&b"{\"format\": 1, \"entries\": [{\"adap"[..], b"\x00\xff not json", b"{\"format\": 99, \"entries\": []}"]
    {
        std::fs::write(&file, damage).unwrap();
        let gpu = gpu_with_file(&file);
        let notes = gpu.tuning.take_notes();
        assert!(
            notes.len() == 1 && notes[0].contains(&file.display().to_string()) && notes[0].contains("measuring again"),
            "{notes:?}"
        );
        let mut asked = 0;
        tune_with(&gpu, &SHAPE, Pass::Forward, timings(PassKernel::Tiled, &mut asked)).unwrap();
        assert!(asked > 0);
        assert_eq!(gpu_with_file(&file).tuning.take_notes(), Vec::<String>::new(), "the file was rewritten whole");
        assert_eq!(autotune::cached(&gpu_with_file(&file), &SHAPE, Pass::Forward), Some(PassKernel::Tiled));
    }
}

#[test]
fn the_first_choice_written_is_kept_by_every_process() {
    let dir = temp_dir("tune-race");
    let file = dir.join("choices.json");
    // Two processes open the empty file, both measure, and disagree.
    let (a, b) = (gpu_with_file(&file), gpu_with_file(&file));
    let (mut asked_a, mut asked_b) = (0, 0);
    let first = tune_with(&a, &SHAPE, Pass::WeightGrad, timings(PassKernel::Tiled, &mut asked_a)).unwrap();
    let second = tune_with(&b, &SHAPE, Pass::WeightGrad, timings(PassKernel::Plain, &mut asked_b)).unwrap();
    assert!(asked_a > 0 && asked_b > 0);
    assert_eq!(
        (first.kernel.as_str(), second.kernel.as_str()),
        ("tiled", "tiled"),
        "the later writer adopts the first"
    );
    assert_eq!(ConvKernel::Auto.choose(&b, &SHAPE, Pass::WeightGrad).unwrap(), PassKernel::Tiled);
}

#[test]
fn without_a_file_the_first_guess_runs_unmeasured() {
    let gpu = Gpu::new().unwrap();
    assert!(!gpu.tuning.enabled(), "the library alone keeps no file");
    let mut asked = 0;
    let choice = tune_with(&gpu, &SHAPE, Pass::Forward, timings(PassKernel::Plain, &mut asked)).unwrap();
    let first_guess = ConvKernel::Auto.first_guess(&gpu, &SHAPE, Pass::Forward).unwrap();
    assert_eq!((asked, choice.kernel.as_str()), (0, autotune::kernel_name(first_guess)));
    assert_eq!(ConvKernel::Auto.choose(&gpu, &SHAPE, Pass::Forward).unwrap(), first_guess);
}

#[test]
fn timing_on_the_device_times_every_candidate() {
    let dir = temp_dir("tune-device");
    let gpu = gpu_with_file(&dir.join("choices.json"));
    for pass in [Pass::Forward, Pass::InputGrad, Pass::WeightGrad] {
        let choice = autotune::tune(&gpu, &SHAPE, pass).unwrap();
        let candidates = autotune::candidates(&gpu, &SHAPE, pass).unwrap();
        assert_eq!(choice.nanos.len(), candidates.len(), "{pass:?}: {choice:?}");
        assert!(choice.nanos.values().all(|ns| *ns > 0.0 && ns.is_finite()), "{pass:?}: {choice:?}");
        let least = choice.nanos.iter().min_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(&choice.kernel, least, "{pass:?}: the fastest is chosen");
    }
}

fn sn_wgpu(file: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"))
        .args(args)
        .env("SN_WGPU_TUNE_CACHE", file)
        .env_remove("SN_WGPU_KERNELS")
        .output()
        .expect("running sn-wgpu");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn tune_fills_the_file_that_profile_then_uses() {
    let dir = temp_dir("tune-cli");
    let file = dir.join("choices.json");
    let args = ["--model", "soundnet8-narrow8", "--batch-size", "2", "--seconds", "9.5"];
    let (ok, stdout, stderr) = sn_wgpu(&file, &[&["tune"], &args[..]].concat());
    assert!(ok, "{stdout}\n{stderr}");
    // conv1 forward and dW, then forward, dX and dW of conv2..conv7 and both heads.
    assert!(stdout.contains("26 passes of soundnet8-narrow8 at batch 2 x 9.5 s: 26 measured now"), "{stdout}");
    assert!(stdout.contains("conv1") && stdout.contains("weight_grad") && stdout.contains('*'), "{stdout}");
    let (ok, stdout, _) = sn_wgpu(&file, &[&["tune"], &args[..]].concat());
    assert!(ok && stdout.contains("0 measured now, 26 from"), "{stdout}");

    let (ok, stdout, stderr) = sn_wgpu(&file, &[&["profile", "--steps", "1", "--warmup", "0"], &args[..]].concat());
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("conv kernels, as measured on this adapter"), "{stdout}");
    assert!(stdout.contains("kernel measured fastest on this adapter") && stdout.contains("host:"), "{stdout}");
    assert!(!stdout.contains("conv kernels: measured"), "profile measured again what tune kept:\n{stdout}");

    let (ok, _, stderr) = sn_wgpu(Path::new("off"), &["tune", "--model", "soundnet8-narrow8"]);
    assert!(!ok && stderr.contains("kernel tuning is off"), "{stderr}");
}
