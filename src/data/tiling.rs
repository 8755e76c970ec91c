//! Clips much shorter than the crop, which training repeats many times over to fill it. Tiling a
//! clip a few times is how SoundNet trains on short clips; a clip repeated thousands of times (10
//! samples tiled to 20 s) is more likely a wrong file or sample rate, and trains on a buzz, so the
//! dataset lists them when it is opened.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::crop::Crop;
use super::SAMPLE_RATE;

/// A clip is noted when the crop repeats it more than this many times.
pub const NOTED_REPEATS: usize = 4;

/// Clips named in the note; the rest are counted.
const SHOWN: usize = 10;

/// A clip the crop repeats more than [`NOTED_REPEATS`] times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiled {
    pub file: PathBuf,
    /// The decoded clip's length at 22,050 Hz.
    pub samples: usize,
    /// How many times it is repeated (the last time cut short) to fill the crop.
    pub repeats: usize,
}

impl Tiled {
    /// `Some` when a clip of `samples` is repeated more than [`NOTED_REPEATS`] times in `crop`.
    pub fn check(file: PathBuf, samples: usize, crop: Crop) -> Option<Tiled> {
        let repeats = crop.samples.div_ceil(samples.max(1));
        (repeats > NOTED_REPEATS).then_some(Tiled { file, samples, repeats })
    }
}

/// The note printed when a dataset opens with such clips, naming the first few.
pub fn note(tiled: &[Tiled], crop: Crop) -> Option<String> {
    if tiled.is_empty() {
        return None;
    }
    let seconds = |samples: usize| samples as f64 / f64::from(SAMPLE_RATE);
    let mut s = format!(
        "note: {} clip(s) are repeated more than {NOTED_REPEATS} times to fill the {:.2} s crop (a wrong file or \
         sample rate?):",
        tiled.len(),
        seconds(crop.samples)
    );
    for t in tiled.iter().take(SHOWN) {
        let _ = write!(
            s,
            "\n  {}: {} samples ({:.3} s), repeated {} times",
            t.file.display(),
            t.samples,
            seconds(t.samples),
            t.repeats
        );
    }
    if tiled.len() > SHOWN {
        let _ = write!(s, "\n  ... and {} more", tiled.len() - SHOWN);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clips_repeated_over_four_times_are_noted() {
        let crop = Crop::new(441_000, 4).unwrap();
        assert_eq!(Tiled::check("a".into(), 110_250, crop), None, "5 s in 20 s: 4 times");
        assert_eq!(Tiled::check("b".into(), 110_249, crop).map(|t| t.repeats), Some(5));
        assert_eq!(Tiled::check("c".into(), 10, crop).map(|t| t.repeats), Some(44_100));
        assert_eq!(note(&[], crop), None);
        let many: Vec<Tiled> =
            (0..12).map(|i| Tiled { file: format!("{i}.wav").into(), samples: 10, repeats: 44_100 }).collect();
        let text = note(&many, crop).unwrap();
        assert!(text.starts_with("note: 12 clip(s) are repeated more than 4 times to fill the 20.00 s crop"), "{text}");
        assert!(text.contains("\n  0.wav: 10 samples (0.000 s), repeated 44100 times"), "{text}");
        assert!(!text.contains("10.wav") && text.ends_with("\n  ... and 2 more"), "{text}");
    }
}
