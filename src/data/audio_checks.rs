//! What a decoded file must satisfy before its samples are trusted: a plausible sample rate and
//! length (checked on the header, before anything is allocated), finite samples within a sane
//! range, and as many frames as the header announced. Each check returns the reason a file is
//! refused, so a bad file is reported rather than trained on or predicted from.

use symphonia::core::codecs::{CodecParameters, CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3};

/// Sample rates outside this range are taken for a corrupt header: no audio format in use is
/// sampled below 1 kHz or above 384 kHz, and a header claiming 1 Hz would make the resampler
/// produce 22,050 output samples per input sample.
pub const RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// The longest file accepted, in seconds of audio at its own rate: 4 hours. A longer claim in a
/// header is taken for corruption; a longer recording is better split (its decoded samples alone
/// would take gigabytes).
pub const MAX_SECONDS: u64 = 4 * 3600;

/// Decoded samples lie in [-1, 1] at full scale. Integer formats cannot exceed it, and float files
/// hold little headroom in practice, so a magnitude beyond 64 (36 dB over full scale) means a
/// corrupt file or one written in integer units, not audio to learn from.
pub const MAX_MAGNITUDE: f32 = 64.0;

/// `frames` at `rate` Hz, in seconds.
pub fn seconds(frames: u64, rate: u32) -> f64 {
    frames as f64 / f64::from(rate)
}

pub fn check_rate(rate: u32) -> Result<(), String> {
    if RATES.contains(&rate) {
        return Ok(());
    }
    Err(format!(
        "sample rate {rate} Hz: expected {} to {} Hz (a corrupt header, or not audio)",
        RATES.start(),
        RATES.end()
    ))
}

/// Refuses `frames` at `rate` beyond [`MAX_SECONDS`]; `what` says whose length it is.
pub fn check_length(frames: u64, rate: u32, what: &str) -> Result<(), String> {
    if frames <= MAX_SECONDS * u64::from(rate) {
        return Ok(());
    }
    Err(format!(
        "{what} {:.1} hours, more than the {} hours one file may hold (split longer recordings)",
        seconds(frames, rate) / 3600.0,
        MAX_SECONDS / 3600
    ))
}

/// The length the header announces, when it is exact enough to hold the decoded length against:
/// WAV's data chunk and FLAC's stream info are. An MP3 without a LAME tag (which carries the
/// encoder delay) may only have a length estimated from its first frames' bitrate, so it is not.
pub fn announced_frames(params: &CodecParameters) -> Option<u64> {
    let mpeg = [CODEC_TYPE_MP1, CODEC_TYPE_MP2, CODEC_TYPE_MP3].contains(&params.codec);
    params.n_frames.filter(|_| !mpeg || params.delay.is_some())
}

/// Refuses a stream that decoded to fewer frames than its header announced: the file was cut
/// short, or the demuxer skipped corrupt frames (which symphonia does silently).
pub fn check_complete(decoded: u64, announced: Option<u64>, rate: u32) -> Result<(), String> {
    match announced {
        Some(announced) if decoded < announced => {
            let (decoded, announced) = (seconds(decoded, rate), seconds(announced, rate));
            // Enough digits that the two lengths differ (a lost MP3 frame is 26 ms).
            let d = (2..6).find(|&d| format!("{decoded:.d$}") != format!("{announced:.d$}")).unwrap_or(6);
            Err(format!(
                "ends after {decoded:.d$} s of the {announced:.d$} s its header announces (the file is cut short or \
                 corrupt)"
            ))
        }
        _ => Ok(()),
    }
}

/// Refuses interleaved `samples` (`channels` per frame) holding a value that is not finite or is
/// beyond [`MAX_MAGNITUDE`], naming the first: its frame (counted from `first_frame`), time and
/// channel.
pub fn check_samples(samples: &[f32], channels: usize, first_frame: u64, rate: u32) -> Result<(), String> {
    let Some(i) = samples.iter().position(|v| !v.is_finite() || v.abs() > MAX_MAGNITUDE) else { return Ok(()) };
    let frame = first_frame + (i / channels) as u64;
    let channel = if channels > 1 { format!(", channel {} of {channels},", i % channels + 1) } else { String::new() };
    let value = samples[i];
    let at = format!("sample {frame} ({:.3} s){channel} is {value}", seconds(frame, rate));
    Err(if value.is_finite() {
        format!("{at}: float audio lies within [-1, 1], and beyond ±{MAX_MAGNITUDE} it is corrupt or in integer units")
    } else {
        format!("{at}: audio samples must be finite")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_samples_are_found_with_frame_channel_and_time() {
        assert_eq!(check_samples(&[0.5, -1.0, 63.9], 1, 0, 8000), Ok(()));
        let nan = check_samples(&[0.0, 0.1, 0.2, f32::NAN], 2, 8000, 8000).unwrap_err();
        assert_eq!(nan, "sample 8001 (1.000 s), channel 2 of 2, is NaN: audio samples must be finite");
        let inf = check_samples(&[f32::NEG_INFINITY], 1, 8, 8000).unwrap_err();
        assert!(inf.starts_with("sample 8 (0.001 s) is -inf: "), "{inf}");
        let big = check_samples(&[0.0, 1000.0], 1, 0, 1000).unwrap_err();
        assert!(big.starts_with("sample 1 (0.001 s) is 1000: float audio lies within [-1, 1]"), "{big}");
    }

    #[test]
    fn implausible_rates_and_lengths_are_refused() {
        assert!(check_rate(1).unwrap_err().contains("sample rate 1 Hz"));
        assert!(check_rate(999).is_err() && check_rate(384_001).is_err());
        assert!(check_rate(1000).is_ok() && check_rate(384_000).is_ok());
        assert!(check_length(4 * 3600 * 8000, 8000, "lasts").is_ok());
        let long = check_length(4 * 3600 * 8000 + 1, 8000, "its header announces").unwrap_err();
        assert!(long.starts_with("its header announces 4.0 hours, more than the 4 hours"), "{long}");
    }

    #[test]
    fn a_short_stream_is_measured_against_its_header() {
        assert_eq!(check_complete(100, None, 100), Ok(()));
        assert_eq!(check_complete(100, Some(100), 100), Ok(()));
        assert_eq!(
            check_complete(248, Some(500), 100).unwrap_err(),
            "ends after 2.48 s of the 5.00 s its header announces (the file is cut short or corrupt)"
        );
        assert!(check_complete(21_935, Some(22_050), 44_100)
            .unwrap_err()
            .starts_with("ends after 0.497 s of the 0.500 s"));
    }
}
