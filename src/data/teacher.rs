//! Teacher arrays: `.npy` float32 `[rows, classes]`, one probability row per 5 s of the clip,
//! checked to be real distributions before any training starts.

use std::fs::File;
use std::path::Path;

use npyz::Order;

use super::npy;
use super::problem::Problem;

/// Samples of one teacher row: the 5 s (a video frame every 5 s, as the paper sampled) the
/// trainer pairs with an output step.
pub const ROW_SAMPLES: usize = 5 * super::SAMPLE_RATE as usize;

/// How far a row's sum may be from 1 (teachers are stored as float32 softmax outputs).
pub const SUM_TOLERANCE: f32 = 1e-3;

/// A validated teacher array, row-major `[rows, classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Teacher {
    pub rows: usize,
    pub classes: usize,
    pub data: Vec<f32>,
}

/// Reads `path` and checks its shape (2-D, at least one row, and `classes` columns when given:
/// without, the array's width is the teacher's) and every row (finite, non-negative, summing to 1
/// within [`SUM_TOLERANCE`]); all bad rows are reported.
pub fn read(path: &Path, classes: Option<usize>) -> Result<Teacher, Vec<Problem>> {
    let one = |reason: String| vec![Problem::new(path, reason)];
    let file = File::open(path).map_err(|e| one(format!("cannot open teacher array ({e})")))?;
    let npy = npy::open(file).map_err(one)?;
    let shape = npy.shape().to_vec();
    let fortran = npy.order() == Order::Fortran;
    if shape.len() != 2 {
        return Err(one(format!("shape {shape:?}: expected a 2-D array [rows, classes]")));
    }
    let (rows, cols) = (shape[0] as usize, shape[1] as usize);
    if let Some(classes) = classes.filter(|&c| c != cols) {
        return Err(one(format!("shape {shape:?}: expected {classes} classes per row, found {cols}")));
    }
    let classes = cols;
    if classes == 0 {
        return Err(one(format!("shape {shape:?}: expected at least one class")));
    }
    if rows == 0 {
        return Err(one(format!("shape {shape:?}: expected at least one row")));
    }
    let dtype = npy.dtype().descr();
    // float64 arrays (numpy's default) are accepted too: probabilities lose nothing in float32.
    let stored: Vec<f32> = match npy.try_data::<f32>() {
        Ok(r) => r.collect::<std::io::Result<Vec<f32>>>(),
        Err(npy) => match npy.try_data::<f64>() {
            Ok(r) => r.map(|v| v.map(|v| v as f32)).collect::<std::io::Result<Vec<f32>>>(),
            Err(_) => return Err(one(format!("dtype {dtype}: expected float32 ('<f4')"))),
        },
    }
    .map_err(|e| one(format!("cannot read the data ({e})")))?;
    let data = if fortran {
        (0..rows * classes).map(|i| stored[(i % classes) * rows + i / classes]).collect()
    } else {
        stored
    };
    let problems: Vec<Problem> = data
        .chunks_exact(classes)
        .enumerate()
        .filter_map(|(r, row)| row_problem(row).map(|reason| Problem::at_row(path, r, reason)))
        .collect();
    if problems.is_empty() {
        Ok(Teacher { rows, classes, data })
    } else {
        Err(problems)
    }
}

/// Why `row` is not a probability distribution, if it is not.
pub fn row_problem(row: &[f32]) -> Option<String> {
    if let Some(c) = row.iter().position(|v| !v.is_finite()) {
        return Some(format!("class {c} is {}: expected finite probabilities", row[c]));
    }
    if let Some(c) = row.iter().position(|&v| v < 0.0) {
        return Some(format!("class {c} is {}: expected non-negative probabilities", row[c]));
    }
    let sum: f64 = row.iter().map(|&v| v as f64).sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE as f64 {
        return Some(format!("sums to {sum:.6}: expected 1 within {SUM_TOLERANCE}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::row_problem;

    #[test]
    fn rows_must_be_distributions() {
        assert_eq!(row_problem(&[0.25, 0.75]), None);
        assert_eq!(row_problem(&[0.2505, 0.75]), None);
        assert!(row_problem(&[0.3, 0.75]).unwrap().contains("sums to 1.05"));
        assert!(row_problem(&[f32::NAN, 1.0]).unwrap().contains("class 0 is NaN"));
        assert!(row_problem(&[1.0, f32::INFINITY]).unwrap().contains("finite"));
        assert!(row_problem(&[1.5, -0.5]).unwrap().contains("class 1 is -0.5: expected non-negative"));
    }
}
