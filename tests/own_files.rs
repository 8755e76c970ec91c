//! What a user keeps is never lost, through the binary: `extract`, `teach` and `filters` replace
//! only files sn-wgpu wrote (by the list in the folder), leave any other file in the way as it
//! was and stop before writing, and are refused while another sn-wgpu process writes the folder.
//! (`units`, `probe` and `train` are tested so beside their other tests.)

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sn_wgpu::out_folder::{OutFolder, WRITTEN_LIST};

fn sn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

fn succeeds(out: Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The command failed, and its error says each of `wanted`.
fn refused(out: Output, wanted: &[&str]) {
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should have been refused:\n{}", String::from_utf8_lossy(&out.stdout));
    for w in wanted {
        assert!(said.contains(w), "wanted {w:?} in:\n{said}");
    }
}

/// Two clips of 2 s of noise.
fn clips(dir: &Path) -> Vec<PathBuf> {
    let mut r = rng(3);
    ["a", "b"]
        .iter()
        .map(|name| {
            let samples: Vec<i16> = randn(&mut r, 44_100).iter().map(|v| (v * 3000.0) as i16).collect();
            let path = dir.join(format!("{name}.wav"));
            write_wav(&path, 22_050, &samples);
            path
        })
        .collect()
}

/// The files of `dir` (none when it does not exist), with their bytes.
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn extract_replaces_only_its_own_features() {
    let dir = temp_dir("own-extract");
    let weights = narrow_checkpoint(&dir);
    let clips = clips(&dir);
    let out = dir.join("features");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("b.npy"), "a user's array").unwrap();
    let extract = || {
        let mut args = vec!["extract", "--weights", weights.to_str().unwrap(), "--layer", "conv4"];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(clips.iter().map(|c| c.to_str().unwrap()));
        sn_wgpu(&args)
    };
    refused(extract(), &[&out.join("b.npy").display().to_string(), "not written by sn-wgpu"]);
    assert_eq!(files_in(&out).iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), [".sn-wgpu.lock", "b.npy"]);
    assert_eq!(std::fs::read(out.join("b.npy")).unwrap(), b"a user's array", "refused, and nothing was written");

    std::fs::remove_file(out.join("b.npy")).unwrap();
    succeeds(extract());
    succeeds(extract());
    assert_eq!(std::fs::read_to_string(out.join(WRITTEN_LIST)).unwrap(), "a.npy\nb.npy\n");

    let held = OutFolder::lock(&out, "--out").unwrap();
    let before = files_in(&out);
    refused(extract(), &["in use by another sn-wgpu process", &format!("(pid {})", std::process::id())]);
    assert_eq!(files_in(&out), before, "a refused run changed the folder");
    drop(held);
}

#[test]
fn teach_replaces_only_its_own_manifest_and_arrays() {
    let dir = temp_dir("own-teach");
    let weights = narrow_checkpoint(&dir);
    let clips = clips(&dir);
    let out = dir.join("taught");
    let teach = || {
        let mut args = vec!["teach", "--weights", weights.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend(clips.iter().map(|c| c.to_str().unwrap()));
        sn_wgpu(&args)
    };
    for (name, what) in [("manifest.csv", "the user's manifest"), ("teacher/a.scenes.npy", "the user's array")] {
        let path = out.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, what).unwrap();
        refused(teach(), &[&path.display().to_string(), "not written by sn-wgpu"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), what);
        assert!(files_in(&out.join("teacher")).iter().all(|f| f.0 == "a.scenes.npy"), "nothing else was written");
        std::fs::remove_file(&path).unwrap();
    }
    succeeds(teach());
    succeeds(teach());
    let list = std::fs::read_to_string(out.join(WRITTEN_LIST)).unwrap();
    assert_eq!(
        list,
        "manifest.csv\nteacher/a.objects.npy\nteacher/a.scenes.npy\nteacher/b.objects.npy\nteacher/b.scenes.npy\n"
    );

    let held = OutFolder::lock(&out, "--out").unwrap();
    let before = files_in(&out.join("teacher"));
    refused(teach(), &["in use by another sn-wgpu process"]);
    assert_eq!(files_in(&out.join("teacher")), before);
    drop(held);
}

#[test]
fn filters_never_draw_over_a_users_png() {
    let dir = temp_dir("own-filters");
    let weights = narrow_checkpoint(&dir);
    let png = dir.join("filters.png");
    let filters = || {
        sn_wgpu(&["filters", "--weights", weights.to_str().unwrap(), "--count", "2", "--out", png.to_str().unwrap()])
    };
    std::fs::write(&png, "a user's picture").unwrap();
    refused(filters(), &[&png.display().to_string(), "not written by sn-wgpu", "--out"]);
    assert_eq!(std::fs::read_to_string(&png).unwrap(), "a user's picture");
    std::fs::remove_file(&png).unwrap();
    succeeds(filters());
    succeeds(filters());
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    let held = OutFolder::lock(&dir, "--out").unwrap();
    refused(filters(), &["in use by another sn-wgpu process"]);
    drop(held);
}
