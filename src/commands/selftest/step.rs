//! A whole training step against PyTorch (`tools/fixtures/train_step.py`): a narrow SoundNet-8,
//! two Adam steps on one batch from the same initial weights. Losses within 1e-5, every gradient of
//! both steps within 1e-4, the weight updates after step 2 within 1e-3, the running statistics
//! within 1e-5 (relative errors). The fixture is built into the binary, so a user's `selftest`
//! needs neither the repository nor PyTorch.

use anyhow::{ensure, Context, Result};

use super::{kernel_name, to_f64, Check, Fixture};
use crate::checkpoint::Checkpoint;
use crate::gpu::Gpu;
use crate::model::params::{parameter_specs, running_stat_specs};
use crate::model::{soundnet8, Heads, Model};
use crate::ops::adam::AdamConfig;
use crate::ops::batchnorm::DEFAULT_MOMENTUM;
use crate::ops::conv1d::ConvKernel;
use crate::train::{StepShape, TrainStep};

const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/train_step.safetensors");

/// The training step with `conv_kernel`'s convolutions, every output of it as a check named
/// `training step (KERNEL): ...`.
pub fn training_step_checks(gpu: &Gpu, conv_kernel: ConvKernel) -> Result<Vec<Check>> {
    let f = Fixture::from_bytes("train_step", FIXTURE)?;
    let (model, mut step) = model_and_step(gpu, &f, conv_kernel)?;
    let batch = [f.tensor("waveform")?.0, f.tensor("teacher.objects")?.0, f.tensor("teacher.scenes")?.0];
    let mut checks = Vec::new();

    let losses = run_step(gpu, &mut step, batch)?;
    checks.push(Check::compare("step 1 losses", &losses, &to_f64(f.tensor("loss1")?.0), 1e-5));
    checks.extend(gradient_checks(gpu, &f, &step, 1)?);
    let biases_after1 = (1..=model.arch.body.len())
        .map(|i| model.params.get(&format!("conv{i}.bias")).read(gpu))
        .collect::<Result<Vec<_>>>()?;

    let losses = run_step(gpu, &mut step, batch)?;
    checks.push(Check::compare("step 2 losses", &losses, &to_f64(f.tensor("loss2")?.0), 1e-5));
    checks.extend(gradient_checks(gpu, &f, &step, 2)?);
    checks.extend(update_checks(gpu, &f, &model)?);
    checks.extend(running_stat_checks(gpu, &f, &model, &biases_after1)?);

    let prefix = format!("training step ({})", kernel_name(conv_kernel));
    Ok(checks.into_iter().map(|c| Check { what: format!("{prefix}: {}", c.what), ..c }).collect())
}

/// The fixture's narrow SoundNet-8 at its initial weights, and its training step.
fn model_and_step(gpu: &Gpu, f: &Fixture, conv_kernel: ConvKernel) -> Result<(Model, TrainStep)> {
    let arch = soundnet8().narrow(f.meta("divisor")?, f.meta("objects")?, f.meta("scenes")?);
    let mut init = Checkpoint::default();
    for spec in parameter_specs(&arch).iter().chain(&running_stat_specs(&arch)) {
        let (values, shape) = f.tensor(&format!("init.{}", spec.name))?;
        ensure!(shape == spec.shape, "{}: fixture {shape:?} and layer table {:?} disagree", spec.name, spec.shape);
        init.insert(&spec.name, shape, values.to_vec());
    }
    let mut model = Model::from_checkpoint_with_arch(gpu, arch, &init)?;
    model.conv_kernel = conv_kernel;
    let shape = StepShape { batch: f.meta("batch")?, micro_batches: 1, samples: f.meta("samples")? };
    let adam = AdamConfig { lr: f.meta("lr")?, ..AdamConfig::default() };
    let step = TrainStep::new(gpu, &model, shape, adam, None)?;
    let steps: usize = f.meta("steps")?;
    ensure!(step.steps == steps, "the step gives {} output steps, the fixture {steps}", step.steps);
    Ok((model, step))
}

/// One step on `[waveform, objects, scenes]`: its two head losses.
fn run_step(gpu: &Gpu, step: &mut TrainStep, [waveform, objects, scenes]: [&[f32]; 3]) -> Result<Vec<f32>> {
    // A step's losses come back from `submit` when the GPU is already done, else from `finish`.
    let mut losses = step.submit(gpu, waveform, Heads { objects, scenes, classes: &[] })?;
    losses.extend(step.finish(gpu)?);
    ensure!(losses.len() == 1, "one step gave the losses of {} steps", losses.len());
    let heads = step.head_losses(&losses[0]);
    ensure!(heads.objects.is_some() && heads.scenes.is_some(), "the fixture's network has both teachers' heads");
    Ok(heads.present_values())
}

/// Every gradient of step `n` against PyTorch's `gradN.*`.
fn gradient_checks(gpu: &Gpu, f: &Fixture, step: &TrainStep, n: usize) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (spec, grad) in step.grads.specs.iter().zip(&step.grads.tensors) {
        let expected = to_f64(f.tensor(&format!("grad{n}.{}", spec.name))?.0);
        let got = grad.read(gpu)?;
        let what = format!("step {n} gradient of {}", spec.name);
        if !inert_under_batchnorm(&spec.name) {
            checks.push(Check::compare(what, &got, &expected, 1e-4));
        } else if n == 1 {
            // The batchnorm after the conv subtracts the batch mean, bias included, so this gradient
            // is zero in exact arithmetic and both sides hold rounding noise: bound it by the scale
            // of the same layer's weight gradient instead. (By step 2 the bias itself is that noise
            // amplified by Adam, and the two sides no longer share a starting point.)
            let weight = spec.name.replace(".bias", ".weight");
            let scale = norm(&to_f64(f.tensor(&format!("grad1.{weight}"))?.0));
            let noise = norm(&to_f64(&got)).max(norm(&expected));
            let what = format!("{what}, ~0 under batchnorm: its norm over {weight}'s");
            checks.push(Check { what, error: noise / scale, tolerance: 1e-4 });
        }
    }
    Ok(checks)
}

/// What two steps did to each parameter, against PyTorch's `after2.* - init.*`.
fn update_checks(gpu: &Gpu, f: &Fixture, model: &Model) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (spec, param) in model.params.specs.iter().zip(&model.params.tensors) {
        if inert_under_batchnorm(&spec.name) {
            // Adam divides the rounding noise above by its own square root: the update of a
            // parameter with no gradient is noise of size ~lr on either side, and has no effect.
            continue;
        }
        let before = f.tensor(&format!("init.{}", spec.name))?.0;
        let after = f.tensor(&format!("after2.{}", spec.name))?.0;
        let update: Vec<f32> = param.read(gpu)?.iter().zip(before).map(|(a, b)| a - b).collect();
        let expected: Vec<f64> = after.iter().zip(before).map(|(&a, &b)| f64::from(a) - f64::from(b)).collect();
        checks.push(Check::compare(format!("update of {} over two steps", spec.name), &update, &expected, 1e-3));
    }
    Ok(checks)
}

/// The batchnorm running statistics after two steps, against PyTorch's `after2.*`.
fn running_stat_checks(gpu: &Gpu, f: &Fixture, model: &Model, biases_after1: &[Vec<f32>]) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (spec, stat) in model.running.specs.iter().zip(&model.running.tensors) {
        let mut expected = to_f64(f.tensor(&format!("after2.{}", spec.name))?.0);
        if spec.name.ends_with("running_mean") {
            // Step 2's batch mean includes the conv bias, whose step-1 value is rounding noise
            // amplified by Adam on both sides (see inert_under_batchnorm): shift by the difference.
            let layer: usize = spec.name["bn".len()..spec.name.find('.').unwrap_or(spec.name.len())]
                .parse()
                .with_context(|| format!("running statistic {} names no layer", spec.name))?;
            let ours = &biases_after1[layer - 1];
            let theirs = f.tensor(&format!("after1.conv{layer}.bias"))?.0;
            for ((e, o), t) in expected.iter_mut().zip(ours).zip(theirs) {
                *e += f64::from(DEFAULT_MOMENTUM) * (f64::from(*o) - f64::from(*t));
            }
        }
        checks.push(Check::compare(format!("{} after two steps", spec.name), &stat.read(gpu)?, &expected, 1e-5));
    }
    Ok(checks)
}

/// A conv bias followed by batchnorm: it cannot change the network's output.
fn inert_under_batchnorm(name: &str) -> bool {
    name.starts_with("conv") && name.ends_with(".bias")
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}
