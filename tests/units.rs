//! `sn-wgpu units`: a network whose conv1 unit 0 is a 1 kHz matched filter ranks the clips with
//! the loudest 1 kHz tone first, at the position a CPU reference finds, and cuts each excerpt to
//! exactly the unit's receptive field; the page loads in a real headless browser (Debian's
//! chromium), which also catches a missing excerpt and a script error; bad inputs are named.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sn_wgpu::checkpoint::Checkpoint;

const RATE: f64 = 22_050.0;
const TAPS: usize = 64;

fn hann(n: usize, len: usize) -> f64 {
    0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / (len - 1) as f64).cos()
}

/// conv1 unit 0: a Hann-windowed 1 kHz sine; unit 1: all zeros (it never fires). Batchnorm is the
/// identity (up to its epsilon), so unit 0 is relu(correlation with the tone).
fn tone_detector(dir: &Path) -> (PathBuf, Vec<f32>) {
    let model = sn_wgpu::model::Model::init(gpu(), sn_wgpu::model::soundnet8().narrow(8, 1000, 401), 2).unwrap();
    let mut c = Checkpoint::default();
    model.write_checkpoint(gpu(), &mut c).unwrap();
    let taps: Vec<f32> = (0..TAPS)
        .map(|n| (hann(n, TAPS) * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / RATE).sin()) as f32)
        .collect();
    let mut weights = taps.clone();
    weights.extend([0.0; TAPS]);
    c.insert("conv1.weight", &[2, 1, TAPS], weights);
    c.insert("conv1.bias", &[2], vec![0.0; 2]);
    c.insert("bn1.weight", &[2], vec![1.0; 2]);
    c.insert("bn1.bias", &[2], vec![0.0; 2]);
    c.insert("bn1.running_mean", &[2], vec![0.0; 2]);
    c.insert("bn1.running_var", &[2], vec![1.0; 2]);
    let path = dir.join("tone.safetensors");
    c.save(&path).unwrap();
    (path, taps)
}

/// A clip's file name and its samples.
type Clip = (&'static str, Vec<i16>);

/// 0.5 s of silence with a Hann-shaped burst of `hz` (amplitude `amp` of full scale) at `at`.
fn burst(hz: f64, amp: f64, at: usize) -> Vec<i16> {
    let mut s = vec![0i16; 11_025];
    for n in 0..400 {
        let v = amp * hann(n, 400) * (2.0 * std::f64::consts::PI * hz * n as f64 / RATE).sin();
        s[at + n] = (v * 32_767.0) as i16;
    }
    s
}

/// The tone clips (classes from meta.csv): two 1 kHz bursts, loud and soft, a 4 kHz burst and
/// silence, in an ESC-style folder.
fn tone_clips(dir: &Path) -> Vec<Clip> {
    let clips = vec![
        ("a-loud.wav", burst(1000.0, 0.8, 4000)),
        ("b-soft.wav", burst(1000.0, 0.4, 6000)),
        ("c-high.wav", burst(4000.0, 0.8, 3000)),
        ("d-quiet.wav", vec![0; 11_025]),
    ];
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    for (name, samples) in &clips {
        write_wav(&dir.join("audio").join(name), 22_050, samples);
    }
    let meta = "filename,fold,target,category\na-loud.wav,1,0,tone\nb-soft.wav,1,0,tone\nc-high.wav,2,1,other\n";
    std::fs::write(dir.join("meta.csv"), meta).unwrap();
    clips
}

/// conv1 unit 0 in f64: output j reads samples 2j - 32 .. 2j + 32; the best position whose field
/// lies inside the clip, and its value.
fn reference_best(taps: &[f32], clip: &[i16]) -> (usize, f64) {
    let x: Vec<f64> = clip.iter().map(|&v| f64::from(v) / 32_768.0 * 256.0).collect();
    let bn = 1.0 / (1.0 + 1e-5f64).sqrt();
    (16..=(clip.len() + 32 - TAPS) / 2)
        .map(|j| {
            let v: f64 = taps.iter().enumerate().map(|(k, &w)| f64::from(w) * x[2 * j - 32 + k]).sum();
            (j, (v * bn).max(0.0))
        })
        .fold((0, f64::NEG_INFINITY), |best, (j, v)| if v > best.1 { (j, v) } else { best })
}

fn sn_wgpu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

fn units(dir: &Path, weights: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args =
        vec!["units", dir.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    sn_wgpu(&args)
}

/// Runs the tone network over the tone clips into `dir/page` and returns the JSON report.
fn tone_page(dir: &Path) -> (serde_json::Value, Vec<Clip>, Vec<f32>) {
    let (weights, taps) = tone_detector(dir);
    let clips = tone_clips(dir);
    let out = units(dir, &weights, &dir.join("page"), &["--layer", "conv1", "--top-k", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap(), clips, taps)
}

#[test]
fn a_tone_detector_ranks_the_loudest_tone_first_and_its_excerpt_is_its_field() {
    let dir = temp_dir("units-tone");
    let (report, clips, taps) = tone_page(&dir);
    assert_eq!((report["units_in_layer"].as_u64(), report["silent_units"].as_u64()), (Some(2), Some(1)));
    assert_eq!(report["field_samples"], 64);
    let unit = &report["units"][0];
    assert_eq!(unit["unit"], 0);
    let excerpts = unit["excerpts"].as_array().unwrap();
    let names: Vec<&str> = excerpts.iter().map(|e| e["clip"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-loud.wav", "b-soft.wav"]);
    assert_eq!((unit["purity"].as_f64(), unit["class"].as_str()), (Some(1.0), Some("tone")));
    assert_eq!((report["pure_units"].as_u64(), report["classes"].as_array().unwrap().len()), (Some(1), 2));
    for (e, (name, samples)) in excerpts.iter().zip(&clips) {
        let (j, value) = reference_best(&taps, samples);
        let activation = e["activation"].as_f64().unwrap();
        assert!((activation - value).abs() <= 1e-3 * value, "{name}: {activation} vs reference {value}");
        // The excerpt is the field of position j: samples 2j - 32 .. 2j + 32, exactly as in the clip.
        let start = 2 * j - 32;
        let seconds = e["seconds"].as_array().unwrap();
        assert!(
            (seconds[0].as_f64().unwrap() - start as f64 / RATE).abs() < 1e-9,
            "{name}: {seconds:?} vs position {j}"
        );
        let wav = dir.join("page").join(e["wav"].as_str().unwrap());
        let mut reader = hound::WavReader::open(&wav).unwrap_or_else(|err| panic!("{}: {err}", wav.display()));
        assert_eq!((reader.spec().sample_rate, reader.spec().channels), (22_050, 1));
        let cut: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(cut, samples[start..start + TAPS], "{name}: the excerpt is not the field");
        // ... and it lies in the burst.
        let at = if *name == "a-loud.wav" { 4000 } else { 6000 };
        assert!(start >= at && start + TAPS <= at + 400, "{name}: excerpt at {start}, burst at {at}");
    }
    // The class of each excerpt, from meta.csv; d-quiet.wav is not listed there.
    assert_eq!(excerpts[0]["class"], "tone");
}

/// Debian's chromium (or Chrome), or a failure that says what to install.
fn browser() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(p) = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
            .unwrap_or(None)
        {
            return p;
        }
    }
    panic!(
        "this test opens the units page in a headless browser and found none on PATH: install Debian's \
         `chromium` package (apt-get install chromium; tools/test.sh does this when it runs as root)"
    )
}

/// The page as the browser left it after its scripts ran (`--dump-dom`).
fn rendered(page: &Path) -> String {
    let out = Command::new(browser())
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=20000", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(dom: &str) -> &str {
    let start = dom.find("id=\"status\"").unwrap_or_else(|| panic!("no status line in {dom}"));
    &dom[start..start + dom[start..].find("</p>").unwrap()]
}

#[test]
fn the_page_loads_in_a_headless_browser_with_every_excerpt() {
    let dir = temp_dir("units-page");
    let (report, _, _) = tone_page(&dir);
    let page = dir.join("page").join("index.html");
    assert_eq!(report["page"].as_str(), Some(page.to_str().unwrap()));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not need the network");
    let dom = rendered(&page);
    let s = status(&dom);
    assert!(s.contains("data-state=\"ok\"") && s.contains("All 2 excerpt files load"), "{s}");
    assert!(dom.contains("a-loud.wav") && dom.contains("tone") && dom.contains("100% tone"), "{dom}");
    // Every player points at a file that exists.
    for src in html.split("<audio ").skip(1).map(|a| a.split("src=\"").nth(1).unwrap().split('"').next().unwrap()) {
        assert!(dir.join("page").join(src).is_file(), "{src}");
    }
    // A screenshot: a real picture, not a blank page.
    let shot = dir.join("page.png");
    let out = Command::new(browser())
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--window-size=1000,700"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut reader = png::Decoder::new(std::fs::File::open(&shot).unwrap()).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1000, 700));
    let channels = info.color_type.samples();
    let distinct: std::collections::HashSet<&[u8]> = pixels.chunks(channels).collect();
    assert!(distinct.len() > 10, "the screenshot has {} colours", distinct.len());

    // A missing excerpt is caught and named.
    let first = report["units"][0]["excerpts"][1]["wav"].as_str().unwrap();
    std::fs::remove_file(dir.join("page").join(first)).unwrap();
    let s = status(&rendered(&page)).to_string();
    assert!(
        s.contains("data-state=\"error\"") && s.contains("1 of 2 excerpts do not load") && s.contains(first),
        "{s}"
    );
    // So is a script error.
    std::fs::write(&page, html.replace("</body>", "<script>notAFunction();</script></body>")).unwrap();
    let s = status(&rendered(&page)).to_string();
    assert!(s.contains("data-state=\"error\"") && s.contains("Script error"), "{s}");
}

#[test]
fn bad_inputs_are_named() {
    let dir = temp_dir("units-bad");
    let (weights, _) = tone_detector(&dir);
    tone_clips(&dir);
    let out_dir = dir.join("page");
    let fails = |out: std::process::Output, want: &[&str]| {
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && want.iter().all(|w| e.contains(w)), "wanted {want:?} in {e}");
    };
    fails(units(&dir, &weights, &out_dir, &["--layer", "conv1", "--top-k", "5"]), &["--top-k 5", "4 clip(s)"]);
    fails(units(&dir, &weights, &out_dir, &["--layer", "conv9"]), &["no layer \"conv9\"", "pool5"]);
    // Every clip is 0.5 s; conv7 sees 4.13 s.
    fails(units(&dir, &weights, &out_dir, &["--layer", "conv7"]), &["receptive field", "91166 samples"]);
    let missing = dir.join("missing.safetensors");
    fails(units(&dir, &missing, &out_dir, &["--layer", "conv1"]), &[missing.to_str().unwrap()]);
    fails(sn_wgpu(&["units", dir.to_str().unwrap(), "--layer", "conv1"]), &["--weights"]);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(units(&empty, &weights, &out_dir, &["--layer", "conv1"]), &["no audio files"]);
    fails(units(&dir.join("nope"), &weights, &out_dir, &["--layer", "conv1"]), &["no such folder"]);
    std::fs::write(dir.join("meta.csv"), "name,category\na-loud.wav,tone\n").unwrap();
    fails(units(&dir, &weights, &out_dir, &["--layer", "conv1"]), &["meta.csv", "no `filename` column"]);
}

#[test]
fn files_the_command_did_not_write_are_never_removed_or_overwritten() {
    let dir = temp_dir("units-keep");
    let (weights, _) = tone_detector(&dir);
    tone_clips(&dir);
    let page = dir.join("page");
    let excerpts = page.join("excerpts");
    std::fs::create_dir_all(&excerpts).unwrap();
    write_wav(&excerpts.join("my.wav"), 22_050, &[1, 2, 3]);
    let mine = std::fs::read(excerpts.join("my.wav")).unwrap();
    let run = || units(&dir, &weights, &page, &["--layer", "conv1", "--top-k", "2", "--json"]);
    let wavs = || {
        let mut names: Vec<String> = std::fs::read_dir(&excerpts)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wav"))
            .collect();
        names.sort();
        names
    };
    for _ in 0..2 {
        let out = run();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(std::fs::read(excerpts.join("my.wav")).unwrap(), mine, "a user's file in the excerpt folder changed");
    let report: serde_json::Value = serde_json::from_slice(&run().stdout).unwrap();
    let mut expected: Vec<String> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| {
            u["excerpts"].as_array().unwrap().iter().map(|e| e["wav"].as_str().unwrap().replace("excerpts/", ""))
        })
        .collect();
    expected.push("my.wav".into());
    expected.sort();
    expected.dedup();
    assert_eq!(wavs(), expected, "the folder holds this run's excerpts and the user's file, nothing else");

    // A file of the user's at an excerpt's name is refused, not overwritten.
    let taken = expected.iter().find(|n| *n != "my.wav").unwrap().clone();
    let list = page.join(sn_wgpu::out_folder::WRITTEN_LIST);
    let written = std::fs::read_to_string(&list).unwrap();
    let entry = format!("excerpts/{taken}\n");
    assert!(written.contains(&entry), "the folder's list names each excerpt: {written}");
    std::fs::write(&list, written.replace(&entry, "")).unwrap();
    std::fs::write(excerpts.join(&taken), b"the user's own bytes").unwrap();
    let refused = |out: std::process::Output, what: &str| {
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(what) && said.contains("was not written by sn-wgpu"), "{said}");
    };
    refused(run(), &taken);
    assert_eq!(std::fs::read(excerpts.join(&taken)).unwrap(), b"the user's own bytes");
    std::fs::remove_file(excerpts.join(&taken)).unwrap();

    // So is a page of the user's, before any excerpt is replaced.
    let before = wavs();
    std::fs::write(&list, std::fs::read_to_string(&list).unwrap().replace("index.html\n", "")).unwrap();
    std::fs::write(page.join("index.html"), "the user's page").unwrap();
    refused(run(), "index.html");
    assert_eq!(std::fs::read_to_string(page.join("index.html")).unwrap(), "the user's page");
    assert_eq!(wavs(), before, "a refused run removed or added excerpts");
    std::fs::remove_file(page.join("index.html")).unwrap();

    // And a run while another sn-wgpu process writes the folder.
    let held = sn_wgpu::out_folder::OutFolder::lock(&page, "--out").unwrap();
    let out = run();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("in use by another sn-wgpu process"), "{said}");
    assert!(!page.join("index.html").exists() && wavs() == before, "a refused run wrote into the folder");
    drop(held);
    assert!(run().status.success());
}
