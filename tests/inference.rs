//! Inference: tiling of short clips, chunked extraction against a single pass, `predict` and
//! `extract` end to end on a generated WAV, through the binary past a bad file, on a folder and
//! with a damaged checkpoint, and the pretrained SoundNet-8 against PyTorch
//! (`tools/fixtures/pretrained.py`).

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::data::audio;
use sn_wgpu::eval::{self, ExtractOptions, Extractor, Pool, PredictOptions, DEFAULT_CHUNK_SAMPLES};
use sn_wgpu::model::{soundnet8, Model};

/// A narrow random SoundNet-8 (channels / 8) with small heads: cheap on a CPU adapter.
fn narrow_model() -> Model {
    Model::init(gpu(), soundnet8().narrow(8, 10, 7), 3).unwrap()
}

/// A waveform of `n` samples at about a tenth of full scale.
fn waveform(n: usize, seed: u64) -> Vec<f32> {
    randn(&mut rng(seed), n).into_iter().map(|v| v * 25.0).collect()
}

#[test]
fn a_one_second_clip_is_tiled_with_a_note() {
    let model = narrow_model();
    let mut x = Extractor::new(&model, &["conv7", "objects"], DEFAULT_CHUNK_SAMPLES).unwrap();
    assert_eq!(x.min_samples(), 209_374);
    let clip = waveform(22_050, 1);
    let out = x.extract(gpu(), &clip).unwrap();
    let note = out.note.expect("a note for a tiled clip");
    assert!(note.contains("22050 samples") && note.contains("tiled"), "{note}");
    assert_eq!(out.samples, 209_374);
    assert_eq!(out.features[1].steps, 1);
    // The same as extracting the tiled waveform, which needs no note.
    let tiled = sn_wgpu::data::crop::tile(&clip, 209_374);
    let direct = x.extract(gpu(), &tiled).unwrap();
    assert!(direct.note.is_none());
    assert_eq!(direct.features, out.features);
    // predict tiles to 10 s instead.
    let mut p = Extractor::new(&model, &["objects"], DEFAULT_CHUNK_SAMPLES).unwrap().tile_short_clips_to(220_500);
    assert_eq!(p.extract(gpu(), &clip).unwrap().samples, 220_500);
    assert!(x.extract(gpu(), &[]).is_err());
}

/// Chunks of `chunk` samples against one pass over the whole clip, every layer in `layers`.
fn assert_chunked_equals_single(layers: &[&str], samples: usize, chunk: usize, min_chunks: usize) {
    let model = narrow_model();
    let clip = waveform(samples, 7);
    let mut chunked = Extractor::new(&model, layers, chunk).unwrap();
    let mut single =
        Extractor::new(&model, layers, samples + chunked.geometries().iter().map(|g| g.field).max().unwrap() * 2)
            .unwrap();
    let geometries = chunked.geometries().to_vec();
    let chunking = eval::Chunking::new(geometries, chunk).unwrap();
    let chunks = chunking.chunks(samples);
    assert!(chunks.len() >= min_chunks, "{} chunks", chunks.len());
    assert!(chunks.last().unwrap().len < chunk, "the tail is shorter than a chunk");
    let a = chunked.extract(gpu(), &clip).unwrap();
    let b = single.extract(gpu(), &clip).unwrap();
    for (fa, fb) in a.features.iter().zip(&b.features) {
        assert_eq!((fa.channels, fa.steps), (fb.channels, fb.steps), "{}", fa.layer);
        assert!(fb.data.iter().any(|&v| v != 0.0), "{}: all zeros", fa.layer);
        assert_close(&format!("{} in {} chunks", fa.layer, chunks.len()), &fa.data, &to_f64(&fb.data), 1e-6);
    }
    // A second clip of the same length replays the recorded plans.
    let again = chunked.extract(gpu(), &clip).unwrap();
    assert_eq!(again.features, a.features);
}

#[test]
fn chunked_shallow_layers_equal_a_single_pass() {
    assert_chunked_equals_single(&["conv1", "pool1", "conv2"], 20_011, 2_000, 8);
}

#[test]
fn chunked_deep_layers_and_heads_equal_a_single_pass() {
    assert_chunked_equals_single(&["pool2", "pool5", "conv7", "objects", "scenes"], 1_000_003, 400_000, 5);
}

#[test]
fn predict_and_extract_run_on_a_generated_wav() {
    let dir = temp_dir("cli");
    let weights = narrow_checkpoint(&dir);
    let clips = dir.join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    let tone: Vec<i16> = (0..22_050).map(|i| ((i as f32 * 0.07).sin() * 8000.0) as i16).collect();
    write_wav(&clips.join("b_tone.wav"), 22_050, &tone);
    let long: Vec<i16> = (0..500_000).map(|i| ((i as f32 * 0.011).sin() * 12000.0) as i16).collect();
    write_wav(&clips.join("a_long.wav"), 22_050, &long);
    std::fs::write(clips.join("notes.txt"), "not audio").unwrap();

    let opts = PredictOptions {
        paths: vec![clips.join("b_tone.wav"), clips.join("a_long.wav")],
        weights: Some(weights.clone()),
        top_k: 3,
        chunk_samples: DEFAULT_CHUNK_SAMPLES,
    };
    let p = eval::predict(gpu(), &opts).unwrap();
    assert_eq!(p.model, "soundnet8-narrow8");
    let tone_p = &p.clips[0];
    // Tiled to 20 s: four steps, none reaching conv7's edge column. Step 0's receptive field ends
    // at R - P = 320,542 - 55,584 samples.
    assert!(tone_p.note.as_deref().unwrap().contains("441000 samples"), "{:?}", tone_p.note);
    assert_eq!(tone_p.steps.len(), 4);
    assert_eq!((tone_p.steps[0].start_s, tone_p.steps[0].end_s), (0.0, 264_958.0 / 22_050.0));
    // 500,000 samples: conv7 has 16 columns and the heads 5 steps, the last of which covers
    // column 15, computed from the padding past the end: it is left out.
    let long_p = &p.clips[1];
    assert!(long_p.note.as_deref().unwrap().contains("left out"), "{:?}", long_p.note);
    assert_eq!(long_p.steps.len(), 4);
    assert!((long_p.steps[1].start_s - (65_536.0 - 55_584.0) / 22_050.0).abs() < 1e-9);
    for top in [&long_p.clip, &long_p.steps[0].top, &long_p.steps[1].top] {
        let (objects, scenes) = (top.objects.as_ref().unwrap(), top.scenes.as_ref().unwrap());
        assert_eq!(objects.len(), 3);
        assert!(objects.windows(2).all(|w| w[0].probability >= w[1].probability));
        assert!(scenes.iter().all(|s| s.probability > 0.0 && s.probability <= 1.0));
        assert_eq!(scenes[0].class, sn_wgpu::data::categories::scenes()[scenes[0].index]);
    }
    // The clip's probabilities are the mean of its steps'.
    let mean_of_top = long_p.clip.objects.as_ref().unwrap()[0].index;
    let step_probs: Vec<f32> = long_p
        .steps
        .iter()
        .map(|s| s.top.objects.as_ref().unwrap().iter().find(|c| c.index == mean_of_top).map_or(0.0, |c| c.probability))
        .collect();
    assert!(step_probs.iter().any(|&v| v > 0.0));
    let json: serde_json::Value = serde_json::from_str(&p.json().unwrap()).unwrap();
    assert_eq!(json["clips"][1]["steps"][1]["objects"].as_array().unwrap().len(), 3);
    assert!(p.text().contains("note: 22050 samples"));

    let no_weights = PredictOptions { weights: None, ..opts };
    let err = format!("{:#}", eval::predict(gpu(), &no_weights).unwrap_err());
    assert!(err.contains("--weights") && err.contains("tools/import_soundnet8.py"), "{err}");

    // extract: a folder in, one .npy per audio file (sorted, the text file skipped).
    let model = Model::from_checkpoint(gpu(), &Checkpoint::load(&weights).unwrap()).unwrap();
    let mut reference = Extractor::new(&model, &["pool5"], DEFAULT_CHUNK_SAMPLES).unwrap();
    let expected: Vec<_> = ["a_long.wav", "b_tone.wav"]
        .iter()
        .map(|f| reference.extract(gpu(), &audio::load(&clips.join(f)).unwrap()).unwrap().features.remove(0))
        .collect();
    for pool in [None, Some(Pool::Mean), Some(Pool::Max)] {
        let out = dir.join(format!("features-{pool:?}"));
        let opts = ExtractOptions {
            paths: vec![clips.clone()],
            weights: Some(weights.clone()),
            layer: "pool5".into(),
            out: out.clone(),
            pool,
            chunk_samples: DEFAULT_CHUNK_SAMPLES,
        };
        let summary = eval::extract(gpu(), &opts).unwrap();
        assert_eq!(summary.written.len(), 2);
        assert!(summary
            .written
            .iter()
            .all(|w| w.note.is_some() == (audio::load(&w.clip).unwrap().len() < reference.min_samples())));
        for (w, f) in summary.written.iter().zip(&expected) {
            let bytes = std::fs::read(&w.npy).unwrap();
            let npy = npyz::NpyFile::new(bytes.as_slice()).unwrap();
            let shape: Vec<u64> = npy.shape().to_vec();
            let data: Vec<f32> = npy.into_vec().unwrap();
            let want = match pool {
                None => f.data.clone(),
                Some(p) => p.apply(f),
            };
            let want_shape =
                if pool.is_some() { vec![f.channels as u64] } else { vec![f.channels as u64, f.steps as u64] };
            assert_eq!(shape, want_shape, "{}", w.npy.display());
            assert_eq!(data, want, "{}", w.npy.display());
        }
    }
    // Pooling by hand on a tiny array.
    let f = eval::Features { layer: "x".into(), channels: 2, steps: 3, data: vec![1.0, -2.0, 4.0, 0.0, 0.5, -1.0] };
    assert_eq!(Pool::Mean.apply(&f), vec![1.0, -0.5 / 3.0]);
    assert_eq!(Pool::Max.apply(&f), vec![4.0, 0.5]);
    assert_eq!("max".parse::<Pool>(), Ok(Pool::Max));
    assert!("median".parse::<Pool>().is_err());

    // Two clips with one stem would overwrite each other: refused before any work, naming both.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    write_wav(&other.join("b_tone.wav"), 22_050, &tone);
    let clash = ExtractOptions {
        paths: vec![clips.clone(), other.clone()],
        weights: Some(weights.clone()),
        layer: "conv1".into(),
        out: dir.join("clash"),
        pool: None,
        chunk_samples: DEFAULT_CHUNK_SAMPLES,
    };
    let err = format!("{:#}", eval::extract(gpu(), &clash).unwrap_err());
    assert!(err.contains("b_tone.npy") && err.contains(&other.join("b_tone.wav").display().to_string()), "{err}");
    let bad_layer = ExtractOptions { paths: vec![clips.join("b_tone.wav")], layer: "pool3".into(), ..clash };
    let err = format!("{:#}", eval::extract(gpu(), &bad_layer).unwrap_err());
    assert!(err.contains("pool3") && err.contains("pool5"), "{err}");
    // A missing file is kept, to fail with the unreadable ones; a folder without audio is an error.
    assert_eq!(eval::audio_files(&[dir.join("nowhere.wav")]).unwrap(), [dir.join("nowhere.wav")]);
    let no_audio = dir.join("no-audio");
    std::fs::create_dir_all(&no_audio).unwrap();
    std::fs::write(no_audio.join("notes.txt"), "not audio").unwrap();
    let err = eval::audio_files(&[other.join("b_tone.wav"), no_audio.clone()]).unwrap_err().to_string();
    assert_eq!(err, format!("{}: no audio files (wav, mp3, flac, ogg) in the folder", no_audio.display()));
}

fn sn_wgpu(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

/// `out`'s stdout and stderr as text.
fn streams(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Two half-second tones and, between them by name, a WAV cut off half-way.
fn good_bad_good(dir: &Path) -> [PathBuf; 3] {
    let clips = dir.join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    let files = [clips.join("a_good.wav"), clips.join("b_cut.wav"), clips.join("c_good.wav")];
    for (k, file) in files.iter().enumerate() {
        let tone: Vec<i16> = (0..11_025).map(|i| ((i as f32 * 0.03 * (k + 1) as f32).sin() * 8000.0) as i16).collect();
        write_wav(file, 22_050, &tone);
    }
    let bytes = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &bytes[..bytes.len() / 2]).unwrap();
    files
}

#[test]
fn predict_and_extract_go_on_past_a_bad_file() {
    let dir = temp_dir("bad-file");
    let weights = narrow_checkpoint(&dir);
    let [a, b, c] = good_bad_good(&dir);
    let cut = format!("{}: ends after ", b.display());

    let predict = |extra: &[&str]| {
        let mut args: Vec<&Path> = vec![Path::new("predict"), &a, &b, &c, Path::new("--weights"), &weights];
        args.extend(extra.iter().map(Path::new));
        sn_wgpu(&args)
    };
    let out = predict(&[]);
    let (stdout, stderr) = streams(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for good in [&a, &c] {
        assert!(stdout.contains(&format!("{} (0.50 s, 4 steps)", good.display())), "{stdout}");
    }
    assert!(stderr.contains("predict: 1 of 3 files could not be read") && stderr.contains(&cut), "{stderr}");
    // JSON stays valid: the good clips, and the bad file under "errors".
    let out = predict(&["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = json["clips"].as_array().unwrap().iter().map(|c| c["file"].as_str().unwrap()).collect();
    assert_eq!(files, [a.to_str().unwrap(), c.to_str().unwrap()]);
    assert_eq!(json["errors"][0]["file"], b.to_str().unwrap());
    assert!(json["errors"][0]["reason"].as_str().unwrap().starts_with("ends after "), "{json}");
    let out = predict(&["--skip-bad"]);
    let (stdout, stderr) = streams(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&c.display().to_string()), "{stdout}");
    assert!(stderr.contains("predict: skipped 1 of 3 files that could not be read (--skip-bad)"), "{stderr}");
    assert!(stderr.contains(&cut), "{stderr}");

    // extract, given the folder: both good clips written, the cut one named.
    let features = dir.join("features");
    let extract = |extra: &[&str]| {
        let (weights, clips) = (weights.as_path(), a.parent().unwrap());
        let mut args = vec![Path::new("extract"), clips, Path::new("--weights"), weights, Path::new("--layer")];
        args.extend([Path::new("pool5"), Path::new("--out"), &features]);
        args.extend(extra.iter().map(Path::new));
        sn_wgpu(&args)
    };
    let out = extract(&[]);
    let (stdout, stderr) = streams(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("wrote 2 pool5 feature files"), "{stdout}");
    assert!(features.join("a_good.npy").is_file() && features.join("c_good.npy").is_file());
    assert!(!features.join("b_cut.npy").exists());
    assert!(stderr.contains("extract: 1 of 3 files could not be read") && stderr.contains(&cut), "{stderr}");
    let out = extract(&["--skip-bad"]);
    let (_, stderr) = streams(&out);
    assert!(out.status.success() && stderr.contains("extract: skipped 1 of 3") && stderr.contains(&cut), "{stderr}");
}

/// A WAV header saying 0 Hz made the decoder panic, taking the files beside it down with it.
#[test]
fn predict_goes_on_past_a_wav_whose_header_says_0_hz() {
    let dir = temp_dir("zero-rate");
    let weights = narrow_checkpoint(&dir);
    let [good, zero, _] = good_bad_good(&dir);
    let mut wav = std::fs::read(&good).unwrap();
    wav[24..28].fill(0); // the fmt chunk's sample rate
    std::fs::write(&zero, wav).unwrap();
    let out = sn_wgpu(&[Path::new("predict"), &good, &zero, Path::new("--weights"), &weights]);
    let (stdout, stderr) = streams(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains(&format!("{} (0.50 s, 4 steps)", good.display())), "{stdout}");
    assert!(stderr.contains("predict: 1 of 2 files could not be read"), "{stderr}");
    assert!(stderr.contains(&format!("{}: sample rate 0 Hz", zero.display())), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn predict_takes_a_folder_and_names_one_without_audio() {
    let dir = temp_dir("predict-folder");
    let weights = narrow_checkpoint(&dir);
    let [a, b, c] = good_bad_good(&dir);
    std::fs::remove_file(&b).unwrap();
    std::fs::write(dir.join("clips/notes.txt"), "not audio").unwrap();
    let out = sn_wgpu(&[Path::new("predict"), a.parent().unwrap(), Path::new("--weights"), &weights]);
    let (stdout, stderr) = streams(&out);
    assert!(out.status.success(), "{stderr}");
    let named: Vec<&str> = stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(named, [format!("{} (0.50 s, 4 steps)", a.display()), format!("{} (0.50 s, 4 steps)", c.display())]);

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = sn_wgpu(&[Path::new("predict"), &empty, Path::new("--weights"), &weights]);
    let (_, stderr) = streams(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: no audio files (wav, mp3, flac, ogg) in the folder", empty.display())),
        "{stderr}"
    );
}

/// A checkpoint with one NaN in conv1.weight (its bytes written directly: a damaged file, not one
/// sn-wgpu would save) is refused by both commands, naming the file and the tensor.
#[test]
fn predict_and_extract_refuse_a_checkpoint_with_a_nan_weight() {
    let dir = temp_dir("nan-weights");
    let mut checkpoint = Checkpoint::load(&narrow_checkpoint(&dir)).unwrap();
    checkpoint.tensors.get_mut("conv1.weight").unwrap().1[5] = f32::NAN;
    let weights = dir.join("nan.safetensors");
    std::fs::write(&weights, checkpoint.to_bytes().unwrap()).unwrap();
    let [a, ..] = good_bad_good(&dir);
    let features = dir.join("features");
    for command in [
        vec![Path::new("predict"), &a, Path::new("--weights"), &weights],
        vec![Path::new("extract"), &a, Path::new("--weights"), &weights, Path::new("--layer"), Path::new("conv1")]
            .into_iter()
            .chain([Path::new("--out"), &features])
            .collect(),
    ] {
        let out = sn_wgpu(&command);
        let (stdout, stderr) = streams(&out);
        assert!(!out.status.success(), "{command:?} succeeded: {stdout}");
        assert!(stderr.contains(&weights.display().to_string()) && stderr.contains("conv1.weight"), "{stderr}");
    }
    assert!(!features.exists(), "nothing is extracted with broken weights");
}

/// A head weight of shape [] (one number) was indexed as [classes, ...] and panicked; a head of 0
/// classes loaded, and every clip then failed for a reason of the checkpoint's.
#[test]
fn predict_and_extract_refuse_a_checkpoint_whose_head_cannot_be_one() {
    let dir = temp_dir("bad-head");
    let [a, ..] = good_bad_good(&dir);
    let features = dir.join("features");
    for (name, shape, reason) in [
        ("scalar.safetensors", &[][..], "objects.weight has shape []: a head's weight is [classes, channels, kernel]"),
        (
            "empty.safetensors",
            &[0, 128, 8][..],
            "objects.weight has shape [0, 128, 8]: a head needs at least one class",
        ),
    ] {
        let weights = with_objects_head(&dir, name, shape);
        for command in [
            vec![Path::new("predict"), &a, Path::new("--weights"), &weights],
            vec![Path::new("extract"), &a, Path::new("--weights"), &weights, Path::new("--layer"), Path::new("pool5")]
                .into_iter()
                .chain([Path::new("--out"), &features])
                .collect(),
        ] {
            let out = sn_wgpu(&command);
            let (stdout, stderr) = streams(&out);
            assert_eq!(out.status.code(), Some(1), "{command:?}: {stdout}{stderr}");
            assert!(stderr.contains(&weights.display().to_string()) && stderr.contains(reason), "{stderr}");
            assert!(!stderr.contains(&a.display().to_string()), "the clip is not to blame: {stderr}");
        }
    }
}

/// Finite values no trained network holds (a negative variance, a weight of 3e38) are refused on
/// load; weights within the bound that still overflow on a clip are refused when the outputs are
/// read back, naming the layer, rather than printed as a uniform distribution or written as
/// features.
#[test]
fn predict_and_extract_refuse_weights_that_cannot_compute() {
    let dir = temp_dir("impossible-weights");
    let [a, ..] = good_bad_good(&dir);
    let good = Checkpoint::load(&narrow_checkpoint(&dir)).unwrap();
    let save = |name: &str, edit: &dyn Fn(&mut Checkpoint)| {
        let mut c = good.clone();
        edit(&mut c);
        let path = dir.join(name);
        std::fs::write(&path, c.to_bytes().unwrap()).unwrap();
        path
    };
    let set = |c: &mut Checkpoint, name: &str, value: f32| c.tensors.get_mut(name).unwrap().1[3] = value;
    let negative_var = save("negative_var.safetensors", &|c| set(c, "bn2.running_var", -0.5));
    let huge = save("huge.safetensors", &|c| set(c, "conv1.weight", 3e38));
    // Every conv and head weight 1e12 and batchnorm the identity: a positive clip grows by about
    // 1e15 a layer and is infinite from conv3 on.
    let overflow = save("overflow.safetensors", &|c| {
        for (name, (_, values)) in c.tensors.iter_mut() {
            let value = match name {
                n if n.ends_with(".bias") || n.ends_with(".running_mean") => 0.0,
                n if n.starts_with("bn") => 1.0,
                _ => 1e12,
            };
            values.fill(value);
        }
    });
    let features = dir.join("features");
    for (weights, predict_says, extract_says) in [
        (&negative_var, "tensor bn2.running_var holds -0.5 at index 3; a variance cannot be negative", None),
        (&huge, "tensor conv1.weight holds 3e38 at index 3, beyond ±1e15", None),
        (
            &overflow,
            "objects gave inf at channel 0, step 0: the weights overflow f32",
            Some("pool5 gave inf at channel 0"),
        ),
    ] {
        let out = sn_wgpu(&[Path::new("predict"), &a, Path::new("--weights"), weights]);
        let (stdout, stderr) = streams(&out);
        assert_eq!(out.status.code(), Some(1), "{weights:?}: {stdout}{stderr}");
        assert!(stderr.contains(predict_says), "{stderr}");
        let extract = [Path::new("extract"), &a, Path::new("--weights"), weights, Path::new("--layer")];
        let out = sn_wgpu(&[&extract[..], &[Path::new("pool5"), Path::new("--out"), &features]].concat());
        let (stdout, stderr) = streams(&out);
        assert_eq!(out.status.code(), Some(1), "{weights:?}: {stdout}{stderr}");
        assert!(stderr.contains(extract_says.unwrap_or(predict_says)), "{stderr}");
        assert!(!features.join("a_good.npy").exists(), "{weights:?}: features were written");
    }
}

/// The folder `shared/data/NAME` beside the repository or one of its parents.
fn shared(name: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().map(|a| a.join("shared/data").join(name)).find(|p| p.is_dir()).unwrap_or_else(|| {
        panic!(
            "this test uses ../shared/data/{name} from the sn-wgpu shared data folder \
             (looked for shared/data/{name} beside {} and its parents)",
            here.display()
        )
    })
}

/// The authors' weights converted by `tools/import_soundnet8.py` into `dir`.
fn import_soundnet8(dir: &Path) -> PathBuf {
    let weights = dir.join("soundnet8.safetensors");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/import_soundnet8.py");
    let run = std::process::Command::new("python3")
        .arg(&script)
        .arg(shared("soundnet8").join("sound8.npy"))
        .arg(&weights)
        .output()
        .unwrap_or_else(|e| panic!("this test runs python3 {} (needs numpy): {e}", script.display()));
    assert!(
        run.status.success(),
        "python3 {} failed (it needs numpy): {}",
        script.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    weights
}

#[test]
fn pretrained_soundnet8_matches_pytorch_on_esc10() {
    let f = Fixture::load("pretrained");
    let esc10 = shared("esc10");
    let dir = temp_dir("pretrained");
    let weights = import_soundnet8(&dir);
    let model = Model::from_checkpoint(gpu(), &Checkpoint::load(&weights).unwrap()).unwrap();
    let samples: usize = f.meta("samples");
    let mut x = Extractor::new(&model, &["pool5", "objects", "scenes"], DEFAULT_CHUNK_SAMPLES)
        .unwrap()
        .tile_short_clips_to(samples);
    for (n, clip) in f.meta::<String>("clips").split(',').enumerate() {
        let path = esc10.join("audio").join(clip);
        let wave = audio::load(&path)
            .unwrap_or_else(|e| panic!("this test uses ../shared/data/esc10 from the sn-wgpu shared data folder: {e}"));
        let tiled = sn_wgpu::data::crop::tile(&wave, samples);
        assert_eq!(
            &tiled[..16],
            &f.tensor(&format!("clip{n}.head")).0[..],
            "{clip}: decoded samples differ from Python's"
        );
        let sum: f64 = tiled.iter().map(|&v| f64::from(v)).sum();
        let want = f64::from(f.tensor(&format!("clip{n}.sum")).0[0]);
        assert!((sum - want).abs() <= 1e-3 * want.abs().max(1.0), "{clip}: waveform sum {sum} vs Python's {want}");
        let out = x.extract(gpu(), &wave).unwrap();
        assert_eq!(out.samples, samples);
        for feat in &out.features {
            let (values, shape) = f.tensor(&format!("clip{n}.{}", feat.layer));
            assert_eq!(shape, vec![feat.channels, feat.steps], "{clip} {}", feat.layer);
            assert_close(&format!("{clip} {}", feat.layer), &feat.data, &to_f64(&values), 1e-4);
        }
    }
}

/// The heads of the authors' model, through `predict` (tiled to 20 s, edge steps left out), name
/// what is in real clips: the sea and a helicopter get different, fitting scenes. At 10 s the
/// single step saw conv7's padding column and every clip got "parking_garage/outdoor".
#[test]
fn pretrained_predict_tells_the_sea_from_a_helicopter() {
    let esc10 = shared("esc10");
    let dir = temp_dir("pretrained-predict");
    let weights = import_soundnet8(&dir);
    let clips = ["1-28135-A-11.wav", "1-172649-A-40.wav"]; // sea_waves, helicopter
    let opts = PredictOptions {
        paths: clips.iter().map(|c| esc10.join("audio").join(c)).collect(),
        weights: Some(weights),
        top_k: 3,
        chunk_samples: DEFAULT_CHUNK_SAMPLES,
    };
    let p = eval::predict(gpu(), &opts)
        .unwrap_or_else(|e| panic!("this test uses ../shared/data/esc10 from the sn-wgpu shared data folder: {e:#}"));
    let scenes =
        |i: usize| p.clips[i].clip.scenes.as_ref().unwrap().iter().map(|s| s.class.clone()).collect::<Vec<_>>();
    assert!(scenes(0).iter().any(|s| s == "ocean" || s == "wave" || s == "beach"), "sea waves: {:?}", scenes(0));
    assert!(scenes(1).iter().any(|s| s == "runway" || s == "airfield"), "helicopter: {:?}", scenes(1));
    let top_object = |i: usize| p.clips[i].clip.objects.as_ref().unwrap()[0].index;
    assert_ne!(top_object(0), top_object(1));
}
