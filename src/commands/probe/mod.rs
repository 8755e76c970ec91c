//! `sn-wgpu probe`: the paper's transfer experiment on ESC-style data. Each clip (tiled to 10 s)
//! goes through the network once, keeping one layer or several (`features`); each layer's `[C, T]`
//! map is cut into windows (`windows`: 1 s, non-overlapping by default, any length and hop), and a
//! linear classifier (`svm`, the paper's, or `softmax`) is trained on the windows of all folds but
//! one and tested on that fold's clips (`crossval`), with a fixed C or one chosen per fold on the
//! training folds alone. Out come per-fold and mean accuracy, a confusion matrix (`confusion`, also
//! as a PNG), optionally a t-SNE map of the clips (`tsne`), and for several layers one table and
//! bar chart of accuracy by layer (`layer_table`), the paper's Table 6.

pub mod confusion;
pub mod crossval;
pub mod features;
pub mod layer_table;
pub mod linear;
pub mod softmax;
pub mod svm;
pub mod tsne;
pub mod windows;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

pub use crate::data::meta::Meta;
pub use confusion::Confusion;
pub use crossval::{CChoice, CSetting, ClassifierKind, FoldResult, Solver};
pub use layer_table::LayerTable;
pub use windows::{Tail, WindowSpec};

use crate::gpu::Gpu;
use crate::out_folder::write_file;
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

/// What `probe` does beyond the paper's fixed protocol. `Extensions::default()` is that protocol:
/// `ProbeOptions::layer` alone, 1 s non-overlapping windows, `ProbeOptions::c`.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    /// Layers probed one after the other from one extraction pass; empty: `ProbeOptions::layer`.
    /// With several, each layer's confusion matrix goes beside `ProbeOptions::confusion_png` with
    /// the layer in its name, and `ProbeOptions::tsne_png` must be unset.
    pub layers: Vec<String>,
    pub windows: WindowSpec,
    /// When set, each fold's C is chosen from this grid by leave-one-fold-out on its training
    /// folds, and `ProbeOptions::c` is not used.
    pub c_grid: Option<Vec<f64>>,
    /// The solver's iteration limit; `None`: the classifier's default.
    pub max_iter: Option<usize>,
    /// Where the bar chart of accuracy by layer goes (several layers only).
    pub layers_png: Option<PathBuf>,
    /// Also write the extracted features to `DIR/<layer>/<stem>.npy`, for `--features DIR`.
    pub save_features: Option<PathBuf>,
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
    /// Frames between window starts.
    pub hop_frames: usize,
    /// The windows in seconds, and what happened to the last partial one.
    pub windows: WindowSpec,
    pub classifier: ClassifierKind,
    /// The fixed C, or the grid each fold's C was chosen from (see `folds[].c`).
    pub c: CSetting,
    pub clips: usize,
    pub classes: Vec<String>,
    pub folds: Vec<FoldResult>,
    pub mean_accuracy: f64,
    pub confusion: Confusion,
    pub confusion_png: PathBuf,
    pub tsne_png: Option<PathBuf>,
}

/// One `probe` run: a report per layer, and with several layers their table.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRun {
    pub reports: Vec<ProbeReport>,
    pub table: Option<LayerTable>,
}

/// Reads the dataset, gets the features (from `opts.features`, or the network on a GPU opened
/// here), cross-validates and writes the PNGs: the paper's protocol on `opts.layer`.
pub fn run(opts: &ProbeOptions) -> Result<ProbeReport> {
    let mut run = run_with(opts, &Extensions::default())?;
    Ok(run.reports.pop().expect("one layer"))
}

/// [`run`] with the extensions: several layers from one extraction, other windows, C chosen per
/// fold.
pub fn run_with(opts: &ProbeOptions, ext: &Extensions) -> Result<ProbeRun> {
    let layers = if ext.layers.is_empty() { vec![opts.layer.clone()] } else { ext.layers.clone() };
    ensure!(
        layers.len() == 1 || opts.tsne_png.is_none(),
        "--tsne draws one layer's clips: probe that layer alone (--layer) to draw it"
    );
    for (i, l) in layers.iter().enumerate() {
        ensure!(!layers[..i].contains(l), "layer {l} is named twice");
    }
    let meta = Meta::read(&opts.dir)?;
    let (features, features_from) = match &opts.features {
        Some(dir) => {
            let single = layers.len() == 1;
            let per_layer = layers
                .iter()
                .map(|l| features::read_npy_dir(&features::layer_dir(dir, l, single)?, &meta, l))
                .collect::<Result<Vec<_>>>()?;
            (per_layer, dir.clone())
        }
        None => {
            let gpu = Gpu::new()?;
            let f = features::extract_layers(&gpu, &meta, opts.weights.as_deref(), &layers, opts.chunk_samples)?;
            (f, opts.weights.clone().expect("extract checked --weights"))
        }
    };
    if let Some(dir) = &ext.save_features {
        for (layer, f) in layers.iter().zip(&features) {
            features::save(dir, &meta, layer, f)?;
        }
    }
    let mut reports = Vec::with_capacity(layers.len());
    let bar = layer_progress_bar(layers.len() as u64);
    for (layer, f) in layers.iter().zip(&features) {
        bar.set_message(layer.clone());
        let confusion_png =
            if layers.len() == 1 { opts.confusion_png.clone() } else { beside(&opts.confusion_png, layer) };
        reports.push(evaluate_layer(&meta, f, opts, ext, layer, confusion_png, features_from.clone())?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let table = if layers.len() > 1 {
        let table = LayerTable::new(&reports);
        if let Some(png) = &ext.layers_png {
            write_file(png, "--layers-chart", |png| table.draw(png, &meta.dir))?;
        }
        Some(table)
    } else {
        None
    };
    Ok(ProbeRun { reports, table })
}

/// A bar over the layers being cross-validated, on stderr, its clock ticking while a layer's
/// trainings run (minutes for wide layers with `--c auto`); hidden when stderr is not a terminal.
fn layer_progress_bar(total: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} classifying layer {pos}/{len}: {msg} [{elapsed_precise}]")
            .expect("a valid progress template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_secs(1));
    bar
}

/// `dir/confusion.png` -> `dir/confusion-<layer>.png`.
fn beside(path: &Path, layer: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}-{layer}{ext}"))
}

/// Everything after the features of `opts.layer`, under the paper's protocol: windows,
/// leave-one-fold-out, confusion matrix, PNGs.
pub fn evaluate(
    meta: &Meta,
    features: &[crate::eval::Features],
    opts: &ProbeOptions,
    features_from: PathBuf,
) -> Result<ProbeReport> {
    evaluate_layer(meta, features, opts, &Extensions::default(), &opts.layer, opts.confusion_png.clone(), features_from)
}

/// Everything after one layer's features: windows, leave-one-fold-out, confusion matrix, PNGs.
fn evaluate_layer(
    meta: &Meta,
    features: &[crate::eval::Features],
    opts: &ProbeOptions,
    ext: &Extensions,
    layer: &str,
    confusion_png: PathBuf,
    features_from: PathBuf,
) -> Result<ProbeReport> {
    let clip_windows = meta
        .clips
        .iter()
        .zip(features)
        .map(|(clip, f)| {
            windows::cut_with(&f.data, f.channels, f.steps, &ext.windows).with_context(|| clip.filename.clone())
        })
        .collect::<Result<Vec<_>>>()?;
    let c = match &ext.c_grid {
        Some(grid) => CSetting::Grid { grid: grid.clone() },
        None => CSetting::Fixed(opts.c),
    };
    let cv = crossval::leave_one_fold_out(
        meta,
        &clip_windows,
        Solver { kind: opts.classifier, max_iter: ext.max_iter },
        &c,
    )?;
    let names: Vec<String> = meta.classes.iter().map(|c| c.name.clone()).collect();
    let confusion = Confusion::new(names.len(), meta.clips.iter().zip(&cv.predicted).map(|(c, &p)| (c.class, p)));
    let mean_accuracy = cv.mean_accuracy();
    let title = format!(
        "{layer} {} ({}): {:.2}% mean over {} folds",
        opts.classifier,
        layer_table::short(&c),
        100.0 * mean_accuracy,
        cv.folds.len()
    );
    write_file(&confusion_png, "--confusion", |png| plot::confusion::draw(png, &title, &names, &confusion.counts))?;
    if let Some(path) = &opts.tsne_png {
        let points = tsne::embed(features, TSNE_SEED)?;
        let labels: Vec<usize> = meta.clips.iter().map(|c| c.class).collect();
        let title = format!("t-SNE of {layer} clip features (mean over time), {} clips", points.len());
        write_file(path, "--tsne", |png| plot::scatter::draw(png, &title, &points, &labels, &names))?;
    }
    let (f, w) = (&features[0], &clip_windows[0]);
    let (frames_per_window, hop_frames) = ext.windows.frames(f.steps);
    Ok(ProbeReport {
        dataset: meta.dir.clone(),
        features_from,
        layer: layer.to_string(),
        feature_shape: [f.channels, f.steps],
        windows_per_clip: w.count,
        frames_per_window,
        hop_frames,
        windows: ext.windows,
        classifier: opts.classifier,
        c,
        clips: meta.clips.len(),
        classes: names,
        folds: cv.folds,
        mean_accuracy,
        confusion,
        confusion_png,
        tsne_png: opts.tsne_png.clone(),
    })
}

impl ProbeRun {
    pub fn json(&self) -> Result<String> {
        match (&self.table, self.reports.as_slice()) {
            (None, [one]) => one.json(),
            _ => Ok(serde_json::to_string_pretty(self)? + "\n"),
        }
    }

    pub fn text(&self) -> String {
        match &self.table {
            None => self.reports.iter().map(ProbeReport::text).collect(),
            Some(table) => table.text(),
        }
    }
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
            "{} windows of {} frames per clip ({} values each), one every {} frames ({} s windows, {} s hop, \
             tail: {}); {} with {}",
            self.windows_per_clip,
            self.frames_per_window,
            c * self.frames_per_window,
            self.hop_frames,
            self.windows.window,
            self.windows.hop,
            self.windows.tail,
            self.classifier,
            self.c
        );
        for f in &self.folds {
            let chosen = match &f.c_choice {
                None => String::new(),
                Some(choice) => {
                    let scores: Vec<String> =
                        choice.scores.iter().map(|(c, a)| format!("{c}: {:.1}%", 100.0 * a)).collect();
                    format!(", C = {} (inner folds: {})", f.c, scores.join(", "))
                }
            };
            let _ = writeln!(
                s,
                "fold {}: {:5.1}% ({}/{}), trained on {} windows, {} iterations{}{chosen}",
                f.fold,
                100.0 * f.accuracy,
                f.correct,
                f.clips,
                f.train_windows,
                f.iterations,
                if f.converged { "" } else { " (stopped at the iteration limit before converging)" }
            );
        }
        for note in crossval::solver_notes(&self.folds) {
            let _ = writeln!(s, "note: {note}");
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
