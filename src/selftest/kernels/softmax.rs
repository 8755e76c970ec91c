//! Softmax and log-softmax over a head's channels, and their backward passes (each from the GPU's
//! own forward output, as the tape runs them).

use anyhow::Result;

use super::lab::Lab;
use super::{BACKWARD, FORWARD};
use crate::gpu::Gpu;
use crate::ops::softmax::{self, reference, SoftmaxShape};
use crate::selftest::{to_f64, Check};

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let lab = &mut Lab::new(gpu, 500);
    let s = SoftmaxShape { n: 2, c: 401, t: 3 };
    let dims = s.dims();
    // Logits of a trained head's spread.
    let z: Vec<f32> = lab.randn(dims.iter().product()).into_iter().map(|v| 3.0 * v).collect();
    let dy = lab.randn(z.len());
    let (zg, dyg) = (lab.upload(&z, &dims)?, lab.upload(&dy, &dims)?);
    let [sm, lsm, sm_dz, lsm_dz] =
        [lab.poisoned(&dims)?, lab.poisoned(&dims)?, lab.poisoned(&dims)?, lab.poisoned(&dims)?];
    lab.run(|g, enc| {
        softmax::encode_softmax(g, enc, &s, &zg, &sm)?;
        softmax::encode_log_softmax(g, enc, &s, &zg, &lsm)?;
        softmax::encode_softmax_backward(g, enc, &s, &sm, &dyg, &sm_dz)?;
        softmax::encode_log_softmax_backward(g, enc, &s, &lsm, &dyg, &lsm_dz)
    })?;
    let (z, dy) = (to_f64(&z), to_f64(&dy));
    let (sm_ref, lsm_ref) = (reference::softmax(&s, &z), reference::log_softmax(&s, &z));
    let what = |output: &str| format!("softmax (N={} C={} T={}): {output}", s.n, s.c, s.t);
    Ok(vec![
        Check::compare(what("softmax"), &lab.read(&sm)?, &sm_ref, FORWARD),
        Check::compare(what("log_softmax"), &lab.read(&lsm)?, &lsm_ref, FORWARD),
        Check::compare(
            what("softmax dz"),
            &lab.read(&sm_dz)?,
            &reference::softmax_backward(&s, &sm_ref, &dy),
            BACKWARD,
        ),
        Check::compare(
            what("log_softmax dz"),
            &lab.read(&lsm_dz)?,
            &reference::log_softmax_backward(&s, &lsm_ref, &dy),
            BACKWARD,
        ),
    ])
}
