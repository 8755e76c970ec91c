//! Any audio file to what SoundNet hears: decoded (symphonia: WAV, MP3, FLAC, Ogg Vorbis) and
//! checked (`audio_checks`: a damaged file is an error, never a shorter or louder clip), mixed to
//! mono as the mean of the channels, resampled to 22,050 Hz (rubato's FFT resampler), and scaled
//! from [-1, 1] to [-256, 256].

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::audio_checks as checks;
use super::contain::contain;
use super::wav_header;
use super::{SAMPLE_RATE, SCALE};

/// A decoded file before resampling: mono samples in [-1, 1] at the file's own rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub rate: u32,
    pub channels: usize,
    pub mono: Vec<f32>,
}

/// A file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}: {reason}", file.display())]
pub struct AudioError {
    pub file: PathBuf,
    pub reason: String,
}

/// Decodes, mixes, resamples and scales `path`; a file that decodes to no samples is an error.
pub fn load(path: &Path) -> Result<Vec<f32>, AudioError> {
    let decoded = decode(path)?;
    let fail = |reason: String| AudioError { file: path.to_path_buf(), reason };
    let mut samples = resample(&decoded.mono, decoded.rate).map_err(fail)?;
    if samples.is_empty() {
        return Err(fail(format!(
            "{} samples at {} Hz is shorter than one sample at {SAMPLE_RATE} Hz",
            decoded.mono.len(),
            decoded.rate
        )));
    }
    for s in &mut samples {
        *s *= SCALE;
    }
    Ok(samples)
}

/// Decodes the default track of `path` and mixes it to mono. The file is refused (see
/// `wav_header` and `audio_checks`) when its header announces an implausible rate, channel count,
/// sample width or length, when a sample is not finite or far beyond full scale, when a packet
/// fails to decode after audio has started, and when it holds fewer frames than its header
/// announces. A panic in the decoder on a file no check foresaw is this file's error, so the
/// files beside it still decode.
pub fn decode(path: &Path) -> Result<Decoded, AudioError> {
    let fail = |reason: String| AudioError { file: path.to_path_buf(), reason };
    wav_header::check(path).map_err(fail)?;
    contain(|| decode_checked(path)).unwrap_or_else(|panic| Err(fail(format!("the decoder failed: {panic}"))))
}

fn decode_checked(path: &Path) -> Result<Decoded, AudioError> {
    let fail = |reason: String| AudioError { file: path.to_path_buf(), reason };
    let file = File::open(path).map_err(|e| fail(format!("cannot open audio file ({e})")))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Gapless trims the encoder delay and padding of MP3/AAC, so lengths match the source.
    let format_options = FormatOptions { enable_gapless: true, ..Default::default() };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_options, &MetadataOptions::default())
        .map_err(|e| fail(format!("not a readable WAV, MP3, FLAC or Ogg Vorbis file ({e})")))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| fail("no audio track".into()))?;
    let track_id = track.id;
    let params = &track.codec_params;
    if let Some(rate) = params.sample_rate {
        checks::check_rate(rate).map_err(fail)?;
        if let Some(frames) = params.n_frames {
            checks::check_length(frames, rate, "its header announces").map_err(fail)?;
        }
    }
    let announced = checks::announced_frames(params);
    let mut decoder = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| fail(format!("unsupported codec ({e})")))?;

    let mut mono = Vec::new();
    let mut spec: Option<SignalSpec> = None;
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    // A decode error before any audio, kept to explain a file that never decodes.
    let mut error_before_audio = None;
    // Where the stream is, for messages: seconds once the rate is known, else frames.
    let at = |frames: usize, spec: Option<SignalSpec>| match spec {
        Some(s) => format!("{:.2} s", checks::seconds(frames as u64, s.rate)),
        None => format!("frame {frames}"),
    };
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // How every format ends; a file cut short ends the same way, which the frame count
            // against the header's catches below.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(fail(format!("cannot read the stream at {} ({e})", at(mono.len(), spec)))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(b) => b,
            // An MP3 cut from a longer stream can open with frames that do not decode; skipping
            // them loses a few ms. Once audio has started, a frame that fails is corruption.
            Err(SymphoniaError::DecodeError(e)) if mono.is_empty() => {
                error_before_audio.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(fail(format!("decode error at {}: {e}", at(mono.len(), spec)))),
        };
        let this = *buffer.spec();
        if spec.is_none() {
            checks::check_rate(this.rate).map_err(fail)?;
        }
        if *spec.get_or_insert(this) != this {
            return Err(fail(format!("the stream changes rate or channels at {}", at(mono.len(), spec))));
        }
        let channels = this.channels.count();
        let buf = interleaved.get_or_insert_with(|| SampleBuffer::new(buffer.capacity() as u64, this));
        if buf.capacity() < buffer.capacity() * channels {
            *buf = SampleBuffer::new(buffer.capacity() as u64, this);
        }
        buf.copy_interleaved_ref(buffer);
        checks::check_samples(buf.samples(), channels, mono.len() as u64, this.rate).map_err(fail)?;
        let inv = 1.0 / channels as f32;
        mono.extend(buf.samples().chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * inv));
        // Bounds memory where the header gave no length to refuse up front.
        checks::check_length(mono.len() as u64, this.rate, "decodes to over").map_err(fail)?;
    }
    let Some(spec) = spec.filter(|_| !mono.is_empty()) else {
        return Err(fail(match error_before_audio {
            Some(e) => format!("no audio samples (every packet failed to decode: {e})"),
            None => "no audio samples".into(),
        }));
    };
    checks::check_complete(mono.len() as u64, announced, spec.rate).map_err(fail)?;
    Ok(Decoded { rate: spec.rate, channels: spec.channels.count(), mono })
}

/// Resamples mono `samples` from `rate` to 22,050 Hz; the output has round(len * 22050 / rate)
/// samples and is aligned with the input (the resampler's delay is removed).
pub fn resample(samples: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == 0 {
        return Err("sample rate 0".into());
    }
    if rate == SAMPLE_RATE {
        return Ok(samples.to_vec());
    }
    let (len, out_rate, in_rate) = (samples.len() as u64, SAMPLE_RATE as u64, rate as u64);
    let want = ((len * out_rate + in_rate / 2) / in_rate) as usize;
    let mut resampler = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, 4096, 2, 1)
        .map_err(|e| format!("cannot resample from {rate} Hz ({e})"))?;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(want + delay + resampler.output_frames_max());
    let mut pos = 0;
    // Past the input, zero-padded chunks flush the filter's delay until `want` samples are out.
    while out.len() < want + delay {
        let need = resampler.input_frames_next();
        let chunk = if pos + need <= samples.len() {
            resampler.process(&[&samples[pos..pos + need]], None)
        } else if pos < samples.len() {
            resampler.process_partial(Some(&[&samples[pos..]]), None)
        } else {
            resampler.process_partial(None::<&[&[f32]]>, None)
        }
        .map_err(|e| format!("resampling from {rate} Hz failed ({e})"))?;
        pos += need;
        out.extend_from_slice(&chunk[0]);
    }
    out.drain(..delay);
    out.truncate(want);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampled_length_is_rounded_ratio() {
        for (len, rate, want) in [(44_100, 44_100, 22_050), (1000, 48_000, 459), (7, 8000, 19), (1, 96_000, 0)] {
            let x = vec![0.25f32; len];
            assert_eq!(resample(&x, rate).unwrap().len(), want, "len {len} at {rate} Hz");
        }
        assert_eq!(resample(&[0.5; 100], 22_050).unwrap(), vec![0.5; 100]);
    }

    #[test]
    fn resampling_keeps_a_constant_away_from_the_edges() {
        let y = resample(&vec![0.5f32; 48_000], 48_000).unwrap();
        for (i, v) in y.iter().enumerate().skip(200).take(y.len() - 400) {
            assert!((v - 0.5).abs() < 1e-3, "sample {i}: {v}");
        }
    }
}
