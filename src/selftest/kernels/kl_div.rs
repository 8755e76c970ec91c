//! The teacher-student loss, forward (a GPU reduction to one number) and backward, on SoundNet's
//! two heads with teacher probabilities that sum to one per column.

use anyhow::Result;

use super::lab::Lab;
use super::{BACKWARD, FORWARD};
use crate::gpu::Gpu;
use crate::ops::kl_div::{self, reference, KlDivShape};
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
    lab.run(|g, enc| {
        kl_div::encode_forward(g, enc, s, &pg, &zg, &column_loss, &loss)?;
        kl_div::encode_backward(g, enc, s, &pg, &zg, &dz, 1.0)
    })?;
    let (p, z) = (to_f64(&p), to_f64(&z));
    let what = |output: &str| format!("kl_div (N={} C={} T={}): {output}", s.n, s.c, s.t);
    Ok(vec![
        Check::compare(what("loss"), &lab.read(&loss)?, &[reference::forward(s, &p, &z)], FORWARD),
        Check::compare(what("dz"), &lab.read(&dz)?, &reference::backward(s, &p, &z, 1.0), BACKWARD),
    ])
}
