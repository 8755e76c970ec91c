//! `sn-wgpu selftest` as a user runs it: the binary, its exit status, its text and its JSON.

mod common;
use common::*;
use std::process::{Command, Output};

fn selftest(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sn-wgpu")).arg("selftest").args(args).output().expect("run sn-wgpu");
    assert!(
        out.status.success(),
        "sn-wgpu selftest {args:?} exited with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn text_report_names_the_adapter_and_passes() {
    let text = String::from_utf8(selftest(&[]).stdout).unwrap();
    assert!(text.contains(&format!("adapter: {}", gpu().describe())), "{text}");
    assert!(text.contains("| check | relative error | tolerance | result |"), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("selftest: ") && last.contains("checks passed on"), "last line: {last}");
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn json_report_covers_every_family_and_passes() {
    let json: serde_json::Value = serde_json::from_slice(&selftest(&["--json"]).stdout).expect("selftest --json");
    assert_eq!(json["adapter"], gpu().describe());
    let checks = json["checks"].as_array().expect("a list of checks");
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
    }
    let names: Vec<&str> = checks.iter().map(|c| c["what"].as_str().expect("every check has a name")).collect();
    let mut families = vec!["conv1d plain", "conv1d tiled", "bn_relu_pool", "adam", "training step (auto)"];
    families.extend([
        "batchnorm eval",
        "relu",
        "maxpool1d",
        "teacher_loss kl",
        "teacher_loss l2",
        "training step (plain)",
        "training step (tiled)",
    ]);
    if sn_wgpu::ops::conv1d::cpu::available(gpu()) {
        families.extend(["conv1d cpu", "training step (cpu)"]);
    }
    for family in families {
        assert!(names.iter().any(|n| n.starts_with(family)), "no check of {family}: {names:?}");
    }
}
