//! Three Adam steps in a row on a length that is not a multiple of 4 (the CPU kernel's quads and
//! its tail): the parameters, exp_avg and exp_avg_sq after each step.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::adam::{self, reference, AdamConfig};
use crate::ops::check::{to_f64, Check, Lab, FORWARD};

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let lab = &mut Lab::new(gpu, 700);
    let (n, cfg) = (1001, AdamConfig::default());
    // Parameters start at zero, so the comparison sees the updates alone rather than updates
    // hidden under much larger starting values.
    let zeros = vec![0.0; n];
    let [param, m, v] = [lab.upload(&zeros, &[n])?, lab.upload(&zeros, &[n])?, lab.upload(&zeros, &[n])?];
    let (mut param_ref, mut m_ref, mut v_ref) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut checks = Vec::new();
    for step in 1..=3 {
        let grad = lab.randn(n);
        let grad_gpu = lab.upload(&grad, &[n])?;
        lab.run(|g, enc| adam::encode_step(g, enc, &cfg, step, (&param, &grad_gpu), (&m, &v)))?;
        reference::step(&cfg, step, &mut param_ref, &to_f64(&grad), &mut m_ref, &mut v_ref);
        let what = |output: &str| format!("adam (n={n}) step {step}: {output}");
        checks.extend([
            Check::compare(what("param"), &lab.read(&param)?, &param_ref, FORWARD),
            Check::compare(what("exp_avg"), &lab.read(&m)?, &m_ref, FORWARD),
            Check::compare(what("exp_avg_sq"), &lab.read(&v)?, &v_ref, FORWARD),
        ]);
    }
    Ok(checks)
}
