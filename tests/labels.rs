//! `train --labels`: a network trained on a labeled folder's own classes with cross-entropy,
//! leave-one-fold-out (`--folds`), and fine-tuning a pretrained body (`--init --head --freeze`),
//! all through the binary as a user runs it, on generated clips small enough for lavapipe.

mod common;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;
use sn_wgpu::checkpoint::Checkpoint;

fn sn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = sn_wgpu(args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "sn-wgpu {}\nstdout:\n{stdout}\nstderr:\n{stderr}", args.join(" "));
    stdout.into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = sn_wgpu(args);
    assert!(!out.status.success(), "sn-wgpu {} should fail", args.join(" "));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An ESC-style folder: `folds` folds, each with `per_fold` clips of 1 s per class, class 0 a low
/// hum (a pitch that varies a little from clip to clip), class 1 a high whistle.
fn labeled_folder(dir: &Path, folds: u32, per_fold: usize) {
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    let mut meta = String::from("filename,fold,target,category\n");
    let mut r = rng(3);
    for fold in 1..=folds {
        for j in 0..per_fold {
            for (target, name, hz) in [(0, "hum", 180.0), (7, "whistle", 2400.0)] {
                let file = format!("{fold}-{name}-{j}.wav");
                let pitch = hz * (1.0 + 0.1 * randn(&mut r, 1)[0].clamp(-2.0, 2.0));
                let samples: Vec<i16> = (0..22_050)
                    .map(|i| {
                        let t = i as f32 / 22_050.0;
                        let noise = randn(&mut r, 1)[0] * 600.0;
                        ((std::f32::consts::TAU * pitch * t).sin() * 8000.0 + noise) as i16
                    })
                    .collect();
                write_wav(&dir.join("audio").join(&file), 22_050, &samples);
                meta.push_str(&format!("{file},{fold},{target},{name}\n"));
            }
        }
    }
    std::fs::write(dir.join("meta.csv"), meta).unwrap();
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn labels_train_a_classifier_fold_by_fold_and_predict_names_its_classes() {
    let dir = temp_dir("labels-folds");
    let data = dir.join("esc");
    labeled_folder(&data, 2, 4);
    let out = dir.join("sweep");
    let args = [
        "train",
        "--labels",
        data.to_str().unwrap(),
        "--folds",
        "all",
        "--model",
        "soundnet5-narrow8",
        "--seconds",
        "3",
        "--batch-size",
        "4",
        "--steps",
        "40",
        "--save-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ];
    let stdout = ok(&args);
    assert!(stdout.contains("labels: 8 clips of 2 classes"), "{stdout}");
    assert!(stdout.contains("held-out clip accuracy"), "{stdout}");

    let table = json(&out.join("folds.json"));
    let folds = table["folds"].as_array().unwrap();
    assert_eq!(folds.iter().map(|f| f["fold"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    for f in folds {
        assert_eq!(f["clips"], 8, "every clip of the held-out fold is classified: {f}");
        let run = Path::new(f["run"].as_str().unwrap());
        let held = json(&run.join("held_out.json"));
        let clips = held["per_clip"].as_array().unwrap();
        assert_eq!(clips.len(), 8);
        let fold = f["fold"].as_u64().unwrap();
        assert!(clips.iter().all(|c| c["file"].as_str().unwrap().contains(&format!("/{fold}-"))), "{held}");
        let right = clips.iter().filter(|c| c["label"] == c["predicted"]).count();
        assert_eq!(held["correct"].as_u64().unwrap() as usize, right);
    }
    // A hum and a whistle are told apart after 40 steps; chance is 50%.
    let mean = table["mean_accuracy"].as_f64().unwrap();
    assert!(mean >= 0.75, "held-out accuracy {mean}: {table}");

    // The checkpoint holds the classifier and its class names; predict says them.
    let ckpt = out.join("fold-1/last.safetensors");
    let c = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(c.tensors["classes.weight"].0[0], 2);
    assert!(!c.tensors.contains_key("objects.weight") && !c.tensors.contains_key("scenes.weight"));
    assert_eq!(c.metadata["class_names"], r#"["hum","whistle"]"#);
    let clip = data.join("audio/1-whistle-0.wav");
    let predicted: Value = serde_json::from_str(&ok(&[
        "predict",
        "--weights",
        ckpt.to_str().unwrap(),
        clip.to_str().unwrap(),
        "--json",
        "--top-k",
        "2",
    ]))
    .unwrap();
    let top = &predicted["clips"][0]["clip"]["classes"];
    let mut names: Vec<&str> = top.as_array().unwrap().iter().map(|s| s["class"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["hum", "whistle"], "{predicted}");

    // The same command again continues the sweep: both folds are done, and kept as they are.
    let again = ok(&args);
    assert!(again.contains("fold 1: done before") && again.contains("fold 2: done before"), "{again}");
    assert_eq!(json(&out.join("folds.json"))["folds"], table["folds"]);
    // With more steps each fold's run is resumed from its checkpoint, not started over.
    let mut more = args.to_vec();
    let steps = more.iter().position(|a| *a == "--steps").unwrap() + 1;
    more[steps] = "44";
    let longer = ok(&more);
    assert_eq!(longer.matches("resuming soundnet5-narrow8 from step 40").count(), 2, "{longer}");
    assert!(json(&out.join("folds.json"))["folds"].as_array().unwrap().iter().all(|f| f["steps"] == 44));
    // Other settings are a clash, named, not a sweep mixing two networks.
    let mut other = args.to_vec();
    let model = other.iter().position(|a| *a == "soundnet5-narrow8").unwrap();
    other[model] = "soundnet5-narrow4";
    let err = fails(&other);
    assert!(err.contains("fold 1 of the sweep") && err.contains("--overwrite"), "{err}");
}

#[test]
fn finetuning_keeps_the_frozen_body_and_trains_a_new_classifier_on_the_layer_named() {
    let dir = temp_dir("labels-finetune");
    let data = dir.join("esc");
    labeled_folder(&data, 2, 2);
    let pretrained = narrow_checkpoint(&dir);
    let out = dir.join("run");
    let stdout = ok(&[
        "train",
        "--labels",
        data.to_str().unwrap(),
        "--init",
        pretrained.to_str().unwrap(),
        "--head",
        "conv4",
        "--freeze",
        "conv3",
        "--seconds",
        "1",
        "--batch-size",
        "4",
        "--steps",
        "6",
        "--save-every",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("frozen: pool1, pool2, conv3"), "{stdout}");
    let before = Checkpoint::load(&pretrained).unwrap();
    let after = Checkpoint::load(&out.join("last.safetensors")).unwrap();
    for n in 1..=3 {
        for t in ["conv{n}.weight", "conv{n}.bias", "bn{n}.weight", "bn{n}.running_mean", "bn{n}.running_var"] {
            let name = t.replace("{n}", &n.to_string());
            assert_eq!(after.tensors[&name], before.tensors[&name], "{name} is frozen");
        }
    }
    assert_ne!(after.tensors["conv4.weight"], before.tensors["conv4.weight"], "conv4 trains");
    assert!(!after.tensors.contains_key("conv5.weight"), "layers above the head are left out");
    let channels = before.tensors["conv4.weight"].0[0];
    assert_eq!(after.tensors["classes.weight"].0, [2, channels, 4], "main_finetune's kernel-4 classifier");
    assert_eq!(after.metadata["head_on"], "conv4");

    // Resumed, the run keeps its head and its frozen layers.
    ok(&["train", "--resume", out.to_str().unwrap(), "--steps", "9"]);
    let resumed = Checkpoint::load(&out.join("last.safetensors")).unwrap();
    assert_eq!(resumed.metadata["step"], "9");
    assert_eq!(resumed.tensors["conv2.weight"], before.tensors["conv2.weight"]);
    assert_ne!(resumed.tensors["classes.weight"], after.tensors["classes.weight"]);
}

#[test]
fn bad_labeled_folders_and_flags_are_named_before_training() {
    let dir = temp_dir("labels-bad");
    let data = dir.join("esc");
    labeled_folder(&data, 2, 1);
    let d = data.to_str().unwrap();
    let err = fails(&["train", "--labels", d, "--folds", "3", "--model", "soundnet5-narrow8", "--seconds", "3"]);
    assert!(err.contains("no fold 3") && err.contains("its folds are 1, 2"), "{err}");
    let err = fails(&["train", "--labels", d, "--head", "conv5", "--seconds", "10"]);
    assert!(err.contains("pool1, pool2, conv3, conv4, pool5, conv6, conv7"), "{err}");
    let err = fails(&["train", "--labels", d, "--head", "conv3", "--freeze", "conv4", "--seconds", "1"]);
    assert!(err.contains("--freeze \"conv4\""), "{err}");
    let err = fails(&["train", "--folds", "all"]);
    assert!(err.contains("--labels"), "{err}");
    let err = fails(&["train", "--labels", d, "--data", d]);
    assert!(err.contains("cannot be used with"), "{err}");

    std::fs::write(data.join("audio/2-hum-0.wav"), b"RIFF not really").unwrap();
    let err = fails(&["train", "--labels", d, "--model", "soundnet5-narrow8", "--seconds", "3", "--steps", "1"]);
    assert!(err.contains("2-hum-0.wav") && err.contains("meta.csv line"), "{err}");
    std::fs::write(data.join("meta.csv"), "filename,target\nx.wav,1\n").unwrap();
    let err = fails(&["train", "--labels", d, "--model", "soundnet5-narrow8", "--seconds", "3"]);
    assert!(err.contains("meta.csv") && err.contains("missing column `fold`"), "{err}");
}
