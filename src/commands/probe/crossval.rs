//! Leave-one-fold-out: for each fold, a classifier trained on the windows of every other fold's
//! clips classifies that fold's clips, each from the mean of its windows' decision values. C is
//! either fixed or chosen per held-out fold from a grid by an inner leave-one-fold-out over the
//! training folds alone (`choose_c`), as the paper picks its margin regularisation.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use super::linear::{Examples, LinearModel};
use super::softmax::{self, SoftmaxOptions};
use super::svm::{self, SvmOptions};
use super::windows::Windows;
use crate::data::meta::Meta;

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

/// The classifier and how long its solver may run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Solver {
    pub kind: ClassifierKind,
    /// The iteration limit (SVM: passes over the data per class; softmax: gradient steps);
    /// `None`: the kind's default ([`SvmOptions::new`], [`SoftmaxOptions::new`]).
    pub max_iter: Option<usize>,
}

impl From<ClassifierKind> for Solver {
    fn from(kind: ClassifierKind) -> Solver {
        Solver { kind, max_iter: None }
    }
}

/// The iteration limit of the SVMs of the inner cross-validation, which only rank the values of
/// C: liblinear's own default for its dual solvers, 1,000 passes, where the classifier that is
/// tested may take the 10,000 that tools/probe_sklearn.py gives scikit-learn. At the largest C of
/// the grid the dual converges slowly (conv4's 2,688-value windows at C = 1: thousands of passes
/// per class), and those solves were nearly all the time `--c auto` took; the smaller C that
/// converge within the limit are solved exactly as before, so their scores do not move.
const RANKING_SVM_MAX_ITER: usize = 1000;

impl Solver {
    /// The solver for the trainings that choose C.
    fn ranking(self) -> Solver {
        match self.kind {
            ClassifierKind::Svm => Solver { max_iter: Some(self.max_iter.unwrap_or(RANKING_SVM_MAX_ITER)), ..self },
            ClassifierKind::Softmax => self,
        }
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

/// What stopped at its iteration limit before its tolerance, summed over `folds`: the tested
/// classifiers by C, and while choosing C the inner trainings by C. Empty when every solve
/// converged.
pub fn solver_notes(folds: &[FoldResult]) -> Vec<String> {
    let mut notes = Vec::new();
    let mut finals: Vec<(f64, Vec<u32>)> = Vec::new();
    for f in folds.iter().filter(|f| !f.converged) {
        match finals.iter_mut().find(|(c, _)| *c == f.c) {
            Some((_, list)) => list.push(f.fold),
            None => finals.push((f.c, vec![f.fold])),
        }
    }
    finals.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (c, list) in finals {
        let names: Vec<String> = list.iter().map(u32::to_string).collect();
        notes.push(format!(
            "the classifier of fold(s) {} (C = {c}) stopped at the iteration limit before converging",
            names.join(", ")
        ));
    }
    let mut inner: Vec<(f64, usize)> = Vec::new();
    for choice in folds.iter().filter_map(|f| f.c_choice.as_ref()) {
        for &(c, capped) in &choice.capped {
            match inner.iter_mut().find(|(x, _)| *x == c) {
                Some((_, n)) => *n += capped,
                None => inner.push((c, capped)),
            }
        }
    }
    let per_c: usize = folds.iter().filter_map(|f| f.c_choice.as_ref()).map(|c| c.inner_folds.len()).sum();
    inner.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (c, n) in inner {
        notes.push(format!(
            "choosing C: {n} of the {per_c} inner trainings at C = {c} stopped at the iteration limit before converging"
        ));
    }
    notes
}

/// How C was chosen for one held-out fold: every grid value's mean accuracy over the inner folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CChoice {
    /// `(C, mean inner accuracy)` per grid value, ascending in C.
    pub scores: Vec<(f64, f64)>,
    /// The inner folds: the training folds, each held out in turn.
    pub inner_folds: Vec<u32>,
    /// `(C, inner folds)` for each C at which some inner fold's solver stopped at its iteration
    /// limit before its tolerance (its score is then of a nearly converged classifier).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capped: Vec<(f64, usize)>,
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

/// How each held-out fold gets its C: given, or chosen from a grid by the inner trainings
/// (`splits[f]` those of fold `f`, trained once each).
enum CPlan {
    Fixed(f64),
    Chosen { grid: Vec<f64>, splits: Vec<Vec<InnerSplit>>, trained: HashMap<Vec<usize>, GridModels> },
}

/// Runs every fold of `meta` with `windows[i]` the windows of clip `i`. With a grid of C, each
/// fold's C comes from [`choose_c`] on that fold's training clips only.
pub fn leave_one_fold_out(
    meta: &Meta,
    windows: &[Windows],
    solver: impl Into<Solver>,
    c: &CSetting,
) -> Result<CrossValidation> {
    let solver = solver.into();
    assert_eq!(windows.len(), meta.clips.len(), "one set of windows per clip");
    let split =
        |fold: u32| -> (Vec<usize>, Vec<usize>) { (0..meta.clips.len()).partition(|&i| meta.clips[i].fold == fold) };
    // With a grid, every held-out fold's inner trainings first, each distinct one once.
    let plan = match c {
        CSetting::Fixed(c) => CPlan::Fixed(*c),
        CSetting::Grid { grid } => {
            let grid = sorted_grid(grid)?;
            let splits = meta
                .folds
                .iter()
                .map(|&fold| {
                    inner_splits(meta, &split(fold).1)
                        .with_context(|| format!("fold {fold}: choosing C on the other folds"))
                })
                .collect::<Result<Vec<_>>>()?;
            let sets = splits.iter().flatten().map(|s| &s.train);
            let trained = train_each(meta, windows, solver.ranking(), &grid, sets).context("choosing C")?;
            CPlan::Chosen { grid, splits, trained }
        }
    };
    // The folds are independent trainings: rayon spreads them (and, inside each, the classes of a
    // one-vs-rest SVM) over the cores.
    let per_fold = meta
        .folds
        .par_iter()
        .enumerate()
        .map(|(f, &fold)| -> Result<(FoldResult, Vec<(usize, usize)>)> {
            let (held_out, training) = split(fold);
            let (c, c_choice) = match &plan {
                CPlan::Fixed(c) => (*c, None),
                CPlan::Chosen { grid, splits, trained } => {
                    let choice = score_grid(meta, windows, &splits[f], trained, grid);
                    (choice.best(), Some(choice))
                }
            };
            let examples = training_examples(meta, windows, &training)?;
            let (model, iterations, converged) = train(&examples, solver, c)
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
    solver: impl Into<Solver>,
    grid: &[f64],
) -> Result<CChoice> {
    let splits = inner_splits(meta, training)?;
    let grid = sorted_grid(grid)?;
    let trained = train_each(meta, windows, solver.into().ranking(), &grid, splits.iter().map(|s| &s.train))?;
    Ok(score_grid(meta, windows, &splits, &trained, &grid))
}

/// One training of the inner cross-validation: the training clips of one inner fold's turn
/// (every training clip of the other folds) and the clips it is tested on (that fold's).
struct InnerSplit {
    fold: u32,
    train: Vec<usize>,
    test: Vec<usize>,
}

fn inner_splits(meta: &Meta, training: &[usize]) -> Result<Vec<InnerSplit>> {
    let mut inner_folds: Vec<u32> = training.iter().map(|&i| meta.clips[i].fold).collect();
    inner_folds.sort_unstable();
    inner_folds.dedup();
    anyhow::ensure!(
        inner_folds.len() >= 2,
        "choosing C needs at least two training folds to hold out in turn, and there is {}",
        inner_folds.len()
    );
    Ok(inner_folds
        .into_iter()
        .map(|fold| {
            let (test, train) = training.iter().partition(|&&i| meta.clips[i].fold == fold);
            InnerSplit { fold, train, test }
        })
        .collect())
}

fn sorted_grid(grid: &[f64]) -> Result<Vec<f64>> {
    anyhow::ensure!(!grid.is_empty(), "an empty grid of C");
    let mut grid = grid.to_vec();
    grid.sort_by(f64::total_cmp);
    grid.dedup();
    Ok(grid)
}

/// The classifiers at every C of a grid, with their iterations and convergence.
type GridModels = Vec<(LinearModel, usize, bool)>;

/// Trains at every C of `grid` once for each distinct set of training clips. Leave-one-fold-out
/// with an inner one repeats sets: held-out fold a with inner fold b trains on the same clips as
/// b with a, so 5 folds need 10 inner trainings, not 20; each runs once and serves both.
fn train_each<'a>(
    meta: &Meta,
    windows: &[Windows],
    solver: Solver,
    grid: &[f64],
    sets: impl Iterator<Item = &'a Vec<usize>>,
) -> Result<HashMap<Vec<usize>, GridModels>> {
    let mut distinct: Vec<&Vec<usize>> = sets.collect();
    distinct.sort();
    distinct.dedup();
    distinct
        .par_iter()
        .map(|&clips| -> Result<(Vec<usize>, GridModels)> {
            let examples = training_examples(meta, windows, clips)?;
            let models = train_grid(&examples, solver, grid)
                .with_context(|| format!("training on {} clips of the training folds", clips.len()))?;
            Ok((clips.clone(), models))
        })
        .collect()
}

/// Every C's mean accuracy over the inner folds, from the classifiers [`train_each`] trained.
fn score_grid(
    meta: &Meta,
    windows: &[Windows],
    splits: &[InnerSplit],
    trained: &HashMap<Vec<usize>, GridModels>,
    grid: &[f64],
) -> CChoice {
    let results: Vec<Vec<(f64, bool)>> = splits
        .iter()
        .map(|split| {
            trained[&split.train]
                .iter()
                .map(|(model, _, converged)| {
                    let correct = split
                        .test
                        .iter()
                        .filter(|&&i| {
                            let w = &windows[i];
                            model.predict_clip((0..w.count).map(|j| w.row(j))) == meta.clips[i].class
                        })
                        .count();
                    (correct as f64 / split.test.len() as f64, *converged)
                })
                .collect()
        })
        .collect();
    let scores = grid
        .iter()
        .enumerate()
        .map(|(g, &c)| (c, results.iter().map(|r| r[g].0).sum::<f64>() / splits.len() as f64))
        .collect();
    let capped = grid
        .iter()
        .enumerate()
        .filter_map(|(g, &c)| {
            let n = results.iter().filter(|r| !r[g].1).count();
            (n > 0).then_some((c, n))
        })
        .collect();
    CChoice { scores, inner_folds: splits.iter().map(|s| s.fold).collect(), capped }
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
fn train(examples: &Examples, solver: Solver, c: f64) -> Result<(LinearModel, usize, bool)> {
    Ok(train_grid(examples, solver, &[c])?.remove(0))
}

/// [`train`] at every C of a grid.
fn train_grid(examples: &Examples, solver: Solver, grid: &[f64]) -> Result<Vec<(LinearModel, usize, bool)>> {
    Ok(match solver.kind {
        ClassifierKind::Svm => {
            let defaults = SvmOptions::new(grid[0]);
            let opts = SvmOptions { max_iter: solver.max_iter.unwrap_or(defaults.max_iter), ..defaults };
            svm::train_grid(examples, &opts, grid)?
                .into_iter()
                .map(|t| {
                    let most = t.iterations.iter().copied().max().unwrap_or(0);
                    (t.model, most, most < opts.max_iter)
                })
                .collect()
        }
        ClassifierKind::Softmax => {
            let defaults = SoftmaxOptions::new(grid[0]);
            let opts = SoftmaxOptions { max_iter: solver.max_iter.unwrap_or(defaults.max_iter), ..defaults };
            grid.iter()
                .map(|&c| {
                    let t = softmax::train(examples, &SoftmaxOptions { c, ..opts })?;
                    Ok((t.model, t.iterations, t.iterations < opts.max_iter))
                })
                .collect::<Result<_>>()?
        }
    })
}
