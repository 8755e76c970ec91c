//! `ConvKernel::Auto`, measured: each pass of each convolution shape runs the kernel that was
//! fastest for it on this adapter. The candidates (plain, tiled, and cpu where it applies) are
//! timed once at the shape, on zeros (no kernel branches on values), and the choice goes to the
//! adapter's kernel-choice file (`gpu/tuning.rs`). Until a pass is measured, or where tuning is
//! off, the built-in rule of `choose_on` is the first guess.
//!
//! Each candidate is timed as one submission of the pass repeated until it lasts about 2 ms (so
//! a GPU's submission overhead does not decide between small passes), the least of three such
//! runs; a candidate whose first run takes over three times the best so far is dropped after it
//! (the plain kernels on a CPU driver run 10x slower: timing them thrice would triple the cost of
//! tuning for nothing).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{ensure, Result};

use super::{cpu, tiled, Conv1dShape, ConvKernel, Pass, PassKernel, PLAIN_SHADER};
use crate::gpu::tuning::{source_hash, Choice, TuneKey};
use crate::gpu::{Dispatch, Gpu, Recorder, Tensor};

/// The name a kernel has in the choice file and the tables.
pub fn kernel_name(kernel: PassKernel) -> &'static str {
    match kernel {
        PassKernel::Plain => "plain",
        PassKernel::Tiled => "tiled",
        PassKernel::Cpu => "cpu",
    }
}

fn kernel_by_name(name: &str) -> Option<PassKernel> {
    [PassKernel::Plain, PassKernel::Tiled, PassKernel::Cpu].into_iter().find(|k| kernel_name(*k) == name)
}

pub fn pass_name(pass: Pass) -> &'static str {
    match pass {
        Pass::Forward => "forward",
        Pass::InputGrad => "input_grad",
        Pass::WeightGrad => "weight_grad",
    }
}

/// The key of `pass` at `shape`: the hash of all three conv shaders, so editing any of them
/// measures every conv again.
pub fn key(shape: &Conv1dShape, pass: Pass) -> TuneKey {
    let Conv1dShape { n, cin, cout, l, k, stride, pad } = *shape;
    TuneKey {
        op: "conv1d",
        sources: source_hash(&[PLAIN_SHADER.source, tiled::SHADER.source, cpu::SHADER.source]),
        pass: pass_name(pass),
        shape: format!("n={n} cin={cin} cout={cout} l={l} k={k} stride={stride} pad={pad}"),
    }
}

/// The kernels that can compute `pass` of `shape` here, the built-in rule's choice first.
pub fn candidates(gpu: &Gpu, shape: &Conv1dShape, pass: Pass) -> Result<Vec<PassKernel>> {
    let first = ConvKernel::Auto.first_guess(gpu, shape, pass)?;
    let mut all = vec![first];
    let cpu_fits = cpu::available(gpu) && cpu::supports(shape, pass);
    for k in [PassKernel::Tiled, PassKernel::Plain, PassKernel::Cpu] {
        if k != first && (k != PassKernel::Cpu || cpu_fits) {
            all.push(k);
        }
    }
    Ok(all)
}

/// The measured choice for `pass` of `shape` on `gpu`, if there is one and its kernel can still
/// run it here.
pub fn cached(gpu: &Gpu, shape: &Conv1dShape, pass: Pass) -> Option<PassKernel> {
    let choice = gpu.tuning.lookup(&key(shape, pass))?;
    let kernel = kernel_by_name(&choice.kernel)?;
    let fits = kernel != PassKernel::Cpu || (cpu::available(gpu) && cpu::supports(shape, pass));
    fits.then_some(kernel)
}

/// The measured choice for `pass` of `shape`, measuring it with `time` (a candidate and the best
/// time so far -> its time in ns and the runs it took) when the file has none. Where tuning is
/// off, the first guess alone, unmeasured.
pub fn tune_with(
    gpu: &Gpu,
    shape: &Conv1dShape,
    pass: Pass,
    mut time: impl FnMut(PassKernel, Option<f64>) -> Result<(f64, u32)>,
) -> Result<Choice> {
    let key = key(shape, pass);
    if let Some(choice) = gpu.tuning.lookup(&key) {
        return Ok(choice);
    }
    let candidates = candidates(gpu, shape, pass)?;
    if !gpu.tuning.enabled() {
        let kernel = kernel_name(candidates[0]).to_string();
        return Ok(Choice { kernel, nanos: BTreeMap::new(), runs: BTreeMap::new() });
    }
    let (mut nanos, mut runs) = (BTreeMap::new(), BTreeMap::new());
    let mut best: Option<(f64, PassKernel)> = None;
    for kernel in candidates {
        let (t, r) = time(kernel, best.map(|b| b.0))?;
        ensure!(t.is_finite() && t > 0.0, "{} of conv1d {shape:?}: timed {t} ns", kernel_name(kernel));
        nanos.insert(kernel_name(kernel).to_string(), t);
        runs.insert(kernel_name(kernel).to_string(), r);
        if best.is_none_or(|(b, _)| t < b) {
            best = Some((t, kernel));
        }
    }
    let kernel = kernel_name(best.expect("at least one candidate").1).to_string();
    gpu.tuning.record(&key, Choice { kernel, nanos, runs })
}

/// [`tune_with`], timing each candidate on the device.
pub fn tune(gpu: &Gpu, shape: &Conv1dShape, pass: Pass) -> Result<Choice> {
    tune_with(gpu, shape, pass, |kernel, best| time_on_device(gpu, shape, pass, kernel, best))
}

/// Submissions of about this long each (see the module's comment).
const RUN_NANOS: f64 = 2e6;
const RUNS: u32 = 3;
/// A candidate this many times slower than the best in its first run is not timed again.
const DROP_FACTOR: f64 = 3.0;

/// Times `kernel` on `pass` of `shape`: nanoseconds per pass and the runs it was timed over.
pub fn time_on_device(
    gpu: &Gpu,
    shape: &Conv1dShape,
    pass: Pass,
    kernel: PassKernel,
    best: Option<f64>,
) -> Result<(f64, u32)> {
    let launches = record_pass(gpu, shape, pass, kernel)?;
    let run = |repeats: usize| -> Result<f64> {
        let start = Instant::now();
        let mut encoder = gpu.encoder("conv1d tuning");
        for _ in 0..repeats {
            for d in &launches {
                d.encode(gpu, &mut encoder);
            }
        }
        gpu.submit(encoder);
        gpu.wait()?;
        Ok(start.elapsed().as_nanos() as f64 / repeats as f64)
    };
    let first = run(1)?;
    if best.is_some_and(|b| first > DROP_FACTOR * b) {
        return Ok((first, 1));
    }
    let repeats = (RUN_NANOS / first).ceil().clamp(1.0, 64.0) as usize;
    let mut least = first;
    for _ in 0..RUNS {
        least = least.min(run(repeats)?);
    }
    Ok((least, 1 + RUNS))
}

/// The launches of one pass with `kernel` forced, on zero-filled tensors of `shape`.
fn record_pass(gpu: &Gpu, shape: &Conv1dShape, pass: Pass, kernel: PassKernel) -> Result<Vec<Dispatch>> {
    let t = |dims: &[usize], label: &str| Tensor::zeros(gpu, dims, label);
    let (x, w, y) = (t(&shape.input_dims(), "x")?, t(&shape.weight_dims(), "w")?, t(&shape.output_dims()?, "y")?);
    let out = match pass {
        Pass::Forward => t(&shape.output_dims()?, "y")?,
        Pass::InputGrad => t(&shape.input_dims(), "dx")?,
        Pass::WeightGrad => t(&shape.weight_dims(), "dw")?,
    };
    let mut launches = Vec::new();
    // Training always adds parameter gradients (micro-batches sum into them).
    encode_pass(gpu, &mut launches, shape, (kernel, pass), (&x, &w, &y), &out, pass == Pass::WeightGrad)?;
    Ok(launches)
}

/// Records `pass` of `shape` with `kernel` forced: forward reads `x` and `w` into `out` (no bias),
/// dX reads `dy` and `w` into `out`, dW reads `x` and `dy` into `out` (its db into scratch); the
/// gradients add to `out` when `accumulate`.
pub fn encode_pass(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    (kernel, pass): (PassKernel, Pass),
    (x, w, dy): (&Tensor, &Tensor, &Tensor),
    out: &Tensor,
    accumulate: bool,
) -> Result<()> {
    let forced = match kernel {
        PassKernel::Plain => ConvKernel::Plain,
        PassKernel::Tiled => ConvKernel::Tiled,
        PassKernel::Cpu => ConvKernel::Cpu,
    };
    ensure!(forced.choose(gpu, shape, pass)? == kernel, "{} cannot compute {pass:?} of {shape:?}", kernel_name(kernel));
    let bias = Tensor::zeros(gpu, &[shape.cout], "bias or its gradient")?;
    match pass {
        Pass::Forward => {
            super::encode_forward(gpu, rec, forced, shape, super::ForwardTensors { x, w, b: &bias, y: out })
        }
        Pass::InputGrad => super::encode_backward_input(
            gpu,
            rec,
            forced,
            shape,
            super::InputGradTensors { dy, w, dx: out },
            accumulate,
        ),
        Pass::WeightGrad => {
            let partials = match super::weight_grad_partials(gpu, forced, shape)? {
                0 => None,
                len => Some(Tensor::zeros(gpu, &[len], "partials")?),
            };
            super::encode_backward_params(
                gpu,
                rec,
                forced,
                shape,
                super::ParamGradTensors { x, dy, dw: out, db: &bias, partials: partials.as_ref() },
                accumulate,
            )
        }
    }
}
