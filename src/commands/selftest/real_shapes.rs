//! `sn-wgpu selftest --real-shapes`: every conv kernel's relative error against the f64 reference
//! at a model's real layer shapes and a real batch, where the reductions are as long as training
//! makes them (conv1's dW at batch 8 x 20 s sums 1.76 million products per weight). The kernel
//! tests use small shapes to stay fast; this is the measurement of how far each kernel's f32
//! rounding drifts at full size, kernel against kernel on the same random inputs.

use std::fmt::Write;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::rel_err;
use crate::gpu::{Gpu, Tensor};
use crate::model::tune::conv_passes;
use crate::model::Arch;
use crate::ops::conv1d::autotune::{candidates, encode_pass, kernel_name, pass_name};
use crate::ops::conv1d::{reference, Conv1dShape, Pass, PassKernel};

/// One pass of one layer: how many products each output sums, and each kernel's relative error.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassError {
    pub layer: String,
    pub pass: &'static str,
    pub terms: usize,
    pub errors: Vec<(&'static str, f64)>,
}

/// Runs every candidate kernel of every conv pass of `arch` at `batch` clips of `samples`.
pub fn measure(gpu: &Gpu, arch: &Arch, batch: usize, samples: usize) -> Result<Vec<PassError>> {
    let passes = conv_passes(arch, batch, samples, true)
        .ok_or_else(|| anyhow::anyhow!("{samples} samples are too short for {}", arch.name))?;
    let mut out = Vec::new();
    for (i, (layer, s, pass)) in passes.into_iter().enumerate() {
        let mut r = StdRng::seed_from_u64(i as u64);
        let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| StandardNormal.sample(&mut r)).collect() };
        let l_out = s.l_out()?;
        let (x, w, dy) = (randn(s.n * s.cin * s.l), randn(s.cout * s.cin * s.k), randn(s.n * s.cout * l_out));
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let (xr, wr, dyr) = (f(&x), f(&w), f(&dy));
        let (expected, terms) = match pass {
            Pass::Forward => (reference::forward(&s, &xr, &wr, &vec![0.0; s.cout]), s.cin * s.k),
            Pass::InputGrad => (reference::backward_input(&s, &dyr, &wr), s.cout * s.k.div_ceil(s.stride)),
            Pass::WeightGrad => (reference::backward_weight(&s, &xr, &dyr), s.n * l_out),
        };
        let mut errors = Vec::new();
        for kernel in candidates(gpu, &s, pass)? {
            let got = run(gpu, &s, pass, kernel, (&x, &w, &dy))?;
            errors.push((kernel_name(kernel), rel_err(&got, &expected)));
        }
        errors.sort_by_key(|(k, _)| *k);
        out.push(PassError { layer, pass: pass_name(pass), terms, errors });
    }
    Ok(out)
}

/// The pass's output with `kernel` (dW for the weight gradient, without db).
fn run(
    gpu: &Gpu,
    s: &Conv1dShape,
    pass: Pass,
    kernel: PassKernel,
    (x, w, dy): (&[f32], &[f32], &[f32]),
) -> Result<Vec<f32>> {
    let up = |v: &[f32], dims: &[usize]| Tensor::from_slice(gpu, v, dims, "selftest input");
    let (xt, wt, dyt) = (up(x, &s.input_dims())?, up(w, &s.weight_dims())?, up(dy, &s.output_dims()?)?);
    let dims = match pass {
        Pass::Forward => s.output_dims()?,
        Pass::InputGrad => s.input_dims(),
        Pass::WeightGrad => s.weight_dims(),
    };
    let out = Tensor::zeros(gpu, &dims, "selftest output")?;
    out.poison(gpu);
    let mut encoder = gpu.encoder("selftest real shapes");
    encode_pass(gpu, &mut encoder, s, (kernel, pass), (&xt, &wt, &dyt), &out, false)?;
    gpu.submit(encoder);
    out.read(gpu)
}

/// A Markdown table: layer, pass, products per output, each kernel's error.
pub fn table(errors: &[PassError]) -> String {
    let kernels = ["cpu", "plain", "tiled"];
    let mut out = String::from(
        "| layer | pass | products per output | cpu | plain | tiled |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for e in errors {
        let cell =
            |k: &str| e.errors.iter().find(|(n, _)| *n == k).map_or("-".to_string(), |(_, v)| format!("{v:.2e}"));
        let cells: Vec<String> = kernels.iter().map(|k| cell(k)).collect();
        let _ = writeln!(out, "| {} | {} | {} | {} |", e.layer, e.pass, e.terms, cells.join(" | "));
    }
    out
}
