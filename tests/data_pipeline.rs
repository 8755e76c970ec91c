//! The data pipeline: decoding every supported format, refusing damaged audio (non-finite or absurd
//! samples, files cut short or corrupted mid-stream, implausible headers), resampling, mixing,
//! scaling, cropping and the note on clips tiled many times, teacher validation, manifest lines,
//! batch layout and order, the background loader and the demo set.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{temp_dir, write_npy, write_wav, TestDir};

use anyhow::Result;
use sn_wgpu::data::{
    audio, load_batch, teacher, Crop, Dataset, DatasetOptions, DemoDataset, Example, Loader, ManifestDataset, Order,
    ValidationError, OBJECT_CLASSES, SAMPLE_RATE, SCENE_CLASSES,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio").join(name)
}

/// Sign changes in the middle 80% (clear of resampler edges), as a frequency in Hz.
fn frequency(x: &[f32], rate: f64) -> f64 {
    let mid = &x[x.len() / 10..x.len() * 9 / 10];
    let crossings = mid.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    crossings as f64 / 2.0 / (mid.len() as f64 / rate)
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// `rows` distinct valid distributions over `classes`: row r puts 1/2 on class (r * 7) mod C and
/// spreads the rest as (c + 1) weights, so every (row, class) value is recognisable.
fn distributions(rows: usize, classes: usize) -> Vec<f32> {
    rotated_distributions(0, rows, classes)
}

/// The teacher rows `write_item` gives the item `name`: `distributions` rotated by a hash of the
/// name, so no two items of a dataset share a teacher and a batch shows whose rows it holds.
fn teacher_of(name: &str, rows: usize, classes: usize) -> Vec<f32> {
    let hash = name.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    rotated_distributions(hash % classes, rows, classes)
}

fn rotated_distributions(shift: usize, rows: usize, classes: usize) -> Vec<f32> {
    let spread: f64 = (1..=classes).map(|c| c as f64).sum();
    let mut out = Vec::with_capacity(rows * classes);
    for r in 0..rows {
        out.extend((0..classes).map(|c| {
            let c = (c + shift) % classes;
            let peak = if c == (r * 7) % classes { 0.5 } else { 0.0 };
            (peak + 0.5 * (c + 1) as f64 / spread) as f32
        }));
    }
    out
}

/// One dataset item: a DC clip at level `level` (so batches show which item they hold), `seconds`
/// long at 22,050 Hz, and its own teachers of `rows` rows (`teacher_of(name, ..)`).
fn write_item(dir: &Path, name: &str, level: i16, seconds: f64, rows: usize) -> String {
    write_wav(&dir.join(format!("{name}.wav")), SAMPLE_RATE, &vec![level; (seconds * SAMPLE_RATE as f64) as usize]);
    write_npy(
        &dir.join(format!("{name}.objects.npy")),
        &[rows, OBJECT_CLASSES],
        &teacher_of(name, rows, OBJECT_CLASSES),
        false,
    );
    write_npy(
        &dir.join(format!("{name}.scenes.npy")),
        &[rows, SCENE_CLASSES],
        &teacher_of(name, rows, SCENE_CLASSES),
        false,
    );
    format!("{name}.wav,{name}.objects.npy,{name}.scenes.npy\n")
}

fn write_manifest(dir: &Path, lines: &[String]) {
    std::fs::write(dir.join("manifest.csv"), format!("audio,objects,scenes\n{}", lines.concat())).unwrap();
}

/// A folder of `n` good items, item i a DC clip at level 1000 (i + 1).
fn good_dataset(name: &str, n: usize, seconds: f64, rows: usize) -> TestDir {
    let dir = temp_dir(name);
    let lines: Vec<String> =
        (0..n).map(|i| write_item(&dir, &format!("clip{i}"), 1000 * (i as i16 + 1), seconds, rows)).collect();
    write_manifest(&dir, &lines);
    dir
}

fn open(dir: &Path, crop: Crop) -> ManifestDataset {
    ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap().0
}

#[test]
fn every_format_decodes_to_22050_hz_mono_at_scale() {
    // (file, rate, channels, tone Hz, expected peak after mixing and scaling, exact length)
    let cases = [
        ("sine441_44k_stereo.wav", 44_100, 2, 441.0, 0.8 * 0.5 * 256.0, true),
        ("sine500_8k_mono.wav", 8_000, 1, 500.0, 0.99 * 256.0, true),
        ("sine1000_48k.flac", 48_000, 1, 1000.0, 0.5 * 256.0, true),
        // The 64 kbit/s encoding itself lowers the peak: sox decodes this file to 0.479.
        ("sine440_44k.mp3", 44_100, 1, 440.0, 0.479 * 256.0, false),
        ("sine660_32k_stereo.ogg", 32_000, 2, 660.0, 0.5 * 256.0, false),
    ];
    for (name, rate, channels, tone, want_peak, exact) in cases {
        let path = fixture(name);
        let decoded = audio::decode(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((decoded.rate, decoded.channels), (rate, channels), "{name}");
        let x = audio::load(&path).unwrap();
        let want_len = (decoded.mono.len() as f64 * SAMPLE_RATE as f64 / rate as f64).round() as usize;
        assert_eq!(x.len(), want_len, "{name}: resampled length");
        if exact {
            let seconds = if name.contains("stereo") { 0.25 } else { 0.5 };
            assert_eq!(decoded.mono.len(), (seconds * rate as f64) as usize, "{name}: decoded duration");
        }
        let f = frequency(&x, SAMPLE_RATE as f64);
        assert!((f - tone).abs() < 0.02 * tone, "{name}: tone at {f:.1} Hz, expected {tone}");
        let p = peak(&x[x.len() / 10..x.len() * 9 / 10]);
        assert!((p - want_peak).abs() < 0.04 * want_peak, "{name}: peak {p:.1}, expected {want_peak:.1}");
    }
}

#[test]
fn a_44k_sine_resamples_to_the_same_tone_at_22050_hz() {
    let rate = 44_100.0;
    let x: Vec<f32> = (0..44_100).map(|i| (std::f64::consts::TAU * 1000.0 * i as f64 / rate).sin() as f32).collect();
    let y = audio::resample(&x, 44_100).unwrap();
    assert_eq!(y.len(), 22_050);
    // One DFT bin per Hz over one second: all the energy sits in bin 1000.
    let bin = |k: f64| {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (n, v) in y.iter().enumerate() {
            let w = std::f64::consts::TAU * k * n as f64 / 22_050.0;
            re += *v as f64 * w.cos();
            im -= *v as f64 * w.sin();
        }
        (re * re + im * im).sqrt() / (22_050.0 / 2.0)
    };
    assert!((bin(1000.0) - 1.0).abs() < 0.01, "amplitude at 1 kHz: {}", bin(1000.0));
    for k in [500.0, 990.0, 1010.0, 2000.0] {
        assert!(bin(k) < 0.01, "leak at {k} Hz: {}", bin(k));
    }
    // Aligned with the input: the resampled sample n is the input sample 2n.
    for n in (1000..21_000).step_by(997) {
        assert!((y[n] - x[2 * n]).abs() < 1e-3, "sample {n}: {} vs {}", y[n], x[2 * n]);
    }
}

#[test]
fn short_clips_and_teacher_rows_tile() {
    // 0.5 s clips, two teacher rows; a 1.2 s crop with 5 steps repeats both.
    let dir = good_dataset("tile", 1, 0.5, 2);
    let d = open(&dir, Crop::new(26_460, 5).unwrap());
    let e = d.example(0).unwrap();
    assert_eq!(e.waveform.len(), 26_460);
    assert!(e.waveform.iter().all(|&v| v == 1000.0 / 128.0), "a DC clip tiles to a DC crop");
    let rows = teacher_of("clip0", 2, OBJECT_CLASSES);
    for k in 0..5 {
        let r = k % 2;
        assert!(
            e.objects[k * OBJECT_CLASSES..(k + 1) * OBJECT_CLASSES]
                == rows[r * OBJECT_CLASSES..(r + 1) * OBJECT_CLASSES],
            "step {k} is not row {r}"
        );
    }
    // A real tiled clip: a 0.5 s sine repeats from its start.
    let dir = temp_dir("tile-sine");
    let clip: Vec<i16> = (0..11_025).map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16).collect();
    write_wav(&dir.join("a.wav"), SAMPLE_RATE, &clip);
    write_npy(&dir.join("o.npy"), &[5, OBJECT_CLASSES], &distributions(5, OBJECT_CLASSES), false);
    write_npy(&dir.join("s.npy"), &[5, SCENE_CLASSES], &distributions(5, SCENE_CLASSES), false);
    std::fs::write(dir.join("manifest.csv"), "audio,objects,scenes\na.wav,o.npy,s.npy\n").unwrap();
    let e = open(&dir, Crop::new(30_000, 3).unwrap()).example(0).unwrap();
    for (i, v) in e.waveform.iter().enumerate() {
        assert_eq!(*v, clip[i % clip.len()] as f32 / 128.0, "sample {i}");
    }
    // Extra rows beyond the steps are ignored: rows 0, 1, 2 of 5.
    let rows = distributions(5, SCENE_CLASSES);
    assert!(e.scenes == rows[..3 * SCENE_CLASSES], "scenes are rows 0, 1, 2 of the file");
}

#[test]
fn fortran_order_arrays_read_as_rows() {
    let dir = temp_dir("fortran");
    let rows = distributions(3, SCENE_CLASSES);
    let column_major: Vec<f32> = (0..rows.len()).map(|i| rows[(i % 3) * SCENE_CLASSES + i / 3]).collect();
    write_npy(&dir.join("s.npy"), &[3, SCENE_CLASSES], &column_major, true);
    assert!(
        teacher::read(&dir.join("s.npy"), Some(SCENE_CLASSES)).unwrap().data == rows,
        "Fortran order transposed to rows"
    );
}

/// A folder where every item but the first two is broken in one way, and the reason each
/// must be reported with.
fn broken_dataset() -> (TestDir, Vec<(&'static str, &'static str)>) {
    let dir = temp_dir("broken");
    let mut lines = vec![write_item(&dir, "good0", 100, 0.2, 1), write_item(&dir, "good1", 200, 0.2, 1)];
    let mut bad = |name: &str, edit: &dyn Fn(&Path)| {
        lines.push(write_item(&dir, name, 300, 0.2, 3));
        edit(&dir);
    };
    bad("missing_audio", &|d| std::fs::remove_file(d.join("missing_audio.wav")).unwrap());
    bad("empty_audio", &|d| write_wav(&d.join("empty_audio.wav"), SAMPLE_RATE, &[]));
    bad("garbage_audio", &|d| std::fs::write(d.join("garbage_audio.wav"), b"this is not audio at all").unwrap());
    bad("missing_npy", &|d| std::fs::remove_file(d.join("missing_npy.scenes.npy")).unwrap());
    bad("one_d", &|d| {
        write_npy(&d.join("one_d.objects.npy"), &[OBJECT_CLASSES], &distributions(1, OBJECT_CLASSES), false)
    });
    bad("wrong_classes", &|d| {
        write_npy(&d.join("wrong_classes.objects.npy"), &[1, 999], &distributions(1, 999), false)
    });
    bad("zero_rows", &|d| write_npy(&d.join("zero_rows.scenes.npy"), &[0, SCENE_CLASSES], &[], false));
    // 2**63 rows of 401 float32 are more bytes than 64 bits count: unchecked, the count wraps.
    bad("wrapping_shape", &|d| write_npy(&d.join("wrapping_shape.scenes.npy"), &[1 << 63, SCENE_CLASSES], &[], false));
    bad("short_data", &|d| {
        write_npy(&d.join("short_data.objects.npy"), &[3, OBJECT_CLASSES], &distributions(2, OBJECT_CLASSES), false)
    });
    bad("nan_row", &|d| {
        let mut rows = distributions(3, SCENE_CLASSES);
        rows[SCENE_CLASSES + 4] = f32::NAN;
        write_npy(&d.join("nan_row.scenes.npy"), &[3, SCENE_CLASSES], &rows, false);
    });
    bad("inf_row", &|d| {
        let mut rows = distributions(3, OBJECT_CLASSES);
        rows[2 * OBJECT_CLASSES] = f32::INFINITY;
        write_npy(&d.join("inf_row.objects.npy"), &[3, OBJECT_CLASSES], &rows, false);
    });
    bad("negative_row", &|d| {
        let mut rows = distributions(3, OBJECT_CLASSES);
        rows[9] = -0.25;
        rows[10] += 0.25;
        write_npy(&d.join("negative_row.objects.npy"), &[3, OBJECT_CLASSES], &rows, false);
    });
    bad("bad_sum", &|d| {
        let mut rows = distributions(3, SCENE_CLASSES);
        rows[2 * SCENE_CLASSES + 1] += 0.01;
        write_npy(&d.join("bad_sum.scenes.npy"), &[3, SCENE_CLASSES], &rows, false);
    });
    write_manifest(&dir, &lines);
    let expected = vec![
        ("missing_audio.wav", "cannot open audio file"),
        ("empty_audio.wav", "no audio samples"),
        ("garbage_audio.wav", "not a readable WAV, MP3, FLAC or Ogg Vorbis file"),
        ("missing_npy.scenes.npy", "cannot open teacher array"),
        ("one_d.objects.npy", "shape [1000]: expected a 2-D array [rows, classes]"),
        ("wrong_classes.objects.npy", "999 classes per row, but most of the dataset's objects arrays have 1000"),
        ("zero_rows.scenes.npy", "expected at least one row"),
        ("wrapping_shape.scenes.npy", "shape [9223372036854775808, 401] has more values than any file holds"),
        ("short_data.objects.npy", "shape [3, 1000] of '<f4' needs 12000 bytes of data, but the file holds 8000 after"),
        ("nan_row.scenes.npy: row 1: class 4 is NaN: expected finite", ""),
        ("inf_row.objects.npy: row 2: class 0 is inf: expected finite", ""),
        ("negative_row.objects.npy: row 0: class 9 is -0.", "expected non-negative"),
        ("bad_sum.scenes.npy: row 2: sums to 1.01", "expected 1 within 0.001"),
    ];
    (dir, expected)
}

/// A shape whose value count wraps to 0 passed every check and crashed the loader; one larger
/// than the file was read until the data ran out.
#[test]
fn a_teacher_shape_is_held_to_the_bytes_the_file_holds() {
    let dir = temp_dir("npy-shapes");
    let reason = |shape: &[usize], data: &[f32]| {
        let path = dir.join("t.npy");
        write_npy(&path, shape, data, false);
        let problems = teacher::read(&path, None).expect_err("a shape the data does not fill");
        assert_eq!(problems[0].file, path);
        problems[0].reason.clone()
    };
    assert_eq!(reason(&[1 << 63, 2], &[]), "shape [9223372036854775808, 2] has more values than any file holds");
    assert_eq!(
        reason(&[1 << 40, 2], &[]),
        "shape [1099511627776, 2] of '<f4' needs 8796093022208 bytes of data, but the file holds 0 after its header"
    );
    assert_eq!(
        reason(&[1, 2], &[0.5, 0.25, 0.25]),
        "shape [1, 2] of '<f4' needs 8 bytes of data, but the file holds 12 after its header"
    );
    write_npy(&dir.join("t.npy"), &[1, 2], &[0.5, 0.5], false);
    assert_eq!(teacher::read(&dir.join("t.npy"), None).unwrap().data, [0.5, 0.5]);
}

#[test]
fn every_bad_input_is_reported_with_file_row_and_reason() {
    let (dir, expected) = broken_dataset();
    let err =
        ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(Crop::new(1000, 1).unwrap())).unwrap_err();
    let validation = err.downcast_ref::<ValidationError>().expect("a ValidationError");
    assert_eq!(validation.problems.len(), expected.len(), "{err}");
    let message = err.to_string();
    for (what, why) in expected {
        let line = message.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no `{what}` in:\n{message}"));
        assert!(line.contains(why), "`{line}` should say `{why}`");
        assert!(line.contains("manifest line"), "`{line}` should name the manifest line");
    }
}

#[test]
fn manifest_errors_name_the_manifest() {
    let dir = good_dataset("columns", 1, 0.1, 1);
    std::fs::write(dir.join("manifest.csv"), "audio,labels\nclip0.wav,clip0.objects.npy\n").unwrap();
    let crop = Crop::new(100, 1).unwrap();
    let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err().to_string();
    assert!(err.contains("manifest.csv: expected columns audio and objects, scenes or both"), "{err}");

    std::fs::write(dir.join("manifest.csv"), "audio,objects,scenes\nclip0.wav,,clip0.scenes.npy\n").unwrap();
    let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err().to_string();
    assert!(err.contains("manifest.csv: line 2: empty `objects` field"), "{err}");
    // Lines as an editor counts them, past blank lines and in a CRLF file.
    let good = "clip0.wav,clip0.objects.npy,clip0.scenes.npy";
    for text in [
        format!("audio,objects,scenes\n\n{good}\n\nclip0.wav,,clip0.scenes.npy\n"),
        format!("audio,objects,scenes\r\n{good}\r\n\r\nclip0.wav,,clip0.scenes.npy\r\n"),
    ] {
        std::fs::write(dir.join("manifest.csv"), &text).unwrap();
        let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err().to_string();
        let want = if text.contains('\r') { "line 4:" } else { "line 5:" };
        assert!(err.contains(&format!("manifest.csv: {want} empty `objects` field")), "{text:?}: {err}");
    }

    std::fs::write(dir.join("manifest.csv"), "audio,objects,scenes\n").unwrap();
    let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err().to_string();
    assert!(err.contains("no items"), "{err}");

    std::fs::remove_file(dir.join("manifest.csv")).unwrap();
    let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err().to_string();
    assert!(err.contains("manifest.csv: cannot read the manifest"), "{err}");
}

#[test]
fn skip_bad_keeps_the_good_items_and_lists_the_rest() {
    let (dir, expected) = broken_dataset();
    let options = DatasetOptions { skip_bad: true, ..DatasetOptions::new(Crop::new(1000, 1).unwrap()) };
    let (d, skipped) = ManifestDataset::open(&[dir.to_path_buf()], &options).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.audio_path(1), dir.join("good1.wav"));
    assert_eq!(d.example(1).unwrap().waveform[0], 200.0 / 128.0);
    let files: Vec<String> =
        skipped.iter().map(|s| s.file.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for (what, _) in expected {
        let file = what.split(':').next().unwrap();
        assert!(files.iter().any(|f| f == file), "{file} not in skipped {files:?}");
    }
}

/// A 32-bit float mono WAV, as DAWs and numpy/soundfile write them.
fn write_float_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    samples.iter().for_each(|&s| w.write_sample(s).unwrap());
    w.finalize().unwrap();
}

/// A 16-bit mono WAV by hand, whose header claims `rate` and a data chunk of `data_len` bytes
/// whatever `samples` holds.
fn wav_claiming(path: &Path, rate: u32, data_len: u32, samples: &[i16]) {
    wav_by_hand(path, 1, rate, data_len, samples)
}

/// A 16-bit PCM WAV by hand whose header claims `channels`, `rate` and a data chunk of
/// `data_len` bytes whatever `samples` holds.
fn wav_by_hand(path: &Path, channels: u16, rate: u32, data_len: u32, samples: &[i16]) {
    let mut b = Vec::new();
    b.extend(b"RIFF");
    b.extend(36u32.saturating_add(data_len).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(16u32.to_le_bytes());
    b.extend(1u16.to_le_bytes()); // PCM
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend((rate * 2 * u32::from(channels)).to_le_bytes());
    b.extend((2 * channels).to_le_bytes());
    b.extend(16u16.to_le_bytes());
    b.extend(b"data");
    b.extend(data_len.to_le_bytes());
    b.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
    std::fs::write(path, b).unwrap();
}

/// `audio::load`'s error for `path`, checked to name the file.
fn load_error(path: &Path) -> String {
    let err = audio::load(path).expect_err("a bad file must not load");
    assert_eq!(err.file, path, "{err}");
    err.reason
}

#[test]
fn non_finite_and_absurd_float_samples_are_refused_with_the_sample_named() {
    let dir = temp_dir("float-samples");
    let mut x: Vec<f32> = (0..22_050).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
    // Headroom above full scale is normal in float files and is kept.
    x[100] = 1.5;
    write_float_wav(&dir.join("loud.wav"), SAMPLE_RATE, &x);
    assert_eq!(audio::load(&dir.join("loud.wav")).unwrap()[100], 1.5 * 256.0);
    for (name, i, value, want) in [
        ("nan.wav", 4410, f32::NAN, "sample 4410 (0.200 s) is NaN: audio samples must be finite"),
        ("inf.wav", 11_025, f32::INFINITY, "sample 11025 (0.500 s) is inf: audio samples must be finite"),
        ("huge.wav", 2205, 1000.0, "sample 2205 (0.100 s) is 1000: float audio lies within [-1, 1]"),
    ] {
        let mut bad = x.clone();
        bad[i] = value;
        write_float_wav(&dir.join(name), SAMPLE_RATE, &bad);
        let reason = load_error(&dir.join(name));
        assert!(reason.starts_with(want), "{name}: {reason}");
    }

    // Training's validation reports it with the other problems, and --skip-bad leaves it out.
    let mut lines = vec![write_item(&dir, "good", 100, 0.2, 1), write_item(&dir, "nan", 100, 0.2, 1)];
    write_float_wav(&dir.join("nan.wav"), SAMPLE_RATE, &[0.0, 0.25, f32::NAN, 0.0]);
    lines.push(write_item(&dir, "missing", 100, 0.2, 1));
    std::fs::remove_file(dir.join("missing.objects.npy")).unwrap();
    write_manifest(&dir, &lines);
    let crop = Crop::new(1000, 1).unwrap();
    let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err();
    let problems = &err.downcast_ref::<ValidationError>().expect("a ValidationError").problems;
    assert_eq!(problems.len(), 2, "{err}");
    assert_eq!(problems[0].file, dir.join("nan.wav"));
    assert_eq!(problems[0].reason, "sample 2 (0.000 s) is NaN: audio samples must be finite (manifest line 3)");
    let (d, skipped) =
        ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions { skip_bad: true, ..DatasetOptions::new(crop) })
            .unwrap();
    assert_eq!((d.len(), d.audio_path(0)), (1, dir.join("good.wav").as_path()));
    assert_eq!(skipped[0].file, dir.join("nan.wav"));
}

/// A copy of fixture `name` in `dir`, changed by `edit`.
fn damaged_fixture(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(fixture(name)).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn files_cut_short_or_corrupted_mid_stream_are_errors_not_shorter_clips() {
    let dir = temp_dir("damaged");
    // A WAV whose data chunk ends early: a copy cut off part-way through a transfer.
    let wav = dir.join("cut.wav");
    write_wav(&wav, SAMPLE_RATE, &vec![1000; 22_050]);
    let bytes = std::fs::read(&wav).unwrap();
    std::fs::write(&wav, &bytes[..bytes.len() / 2]).unwrap();
    let reason = load_error(&wav);
    assert!(reason.starts_with("ends after 0.") && reason.contains("of the 1.00 s its header announces"), "{reason}");

    // The committed 0.5 s FLAC, cut in half, and with 64 bytes scrambled in its middle (which
    // symphonia's demuxer skips silently: a frame of audio would be lost).
    let flac = "sine1000_48k.flac";
    let cut = damaged_fixture(&dir, flac, |b| b.truncate(b.len() / 2));
    assert_eq!(
        load_error(&cut),
        "ends after 0.17 s of the 0.50 s its header announces (the file is cut short or corrupt)"
    );
    let scrambled = damaged_fixture(&dir, flac, |b| {
        let mid = b.len() / 2;
        b[mid..mid + 64].iter_mut().for_each(|v| *v ^= 0x5a);
    });
    assert_eq!(
        load_error(&scrambled),
        "ends after 0.41 s of the 0.50 s its header announces (the file is cut short or corrupt)"
    );
    // Ogg pages have checksums: a cut or scrambled Ogg Vorbis file does not open.
    let ogg = "sine660_32k_stereo.ogg";
    assert!(load_error(&damaged_fixture(&dir, ogg, |b| b.truncate(b.len() * 9 / 10))).contains("end of stream"));
    let ogg_scrambled = damaged_fixture(&dir, ogg, |b| {
        let at = b.len() * 3 / 4;
        b[at..at + 16].iter_mut().for_each(|v| *v ^= 0x5a);
    });
    assert!(load_error(&ogg_scrambled).contains("crc mismatch"));
}

/// The committed MP3 (21 frames, 0.5 s) behind a LAME "Info" frame, as LAME and ffmpeg write
/// them: it gives the frame count and the encoder delay and padding, so the decoded length is exact.
fn lame_tagged_mp3() -> Vec<u8> {
    let frames = std::fs::read(fixture("sine440_44k.mp3")).unwrap();
    // MPEG-1 layer III, 64 kbit/s, 44.1 kHz, mono: 208-byte frames, 17 bytes of side info.
    assert_eq!(frames[..4], [0xff, 0xfb, 0x50, 0xc4]);
    let mut info = vec![0u8; 208];
    info[..4].copy_from_slice(&frames[..4]);
    let mut tag = b"Info".to_vec();
    tag.extend(1u32.to_be_bytes()); // flags: the frame count follows
    tag.extend(21u32.to_be_bytes());
    tag.extend(b"Lavf58.76");
    // Revision, lowpass, replay gain, flags and bitrate, which the decoder does not need.
    tag.extend([0; 12]);
    // Encoder delay 576 and padding 1566 (12 bits each): 21 * 1152 - 576 - 1566 = 22,050 frames.
    tag.extend(((576u32 << 12) | 1566).to_be_bytes()[1..].iter());
    info[4 + 17..4 + 17 + tag.len()].copy_from_slice(&tag);
    info.extend(frames);
    info
}

#[test]
fn a_tagged_mp3_cut_short_or_missing_a_frame_is_refused() {
    let dir = temp_dir("mp3");
    let intact = dir.join("intact.mp3");
    std::fs::write(&intact, lame_tagged_mp3()).unwrap();
    assert_eq!(audio::decode(&intact).unwrap().mono.len(), 22_050, "0.5 s at 44.1 kHz, exactly");
    let cut = dir.join("cut.mp3");
    let bytes = lame_tagged_mp3();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    assert!(load_error(&cut).starts_with("ends after 0.31 s of the 0.50 s its header announces"));
    // A frame whose header is wiped: symphonia's demuxer skips to the next one without a word.
    let lost = dir.join("lost.mp3");
    let mut bytes = lame_tagged_mp3();
    let eleventh = bytes.windows(2).enumerate().filter(|(_, w)| w == &[0xff, 0xfb]).nth(11).unwrap().0;
    bytes[eleventh..eleventh + 4].fill(0);
    std::fs::write(&lost, bytes).unwrap();
    assert!(load_error(&lost).starts_with("ends after 0.497 s of the 0.500 s its header announces"));
}

#[test]
fn implausible_headers_are_refused_before_decoding() {
    let dir = temp_dir("headers");
    // 4 KB of samples under a 1 Hz header: resampled, they would take 8 GB.
    let one_hz = dir.join("one_hz.wav");
    wav_claiming(&one_hz, 1, 4000, &[500; 2000]);
    let start = std::time::Instant::now();
    assert!(load_error(&one_hz).starts_with("sample rate 1 Hz: expected 1000 to 384000 Hz"));
    assert!(start.elapsed().as_secs_f64() < 1.0, "took {:?}", start.elapsed());
    let fast = dir.join("fast.wav");
    wav_claiming(&fast, 1_000_000, 4000, &[500; 2000]);
    assert!(load_error(&fast).starts_with("sample rate 1000000 Hz"));
    // A data chunk of 4 GB at 1 kHz would be 596 hours.
    let long = dir.join("long.wav");
    wav_claiming(&long, 1000, u32::MAX - 100, &[500; 2000]);
    let reason = load_error(&long);
    assert!(
        reason.starts_with("its header announces 596.5 hours, more than the 4 hours one file may hold"),
        "{reason}"
    );
}

#[test]
fn a_wav_header_with_no_rate_or_no_channels_is_an_error_not_a_crash() {
    let dir = temp_dir("zero-header");
    let lines = vec![write_item(&dir, "good", 100, 0.2, 1), write_item(&dir, "zero_rate", 100, 0.2, 1)];
    wav_by_hand(&dir.join("zero_rate.wav"), 1, 0, 4000, &[500; 2000]);
    assert_eq!(
        load_error(&dir.join("zero_rate.wav")),
        "sample rate 0 Hz: expected 1000 to 384000 Hz (a corrupt header, or not audio)"
    );
    let no_channels = dir.join("no_channels.wav");
    wav_by_hand(&no_channels, 0, SAMPLE_RATE, 4000, &[500; 2000]);
    assert_eq!(load_error(&no_channels), "the WAV header says 0 channels: expected 1 to 32");

    // Training's validation, which decodes on worker threads, reports it with the file's line.
    write_manifest(&dir, &lines);
    let crop = Crop::new(1000, 1).unwrap();
    let err = ManifestDataset::open(&[dir.to_path_buf()], &DatasetOptions::new(crop)).unwrap_err();
    let problems = &err.downcast_ref::<ValidationError>().expect("a ValidationError").problems;
    assert_eq!(problems.len(), 1, "{err}");
    assert_eq!(problems[0].file, dir.join("zero_rate.wav"));
    assert!(problems[0].reason.starts_with("sample rate 0 Hz"), "{err}");
}

/// A 32-channel extensible WAV whose channel mask is 0: symphonia 0.5 fills the mask in with
/// `1 << 32`, an overflow that panics where overflow is checked (debug and test builds).
#[test]
#[cfg_attr(not(debug_assertions), ignore = "the decoder's overflow panics only under overflow checks")]
fn a_panic_inside_the_decoder_is_that_files_error() {
    let dir = temp_dir("decoder-panic");
    let path = dir.join("no_mask.wav");
    let (channels, rate, samples) = (32u16, SAMPLE_RATE, vec![0u8; 64 * 100]);
    let mut b = Vec::new();
    b.extend(b"RIFF");
    b.extend((4 + 48 + 8 + samples.len() as u32).to_le_bytes());
    b.extend(b"WAVEfmt ");
    b.extend(40u32.to_le_bytes());
    b.extend(0xfffeu16.to_le_bytes()); // extensible
    b.extend(channels.to_le_bytes());
    b.extend(rate.to_le_bytes());
    b.extend((rate * 64).to_le_bytes());
    b.extend((2 * channels).to_le_bytes());
    b.extend(16u16.to_le_bytes());
    b.extend(22u16.to_le_bytes());
    b.extend(16u16.to_le_bytes()); // valid bits
    b.extend(0u32.to_le_bytes()); // channel mask
    b.extend([1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]); // PCM
    b.extend(b"data");
    b.extend((samples.len() as u32).to_le_bytes());
    b.extend(samples);
    std::fs::write(&path, b).unwrap();
    assert_eq!(load_error(&path), "the decoder failed: attempt to shift left with overflow");
    // The thread that caught it decodes the next file as usual.
    write_wav(&dir.join("good.wav"), SAMPLE_RATE, &[100; 1000]);
    assert_eq!(audio::load(&dir.join("good.wav")).unwrap().len(), 1000);
}

#[test]
fn clips_repeated_over_four_times_are_listed() {
    let dir = temp_dir("tiled");
    // Crop 1000 samples: 10 samples repeat 100 times, 199 samples 6 times, 250 samples 4 times.
    let lines: Vec<String> = [("buzz", 10), ("short", 199), ("quarter", 250)]
        .iter()
        .map(|&(name, n)| write_item(&dir, name, 100, (n as f64 + 0.5) / SAMPLE_RATE as f64, 1))
        .collect();
    write_manifest(&dir, &lines);
    let d = open(&dir, Crop::new(1000, 1).unwrap());
    let tiled: Vec<(PathBuf, usize, usize)> =
        d.tiled().iter().map(|t| (t.file.clone(), t.samples, t.repeats)).collect();
    assert_eq!(tiled, [(dir.join("buzz.wav"), 10, 100), (dir.join("short.wav"), 199, 6)]);
}

#[test]
fn batches_hold_teachers_channel_major() {
    let dir = good_dataset("layout", 3, 0.1, 2);
    let d = open(&dir, Crop::new(2000, 3).unwrap());
    let b = load_batch(&d, &[2, 0]).unwrap();
    assert_eq!((b.n, b.samples, b.steps), (2, 2000, 3));
    // Without the cache, clips are decoded again when served, to the same batch.
    let uncached = DatasetOptions { cache_bytes: 0, ..DatasetOptions::new(d.crop()) };
    let (d0, _) = ManifestDataset::open(&[dir.to_path_buf()], &uncached).unwrap();
    assert!(load_batch(&d0, &[2, 0]).unwrap() == b, "uncached batch differs");
    assert_eq!(b.waveform.len(), 2 * 2000);
    assert_eq!(b.objects.len(), 2 * OBJECT_CLASSES * 3);
    assert_eq!(b.scenes.len(), 2 * SCENE_CLASSES * 3);
    assert_eq!(b.waveform[0], 3000.0 / 128.0);
    assert_eq!(b.waveform[2000], 1000.0 / 128.0);
    for (n, item) in ["clip2", "clip0"].into_iter().enumerate() {
        let (obj, sce) = (teacher_of(item, 2, OBJECT_CLASSES), teacher_of(item, 2, SCENE_CLASSES));
        for t in 0..3 {
            for c in [0, 7, 14, 400] {
                // [n, C, steps] against the file's [rows, C], rows tiled over steps.
                assert_eq!(b.objects[(n * OBJECT_CLASSES + c) * 3 + t], obj[(t % 2) * OBJECT_CLASSES + c]);
                assert_eq!(b.scenes[(n * SCENE_CLASSES + c) * 3 + t], sce[(t % 2) * SCENE_CLASSES + c]);
            }
        }
    }
}

#[test]
fn shuffled_batches_hold_each_clips_own_audio_and_teachers() {
    // Five items, each with its own level and teachers; batches of 2 in a seeded shuffle, over two
    // epochs. Every row of every batch must be the item the order names, audio and teachers alike.
    let (items, steps) = (5, 3);
    let dir = good_dataset("shuffled", items, 0.1, 2);
    let d = open(&dir, Crop::new(700, steps).unwrap());
    let order = Order::new(items, 2, 11, true);
    let served: Vec<usize> = (0..order.batches_per_epoch()).flat_map(|b| order.batch(b)).collect();
    assert!(!served.windows(2).all(|w| w[0] < w[1]), "the test needs a shuffled order, got {served:?}");
    for b in 0..2 * order.batches_per_epoch() {
        let indices = order.batch(b);
        let batch = load_batch(&d, &indices).unwrap();
        assert_eq!(batch.indices, indices);
        for (n, &i) in indices.iter().enumerate() {
            let name = format!("clip{i}");
            let level = 1000.0 * (i + 1) as f32 / 128.0;
            assert!(
                batch.waveform[n * 700..(n + 1) * 700].iter().all(|&v| v == level),
                "batch {b} row {n}: audio of {name}"
            );
            for (teacher, classes) in [(&batch.objects, OBJECT_CLASSES), (&batch.scenes, SCENE_CLASSES)] {
                let rows = teacher_of(&name, 2, classes);
                let got: Vec<f32> =
                    (0..steps * classes).map(|j| teacher[(n * classes + j % classes) * steps + j / classes]).collect();
                let expected: Vec<f32> =
                    (0..steps).flat_map(|t| rows[(t % 2) * classes..(t % 2 + 1) * classes].to_vec()).collect();
                assert!(got == expected, "batch {b} row {n}: the {classes}-class teacher is not {name}'s");
            }
        }
    }
}

#[test]
fn order_is_seeded_and_manifest_order_without_shuffle() {
    let fixed = Order::new(10, 4, 1, false);
    assert_eq!(
        (0..4).map(|b| fixed.batch(b)).collect::<Vec<_>>(),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
    );
    let run = |seed| (0..10).map(|b| Order::new(10, 4, seed, true).batch(b)).collect::<Vec<_>>();
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
    // Small datasets wrap: 3 items, batches of 4.
    let wrap = Order::new(3, 4, 0, false);
    assert_eq!(wrap.batch(0), vec![0, 1, 2, 0]);
    assert_eq!(wrap.batch(1), vec![1, 2, 0, 1]);

    // The waveforms follow the order: item i is a DC clip at 1000 (i + 1).
    let dir = good_dataset("order", 4, 0.05, 1);
    let d = open(&dir, Crop::new(500, 1).unwrap());
    let b = load_batch(&d, &Order::new(4, 4, 0, false).batch(0)).unwrap();
    let levels: Vec<f32> = b.waveform.chunks(500).map(|w| w[0] * 128.0).collect();
    assert_eq!(levels, vec![1000.0, 2000.0, 3000.0, 4000.0]);
}

#[test]
fn the_loader_delivers_what_direct_loading_gives() {
    let dir = good_dataset("loader", 5, 0.1, 2);
    let crop = Crop::new(3000, 2).unwrap();
    let manifest: Arc<dyn Dataset> = Arc::new(open(&dir, crop));
    let demo: Arc<dyn Dataset> = Arc::new(DemoDataset::new(crop, 2, 9));
    for d in [manifest, demo] {
        let order = Order::new(d.len(), 2, 42, true);
        let mut loader = Loader::spawn(d.clone(), order.clone(), 3, 2, None).unwrap();
        for b in 3..9 {
            // Compared without assert_eq!, whose message would print whole batches.
            assert!(loader.next_batch().unwrap() == load_batch(&*d, &order.batch(b)).unwrap(), "batch {b} differs");
        }
    }
}

/// Serves zeros, but fails (or panics) at one index.
struct Faulty {
    bad: usize,
    panics: bool,
}

impl Dataset for Faulty {
    fn len(&self) -> usize {
        8
    }
    fn crop(&self) -> Crop {
        Crop::new(10, 1).unwrap()
    }
    fn classes(&self) -> sn_wgpu::model::Heads<Option<usize>> {
        sn_wgpu::model::Heads { objects: Some(OBJECT_CLASSES), scenes: Some(SCENE_CLASSES), classes: None }
    }
    fn example(&self, i: usize) -> Result<Example> {
        if i == self.bad {
            if self.panics {
                panic!("clip {i} exploded");
            }
            anyhow::bail!("clip {i} is unreadable");
        }
        Ok(Example {
            waveform: vec![0.0; 10],
            objects: vec![0.001; OBJECT_CLASSES],
            scenes: vec![0.0; SCENE_CLASSES],
            ..Example::default()
        })
    }
}

#[test]
fn loader_errors_reach_the_consumer() {
    for panics in [false, true] {
        let mut loader =
            Loader::spawn(Arc::new(Faulty { bad: 3, panics }), Order::new(8, 2, 0, false), 0, 3, None).unwrap();
        assert!(loader.next_batch().is_ok());
        let err = format!("{:#}", loader.next_batch().unwrap_err());
        assert!(err.contains("loading batch 1"), "{err}");
        let why = if panics { "the loader panicked: clip 3 exploded" } else { "example 3: clip 3 is unreadable" };
        assert!(err.contains(why), "{err}");
        assert!(loader.next_batch().is_err(), "stays stopped");
    }
    // Dropping a loader whose queue is full does not hang.
    let loader =
        Loader::spawn(Arc::new(Faulty { bad: 99, panics: false }), Order::new(8, 2, 0, false), 0, 1, None).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    drop(loader);
}

#[test]
fn demo_rows_are_distributions_and_classes_differ() {
    let crop = Crop::new(22_050, 3).unwrap();
    let d = DemoDataset::new(crop, 2, 1);
    assert_eq!(d.len(), 16);
    assert_eq!(DemoDataset::classes().len(), 8);
    let argmax =
        |row: &[f32]| row.iter().enumerate().fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m }).0;
    let mut tops = Vec::new();
    for i in 0..d.len() {
        let e = d.example(i).unwrap();
        assert_eq!(e.waveform.len(), 22_050);
        let p = peak(&e.waveform);
        assert!((0.3 * 256.0..=256.0).contains(&p), "example {i}: peak {p}");
        for (rows, classes) in [(&e.objects, OBJECT_CLASSES), (&e.scenes, SCENE_CLASSES)] {
            assert_eq!(rows.len(), 3 * classes);
            for (r, row) in rows.chunks(classes).enumerate() {
                assert_eq!(teacher::row_problem(row), None, "example {i} row {r}");
            }
        }
        tops.push((d.class_of(i), argmax(&e.objects[..OBJECT_CLASSES]), argmax(&e.scenes[..SCENE_CLASSES])));
        assert!(d.example(i).unwrap() == e, "example {i} is not deterministic");
    }
    // Each kind has its own top object and scene, shared by all its clips.
    for &(k, o, s) in &tops {
        assert!(tops.iter().all(|&(k2, o2, s2)| (k == k2) == (o == o2) && (k == k2) == (s == s2)), "{tops:?}");
    }
    assert!(d.example(0).unwrap().waveform != d.example(8).unwrap().waveform, "clips vary within a kind");
}

#[test]
fn a_real_esc10_clip_decodes() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audio_dir =
        here.ancestors().map(|a| a.join("shared/data/esc10/audio")).find(|p| p.is_dir()).unwrap_or_else(|| {
            panic!(
                "this test uses ../shared/data/esc10 from the sn-wgpu shared data folder \
                 (looked for shared/data/esc10/audio beside {} and its parents)",
                here.display()
            )
        });
    let mut clips: Vec<PathBuf> = std::fs::read_dir(&audio_dir).unwrap().map(|e| e.unwrap().path()).collect();
    clips.sort();
    let clip = clips.first().expect("ESC-10 audio files");
    let decoded = audio::decode(clip).unwrap();
    assert_eq!(decoded.rate, SAMPLE_RATE);
    let x = audio::load(clip).unwrap();
    assert_eq!(x.len(), 110_250, "{}: 5 s at 22,050 Hz", clip.display());
    let p = peak(&x);
    assert!(p > 1.0 && p <= 256.0, "{}: peak {p}", clip.display());
}
