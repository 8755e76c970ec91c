//! conv1d with every kernel this adapter can run (plain, tiled, and cpu where it has subgroups) on
//! three layers: y, dx, dw and db.

use anyhow::Result;

use super::{cpu, reference, Conv1dShape, ConvKernel};
use crate::gpu::Gpu;
use crate::ops::check::{to_f64, Check, Lab, BACKWARD, FORWARD};
use crate::ops::conv1d;

/// A SoundNet body layer with a long kernel, a K = 4 layer (the cpu kernels' narrowest rows) and a
/// head: a few outputs from many channels, no padding.
const LAYERS: [(&str, Conv1dShape); 3] = [
    ("SoundNet-like", Conv1dShape { n: 2, cin: 16, cout: 32, l: 300, k: 32, stride: 2, pad: 16 }),
    ("K=4", Conv1dShape { n: 2, cin: 64, cout: 40, l: 30, k: 4, stride: 2, pad: 2 }),
    ("head-like", Conv1dShape { n: 3, cin: 48, cout: 100, l: 15, k: 8, stride: 2, pad: 0 }),
];

pub fn checks(gpu: &Gpu) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for kernel in forced_conv_kernels(gpu) {
        for (seed, (name, shape)) in LAYERS.iter().enumerate() {
            checks.extend(check_layer(&mut Lab::new(gpu, seed as u64), kernel, name, shape)?);
        }
    }
    Ok(checks)
}

/// Forward, dX, and dW with db, each overwriting its NaN-poisoned output.
fn check_layer(lab: &mut Lab, kernel: ConvKernel, name: &str, s: &Conv1dShape) -> Result<Vec<Check>> {
    let (xs, ws, ys) = (s.input_dims(), s.weight_dims(), s.output_dims()?);
    let x = lab.randn(xs.iter().product());
    let w = lab.randn(ws.iter().product());
    let b = lab.randn(s.cout);
    let dy = lab.randn(ys.iter().product());
    let (xg, wg, bg, dyg) =
        (lab.upload(&x, &xs)?, lab.upload(&w, &ws)?, lab.upload(&b, &[s.cout])?, lab.upload(&dy, &ys)?);
    let (y, dx, dw, db) = (lab.poisoned(&ys)?, lab.poisoned(&xs)?, lab.poisoned(&ws)?, lab.poisoned(&[s.cout])?);
    let partials = match conv1d::weight_grad_partials(lab.gpu, kernel, s)? {
        0 => None,
        len => Some(lab.poisoned(&[len])?),
    };
    lab.run(|g, enc| {
        conv1d::encode_forward(g, enc, kernel, s, conv1d::ForwardTensors { x: &xg, w: &wg, b: &bg, y: &y })?;
        conv1d::encode_backward_input(
            g,
            enc,
            kernel,
            s,
            conv1d::InputGradTensors { dy: &dyg, w: &wg, dx: &dx },
            false,
        )?;
        conv1d::encode_backward_params(
            g,
            enc,
            kernel,
            s,
            conv1d::ParamGradTensors { x: &xg, dy: &dyg, dw: &dw, db: &db, partials: partials.as_ref() },
            false,
        )
    })?;
    let (x, w, b, dy) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
    let Conv1dShape { n, cin, cout, l, k, stride, pad } = *s;
    let layer = format!("{name} (N={n} Cin={cin} Cout={cout} L={l} K={k} stride={stride} pad={pad})");
    let what = |output: &str| format!("conv1d {} {layer}: {output}", kernel_name(kernel));
    Ok(vec![
        Check::compare(what("y"), &lab.read(&y)?, &reference::forward(s, &x, &w, &b), FORWARD),
        Check::compare(what("dx"), &lab.read(&dx)?, &reference::backward_input(s, &dy, &w), BACKWARD),
        Check::compare(what("dw"), &lab.read(&dw)?, &reference::backward_weight(s, &x, &dy), BACKWARD),
        Check::compare(what("db"), &lab.read(&db)?, &reference::backward_bias(s, &dy), BACKWARD),
    ])
}

/// The conv kernels that can be forced on `gpu`: plain and tiled anywhere, cpu where the adapter
/// has subgroup operations.
pub fn forced_conv_kernels(gpu: &Gpu) -> Vec<ConvKernel> {
    let mut kernels = vec![ConvKernel::Plain, ConvKernel::Tiled];
    if cpu::available(gpu) {
        kernels.push(ConvKernel::Cpu);
    }
    kernels
}

/// The name `--conv-kernel` takes for `kernel`.
pub fn kernel_name(kernel: ConvKernel) -> String {
    format!("{kernel:?}").to_lowercase()
}
