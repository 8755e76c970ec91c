//! What is wrong with a dataset, said so that the file can be found and fixed.

use std::fmt;
use std::path::PathBuf;

/// One problem: the file, the array row when it concerns one row, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub file: PathBuf,
    pub row: Option<usize>,
    pub reason: String,
}

impl Problem {
    pub fn new(file: impl Into<PathBuf>, reason: impl Into<String>) -> Problem {
        Problem { file: file.into(), row: None, reason: reason.into() }
    }

    pub fn at_row(file: impl Into<PathBuf>, row: usize, reason: impl Into<String>) -> Problem {
        Problem { file: file.into(), row: Some(row), reason: reason.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row {
            Some(row) => write!(f, "{}: row {row}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// Every problem found while validating a dataset (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub dataset: PathBuf,
    pub problems: Vec<Problem>,
}

/// Problems printed before the rest are summarised as a count, so a wholly broken dataset
/// still gives a readable message; all of them stay in `problems`.
const SHOWN: usize = 50;

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dataset {} has {} problem(s):", self.dataset.display(), self.problems.len())?;
        for p in self.problems.iter().take(SHOWN) {
            write!(f, "\n  {p}")?;
        }
        if self.problems.len() > SHOWN {
            write!(f, "\n  ... and {} more", self.problems.len() - SHOWN)?;
        }
        Ok(())
    }
}
