//! 1-D convolution, PyTorch layout and semantics (`F.conv1d` with stride and symmetric zero
//! padding): `x [N, Cin, L]`, `w [Cout, Cin, K]`, `b [Cout]` -> `y [N, Cout, Lout]`.
//! Shaders: `shaders/conv1d.wgsl`, the plain kernels (one invocation per output), whose header
//! gives the indexing and every backward formula; `shaders/conv1d_tiled.wgsl`, the same passes as
//! tiled implicit GEMM for GPUs (`tiled.rs`); and `shaders/conv1d_cpu.wgsl`, the same passes
//! shaped for CPU drivers (`cpu.rs`). This file holds what the three share: the shape, the kernel
//! choice, the bindings, the checked entry points that dispatch to a kernel, and the f64 reference. The caller asks for a [`ConvKernel`]; each pass then
//! runs the [`PassKernel`] it resolves to on the adapter at hand.

pub mod autotune;
pub mod cpu;
pub mod selftest;
pub mod tiled;

use anyhow::{bail, ensure, Result};
use bytemuck::{Pod, Zeroable};

use crate::autograd::{Backward, Tape, Var};
use crate::gpu::{grid, groups_for, Cost, DeviceClass, Gpu, Recorder};
use crate::gpu::{Binding, Shader, Tensor};

// The storage buffers of the three conv1d shaders, each named once; launches bind them by these
// names. All three declare 1 to 8 alike (conv1d_cpu reads w as vec4s); the tiled and cpu ones add
// 9 and 10.
pub(super) const X: Binding = Binding::read(1, "x");
pub(super) const W: Binding = Binding::read(2, "w");
pub(super) const B: Binding = Binding::read(3, "b");
pub(super) const Y: Binding = Binding::read_write(4, "y");
pub(super) const DY: Binding = Binding::read(5, "dy");
pub(super) const DX: Binding = Binding::read_write(6, "dx");
pub(super) const DW: Binding = Binding::read_write(7, "dw");
pub(super) const DB: Binding = Binding::read_write(8, "db");
pub(super) const PARTIALS: Binding = Binding::read_write(9, "partials");
pub(super) const STATS: Binding = Binding::read_write(10, "stats");

/// `shaders/conv1d.wgsl` and the storage buffers it declares.
pub const PLAIN_SHADER: Shader = Shader {
    name: "conv1d",
    source: include_str!("../../../shaders/conv1d.wgsl"),
    bindings: &[X, W, B, Y, DY, DX, DW, DB],
    needs_subgroups: false,
};

/// Statistics of the output left by the tiled or cpu forward ([`encode_forward_with_stats`]) for
/// the training-mode batchnorm that reads it: for each of `tiles` column tiles and each channel, the
/// count, mean and sum of squared deviations of its values, `[tiles, C, 3]`.
#[derive(Clone)]
pub struct TileStats {
    pub stats: Tensor,
    pub tiles: usize,
}

/// Which kernels compute forward, dX and dW (and with them db).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvKernel {
    /// One invocation per output element, every operand read from global memory: the readable
    /// version, kept to test and time the others against.
    Plain,
    /// Workgroup tiles of 4096 outputs that stage operands in workgroup memory and reuse each
    /// global read 15 to 32 times, whatever the shape: shaped for GPUs.
    Tiled,
    /// Lanes over channels and a row of positions per invocation in registers, strips shared by
    /// subgroup shuffles, no workgroup memory: shaped for CPU drivers (needs subgroups). Passes it
    /// cannot compute (forward and dX need K a multiple of 4) follow the `auto` rule for GPUs.
    Cpu,
    /// The kernel measured fastest for the pass on this adapter (`autotune.rs`, `sn-wgpu tune`).
    /// Until it is measured, the first guess: on a CPU adapter (`DeviceClass::Cpu`) with
    /// subgroups, `cpu` wherever it applies; otherwise tiled for each pass that launches enough
    /// tiles to fill a GPU, plain for the others, whose one invocation per output spreads a small
    /// pass (a head's few output steps, the late layers at batch 1) over the whole GPU where a few
    /// tiles with long reductions cannot.
    #[default]
    Auto,
}

/// The kernel family that computes one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKernel {
    Plain,
    Tiled,
    Cpu,
}

/// The three passes of a convolution (db comes with dW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

impl ConvKernel {
    /// The kernel that computes `pass` of `shape` on `gpu`: for `Auto`, the one measured fastest
    /// here ([`autotune`]) when it has been measured, else the built-in rule's first guess.
    pub fn choose(self, gpu: &Gpu, shape: &Conv1dShape, pass: Pass) -> Result<PassKernel> {
        if self == ConvKernel::Auto {
            if let Some(kernel) = autotune::cached(gpu, shape, pass) {
                return Ok(kernel);
            }
        }
        self.first_guess(gpu, shape, pass)
    }

    /// The kernel the built-in rule (`choose_on`) picks for `pass` of `shape` on `gpu`.
    pub fn first_guess(self, gpu: &Gpu, shape: &Conv1dShape, pass: Pass) -> Result<PassKernel> {
        let adapter = Adapter { class: gpu.class, subgroups: cpu::available(gpu) };
        self.choose_on(adapter, shape, pass).map_err(|e| e.context(format!("adapter {}", gpu.info.name)))
    }

    /// The kernel that computes `pass` of `shape` on an adapter like `adapter`.
    pub fn choose_on(self, adapter: Adapter, shape: &Conv1dShape, pass: Pass) -> Result<PassKernel> {
        let cpu_fits = adapter.subgroups && cpu::supports(shape, pass);
        Ok(match self {
            ConvKernel::Plain => PassKernel::Plain,
            ConvKernel::Tiled => PassKernel::Tiled,
            ConvKernel::Cpu => {
                ensure!(adapter.subgroups, "the cpu conv kernels need subgroup operations, which this adapter lacks");
                if cpu_fits {
                    PassKernel::Cpu
                } else {
                    gpu_rule(shape, pass)?
                }
            }
            ConvKernel::Auto if cpu_fits && adapter.class == DeviceClass::Cpu => PassKernel::Cpu,
            ConvKernel::Auto => gpu_rule(shape, pass)?,
        })
    }
}

/// What the kernel choice depends on: the device class and whether it has subgroup operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adapter {
    pub class: DeviceClass,
    pub subgroups: bool,
}

/// The first guess on a GPU before tuning measures it: the tiled kernel needs this many
/// workgroups to beat the plain one.
///
/// Measured on an NVIDIA H200 (132 multiprocessors), every pass of SoundNet-8 at batches 1, 8 and
/// 32 x 20 s with each kernel (docs/benchmarks.md, "On a real GPU"): the tiled kernel won every pass that
/// launched at least 96 workgroups and lost most below (conv7 at batch 8 with 32 workgroups: 0.49
/// ms tiled, 0.29 ms plain), however full its tiles; how full they are did not predict it (conv1's
/// dW fills a quarter of its tiles and runs 3.7x faster tiled). The plain kernels launch one
/// invocation per output, so they fill the GPU where a few tiles with long reductions cannot.
const MIN_TILED_WORKGROUPS: usize = 96;

/// Tiled where it launches enough workgroups to fill a GPU, plain elsewhere.
fn gpu_rule(shape: &Conv1dShape, pass: Pass) -> Result<PassKernel> {
    let tiled = tiled::workgroups_launched(shape, pass)? >= MIN_TILED_WORKGROUPS;
    Ok(if tiled { PassKernel::Tiled } else { PassKernel::Plain })
}

/// Floats of scratch `encode_backward_params` needs for `shape` with `kernel` (0: none).
pub fn weight_grad_partials(gpu: &Gpu, kernel: ConvKernel, shape: &Conv1dShape) -> Result<usize> {
    match kernel.choose(gpu, shape, Pass::WeightGrad)? {
        PassKernel::Plain => Ok(0),
        PassKernel::Tiled => tiled::weight_grad_partials(shape),
        PassKernel::Cpu => cpu::weight_grad_partials(shape, cpu::lanes(gpu)),
    }
}

const WG: u32 = 256;

/// The plain forward and dX give each output a whole workgroup (`forward_rows`,
/// `backward_input_rows`) when its sum has at least this many products and there are at most this
/// many outputs: one invocation per output would then leave most of a GPU idle, each adding
/// thousands of products alone (a head at batch 1: 4,000 outputs of 8,192 products).
///
/// Measured on an H200 (docs/benchmarks.md, "On a real GPU"): every such pass of SoundNet-8 at batch 1 (1,604
/// to 15,360 outputs) ran 2.3 to 24x faster, and the heads' forward at batch 8 (12,832 and 32,000
/// outputs) 1.5 and 3.8x; conv6 and conv7 at batch 8 (110,592 to 122,880 outputs) ran 1.7 to 2.3x
/// slower, where one invocation per output already fills the GPU.
const ROWS_MIN_SUM: usize = 1024;
const ROWS_MAX_OUTPUTS: usize = 1 << 15;

fn one_group_per_output(sum: usize, outputs: usize) -> bool {
    sum >= ROWS_MIN_SUM && outputs <= ROWS_MAX_OUTPUTS
}

/// backward_weight gives each weight element enough invocations (`lanes`) that each of them adds
/// up about this many of the N * Lout terms, at most a whole workgroup.
const TERMS_PER_LANE: usize = 64;

/// Invocations per weight element in backward_weight: a power of two from 1 to 256.
fn weight_lanes(terms: usize) -> u32 {
    terms.div_ceil(TERMS_PER_LANE).next_power_of_two().min(WG as usize) as u32
}

/// The sizes of one convolution. `l_out()` checks them and gives the output length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dShape {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub l: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Conv1dShape {
    /// `Lout = floor((L + 2 pad - K) / stride) + 1`, or an error when a size is zero or the input
    /// is too short to fit one window.
    pub fn l_out(&self) -> Result<usize> {
        let Conv1dShape { n, cin, cout, l, k, stride, pad } = *self;
        ensure!(
            n > 0 && cin > 0 && cout > 0 && l > 0 && k > 0 && stride > 0,
            "conv1d {self:?}: every size (n, cin, cout, l, k, stride) must be at least 1"
        );
        if l + 2 * pad < k {
            bail!(
                "conv1d {self:?}: input length {l} is too short for kernel {k} with padding {pad}; \
                 it must be at least K - 2*pad = {} (and at least 1)",
                k - 2 * pad
            );
        }
        Ok((l + 2 * pad - k) / stride + 1)
    }

    pub fn input_dims(&self) -> [usize; 3] {
        [self.n, self.cin, self.l]
    }

    pub fn weight_dims(&self) -> [usize; 3] {
        [self.cout, self.cin, self.k]
    }

    pub fn output_dims(&self) -> Result<[usize; 3]> {
        Ok([self.n, self.cout, self.l_out()?])
    }

    /// Multiply-adds in the forward pass; dX and dW take as many.
    fn macs(&self, l_out: usize) -> usize {
        self.n * self.cout * l_out * self.cin * self.k
    }

    /// The uniform parameters, after checking the sizes and that every index fits in a u32.
    fn params(&self, accumulate: bool) -> Result<Params> {
        let l_out = self.l_out()?;
        let largest = [self.n * self.cin * self.l, self.n * self.cout * l_out, self.cout * self.cin * self.k]
            .into_iter()
            .max()
            .unwrap_or(0);
        ensure!(
            largest < u32::MAX as usize && self.l + self.pad + self.k < i32::MAX as usize,
            "conv1d {self:?}: a tensor of {largest} elements is too large to index with 32 bits"
        );
        let u = |v: usize| v as u32;
        Ok(Params {
            n: u(self.n),
            cin: u(self.cin),
            cout: u(self.cout),
            l: u(self.l),
            k: u(self.k),
            stride: u(self.stride),
            pad: u(self.pad),
            l_out: u(l_out),
            accumulate: u32::from(accumulate),
            lanes: weight_lanes(self.n * l_out),
            _pad: [0; 2],
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    l: u32,
    k: u32,
    stride: u32,
    pad: u32,
    l_out: u32,
    accumulate: u32,
    lanes: u32,
    _pad: [u32; 2],
}

fn check(what: &str, tensor: &Tensor, expected: &[usize], shape: &Conv1dShape) -> Result<()> {
    ensure!(
        tensor.shape == expected,
        "conv1d: {what} has shape {:?}, expected {expected:?} for {shape:?}",
        tensor.shape
    );
    Ok(())
}

/// The tensors of `y = conv1d(x, w) + b`: `x` `[N, Cin, L]`, `w` `[Cout, Cin, K]`, `b` `[Cout]`,
/// `y` `[N, Cout, Lout]`.
#[derive(Clone, Copy)]
pub struct ForwardTensors<'t> {
    pub x: &'t Tensor,
    pub w: &'t Tensor,
    pub b: &'t Tensor,
    pub y: &'t Tensor,
}

/// The tensors of the input gradient: `dx` (shaped like `x`) from `dy` (shaped like `y`) and `w`.
#[derive(Clone, Copy)]
pub struct InputGradTensors<'t> {
    pub dy: &'t Tensor,
    pub w: &'t Tensor,
    pub dx: &'t Tensor,
}

/// The tensors of the parameter gradients: `dw` and `db` from the forward input `x` and `dy`;
/// `partials` is the scratch the tiled and cpu kernels split long sums into (see
/// [`weight_grad_partials`]; None when that is 0).
#[derive(Clone, Copy)]
pub struct ParamGradTensors<'t> {
    pub x: &'t Tensor,
    pub dy: &'t Tensor,
    pub dw: &'t Tensor,
    pub db: &'t Tensor,
    pub partials: Option<&'t Tensor>,
}

/// The forward's checked tensors: its uniform parameters, bindings and least cost.
type ForwardOperands<'t> = (Params, [(Binding, &'t Tensor); 4], Cost);

fn forward_operands<'t>(shape: &Conv1dShape, t: ForwardTensors<'t>) -> Result<ForwardOperands<'t>> {
    let ForwardTensors { x, w, b, y } = t;
    let params = shape.params(false)?;
    check("input x", x, &shape.input_dims(), shape)?;
    check("weight w", w, &shape.weight_dims(), shape)?;
    check("bias b", b, &[shape.cout], shape)?;
    check("output y", y, &shape.output_dims()?, shape)?;
    let cost = Cost::new(2 * shape.macs(y.shape[2]), x.numel() + w.numel() + b.numel() + y.numel());
    Ok((params, [(X, x), (W, w), (B, b), (Y, y)], cost))
}

/// Records `y = conv1d(x, w) + b`.
pub fn encode_forward(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    kernel: ConvKernel,
    shape: &Conv1dShape,
    t: ForwardTensors,
) -> Result<()> {
    let (params, buffers, cost) = forward_operands(shape, t)?;
    let y = t.y;
    match kernel.choose(gpu, shape, Pass::Forward)? {
        PassKernel::Tiled => tiled::forward(gpu, rec, shape, &buffers, cost)?,
        PassKernel::Cpu => cpu::forward(gpu, rec, shape, &buffers, cost)?,
        PassKernel::Plain if one_group_per_output(shape.cin * shape.k, y.numel()) => {
            let groups = grid(groups_for(y.numel(), 1));
            gpu.dispatch(rec, PLAIN_SHADER.entry("forward_rows"), &params, &buffers, groups, cost)
        }
        PassKernel::Plain => {
            gpu.dispatch(rec, PLAIN_SHADER.entry("forward"), &params, &buffers, grid(groups_for(y.numel(), WG)), cost)
        }
    }
    Ok(())
}

/// Column tiles of batch statistics the forward of `shape` with `kernel` leaves with its output
/// (see [`encode_forward_with_stats`]), or None when its kernel (plain) leaves none.
pub fn stats_tiles(gpu: &Gpu, kernel: ConvKernel, shape: &Conv1dShape) -> Result<Option<usize>> {
    Ok(match kernel.choose(gpu, shape, Pass::Forward)? {
        PassKernel::Tiled => Some(tiled::forward_tiles(shape)?),
        PassKernel::Cpu => Some(cpu::forward_tiles(shape, cpu::lanes(gpu))?),
        PassKernel::Plain => None,
    })
}

/// Records `y = conv1d(x, w) + b` with the tiled or cpu kernel, which also leaves the per-tile
/// statistics of `y` that a training-mode batchnorm on `y` merges instead of reading `y` again.
/// `stats` must be `[stats_tiles(gpu, kernel, shape), Cout, 3]`.
pub fn encode_forward_with_stats(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    kernel: ConvKernel,
    shape: &Conv1dShape,
    t: ForwardTensors,
    stats: &TileStats,
) -> Result<()> {
    let (_, buffers, cost) = forward_operands(shape, t)?;
    match kernel.choose(gpu, shape, Pass::Forward)? {
        PassKernel::Tiled => tiled::forward_stats(gpu, rec, shape, &buffers, &stats.stats, cost),
        PassKernel::Cpu => cpu::forward_stats(gpu, rec, shape, &buffers, &stats.stats, cost),
        PassKernel::Plain => bail!("conv1d {shape:?}: the plain forward leaves no batch statistics"),
    }
}

/// Records `dx`, the gradient of the loss with respect to the input, from `dy` (shaped like `y`);
/// adds to `dx` when `accumulate` (an input read by two ops).
pub fn encode_backward_input(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    kernel: ConvKernel,
    shape: &Conv1dShape,
    InputGradTensors { dy, w, dx }: InputGradTensors,
    accumulate: bool,
) -> Result<()> {
    let params = shape.params(accumulate)?;
    check("output gradient dy", dy, &shape.output_dims()?, shape)?;
    check("weight w", w, &shape.weight_dims(), shape)?;
    check("input gradient dx", dx, &shape.input_dims(), shape)?;
    let buffers = [(W, w), (DY, dy), (DX, dx)];
    let dx_moves = if accumulate { 2 } else { 1 } * dx.numel();
    let cost = Cost::new(2 * shape.macs(dy.shape[2]), dy.numel() + w.numel() + dx_moves);
    match kernel.choose(gpu, shape, Pass::InputGrad)? {
        PassKernel::Tiled => tiled::backward_input(gpu, rec, shape, accumulate, &buffers, cost)?,
        PassKernel::Cpu => cpu::backward_input(gpu, rec, shape, accumulate, &buffers, cost)?,
        PassKernel::Plain if one_group_per_output(shape.cout * shape.k.div_ceil(shape.stride), dx.numel()) => {
            let groups = grid(groups_for(dx.numel(), 1));
            gpu.dispatch(rec, PLAIN_SHADER.entry("backward_input_rows"), &params, &buffers, groups, cost);
        }
        PassKernel::Plain => {
            let groups = grid(groups_for(dx.numel(), WG));
            gpu.dispatch(rec, PLAIN_SHADER.entry("backward_input"), &params, &buffers, groups, cost);
        }
    }
    Ok(())
}

/// Records the parameter gradients `dw` (from the forward input `x` and `dy`) and `db` (from `dy`);
/// adds to them when `accumulate`. Plain: backward_weight, then backward_bias. Tiled and cpu: one
/// kernel for both, which splits long sums across workgroups and then needs `partials`, a scratch
/// tensor of at least [`weight_grad_partials`] floats (none when that is 0).
pub fn encode_backward_params(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    kernel: ConvKernel,
    shape: &Conv1dShape,
    ParamGradTensors { x, dy, dw, db, partials }: ParamGradTensors,
    accumulate: bool,
) -> Result<()> {
    let params = shape.params(accumulate)?;
    check("input x", x, &shape.input_dims(), shape)?;
    check("output gradient dy", dy, &shape.output_dims()?, shape)?;
    check("weight gradient dw", dw, &shape.weight_dims(), shape)?;
    check("bias gradient db", db, &[shape.cout], shape)?;
    match kernel.choose(gpu, shape, Pass::WeightGrad)? {
        PassKernel::Tiled => return tiled::backward_params(gpu, rec, shape, (x, dy), (dw, db), accumulate, partials),
        PassKernel::Cpu => return cpu::backward_params(gpu, rec, shape, (x, dy), (dw, db), accumulate, partials),
        PassKernel::Plain => {}
    }
    let buffers = [(X, x), (DY, dy), (DW, dw)];
    let weights_per_group = WG / params.lanes;
    let dw_moves = if accumulate { 2 } else { 1 } * dw.numel();
    let cost = Cost::new(2 * shape.macs(dy.shape[2]), x.numel() + dy.numel() + dw_moves);
    let groups = grid(groups_for(dw.numel(), weights_per_group));
    gpu.dispatch(rec, PLAIN_SHADER.entry("backward_weight"), &params, &buffers, groups, cost);
    encode_backward_bias(gpu, rec, shape, dy, db, accumulate)
}

/// Records `db` from `dy`; adds to `db` when `accumulate`.
pub fn encode_backward_bias(
    gpu: &Gpu,
    rec: &mut impl Recorder,
    shape: &Conv1dShape,
    dy: &Tensor,
    db: &Tensor,
    accumulate: bool,
) -> Result<()> {
    let params = shape.params(accumulate)?;
    check("output gradient dy", dy, &shape.output_dims()?, shape)?;
    check("bias gradient db", db, &[shape.cout], shape)?;
    // One workgroup per bias element.
    gpu.dispatch(
        rec,
        PLAIN_SHADER.entry("backward_bias"),
        &params,
        &[(DY, dy), (DB, db)],
        grid(groups_for(shape.cout, 1)),
        Cost::new(dy.numel(), dy.numel() + if accumulate { 2 } else { 1 } * db.numel()),
    );
    Ok(())
}

/// How a convolution is recorded on the tape.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub stride: usize,
    pub pad: usize,
    pub kernel: ConvKernel,
    /// Whether a training-mode batchnorm follows: the tiled or cpu forward then leaves per-tile
    /// statistics of the output, which `Tape::bn_relu_pool` merges instead of reading the output.
    pub batch_stats: bool,
}

impl Tape<'_> {
    /// `conv1d(x, w) + b` as `spec` says, and, with `spec.batch_stats`, the statistics of the
    /// output that its kernel left for the batchnorm after it (None from the plain kernel).
    pub fn conv1d(&mut self, x: Var, w: Var, b: Var, spec: ConvSpec, label: &str) -> Result<(Var, Option<TileStats>)> {
        let context = |e: anyhow::Error| e.context(label.to_string());
        let xs = self.shape_of(x, 3, "conv1d: input [N, Cin, L]").map_err(context)?;
        let ws = self.shape_of(w, 3, "conv1d: weight [Cout, Cin, K]").map_err(context)?;
        let ConvSpec { stride, pad, kernel, batch_stats } = spec;
        let shape = Conv1dShape { n: xs[0], cin: xs[1], l: xs[2], cout: ws[0], k: ws[2], stride, pad };
        let y = self.output(&shape.output_dims().map_err(context)?, label, &[x, w, b])?;
        let tiles = if batch_stats { stats_tiles(self.gpu(), kernel, &shape)? } else { None };
        let stats = match tiles {
            Some(tiles) => {
                Some(TileStats { stats: self.alloc(&[tiles, shape.cout, 3], "conv tile statistics")?, tiles })
            }
            None => None,
        };
        let [xt, wt, bt, yt] = [x, w, b, y].map(|v| self.value(v).clone());
        let tensors = ForwardTensors { x: &xt, w: &wt, b: &bt, y: &yt };
        let node = ConvNode { shape, kernel, x, w, b, y };
        self.record(label, Some(Box::new(node)), |g, rec| match &stats {
            Some(stats) => encode_forward_with_stats(g, rec, kernel, &shape, tensors, stats),
            None => encode_forward(g, rec, kernel, &shape, tensors),
        })?;
        Ok((y, stats))
    }
}

/// conv1d on the tape: its input and weight, each the other's partner in the gradients.
struct ConvNode {
    shape: Conv1dShape,
    kernel: ConvKernel,
    x: Var,
    w: Var,
    b: Var,
    y: Var,
}

impl Backward for ConvNode {
    fn record_backward(&self, tape: &mut Tape, _grad_scale: f32) -> Result<()> {
        let Some(dy) = tape.upstream(self.y) else { return Ok(()) };
        let (g, shape, kernel) = (tape.gpu(), &self.shape, self.kernel);
        if tape.needs_grad(self.w) || tape.needs_grad(self.b) {
            let what = format!("conv {shape:?}: its weight and bias");
            let [dw, db] = tape.parameter_grads([self.w, self.b], &what)?;
            let partials = match weight_grad_partials(g, kernel, shape)? {
                0 => None,
                len => Some(tape.alloc(&[len], "conv parameter gradient partial sums")?),
            };
            let x = tape.value(self.x).clone();
            // Parameter gradients always add: micro-batches sum into them.
            let rec = &mut tape.backward;
            let tensors = ParamGradTensors { x: &x, dy: &dy, dw: &dw, db: &db, partials: partials.as_ref() };
            encode_backward_params(g, rec, kernel, shape, tensors, true)?;
        }
        if tape.needs_grad(self.x) {
            let (dx, accumulate) = tape.grad_target(self.x, "conv input")?;
            let w = tape.value(self.w).clone();
            encode_backward_input(
                g,
                &mut tape.backward,
                kernel,
                shape,
                InputGradTensors { dy: &dy, w: &w, dx: &dx },
                accumulate,
            )?;
        }
        Ok(())
    }
}

/// The f64 CPU reference: the readable specification the GPU kernels are tested against.
/// Every function loops over the same (n, co, lo, ci, k) terms of the forward sum; the backward
/// passes send each term's gradient back to where it came from. Panics on an invalid shape.
pub mod reference {
    use super::Conv1dShape;

    /// The input position that tap `k` of output position `lo` reads, or None in the padding.
    fn input_position(s: &Conv1dShape, lo: usize, k: usize) -> Option<usize> {
        (lo * s.stride + k).checked_sub(s.pad).filter(|&pos| pos < s.l)
    }

    /// Calls `term(x index, w index, y index)` for every product in the forward sum.
    fn for_each_term(s: &Conv1dShape, mut term: impl FnMut(usize, usize, usize)) {
        let l_out = s.l_out().expect("conv1d reference");
        for n in 0..s.n {
            for co in 0..s.cout {
                for lo in 0..l_out {
                    for ci in 0..s.cin {
                        for k in 0..s.k {
                            if let Some(pos) = input_position(s, lo, k) {
                                let xi = (n * s.cin + ci) * s.l + pos;
                                let wi = (co * s.cin + ci) * s.k + k;
                                let yi = (n * s.cout + co) * l_out + lo;
                                term(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }

    fn output_len(s: &Conv1dShape) -> usize {
        s.n * s.cout * s.l_out().expect("conv1d reference")
    }

    /// `y[n,co,lo] = b[co] + sum_{ci,k} w[co,ci,k] * x[n,ci,lo*stride+k-pad]`.
    pub fn forward(s: &Conv1dShape, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let l_out = s.l_out().expect("conv1d reference");
        let mut y: Vec<f64> = (0..output_len(s)).map(|i| b[(i / l_out) % s.cout]).collect();
        for_each_term(s, |xi, wi, yi| y[yi] += w[wi] * x[xi]);
        y
    }

    pub fn backward_input(s: &Conv1dShape, dy: &[f64], w: &[f64]) -> Vec<f64> {
        let mut dx = vec![0.0; s.n * s.cin * s.l];
        for_each_term(s, |xi, wi, yi| dx[xi] += dy[yi] * w[wi]);
        dx
    }

    pub fn backward_weight(s: &Conv1dShape, x: &[f64], dy: &[f64]) -> Vec<f64> {
        let mut dw = vec![0.0; s.cout * s.cin * s.k];
        for_each_term(s, |xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
        dw
    }

    pub fn backward_bias(s: &Conv1dShape, dy: &[f64]) -> Vec<f64> {
        let l_out = s.l_out().expect("conv1d reference");
        let mut db = vec![0.0; s.cout];
        for (i, g) in dy.iter().enumerate() {
            db[(i / l_out) % s.cout] += g;
        }
        db
    }
}
