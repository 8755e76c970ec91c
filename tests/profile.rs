//! `sn-wgpu profile`: every launch of a step is timed and costed, the table and the trace agree
//! with the launches, and the CPU-timing fallback works. Smoke tests on a tiny model (lavapipe).

#[macro_use]
mod common;

use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use common::gpu;
use sn_wgpu::gpu::DeviceClass;
use sn_wgpu::model::Arch;
use sn_wgpu::ops::conv1d::ConvKernel;
use sn_wgpu::profile::{self, Clock, ProfileOptions, SortBy};

/// The smallest SoundNet-8 (conv1 has one channel) at its minimum length, 9.5 s.
const MODEL: &str = "soundnet8-narrow16";
const SECONDS: f64 = 9.5;

/// A device has one timing window at a time, so the tests that time on the shared device take turns.
fn timing_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn options(inference: bool, cpu_timing: bool) -> ProfileOptions {
    ProfileOptions {
        model: MODEL.into(),
        weights: None,
        batch: 2,
        seconds: SECONDS,
        steps: 2,
        warmup: 0,
        inference,
        cpu_timing,
        plain: false,
        conv_kernel: ConvKernel::Auto,
        // Given ceilings keep these tests short; `measured_ceilings_are_positive` measures them.
        peak_gflops: Some(100.0),
        peak_gbs: Some(10.0),
    }
}

/// FLOPs of one conv forward and the number of its outputs (the terms of db), from the layer
/// table, independently of the ops' own accounting.
fn conv_forward_flops(arch: &Arch, batch: usize, samples: usize) -> Vec<(String, f64, f64)> {
    let lengths = arch.lengths(samples).expect("long enough");
    let mut flops = Vec::new();
    let mut push = |name: &str, outputs: usize, reduction: usize| {
        flops.push((name.to_string(), 2.0 * (outputs * reduction) as f64, outputs as f64));
    };
    for (layer, &(conv_len, _)) in arch.body.iter().zip(&lengths.body) {
        push(layer.name, batch * layer.cout * conv_len, layer.cin * layer.k);
    }
    for head in &arch.heads {
        push(head.name, batch * head.classes * lengths.steps, arch.body.last().unwrap().cout * head.k);
    }
    flops
}

per_class!(training_profile_times_and_costs_every_launch);
fn training_profile_times_and_costs_every_launch() {
    let _turn = timing_lock();
    let opts = options(false, false);
    let p = profile::run(gpu(), &opts).expect("profile");
    assert_eq!(p.clock, Clock::GpuTimestamps, "lavapipe has timestamp queries");
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[0].len(), p.steps[1].len(), "every step runs the same launches");

    let rows = p.rows();
    for r in &rows {
        assert!(r.nanos > 0.0, "{} {} has no time", r.layer, r.kernel);
        assert!(r.cost.bytes > 0.0, "{} {} has no byte count", r.layer, r.kernel);
        assert!(!r.layer.is_empty(), "{} has no layer", r.kernel);
    }
    let launches: f64 = rows.iter().map(|r| r.launches).sum();
    assert_eq!(launches as usize, p.steps[0].len());

    // Every conv: forward, dX (not conv1, whose input is the waveform), dW and db, with the
    // forward's FLOPs counted from the layer table.
    let arch = Arch::by_name(MODEL).unwrap();
    let samples = (SECONDS * 22_050.0) as usize;
    for (layer, flops, outputs) in conv_forward_flops(&arch, opts.batch, samples) {
        // Each pass runs the cpu (conv1d_cpu), tiled (conv1d_tiled) or plain (conv1d, for long sums
        // over few outputs its _rows form) kernel. The
        // cpu and tiled dW also compute db (one more addition per output) and may be split in two
        // launches.
        let row = |entry: &str| {
            rows.iter().find(|r| r.layer == layer && r.kernel.starts_with("conv1d") && r.kernel.ends_with(entry))
        };
        // In training the tiled forward also leaves the batch statistics (3 more FLOPs per output).
        match row("::forward_stats") {
            Some(tiled) => assert_eq!(tiled.cost.flops, flops + 3.0 * outputs, "{layer} forward FLOPs"),
            None => {
                let forward = row("::forward")
                    .or_else(|| row("::forward_rows"))
                    .unwrap_or_else(|| panic!("no conv1d forward for {layer}"));
                assert_eq!(forward.cost.flops, flops, "{layer} forward FLOPs");
            }
        }
        match row("::backward_weight") {
            Some(plain) => {
                assert_eq!(plain.cost.flops, flops, "{layer} dW FLOPs");
                assert!(row("::backward_bias").is_some(), "{layer} has no db");
            }
            None => {
                let tiled = row("::backward_params").or_else(|| row("::backward_params_split")).expect("dW");
                assert_eq!(tiled.cost.flops, flops + outputs, "{layer} dW and db FLOPs");
                assert!(row("::backward_bias").is_none(), "{layer} computes db twice");
            }
        }
        let input_grad = row("::backward_input").or_else(|| row("::backward_input_rows"));
        assert_eq!(input_grad.is_some(), layer != "conv1", "{layer} dX");
    }
    // The default kernels are the ones shaped for this device.
    let shaped = match gpu().class {
        DeviceClass::Cpu => "conv1d_cpu::forward",
        DeviceClass::Gpu => "conv1d_tiled::forward_stats",
    };
    assert!(rows.iter().any(|r| r.kernel == shaped), "no layer ran {shaped} on a {:?} device", gpu().class);
    // (On a CPU device Adam runs four elements at a time; the flat buffers' lengths are multiples of
    // four, so there is no tail launch.)
    let adam: Vec<_> = rows.iter().filter(|r| r.kernel.starts_with("adam::step")).collect();
    assert_eq!(adam.len(), 1, "one Adam launch updates every parameter");
    assert_eq!(adam[0].layer, "adam (every parameter)");

    let table = p.table(SortBy::Time);
    for needle in ["adapter:", "GPU timestamps", "conv1d", "total:", "x floor", "clips/s"] {
        assert!(table.contains(needle), "the table lacks {needle:?}:\n{table}");
    }
    let times: Vec<f64> = table
        .lines()
        .filter(|l| l.contains("::"))
        .map(|l| {
            // Layer names may hold spaces ("adam (every parameter)"): count from the kernel column.
            let words: Vec<&str> = l.split_whitespace().collect();
            let kernel = words.iter().position(|w| w.contains("::")).unwrap();
            words[kernel + 2].parse().unwrap()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "--sort time puts the slowest first");
}

#[test]
fn trace_has_one_event_per_launch_in_time_order() {
    let _turn = timing_lock();
    let p = profile::run(gpu(), &options(false, false)).expect("profile");
    let trace = p.trace_json().expect("trace");
    let events = trace["traceEvents"].as_array().unwrap();
    let kernels: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(kernels.len(), p.steps[0].len());
    let starts: Vec<f64> = kernels.iter().map(|e| e["ts"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "kernels of one submission run in order");
    assert!(kernels.iter().all(|e| e["dur"].as_f64().unwrap() > 0.0 && e["name"].as_str().unwrap().contains("::")));
}

#[test]
fn inference_profile_with_cpu_timing() {
    let _turn = timing_lock();
    let p = profile::run(gpu(), &options(true, true)).expect("profile");
    assert_eq!(p.clock, Clock::CpuWall);
    let rows = p.rows();
    assert!(rows.iter().all(|r| !r.kernel.contains("backward") && r.kernel != "adam::step"), "forward only");
    assert!(rows.iter().any(|r| r.kernel == "batchnorm::normalize_eval"), "batchnorm in eval mode");
    assert!(rows.iter().all(|r| r.nanos > 0.0));
    assert!(p.table(SortBy::Order).contains("CPU wall time"), "the table says how it timed");
}

#[test]
fn measured_ceilings_are_positive() {
    let _turn = timing_lock();
    let mut opts = options(true, false);
    (opts.peak_gflops, opts.peak_gbs, opts.steps) = (None, None, 1);
    let p = profile::run(gpu(), &opts).expect("profile");
    assert!(p.ceilings.measured);
    assert!(p.ceilings.gflops > 0.1 && p.ceilings.gbs > 0.01, "{:?}", p.ceilings);
}

#[test]
fn cli_prints_the_table_and_writes_the_trace() {
    let dir = common::temp_dir("profile-cli");
    let trace = dir.join("step.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sn-wgpu"))
        .args(["profile", "--model", MODEL, "--seconds", "9.5", "--steps", "1", "--warmup", "0"])
        .args(["--peak-gflops", "100", "--peak-gbs", "10", "--trace"])
        .arg(&trace)
        .output()
        .expect("running sn-wgpu");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sn-wgpu profile failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("conv1d") && stdout.contains("::forward") && stdout.contains("total:"), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).expect("trace written")).unwrap();
    assert!(json["traceEvents"].as_array().unwrap().len() > 10);
}

#[test]
fn plain_runs_the_plain_kernels() {
    let _turn = timing_lock();
    let mut opts = options(false, false);
    (opts.plain, opts.steps) = (true, 1);
    let p = profile::run(gpu(), &opts).expect("profile --plain");
    let kernels: Vec<String> = p.rows().into_iter().map(|r| r.kernel).collect();
    for kernel in ["conv1d::forward", "conv1d::backward_input", "conv1d::backward_weight", "relu::forward"] {
        assert!(kernels.iter().any(|k| k == kernel), "--plain runs no {kernel}: {kernels:?}");
    }
    assert!(!kernels.iter().any(|k| k.starts_with("conv1d_tiled") || k.starts_with("bn_relu_pool")), "{kernels:?}");
    assert!(p.workload.contains("plain kernels"), "{}", p.workload);
}
