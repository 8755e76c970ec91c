//! Linear SVM, one-vs-rest, L2-regularised squared hinge loss: scikit-learn's `LinearSVC` with its
//! defaults (`loss="squared_hinge"`, `penalty="l2"`, `fit_intercept=True`, `intercept_scaling=1`,
//! `tol=1e-4`), the paper's classifier.
//!
//! For each class k, with labels y_i = +1 for class k and -1 otherwise, it solves
//!
//!   min_w  1/2 ||w||^2 + C * sum_i max(0, 1 - y_i w.x_i)^2
//!
//! where x_i carries an extra constant feature 1 whose weight is the bias. As in liblinear, that
//! bias is part of w and so is regularised too. The solver is liblinear's dual coordinate descent
//! for the L2-loss SVM (Hsieh et al., "A Dual Coordinate Descent Method for Large-scale Linear
//! SVM", ICML 2008; `solve_l2r_l1l2_svc` in liblinear): the dual is
//!
//!   min_a  1/2 a^T (Q + I/(2C)) a - sum_i a_i,   a_i >= 0,   Q_ij = y_i y_j x_i.x_j,
//!
//! with w = sum_i a_i y_i x_i kept up to date, so one coordinate step costs two dot products.
//! No Rust crate ships this solver (linfa-svm is a kernel SMO solver with a different loss, and the
//! liblinear bindings need the C library), hence the few lines here. The primal is strictly convex,
//! so this and scikit-learn (which picks liblinear's primal Newton solver when there are more
//! examples than features) reach the same w up to their tolerances.

use anyhow::{ensure, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::linear::{dot, Examples, LinearModel};

/// Solver settings; [`SvmOptions::new`] gives scikit-learn's defaults for a given C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvmOptions {
    pub c: f64,
    /// Stop when the projected gradient's spread over one pass (max - min) is at most this.
    pub tol: f64,
    /// Passes over the data per class; reaching it means `tol` was not.
    pub max_iter: usize,
    /// Seeds the order coordinates are visited in; each class gets its own stream from it.
    pub seed: u64,
}

impl SvmOptions {
    pub fn new(c: f64) -> SvmOptions {
        // max_iter as tools/probe_sklearn.py sets it (scikit-learn's default is 1000).
        SvmOptions { c, tol: 1e-4, max_iter: 10_000, seed: 0 }
    }
}

/// The examples in f64 with the bias feature 1 appended, and each row's squared norm: built once
/// and shared by every binary problem of one-vs-rest.
pub struct Design {
    dim: usize,
    rows: Vec<f64>,
    norms: Vec<f64>,
}

impl Design {
    pub fn new(examples: &Examples) -> Design {
        let dim = examples.dim;
        let mut rows = Vec::with_capacity(examples.len() * (dim + 1));
        for row in examples.x.chunks_exact(dim) {
            rows.extend(row.iter().map(|&v| f64::from(v)));
            rows.push(1.0);
        }
        let norms = rows.chunks_exact(dim + 1).map(|r| dot(r, r)).collect();
        Design { dim, rows, norms }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// Row `i` with its trailing bias feature.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * (self.dim + 1)..(i + 1) * (self.dim + 1)]
    }
}

/// One binary problem's solution.
#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    /// `dim + 1` weights, the bias last.
    pub w: Vec<f64>,
    /// The dual variables, one per example.
    pub alpha: Vec<f64>,
    /// Passes made; `max_iter` means it stopped before reaching `tol`.
    pub iterations: usize,
}

/// Dual coordinate descent with liblinear's shrinking, for labels `y_i` in {-1, +1}.
pub fn solve_binary(x: &Design, y: &[f64], opts: &SvmOptions, rng: &mut StdRng) -> Binary {
    let n = x.len();
    // The L2 loss adds 1/(2C) to the diagonal of Q and leaves a_i unbounded above.
    let diag = 0.5 / opts.c;
    let qd: Vec<f64> = x.norms.iter().map(|q| q + diag).collect();
    let mut w = vec![0.0; x.dim + 1];
    let mut alpha = vec![0.0; n];
    let mut index: Vec<usize> = (0..n).collect();
    let mut active = n;
    // The previous pass's largest projected gradient: a coordinate at a_i = 0 whose gradient
    // exceeds it is unlikely to move, so it leaves the active set until the active set converges,
    // when every coordinate is checked once more (liblinear's shrinking: same optimum, less work).
    let mut pg_max_old = f64::INFINITY;
    let mut iterations = 0;
    while iterations < opts.max_iter {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for i in 0..active {
            let j = rng.random_range(i..active);
            index.swap(i, j);
        }
        let mut s = 0;
        while s < active {
            let i = index[s];
            let row = x.row(i);
            let g = y[i] * dot(&w, row) - 1.0 + alpha[i] * diag;
            let mut pg = g;
            if alpha[i] == 0.0 {
                if g > pg_max_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                pg = g.min(0.0);
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let d = (alpha[i] - old) * y[i];
                w.iter_mut().zip(row).for_each(|(w, &v)| *w += d * v);
            }
            s += 1;
        }
        iterations += 1;
        if pg_max - pg_min <= opts.tol {
            if active == n {
                break;
            }
            active = n;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    Binary { w, alpha, iterations }
}

/// A one-vs-rest SVM and the passes each class's solver made.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedSvm {
    pub model: LinearModel,
    pub iterations: Vec<usize>,
}

/// Trains one binary SVM per class present in `examples`.
pub fn train(examples: &Examples, opts: &SvmOptions) -> Result<TrainedSvm> {
    Ok(train_grid(examples, opts, &[opts.c])?.remove(0))
}

/// One SVM per C of `grid` on the same examples, which are converted once for all of them; each
/// is what [`train`] gives at that C. `opts.c` is ignored.
pub fn train_grid(examples: &Examples, opts: &SvmOptions, grid: &[f64]) -> Result<Vec<TrainedSvm>> {
    for &c in grid {
        ensure!(c > 0.0 && c.is_finite(), "C is {c}: expected a positive finite number");
    }
    let classes = examples.classes();
    ensure!(classes.len() >= 2, "the training examples hold {} class(es): an SVM needs at least two", classes.len());
    let design = Design::new(examples);
    // One binary problem per class, independent of the others (each has its own random stream),
    // so they run in parallel and give the same weights on any number of cores.
    let per_class: Vec<Vec<Binary>> = classes
        .par_iter()
        .map(|&k| {
            let signs: Vec<f64> = examples.y.iter().map(|&t| if t == k { 1.0 } else { -1.0 }).collect();
            grid.iter()
                .map(|&c| {
                    let mut rng = StdRng::seed_from_u64(opts.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    solve_binary(&design, &signs, &SvmOptions { c, ..*opts }, &mut rng)
                })
                .collect::<Vec<Binary>>()
        })
        .collect();
    Ok((0..grid.len())
        .map(|g| {
            let weights = per_class.iter().flat_map(|p| p[g].w.iter().copied()).collect();
            let iterations = per_class.iter().map(|p| p[g].iterations).collect();
            TrainedSvm { model: LinearModel { classes: classes.clone(), dim: examples.dim, weights }, iterations }
        })
        .collect())
}
