//! `sn-wgpu filters`: conv1 filters built as tones come out with their frequencies, and the PNG
//! is a real picture.

mod common;
use std::path::Path;
use std::process::Command;

use common::*;
use sn_wgpu::checkpoint::Checkpoint;

/// A narrow SoundNet-8 checkpoint whose two conv1 filters are Hann-windowed sines of `hz`.
fn tone_filters(dir: &Path, hz: [f64; 2]) -> std::path::PathBuf {
    let model = sn_wgpu::model::Model::init(gpu(), sn_wgpu::model::soundnet8().narrow(8, 1000, 401), 1).unwrap();
    let mut c = Checkpoint::default();
    model.write_checkpoint(gpu(), &mut c).unwrap();
    let taps: Vec<f32> = hz
        .iter()
        .flat_map(|&f| {
            (0..64).map(move |n| {
                let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / 63.0).cos();
                (hann * (2.0 * std::f64::consts::PI * f * n as f64 / 22_050.0).sin()) as f32
            })
        })
        .collect();
    c.insert("conv1.weight", &[2, 1, 64], taps);
    let path = dir.join("tones.safetensors");
    c.save(&path).unwrap();
    path
}

fn sn_wgpu(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).args(args).output().unwrap()
}

#[test]
fn filters_report_their_tones_and_draw_them() {
    let dir = temp_dir("filters");
    let weights = tone_filters(&dir, [1000.0, 5000.0]);
    let png = dir.join("filters.png");
    let out = sn_wgpu(&[
        "filters",
        "--weights",
        weights.to_str().unwrap(),
        "--count",
        "2",
        "--out",
        png.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["shape"], serde_json::json!([2, 1, 64]));
    let step = 11_025.0 / 256.0;
    for (f, want) in report["filters"].as_array().unwrap().iter().zip([1000.0, 5000.0]) {
        let peak = f["peak_hz"].as_f64().unwrap();
        assert!((peak - want).abs() <= step, "peak {peak} Hz, built at {want} Hz");
        let band = f["band_hz"].as_array().unwrap();
        assert!(band[0].as_f64().unwrap() < want && band[1].as_f64().unwrap() > want, "{f}");
        assert_eq!(f["taps"].as_array().unwrap().len(), 64);
    }
    // A real picture: decodes, has the grid's size, and is not one colour.
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (600, 290));
    let distinct: std::collections::HashSet<&[u8]> = pixels.chunks(3).collect();
    assert!(distinct.len() > 20, "{} colours", distinct.len());
    // The text report.
    let out =
        sn_wgpu(&["filters", "--weights", weights.to_str().unwrap(), "--count", "2", "--out", png.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("filter  0: peak") && text.contains("conv1 [2, 1, 64]"), "{text}");
    // More filters than conv1 has, and no such checkpoint.
    let out =
        sn_wgpu(&["filters", "--weights", weights.to_str().unwrap(), "--count", "3", "--out", png.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("--count 3") && e.contains("2 conv1 filters"), "{e}");
    let missing = dir.join("nope.safetensors");
    let out = sn_wgpu(&["filters", "--weights", missing.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains(&missing.display().to_string()), "{e}");
}
