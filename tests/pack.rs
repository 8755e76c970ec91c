//! `sn-wgpu pack` and packed shards: a pack serves exactly the examples its folders serve (16-bit
//! mono sources come back bit for bit), training on it equals training on the folders and resumes
//! exactly, damage is named by shard and offset (or left out under --skip-bad), and memory does
//! not grow with the number of clips.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use rand::Rng;
use sn_wgpu::data::pack::PackedDataset;
use sn_wgpu::data::{Crop, Dataset, DatasetOptions, ManifestDataset, Order};
use sn_wgpu::model::Heads;
use sn_wgpu::pack::{pack, PackOptions};
use sn_wgpu::train::{self, RunSettings, SettingFlags, TrainOptions};

fn sn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

const OBJECTS: usize = 7;
const SCENES: usize = 5;

fn distributions(r: &mut impl Rng, rows: usize, classes: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for _ in 0..rows {
        let raw: Vec<f64> = (0..classes).map(|_| r.random_range(0.01..1.0f64)).collect();
        let total: f64 = raw.iter().sum();
        out.extend(raw.iter().map(|v| (v / total) as f32));
    }
    out
}

/// A dataset folder of clips of the given lengths (samples) and teacher rows, noise at 16 bits.
fn dataset(dir: &Path, clips: &[(usize, usize)], seed: u64) {
    let mut r = rng(seed);
    let mut manifest = String::from("audio,objects,scenes\n");
    for (i, &(samples, rows)) in clips.iter().enumerate() {
        let wave: Vec<i16> = (0..samples).map(|_| r.random_range(-20_000..20_000)).collect();
        write_wav(&dir.join(format!("c{i}.wav")), 22_050, &wave);
        write_npy(&dir.join(format!("c{i}.o.npy")), &[rows, OBJECTS], &distributions(&mut r, rows, OBJECTS), false);
        write_npy(&dir.join(format!("c{i}.s.npy")), &[rows, SCENES], &distributions(&mut r, rows, SCENES), false);
        manifest += &format!("c{i}.wav,c{i}.o.npy,c{i}.s.npy\n");
    }
    std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
}

fn options(data: &Path, out: &Path, shard_bytes: u64) -> PackOptions {
    PackOptions {
        data: vec![data.to_path_buf()],
        out: out.to_path_buf(),
        shard_bytes,
        skip_bad: false,
        overwrite: false,
    }
}

const BOTH: Heads<bool> = Heads { objects: true, scenes: true, classes: false };

#[test]
fn a_pack_serves_exactly_what_its_folder_serves() {
    let data = temp_dir("pack-source");
    // Longer and shorter than the crop, one row and many: the crop tiles and cuts both alike.
    let clips = [(5000, 1), (1200, 3), (3001, 2), (17, 1), (4000, 6), (2500, 2), (999, 4)];
    dataset(&data, &clips, 1);
    let out = temp_dir("pack-out");
    // Shards of about 10 kB: the clips spread over several, so items are found across shards.
    let summary = pack(&options(&data, &out, 10_000)).unwrap();
    assert_eq!(summary.index.items, clips.len() as u64);
    assert!(summary.index.shards.len() >= 3, "{:?}", summary.index.shards);
    let crop = Crop::new(3000, 4).unwrap();
    let (packed, problems) = PackedDataset::open(&[out.to_path_buf()], crop, BOTH, false).unwrap();
    assert!(problems.is_empty());
    let (folder, _) = ManifestDataset::open(&[data.to_path_buf()], &DatasetOptions::new(crop)).unwrap();
    assert_eq!(packed.len(), folder.len());
    assert_eq!(packed.classes(), folder.classes());
    for i in 0..folder.len() {
        assert_eq!(packed.example(i).unwrap(), folder.example(i).unwrap(), "item {i}");
    }
    let sizes = packed.shard_sizes().unwrap();
    assert_eq!(sizes.len(), summary.index.shards.len());
    assert_eq!(sizes.iter().sum::<usize>(), clips.len());
}

fn run_options(data: &Path, out: &Path, steps: u64, shuffle: bool) -> TrainOptions {
    let settings = RunSettings {
        model: "soundnet5-narrow8".into(),
        batch_size: 2,
        seconds: 5.0,
        steps,
        seed: 3,
        save_every: 2,
        val_every: 0,
        no_shuffle: !shuffle,
        data: vec![data.to_path_buf()],
        ..SettingFlags::default().new_run()
    };
    TrainOptions { settings, out: out.to_path_buf(), keep_last: None, overwrite: false, resume: None, init: None }
}

#[test]
fn training_on_a_pack_equals_training_on_its_folder_and_resumes_exactly() {
    let data = temp_dir("pack-train-source");
    dataset(&data, &[(60_000, 1), (150_000, 2), (40_000, 1), (120_000, 3), (110_250, 2)], 2);
    let packed = temp_dir("pack-train-pack");
    pack(&options(&data, &packed, 400_000)).unwrap();

    // In manifest order, the two give the same batches: the same losses, bit for bit.
    let (a, b) = (temp_dir("pack-train-a"), temp_dir("pack-train-b"));
    train::run(&run_options(&data, &a, 3, false)).unwrap();
    train::run(&run_options(&packed, &b, 3, false)).unwrap();
    assert_eq!(logged_losses(&a), logged_losses(&b));

    // Shuffled as a stream, 2 steps + resume + 2 steps log what 4 straight steps log.
    let (straight, split) = (temp_dir("pack-train-straight"), temp_dir("pack-train-split"));
    train::run(&run_options(&packed, &straight, 4, true)).unwrap();
    train::run(&run_options(&packed, &split, 2, true)).unwrap();
    let resumed = TrainOptions { resume: Some(split.to_path_buf()), ..run_options(&packed, &split, 4, true) };
    train::run(&resumed).unwrap();
    assert_eq!(logged_losses(&straight).len(), 4);
    assert_eq!(logged_losses(&straight), logged_losses(&split));
}

#[test]
fn random_crops_start_at_whole_rows_and_the_run_resumes_exactly() {
    let data = temp_dir("pack-crops-source");
    // 15 s and a bit, 3 rows: a 5 s crop of 1 row may start at row 0, 1 or 2.
    let row = 110_250;
    dataset(&data, &[(3 * row + 1000, 3), (2 * row, 3), (3 * row, 2)], 6);
    let out = temp_dir("pack-crops-pack");
    pack(&options(&data, &out, 1 << 30)).unwrap();
    let crop = Crop::new(row, 1).unwrap();
    let (packed, _) = PackedDataset::open(&[out.to_path_buf()], crop, BOTH, false).unwrap();
    assert!(packed.shifts_crops());
    let wav: Vec<f32> = hound::WavReader::open(data.join("c0.wav"))
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 128.0)
        .collect();
    let rows = sn_wgpu::data::teacher::read(&data.join("c0.o.npy"), None).unwrap().data;
    for shift in 0..7u64 {
        let r = (shift % 3) as usize;
        let mut waveform = vec![f32::NAN; row];
        let e = packed.example_shifted(0, &mut waveform, shift).unwrap();
        assert_eq!(waveform, wav[r * row..(r + 1) * row], "shift {shift}: the crop starts at row {r}");
        assert_eq!(e.objects, rows[r * OBJECTS..(r + 1) * OBJECTS], "shift {shift}: and its teacher row with it");
    }
    // 10 s leaves a 5 s crop two places, and 2 rows of 15 s leave two: neither goes past its end.
    let mut waveform = vec![0.0; row];
    for (item, places) in [(1, 2u64), (2, 2)] {
        let mut at = |shift| {
            packed.example_shifted(item, &mut waveform, shift).unwrap();
            waveform.clone()
        };
        assert_eq!(at(places), at(0), "item {item} has {places} places");
        assert_ne!(at(1), at(0));
    }

    let run = |dir: &Path, steps: u64, resume: bool| {
        let mut o = run_options(&out, dir, steps, true);
        o.settings.random_crop = true;
        if resume {
            o.resume = Some(dir.to_path_buf());
        }
        train::run(&o).unwrap();
    };
    let (straight, split) = (temp_dir("pack-crops-straight"), temp_dir("pack-crops-split"));
    run(&straight, 4, false);
    run(&split, 2, false);
    run(&split, 4, true);
    assert_eq!(logged_losses(&straight), logged_losses(&split));
    let plain = temp_dir("pack-crops-plain");
    train::run(&run_options(&out, &plain, 4, true)).unwrap();
    assert_ne!(logged_losses(&plain), logged_losses(&straight), "the crops moved");

    let folder = temp_dir("pack-crops-folder-run");
    let mut o = run_options(&data, &folder, 1, true);
    o.settings.random_crop = true;
    let err = format!("{:#}", train::run(&o).unwrap_err());
    assert!(err.contains("--random-crop needs packed shards"), "{err}");
}

fn shard(pack: &Path, k: usize) -> PathBuf {
    pack.join(format!("shard-{k:05}.pack"))
}

#[test]
fn pack_names_a_bad_item_and_skip_bad_lists_it() {
    let data = temp_dir("pack-cli-source");
    dataset(&data, &[(3000, 1), (2000, 2), (4000, 1)], 3);
    let manifest = std::fs::read_to_string(data.join("manifest.csv")).unwrap();
    std::fs::write(data.join("manifest.csv"), format!("{manifest}missing.wav,c0.o.npy,c0.s.npy\n")).unwrap();
    let out = temp_dir("pack-cli-out");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let refused = sn_wgpu(&["pack", "--data", d, "--out", o]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(said.contains("missing.wav") && said.contains("manifest line 5") && said.contains("--skip-bad"), "{said}");
    assert!(!out.join("pack.json").exists(), "an unfinished pack has no index");

    let packed = sn_wgpu(&["pack", "--data", d, "--out", o, "--skip-bad"]);
    assert!(packed.status.success(), "{}", text(&packed));
    assert!(text(&packed).contains("packed 3 clips"), "{}", text(&packed));
    let skipped = std::fs::read_to_string(out.join("skipped.txt")).unwrap();
    assert_eq!(skipped.lines().count(), 1);
    assert!(skipped.contains("missing.wav"), "{skipped}");

    let again = sn_wgpu(&["pack", "--data", d, "--out", o]);
    assert!(!again.status.success() && text(&again).contains("already a finished pack"), "{}", text(&again));
    let overwritten = sn_wgpu(&["pack", "--data", d, "--out", o, "--skip-bad", "--overwrite"]);
    assert!(overwritten.status.success(), "{}", text(&overwritten));

    // A user's file in the way of a shard is never replaced.
    let mine = temp_dir("pack-cli-mine");
    std::fs::write(shard(&mine, 0), b"my notes").unwrap();
    let blocked = sn_wgpu(&["pack", "--data", d, "--out", mine.to_str().unwrap(), "--skip-bad"]);
    assert!(!blocked.status.success(), "{}", text(&blocked));
    assert_eq!(std::fs::read(shard(&mine, 0)).unwrap(), b"my notes");

    let run = temp_dir("pack-cli-run");
    let trained = sn_wgpu(&[
        "train",
        "--data",
        o,
        "--out",
        run.to_str().unwrap(),
        "--model",
        "soundnet5-narrow8",
        "--seconds",
        "5",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--val-data",
        o,
        "--val-every",
        "1",
    ]);
    let said = text(&trained);
    assert!(trained.status.success(), "{said}");
    assert!(
        said.contains("data: 3 packed clips in 1 shard(s)") && said.contains("1 item(s) were left out when packing"),
        "{said}"
    );
    assert!(said.contains("epoch"), "the run says how far through the data it got: {said}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("val_loss")).count(), 2, "a pack validates too: {metrics}");
}

/// A pack of 6 clips in 3 shards, and its folder.
fn three_shards(name: &str) -> (TestDir, TestDir) {
    let data = temp_dir(&format!("{name}-source"));
    dataset(&data, &[(3000, 1), (3000, 1), (3000, 1), (3000, 1), (3000, 1), (3000, 1)], 4);
    let out = temp_dir(&format!("{name}-pack"));
    // Two clips of 6 kB each per shard.
    let summary = pack(&options(&data, &out, 12_000)).unwrap();
    assert_eq!(summary.index.shards.iter().map(|s| s.items).collect::<Vec<_>>(), [2, 2, 2]);
    (data, out)
}

#[test]
fn a_flipped_bit_is_named_by_shard_and_offset_and_skip_bad_serves_the_next_item() {
    let (data, out) = three_shards("pack-flip");
    let path = shard(&out, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    // The second item of shard 1: its offset from the shard's index, a sample in its clip.
    let index_at = u64::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 8].try_into().unwrap()) as usize;
    let second = u64::from_le_bytes(bytes[index_at + 8..index_at + 16].try_into().unwrap()) as usize;
    bytes[second + 32 + 200] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let crop = Crop::new(3000, 1).unwrap();
    let (strict, _) = PackedDataset::open(&[out.to_path_buf()], crop, BOTH, false).unwrap();
    let err = format!("{:#}", strict.example(3).unwrap_err());
    assert!(err.contains("shard-00001.pack") && err.contains(&format!("byte offset {second}")), "{err}");
    assert!(err.contains("CRC-32"), "{err}");
    let (lenient, _) = PackedDataset::open(&[out.to_path_buf()], crop, BOTH, true).unwrap();
    let (folder, _) = ManifestDataset::open(&[data.to_path_buf()], &DatasetOptions::new(crop)).unwrap();
    assert_eq!(lenient.example(3).unwrap(), folder.example(4).unwrap(), "the next good item stands in");
    assert_eq!(lenient.example(2).unwrap(), folder.example(2).unwrap());
    assert_eq!(lenient.damaged(), 1);
}

#[test]
fn a_shard_cut_short_is_refused_and_skip_bad_keeps_its_whole_items() {
    let (data, out) = three_shards("pack-cut");
    let path = shard(&out, 2);
    let bytes = std::fs::read(&path).unwrap();
    // Cut inside the second item: the first survives whole.
    std::fs::write(&path, &bytes[..16 + 32 + 6000 + 32 + 100]).unwrap();
    let crop = Crop::new(3000, 1).unwrap();
    let err = format!("{:#}", PackedDataset::open(&[out.to_path_buf()], crop, BOTH, false).err().unwrap());
    assert!(err.contains("shard-00002.pack") && err.contains("cut short"), "{err}");
    let (walked, problems) = PackedDataset::open(&[out.to_path_buf()], crop, BOTH, true).unwrap();
    assert_eq!(walked.len(), 5);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].to_string().contains("kept 1 of its 2 items"), "{}", problems[0]);
    let (folder, _) = ManifestDataset::open(&[data.to_path_buf()], &DatasetOptions::new(crop)).unwrap();
    assert_eq!(walked.example(4).unwrap(), folder.example(4).unwrap());
}

/// Peak resident memory of a child process in kB, read from /proc while it runs (VmHWM only grows).
fn peak_kb(mut cmd: Command) -> (u64, Output) {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while let Ok(s) = std::fs::read_to_string(&status) {
            match s.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                Some(v) => peak = peak.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)),
                None => break,
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let output = child.wait_with_output().unwrap();
    (watcher.join().unwrap(), output)
}

#[test]
fn memory_does_not_grow_with_the_number_of_clips() {
    // A million manifest rows over three tiny clips: packing holds a few items at a time, and a
    // run on a million clips holds what a run on a thousand holds.
    let data = temp_dir("pack-million-source");
    dataset(&data, &[(40, 1), (31, 2), (25, 1)], 5);
    let rows: Vec<String> = (0..3).map(|i| format!("c{i}.wav,c{i}.o.npy,c{i}.s.npy\n")).collect();
    let write = |n: usize| {
        let mut text = String::from("audio,objects,scenes\n");
        for k in 0..n {
            text += &rows[k % 3];
        }
        std::fs::write(data.join("manifest.csv"), text).unwrap();
    };
    let mut peaks = Vec::new();
    for (name, n) in [("thousand", 1000), ("million", 1_000_000)] {
        write(n);
        let out = temp_dir(&format!("pack-million-{name}"));
        let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
        let packed = sn_wgpu(&["pack", "--data", d, "--out", o, "--shard-mb", "20"]);
        assert!(packed.status.success(), "{}", text(&packed));
        assert!(text(&packed).contains(&format!("packed {n} clips")), "{}", text(&packed));
        let run = temp_dir(&format!("pack-million-{name}-run"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"));
        cmd.args(["train", "--data", o, "--out", run.to_str().unwrap(), "--model", "soundnet5-narrow8"]).args([
            "--seconds",
            "5",
            "--batch-size",
            "2",
            "--steps",
            "3",
        ]);
        let (peak, output) = peak_kb(cmd);
        assert!(output.status.success(), "{}", text(&output));
        assert!(text(&output).contains(&format!("{n} packed clips")), "{}", text(&output));
        peaks.push(peak);
    }
    eprintln!("peak resident memory: {} kB for 1,000 clips, {} kB for 1,000,000", peaks[0], peaks[1]);
    assert!(peaks[0] > 0 && peaks[1] > 0, "{peaks:?}");
    // The pack's index is 8 MB for a million items; nothing else may grow with them.
    assert!(peaks[1] < peaks[0] + 24 * 1024, "a million clips took {} kB more", peaks[1] as i64 - peaks[0] as i64);
}

#[test]
fn an_order_over_packed_shards_is_the_same_for_any_start() {
    let (_, out) = three_shards("pack-order");
    let (packed, _) = PackedDataset::open(&[out.to_path_buf()], Crop::new(100, 1).unwrap(), BOTH, false).unwrap();
    let order = Order::for_dataset(&packed, 2, 9, true);
    let epoch: Vec<usize> = (0..3).flat_map(|b| order.batch(b)).collect();
    let mut sorted = epoch.clone();
    sorted.sort();
    assert_eq!(sorted, (0..6).collect::<Vec<_>>());
}

#[test]
fn folders_of_another_teacher_are_refused_by_name() {
    let (a, b) = (temp_dir("pack-two-a"), temp_dir("pack-two-b"));
    dataset(&a, &[(300, 1)], 7);
    dataset(&b, &[(300, 1)], 8);
    std::fs::write(b.join("manifest.csv"), "audio,objects\nc0.wav,c0.o.npy\n").unwrap();
    let out = temp_dir("pack-two-out");
    let opts = PackOptions { data: vec![a.to_path_buf(), b.to_path_buf()], ..options(&a, &out, 1 << 20) };
    let err = format!("{:#}", pack(&opts).unwrap_err());
    assert!(err.contains(&b.join("manifest.csv").display().to_string()) && err.contains("one teacher"), "{err}");
    assert!(!out.join("pack.json").exists());
    let into_itself = format!("{:#}", pack(&options(&a, &a, 1 << 20)).unwrap_err());
    assert!(into_itself.contains("is also a --data folder"), "{into_itself}");
    assert!(!a.join("pack.json").exists());
}

#[test]
fn a_stopped_pack_continues_after_its_last_closed_shard() {
    // Enough rows that the pack is still running when its third shard appears.
    let data = temp_dir("pack-stop-source");
    dataset(&data, &[(2000, 1), (1500, 2), (2500, 1)], 9);
    let rows: Vec<String> = (0..3).map(|i| format!("c{i}.wav,c{i}.o.npy,c{i}.s.npy\n")).collect();
    let manifest: String =
        std::iter::once("audio,objects,scenes\n".to_string()).chain((0..20_000).map(|k| rows[k % 3].clone())).collect();
    std::fs::write(data.join("manifest.csv"), manifest).unwrap();
    let (stopped, straight) = (temp_dir("pack-stop-stopped"), temp_dir("pack-stop-straight"));
    let args = |out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"));
        c.args(["pack", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--shard-mb", "1"]);
        c
    };
    let mut child = args(&stopped).stdout(std::process::Stdio::null()).spawn().unwrap();
    while !shard(&stopped, 2).exists() {
        assert!(child.try_wait().unwrap().is_none(), "the pack ended before it could be stopped");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!stopped.join("pack.json").exists(), "stopped before it finished");
    assert!(stopped.join("pack-progress.json").exists());

    let continued = args(&stopped).output().unwrap();
    assert!(continued.status.success(), "{}", text(&continued));
    assert!(text(&continued).contains("continuing the stopped pack"), "{}", text(&continued));
    let whole = args(&straight).output().unwrap();
    assert!(whole.status.success(), "{}", text(&whole));
    // The same shards, byte for byte, and the same index: nothing lost, nothing twice.
    let index = |dir: &Path| std::fs::read_to_string(dir.join("pack.json")).unwrap();
    assert_eq!(index(&stopped), index(&straight));
    let shards =
        serde_json::from_str::<serde_json::Value>(&index(&straight)).unwrap()["shards"].as_array().unwrap().len();
    assert!(shards > 3, "{shards} shards");
    for k in 0..shards {
        assert!(std::fs::read(shard(&stopped, k)).unwrap() == std::fs::read(shard(&straight, k)).unwrap(), "shard {k}");
    }
    assert!(!stopped.join("pack-progress.json").exists(), "a finished pack keeps no progress file");
    assert!(!shard(&stopped, shards).exists());
}
