//! No input panics: every format sn-wgpu reads, mutated by proptest from a valid file (bits
//! flipped, the file cut short, 4-byte header fields set to 0, -1, the maximum or a random value,
//! random bytes spliced in, mostly near the start where the headers are), must load or give an
//! error that names the file. Audio (WAV, MP3, FLAC, Ogg Vorbis) through the decode path,
//! safetensors checkpoints (and a model built from one), teacher `.npy` arrays, the manifest CSV,
//! the run record a checkpoint holds, `metrics.jsonl` as a resume reads it back, the
//! kernel-choice file, the list of the files sn-wgpu wrote in a folder, packed shards and their
//! `pack.json`, and the released SoundNet lists and `prob` files the importer reads. A case that
//! panics fails with the mutation that made it, shrunk to the smallest proptest finds.

mod common;

use std::path::{Path, PathBuf};

use common::{gpu, temp_dir, write_npy, write_wav};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::{audio, teacher, Crop, DatasetOptions, ManifestDataset, OBJECT_CLASSES, SCENE_CLASSES};
use sn_wgpu::gpu::tuning::Tuning;
use sn_wgpu::out_folder::{OutFolder, WRITTEN_LIST};
use sn_wgpu::train::metrics::MetricsLog;
use sn_wgpu::train::RunSettings;

/// One change to a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Truncate { keep: usize },
    Field { at: usize, value: u32 },
    Splice { at: usize, bytes: Vec<u8> },
}

/// An offset: most near the start (headers), the rest anywhere in a file of `len` bytes.
fn offset(len: usize) -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..len.clamp(1, 96), 1 => 0..len.max(1)]
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    let field = prop_oneof![Just(0u32), Just(u32::MAX), Just(i32::MAX as u32), Just(1u32), any::<u32>()];
    prop_oneof![
        3 => (offset(len), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (0..len.max(1)).prop_map(|keep| Mutation::Truncate { keep }),
        3 => (offset(len), field).prop_map(|(at, value)| Mutation::Field { at, value }),
        1 => (offset(len), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
    ]
}

fn mutations(len: usize) -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(len), 1..4)
}

fn apply(valid: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = valid.to_vec();
    for m in mutations {
        match *m {
            Mutation::FlipBit { at, bit } => {
                if let Some(v) = b.get_mut(at) {
                    *v ^= 1 << bit;
                }
            }
            Mutation::Truncate { keep } => b.truncate(keep),
            Mutation::Field { at, value } => {
                for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                    if let Some(v) = b.get_mut(at + i) {
                        *v = byte;
                    }
                }
            }
            Mutation::Splice { at, ref bytes } => {
                let at = at.min(b.len());
                b.splice(at..at, bytes.iter().copied());
            }
        }
    }
    b
}

/// Runs `cases` mutations of `valid`, each written to `path` and read by `read`, which returns the
/// error text if the file was refused; a refusal must name `named` (the file, or what holds it).
fn fuzz(cases: u32, valid: &[u8], path: &Path, named: &str, read: impl Fn(&Path) -> Option<String>) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&mutations(valid.len()), |m| {
        std::fs::write(path, apply(valid, &m)).unwrap();
        if let Some(err) = read(path) {
            if !err.contains(named) {
                return Err(TestCaseError::fail(format!("the error does not name {named}: {err}")));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{}: {e}", path.display());
    }
}

fn audio_fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fuzz_audio(name: &str, cases: u32) {
    let dir = temp_dir(&format!("fuzz-{name}"));
    let path = dir.join(name);
    let path_text = path.display().to_string();
    fuzz(cases, &audio_fixture(name), &path, &path_text, |p| audio::load(p).err().map(|e| e.to_string()));
}

#[test]
fn wav_files_never_panic() {
    fuzz_audio("sine500_8k_mono.wav", 3000);
    fuzz_audio("sine441_44k_stereo.wav", 1000);
}

#[test]
fn mp3_files_never_panic() {
    fuzz_audio("sine440_44k.mp3", 2000);
}

#[test]
fn flac_files_never_panic() {
    fuzz_audio("sine1000_48k.flac", 2000);
}

#[test]
fn ogg_vorbis_files_never_panic() {
    fuzz_audio("sine660_32k_stereo.ogg", 2000);
}

/// A small checkpoint of the kinds of tensors sn-wgpu writes, with string metadata.
fn small_checkpoint() -> Vec<u8> {
    let mut c = Checkpoint::default();
    c.insert("conv1.weight", &[2, 1, 4], vec![0.5, -0.25, 1.0, 2.0, 0.0, 1.5, -1.0, 0.125]);
    c.insert("bn1.running_var", &[2], vec![1.0, 2.0]);
    c.insert("adam.m.conv1.weight", &[2, 1, 4], vec![0.0; 8]);
    c.metadata.insert("model".into(), "soundnet8".into());
    c.metadata.insert("step".into(), "7".into());
    c.to_bytes().unwrap()
}

#[test]
fn safetensors_checkpoints_never_panic() {
    let dir = temp_dir("fuzz-safetensors");
    let path = dir.join("ckpt.safetensors");
    let text = path.display().to_string();
    fuzz(5000, &small_checkpoint(), &path, &text, |p| Checkpoint::load(p).err().map(|e| format!("{e:#}")));
}

#[test]
fn a_model_from_a_damaged_checkpoint_never_panics() {
    // The narrow model a test checkpoint holds, mutated: what loads as a checkpoint must then be
    // refused or accepted by the model, never panic (shapes, ranks, head widths).
    let dir = temp_dir("fuzz-model");
    let valid = std::fs::read(common::narrow_checkpoint(&dir)).unwrap();
    let path = dir.join("model.safetensors");
    let text = path.display().to_string();
    fuzz(300, &valid, &path, &text, |p| {
        let c = match Checkpoint::load(p) {
            Ok(c) => c,
            Err(e) => return Some(format!("{e:#}")),
        };
        sn_wgpu::model::Model::from_checkpoint(gpu(), &c).err().map(|e| format!("{text}: {e:#}"))
    });
}

#[test]
fn teacher_arrays_never_panic() {
    let dir = temp_dir("fuzz-npy");
    let valid_path = dir.join("valid.npy");
    let rows: Vec<f32> = (0..3 * SCENE_CLASSES).map(|_| 1.0 / SCENE_CLASSES as f32).collect();
    write_npy(&valid_path, &[3, SCENE_CLASSES], &rows, false);
    let valid = std::fs::read(&valid_path).unwrap();
    let path = dir.join("t.npy");
    let text = path.display().to_string();
    for classes in [Some(SCENE_CLASSES), None] {
        fuzz(2000, &valid, &path, &text, |p| {
            teacher::read(p, classes)
                .err()
                .map(|problems| problems.iter().map(|pr| pr.to_string()).collect::<Vec<_>>().join("; "))
        });
    }
}

#[test]
fn manifests_never_panic() {
    let dir = temp_dir("fuzz-manifest");
    write_wav(&dir.join("a.wav"), 22_050, &[100; 2205]);
    let uniform = |classes: usize| vec![1.0 / classes as f32; classes];
    write_npy(&dir.join("a.objects.npy"), &[1, OBJECT_CLASSES], &uniform(OBJECT_CLASSES), false);
    write_npy(&dir.join("a.scenes.npy"), &[1, SCENE_CLASSES], &uniform(SCENE_CLASSES), false);
    let valid = b"audio,objects,scenes\na.wav,a.objects.npy,a.scenes.npy\n\"a.wav\",a.objects.npy,a.scenes.npy\r\n";
    let path = dir.join("manifest.csv");
    let options = DatasetOptions::new(Crop::new(1000, 1).unwrap());
    let folder: PathBuf = dir.to_path_buf();
    // A refusal names the manifest, or the file of the line it is about (which lies in the folder).
    let named = dir.display().to_string();
    fuzz(2000, valid, &path, &named, |_| {
        ManifestDataset::open(std::slice::from_ref(&folder), &options).err().map(|e| format!("{e:#}"))
    });
}

#[test]
fn labeled_folders_never_panic() {
    let dir = temp_dir("fuzz-meta");
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    for name in ["a.wav", "b.wav"] {
        write_wav(&dir.join("audio").join(name), 22_050, &[100; 2205]);
    }
    let valid = b"filename,fold,target,category\na.wav,1,0,dog\n\"b.wav\",2,3,rain\r\nb.wav,1,3,rain\n";
    let path = dir.join("meta.csv");
    let folder: PathBuf = dir.to_path_buf();
    let named = dir.display().to_string();
    fuzz(1000, valid, &path, &named, |_| {
        let meta = match sn_wgpu::data::meta::Meta::read(&folder) {
            Ok(meta) => meta,
            Err(e) => return Some(format!("{e:#}")),
        };
        let crop = Crop::new(1000, 1).unwrap();
        sn_wgpu::data::labeled::LabeledDataset::open(&meta, |f| f != 2, crop, false).err().map(|e| format!("{e:#}"))
    });
}

#[test]
fn run_records_never_panic() {
    let dir = temp_dir("fuzz-run-record");
    let path = dir.join("last.safetensors");
    let valid = br#"{"data":["/runs/data"],"teacher":"both","loss":"kl","model":"soundnet8","batch_size":8,"accumulate":1,"seconds":20.0,"steps":1000,"lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"seed":0,"shuffle":true,"val_data":null,"val_every":100,"skip_bad":false,"save_every":100,"demo_clips_per_class":4}"#;
    let parsed = RunSettings::from_metadata(
        &path,
        &[("run".to_string(), String::from_utf8_lossy(valid).into_owned())].into_iter().collect(),
    );
    assert!(matches!(parsed, Ok(Some(_))), "the valid record must parse: {parsed:?}");
    let text = path.display().to_string();
    fuzz(3000, valid, &dir.join("record.json"), &text, |p| {
        let json = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        let metadata = [("run".to_string(), json)].into_iter().collect();
        RunSettings::from_metadata(&path, &metadata).err().map(|e| format!("{e:#}"))
    });
}

#[test]
fn metrics_logs_never_panic_on_resume() {
    let dir = temp_dir("fuzz-metrics");
    let valid = concat!(
        r#"{"step":1,"loss":9.04,"loss_objects":5.2,"loss_scenes":3.8,"lr":0.001}"#,
        "\n",
        r#"{"step":2,"loss":8.1,"loss_objects":4.9,"loss_scenes":3.2,"lr":0.001}"#,
        "\n",
        r#"{"step":2,"val_loss":8.5,"val_loss_objects":5.0,"val_loss_scenes":3.5}"#,
        "\n",
        r#"{"step":3,"loss":7.7,"loss_objects":4.5,"loss_scenes":3.2,"lr":0.001}"#,
        "\n"
    );
    let path = dir.join("metrics.jsonl");
    let text = path.display().to_string();
    fuzz(3000, valid.as_bytes(), &path, &text, |p| MetricsLog::cut_after(p, 2).err().map(|e| format!("{e:#}")));
}

#[test]
fn kernel_choice_files_never_panic() {
    let dir = temp_dir("fuzz-kernel-choices");
    let path = dir.join("kernel-choices.json");
    // A valid file: one measured choice, as `sn-wgpu tune` writes it.
    let shape = sn_wgpu::ops::conv1d::Conv1dShape { n: 1, cin: 2, cout: 3, l: 40, k: 4, stride: 2, pad: 2 };
    let writer = Tuning::open(&path, &gpu().info);
    let key = sn_wgpu::ops::conv1d::autotune::key(&shape, sn_wgpu::ops::conv1d::Pass::Forward);
    let nanos = [("cpu".to_string(), 1e5), ("plain".to_string(), 2e5)].into_iter().collect();
    let runs = [("cpu".to_string(), 4), ("plain".to_string(), 1)].into_iter().collect();
    writer.record(&key, sn_wgpu::gpu::tuning::Choice { kernel: "cpu".into(), nanos, runs }).unwrap();
    let valid = std::fs::read(&path).unwrap();
    let text = path.display().to_string();
    // A damaged file is never an error: it is a note naming the file, and measured again.
    fuzz(3000, &valid, &path, &text, |p| {
        let tuning = Tuning::open(p, &gpu().info);
        let _ = tuning.lookup(&key);
        let notes = tuning.take_notes();
        (!notes.is_empty()).then(|| notes.join("; "))
    });
}

#[test]
fn lists_of_written_files_never_panic_or_permit_a_path_outside() {
    let dir = temp_dir("fuzz-written-list");
    let path = dir.join(WRITTEN_LIST);
    // As sn-wgpu writes it, then lines of an edited list that must permit nothing.
    let valid = b"last.safetensors\nmetrics.jsonl\nexcerpts/0-dog-3.wav\nteacher/a.objects.npy\n\
                  ../outside.wav\n/etc/passwd\nexcerpts/../../x\nC:\\x.wav\n";
    let text = path.display().to_string();
    // Whatever the list says, it names only plain paths inside the folder.
    fuzz(3000, valid, &path, &text, |_| {
        let folder = match OutFolder::lock(&dir, "--out") {
            Ok(folder) => folder,
            Err(e) => return Some(format!("{e:#}")),
        };
        let plain = |n: &str| {
            let p = Path::new(n);
            !n.contains('\\') && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        let outside: Vec<&str> = folder.written().filter(|n| !plain(n)).collect();
        assert!(outside.is_empty(), "the list let {outside:?} through");
        None
    });
}

/// A pack of three clips in two shards, from a folder written here.
fn small_pack(dir: &Path) -> PathBuf {
    let source = dir.join("source");
    std::fs::create_dir_all(&source).unwrap();
    let mut manifest = String::from("audio,objects,scenes\n");
    for (i, samples) in [300usize, 120, 200].into_iter().enumerate() {
        write_wav(&source.join(format!("c{i}.wav")), 22_050, &vec![1000 * i as i16 - 900; samples]);
        write_npy(&source.join(format!("c{i}.o.npy")), &[2, 3], &[0.5, 0.25, 0.25, 0.1, 0.8, 0.1], false);
        write_npy(&source.join(format!("c{i}.s.npy")), &[1, 2], &[0.5, 0.5], false);
        manifest += &format!("c{i}.wav,c{i}.o.npy,c{i}.s.npy\n");
    }
    std::fs::write(source.join("manifest.csv"), manifest).unwrap();
    let out = dir.join("pack");
    let options = sn_wgpu::pack::PackOptions {
        data: vec![source],
        out: out.clone(),
        shard_bytes: 700,
        skip_bad: false,
        overwrite: false,
    };
    assert_eq!(sn_wgpu::pack::pack(&options).unwrap().index.shards.len(), 2);
    out
}

/// Opens the pack (strictly, then under --skip-bad) and serves every item; the first refusal.
fn serve_pack(pack: &Path) -> Option<String> {
    use sn_wgpu::data::pack::PackedDataset;
    use sn_wgpu::data::Dataset;
    let heads = sn_wgpu::model::Heads { objects: true, scenes: true, classes: false };
    let mut first = None;
    for skip_bad in [false, true] {
        match PackedDataset::open(&[pack.to_path_buf()], Crop::new(250, 3).unwrap(), heads, skip_bad) {
            Ok((d, _)) => {
                for i in 0..d.len() {
                    if let Err(e) = d.example(i) {
                        first.get_or_insert(format!("{e:#}"));
                    }
                }
            }
            Err(e) => {
                first.get_or_insert(format!("{e:#}"));
            }
        }
    }
    first
}

#[test]
fn packed_shards_never_panic() {
    let dir = temp_dir("fuzz-pack-shard");
    let pack = small_pack(&dir);
    let shard = pack.join("shard-00000.pack");
    let valid = std::fs::read(&shard).unwrap();
    assert_eq!(serve_pack(&pack), None, "the valid pack serves");
    // A refusal names the shard (or the pack holding it).
    let named = pack.display().to_string();
    fuzz(1500, &valid, &shard, &named, |_| serve_pack(&pack));
}

#[test]
fn pack_indexes_never_panic() {
    let dir = temp_dir("fuzz-pack-index");
    let pack = small_pack(&dir);
    let index = pack.join("pack.json");
    let valid = std::fs::read(&index).unwrap();
    let named = pack.display().to_string();
    fuzz(1500, &valid, &index, &named, |_| serve_pack(&pack));
}

#[test]
fn soundnet_release_lists_and_prob_files_never_panic() {
    use sn_wgpu::import_soundnet::release::{read_list, Prob};
    let dir = temp_dir("fuzz-release");
    let root = "r".repeat(62);
    let list: String = ["1/2/a.mp4/00000001.jpg", "1/2/a.mp4/00000002.jpg", "3/b.mp4/00000001.jpg"]
        .iter()
        .map(|f| format!("{root}{f} 0\n"))
        .collect();
    let list_path = dir.join("train_frames4_0001.txt");
    let named = list_path.display().to_string();
    fuzz(1500, list.as_bytes(), &list_path, &named, |p| read_list(p).err().map(|e| e.to_string()));

    let classes = 4;
    let rows: Vec<u8> = [0.25f32, 0.25, 0.25, 0.25, 1.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let prob_path = dir.join("prob");
    let named = prob_path.display().to_string();
    fuzz(1500, &rows, &prob_path, &named, |p| {
        let mut prob = match Prob::open(p, classes, 3) {
            Ok(prob) => prob,
            Err(e) => return Some(e.to_string()),
        };
        for n in [2, 1] {
            match prob.rows(n) {
                Ok(Ok(values)) => assert_eq!(values.len(), n * classes),
                Ok(Err(e)) | Err(e) => return Some(e.to_string()),
            }
        }
        None
    });
}

#[test]
fn pack_progress_files_never_panic() {
    // A stopped pack's progress file, damaged: `pack` continues from it or starts over, never
    // panics, and the pack it finishes serves.
    let dir = temp_dir("fuzz-pack-progress");
    let pack = small_pack(&dir);
    let source = dir.join("source");
    let options = sn_wgpu::pack::PackOptions {
        data: vec![source.clone()],
        out: pack.clone(),
        shard_bytes: 700,
        skip_bad: false,
        overwrite: false,
    };
    // As the pack's own first shard closed: its items are rows 0.. of the manifest.
    let first_shard = sn_wgpu::data::pack::PackIndex::read(&pack).unwrap().shards[..1].to_vec();
    assert_eq!(first_shard[0].items, 1, "a 700-byte shard holds one clip");
    let progress = sn_wgpu::data::pack::PackProgress {
        sources: vec![source.display().to_string()],
        shard_bytes: 700,
        objects: Some(3),
        scenes: Some(2),
        first_item: source.join("c0.wav").display().to_string(),
        rows_done: first_shard[0].items,
        samples: 300,
        shards: first_shard,
        skipped: Vec::new(),
    };
    let valid = progress.to_file_text().into_bytes();
    assert!(sn_wgpu::data::pack::PackProgress::parse(&progress.to_file_text()).is_some());
    let path = pack.join("pack-progress.json");
    let named = pack.display().to_string();
    fuzz(300, &valid, &path, &named, |p| {
        // The state a stop leaves: no index, the progress file on the folder's list.
        let _ = std::fs::remove_file(pack.join("pack.json"));
        let mutated = std::fs::read(p).unwrap();
        std::fs::remove_file(p).unwrap();
        OutFolder::lock(&pack, "--out").unwrap().claim(&["pack-progress.json"]).unwrap();
        std::fs::write(p, mutated).unwrap();
        match sn_wgpu::pack::pack(&options) {
            Ok(summary) => {
                assert_eq!(summary.index.items, 3, "every clip packed once");
                serve_pack(&pack)
            }
            Err(e) => Some(format!("{e:#}")),
        }
    });
}
