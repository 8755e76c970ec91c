//! `sn-wgpu probe`: the paper's transfer experiment on ESC-style data. Each clip (tiled to 10 s)
//! goes through the network to one layer (`features`), its `[C, T]` map is cut into 1 s windows
//! (`windows`), and a linear classifier (`svm`, the paper's, or `softmax`) is trained on the
//! windows of all folds but one and tested on that fold's clips (`crossval`). Out come per-fold
//! and mean accuracy, a confusion matrix (`confusion`, also as a PNG) and optionally a t-SNE map
//! of the clips (`tsne`).

pub mod confusion;
pub mod crossval;
pub mod features;
pub mod linear;
pub mod meta;
pub mod softmax;
pub mod svm;
pub mod tsne;
pub mod windows;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

pub use confusion::Confusion;
pub use crossval::{ClassifierKind, FoldResult};
pub use meta::Meta;

use crate::gpu::Gpu;
use crate::plot;

/// The seed of the t-SNE start.
const TSNE_SEED: u64 = 0;

pub struct ProbeOptions {
    /// The dataset folder: `meta.csv` and `audio/`.
    pub dir: PathBuf,
    /// The checkpoint to extract features with (unused with `features`).
    pub weights: Option<PathBuf>,
    /// A folder of `<stem>.npy` features from `sn-wgpu extract`, used instead of the network.
    pub features: Option<PathBuf>,
    pub layer: String,
    pub classifier: ClassifierKind,
    pub c: f64,
    /// Where the confusion matrix PNG goes.
    pub confusion_png: PathBuf,
    /// Where the t-SNE map goes, when asked for.
    pub tsne_png: Option<PathBuf>,
    pub chunk_samples: usize,
}

/// Everything `probe` measured, for text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub dataset: PathBuf,
    /// The `--features` folder, or the checkpoint the features came from.
    pub features_from: PathBuf,
    pub layer: String,
    /// `[C, T]` of every clip's features.
    pub feature_shape: [usize; 2],
    pub windows_per_clip: usize,
    pub frames_per_window: usize,
    pub classifier: ClassifierKind,
    pub c: f64,
    pub clips: usize,
    pub classes: Vec<String>,
    pub folds: Vec<FoldResult>,
    pub mean_accuracy: f64,
    pub confusion: Confusion,
    pub confusion_png: PathBuf,
    pub tsne_png: Option<PathBuf>,
}

/// Reads the dataset, gets the features (from `opts.features`, or the network on a GPU opened
/// here), cross-validates and writes the PNGs.
pub fn run(opts: &ProbeOptions) -> Result<ProbeReport> {
    let meta = Meta::read(&opts.dir)?;
    let (features, features_from) = match &opts.features {
        Some(dir) => (features::read_npy_dir(dir, &meta, &opts.layer)?, dir.clone()),
        None => {
            let gpu = Gpu::new()?;
            let f = features::extract(&gpu, &meta, opts.weights.as_deref(), &opts.layer, opts.chunk_samples)?;
            (f, opts.weights.clone().expect("extract checked --weights"))
        }
    };
    evaluate(&meta, &features, opts, features_from)
}

/// Everything after the features: windows, leave-one-fold-out, confusion matrix, PNGs.
pub fn evaluate(
    meta: &Meta,
    features: &[crate::eval::Features],
    opts: &ProbeOptions,
    features_from: PathBuf,
) -> Result<ProbeReport> {
    let clip_windows = meta
        .clips
        .iter()
        .zip(features)
        .map(|(clip, f)| windows::cut(&f.data, f.channels, f.steps).with_context(|| clip.filename.clone()))
        .collect::<Result<Vec<_>>>()?;
    let cv = crossval::leave_one_fold_out(meta, &clip_windows, opts.classifier, opts.c)?;
    let names: Vec<String> = meta.classes.iter().map(|c| c.name.clone()).collect();
    let confusion = Confusion::new(names.len(), meta.clips.iter().zip(&cv.predicted).map(|(c, &p)| (c.class, p)));
    let mean_accuracy = cv.mean_accuracy();
    let title = format!(
        "{} {} (C = {}): {:.2}% mean over {} folds",
        opts.layer,
        opts.classifier,
        opts.c,
        100.0 * mean_accuracy,
        cv.folds.len()
    );
    plot::confusion::draw(&opts.confusion_png, &title, &names, &confusion.counts)?;
    if let Some(path) = &opts.tsne_png {
        let points = tsne::embed(features, TSNE_SEED)?;
        let labels: Vec<usize> = meta.clips.iter().map(|c| c.class).collect();
        let title = format!("t-SNE of {} clip features (mean over time), {} clips", opts.layer, points.len());
        plot::scatter::draw(path, &title, &points, &labels, &names)?;
    }
    let (f, w) = (&features[0], &clip_windows[0]);
    Ok(ProbeReport {
        dataset: meta.dir.clone(),
        features_from,
        layer: opts.layer.clone(),
        feature_shape: [f.channels, f.steps],
        windows_per_clip: w.count,
        frames_per_window: windows::frames_per_window(f.steps),
        classifier: opts.classifier,
        c: opts.c,
        clips: meta.clips.len(),
        classes: names,
        folds: cv.folds,
        mean_accuracy,
        confusion,
        confusion_png: opts.confusion_png.clone(),
        tsne_png: opts.tsne_png.clone(),
    })
}

impl ProbeReport {
    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let [c, t] = self.feature_shape;
        let _ = writeln!(
            s,
            "{} clips, {} classes, {} folds; {} features [{c}, {t}] from {}",
            self.clips,
            self.classes.len(),
            self.folds.len(),
            self.layer,
            self.features_from.display()
        );
        let _ = writeln!(
            s,
            "{} windows of {} frames per clip ({} values each); {} with C = {}",
            self.windows_per_clip,
            self.frames_per_window,
            c * self.frames_per_window,
            self.classifier,
            self.c
        );
        for f in &self.folds {
            let _ = writeln!(
                s,
                "fold {}: {:5.1}% ({}/{}), trained on {} windows, {} iterations{}",
                f.fold,
                100.0 * f.accuracy,
                f.correct,
                f.clips,
                f.train_windows,
                f.iterations,
                if f.converged { "" } else { " (stopped at the iteration limit before converging)" }
            );
        }
        let folds: Vec<String> = self.folds.iter().map(|f| format!("{:.1}", 100.0 * f.accuracy)).collect();
        let _ = writeln!(s, "mean accuracy {:.2}% (folds {})", 100.0 * self.mean_accuracy, folds.join(" / "));
        let _ = writeln!(s, "\nconfusion matrix (all folds' held-out clips):");
        s.push_str(&self.confusion.text(&self.classes));
        let _ = writeln!(s, "\nwrote {}", self.confusion_png.display());
        if let Some(p) = &self.tsne_png {
            let _ = writeln!(s, "wrote {}", p.display());
        }
        s
    }
}
