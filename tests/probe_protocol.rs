//! `probe` beyond the paper's fixed protocol: windows of any length and hop with the tail handled,
//! C chosen per fold by cross-validation on the training folds alone (and proof that the held-out
//! fold never sways it), and several layers from one extraction into one table and bar chart.

mod common;
use std::path::Path;
use std::process::Command;

use common::*;
use rand_distr::{Distribution, StandardNormal};
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::audio;
use sn_wgpu::eval::{Extractor, DEFAULT_CHUNK_SAMPLES};
use sn_wgpu::model::Model;
use sn_wgpu::probe::crossval::{self, CSetting, Solver, AUTO_GRID};
use sn_wgpu::probe::windows::{self, Tail, WindowSpec};
use sn_wgpu::probe::{self, ClassifierKind, Extensions, Meta, ProbeOptions};

fn normal(rng: &mut rand::rngs::StdRng) -> f32 {
    StandardNormal.sample(rng)
}

#[test]
fn windows_of_any_length_and_hop_handle_the_tail() {
    let spec = |w: f64, h: f64, tail: Tail| WindowSpec::new(w, h, tail).unwrap();
    // The default is today's protocol, for every T.
    for t in [1, 5, 8, 10, 27, 99, 216] {
        let d = WindowSpec::default();
        assert_eq!(d.frames(t), (windows::frames_per_window(t), windows::frames_per_window(t)));
        let want: Vec<usize> = (0..t / d.frames(t).0).map(|i| i * d.frames(t).0).collect();
        assert_eq!(d.starts(t), want, "T = {t}");
    }
    // pool5 (T = 27, 2.7 frames a second): 2 s windows every 0.5 s are 5 frames every 1 frame.
    let s = spec(2.0, 0.5, Tail::Drop);
    assert_eq!(s.frames(27), (5, 1));
    assert_eq!(s.starts(27), (0..=22).collect::<Vec<_>>());
    // 1 s windows, 1.5 s hop on T = 27: starts 0, 4, .., 24; frames 26 is left out unless tail = end.
    let s = spec(1.0, 1.5, Tail::Drop);
    assert_eq!(s.starts(27), vec![0, 4, 8, 12, 16, 20, 24]);
    assert_eq!(spec(1.0, 1.5, Tail::End).starts(27), vec![0, 4, 8, 12, 16, 20, 24, 25]);
    // With nothing left over, tail = end adds nothing.
    assert_eq!(spec(1.0, 1.0, Tail::End).starts(20), spec(1.0, 1.0, Tail::Drop).starts(20));
    // A window longer than the layer's frames in a second is at least one frame; the whole clip is one window.
    assert_eq!(spec(0.1, 0.1, Tail::Drop).frames(8), (1, 1));
    assert_eq!(spec(10.0, 10.0, Tail::Drop).starts(27), vec![0]);
    // The cut windows hold the frames the starts say, channel-major.
    let features: Vec<f32> = (0..2 * 27).map(|v| v as f32).collect();
    let w = windows::cut_with(&features, 2, 27, &spec(1.0, 1.5, Tail::End)).unwrap();
    assert_eq!((w.count, w.dim), (8, 4));
    assert_eq!(w.row(7), &[25.0, 26.0, 52.0, 53.0]);
    for bad in [(0.0, 1.0), (1.0, 0.0), (11.0, 1.0), (f64::NAN, 1.0), (1.0, -2.0)] {
        assert!(WindowSpec::new(bad.0, bad.1, Tail::Drop).is_err(), "{bad:?}");
    }
}

#[test]
fn c_settings_parse() {
    assert_eq!("auto".parse::<CSetting>().unwrap(), CSetting::Grid { grid: AUTO_GRID.to_vec() });
    assert_eq!(AUTO_GRID.first(), Some(&1e-4));
    assert_eq!(AUTO_GRID.last(), Some(&1.0));
    assert_eq!("0.01".parse::<CSetting>().unwrap(), CSetting::Fixed(0.01));
    assert_eq!("1, 0.1,0.1".parse::<CSetting>().unwrap(), CSetting::Grid { grid: vec![0.1, 1.0] });
    for bad in ["", "0", "-1", "x", "0.1,,1", "inf"] {
        assert!(bad.parse::<CSetting>().is_err(), "{bad:?}");
    }
}

/// 3 classes x 4 folds x 3 clips, `[4, 20]` features: class k lifts channel k by `lift` over unit
/// noise (channel 3 is noise alone).
fn blob_features(lift: f32, seed: u64) -> (Meta, Vec<sn_wgpu::eval::Features>, TestDir) {
    let dir = temp_dir(&format!("probe-c-{seed}"));
    let mut meta = String::from("filename,fold,target,category\n");
    let mut rng = rng(seed);
    let mut features = Vec::new();
    for fold in 1..=4 {
        for (target, name) in ["a", "b", "c"].iter().enumerate() {
            for take in 0..3 {
                meta.push_str(&format!("{fold}-{name}-{take}.wav,{fold},{target},{name}\n"));
                let data = (0..4 * 20).map(|i| if i / 20 == target { lift } else { 0.0 } + normal(&mut rng)).collect();
                features.push(sn_wgpu::eval::Features { layer: "x".into(), channels: 4, steps: 20, data });
            }
        }
    }
    std::fs::write(dir.join("meta.csv"), meta).unwrap();
    (Meta::read(&dir).unwrap(), features, dir)
}

#[test]
fn c_is_chosen_on_the_training_folds_and_the_test_fold_never_sways_it() {
    let (meta, features, _dir) = blob_features(0.6, 21);
    let cut = |f: &[sn_wgpu::eval::Features]| -> Vec<_> {
        f.iter().map(|f| windows::cut(&f.data, f.channels, f.steps).unwrap()).collect()
    };
    let grid = CSetting::Grid { grid: vec![1e-4, 1e-2, 1.0] };
    let base = crossval::leave_one_fold_out(&meta, &cut(&features), ClassifierKind::Svm, &grid).unwrap();
    for f in &base.folds {
        let choice = f.c_choice.as_ref().expect("a grid gives a choice");
        assert_eq!(choice.inner_folds, meta.folds.iter().copied().filter(|&x| x != f.fold).collect::<Vec<_>>());
        assert_eq!(choice.scores.iter().map(|s| s.0).collect::<Vec<_>>(), [1e-4, 1e-2, 1.0]);
        assert_eq!(f.c, choice.best());
        // Ties go to the smallest C.
        let top = choice.scores.iter().map(|s| s.1).fold(0.0, f64::max);
        assert_eq!(f.c, choice.scores.iter().find(|s| s.1 == top).unwrap().0);
    }
    // Fold 1's clips replaced by noise with the classes swapped around: fold 1's own choice (made
    // without it) is exactly the same, while the other folds, which train on fold 1, see the change.
    let mut swapped = features.clone();
    let mut rng = rng(99);
    for (i, clip) in meta.clips.iter().enumerate() {
        if clip.fold == 1 {
            let target = (clip.class + 1) % 3;
            swapped[i].data =
                (0..80).map(|v| if v / 20 == target { 5.0 } else { 0.0 } + 3.0 * normal(&mut rng)).collect();
        }
    }
    let changed = crossval::leave_one_fold_out(&meta, &cut(&swapped), ClassifierKind::Svm, &grid).unwrap();
    assert_eq!(changed.folds[0].c_choice, base.folds[0].c_choice, "the held-out fold changed its own C choice");
    assert_eq!(changed.folds[0].c, base.folds[0].c);
    assert!(
        (1..4).all(|i| changed.folds[i].c_choice != base.folds[i].c_choice),
        "the change to fold 1 is too weak to show: the folds that train on it did not notice"
    );
    // The same through choose_c: only the training clips are read.
    let training: Vec<usize> = (0..meta.clips.len()).filter(|&i| meta.clips[i].fold != 2).collect();
    let a = crossval::choose_c(&meta, &cut(&features), &training, ClassifierKind::Softmax, &[0.01, 1.0]).unwrap();
    let mut poisoned = cut(&features);
    for (i, clip) in meta.clips.iter().enumerate() {
        if clip.fold == 2 {
            poisoned[i].data.fill(f32::NAN);
        }
    }
    let b = crossval::choose_c(&meta, &poisoned, &training, ClassifierKind::Softmax, &[0.01, 1.0]).unwrap();
    assert_eq!(a, b);
    let one_fold: Vec<usize> = (0..meta.clips.len()).filter(|&i| meta.clips[i].fold == 1).collect();
    let err = crossval::choose_c(&meta, &cut(&features), &one_fold, ClassifierKind::Svm, &[0.1, 1.0]).unwrap_err();
    assert!(err.to_string().contains("at least two training folds"), "{err}");
}

#[test]
fn shared_inner_trainings_choose_as_each_fold_alone_would() {
    // leave_one_fold_out trains each distinct inner training set once (held-out fold a with inner
    // fold b trains on the clips of b with a); every fold's choice must be what choose_c, which
    // trains its own, makes on that fold's training clips.
    let (meta, features, _dir) = blob_features(0.5, 25);
    let windows: Vec<_> = features.iter().map(|f| windows::cut(&f.data, f.channels, f.steps).unwrap()).collect();
    let grid = vec![1e-3, 1e-1, 10.0];
    for kind in [ClassifierKind::Svm, ClassifierKind::Softmax] {
        let cv = crossval::leave_one_fold_out(&meta, &windows, kind, &CSetting::Grid { grid: grid.clone() }).unwrap();
        for f in &cv.folds {
            let training: Vec<usize> = (0..meta.clips.len()).filter(|&i| meta.clips[i].fold != f.fold).collect();
            let alone = crossval::choose_c(&meta, &windows, &training, kind, &grid).unwrap();
            assert_eq!(f.c_choice.as_ref(), Some(&alone), "{kind}, fold {}", f.fold);
        }
    }
}

#[test]
fn solves_stopped_at_the_iteration_limit_are_counted_and_noted() {
    let (meta, features, _dir) = blob_features(0.5, 27);
    let windows: Vec<_> = features.iter().map(|f| windows::cut(&f.data, f.channels, f.steps).unwrap()).collect();
    let grid = CSetting::Grid { grid: vec![1e-3, 0.1] };
    let capped = Solver { kind: ClassifierKind::Svm, max_iter: Some(1) };
    let cv = crossval::leave_one_fold_out(&meta, &windows, capped, &grid).unwrap();
    for f in &cv.folds {
        assert!(!f.converged && f.iterations == 1, "fold {}: one pass cannot reach the tolerance", f.fold);
        let choice = f.c_choice.as_ref().unwrap();
        assert_eq!(choice.capped, [(1e-3, 3), (0.1, 3)], "fold {}: every inner training at every C", f.fold);
    }
    let notes = crossval::solver_notes(&cv.folds);
    let mut final_c: Vec<f64> = cv.folds.iter().map(|f| f.c).collect();
    final_c.sort_by(f64::total_cmp);
    final_c.dedup();
    assert_eq!(
        notes.len(),
        final_c.len() + 2,
        "one note per C of the tested classifiers, one per C while choosing: {notes:#?}"
    );
    for c in [0.001, 0.1] {
        let want = format!("choosing C: 12 of the 12 inner trainings at C = {c} stopped at the iteration limit");
        assert!(notes.iter().any(|n| n.contains(&want)), "{want:?} in {notes:#?}");
    }
    let mut named: Vec<u32> = notes
        .iter()
        .filter_map(|n| n.strip_prefix("the classifier of fold(s) "))
        .flat_map(|n| n.split(" (C").next().unwrap().split(", ").map(|f| f.parse::<u32>().unwrap()))
        .collect();
    named.sort();
    assert_eq!(named, [1, 2, 3, 4], "every fold's classifier is named once: {notes:#?}");
    // With the default limits the same problem converges everywhere and nothing is noted.
    let cv = crossval::leave_one_fold_out(&meta, &windows, ClassifierKind::Svm, &grid).unwrap();
    assert!(cv.folds.iter().all(|f| f.converged && f.c_choice.as_ref().unwrap().capped.is_empty()));
    assert_eq!(crossval::solver_notes(&cv.folds), Vec::<String>::new());
}

#[test]
fn the_probe_gives_the_same_answer_on_any_number_of_cores() {
    // The folds, the grid of C and each SVM's classes train in parallel; each binary problem has its
    // own random stream, so one core and several must agree exactly, not only in accuracy.
    let (meta, features, _dir) = blob_features(0.6, 23);
    let windows: Vec<_> = features.iter().map(|f| windows::cut(&f.data, f.channels, f.steps).unwrap()).collect();
    let on = |threads: usize, c: &CSetting, kind: ClassifierKind| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| crossval::leave_one_fold_out(&meta, &windows, kind, c).unwrap())
    };
    let grid = CSetting::Grid { grid: vec![1e-3, 1e-1, 10.0] };
    for (c, kind) in
        [(&CSetting::Fixed(0.01), ClassifierKind::Svm), (&grid, ClassifierKind::Svm), (&grid, ClassifierKind::Softmax)]
    {
        let one = on(1, c, kind);
        assert_eq!(one.folds.iter().map(|f| f.fold).collect::<Vec<_>>(), meta.folds, "folds in meta.csv order");
        assert_eq!(on(4, c, kind), one, "{kind} at {c}: 4 threads differ from 1");
    }
}

fn sn_wgpu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

#[test]
fn several_layers_from_feature_folders_make_one_table_and_chart() {
    let (meta, features, dir) = blob_features(3.0, 22);
    let feats = dir.join("features");
    // "strong" holds the class signal, "weak" noise alone.
    for (layer, lift) in [("strong", true), ("weak", false)] {
        std::fs::create_dir_all(feats.join(layer)).unwrap();
        let mut rng = rng(3);
        for (clip, f) in meta.clips.iter().zip(&features) {
            let stem = clip.filename.trim_end_matches(".wav");
            let data: Vec<f32> = if lift { f.data.clone() } else { (0..80).map(|_| normal(&mut rng)).collect() };
            write_npy(&feats.join(layer).join(format!("{stem}.npy")), &[4, 20], &data, false);
        }
    }
    let chart = dir.join("layers.png");
    let confusion = dir.join("confusion.png");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["probe", dir.to_str().unwrap(), "--features", feats.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(
            [
                "--layers",
                "strong,weak",
                "--layers-chart",
                chart.to_str().unwrap(),
                "--confusion",
                confusion.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        sn_wgpu(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run(&["--json", "--c", "auto", "--window", "2", "--hop", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["table"]["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["layer"].as_str().unwrap()).collect::<Vec<_>>(), ["strong", "weak"]);
    assert_eq!(rows[0]["mean_accuracy"], 1.0, "{report}");
    assert!(rows[1]["mean_accuracy"].as_f64().unwrap() < 0.8, "noise features scored {}", rows[1]["mean_accuracy"]);
    let strong = &report["reports"][0];
    // 2 s windows every 1 s of 20 frames: 4 frames every 2, 9 windows.
    assert_eq!((strong["frames_per_window"].as_u64(), strong["hop_frames"].as_u64()), (Some(4), Some(2)));
    assert_eq!(strong["windows_per_clip"], 9);
    assert_eq!(strong["c"]["grid"], serde_json::json!(AUTO_GRID));
    for f in strong["folds"].as_array().unwrap() {
        assert!(AUTO_GRID.contains(&f["c"].as_f64().unwrap()), "{f}");
        assert_eq!(f["c_choice"]["scores"].as_array().unwrap().len(), AUTO_GRID.len());
    }
    let png = std::fs::read(&chart).unwrap();
    assert!(png.len() > 1000 && &png[1..4] == b"PNG");
    for layer in ["strong", "weak"] {
        assert!(dir.join(format!("confusion-{layer}.png")).is_file(), "{layer}'s confusion matrix");
    }
    // Text: the table, each fold's chosen C.
    let out = run(&["--c", "0.001,0.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("C chosen per fold from {0.001, 0.1}") && text.contains("strong") && text.contains("100.00%"),
        "{text}"
    );
    // Mistakes are named: a layer with no folder, a layer twice, --tsne with several layers.
    let out = run(&["--tsne", dir.join("t.png").to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("--tsne draws one layer"), "{e}");
    let out =
        sn_wgpu(&["probe", dir.to_str().unwrap(), "--features", feats.to_str().unwrap(), "--layers", "strong,nope"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("nope") && e.contains("no such folder"), "{e}");
    let out =
        sn_wgpu(&["probe", dir.to_str().unwrap(), "--features", feats.to_str().unwrap(), "--layers", "weak,weak"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("named twice"), "{e}");
    let out = sn_wgpu(&["probe", dir.to_str().unwrap(), "--features", feats.to_str().unwrap(), "--window", "0"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--window 0"));
}

/// Writes `n` 2 s WAVs of a hum and of noise per fold under `dir/audio` with their meta.csv.
fn hum_and_noise(dir: &Path) {
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    let mut meta = String::from("filename,fold,target,category\n");
    let mut rng = rng(5);
    for fold in 1..=2 {
        for (target, name) in ["hum", "noise"].iter().enumerate() {
            let file = format!("{fold}-{name}.wav");
            let samples: Vec<i16> = (0..44_100)
                .map(|i| match target {
                    0 => ((i as f32 * 0.02 * fold as f32).sin() * 9000.0) as i16,
                    _ => (normal(&mut rng) * 6000.0) as i16,
                })
                .collect();
            write_wav(&dir.join("audio").join(&file), 22_050, &samples);
            meta.push_str(&format!("{file},{fold},{target},{name}\n"));
        }
    }
    std::fs::write(dir.join("meta.csv"), meta).unwrap();
}

#[test]
fn several_layers_come_from_one_network_pass_and_conv8_is_both_heads() {
    let dir = temp_dir("probe-layers-net");
    let weights = narrow_checkpoint(&dir);
    hum_and_noise(&dir);
    let opts = ProbeOptions {
        dir: dir.to_path_buf(),
        weights: Some(weights.clone()),
        features: None,
        layer: "pool5".into(),
        classifier: ClassifierKind::Svm,
        c: 0.01,
        confusion_png: dir.join("confusion.png"),
        tsne_png: None,
        chunk_samples: DEFAULT_CHUNK_SAMPLES,
    };
    let saved = dir.join("saved");
    let ext = Extensions {
        layers: vec!["conv4".into(), "pool5".into(), "conv8".into()],
        layers_png: Some(dir.join("layers.png")),
        save_features: Some(saved.clone()),
        ..Extensions::default()
    };
    let run = probe::run_with(&opts, &ext).unwrap();
    let table = run.table.as_ref().expect("a table for several layers");
    assert_eq!(table.rows.iter().map(|r| r.layer.as_str()).collect::<Vec<_>>(), ["conv4", "pool5", "conv8"]);
    // conv8: 1000 object and 401 scene logits, one step at 10 s.
    assert_eq!(run.reports[2].feature_shape, [1401, 1]);
    assert!(dir.join("layers.png").is_file());
    // pool5 as part of several layers is pool5 alone, the paper's protocol.
    let alone = probe::run(&opts).unwrap();
    assert_eq!(run.reports[1].folds, alone.folds);
    // conv8's features are the objects logits then the scenes logits of the same pass.
    let meta = Meta::read(&dir).unwrap();
    let model = Model::from_checkpoint(gpu(), &Checkpoint::load(&weights).unwrap()).unwrap();
    let mut x = Extractor::new(&model, &["objects", "scenes"], DEFAULT_CHUNK_SAMPLES).unwrap();
    let clip = &meta.clips[0];
    let heads = x.extract(gpu(), &sn_wgpu::data::crop::tile(&audio::load(&clip.audio).unwrap(), 220_500)).unwrap();
    let want: Vec<f32> = heads.features.iter().flat_map(|f| f.data.iter().copied()).collect();
    let stem = clip.filename.trim_end_matches(".wav");
    let read = sn_wgpu::probe::features::read_npy_dir(&saved.join("conv8"), &meta, "conv8").unwrap();
    assert_close("conv8 = objects ++ scenes", &read[0].data, &to_f64(&want), 1e-6);
    assert!(saved.join("conv4").join(format!("{stem}.npy")).is_file());
    // The saved features give the same table without the network.
    let again = probe::run_with(&ProbeOptions { features: Some(saved), weights: None, ..opts }, &ext).unwrap();
    assert_eq!(again.table.unwrap().rows, table.rows);
    // An unknown layer is named with the ones there are, before any clip is run.
    let bad = Extensions { layers: vec!["pool5".into(), "conv9".into()], ..Extensions::default() };
    let opts = ProbeOptions { dir: dir.to_path_buf(), weights: Some(weights), features: None, ..probe_opts_stub(&dir) };
    let e = format!("{:#}", probe::run_with(&opts, &bad).unwrap_err());
    assert!(e.contains("no layer \"conv9\"") && e.contains("pool5") && e.contains("conv8"), "{e}");
}

fn probe_opts_stub(dir: &Path) -> ProbeOptions {
    ProbeOptions {
        dir: dir.to_path_buf(),
        weights: None,
        features: None,
        layer: "pool5".into(),
        classifier: ClassifierKind::Svm,
        c: 0.01,
        confusion_png: dir.join("confusion.png"),
        tsne_png: None,
        chunk_samples: DEFAULT_CHUNK_SAMPLES,
    }
}
