//! `sn-wgpu teach` through the binary: a random narrow SoundNet-8 with 10 object and 7 scene
//! classes teaches generated clips of several lengths and rates past a bad file; its shards cover
//! the inputs once each, stably; students train on the shards as one dataset with heads sized from
//! the arrays (both heads, or one with `--teacher scenes` and `--loss l2`), and `predict` names the
//! classes it has no list for by number.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::teacher;

fn sn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A random narrow SoundNet-8 with heads of 10 and 7 classes, as a checkpoint. Its head weights
/// are scaled up so that its distributions are peaked (a fresh network's are nearly uniform).
fn small_teacher(dir: &Path) -> PathBuf {
    let model = sn_wgpu::model::Model::init(gpu(), sn_wgpu::model::soundnet8().narrow(8, 10, 7), 11).unwrap();
    let mut c = Checkpoint::default();
    model.write_checkpoint(gpu(), &mut c).unwrap();
    for head in ["objects.weight", "scenes.weight"] {
        c.tensors.get_mut(head).unwrap().1.iter_mut().for_each(|v| *v *= 300.0);
    }
    let path = dir.join("teacher.safetensors");
    c.save(&path).unwrap();
    path
}

/// Clips of 3 s (16 kHz), 12 s and 31 s (22,050 Hz) of noise, and a file that is not audio.
fn clips(dir: &Path) -> Vec<PathBuf> {
    let mut r = rng(5);
    let mut paths = Vec::new();
    for (name, rate, seconds) in [("short", 16_000, 3.0), ("middle", 22_050, 12.0), ("long", 22_050, 31.0)] {
        let n = (rate as f64 * seconds) as usize;
        let samples: Vec<i16> = randn(&mut r, n).iter().map(|v| (v * 3000.0) as i16).collect();
        let path = dir.join(format!("{name}.wav"));
        write_wav(&path, rate, &samples);
        paths.push(path);
    }
    let bad = dir.join("broken.wav");
    std::fs::write(&bad, b"not audio at all").unwrap();
    paths.push(bad);
    paths
}

/// The manifest's rows: (audio, the other columns).
fn manifest(dir: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(dir.join("manifest.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>())
        .map(|f| (f[0].clone(), f[1..].to_vec()))
        .collect()
}

#[test]
fn teach_writes_datasets_that_train_students_with_heads_sized_from_the_data() {
    let dir = temp_dir("teach");
    let weights = small_teacher(&dir);
    let inputs = clips(&dir);
    let w = weights.to_str().unwrap();
    let input_args: Vec<&str> = inputs.iter().map(|p| p.to_str().unwrap()).collect();
    let teach = |out: &Path, extra: &[&str]| {
        let mut args = vec!["teach", "--weights", w, "--out", out.to_str().unwrap()];
        args.extend(extra);
        args.extend(&input_args);
        sn_wgpu(&args)
    };

    // A bad file is listed and makes the exit status 1; the others are taught either way.
    let data = dir.join("data");
    let out = teach(&data, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("broken.wav"), "{}", text(&out));
    let out = teach(&data, &["--skip-bad"]);
    assert!(out.status.success(), "{}", text(&out));
    let header = std::fs::read_to_string(data.join("manifest.csv")).unwrap();
    assert!(header.starts_with("audio,objects,scenes\n"), "{header}");
    let rows = manifest(&data);
    assert_eq!(rows.len(), 3);
    // ceil(seconds / 5) rows of 10 and 7 probabilities each.
    for ((audio, arrays), want_rows) in rows.iter().zip([1, 3, 7]) {
        assert!(Path::new(audio).is_absolute() && Path::new(audio).exists(), "{audio}");
        for (array, classes) in arrays.iter().zip([10, 7]) {
            let t = teacher::read(&data.join(array), None).unwrap_or_else(|p| panic!("{p:?}"));
            assert_eq!((t.rows, t.classes), (want_rows, classes), "{array}");
        }
    }
    // A higher temperature gives softer rows.
    let soft = dir.join("soft");
    assert!(teach(&soft, &["--skip-bad", "--temperature", "8"]).status.success());
    let peak = |d: &Path| {
        let t = teacher::read(&d.join("teacher/long.objects.npy"), Some(10)).unwrap();
        t.data.iter().copied().fold(0.0f32, f32::max)
    };
    assert!(peak(&soft) < peak(&data), "T = 8: {} against T = 1: {}", peak(&soft), peak(&data));

    // Three shards hold every input once, and the same ones when run again.
    let shards: Vec<PathBuf> = (0..3).map(|k| dir.join(format!("shard-{k}"))).collect();
    let mut taught = Vec::new();
    for (k, shard) in shards.iter().enumerate() {
        let out = teach(shard, &["--skip-bad", "--shard", &format!("{k}/3")]);
        assert!(out.status.success(), "{}", text(&out));
        taught.extend(manifest(shard).into_iter().map(|(a, _)| a));
    }
    taught.sort();
    let mut all: Vec<String> = rows.iter().map(|(a, _)| a.clone()).collect();
    all.sort();
    assert_eq!(taught, all, "every good input in exactly one shard");
    let again = dir.join("shard-0-again");
    assert!(teach(&again, &["--skip-bad", "--shard", "0/3"]).status.success());
    assert_eq!(manifest(&again), manifest(&shards[0]), "shard 0 is stable across runs");
    assert!(!teach(&again, &["--shard", "3/3"]).status.success(), "shards count from 0");

    // A student trains on the shards as one dataset, its heads as wide as the teacher's arrays.
    let student = |name: &str, extra: &[&str]| {
        let run = dir.join(name);
        let mut args = vec!["train", "--model", "soundnet8-narrow8", "--steps", "2", "--batch-size", "2"];
        args.extend(["--seconds", "9.5", "--save-every", "0", "--out", run.to_str().unwrap(), "--data"]);
        args.extend(shards.iter().map(|s| s.to_str().unwrap()));
        args.extend(extra);
        let out = sn_wgpu(&args);
        assert!(out.status.success(), "{}", text(&out));
        (run.join("last.safetensors"), text(&out))
    };
    let (both, log) = student("both", &[]);
    assert!(log.contains("heads of objects 10 and scenes 7 classes"), "{log}");
    let c = Checkpoint::load(&both).unwrap();
    assert_eq!(c.tensors["objects.weight"].0, vec![10, 128, 8]);
    assert_eq!(c.tensors["scenes.weight"].0, vec![7, 128, 8]);
    assert!(log.contains("the heads' kl losses"), "{log}");
    // One head: the scenes teacher only, with the paper's squared-error loss.
    let (scenes, log) = student("scenes", &["--teacher", "scenes", "--loss", "l2"]);
    assert!(log.contains("the heads' l2 losses"), "{log}");
    let c = Checkpoint::load(&scenes).unwrap();
    assert!(!c.tensors.contains_key("objects.weight"));
    assert_eq!(c.tensors["scenes.weight"].0, vec![7, 128, 8]);
    let metrics = std::fs::read_to_string(dir.join("scenes/metrics.jsonl")).unwrap();
    assert!(metrics.contains("loss_scenes") && !metrics.contains("loss_objects"), "{metrics}");
    // predict has no list of 7 scenes: it numbers them, and shows only the head there is.
    let out = sn_wgpu(&["predict", "--weights", scenes.to_str().unwrap(), "--top-k", "2", input_args[1]]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("scenes:  class ") && !printed.contains("objects:"), "{printed}");
}
