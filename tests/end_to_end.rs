//! A whole training step against PyTorch (`tools/fixtures/train_step.py`): a narrow SoundNet-8,
//! two Adam steps on one batch from the same initial weights. Losses within 1e-5, every gradient of
//! both steps within 1e-4, the weight updates after step 2 within 1e-3 (relative errors). Once with
//! each choice of convolution kernels (the default, `Auto`, is `Cpu` on lavapipe and the GPU rule on
//! a GPU). The checks themselves are the library's (`selftest::training_step_checks`), so that
//! `sn-wgpu selftest` runs the same ones on a user's GPU.

#[macro_use]
mod common;
use common::*;
use sn_wgpu::ops::conv1d::ConvKernel;
use sn_wgpu::selftest::training_step_checks;

per_class!(two_training_steps_match_pytorch_with_the_default_kernels);
fn two_training_steps_match_pytorch_with_the_default_kernels() {
    two_training_steps_match_pytorch(ConvKernel::Auto);
}

per_class!(two_training_steps_match_pytorch_with_every_conv_tiled);
fn two_training_steps_match_pytorch_with_every_conv_tiled() {
    two_training_steps_match_pytorch(ConvKernel::Tiled);
}

per_class!(two_training_steps_match_pytorch_with_the_cpu_convs);
fn two_training_steps_match_pytorch_with_the_cpu_convs() {
    two_training_steps_match_pytorch(ConvKernel::Cpu);
}

per_class!(two_training_steps_match_pytorch_with_the_plain_convs);
fn two_training_steps_match_pytorch_with_the_plain_convs() {
    two_training_steps_match_pytorch(ConvKernel::Plain);
}

fn two_training_steps_match_pytorch(conv_kernel: ConvKernel) {
    let checks = training_step_checks(gpu(), conv_kernel).unwrap();
    // A step that checked nothing would pass: make sure every kind of output was compared.
    for part in
        ["step 1 losses", "step 2 losses", "step 1 gradient of", "step 2 gradient of", "update of", "running_var"]
    {
        assert!(checks.iter().any(|c| c.what.contains(part)), "{conv_kernel:?}: no check of \"{part}\"");
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| format!("  {}: relative error {:.3e} > {:.0e}", c.what, c.error, c.tolerance))
        .collect();
    assert!(
        failed.is_empty(),
        "{conv_kernel:?}: {} of {} checks failed:\n{}",
        failed.len(),
        checks.len(),
        failed.join("\n")
    );
}
