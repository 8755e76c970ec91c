//! A 2-D t-SNE map of the clips: each clip's layer features averaged over time (one `[C]` point
//! per clip), embedded with the `bhtsne` crate's exact t-SNE (a few hundred clips need no
//! Barnes-Hut approximation).

use anyhow::{ensure, Result};
use bhtsne::tSNE;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::eval::{Features, Pool};

/// The perplexity used when there are enough clips (scikit-learn's default); fewer clips get
/// the largest the crate accepts, (n - 1) / 3.
const PERPLEXITY: usize = 30;
/// The fewest clips t-SNE can place (perplexity 1).
pub const MIN_CLIPS: usize = 4;

/// The 2-D t-SNE coordinates of each clip, in input order. The start is seeded (the crate's own
/// random start is not), but the crate sums in parallel threads, so two runs can still give
/// different (equally valid) maps.
pub fn embed(features: &[Features], seed: u64) -> Result<Vec<[f64; 2]>> {
    let n = features.len();
    ensure!(n >= MIN_CLIPS, "a t-SNE map needs at least {MIN_CLIPS} clips, there are {n}");
    let points: Vec<Vec<f32>> = features.iter().map(|f| Pool::Mean.apply(f)).collect();
    let rows: Vec<&[f32]> = points.iter().map(|p| p.as_slice()).collect();
    let perplexity = PERPLEXITY.min((n - 1) / 3);
    // The original t-SNE's start: N(0, 1e-4^2) for every coordinate.
    let normal = Normal::new(0.0, 1e-4).expect("a valid normal");
    let mut rng = StdRng::seed_from_u64(seed);
    let start: Vec<f64> = (0..n * 2).map(|_| normal.sample(&mut rng)).collect();
    let mut tsne: tSNE<f64, &[f32]> = tSNE::new(&rows);
    tsne.perplexity(perplexity as f64)
        .initial_embedding(start)
        .exact(|a, b| a.iter().zip(b.iter()).map(|(&x, &y)| f64::from(x - y).powi(2)).sum());
    Ok(tsne.embedding().chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}
