//! ReLU forward and backward, on a length that is not a multiple of the workgroup size.

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::check::{to_f64, Check, Lab, BACKWARD, FORWARD};
use crate::ops::relu::{self, reference};

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let lab = &mut Lab::new(gpu, 300);
    let n = 1001;
    let (x, dy) = (lab.randn(n), lab.randn(n));
    let (xg, dyg, y, dx) = (lab.upload(&x, &[n])?, lab.upload(&dy, &[n])?, lab.poisoned(&[n])?, lab.poisoned(&[n])?);
    lab.run(|g, enc| {
        relu::encode_forward(g, enc, &xg, &y)?;
        relu::encode_backward(g, enc, &xg, &dyg, &dx)
    })?;
    let x = to_f64(&x);
    Ok(vec![
        Check::compare(format!("relu (n={n}): y"), &lab.read(&y)?, &reference::forward(&x), FORWARD),
        Check::compare(format!("relu (n={n}): dx"), &lab.read(&dx)?, &reference::backward(&x, &to_f64(&dy)), BACKWARD),
    ])
}
