//! The fields of a WAV file's `fmt ` chunk that the decoder divides by or sizes buffers from,
//! checked before the decoder opens the file: symphonia's WAV reader panics on a rate of 0 and
//! overflows on an ADPCM block smaller than its preamble, and its PCM decoder overruns its buffer
//! when a block holds more than one frame. A file that is not RIFF WAVE is left to the decoder.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::audio_checks;

const PCM: u16 = 0x0001;
const ADPCM_MS: u16 = 0x0002;
const IEEE_FLOAT: u16 = 0x0003;
const ALAW: u16 = 0x0006;
const MULAW: u16 = 0x0007;
const ADPCM_IMA: u16 = 0x0011;
const EXTENSIBLE: u16 = 0xfffe;

/// The most channels the decoder maps to speaker positions.
const MAX_CHANNELS: u16 = 32;

/// Refuses a RIFF WAVE file whose format chunk announces no channels, an implausible rate, no
/// sample width or a block that does not fit its channels; Ok for any other file, which the
/// decoder then reads and judges.
pub fn check(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot open audio file ({e})"))?;
    let Some(fmt) = format_chunk(&mut BufReader::new(file)) else { return Ok(()) };
    check_format(&fmt)
}

/// The `fmt ` chunk's fields, as far as the checks need them.
struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    block_align: u16,
    bits: u16,
}

/// The format chunk of a RIFF WAVE stream, None when the stream is not one or ends before it
/// (the decoder's own error then says why).
fn format_chunk(r: &mut (impl Read + Seek)) -> Option<Format> {
    let mut head = [0u8; 12];
    r.read_exact(&mut head).ok()?;
    if &head[..4] != b"RIFF" || &head[8..] != b"WAVE" {
        return None;
    }
    loop {
        let mut chunk = [0u8; 8];
        r.read_exact(&mut chunk).ok()?;
        let len = u32::from_le_bytes(chunk[4..].try_into().unwrap());
        match &chunk[..4] {
            b"fmt " => {
                // 16 bytes of WAVEFORMAT, then for the extensible format the sub-format's tag at 24.
                let mut body = vec![0u8; len.min(40) as usize];
                r.read_exact(&mut body).ok()?;
                let u16_at = |i: usize| Some(u16::from_le_bytes(body.get(i..i + 2)?.try_into().ok()?));
                let u32_at = |i: usize| Some(u32::from_le_bytes(body.get(i..i + 4)?.try_into().ok()?));
                let mut tag = u16_at(0)?;
                if tag == EXTENSIBLE {
                    tag = u16_at(24).unwrap_or(EXTENSIBLE);
                }
                return Some(Format {
                    tag,
                    channels: u16_at(2)?,
                    rate: u32_at(4)?,
                    block_align: u16_at(12)?,
                    bits: u16_at(14)?,
                });
            }
            b"data" => return None,
            // Chunks are padded to an even length.
            _ => r.seek(SeekFrom::Current(i64::from(len) + i64::from(len & 1))).ok()?,
        };
    }
}

fn check_format(f: &Format) -> Result<(), String> {
    if !(1..=MAX_CHANNELS).contains(&f.channels) {
        return Err(format!("the WAV header says {} channels: expected 1 to {MAX_CHANNELS}", f.channels));
    }
    audio_checks::check_rate(f.rate)?;
    let bad_block = |need: String| {
        Err(format!(
            "the WAV header's block size {} bytes does not fit {} channels of {} bits ({need})",
            f.block_align, f.channels, f.bits
        ))
    };
    let channels = u32::from(f.channels);
    match f.tag {
        PCM | IEEE_FLOAT | ALAW | MULAW => {
            // A-law and mu-law are one byte a sample whatever the header's width says.
            let bytes = if matches!(f.tag, ALAW | MULAW) { 1 } else { u32::from(f.bits).div_ceil(8) };
            if bytes == 0 {
                return Err("the WAV header says 0 bits per sample".into());
            }
            if u32::from(f.block_align) != channels * bytes {
                return bad_block(format!("one frame is {} bytes", channels * bytes));
            }
        }
        // Each block opens with a preamble per channel (7 bytes for Microsoft ADPCM, 4 for IMA).
        ADPCM_MS | ADPCM_IMA => {
            let preamble = if f.tag == ADPCM_MS { 7 } else { 4 };
            if u32::from(f.block_align) <= channels * preamble {
                return bad_block(format!("each block needs more than {} bytes of preamble", channels * preamble));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(channels: u16, rate: u32, block_align: u16, bits: u16) -> Format {
        Format { tag: PCM, channels, rate, block_align, bits }
    }

    #[test]
    fn fields_the_decoder_divides_by_are_checked() {
        assert_eq!(check_format(&pcm(2, 44_100, 4, 16)), Ok(()));
        assert!(check_format(&pcm(1, 0, 2, 16)).unwrap_err().starts_with("sample rate 0 Hz"));
        assert_eq!(
            check_format(&pcm(0, 22_050, 2, 16)).unwrap_err(),
            "the WAV header says 0 channels: expected 1 to 32"
        );
        assert_eq!(check_format(&pcm(1, 22_050, 2, 0)).unwrap_err(), "the WAV header says 0 bits per sample");
        assert_eq!(
            check_format(&pcm(2, 22_050, 0, 16)).unwrap_err(),
            "the WAV header's block size 0 bytes does not fit 2 channels of 16 bits (one frame is 4 bytes)"
        );
        let adpcm = Format { tag: ADPCM_MS, channels: 2, rate: 22_050, block_align: 14, bits: 4 };
        assert!(check_format(&adpcm).unwrap_err().contains("more than 14 bytes of preamble"));
        assert_eq!(check_format(&Format { block_align: 512, ..adpcm }), Ok(()));
    }
}
