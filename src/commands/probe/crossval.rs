//! Leave-one-fold-out: for each fold, a classifier trained on the windows of every other fold's
//! clips classifies that fold's clips, each from the mean of its windows' decision values. C is
//! either fixed or chosen per held-out fold from a grid by an inner leave-one-fold-out over the
//! training folds alone (`choose_c`), as the paper picks its margin regularisation.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result};
use rayon::prelude::*;
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
    /// The C this fold's classifier was trained with.
    pub c: f64,
    /// With a grid of C: the inner cross-validation behind the choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c_choice: Option<CChoice>,
}

/// How C was chosen for one held-out fold: every grid value's mean accuracy over the inner folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CChoice {
    /// `(C, mean inner accuracy)` per grid value, ascending in C.
    pub scores: Vec<(f64, f64)>,
    /// The inner folds: the training folds, each held out in turn.
    pub inner_folds: Vec<u32>,
}

/// C as given on the command line: one value, or a grid to choose from per fold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CSetting {
    Fixed(f64),
    Grid { grid: Vec<f64> },
}

/// The grid `--c auto` searches: 1e-4 to 1, one value a decade (a finer grid is a list away).
pub const AUTO_GRID: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];

impl FromStr for CSetting {
    type Err = String;
    /// `auto` (the [`AUTO_GRID`]), one value, or a comma-separated grid.
    fn from_str(s: &str) -> Result<CSetting, String> {
        if s == "auto" {
            return Ok(CSetting::Grid { grid: AUTO_GRID.to_vec() });
        }
        let mut values = s
            .split(',')
            .map(|v| match v.trim().parse::<f64>() {
                Ok(c) if c > 0.0 && c.is_finite() => Ok(c),
                _ => {
                    Err(format!("C {v:?} in {s:?}: expected auto, a positive number or a comma-separated list of them"))
                }
            })
            .collect::<Result<Vec<f64>, String>>()?;
        values.sort_by(f64::total_cmp);
        values.dedup();
        Ok(if values.len() == 1 { CSetting::Fixed(values[0]) } else { CSetting::Grid { grid: values } })
    }
}

impl fmt::Display for CSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CSetting::Fixed(c) => write!(f, "C = {c}"),
            CSetting::Grid { grid } => {
                let values: Vec<String> = grid.iter().map(|c| c.to_string()).collect();
                write!(f, "C chosen per fold from {{{}}} on the training folds", values.join(", "))
            }
        }
    }
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

/// Runs every fold of `meta` with `windows[i]` the windows of clip `i`. With a grid of C, each
/// fold's C comes from [`choose_c`] on that fold's training clips only.
pub fn leave_one_fold_out(
    meta: &Meta,
    windows: &[Windows],
    kind: ClassifierKind,
    c: &CSetting,
) -> Result<CrossValidation> {
    assert_eq!(windows.len(), meta.clips.len(), "one set of windows per clip");
    // The folds are independent trainings: rayon spreads them (and, inside each, the classes of a
    // one-vs-rest SVM and the grid of C) over the cores.
    let per_fold = meta
        .folds
        .par_iter()
        .map(|&fold| -> Result<(FoldResult, Vec<(usize, usize)>)> {
            let (held_out, training): (Vec<usize>, Vec<usize>) =
                (0..meta.clips.len()).partition(|&i| meta.clips[i].fold == fold);
            let (c, c_choice) = match c {
                CSetting::Fixed(c) => (*c, None),
                CSetting::Grid { grid } => {
                    let choice = choose_c(meta, windows, &training, kind, grid)
                        .with_context(|| format!("fold {fold}: choosing C on the other folds"))?;
                    (choice.best(), Some(choice))
                }
            };
            let examples = training_examples(meta, windows, &training)?;
            let (model, iterations, converged) = train(&examples, kind, c)
                .with_context(|| format!("fold {fold}: training on the other folds' {} clips", training.len()))?;
            let guesses: Vec<(usize, usize)> = held_out
                .iter()
                .map(|&i| {
                    let w = &windows[i];
                    (i, model.predict_clip((0..w.count).map(|j| w.row(j))))
                })
                .collect();
            let correct = guesses.iter().filter(|&&(i, guess)| guess == meta.clips[i].class).count();
            let result = FoldResult {
                fold,
                clips: held_out.len(),
                correct,
                accuracy: correct as f64 / held_out.len() as f64,
                train_windows: examples.len(),
                iterations,
                converged,
                c,
                c_choice,
            };
            Ok((result, guesses))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut predicted = vec![0; meta.clips.len()];
    let mut folds = Vec::with_capacity(per_fold.len());
    for (result, guesses) in per_fold {
        guesses.into_iter().for_each(|(i, guess)| predicted[i] = guess);
        folds.push(result);
    }
    Ok(CrossValidation { folds, predicted })
}

impl CChoice {
    /// The grid value with the highest mean inner accuracy; ties go to the smallest C, the
    /// strongest regularisation among equally good ones.
    pub fn best(&self) -> f64 {
        let top = self.scores.iter().map(|&(_, a)| a).fold(f64::NEG_INFINITY, f64::max);
        self.scores.iter().find(|&&(_, a)| a == top).expect("a non-empty grid").0
    }
}

/// Scores every C of `grid` by leave-one-fold-out over the folds of the clips in `training`: for
/// each of those folds, a classifier trained on the other training clips classifies that fold's
/// clips. Only the clips listed in `training` are read, so a held-out fold outside them cannot
/// sway the choice.
pub fn choose_c(
    meta: &Meta,
    windows: &[Windows],
    training: &[usize],
    kind: ClassifierKind,
    grid: &[f64],
) -> Result<CChoice> {
    anyhow::ensure!(!grid.is_empty(), "an empty grid of C");
    let mut inner_folds: Vec<u32> = training.iter().map(|&i| meta.clips[i].fold).collect();
    inner_folds.sort_unstable();
    inner_folds.dedup();
    anyhow::ensure!(
        inner_folds.len() >= 2,
        "choosing C needs at least two training folds to hold out in turn, and there is {}",
        inner_folds.len()
    );
    let mut grid = grid.to_vec();
    grid.sort_by(f64::total_cmp);
    // Every (C, inner fold) pair is an independent training.
    let pairs: Vec<(f64, u32)> = grid.iter().flat_map(|&c| inner_folds.iter().map(move |&f| (c, f))).collect();
    let accuracy = |&(c, inner): &(f64, u32)| -> Result<f64> {
        let (test, train_clips): (Vec<usize>, Vec<usize>) =
            training.iter().partition(|&&i| meta.clips[i].fold == inner);
        let examples = training_examples(meta, windows, &train_clips)?;
        let (model, _, _) =
            train(&examples, kind, c).with_context(|| format!("C = {c}, inner fold {inner} held out"))?;
        let correct = test
            .iter()
            .filter(|&&i| {
                let w = &windows[i];
                model.predict_clip((0..w.count).map(|j| w.row(j))) == meta.clips[i].class
            })
            .count();
        Ok(correct as f64 / test.len() as f64)
    };
    let accuracies = pairs.par_iter().map(accuracy).collect::<Result<Vec<f64>>>()?;
    let scores = grid
        .iter()
        .enumerate()
        .map(|(g, &c)| {
            let per_fold = &accuracies[g * inner_folds.len()..(g + 1) * inner_folds.len()];
            (c, per_fold.iter().sum::<f64>() / inner_folds.len() as f64)
        })
        .collect();
    Ok(CChoice { scores, inner_folds })
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
