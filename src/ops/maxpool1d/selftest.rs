//! Max pooling forward and backward: SoundNet's windows (k = stride, a tail no window covers) and
//! overlapping ones, whose backward gathers from several windows. The argmax must match exactly.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::check::{to_f64, Check, Lab, BACKWARD, FORWARD};
use crate::ops::maxpool1d::{self, reference, MaxPool1dShape};

const SHAPES: [MaxPool1dShape; 2] =
    [MaxPool1dShape { n: 2, c: 6, l: 45, k: 8, stride: 8 }, MaxPool1dShape { n: 2, c: 3, l: 50, k: 5, stride: 2 }];

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for (seed, s) in SHAPES.iter().enumerate() {
        checks.extend(check_shape(&mut Lab::new(gpu, 400 + seed as u64), s)?);
    }
    Ok(checks)
}

fn check_shape(lab: &mut Lab, s: &MaxPool1dShape) -> Result<Vec<Check>> {
    let (ins, outs) = (s.input_shape(), s.output_shape()?);
    let (x, dy) = (lab.randn(ins.iter().product()), lab.randn(outs.iter().product()));
    let (xg, dyg) = (lab.upload(&x, &ins)?, lab.upload(&dy, &outs)?);
    let (y, argmax, dx) = (lab.poisoned(&outs)?, lab.poisoned(&outs)?, lab.poisoned(&ins)?);
    lab.run(|g, enc| {
        maxpool1d::encode_forward(g, enc, s, &xg, &y, &argmax)?;
        maxpool1d::encode_backward(g, enc, s, &argmax, &dyg, &dx)
    })?;
    let (y_ref, argmax_ref) = reference::forward(s, &to_f64(&x));
    let dx_ref = reference::backward(s, &argmax_ref, &to_f64(&dy));
    let MaxPool1dShape { n, c, l, k, stride } = *s;
    let what = |output: &str| format!("maxpool1d k={k} stride={stride} (N={n} C={c} L={l}): {output}");
    Ok(vec![
        Check::compare(what("y"), &lab.read(&y)?, &y_ref, FORWARD),
        Check::exact(what("argmax"), &argmax.read_u32(lab.gpu)?, &argmax_ref),
        Check::compare(what("dx"), &lab.read(&dx)?, &dx_ref, BACKWARD),
    ])
}
