//! Accuracy by layer, the paper's Table 6: one row per probed layer with its features, its
//! windows, each fold's accuracy and C, and the mean; as text, JSON and a bar chart.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::crossval::{self, CSetting};
use super::ProbeReport;
use crate::plot;

/// One probed layer's line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRow {
    pub layer: String,
    pub feature_shape: [usize; 2],
    pub windows_per_clip: usize,
    /// Values per window: channels times frames per window.
    pub window_values: usize,
    pub fold_accuracies: Vec<f64>,
    /// The C each fold was trained with.
    pub fold_c: Vec<f64>,
    pub mean_accuracy: f64,
    /// The solves that stopped at their iteration limit ([`crossval::solver_notes`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub solver_notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerTable {
    pub classifier: String,
    pub c: CSetting,
    pub rows: Vec<LayerRow>,
}

impl LayerTable {
    /// The table of `reports`, one per layer, in the order probed.
    pub fn new(reports: &[ProbeReport]) -> LayerTable {
        let rows = reports
            .iter()
            .map(|r| LayerRow {
                layer: r.layer.clone(),
                feature_shape: r.feature_shape,
                windows_per_clip: r.windows_per_clip,
                window_values: r.feature_shape[0] * r.frames_per_window,
                fold_accuracies: r.folds.iter().map(|f| f.accuracy).collect(),
                fold_c: r.folds.iter().map(|f| f.c).collect(),
                mean_accuracy: r.mean_accuracy,
                solver_notes: crossval::solver_notes(&r.folds),
            })
            .collect();
        LayerTable { classifier: reports[0].classifier.to_string(), c: reports[0].c.clone(), rows }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} with {}, leave-one-fold-out", self.classifier, self.c);
        let _ =
            writeln!(s, "{:<8} {:>12} {:>8} {:>8} {:>7}  folds (C)", "layer", "[C, T]", "windows", "values", "mean");
        for r in &self.rows {
            let folds: Vec<String> = r
                .fold_accuracies
                .iter()
                .zip(&r.fold_c)
                .map(|(a, c)| match self.c {
                    CSetting::Fixed(_) => format!("{:.1}", 100.0 * a),
                    CSetting::Grid { .. } => format!("{:.1} ({c})", 100.0 * a),
                })
                .collect();
            let [c, t] = r.feature_shape;
            let _ = writeln!(
                s,
                "{:<8} {:>12} {:>8} {:>8} {:>6.2}%  {}",
                r.layer,
                format!("[{c}, {t}]"),
                r.windows_per_clip,
                r.window_values,
                100.0 * r.mean_accuracy,
                folds.join(" / ")
            );
        }
        for r in &self.rows {
            for note in &r.solver_notes {
                let _ = writeln!(s, "note: {}: {note}", r.layer);
            }
        }
        s
    }

    /// The bar chart of mean accuracy by layer.
    pub fn draw(&self, png: &Path, dataset: &Path) -> Result<()> {
        let name = dataset.file_name().unwrap_or(dataset.as_os_str()).to_string_lossy();
        let title = format!("{name}: mean accuracy by layer ({}, {})", self.classifier, short(&self.c));
        let bars: Vec<(String, f64)> = self.rows.iter().map(|r| (r.layer.clone(), 100.0 * r.mean_accuracy)).collect();
        plot::bars::draw(png, &title, "mean accuracy over the folds (%)", &bars)
    }
}

/// `C = 0.01`, or `C chosen per fold`, for chart titles.
pub(super) fn short(c: &CSetting) -> String {
    match c {
        CSetting::Fixed(c) => format!("C = {c}"),
        CSetting::Grid { .. } => "C chosen per fold".into(),
    }
}
