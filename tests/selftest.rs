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

#[test]
fn real_shapes_measure_every_kernel_of_every_conv_pass() {
    let arch = sn_wgpu::model::Arch::by_name("soundnet8-narrow8").unwrap();
    let samples = sn_wgpu::data::Crop::for_arch(&arch, 9.5).unwrap().samples;
    let errors = sn_wgpu::selftest::real_shapes::measure(gpu(), &arch, 2, samples).unwrap();
    // conv1: forward and dW; conv2..conv7 and both heads: forward, dX and dW.
    assert_eq!(errors.len(), 2 + 3 * 8);
    for e in &errors {
        assert!(e.errors.len() >= 2, "{} {}: {:?}", e.layer, e.pass, e.errors);
        for (kernel, err) in &e.errors {
            assert!(*err < 1e-5, "{} {} with {kernel}: relative error {err:e}", e.layer, e.pass);
        }
    }
    let table = sn_wgpu::selftest::real_shapes::table(&errors);
    assert!(table.contains("| conv1 | weight_grad |") && table.lines().count() == 2 + errors.len(), "{table}");
}
