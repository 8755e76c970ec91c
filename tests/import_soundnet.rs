//! `sn-wgpu import-soundnet` on a miniature of the authors' release, built here in its exact
//! layout: frame paths of 62 characters of root, the video key and `/NNNNNNNN.jpg`; MP3s under
//! nested digit folders named `<id>.mp4.mp3`; headerless float32 `prob` files, a row per line.
//! The rows each video should get are computed here from what was written, not by the importer.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use rand::Rng;
use sn_wgpu::data::{Crop, DatasetOptions, ManifestDataset, OBJECT_CLASSES, SCENE_CLASSES};

fn sn_wgpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A video of the miniature: its key, frames, whether its MP3 is there, whether a row is bad.
struct Video {
    key: &'static str,
    frames: usize,
    mp3: bool,
    bad_row: bool,
}

/// Writes list `n` of `videos` with its two prob files; returns each line's rows (objects,
/// scenes), in line order.
fn write_list(root: &Path, n: u32, videos: &[Video], seed: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    let prefix = format!("/{}", "f".repeat(61));
    assert_eq!(prefix.len(), 62);
    let mut r = rng(seed);
    let mut list = String::new();
    let mut rows = Vec::new();
    let mut distribution = |classes: usize| {
        let raw: Vec<f64> = (0..classes).map(|_| r.random_range(0.0..1.0f64).powi(4)).collect();
        let total: f64 = raw.iter().sum();
        raw.iter().map(|v| (v / total) as f32).collect::<Vec<f32>>()
    };
    for v in videos {
        for k in 0..v.frames {
            list.push_str(&format!("{prefix}{}/{:08}.jpg 17\n", v.key, k + 1));
            let mut objects = distribution(OBJECT_CLASSES);
            if v.bad_row && k == 1 {
                objects[3] += 0.5;
            }
            rows.push((objects, distribution(SCENE_CLASSES)));
        }
        if v.mp3 {
            let mp3 = root.join("mp3").join(format!("{}.mp3", v.key));
            std::fs::create_dir_all(mp3.parent().unwrap()).unwrap();
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/sine440_44k.mp3");
            std::fs::copy(fixture, mp3).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("lists")).unwrap();
    std::fs::write(root.join(format!("lists/train_frames4_{n:04}.txt")), list).unwrap();
    for (net, head) in [("IMNET", 0), ("PLACES2", 1)] {
        let dir = root.join(format!("features/VGG16_{net}_TRAIN_B{n:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes: Vec<u8> = rows
            .iter()
            .flat_map(|(o, s)| if head == 0 { o.clone() } else { s.clone() })
            .flat_map(f32::to_le_bytes)
            .collect();
        std::fs::write(dir.join("prob"), bytes).unwrap();
    }
    rows
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    (npy.shape().to_vec(), npy.into_vec::<f32>().unwrap())
}

fn import(root: &Path, out: &Path, shard: Option<&str>) -> Output {
    let (lists, features, mp3) = (root.join("lists"), root.join("features"), root.join("mp3"));
    let mut args = vec!["import-soundnet", "--lists", lists.to_str().unwrap(), "--features"];
    args.extend([features.to_str().unwrap(), "--audio", mp3.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    sn_wgpu(&args)
}

#[test]
fn the_released_layout_becomes_dataset_folders_list_by_list() {
    let root = temp_dir("import-release");
    let out = root.join("out");
    let one = [
        Video { key: "1/0/4/1048576.mp4", frames: 1, mp3: true, bad_row: false },
        Video { key: "2/2/2/2221.mp4", frames: 4, mp3: true, bad_row: false },
        Video { key: "3/5/35.mp4", frames: 2, mp3: true, bad_row: false },
        Video { key: "9/9/0/990.mp4", frames: 6, mp3: true, bad_row: false },
        Video { key: "4/4/4/444.mp4", frames: 3, mp3: false, bad_row: false },
        Video { key: "5/5/5/555.mp4", frames: 2, mp3: true, bad_row: true },
    ];
    let rows = write_list(&root, 1, &one, 1);
    write_list(&root, 2, &[Video { key: "7/7/77.mp4", frames: 2, mp3: true, bad_row: false }], 2);
    write_list(&root, 3, &[Video { key: "8/8/88.mp4", frames: 3, mp3: true, bad_row: false }], 3);
    // List 2's objects file lost its last value in the download.
    let truncated = root.join("features/VGG16_IMNET_TRAIN_B0002/prob");
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 4]).unwrap();

    // Shard 0 of 2 takes lists 1 and 3.
    let first = import(&root, &out, Some("0/2"));
    assert!(first.status.success(), "{}", text(&first));
    assert!(!out.join("train-0002").exists(), "list 2 is shard 1's");
    let list1 = out.join("train-0001");
    let manifest = std::fs::read_to_string(list1.join("manifest.csv")).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(lines[0], "audio,objects,scenes");
    assert_eq!(lines.len(), 1 + 4, "the missing MP3 and the bad row are left out: {manifest}");
    // Each video's rows are its lines' rows, at most 4, from the line its first frame is on.
    let mut line = 0;
    let mut row = 1;
    for v in &one {
        let kept = v.frames.min(4);
        if v.mp3 && !v.bad_row {
            line += 1;
            let fields: Vec<&str> = lines[line].split(',').collect();
            let audio = PathBuf::from(fields[0]);
            assert!(audio.is_absolute() && audio.ends_with(format!("{}.mp3", v.key)), "{}", fields[0]);
            for (head, classes, field) in [(0, OBJECT_CLASSES, fields[1]), (1, SCENE_CLASSES, fields[2])] {
                let (shape, values) = read_npy(&list1.join(field));
                assert_eq!(shape, [kept as u64, classes as u64], "{} {field}", v.key);
                let want: Vec<f32> = (0..kept)
                    .flat_map(|k| {
                        let (o, s) = &rows[row - 1 + k];
                        if head == 0 {
                            o.clone()
                        } else {
                            s.clone()
                        }
                    })
                    .collect();
                assert_eq!(values, want, "{} {field}", v.key);
            }
        }
        row += v.frames;
    }
    let skipped = std::fs::read_to_string(list1.join("skipped.txt")).unwrap();
    assert!(skipped.contains("4/4/4/444.mp4.mp3: missing (list line 14)"), "{skipped}");
    assert!(skipped.contains("VGG16_IMNET_TRAIN_B0001/prob: row 17: sums to 1.5"), "{skipped}");
    let said = text(&first);
    assert!(said.contains("list 0001: 4 videos, 11 teacher rows") && said.contains("1 with more than 4"), "{said}");

    // What it wrote trains: every clip and row passes the dataset checks.
    let (dataset, _) =
        ManifestDataset::open(std::slice::from_ref(&list1), &DatasetOptions::new(Crop::new(22_050, 1).unwrap()))
            .unwrap();
    assert_eq!(sn_wgpu::data::Dataset::len(&dataset), 4);

    // Shard 1 of 2 is list 2, refused whole, naming its file and the sizes.
    let second = import(&root, &out, Some("1/2"));
    assert!(!second.status.success());
    let said = text(&second);
    assert!(
        said.contains("VGG16_IMNET_TRAIN_B0002/prob") && said.contains("expected 2 lines x 1000 classes"),
        "{said}"
    );
    assert!(!out.join("train-0002/manifest.csv").exists(), "no manifest: the list is not finished");

    // Fixed and run again as one: lists 1 and 3 are kept as they are, list 2 is imported.
    std::fs::write(&truncated, &bytes).unwrap();
    let before = std::fs::read(list1.join("manifest.csv")).unwrap();
    let again = import(&root, &out, None);
    assert!(again.status.success(), "{}", text(&again));
    let said = text(&again);
    assert!(said.contains("list 0001: imported before") && said.contains("list 0003: imported before"), "{said}");
    assert!(said.contains("list 0002: 1 videos"), "{said}");
    assert_eq!(std::fs::read(list1.join("manifest.csv")).unwrap(), before);
}

#[test]
fn a_list_out_of_the_released_form_is_named_with_its_line() {
    let root = temp_dir("import-bad-list");
    write_list(&root, 1, &[Video { key: "1/1.mp4", frames: 2, mp3: true, bad_row: false }], 4);
    let list = root.join("lists/train_frames4_0001.txt");
    let text_before = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&list, text_before.replace("00000002.jpg", "2.jpg")).unwrap();
    let out = import(&root, &root.join("out"), None);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("train_frames4_0001.txt: line 2") && said.contains("/NNNNNNNN.jpg"), "{said}");
    let none = sn_wgpu(&[
        "import-soundnet",
        "--lists",
        root.join("nowhere").to_str().unwrap(),
        "--features",
        "f",
        "--audio",
        "a",
        "--out",
        "o",
    ]);
    assert!(!none.status.success() && text(&none).contains("--lists"), "{}", text(&none));
}
