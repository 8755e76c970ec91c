//! A whole training step against PyTorch (`tools/fixtures/train_step.py`): a narrow SoundNet-8,
//! two Adam steps on one batch from the same initial weights. Losses within 1e-5, every gradient of
//! both steps within 1e-4, the weight updates after step 2 within 1e-3 (relative errors). Once with
//! each choice of convolution kernels (the default, `Auto`, is `Cpu` on lavapipe and the GPU rule on
//! a GPU).

mod common;
use common::*;
use sn_wgpu::checkpoint::Checkpoint;
use sn_wgpu::model::params::{parameter_specs, running_stat_specs};
use sn_wgpu::model::{soundnet8, Model};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::ops::conv1d::ConvKernel;
use sn_wgpu::train::{StepShape, TrainStep};

#[test]
fn two_training_steps_match_pytorch_with_the_default_kernels() {
    two_training_steps_match_pytorch(ConvKernel::Auto);
}

#[test]
fn two_training_steps_match_pytorch_with_every_conv_tiled() {
    two_training_steps_match_pytorch(ConvKernel::Tiled);
}

#[test]
fn two_training_steps_match_pytorch_with_the_cpu_convs() {
    two_training_steps_match_pytorch(ConvKernel::Cpu);
}

#[test]
fn two_training_steps_match_pytorch_with_the_plain_convs() {
    two_training_steps_match_pytorch(ConvKernel::Plain);
}

fn two_training_steps_match_pytorch(conv_kernel: ConvKernel) {
    let f = Fixture::load("train_step");
    let arch = soundnet8().narrow(f.meta("divisor"), f.meta("objects"), f.meta("scenes"));
    let mut init = Checkpoint::default();
    for spec in parameter_specs(&arch).iter().chain(&running_stat_specs(&arch)) {
        let (values, shape) = f.tensor(&format!("init.{}", spec.name));
        assert_eq!(shape, spec.shape, "{}: fixture and layer table disagree", spec.name);
        init.insert(&spec.name, &shape, values);
    }
    let g = gpu();
    let mut model = Model::from_checkpoint_with_arch(g, arch, &init).unwrap();
    model.conv_kernel = conv_kernel;
    let (batch, samples): (usize, usize) = (f.meta("batch"), f.meta("samples"));
    let shape = StepShape { batch, micro_batches: 1, samples };
    let mut step =
        TrainStep::new(g, &model, shape, AdamConfig { lr: f.meta("lr"), ..AdamConfig::default() }, None).unwrap();
    assert_eq!(step.steps, f.meta::<usize>("steps"));
    let waveform = f.tensor("waveform").0;
    let (objects, scenes) = (f.tensor("teacher.objects").0, f.tensor("teacher.scenes").0);

    // A step's losses come back from `submit` when the GPU is already done, else from `finish`.
    let mut losses1 = step.submit(g, &waveform, &objects, &scenes).unwrap();
    losses1.extend(step.finish(g).unwrap());
    assert_eq!(losses1.len(), 1);
    assert_close("step 1 losses", &step.head_losses(&losses1[0]), &to_f64(&f.tensor("loss1").0), 1e-5);
    for (spec, grad) in step.grads.specs.iter().zip(&step.grads.tensors) {
        let expected = to_f64(&f.tensor(&format!("grad1.{}", spec.name)).0);
        let got = grad.read(g).unwrap();
        if inert_under_batchnorm(&spec.name) {
            // The batchnorm after the conv subtracts the batch mean, bias included, so this gradient
            // is zero in exact arithmetic and both sides hold rounding noise: bound it by the scale
            // of the same layer's weight gradient instead.
            let weight = spec.name.replace(".bias", ".weight");
            let scale = norm(&to_f64(&f.tensor(&format!("grad1.{weight}")).0));
            let noise = norm(&to_f64(&got)).max(norm(&expected));
            assert!(
                noise <= 1e-4 * scale,
                "{}: gradient {noise:e} should be ~0 next to the weight's {scale:e}",
                spec.name
            );
        } else {
            assert_close(&format!("step 1 gradient of {}", spec.name), &got, &expected, 1e-4);
        }
    }

    let biases_after1: Vec<Vec<f32>> =
        (1..=model.arch.body.len()).map(|i| model.params.get(&format!("conv{i}.bias")).read(g).unwrap()).collect();
    let mut losses2 = step.submit(g, &waveform, &objects, &scenes).unwrap();
    losses2.extend(step.finish(g).unwrap());
    assert_close("step 2 losses", &step.head_losses(&losses2[0]), &to_f64(&f.tensor("loss2").0), 1e-5);
    for (spec, grad) in step.grads.specs.iter().zip(&step.grads.tensors) {
        if !inert_under_batchnorm(&spec.name) {
            let expected = to_f64(&f.tensor(&format!("grad2.{}", spec.name)).0);
            assert_close(&format!("step 2 gradient of {}", spec.name), &grad.read(g).unwrap(), &expected, 1e-4);
        }
    }
    for (spec, param) in model.params.specs.iter().zip(&model.params.tensors) {
        if inert_under_batchnorm(&spec.name) {
            // Adam divides the rounding noise above by its own square root: the update of a
            // parameter with no gradient is noise of size ~lr on either side, and has no effect.
            continue;
        }
        let before = f.tensor(&format!("init.{}", spec.name)).0;
        let after = f.tensor(&format!("after2.{}", spec.name)).0;
        let update_gpu: Vec<f32> = param.read(g).unwrap().iter().zip(&before).map(|(a, b)| a - b).collect();
        let update_ref: Vec<f64> = after.iter().zip(&before).map(|(&a, &b)| f64::from(a) - f64::from(b)).collect();
        assert_close(&format!("update of {} over two steps", spec.name), &update_gpu, &update_ref, 1e-3);
    }
    for (spec, stat) in model.running.specs.iter().zip(&model.running.tensors) {
        let mut expected = to_f64(&f.tensor(&format!("after2.{}", spec.name)).0);
        if spec.name.ends_with("running_mean") {
            // Step 2's batch mean includes the conv bias, whose step-1 value is rounding noise
            // amplified by Adam on both sides (see inert_under_batchnorm): shift by the difference.
            let layer: usize = spec.name["bn".len()..spec.name.find('.').unwrap()].parse().unwrap();
            let ours = &biases_after1[layer - 1];
            let theirs = f.tensor(&format!("after1.conv{layer}.bias")).0;
            for ((e, o), t) in expected.iter_mut().zip(ours).zip(&theirs) {
                *e += 0.1 * (f64::from(*o) - f64::from(*t));
            }
        }
        assert_close(&format!("{} after two steps", spec.name), &stat.read(g).unwrap(), &expected, 1e-5);
    }
}

/// A conv bias followed by batchnorm: it cannot change the network's output.
fn inert_under_batchnorm(name: &str) -> bool {
    name.starts_with("conv") && name.ends_with(".bias")
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}
