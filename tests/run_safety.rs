//! `sn-wgpu train` as a user drives it, through the binary: a resumed run is the run it continues
//! (settings, data, metrics), a new run never overwrites another, bad settings are refused before
//! anything runs, a crash's leftovers are handled, and signals stop cleanly with 130 / 143.
//! A narrow SoundNet-8 at its shortest input keeps each run to a few seconds on lavapipe.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{logged_losses, temp_dir, with_objects_head, write_npy, write_wav};
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::{OBJECT_CLASSES, SCENE_CLASSES};

/// The flags of a small run, before --out and what a test adds.
const SMALL: [&str; 6] = ["--model", "soundnet8-narrow8", "--seconds", "9.5", "--batch-size", "2"];

fn sn_wgpu(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).current_dir(dir).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `train` with `SMALL` and `args`, which must succeed.
fn train(args: &[&str], dir: &Path) -> String {
    let out = sn_wgpu(&[&["train"], &SMALL[..], args].concat(), dir);
    assert!(out.status.success(), "train {args:?} failed:\n{}", text(&out));
    text(&out)
}

/// `train` with `args` alone, which must fail; its output.
fn train_fails(args: &[&str], dir: &Path) -> String {
    let out = sn_wgpu(&[&["train"], args].concat(), dir);
    assert!(!out.status.success(), "train {args:?} should have failed:\n{}", text(&out));
    text(&out)
}

fn step_of(path: &Path) -> u64 {
    Checkpoint::load(path).unwrap().meta("step").unwrap().parse().unwrap()
}

/// A dataset folder of three tones with uniform teachers.
fn tones(dir: &Path) -> PathBuf {
    let data = dir.join("tones");
    std::fs::create_dir_all(&data).unwrap();
    let mut manifest = String::from("audio,objects,scenes\n");
    for i in 0..3 {
        let freq = 300.0 * (i + 1) as f64;
        let samples: Vec<i16> = (0..22_050 * 4)
            .map(|n| (8000.0 * (std::f64::consts::TAU * freq * n as f64 / 22_050.0).sin()) as i16)
            .collect();
        write_wav(&data.join(format!("t{i}.wav")), 22_050, &samples);
        for (head, classes) in [("objects", OBJECT_CLASSES), ("scenes", SCENE_CLASSES)] {
            let rows = vec![1.0 / classes as f32; 2 * classes];
            write_npy(&data.join(format!("t{i}.{head}.npy")), &[2, classes], &rows, false);
        }
        manifest += &format!("t{i}.wav,t{i}.objects.npy,t{i}.scenes.npy\n");
    }
    std::fs::write(data.join("manifest.csv"), manifest).unwrap();
    data
}

#[test]
fn resume_continues_the_run_it_was_started_with() {
    let dir = temp_dir("resume-run");
    let data = tones(&dir);
    let data_arg = data.to_str().unwrap();
    train(&["--data", data_arg, "--lr", "0.002", "--steps", "4", "--save-every", "1", "--out", "straight"], &dir);
    train(&["--data", data_arg, "--lr", "0.002", "--steps", "2", "--save-every", "1", "--out", "split"], &dir);
    // No --data, no --lr, no --model: the run's own. Without --steps it would stop at 2, its target.
    let said = text(&sn_wgpu(&["train", "--resume", "split", "--steps", "4"], &dir));
    assert!(said.contains("taking --steps 4 (the run was started with 2)"), "{said}");
    assert_eq!(
        logged_losses(&dir.join("straight")),
        logged_losses(&dir.join("split")),
        "2 steps + resume + 2 must equal 4"
    );
    let record = Checkpoint::load(&dir.join("split/last.safetensors")).unwrap().metadata["run"].clone();
    assert!(record.contains("tones") && record.contains("0.002"), "{record}");

    // A flag the run was not started with is refused, naming both values; nothing is trained.
    let said = train_fails(&["--resume", "split", "--batch-size", "3", "--lr", "0.01", "--steps", "6"], &dir);
    assert!(
        said.contains("--batch-size 3 (the run has 2)") && said.contains("--lr 0.01 (the run has 0.002)"),
        "{said}"
    );
    assert_eq!(step_of(&dir.join("split/last.safetensors")), 4);

    // A checkpoint file works as well as the folder.
    train(&["--resume", "split/step-000003.safetensors", "--steps", "5"], &dir);
    assert_eq!(step_of(&dir.join("split/last.safetensors")), 5);
}

#[test]
fn a_torn_last_checkpoint_falls_back_to_the_newest_step_file_and_metrics_are_cut_back() {
    let dir = temp_dir("torn");
    train(&["--steps", "3", "--save-every", "1", "--out", "run"], &dir);
    let run = dir.join("run");
    // A crash while writing: last.safetensors torn, a temporary file left, and metrics logged past
    // the newest checkpoint (step 2 after the damage).
    std::fs::remove_file(run.join("step-000003.safetensors")).unwrap();
    let last = std::fs::read(run.join("last.safetensors")).unwrap();
    std::fs::write(run.join("last.safetensors"), &last[..last.len() / 2]).unwrap();
    std::fs::write(run.join(".last.safetensors.tmp-12345"), b"half a checkpoint").unwrap();
    let said = train(&["--resume", "run", "--steps", "4"], &dir);
    assert!(said.contains("step-000002.safetensors") && said.contains("continuing from"), "{said}");
    assert!(said.contains("half written") && !run.join(".last.safetensors.tmp-12345").exists(), "{said}");
    let steps: Vec<u64> = logged_losses(&run).into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, [1, 2, 3, 4], "steps 3 was logged, then trained again: it must appear once");
    assert_eq!(step_of(&run.join("last.safetensors")), 4);
}

#[test]
fn a_new_run_never_overwrites_another() {
    let dir = temp_dir("overwrite");
    train(&["--steps", "2", "--save-every", "1", "--out", "run"], &dir);
    let said = train_fails(&[&SMALL[..], &["--steps", "1", "--out", "run"]].concat(), &dir);
    assert!(
        said.contains("already holds a run") && said.contains("--resume") && said.contains("--overwrite"),
        "{said}"
    );
    assert_eq!(step_of(&dir.join("run/last.safetensors")), 2, "the old run must be left as it was");
    train(&["--steps", "1", "--out", "run", "--overwrite"], &dir);
    assert_eq!(step_of(&dir.join("run/last.safetensors")), 1);
    assert!(!dir.join("run/step-000002.safetensors").exists(), "the old run's step files go with it");
    assert_eq!(logged_losses(&dir.join("run")).len(), 1, "metrics.jsonl starts over");

    // Without --out, every run gets a folder of its own under runs/.
    train(&["--steps", "1"], &dir);
    train(&["--steps", "1"], &dir);
    let runs: Vec<_> = std::fs::read_dir(dir.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 2, "two runs, two folders");
}

#[test]
fn a_run_replaces_and_removes_only_files_it_wrote() {
    let dir = temp_dir("own-run");
    let run = dir.join("run");
    // A user's loss.png where a new run would draw its curve: refused before anything is written.
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("loss.png"), "a user's chart").unwrap();
    let said = train_fails(&[&SMALL[..], &["--steps", "1", "--out", "run"]].concat(), &dir);
    assert!(said.contains("loss.png") && said.contains("not written by sn-wgpu"), "{said}");
    assert_eq!(std::fs::read_to_string(run.join("loss.png")).unwrap(), "a user's chart");
    assert!(!run.join("metrics.jsonl").exists() && !run.join("last.safetensors").exists());
    std::fs::remove_file(run.join("loss.png")).unwrap();

    train(&["--steps", "2", "--save-every", "1", "--out", "run"], &dir);
    std::fs::write(run.join("notes.txt"), "the user's notes").unwrap();
    // A copy of the user's at a step checkpoint's name: neither --overwrite, --keep-last nor a
    // resume may delete or replace it.
    std::fs::copy(run.join("step-000001.safetensors"), run.join("step-000000.safetensors")).unwrap();
    let overwrite = [&SMALL[..], &["--steps", "1", "--out", "run", "--overwrite"]].concat();
    for args in [&overwrite[..], &["--resume", "run", "--steps", "3", "--keep-last", "1"]] {
        let said = train_fails(args, &dir);
        assert!(said.contains("step-000000.safetensors") && said.contains("not written by sn-wgpu"), "{said}");
    }
    assert_eq!(step_of(&run.join("last.safetensors")), 2, "a refused run changed the run");
    std::fs::remove_file(run.join("step-000000.safetensors")).unwrap();

    train(&["--resume", "run", "--steps", "4", "--save-every", "1", "--keep-last", "1"], &dir);
    train(&["--steps", "1", "--out", "run", "--overwrite"], &dir);
    let mut names: Vec<String> =
        std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [".sn-wgpu-written", ".sn-wgpu.lock", "last.safetensors", "loss.png", "metrics.jsonl", "notes.txt"]
    );
    assert_eq!(std::fs::read_to_string(run.join("notes.txt")).unwrap(), "the user's notes");
}

#[test]
fn keep_last_keeps_the_newest_step_files() {
    let dir = temp_dir("keep-last");
    let said = train(&["--steps", "4", "--save-every", "1", "--keep-last", "2", "--out", "run"], &dir);
    let mut files: Vec<String> = std::fs::read_dir(dir.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    files.sort();
    assert_eq!(files, ["step-000003.safetensors", "step-000004.safetensors"]);
    assert!(said.contains("--resume run"), "the closing line names the resume command:\n{said}");
}

#[test]
fn bad_settings_are_refused_before_anything_runs() {
    let dir = temp_dir("bad-settings");
    for (args, expected) in [
        (&["--lr=-1"][..], "--lr -1 must be a positive number"),
        (&["--lr", "nan"][..], "--lr NaN must be a positive number"),
        (&["--lr", "inf"][..], "--lr inf must be a positive number"),
        (&["--seconds", "inf"][..], "--seconds inf must be a number of seconds above 0"),
        (&["--seconds", "0"][..], "--seconds 0 must be a number of seconds above 0"),
        (&["--beta1", "1"][..], "--beta1 1 must lie in [0, 1)"),
        (&["--eps", "0"][..], "--eps 0 must be a positive number"),
        (&["--keep-last", "0"][..], "--keep-last must be at least 1"),
        // A negative number after a space is the flag's value, not an option of its own.
        (&["--lr", "-0.1"][..], "--lr -0.1 must be a positive number"),
        (&["--beta1", "-0.5"][..], "--beta1 -0.5 must lie in [0, 1)"),
        (&["--seconds", "-5"][..], "--seconds -5 must be a number of seconds above 0"),
        (&["--steps", "-1"][..], "invalid value '-1' for '--steps <STEPS>'"),
    ] {
        let start = Instant::now();
        let said = train_fails(&[&["--out", "never"], args].concat(), &dir);
        assert!(said.contains(expected), "{args:?}: {said}");
        assert!(start.elapsed() < Duration::from_secs(10), "{args:?} must be refused before the GPU starts");
        assert!(!dir.join("never").exists() && !dir.join("runs").exists(), "{args:?} created a run folder");
    }
}

#[test]
fn init_refuses_a_checkpoint_whose_head_has_no_shape() {
    let dir = temp_dir("init-bad-head");
    let weights = with_objects_head(&dir, "scalar.safetensors", &[]);
    let said = train_fails(&[&SMALL[..], &["--init", weights.to_str().unwrap(), "--out", "run"]].concat(), &dir);
    let reason = "objects.weight has shape []: a head's weight is [classes, channels, kernel]";
    assert!(said.contains(&weights.display().to_string()) && said.contains(reason), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

/// Starts a long run in `dir/run` and waits until it has logged a step.
fn running(dir: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"))
        .args(["train"])
        .args(SMALL)
        .args(["--steps", "100000", "--save-every", "0", "--out", "run"])
        .current_dir(dir)
        .spawn()
        .unwrap();
    wait_for_a_step(&dir.join("run"));
    child
}

/// Waits until the run in `run` has logged a step.
fn wait_for_a_step(run: &Path) {
    let start = Instant::now();
    while !std::fs::read_to_string(run.join("metrics.jsonl")).is_ok_and(|m| m.lines().count() >= 1) {
        assert!(start.elapsed() < Duration::from_secs(300), "no step was logged in 5 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn sigterm_saves_the_run_and_exits_with_143() {
    let dir = temp_dir("sigterm");
    let mut child = running(&dir);
    signal(&child, "TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143), "SIGTERM must end training with 143 (128 + 15)");
    assert!((1..100_000).contains(&step_of(&dir.join("run/last.safetensors"))));
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    // Steps long enough (the full SoundNet-8, 8 clips of 20 s: seconds each on lavapipe) that
    // finishing one and saving would take far longer than exiting.
    let dir = temp_dir("double-ctrl-c");
    let child = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"))
        .args(["train", "--batch-size", "8", "--seconds", "20", "--steps", "100000", "--save-every", "0"])
        .args(["--out", "run"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_a_step(&dir.join("run"));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(200));
    let second = Instant::now();
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(second.elapsed() < Duration::from_secs(1), "a second Ctrl-C must not wait for the step in flight");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("stopped cleanly"), "the second Ctrl-C must not finish and save:\n{said}");
}

#[test]
fn one_trainer_per_folder_and_a_killed_one_leaves_no_lock() {
    let dir = temp_dir("one-writer");
    let mut first = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"))
        .args(["train"])
        .args(SMALL)
        .args(["--steps", "100000", "--save-every", "1", "--out", "run"])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    wait_for_a_step(&dir.join("run"));
    let pid = first.id().to_string();
    // A second run and a resume on the folder in use are both refused, before they write.
    let metrics = || std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let before = metrics();
    for args in [&["--steps", "3", "--out", "run", "--overwrite"][..], &["--resume", "run", "--steps", "100001"][..]] {
        let said = train_fails(&[&SMALL[..], args].concat(), &dir);
        assert!(
            said.contains("run is in use by another sn-wgpu process") && said.contains(&format!("(pid {pid})")),
            "{said}"
        );
    }
    assert!(metrics().starts_with(&before), "a refused run changed the folder's metrics");
    assert!(dir.join("run/last.safetensors").exists(), "--overwrite of a folder in use removed its checkpoint");
    // kill -9 ends the holder with no cleanup at all: the kernel drops its lock, and a resume runs.
    first.kill().unwrap();
    first.wait().unwrap();
    let saved = step_of(&dir.join("run/last.safetensors"));
    let target = (saved + 2).to_string();
    let said = train(&["--resume", "run", "--steps", &target], &dir);
    assert!(!said.contains("in use"), "{said}");
    let steps: Vec<u64> = logged_losses(&dir.join("run")).into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, (1..=saved + 2).collect::<Vec<u64>>(), "one run's lines, each step once");
}
