//! The teacher-student losses, KL and the squared error on the probabilities (`l2_prob`), forward
//! (a GPU reduction to one number) and backward, on SoundNet's two heads with teacher probabilities
//! that sum to one per column.

use anyhow::Result;

use super::lab::Lab;
use super::{BACKWARD, FORWARD};
use crate::gpu::Gpu;
use crate::ops::kl_div::{self, KlDivShape};
use crate::ops::l2_prob;
use crate::selftest::{to_f64, Check};

const SHAPES: [KlDivShape; 2] = [KlDivShape { n: 2, c: 1000, t: 3 }, KlDivShape { n: 3, c: 401, t: 2 }];

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (seed, s) in SHAPES.iter().enumerate() {
        checks.extend(check_shape(&mut Lab::new(gpu, 600 + seed as u64), s)?);
    }
    Ok(checks)
}

/// A teacher: the softmax over classes of random logits, per (n, t) column.
fn teacher(lab: &mut Lab, s: &KlDivShape) -> Vec<f32> {
    let logits = lab.randn(s.n * s.c * s.t);
    let mut p: Vec<f32> = logits.iter().map(|v| v.exp()).collect();
    for n in 0..s.n {
        for t in 0..s.t {
            let at = |c: usize| (n * s.c + c) * s.t + t;
            let total: f32 = (0..s.c).map(|c| p[at(c)]).sum();
            (0..s.c).for_each(|c| p[at(c)] /= total);
        }
    }
    p
}

fn check_shape(lab: &mut Lab, s: &KlDivShape) -> Result<Vec<Check>> {
    let dims = s.dims();
    let p = teacher(lab, s);
    let z = lab.randn(p.len());
    let (pg, zg) = (lab.upload(&p, &dims)?, lab.upload(&z, &dims)?);
    let (column_loss, loss, dz) = (lab.poisoned(&[s.columns()])?, lab.poisoned(&[1])?, lab.poisoned(&dims)?);
    let (p64, z64) = (to_f64(&p), to_f64(&z));
    let mut checks = Vec::new();
    lab.run(|g, enc| {
        kl_div::encode_forward(g, enc, s, &pg, &zg, &column_loss, &loss)?;
        kl_div::encode_backward(g, enc, s, &pg, &zg, &dz, 1.0)
    })?;
    let what = |op: &str, output: &str| format!("{op} (N={} C={} T={}): {output}", s.n, s.c, s.t);
    let (want_loss, want_dz) =
        (kl_div::reference::forward(s, &p64, &z64), kl_div::reference::backward(s, &p64, &z64, 1.0));
    checks.push(Check::compare(what("kl_div", "loss"), &lab.read(&loss)?, &[want_loss], FORWARD));
    checks.push(Check::compare(what("kl_div", "dz"), &lab.read(&dz)?, &want_dz, BACKWARD));
    let (loss, dz) = (lab.poisoned(&[1])?, lab.poisoned(&dims)?);
    lab.run(|g, enc| {
        l2_prob::encode_forward(g, enc, s, &pg, &zg, &column_loss, &loss)?;
        l2_prob::encode_backward(g, enc, s, &pg, &zg, &dz, 1.0)
    })?;
    let (want_loss, want_dz) =
        (l2_prob::reference::forward(s, &p64, &z64), l2_prob::reference::backward(s, &p64, &z64, 1.0));
    checks.push(Check::compare(what("l2_prob", "loss"), &lab.read(&loss)?, &[want_loss], FORWARD));
    checks.push(Check::compare(what("l2_prob", "dz"), &lab.read(&dz)?, &want_dz, BACKWARD));
    Ok(checks)
}
