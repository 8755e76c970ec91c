//! `probe`: the linear SVM against the optimality conditions of its problem and an independent
//! minimiser of its primal, the softmax classifier against its gradient, the 1 s windows, meta.csv
//! checks, and the whole command on synthetic data whose answer is known (features from .npy
//! files through the binary, and from a tiny network on generated WAVs).

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rand_distr::{Distribution, StandardNormal};
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::audio;
use sn_wgpu::eval::{Extractor, DEFAULT_CHUNK_SAMPLES};
use sn_wgpu::model::Model;
use sn_wgpu::probe::linear::{Examples, LinearModel};
use sn_wgpu::probe::softmax::{self, SoftmaxOptions};
use sn_wgpu::probe::svm::{self, Design, SvmOptions};
use sn_wgpu::probe::{self, windows, ClassifierKind, Meta, ProbeOptions};

fn normal(rng: &mut rand::rngs::StdRng) -> f32 {
    StandardNormal.sample(rng)
}

/// `per_class` points around each of `centres` (spread `noise`), labelled by centre.
fn blobs(centres: &[Vec<f32>], per_class: usize, noise: f32, seed: u64) -> Examples {
    let mut rng = rng(seed);
    let dim = centres[0].len();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (k, c) in centres.iter().enumerate() {
        for _ in 0..per_class {
            x.extend(c.iter().map(|&v| v + noise * normal(&mut rng)));
            y.push(k);
        }
    }
    Examples::new(dim, x, y).unwrap()
}

fn training_accuracy(model: &LinearModel, ex: &Examples) -> f64 {
    let right = (0..ex.len()).filter(|&i| model.predict_clip([ex.row(i)]) == ex.y[i]).count();
    right as f64 / ex.len() as f64
}

/// The L2-loss SVM primal 1/2 ||w||^2 + C sum max(0, 1 - y w.x~)^2 (x~ with the bias feature 1)
/// and its gradient, written out here independently of the solver.
fn primal(w: &[f64], ex: &Examples, y: &[f64], c: f64) -> (f64, Vec<f64>) {
    let mut value = 0.5 * dot(w, w);
    let mut grad = w.to_vec();
    for (i, &yi) in y.iter().enumerate() {
        let x: Vec<f64> = ex.row(i).iter().map(|&v| f64::from(v)).chain([1.0]).collect();
        let slack = (1.0 - yi * dot(w, &x)).max(0.0);
        value += c * slack * slack;
        grad.iter_mut().zip(&x).for_each(|(g, x)| *g -= 2.0 * c * slack * yi * x);
    }
    (value, grad)
}

#[test]
fn svm_separates_blobs_and_solves_its_problem() {
    let centres = vec![vec![3.0, 0.0, 0.0, 1.0], vec![0.0, 3.0, 0.0, 1.0], vec![0.0, 0.0, 3.0, 1.0]];
    let ex = blobs(&centres, 20, 0.4, 1);
    let trained = svm::train(&ex, &SvmOptions::new(0.5)).unwrap();
    assert_eq!(trained.model.classes, vec![0, 1, 2]);
    assert_eq!(training_accuracy(&trained.model, &ex), 1.0);

    // One binary problem (class 1 against the rest) at a C where many examples sit inside the margin.
    let c = 0.05;
    let opts = SvmOptions { tol: 1e-10, ..SvmOptions::new(c) };
    let y: Vec<f64> = ex.y.iter().map(|&t| if t == 1 { 1.0 } else { -1.0 }).collect();
    let design = Design::new(&ex);
    let sol = svm::solve_binary(&design, &y, &opts, &mut rng(3));
    assert!(sol.iterations < opts.max_iter, "did not converge");
    // Optimality of the L2-loss SVM: w = sum a_i y_i x~_i with a_i = 2 C max(0, 1 - y_i w.x~_i).
    let mut rebuilt = vec![0.0; 5];
    for (i, &yi) in y.iter().enumerate() {
        let x = design.row(i);
        let slack = (1.0 - yi * dot(&sol.w, x)).max(0.0);
        assert!(
            (sol.alpha[i] - 2.0 * c * slack).abs() < 1e-6,
            "example {i}: a = {} vs 2C slack = {}",
            sol.alpha[i],
            2.0 * c * slack
        );
        rebuilt.iter_mut().zip(x).for_each(|(r, x)| *r += sol.alpha[i] * yi * x);
    }
    assert!(rel_err_f64(&rebuilt, &sol.w) < 1e-9);
    assert!(sol.alpha.iter().filter(|&&a| a > 0.0).count() > 3, "a problem with several support vectors");
    // An independent minimiser of the primal: plain gradient descent from zero, step 1/L.
    let lipschitz = 1.0 + 2.0 * c * (0..ex.len()).map(|i| dot(design.row(i), design.row(i))).sum::<f64>();
    let mut w = vec![0.0; 5];
    for _ in 0..20_000 {
        let (_, g) = primal(&w, &ex, &y, c);
        w.iter_mut().zip(&g).for_each(|(w, g)| *w -= g / lipschitz);
    }
    let (p_gd, g_gd) = primal(&w, &ex, &y, c);
    let (p_dcd, g_dcd) = primal(&sol.w, &ex, &y, c);
    assert!(dot(&g_gd, &g_gd).sqrt() < 1e-6, "gradient descent did not converge");
    assert!(dot(&g_dcd, &g_dcd).sqrt() < 1e-5, "the primal gradient at the SVM's w is {g_dcd:?}");
    assert!((p_dcd - p_gd).abs() <= 1e-9 * p_gd, "primal {p_dcd} vs gradient descent's {p_gd}");
    assert!(rel_err_f64(&sol.w, &w) < 1e-5, "w {:?} vs gradient descent's {w:?}", sol.w);

    // A single class cannot be trained; C must be positive.
    let one = Examples::new(1, vec![1.0, 2.0], vec![4, 4]).unwrap();
    assert!(format!("{:#}", svm::train(&one, &SvmOptions::new(1.0)).unwrap_err()).contains("at least two"));
    assert!(svm::train(&ex, &SvmOptions::new(0.0)).is_err());
}

#[test]
fn softmax_separates_blobs_at_a_minimum_of_its_objective() {
    let centres = vec![vec![2.0, 0.0, 0.5], vec![0.0, 2.0, 0.5], vec![-1.0, -1.0, 0.5]];
    // Labels 3, 5, 9: the model's classes are the labels present, not 0..K.
    let mut ex = blobs(&centres, 15, 0.3, 2);
    ex.y.iter_mut().for_each(|y| *y = [3, 5, 9][*y]);
    let opts = SoftmaxOptions { tol: 1e-8, ..SoftmaxOptions::new(1.0) };
    let trained = softmax::train(&ex, &opts).unwrap();
    assert!(trained.iterations < opts.max_iter, "did not converge");
    assert_eq!(trained.model.classes, vec![3, 5, 9]);
    assert_eq!(training_accuracy(&trained.model, &ex), 1.0);

    let problem = softmax::Problem::new(&ex, &trained.model.classes, opts.c);
    // The analytic gradient against finite differences, at a point away from the optimum.
    let point: Vec<f64> = (0..12).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3).collect();
    let numeric = numeric_grad(|w| problem.objective(w).0, &point, 1e-6);
    assert!(rel_err_f64(&problem.objective(&point).1, &numeric) < 1e-6);
    // At the solution the gradient vanishes and every nearby point is worse.
    let w = &trained.model.weights;
    let (best, grad) = problem.objective(w);
    assert!(grad.iter().all(|g| g.abs() <= 1e-8), "{grad:?}");
    for i in 0..w.len() {
        for step in [-1e-3, 1e-3] {
            let mut moved = w.clone();
            moved[i] += step;
            assert!(problem.objective(&moved).0 > best);
        }
    }
}

#[test]
fn windows_are_one_second_and_laid_out_channel_major() {
    // [2 channels, 27 frames]: 13 windows of 2 frames, the last frame dropped.
    let features: Vec<f32> = (0..54).map(|v| v as f32).collect();
    let w = windows::cut(&features, 2, 27).unwrap();
    assert_eq!((w.count, w.dim), (13, 4));
    assert_eq!(w.row(0), &[0.0, 1.0, 27.0, 28.0]);
    assert_eq!(w.row(12), &[24.0, 25.0, 51.0, 52.0]);
    // T divisible by 10, shorter than 10, not divisible with a remainder of several windows.
    for (frames, count, width) in [(10, 10, 1), (20, 10, 2), (5, 5, 1), (35, 11, 3), (99, 11, 9)] {
        let w = windows::cut(&vec![0.0; 3 * frames], 3, frames).unwrap();
        assert_eq!((w.count, w.dim), (count, 3 * width), "T = {frames}");
        assert_eq!(windows::frames_per_window(frames), width);
    }
    assert!(windows::cut(&[1.0; 5], 2, 3).is_err());
    assert!(windows::cut(&[], 0, 3).is_err());
    assert_eq!(windows::CLIP_SAMPLES, 220_500);
}

fn write_meta(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("meta.csv"), text).unwrap();
}

fn meta_error(dir: &Path, text: &str) -> String {
    write_meta(dir, text);
    Meta::read(dir).unwrap_err().to_string()
}

#[test]
fn meta_csv_is_read_and_its_problems_named() {
    let dir = temp_dir("probe-meta");
    write_meta(&dir, "filename,fold,target,category,extra\nb.wav,2,7,dog,x\na.wav,1,3,cat,y\nc.wav,1,7,dog,z\n");
    let meta = Meta::read(&dir).unwrap();
    assert_eq!(meta.folds, vec![1, 2]);
    assert_eq!(meta.classes.iter().map(|c| (c.target, c.name.as_str())).collect::<Vec<_>>(), [(3, "cat"), (7, "dog")]);
    assert_eq!(meta.clips.iter().map(|c| c.class).collect::<Vec<_>>(), [1, 0, 1]);
    assert_eq!(meta.clips[0].audio, dir.join("audio/b.wav"));
    assert_eq!(meta.clips[2].line, 4);
    // Without a category column, classes are named by target.
    write_meta(&dir, "fold,target,filename\n1,0,a.wav\n2,1,b.wav\n");
    assert_eq!(Meta::read(&dir).unwrap().classes[1].name, "class 1");

    // ESC-50 ships meta.csv with CRLF line ends, which the csv crate counts one line short.
    write_meta(&dir, "filename,fold,target\r\nb.wav,2,7\r\na.wav,1,3\r\n\r\nc.wav,1,7\r\n");
    assert_eq!(Meta::read(&dir).unwrap().clips.iter().map(|c| c.line).collect::<Vec<_>>(), [2, 3, 5]);

    let meta_csv = dir.join("meta.csv").display().to_string();
    let cases = [
        ("filename,fold\na.wav,1\n", "line 1: missing column `target`"),
        ("filename,fold,target\na.wav,one,0\nb.wav,2,1\n", "line 2: `fold` is \"one\""),
        ("filename,fold,target\na.wav,1,-3\nb.wav,2,1\n", "line 2: `target` is \"-3\""),
        ("filename,fold,target\n,1,0\nb.wav,2,1\n", "line 2: empty `filename`"),
        (
            "filename,fold,target\na.wav,1,0\nb.wav,2,0\n",
            "every clip has target 0: a classifier needs at least two classes",
        ),
        ("filename,fold,target\na.wav,1,0\nb.wav,1,1\n", "every clip is in fold 1"),
        ("filename,fold,target\na.wav,1,0\nb.wav,2,1\nc.wav,4,1\n", "fold 3 has no clips"),
        ("filename,fold,target\n", "no clips"),
        (
            "filename,fold,target,category\na.wav,1,0,dog\nb.wav,2,0,cat\n",
            "line 3: target 0 has category \"cat\", but line 2",
        ),
        ("filename,fold,target\n\na.wav,1,0\n\nb.wav,x,1\n", "line 5: `fold` is \"x\""),
        ("filename,fold,target\na.wav,1,0\nb.wav,2\nc.wav,2,1\n", "line 3: 2 field(s), but the header has 3"),
    ];
    // The line in each message is exact, with LF and with CRLF line ends.
    for (text, want) in cases {
        for text in [text.to_string(), text.replace('\n', "\r\n")] {
            let err = meta_error(&dir, &text);
            assert!(err.contains(&format!("{meta_csv}: {want}")), "{text:?}: {err}");
        }
    }
    std::fs::remove_file(dir.join("meta.csv")).unwrap();
    let err = Meta::read(&dir).unwrap_err().to_string();
    assert!(err.contains(&meta_csv) && err.contains("no such file"), "{err}");
}

/// A dataset of 3 classes x 3 folds x 2 clips with `[6, 23]` features in `dir/features`: class k
/// raises channels 2k and 2k+1 in every frame, over unit noise, so any linear probe gets 100%.
fn synthetic_features(dir: &Path) -> PathBuf {
    let features = dir.join("features");
    std::fs::create_dir_all(&features).unwrap();
    // With CRLF line ends, as ESC-50 ships its meta.csv.
    let mut meta = String::from("filename,fold,target,category\r\n");
    let mut rng = rng(11);
    for fold in 1..=3 {
        for (target, name) in ["hum", "hiss", "click"].iter().enumerate() {
            for take in 0..2 {
                let stem = format!("{fold}-{name}-{take}");
                meta.push_str(&format!("{stem}.wav,{fold},{target},{name}\r\n"));
                let data: Vec<f32> = (0..6 * 23)
                    .map(|i| {
                        let lift = if i / 23 / 2 == target { 3.0 } else { 0.0 };
                        lift + normal(&mut rng)
                    })
                    .collect();
                // Every other file in Fortran order (column-major), which the reader transposes back.
                let fortran = take == 1;
                let stored: Vec<f32> =
                    if fortran { (0..6 * 23).map(|i| data[(i % 6) * 23 + i / 6]).collect() } else { data };
                write_npy(&features.join(format!("{stem}.npy")), &[6, 23], &stored, fortran);
            }
        }
    }
    write_meta(dir, &meta);
    features
}

fn sn_wgpu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

#[test]
fn probe_on_separable_features_scores_every_clip() {
    let dir = temp_dir("probe-features");
    let features = synthetic_features(&dir);
    let (confusion, tsne) = (dir.join("confusion.png"), dir.join("tsne.png"));
    for classifier in ["svm", "softmax"] {
        let out = sn_wgpu(&[
            "probe",
            dir.to_str().unwrap(),
            "--features",
            features.to_str().unwrap(),
            "--classifier",
            classifier,
            "--c",
            "0.1",
            "--confusion",
            confusion.to_str().unwrap(),
            "--tsne",
            tsne.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{classifier}: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["mean_accuracy"], 1.0, "{classifier}: {report}");
        assert_eq!(report["classifier"], classifier);
        assert_eq!(report["feature_shape"], serde_json::json!([6, 23]));
        assert_eq!((report["windows_per_clip"].as_u64(), report["frames_per_window"].as_u64()), (Some(11), Some(2)));
        let folds = report["folds"].as_array().unwrap();
        assert_eq!(folds.len(), 3);
        assert!(folds.iter().all(|f| f["correct"] == 6 && f["train_windows"] == 12 * 11 && f["converged"] == true));
        assert_eq!(report["confusion"]["counts"], serde_json::json!([[6, 0, 0], [0, 6, 0], [0, 0, 6]]));
        assert_eq!(report["classes"], serde_json::json!(["hum", "hiss", "click"]));
        for png in [&confusion, &tsne] {
            let bytes = std::fs::read(png).unwrap();
            assert!(bytes.len() > 1000 && &bytes[1..4] == b"PNG", "{}", png.display());
            std::fs::remove_file(png).unwrap();
        }
    }
    // The text report: folds, mean and the confusion table.
    let out = sn_wgpu(&[
        "probe",
        dir.to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--confusion",
        confusion.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fold 2: 100.0% (6/6)") && text.contains("mean accuracy 100.00%"), "{text}");
    assert!(text.contains(" 2 click") && text.contains("recall"), "{text}");

    // Missing and mismatched feature files are named.
    let missing = features.join("2-hiss-1.npy");
    std::fs::rename(&missing, dir.join("moved.npy")).unwrap();
    write_npy(&features.join("3-hum-0.npy"), &[6, 22], &[0.0; 6 * 22], false);
    write_npy(&features.join("1-hum-0.npy"), &[6], &[0.0; 6], false);
    let out = sn_wgpu(&["probe", dir.to_str().unwrap(), "--features", features.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        format!("{}: missing: the features of 2-hiss-1.wav (meta.csv line 11)", missing.display()),
        format!("{}: shape [6, 22]: expected [6, 23]", features.join("3-hum-0.npy").display()),
        format!("{}: shape [6]: expected features [C, T]", features.join("1-hum-0.npy").display()),
    ] {
        assert!(err.contains(&want), "wanted {want:?} in {err}");
    }
    // No meta.csv.
    let out = sn_wgpu(&["probe", features.to_str().unwrap(), "--features", features.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("meta.csv") && err.contains("no such file"), "{err}");
}

#[test]
fn probe_notes_every_solve_that_stops_at_its_iteration_limit() {
    let dir = temp_dir("probe-max-iter");
    let features = synthetic_features(&dir);
    let confusion = dir.join("confusion.png");
    let run = |extra: &[&str]| {
        let mut args = vec!["probe", dir.to_str().unwrap(), "--features", features.to_str().unwrap()];
        args.extend(["--confusion", confusion.to_str().unwrap(), "--c", "0.01,1"]);
        args.extend(extra);
        sn_wgpu(&args)
    };
    let out = run(&["--max-iter", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "note: choosing C: 6 of the 6 inner trainings at C = 0.01 stopped at the iteration limit before converging",
        "note: choosing C: 6 of the 6 inner trainings at C = 1 stopped at the iteration limit before converging",
        "note: the classifier of fold(s) ",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    let out = run(&["--max-iter", "1", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for fold in report["folds"].as_array().unwrap() {
        assert_eq!(fold["converged"], false);
        assert_eq!(fold["c_choice"]["capped"], serde_json::json!([[0.01, 2], [1.0, 2]]), "{fold}");
    }
    // The default limits: this separable problem converges everywhere, and nothing is noted.
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("note:") && text.contains("mean accuracy 100.00%"), "{text}");
    let out = run(&["--max-iter", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--max-iter"), "{err}");
}

#[test]
fn probe_never_draws_over_a_users_png() {
    let dir = temp_dir("probe-own-png");
    let features = synthetic_features(&dir);
    for (flag, name) in [("--confusion", "confusion.png"), ("--tsne", "tsne.png")] {
        let png = dir.join(name);
        std::fs::write(&png, "a user's picture").unwrap();
        let elsewhere = dir.join("drawn.png");
        let mut args = vec!["probe", dir.to_str().unwrap(), "--features", features.to_str().unwrap(), "--c", "0.1"];
        if flag == "--tsne" {
            args.extend(["--confusion", elsewhere.to_str().unwrap()]);
        }
        args.extend([flag, png.to_str().unwrap()]);
        let out = sn_wgpu(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(&png.display().to_string()) && err.contains(flag),
            "{flag}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&png).unwrap(), "a user's picture");
        std::fs::remove_file(&png).unwrap();
    }
}

#[test]
fn probe_runs_the_network_on_generated_clips() {
    let dir = temp_dir("probe-audio");
    let weights = narrow_checkpoint(&dir);
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    let mut meta = String::from("filename,fold,target,category\n");
    // Two folds of a low hum and white noise, 2 s each (tiled to 10 s by the probe).
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
    write_meta(&dir, &meta);
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
    let report = probe::run(&opts).unwrap();
    assert_eq!(report.feature_shape, [32, 27]);
    assert_eq!(report.folds.iter().map(|f| f.clips).collect::<Vec<_>>(), [2, 2]);
    assert!(std::fs::metadata(dir.join("confusion.png")).unwrap().len() > 1000);

    // The same as extracting each clip tiled to 10 s by hand and classifying those features.
    let meta = Meta::read(&dir).unwrap();
    let model = Model::from_checkpoint(gpu(), &Checkpoint::load(&weights).unwrap()).unwrap();
    let mut x = Extractor::new(&model, &["pool5"], DEFAULT_CHUNK_SAMPLES).unwrap();
    let by_hand: Vec<_> = meta
        .clips
        .iter()
        .map(|c| {
            let tiled = sn_wgpu::data::crop::tile(&audio::load(&c.audio).unwrap(), 220_500);
            x.extract(gpu(), &tiled).unwrap().features.remove(0)
        })
        .collect();
    let again = probe::evaluate(&meta, &by_hand, &opts, weights.clone()).unwrap();
    assert_eq!(again.folds, report.folds);
    assert_eq!(again.confusion, report.confusion);

    // A missing audio file stops the run before any GPU work, naming the file and its line.
    std::fs::remove_file(dir.join("audio/2-noise.wav")).unwrap();
    let err = format!("{:#}", probe::run(&opts).unwrap_err());
    assert!(
        err.contains("line 5: audio file") && err.contains("2-noise.wav") && err.contains("does not exist"),
        "{err}"
    );
    let no_weights = ProbeOptions { weights: None, ..opts };
    std::fs::remove_file(dir.join("meta.csv")).unwrap();
    assert!(probe::run(&no_weights).is_err());
}
