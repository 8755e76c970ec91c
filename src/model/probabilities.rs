//! A head's logits as probabilities, on the CPU: what `predict`, `teach` and a labeled run's
//! held-out fold read back from the GPU and turn into classes.

/// Softmax over channels of each column of row-major `[channels, steps]` logits: one
/// probability vector per step. Computed in f64 after subtracting the column's maximum.
pub fn softmax_columns(logits: &[f32], channels: usize, steps: usize) -> Vec<Vec<f32>> {
    (0..steps)
        .map(|t| {
            let column: Vec<f64> = (0..channels).map(|c| f64::from(logits[c * steps + t])).collect();
            let max = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = column.iter().map(|z| (z - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            exp.iter().map(|e| (e / sum) as f32).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_columns_normalise_each_step() {
        // [3 classes, 2 steps]: column 0 is (0, 0, ln 2), column 1 is huge and equal.
        let logits = [0.0, 1000.0, 0.0, 1000.0, 2f32.ln(), 1000.0];
        let p = softmax_columns(&logits, 3, 2);
        assert!((p[0][2] - 0.5).abs() < 1e-6 && (p[0][0] - 0.25).abs() < 1e-6);
        assert!(p[1].iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-6));
    }
}
