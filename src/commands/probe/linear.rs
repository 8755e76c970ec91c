//! What both classifiers share: the training examples they read and the linear model they give,
//! one weight vector and bias per class, scored as `w_k . x + b_k`.

use anyhow::{ensure, Result};

/// Training examples: `len` rows of `dim` features, row-major, and each row's class index.
#[derive(Debug, Clone, PartialEq)]
pub struct Examples {
    pub dim: usize,
    pub x: Vec<f32>,
    pub y: Vec<usize>,
}

impl Examples {
    /// Checks the shapes and that every value is finite, naming the first bad one.
    pub fn new(dim: usize, x: Vec<f32>, y: Vec<usize>) -> Result<Examples> {
        ensure!(dim > 0, "examples of 0 features");
        ensure!(
            !x.is_empty() && x.len().is_multiple_of(dim),
            "{} values is not a positive number of rows of {dim}",
            x.len()
        );
        ensure!(x.len() / dim == y.len(), "{} labels for {} examples", y.len(), x.len() / dim);
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            anyhow::bail!("example {} holds a non-finite value {} at feature {}", i / dim, x[i], i % dim);
        }
        Ok(Examples { dim, x, y })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// The distinct labels, ascending: the classes a model trained on these can tell apart (as
    /// scikit-learn's `classes_`; a class with no training example is never predicted).
    pub fn classes(&self) -> Vec<usize> {
        let mut classes = self.y.clone();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}

/// A trained linear classifier over `classes.len()` classes.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// The class index each row of weights scores.
    pub classes: Vec<usize>,
    pub dim: usize,
    /// `classes.len()` rows of `dim + 1`: the weights, then the bias.
    pub weights: Vec<f64>,
}

impl LinearModel {
    /// Row `k`'s `dim` weights and its bias last.
    pub fn row(&self, k: usize) -> &[f64] {
        &self.weights[k * (self.dim + 1)..(k + 1) * (self.dim + 1)]
    }

    /// The decision values `w_k . x + b_k` of one example, one per entry of `classes`.
    pub fn decision(&self, x: &[f32]) -> Vec<f64> {
        assert_eq!(x.len(), self.dim, "an example of {} features for a model of {}", x.len(), self.dim);
        (0..self.classes.len())
            .map(|k| {
                let w = self.row(k);
                x.iter().zip(w).map(|(&v, &w)| f64::from(v) * w).sum::<f64>() + w[self.dim]
            })
            .collect()
    }

    /// The class of a clip from its windows: the argmax over classes of the windows' mean
    /// decision value (the paper's rule; ties go to the lower class index).
    pub fn predict_clip<'a>(&self, windows: impl IntoIterator<Item = &'a [f32]>) -> usize {
        let mut sum = vec![0.0; self.classes.len()];
        for w in windows {
            sum.iter_mut().zip(self.decision(w)).for_each(|(s, d)| *s += d);
        }
        let best = (0..sum.len()).fold(0, |best, k| if sum[k] > sum[best] { k } else { best });
        self.classes[best]
    }
}

/// `a . b` with four running sums: a single sum waits on each addition before the next (floating
/// point addition is not reassociated for us), four keep the adder busy, several times faster.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot of {} and {} values", a.len(), b.len());
    let mut sums = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            sums[l] += x[l] * y[l];
        }
    }
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}
