//! A single-layer softmax classifier (multinomial logistic regression), the probe's alternative to
//! the SVM. With `n` examples it minimises
//!
//!   F(W, b) = 1/n sum_i [logsumexp(W x_i + b) - (W x_i + b)_{y_i}] + 1/(2 C n) ||W||^2,
//!
//! which is scikit-learn's `LogisticRegression(C)` objective divided by C n: the same C means the
//! same thing in both, and in the SVM (a smaller C regularises more). The bias is not regularised.
//!
//! Full-batch gradient descent in f64, accelerated (Nesterov/FISTA momentum) with O'Donoghue and
//! Candès' gradient restart, which keeps the speed of momentum without its oscillation. The step
//! is 1/L with L = sigma_max(X~)^2 / (2n) + 1/(C n), a bound on F's curvature: the Hessian of
//! the cross-entropy with respect to the logits is at most 1/2 (Böhning 1992), and sigma_max(X~),
//! the largest singular value of the examples with the bias feature, comes from power iteration.

use anyhow::{ensure, Result};

use super::linear::{dot, Examples, LinearModel};

/// Solver settings; [`SoftmaxOptions::new`] gives the defaults for a given C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxOptions {
    pub c: f64,
    /// Stop when no gradient entry exceeds `tol` in magnitude (scikit-learn's lbfgs `gtol`, on the
    /// same per-example objective).
    pub tol: f64,
    /// Gradient steps; reaching it means `tol` was not.
    pub max_iter: usize,
}

impl SoftmaxOptions {
    pub fn new(c: f64) -> SoftmaxOptions {
        SoftmaxOptions { c, tol: 1e-4, max_iter: 3000 }
    }
}

/// A softmax classifier and the gradient steps its training took.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedSoftmax {
    pub model: LinearModel,
    pub iterations: usize,
}

/// Trains on every class present in `examples`.
pub fn train(examples: &Examples, opts: &SoftmaxOptions) -> Result<TrainedSoftmax> {
    ensure!(opts.c > 0.0 && opts.c.is_finite(), "C is {}: expected a positive finite number", opts.c);
    let classes = examples.classes();
    ensure!(classes.len() >= 2, "the training examples hold {} class(es): softmax needs at least two", classes.len());
    let problem = Problem::new(examples, &classes, opts.c);
    let step = 1.0 / problem.lipschitz();
    let size = classes.len() * (examples.dim + 1);
    let (mut w, mut v) = (vec![0.0; size], vec![0.0; size]);
    let mut t = 1.0_f64;
    let mut iterations = 0;
    while iterations < opts.max_iter {
        let (_, g) = problem.objective(&v);
        if g.iter().all(|g| g.abs() <= opts.tol) {
            w = v;
            break;
        }
        let next: Vec<f64> = v.iter().zip(&g).map(|(v, g)| v - step * g).collect();
        let moved: Vec<f64> = next.iter().zip(&w).map(|(n, w)| n - w).collect();
        // The gradient points along the last move: momentum is taking the iterate uphill, so restart it.
        let (t_next, momentum) = if dot(&g, &moved) > 0.0 {
            (1.0, 0.0)
        } else {
            let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            (t_next, (t - 1.0) / t_next)
        };
        v = next.iter().zip(&moved).map(|(n, d)| n + momentum * d).collect();
        w = next;
        t = t_next;
        iterations += 1;
    }
    Ok(TrainedSoftmax { model: LinearModel { classes, dim: examples.dim, weights: w }, iterations })
}

/// The examples in f64 with the bias feature 1 appended, and labels mapped to rows of W.
pub struct Problem {
    dim: usize,
    x: Vec<f64>,
    /// Each example's row of W (its class's position in `classes`).
    rows: Vec<usize>,
    classes: usize,
    /// 1 / (C n), the weights' L2 coefficient.
    lambda: f64,
}

impl Problem {
    pub fn new(examples: &Examples, classes: &[usize], c: f64) -> Problem {
        let rows = examples.y.iter().map(|y| classes.binary_search(y).expect("classes of these labels")).collect();
        let mut x = Vec::with_capacity(examples.len() * (examples.dim + 1));
        for row in examples.x.chunks_exact(examples.dim) {
            x.extend(row.iter().map(|&v| f64::from(v)));
            x.push(1.0);
        }
        Problem { dim: examples.dim, x, rows, classes: classes.len(), lambda: 1.0 / (c * examples.len() as f64) }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * (self.dim + 1)..(i + 1) * (self.dim + 1)]
    }

    /// F at `w` (`classes` rows of `dim + 1`, bias last) and its gradient.
    pub fn objective(&self, w: &[f64]) -> (f64, Vec<f64>) {
        let (dim, n) = (self.dim, self.rows.len() as f64);
        let mut grad = vec![0.0; w.len()];
        let mut loss = 0.0;
        let mut z = vec![0.0; self.classes];
        for (i, &target) in self.rows.iter().enumerate() {
            let x = self.row(i);
            for (k, z) in z.iter_mut().enumerate() {
                *z = dot(x, &w[k * (dim + 1)..(k + 1) * (dim + 1)]);
            }
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|z| (z - max).exp()).sum();
            loss += max + sum.ln() - z[target];
            for (k, &zk) in z.iter().enumerate() {
                let d = ((zk - max).exp() / sum - if k == target { 1.0 } else { 0.0 }) / n;
                let gk = &mut grad[k * (dim + 1)..(k + 1) * (dim + 1)];
                gk.iter_mut().zip(x).for_each(|(g, &x)| *g += d * x);
            }
        }
        loss /= n;
        for k in 0..self.classes {
            for j in 0..dim {
                let i = k * (dim + 1) + j;
                loss += 0.5 * self.lambda * w[i] * w[i];
                grad[i] += self.lambda * w[i];
            }
        }
        (loss, grad)
    }

    /// An upper bound on the curvature of F: sigma_max^2 / (2n) + lambda, with sigma_max^2 the
    /// largest eigenvalue of X~^T X~ from power iteration, raised by 10% because power iteration
    /// approaches it from below.
    fn lipschitz(&self) -> f64 {
        let dim = self.dim;
        let mut v = vec![1.0 / ((dim + 1) as f64).sqrt(); dim + 1];
        let mut eigen = 0.0;
        for _ in 0..50 {
            let mut next = vec![0.0; dim + 1];
            for i in 0..self.rows.len() {
                let x = self.row(i);
                let xv = dot(x, &v);
                next.iter_mut().zip(x).for_each(|(n, &x)| *n += xv * x);
            }
            eigen = dot(&next, &next).sqrt();
            if eigen == 0.0 {
                break;
            }
            v = next.into_iter().map(|n| n / eigen).collect();
        }
        1.1 * eigen / (2.0 * self.rows.len() as f64) + self.lambda
    }
}
