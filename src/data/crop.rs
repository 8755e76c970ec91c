//! The training crop: the first `samples` of a clip, tiled from its start when the clip is
//! shorter (as the original SoundNet does), and teacher rows repeated cyclically to `steps`.

use anyhow::{bail, Result};

use super::SAMPLE_RATE;
use crate::model::arch::Arch;

/// How long each example is: `samples` of waveform giving `steps` output steps of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub samples: usize,
    pub steps: usize,
}

impl Crop {
    pub fn new(samples: usize, steps: usize) -> Result<Crop> {
        if samples == 0 || steps == 0 {
            bail!("a crop needs at least one sample and one step, got {samples} samples and {steps} steps");
        }
        Ok(Crop { samples, steps })
    }

    /// The first `seconds` of audio at 22,050 Hz, with the steps `arch` gives for that length.
    pub fn for_arch(arch: &Arch, seconds: f64) -> Result<Crop> {
        let samples = (seconds * SAMPLE_RATE as f64).round() as usize;
        match arch.lengths(samples) {
            Some(l) => Crop::new(samples, l.steps),
            None => bail!(
                "{seconds} s ({samples} samples) is too short for {}: it needs at least {} samples ({:.2} s)",
                arch.name,
                arch.min_samples(),
                arch.min_samples() as f64 / SAMPLE_RATE as f64
            ),
        }
    }
}

/// The first `len` samples of `clip`, repeating it from the start as often as needed.
/// `clip` must not be empty.
pub fn tile(clip: &[f32], len: usize) -> Vec<f32> {
    assert!(!clip.is_empty(), "tiling an empty clip");
    clip.iter().copied().cycle().take(len).collect()
}

/// `steps` rows of `classes` values: row k is row k mod rows of `table` (row-major
/// `[rows, classes]`), so rows repeat cyclically and rows past `steps` are ignored.
pub fn tile_rows(table: &[f32], classes: usize, steps: usize) -> Vec<f32> {
    assert!(classes > 0 && !table.is_empty() && table.len().is_multiple_of(classes), "a table of whole rows");
    let rows = table.len() / classes;
    let mut out = Vec::with_capacity(steps * classes);
    for k in 0..steps {
        let r = k % rows;
        out.extend_from_slice(&table[r * classes..(r + 1) * classes]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::soundnet8;

    #[test]
    fn short_clips_repeat_from_the_start() {
        assert_eq!(tile(&[1.0, 2.0, 3.0], 7), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]);
        assert_eq!(tile(&[1.0, 2.0, 3.0], 2), vec![1.0, 2.0]);
    }

    #[test]
    fn rows_cycle_and_extra_rows_are_ignored() {
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(tile_rows(&t, 2, 4), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0]);
        assert_eq!(tile_rows(&t, 2, 1), vec![0.0, 1.0]);
    }

    #[test]
    fn twenty_seconds_of_soundnet8_is_four_steps() {
        assert_eq!(Crop::for_arch(&soundnet8(), 20.0).unwrap(), Crop { samples: 441_000, steps: 4 });
        let err = Crop::for_arch(&soundnet8(), 5.0).unwrap_err().to_string();
        assert!(err.contains("209374"), "{err}");
    }
}
