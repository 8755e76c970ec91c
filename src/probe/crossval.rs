//! Leave-one-fold-out: for each fold, a classifier trained on the windows of every other fold's
//! clips classifies that fold's clips, each from the mean of its windows' decision values.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result};
use serde::Serialize;

use super::linear::{Examples, LinearModel};
use super::meta::Meta;
use super::softmax::{self, SoftmaxOptions};
use super::svm::{self, SvmOptions};
use super::windows::Windows;

/// Which linear classifier the probe trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierKind {
    /// One-vs-rest linear SVM, squared hinge (the paper's).
    Svm,
    /// Multinomial logistic regression.
    Softmax,
}

impl FromStr for ClassifierKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ClassifierKind, String> {
        match s {
            "svm" => Ok(ClassifierKind::Svm),
            "softmax" => Ok(ClassifierKind::Softmax),
            other => Err(format!("unknown classifier {other:?}: expected svm or softmax")),
        }
    }
}

impl fmt::Display for ClassifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClassifierKind::Svm => "svm",
            ClassifierKind::Softmax => "softmax",
        })
    }
}

/// One held-out fold's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoldResult {
    pub fold: u32,
    pub clips: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Training windows (the other folds' clips times windows per clip).
    pub train_windows: usize,
    /// The solver's passes (SVM: the most any class needed) or gradient steps (softmax).
    pub iterations: usize,
    /// False when the solver stopped at its iteration limit before its tolerance.
    pub converged: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidation {
    pub folds: Vec<FoldResult>,
    /// Each clip's predicted class index, in `meta.csv` order (every clip is tested once).
    pub predicted: Vec<usize>,
}

impl CrossValidation {
    /// The mean of the folds' accuracies (the paper's and scikit-learn's summary).
    pub fn mean_accuracy(&self) -> f64 {
        self.folds.iter().map(|f| f.accuracy).sum::<f64>() / self.folds.len() as f64
    }
}

/// Runs every fold of `meta` with `windows[i]` the windows of clip `i`.
pub fn leave_one_fold_out(meta: &Meta, windows: &[Windows], kind: ClassifierKind, c: f64) -> Result<CrossValidation> {
    assert_eq!(windows.len(), meta.clips.len(), "one set of windows per clip");
    let mut predicted = vec![0; meta.clips.len()];
    let mut folds = Vec::with_capacity(meta.folds.len());
    for &fold in &meta.folds {
        let (held_out, training): (Vec<usize>, Vec<usize>) =
            (0..meta.clips.len()).partition(|&i| meta.clips[i].fold == fold);
        let examples = training_examples(meta, windows, &training)?;
        let (model, iterations, converged) = train(&examples, kind, c)
            .with_context(|| format!("fold {fold}: training on the other folds' {} clips", training.len()))?;
        let mut correct = 0;
        for &i in &held_out {
            let w = &windows[i];
            predicted[i] = model.predict_clip((0..w.count).map(|j| w.row(j)));
            correct += usize::from(predicted[i] == meta.clips[i].class);
        }
        folds.push(FoldResult {
            fold,
            clips: held_out.len(),
            correct,
            accuracy: correct as f64 / held_out.len() as f64,
            train_windows: examples.len(),
            iterations,
            converged,
        });
    }
    Ok(CrossValidation { folds, predicted })
}

/// Every window of the clips in `clips`, labelled with its clip's class.
fn training_examples(meta: &Meta, windows: &[Windows], clips: &[usize]) -> Result<Examples> {
    let dim = windows[clips[0]].dim;
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &i in clips {
        let w = &windows[i];
        assert_eq!(w.dim, dim, "every clip's windows have one size");
        x.extend_from_slice(&w.data);
        y.extend(std::iter::repeat_n(meta.clips[i].class, w.count));
    }
    Examples::new(dim, x, y)
}

/// The model, the solver's iterations and whether it converged.
fn train(examples: &Examples, kind: ClassifierKind, c: f64) -> Result<(LinearModel, usize, bool)> {
    Ok(match kind {
        ClassifierKind::Svm => {
            let opts = SvmOptions::new(c);
            let t = svm::train(examples, &opts)?;
            let most = t.iterations.iter().copied().max().unwrap_or(0);
            (t.model, most, most < opts.max_iter)
        }
        ClassifierKind::Softmax => {
            let opts = SoftmaxOptions::new(c);
            let t = softmax::train(examples, &opts)?;
            (t.model, t.iterations, t.iterations < opts.max_iter)
        }
    })
}
