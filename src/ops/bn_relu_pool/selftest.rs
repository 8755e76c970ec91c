//! The fused training-mode batchnorm -> ReLU (-> max-pool) layer, forward then backward, pooled
//! (with a tail no window covers) and not: every output, the argmax exactly.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::batchnorm::{Affine, Grads, RunningStats, Saved, TrainStats, DEFAULT_EPS, DEFAULT_MOMENTUM};
use crate::ops::bn_relu_pool::{self, reference, BnReluPoolShape};
use crate::ops::check::{to_f64, Check, Lab, BACKWARD, FORWARD};

/// (N, C, L, k); the last is long enough that the GPU kernels cut each channel's sums into runs.
const SHAPES: [(usize, usize, usize, usize); 3] = [(2, 24, 67, 8), (3, 20, 33, 1), (2, 4, 9001, 4)];

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (seed, (n, c, l, k)) in SHAPES.into_iter().enumerate() {
        checks.extend(check_layer(&mut Lab::new(gpu, 100 + seed as u64), &BnReluPoolShape::new(n, c, l, k)?)?);
    }
    Ok(checks)
}

fn check_layer(lab: &mut Lab, s: &BnReluPoolShape) -> Result<Vec<Check>> {
    let (ins, outs, ch) = (s.input_shape(), s.output_shape(), [s.c]);
    let x = lab.randn(ins.iter().product());
    let (gamma, beta, running_mean) = (lab.randn(s.c), lab.randn(s.c), lab.randn(s.c));
    let running_var: Vec<f32> = lab.randn(s.c).into_iter().map(|v| 0.5 + v.abs()).collect();
    let dy = lab.randn(outs.iter().product());
    let (xg, dyg) = (lab.upload(&x, &ins)?, lab.upload(&dy, &outs)?);
    let (gamma_g, beta_g) = (lab.upload(&gamma, &ch)?, lab.upload(&beta, &ch)?);
    let (rm, rv) = (lab.upload(&running_mean, &ch)?, lab.upload(&running_var, &ch)?);
    let (y, save_mean, save_invstd) = (lab.poisoned(&outs)?, lab.poisoned(&ch)?, lab.poisoned(&ch)?);
    let argmax = if s.pooled() { Some(lab.poisoned(&outs)?) } else { None };
    let (dx, dgamma, dbeta) = (lab.poisoned(&ins)?, lab.poisoned(&ch)?, lab.poisoned(&ch)?);
    let channel_sums = lab.poisoned(&bn_relu_pool::channel_sums_shape(lab.gpu, s))?;
    lab.run(|g, enc| {
        let argmax = argmax.as_ref();
        bn_relu_pool::encode_forward_train(
            g,
            enc,
            s,
            (&xg, None),
            (&y, argmax),
            Affine { gamma: &gamma_g, beta: &beta_g },
            TrainStats {
                running: RunningStats { mean: &rm, var: &rv },
                saved: Saved { mean: &save_mean, invstd: &save_invstd },
                eps: DEFAULT_EPS,
                momentum: DEFAULT_MOMENTUM,
            },
        )?;
        bn_relu_pool::encode_backward(
            g,
            enc,
            s,
            (&xg, &dyg, argmax),
            Affine { gamma: &gamma_g, beta: &beta_g },
            Saved { mean: &save_mean, invstd: &save_invstd },
            Grads { dx: &dx, dgamma: &dgamma, dbeta: &dbeta, channel_sums: &channel_sums, accumulate: false },
        )
    })?;

    let (x, gamma, beta) = (to_f64(&x), to_f64(&gamma), to_f64(&beta));
    let (eps, momentum) = (f64::from(DEFAULT_EPS), f64::from(DEFAULT_MOMENTUM));
    let fwd = reference::forward_train(
        s,
        &x,
        &gamma,
        &beta,
        (&to_f64(&running_mean), &to_f64(&running_var)),
        (eps, momentum),
    );
    let grads = reference::backward(s, &x, &to_f64(&dy), &fwd.argmax, &gamma, &beta, (&fwd.mean, &fwd.invstd));
    let what = |output: &str| format!("bn_relu_pool k={} (N={} C={} L={}): {output}", s.k, s.n, s.c, s.l);
    let mut checks = vec![Check::compare(what("y"), &lab.read(&y)?, &fwd.y, FORWARD)];
    if let Some(argmax) = &argmax {
        checks.push(Check::exact(what("argmax"), &argmax.read_u32(lab.gpu)?, &fwd.argmax));
    }
    checks.extend([
        Check::compare(what("save_mean"), &lab.read(&save_mean)?, &fwd.mean, FORWARD),
        Check::compare(what("save_invstd"), &lab.read(&save_invstd)?, &fwd.invstd, FORWARD),
        Check::compare(what("running_mean"), &lab.read(&rm)?, &fwd.running_mean, FORWARD),
        Check::compare(what("running_var"), &lab.read(&rv)?, &fwd.running_var, FORWARD),
        Check::compare(what("dx"), &lab.read(&dx)?, &grads.dx, BACKWARD),
        Check::compare(what("dgamma"), &lab.read(&dgamma)?, &grads.dgamma, BACKWARD),
        Check::compare(what("dbeta"), &lab.read(&dbeta)?, &grads.dbeta, BACKWARD),
    ]);
    Ok(checks)
}
