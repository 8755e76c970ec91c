//! The teacher-student losses, KL and the squared error on the probabilities (L2), forward (a GPU
//! reduction to one number) and backward, on SoundNet's two heads with teacher probabilities that
//! sum to one per column.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::check::{to_f64, Check, Lab, BACKWARD, FORWARD};
use crate::ops::teacher_loss::{self, ColumnShape, TeacherLoss};

const SHAPES: [ColumnShape; 2] = [ColumnShape { n: 2, c: 1000, t: 3 }, ColumnShape { n: 3, c: 401, t: 2 }];

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (seed, s) in SHAPES.iter().enumerate() {
        checks.extend(check_shape(&mut Lab::new(gpu, 600 + seed as u64), s)?);
    }
    Ok(checks)
}

/// A teacher: the softmax over classes of random logits, per (n, t) column.
fn teacher(lab: &mut Lab, s: &ColumnShape) -> Vec<f32> {
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

/// Both losses on one teacher and one set of logits.
fn check_shape(lab: &mut Lab, s: &ColumnShape) -> Result<Vec<Check>> {
    let dims = s.dims();
    let p = teacher(lab, s);
    let z = lab.randn(p.len());
    let (pg, zg) = (lab.upload(&p, &dims)?, lab.upload(&z, &dims)?);
    let (p64, z64) = (to_f64(&p), to_f64(&z));
    let mut checks = Vec::new();
    for kind in TeacherLoss::ALL {
        let (column_loss, loss, dz) = (lab.poisoned(&[s.columns()])?, lab.poisoned(&[1])?, lab.poisoned(&dims)?);
        lab.run(|g, enc| {
            teacher_loss::encode_forward(g, enc, kind, s, (&pg, &zg), &column_loss, &loss)?;
            teacher_loss::encode_backward(g, enc, kind, s, (&pg, &zg), &dz, 1.0)
        })?;
        let what = |output: &str| format!("{} (N={} C={} T={}): {output}", kind.op(), s.n, s.c, s.t);
        let want_loss = teacher_loss::reference::forward(kind, s, &p64, &z64);
        let want_dz = teacher_loss::reference::backward(kind, s, &p64, &z64, 1.0);
        checks.push(Check::compare(what("loss"), &lab.read(&loss)?, &[want_loss], FORWARD));
        checks.push(Check::compare(what("dz"), &lab.read(&dz)?, &want_dz, BACKWARD));
    }
    Ok(checks)
}
