//! The plain batchnorm kernels: training forward and backward (the unfused path, `--plain`), and
//! eval, which uses the running statistics and must leave them alone.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::gpu::Tensor;
use crate::ops::batchnorm::{self, reference, Affine, BatchNormShape, Grads, RunningStats, Saved};
use crate::ops::batchnorm::{DEFAULT_EPS, DEFAULT_MOMENTUM};
use crate::ops::check::{to_f64, Check, Lab, BACKWARD, FORWARD};

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = check_train(&mut Lab::new(gpu, 200), &BatchNormShape::new(2, 12, 45)?)?;
    checks.extend(check_eval(&mut Lab::new(gpu, 201), &BatchNormShape::new(2, 7, 19)?)?);
    Ok(checks)
}

/// A layer's random inputs on the GPU: `x`, `gamma`, `beta` and positive running statistics.
struct Layer {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    tensors: [Tensor; 5],
}

impl Layer {
    fn random(lab: &mut Lab, s: &BatchNormShape) -> Result<Layer> {
        let x = lab.randn(s.numel());
        let (gamma, beta, running_mean) = (lab.randn(s.c), lab.randn(s.c), lab.randn(s.c));
        let running_var: Vec<f32> = lab.randn(s.c).into_iter().map(|v| 0.5 + v.abs()).collect();
        let ch = [s.c];
        let tensors = [
            lab.upload(&x, &[s.n, s.c, s.l])?,
            lab.upload(&gamma, &ch)?,
            lab.upload(&beta, &ch)?,
            lab.upload(&running_mean, &ch)?,
            lab.upload(&running_var, &ch)?,
        ];
        Ok(Layer { x, gamma, beta, running_mean, running_var, tensors })
    }
}

fn check_train(lab: &mut Lab, s: &BatchNormShape) -> Result<Vec<Check>> {
    let layer = Layer::random(lab, s)?;
    let [x, gamma, beta, rm, rv] = &layer.tensors;
    let (dims, ch) = ([s.n, s.c, s.l], [s.c]);
    let dy = lab.randn(s.numel());
    let dyg = lab.upload(&dy, &dims)?;
    let (y, save_mean, save_invstd) = (lab.poisoned(&dims)?, lab.poisoned(&ch)?, lab.poisoned(&ch)?);
    let (dx, dgamma, dbeta, channel_sums) =
        (lab.poisoned(&dims)?, lab.poisoned(&ch)?, lab.poisoned(&ch)?, lab.poisoned(&[2, s.c])?);
    lab.run(|g, enc| {
        let (eps, momentum) = (DEFAULT_EPS, DEFAULT_MOMENTUM);
        batchnorm::encode_forward_train(
            g,
            enc,
            s,
            (x, &y),
            Affine { gamma, beta },
            batchnorm::TrainStats {
                running: RunningStats { mean: rm, var: rv },
                saved: Saved { mean: &save_mean, invstd: &save_invstd },
                eps,
                momentum,
            },
        )?;
        batchnorm::encode_backward(
            g,
            enc,
            s,
            (x, &dyg),
            gamma,
            Saved { mean: &save_mean, invstd: &save_invstd },
            Grads { dx: &dx, dgamma: &dgamma, dbeta: &dbeta, channel_sums: &channel_sums, accumulate: false },
        )
    })?;
    let (x, gamma) = (to_f64(&layer.x), to_f64(&layer.gamma));
    let (rm_in, rv_in) = (to_f64(&layer.running_mean), to_f64(&layer.running_var));
    let (eps, momentum) = (f64::from(DEFAULT_EPS), f64::from(DEFAULT_MOMENTUM));
    let fwd = reference::forward_train(s, &x, &gamma, &to_f64(&layer.beta), (&rm_in, &rv_in), (eps, momentum));
    let grads = reference::backward(s, &x, &to_f64(&dy), &gamma, &fwd.mean, &fwd.invstd);
    let what = |output: &str| format!("batchnorm train (N={} C={} L={}): {output}", s.n, s.c, s.l);
    Ok(vec![
        Check::compare(what("y"), &lab.read(&y)?, &fwd.y, FORWARD),
        Check::compare(what("save_mean"), &lab.read(&save_mean)?, &fwd.mean, FORWARD),
        Check::compare(what("save_invstd"), &lab.read(&save_invstd)?, &fwd.invstd, FORWARD),
        Check::compare(what("running_mean"), &lab.read(rm)?, &fwd.running_mean, FORWARD),
        Check::compare(what("running_var"), &lab.read(rv)?, &fwd.running_var, FORWARD),
        Check::compare(what("dx"), &lab.read(&dx)?, &grads.dx, BACKWARD),
        Check::compare(what("dgamma"), &lab.read(&dgamma)?, &grads.dgamma, BACKWARD),
        Check::compare(what("dbeta"), &lab.read(&dbeta)?, &grads.dbeta, BACKWARD),
    ])
}

fn check_eval(lab: &mut Lab, s: &BatchNormShape) -> Result<Vec<Check>> {
    let layer = Layer::random(lab, s)?;
    let [x, gamma, beta, rm, rv] = &layer.tensors;
    let y = lab.poisoned(&[s.n, s.c, s.l])?;
    lab.run(|g, enc| {
        batchnorm::encode_forward_eval(
            g,
            enc,
            s,
            (x, &y),
            Affine { gamma, beta },
            RunningStats { mean: rm, var: rv },
            DEFAULT_EPS,
        )
    })?;
    let expected = reference::forward_eval(
        s,
        &to_f64(&layer.x),
        &to_f64(&layer.gamma),
        &to_f64(&layer.beta),
        &to_f64(&layer.running_mean),
        &to_f64(&layer.running_var),
        f64::from(DEFAULT_EPS),
    );
    let what = |output: &str| format!("batchnorm eval (N={} C={} L={}): {output}", s.n, s.c, s.l);
    Ok(vec![
        Check::compare(what("y"), &lab.read(&y)?, &expected, FORWARD),
        Check::exact(
            what("running statistics untouched"),
            &[lab.read(rm)?, lab.read(rv)?].concat(),
            &[layer.running_mean.as_slice(), &layer.running_var].concat(),
        ),
    ])
}
