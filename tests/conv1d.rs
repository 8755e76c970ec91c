//! Conv1d: every kernel (plain, tiled, cpu) against the f64 reference on every SoundNet layer and
//! on awkward shapes, finite-difference checks of the reference backward passes, and the PyTorch
//! fixture. The cpu kernels compute forward and dX only where K is a multiple of 4 (and dX where
//! the stride divides its chunk of taps); elsewhere `Cpu` falls back to the GPU rule, so the cases
//! that must run them say so (`check_cpu`).

mod common;
use common::*;
use rand::Rng;
use sn_wgpu::gpu::DeviceClass;
use sn_wgpu::ops::conv1d::tiled::{TilePlan, WeightSplit};
use sn_wgpu::ops::conv1d::{self, reference, Adapter, Conv1dShape, ConvKernel, Pass, PassKernel};
use sn_wgpu::{Gpu, Tensor};

const KERNELS: [ConvKernel; 3] = [ConvKernel::Plain, ConvKernel::Tiled, ConvKernel::Cpu];
const PASSES: [Pass; 3] = [Pass::Forward, Pass::InputGrad, Pass::WeightGrad];

fn shape(n: usize, cin: usize, cout: usize, l: usize, k: usize, stride: usize, pad: usize) -> Conv1dShape {
    Conv1dShape { n, cin, cout, l, k, stride, pad }
}

/// The scratch the weight gradient needs for `s` with `kernel`, if any.
fn partials(g: &Gpu, kernel: ConvKernel, s: &Conv1dShape) -> Option<Tensor> {
    let len = conv1d::weight_grad_partials(g, kernel, s).unwrap();
    (len > 0).then(|| poisoned_on(g, &[len]))
}

/// Records the forward pass `(b, y)` if given, then dX, dW and db with `kernel`; the gradients
/// overwrite, or add when `accumulate`.
#[allow(clippy::too_many_arguments)] // the tensors of all four passes by role, as each test names them
fn encode_all(
    g: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    kernel: ConvKernel,
    s: &Conv1dShape,
    (x, w, dy): (&Tensor, &Tensor, &Tensor),
    forward: Option<(&Tensor, &Tensor)>,
    (dx, dw, db): (&Tensor, &Tensor, &Tensor),
    accumulate: bool,
) {
    let scratch = partials(g, kernel, s);
    if let Some((b, y)) = forward {
        conv1d::encode_forward(g, enc, kernel, s, conv1d::ForwardTensors { x, w, b, y }).unwrap();
    }
    conv1d::encode_backward_input(g, enc, kernel, s, conv1d::InputGradTensors { dy, w, dx }, accumulate).unwrap();
    conv1d::encode_backward_params(
        g,
        enc,
        kernel,
        s,
        conv1d::ParamGradTensors { x, dy, dw, db, partials: scratch.as_ref() },
        accumulate,
    )
    .unwrap();
}

/// Runs all four passes of both kernels on random data (into NaN-poisoned outputs) and compares
/// each with the reference. `what` names the case in failure messages.
fn check(what: &str, s: Conv1dShape, seed: u64) {
    for kernel in KERNELS {
        check_kernel(gpu(), &format!("{what} ({kernel:?})"), kernel, s, seed);
    }
}

/// `check`, after making sure that every pass of `s` runs the cpu kernels on `g`.
fn check_cpu(g: &Gpu, what: &str, s: Conv1dShape, seed: u64) {
    for pass in PASSES {
        let chosen = ConvKernel::Cpu.choose(g, &s, pass).unwrap();
        assert_eq!(chosen, PassKernel::Cpu, "{what} {s:?} {pass:?} must run the cpu kernel");
    }
    check_kernel(g, &format!("{what} (cpu, {} lanes)", conv1d::cpu::lanes(g)), ConvKernel::Cpu, s, seed);
}

fn check_kernel(g: &Gpu, what: &str, kernel: ConvKernel, s: Conv1dShape, seed: u64) {
    let mut r = rng(seed);
    let l_out = s.l_out().unwrap();
    let (xs, ws, ys) = (s.input_dims(), s.weight_dims(), s.output_dims().unwrap());
    let x = randn(&mut r, s.n * s.cin * s.l);
    let w = randn(&mut r, s.cout * s.cin * s.k);
    let b = randn(&mut r, s.cout);
    let dy = randn(&mut r, s.n * s.cout * l_out);
    let up = |data: &[f32], shape: &[usize]| upload_on(g, data, shape);
    let (xg, wg, bg, dyg) = (up(&x, &xs), up(&w, &ws), up(&b, &[s.cout]), up(&dy, &ys));
    let poison = |shape: &[usize]| poisoned_on(g, shape);
    let (y, dx, dw, db) = (poison(&ys), poison(&xs), poison(&ws), poison(&[s.cout]));
    run_on(g, |enc| encode_all(g, enc, kernel, &s, (&xg, &wg, &dyg), Some((&bg, &y)), (&dx, &dw, &db), false));
    let (x, w, b, dy) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
    assert_close(&format!("{what} {s:?} y"), &y.read(g).unwrap(), &reference::forward(&s, &x, &w, &b), 1e-5);
    assert_close(&format!("{what} {s:?} dx"), &dx.read(g).unwrap(), &reference::backward_input(&s, &dy, &w), 1e-4);
    assert_close(&format!("{what} {s:?} dw"), &dw.read(g).unwrap(), &reference::backward_weight(&s, &x, &dy), 1e-4);
    assert_close(&format!("{what} {s:?} db"), &db.read(g).unwrap(), &reference::backward_bias(&s, &dy), 1e-4);
}

#[test]
fn every_soundnet_layer() {
    // The real channel counts, kernels, strides and paddings of every layer; only N and L are
    // small (conv7 and the heads at the shortest L that fits their kernel).
    let layers = [
        ("conv1", shape(2, 1, 16, 200, 64, 2, 32)),
        ("conv2", shape(2, 16, 32, 64, 32, 2, 16)),
        ("conv3", shape(2, 32, 64, 40, 16, 2, 8)),
        ("conv4", shape(2, 64, 128, 20, 8, 2, 4)),
        ("conv5", shape(2, 128, 256, 10, 4, 2, 2)),
        ("conv6", shape(1, 256, 512, 6, 4, 2, 2)),
        ("conv7", shape(1, 512, 1024, 4, 4, 2, 2)),
        ("head 1024->1000", shape(1, 1024, 1000, 8, 8, 2, 0)),
        ("head 1024->401", shape(2, 1024, 401, 11, 8, 2, 0)),
        ("SoundNet-5 head 256->1000", shape(1, 256, 1000, 40, 16, 12, 4)),
    ];
    for (i, (name, s)) in layers.into_iter().enumerate() {
        check(name, s, i as u64);
    }
}

#[test]
fn long_reductions_over_n_and_lout() {
    // N * Lout from 65 to 12,000 terms per weight: every workgroup split from 2 lanes per weight
    // to a whole workgroup of 256, with partial sums that wrap around several times.
    check("conv1 long", shape(3, 1, 3, 8_000, 64, 2, 32), 100);
    check("conv2 medium", shape(2, 3, 5, 1_001, 32, 2, 16), 101);
    check("conv4 short", shape(5, 4, 3, 25, 8, 2, 4), 102);
    check("258 terms", shape(2, 2, 3, 129, 1, 1, 0), 103);
}

#[test]
fn awkward_shapes() {
    let cases = [
        ("odd L", shape(3, 3, 5, 37, 5, 2, 1)),
        ("Lout = 1 from L = K - 2p", shape(2, 3, 4, 4, 8, 2, 2)),
        ("Lout = 1, no padding", shape(2, 3, 4, 9, 8, 2, 0)),
        ("channels not multiples of 256", shape(1, 257, 259, 5, 3, 1, 1)),
        ("outputs not a multiple of 256", shape(3, 7, 11, 23, 3, 1, 1)),
        ("padding wider than the stride", shape(2, 2, 3, 17, 7, 2, 5)),
        ("padding wider than the kernel", shape(2, 2, 3, 6, 3, 2, 5)),
        ("stride > K", shape(2, 3, 2, 40, 3, 7, 1)),
        ("stride > K with padding", shape(2, 3, 2, 41, 2, 5, 3)),
        ("K = 1", shape(2, 4, 3, 15, 1, 1, 0)),
        ("K = 1, stride 3", shape(2, 4, 3, 16, 1, 3, 0)),
        // Sums long enough for the plain kernels' workgroup per output (forward_rows,
        // backward_input_rows): padding, and inputs no output touches (stride > K).
        ("a workgroup per output, padded", shape(2, 130, 9, 13, 9, 3, 4)),
        ("a workgroup per output, stride > K", shape(1, 2, 1100, 20, 2, 3, 1)),
        ("L = 1", shape(2, 3, 2, 1, 3, 1, 1)),
        ("N = Cin = Cout = 1", shape(1, 1, 1, 10, 3, 2, 1)),
    ];
    for (i, (name, s)) in cases.into_iter().enumerate() {
        check(name, s, 200 + i as u64);
    }
}

#[test]
fn random_shapes() {
    let mut r = rng(7);
    for i in 0..30 {
        let k: usize = r.random_range(1..=12);
        let pad = r.random_range(0..=k);
        let min_l = k.saturating_sub(2 * pad).max(1);
        let s = shape(
            r.random_range(1..=3),
            r.random_range(1..=9),
            r.random_range(1..=9),
            r.random_range(min_l..=min_l + 60),
            k,
            r.random_range(1..=6),
            pad,
        );
        check(&format!("random #{i}"), s, 300 + i);
    }
}

#[test]
fn dispatches_beyond_65535_workgroups() {
    // 256 * 65,535 = 16.8 M invocations is the most a 1-D grid holds: the output (forward) and
    // the input gradient (backward_input) each go past it once, on the y axis of the grid.
    check("16.8 M outputs", shape(1, 1, 4_100, 4_100, 1, 1, 0), 400);
    check("16.8 M inputs", shape(1, 4_100, 1, 4_100, 1, 1, 0), 401);
}

#[test]
fn too_short_input_is_an_error() {
    let s = shape(1, 2, 3, 3, 8, 2, 2); // L + 2p = 7 < K = 8
    let err = format!("{:#}", s.l_out().unwrap_err());
    assert!(err.contains("too short") && err.contains("at least K - 2*pad = 4"), "unhelpful error: {err}");
    assert_eq!(shape(1, 2, 3, 4, 8, 2, 2).l_out().unwrap(), 1);
    assert!(shape(1, 2, 3, 1, 8, 2, 4).l_out().is_ok()); // K - 2p = 0, but L is at least 1
    assert!(shape(1, 2, 3, 0, 8, 2, 4).l_out().is_err());
    assert!(shape(1, 2, 3, 10, 3, 0, 1).l_out().is_err());

    // Every encode function of both kernels refuses the shape rather than dispatching.
    let t = upload(&[0.0; 6], &[1, 2, 3]);
    let mut enc = gpu().encoder("errors");
    for kr in KERNELS {
        assert!(conv1d::encode_forward(gpu(), &mut enc, kr, &s, conv1d::ForwardTensors { x: &t, w: &t, b: &t, y: &t })
            .is_err());
        assert!(conv1d::encode_backward_input(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::InputGradTensors { dy: &t, w: &t, dx: &t },
            false
        )
        .is_err());
        assert!(conv1d::encode_backward_params(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ParamGradTensors { x: &t, dy: &t, dw: &t, db: &t, partials: Some(&t) },
            false
        )
        .is_err());
    }
    assert!(conv1d::encode_backward_bias(gpu(), &mut enc, &s, &t, &t, false).is_err());
}

#[test]
fn wrong_tensor_shapes_are_rejected() {
    let s = shape(2, 3, 4, 10, 3, 1, 1);
    let x = upload(&[0.0; 60], &[2, 3, 10]);
    let w = upload(&[0.0; 36], &[4, 3, 3]);
    let b = upload(&[0.0; 4], &[4]);
    let y = upload(&[0.0; 80], &[2, 4, 10]);
    let w_transposed = upload(&[0.0; 36], &[3, 4, 3]);
    let y_short = upload(&[0.0; 72], &[2, 4, 9]);
    let mut enc = gpu().encoder("errors");
    for kr in KERNELS {
        assert!(conv1d::encode_forward(gpu(), &mut enc, kr, &s, conv1d::ForwardTensors { x: &x, w: &w, b: &b, y: &y })
            .is_ok());
        let err = conv1d::encode_forward(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ForwardTensors { x: &x, w: &w_transposed, b: &b, y: &y },
        )
        .unwrap_err();
        assert!(format!("{err}").contains("weight w has shape [3, 4, 3], expected [4, 3, 3]"), "{err}");
        assert!(conv1d::encode_forward(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ForwardTensors { x: &x, w: &w, b: &b, y: &y_short }
        )
        .is_err());
        assert!(conv1d::encode_forward(gpu(), &mut enc, kr, &s, conv1d::ForwardTensors { x: &x, w: &w, b: &x, y: &y })
            .is_err());
        assert!(conv1d::encode_backward_input(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::InputGradTensors { dy: &y_short, w: &w, dx: &x },
            false
        )
        .is_err());
        assert!(conv1d::encode_backward_input(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::InputGradTensors { dy: &y, w: &w, dx: &y },
            false
        )
        .is_err());
        assert!(conv1d::encode_backward_params(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ParamGradTensors { x: &x, dy: &y, dw: &w, db: &b, partials: None },
            false
        )
        .is_ok());
        assert!(conv1d::encode_backward_params(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ParamGradTensors { x: &x, dy: &y, dw: &b, db: &b, partials: None },
            false
        )
        .is_err());
        assert!(conv1d::encode_backward_params(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ParamGradTensors { x: &y, dy: &y, dw: &w, db: &b, partials: None },
            false
        )
        .is_err());
        assert!(conv1d::encode_backward_params(
            gpu(),
            &mut enc,
            kr,
            &s,
            conv1d::ParamGradTensors { x: &x, dy: &y, dw: &w, db: &w, partials: None },
            false
        )
        .is_err());
    }
    assert!(conv1d::encode_backward_bias(gpu(), &mut enc, &s, &y, &w, false).is_err());
    assert!(conv1d::encode_backward_bias(gpu(), &mut enc, &s, &x, &b, false).is_err());
}

#[test]
fn accumulate_adds_to_existing_gradients() {
    // One weight gradient summed by single invocations (plain) or one split (tiled), one by whole
    // workgroups (plain) or split across workgroups (tiled); the third runs every pass of the cpu
    // kernels, its dW split.
    let shapes = [shape(1, 5, 6, 9, 3, 2, 1), shape(3, 2, 3, 9_000, 5, 1, 2), shape(3, 2, 11, 9_000, 8, 2, 3)];
    for (i, (s, kernel)) in shapes.into_iter().flat_map(|s| KERNELS.map(|k| (s, k))).enumerate() {
        let mut r = rng(500 + i as u64);
        let (xs, ws, ys) = (s.input_dims(), s.weight_dims(), s.output_dims().unwrap());
        let x = randn(&mut r, xs.iter().product());
        let dy = randn(&mut r, ys.iter().product());
        let w = randn(&mut r, ws.iter().product());
        let dw_before = randn(&mut r, ws.iter().product());
        let db_before = randn(&mut r, s.cout);
        let dx_before = randn(&mut r, xs.iter().product());
        let (xg, dyg, wg) = (upload(&x, &xs), upload(&dy, &ys), upload(&w, &ws));
        let (dw, db, dx) = (upload(&dw_before, &ws), upload(&db_before, &[s.cout]), upload(&dx_before, &xs));
        run(|enc| encode_all(gpu(), enc, kernel, &s, (&xg, &wg, &dyg), None, (&dx, &dw, &db), true));
        let (x, dy) = (to_f64(&x), to_f64(&dy));
        let add = |before: &[f32], grad: Vec<f64>| -> Vec<f64> {
            before.iter().zip(grad).map(|(&a, g)| f64::from(a) + g).collect()
        };
        let s_name = format!("{s:?} {kernel:?}");
        assert_close(
            &format!("{s_name} dw accumulated"),
            &dw.read(gpu()).unwrap(),
            &add(&dw_before, reference::backward_weight(&s, &x, &dy)),
            1e-4,
        );
        assert_close(
            &format!("{s_name} db accumulated"),
            &db.read(gpu()).unwrap(),
            &add(&db_before, reference::backward_bias(&s, &dy)),
            1e-4,
        );
        let dx_ref = add(&dx_before, reference::backward_input(&s, &dy, &to_f64(&w)));
        assert_close(&format!("{s_name} dx accumulated"), &dx.read(gpu()).unwrap(), &dx_ref, 1e-4);

        // Twice more, overwriting then accumulating: the result is twice the gradient.
        let scratch = partials(gpu(), kernel, &s);
        run(|enc| {
            for accumulate in [false, true] {
                let (inputs, grads) = ((&xg, &dyg), (&dw, &db));
                conv1d::encode_backward_params(
                    gpu(),
                    enc,
                    kernel,
                    &s,
                    conv1d::ParamGradTensors {
                        x: inputs.0,
                        dy: inputs.1,
                        dw: grads.0,
                        db: grads.1,
                        partials: scratch.as_ref(),
                    },
                    accumulate,
                )
                .unwrap();
            }
        });
        let twice = |grad: Vec<f64>| -> Vec<f64> { grad.iter().map(|g| 2.0 * g).collect() };
        let (dw_twice, db_twice) =
            (twice(reference::backward_weight(&s, &x, &dy)), twice(reference::backward_bias(&s, &dy)));
        assert_close(&format!("{s_name} dw overwritten then accumulated"), &dw.read(gpu()).unwrap(), &dw_twice, 1e-4);
        assert_close(&format!("{s_name} db overwritten then accumulated"), &db.read(gpu()).unwrap(), &db_twice, 1e-4);
    }
}

#[test]
fn reference_backward_matches_finite_differences() {
    for (i, s) in
        [shape(2, 3, 2, 11, 4, 3, 2), shape(1, 2, 3, 9, 5, 2, 4), shape(2, 2, 2, 7, 1, 2, 0)].into_iter().enumerate()
    {
        let mut r = rng(600 + i as u64);
        let x = to_f64(&randn(&mut r, s.n * s.cin * s.l));
        let w = to_f64(&randn(&mut r, s.cout * s.cin * s.k));
        let b = to_f64(&randn(&mut r, s.cout));
        let dy = to_f64(&randn(&mut r, s.n * s.cout * s.l_out().unwrap()));
        let numeric_dx = numeric_grad(|x| dot(&reference::forward(&s, x, &w, &b), &dy), &x, 1e-6);
        let numeric_dw = numeric_grad(|w| dot(&reference::forward(&s, &x, w, &b), &dy), &w, 1e-6);
        let numeric_db = numeric_grad(|b| dot(&reference::forward(&s, &x, &w, b), &dy), &b, 1e-6);
        assert!(rel_err_f64(&reference::backward_input(&s, &dy, &w), &numeric_dx) < 1e-8, "{s:?} dx");
        assert!(rel_err_f64(&reference::backward_weight(&s, &x, &dy), &numeric_dw) < 1e-8, "{s:?} dw");
        assert!(rel_err_f64(&reference::backward_bias(&s, &dy), &numeric_db) < 1e-8, "{s:?} db");
    }
}

#[test]
fn matches_pytorch_fixture() {
    let f = Fixture::load("conv1d");
    assert_eq!(f.cases().len(), 4);
    for case in f.cases() {
        let get = |name: &str| f.tensor(&format!("{case}.{name}"));
        let ((x, xs), (w, ws), (b, bs), (dy, ys)) = (get("x"), get("w"), get("b"), get("dy"));
        let s =
            shape(xs[0], xs[1], ws[0], xs[2], ws[2], f.meta(&format!("{case}.stride")), f.meta(&format!("{case}.pad")));
        let (xg, wg, bg, dyg) = (upload(&x, &xs), upload(&w, &ws), upload(&b, &bs), upload(&dy, &ys));
        for kernel in KERNELS {
            let (y, dx, dw, db) = (poisoned(&ys), poisoned(&xs), poisoned(&ws), poisoned(&bs));
            run(|enc| encode_all(gpu(), enc, kernel, &s, (&xg, &wg, &dyg), Some((&bg, &y)), (&dx, &dw, &db), false));
            let expect = |name: &str| to_f64(&get(name).0);
            let what = format!("{case} {kernel:?} {s:?}");
            assert_close(&format!("{what} y"), &y.read(gpu()).unwrap(), &expect("y"), 1e-5);
            assert_close(&format!("{what} dx"), &dx.read(gpu()).unwrap(), &expect("dx"), 1e-4);
            assert_close(&format!("{what} dw"), &dw.read(gpu()).unwrap(), &expect("dw"), 1e-4);
            assert_close(&format!("{what} db"), &db.read(gpu()).unwrap(), &expect("db"), 1e-4);
        }
    }
}

#[test]
fn weight_splits_cover_every_position_once() {
    // From one position to conv1 at 20 s and a batch of 8, and weights too many for many splits.
    let shapes = [
        shape(1, 1, 1, 1, 1, 1, 0),
        shape(3, 2, 3, 9_000, 5, 1, 2),
        shape(8, 1, 16, 441_000, 64, 2, 32),
        shape(4, 1024, 1000, 2_000, 8, 2, 0),
    ];
    for s in shapes {
        let rows = s.n * s.l_out().unwrap();
        let split = WeightSplit::for_shape(&s).unwrap();
        assert_eq!(split.rows_per_split % 8, 0, "{s:?} {split:?}: splits must hold whole chunks");
        assert!(split.splits * split.rows_per_split >= rows, "{s:?} {split:?} misses positions");
        assert!((split.splits - 1) * split.rows_per_split < rows, "{s:?} {split:?} has an empty split");
        assert!(split.partials_len(&s) <= 1 << 22, "{s:?} {split:?} keeps too many partial sums");
    }
    assert!(WeightSplit::for_shape(&shapes[2]).unwrap().splits > 100, "conv1's dW must spread over workgroups");
}

#[test]
fn tile_plans_fit_the_layer_and_reuse_each_read() {
    // (rows, columns, expected tile height): the height follows the smaller side; a single entry
    // wastes the same in every tile, so the squarest wins.
    for (rows, cols, tile_m) in [(16, 441_000, 16), (1024, 15, 256), (32, 27_562, 32), (1, 1, 64)] {
        let plan = TilePlan::for_output(rows, cols);
        assert_eq!(plan.tile_m, tile_m, "{rows} x {cols}: {plan:?}");
        assert!(plan.tiles_m * plan.tile_m >= rows && plan.tiles_n * plan.tile_n() >= cols, "{plan:?}");
        // Every staged value feeds at least 15 multiply-adds (4096 * 8 of them per chunk).
        assert!(4096 * 8 / plan.reads_per_chunk() >= 15, "{plan:?}");
    }
}

#[test]
fn auto_tiles_only_passes_that_launch_enough_workgroups_on_gpus() {
    // SoundNet-8 at 20 s: (layer, shape, tiled forward, dX, dW), each the faster kernel measured on
    // an H200 (docs/benchmarks.md, "On a real GPU").
    let cases = [
        ("conv1, batch 1", shape(1, 1, 16, 441_000, 64, 2, 32), true, true, true),
        ("conv2, batch 1", shape(1, 16, 32, 27_562, 32, 2, 16), true, true, true),
        ("conv3, batch 1", shape(1, 32, 64, 1_722, 16, 2, 8), false, false, false),
        ("conv7, batch 1", shape(1, 512, 1024, 27, 4, 2, 2), false, false, true),
        ("conv7, batch 32", shape(32, 512, 1024, 27, 4, 2, 2), true, true, true),
        ("objects head, batch 1", shape(1, 1024, 1000, 15, 8, 2, 0), false, false, true),
        ("objects head, batch 32", shape(32, 1024, 1000, 15, 8, 2, 0), false, true, true),
    ];
    let gpu_adapter = Adapter { class: DeviceClass::Gpu, subgroups: true };
    let kernel = |tiled| if tiled { PassKernel::Tiled } else { PassKernel::Plain };
    for (name, s, forward, input, weight) in cases {
        for (pass, tiled) in [(Pass::Forward, forward), (Pass::InputGrad, input), (Pass::WeightGrad, weight)] {
            let groups = conv1d::tiled::workgroups_launched(&s, pass).unwrap();
            let chosen = ConvKernel::Auto.choose_on(gpu_adapter, &s, pass).unwrap();
            assert_eq!(chosen, kernel(tiled), "{name} {pass:?}: {groups} workgroups");
            assert_eq!(ConvKernel::Tiled.choose_on(gpu_adapter, &s, pass).unwrap(), PassKernel::Tiled);
            assert_eq!(ConvKernel::Plain.choose_on(gpu_adapter, &s, pass).unwrap(), PassKernel::Plain);
        }
    }
}

#[test]
fn auto_runs_the_cpu_kernels_on_cpu_adapters_with_subgroups() {
    let soundnet = shape(1, 16, 32, 27_562, 32, 2, 16);
    let odd_k = shape(1, 3, 4, 50, 5, 2, 1);
    let cpu = Adapter { class: DeviceClass::Cpu, subgroups: true };
    for pass in PASSES {
        assert_eq!(ConvKernel::Auto.choose_on(cpu, &soundnet, pass).unwrap(), PassKernel::Cpu, "{pass:?}");
        // No subgroups: the GPU rule.
        let bare = Adapter { class: DeviceClass::Cpu, subgroups: false };
        assert_eq!(ConvKernel::Auto.choose_on(bare, &soundnet, pass).unwrap(), PassKernel::Tiled, "{pass:?}");
        assert!(ConvKernel::Cpu.choose_on(bare, &soundnet, pass).is_err(), "cpu forced without subgroups");
        // Forcing any kernel works on any adapter.
        let gpu_adapter = Adapter { class: DeviceClass::Gpu, subgroups: true };
        assert_eq!(ConvKernel::Cpu.choose_on(gpu_adapter, &soundnet, pass).unwrap(), PassKernel::Cpu, "{pass:?}");
        assert_eq!(ConvKernel::Tiled.choose_on(cpu, &soundnet, pass).unwrap(), PassKernel::Tiled, "{pass:?}");
    }
    // K = 5: forward and dX take the GPU rule, dW (no vec4 weights) stays on the cpu kernel.
    assert_ne!(ConvKernel::Auto.choose_on(cpu, &odd_k, Pass::Forward).unwrap(), PassKernel::Cpu);
    assert_ne!(ConvKernel::Auto.choose_on(cpu, &odd_k, Pass::InputGrad).unwrap(), PassKernel::Cpu);
    assert_eq!(ConvKernel::Auto.choose_on(cpu, &odd_k, Pass::WeightGrad).unwrap(), PassKernel::Cpu);
    // The test adapter (lavapipe in CI) must be one where they run.
    assert!(conv1d::cpu::available(gpu()), "adapter {} has no subgroup operations", gpu().info.name);
}

/// Shapes every cpu pass accepts (K a multiple of 4, a tap chunk of at most 16 that the stride
/// divides), awkward in every other way.
fn cpu_awkward_cases() -> Vec<(&'static str, Conv1dShape)> {
    vec![
        ("odd L", shape(3, 3, 5, 37, 4, 2, 1)),
        ("Lout = 1 from L = K - 2p", shape(2, 3, 4, 4, 8, 2, 2)),
        ("Lout = 1, no padding", shape(2, 3, 4, 9, 8, 2, 0)),
        ("channels not multiples of 8", shape(2, 13, 11, 29, 4, 1, 1)),
        ("one channel", shape(2, 1, 1, 30, 4, 2, 1)),
        ("padding wider than the kernel", shape(2, 2, 3, 6, 4, 2, 6)),
        ("padding wider than a row", shape(1, 3, 9, 70, 4, 2, 40)),
        ("stride 4", shape(2, 3, 10, 50, 8, 4, 3)),
        ("stride 8", shape(2, 3, 10, 90, 16, 8, 5)),
        ("stride 3: dX in chunks of 12 taps", shape(2, 3, 5, 40, 8, 3, 2)),
        ("a SoundNet-5 head: stride 12", shape(1, 64, 40, 50, 16, 12, 4)),
        ("nine items of one output: two groups, one short", shape(9, 3, 10, 8, 8, 2, 0)),
        ("five items of short rows (dX takes two at a time)", shape(5, 6, 9, 12, 8, 2, 3)),
        ("L = 1", shape(2, 3, 2, 1, 4, 1, 2)),
        ("K = 12, chunk past K", shape(2, 5, 9, 41, 12, 2, 6)),
        ("K = 64, long row", shape(2, 1, 16, 3_001, 64, 2, 32)),
        ("1000 channels", shape(1, 24, 1000, 13, 8, 2, 0)),
        ("rows over several splits", shape(3, 2, 5, 20_001, 4, 2, 2)),
    ]
}

#[test]
fn cpu_kernels_on_awkward_shapes() {
    for (i, (name, s)) in cpu_awkward_cases().into_iter().enumerate() {
        check_cpu(gpu(), name, s, 800 + i as u64);
    }
}

#[test]
fn cpu_kernels_with_four_lanes() {
    // Adapters whose subgroups may have only 4 lanes (WARP) get workgroups of 4: the same cases.
    let mut four = Gpu::new().expect("a second device on the test adapter");
    four.info.subgroup_min_size = 4;
    assert_eq!(conv1d::cpu::lanes(&four), 4);
    for (i, (name, s)) in cpu_awkward_cases().into_iter().enumerate() {
        check_cpu(&four, name, s, 900 + i as u64);
    }
}

#[test]
fn forward_stats_give_the_batch_statistics_of_the_output() {
    use sn_wgpu::ops::batchnorm::{self, BatchNormShape};
    use sn_wgpu::ops::conv1d::TileStats;
    // Ragged last column tile, several row tiles, a channel mean far above the spread.
    let cases = [
        ("conv1-like, 12 column tiles", shape(2, 1, 16, 3_000, 64, 2, 32), 0.0),
        ("40 channels", shape(3, 5, 40, 50, 4, 1, 1), 0.0),
        ("300 channels, 2 row tiles", shape(2, 4, 300, 9, 4, 2, 1), 0.0),
        ("mean 1000x the spread", shape(2, 3, 20, 400, 8, 2, 2), 1000.0),
        ("one output per row", shape(3, 4, 10, 8, 8, 2, 0), 0.0),
    ];
    for (i, (what, s, offset, kernel)) in
        cases.into_iter().flat_map(|c| [ConvKernel::Tiled, ConvKernel::Cpu].map(|k| (c.0, c.1, c.2, k))).enumerate()
    {
        let what = format!("{what} ({kernel:?})");
        let mut r = rng(700 + i as u64);
        let (xs, ws, ys) = (s.input_dims(), s.weight_dims(), s.output_dims().unwrap());
        let x = randn(&mut r, s.n * s.cin * s.l);
        let w = randn(&mut r, s.cout * s.cin * s.k);
        let b: Vec<f32> = randn(&mut r, s.cout).iter().map(|v| v + offset).collect();
        let (running_mean, running_var) = (randn(&mut r, s.cout), vec![1.5; s.cout]);
        let tiles = conv1d::stats_tiles(gpu(), kernel, &s).unwrap().expect("statistics tiles");
        let stats = TileStats { stats: poisoned(&[tiles, s.cout, 3]), tiles };
        let (y, mean, invstd) = (poisoned(&ys), poisoned(&[s.cout]), poisoned(&[s.cout]));
        let (rm, rv) = (upload(&running_mean, &[s.cout]), upload(&running_var, &[s.cout]));
        let (xg, wg, bg) = (upload(&x, &xs), upload(&w, &ws), upload(&b, &[s.cout]));
        let bn = BatchNormShape { n: s.n, c: s.cout, l: ys[2] };
        run(|enc| {
            conv1d::encode_forward_with_stats(
                gpu(),
                enc,
                kernel,
                &s,
                conv1d::ForwardTensors { x: &xg, w: &wg, b: &bg, y: &y },
                &stats,
            )
            .unwrap();
            batchnorm::encode_train_stats(
                gpu(),
                enc,
                &bn,
                &y,
                Some(&stats),
                batchnorm::TrainStats {
                    running: batchnorm::RunningStats { mean: &rm, var: &rv },
                    saved: batchnorm::Saved { mean: &mean, invstd: &invstd },
                    eps: 1e-5,
                    momentum: 0.1,
                },
            )
            .unwrap();
        });
        let y_ref = reference::forward(&s, &to_f64(&x), &to_f64(&w), &to_f64(&b));
        assert_close(&format!("{what} y"), &y.read(gpu()).unwrap(), &y_ref, 1e-5);
        let ones = vec![1.0; s.cout];
        let bn_ref = batchnorm::reference::forward_train(
            &bn,
            &y_ref,
            &ones,
            &ones,
            (&to_f64(&running_mean), &to_f64(&running_var)),
            (1e-5, 0.1),
        );
        assert_close(&format!("{what} mean"), &mean.read(gpu()).unwrap(), &bn_ref.mean, 1e-5);
        assert_close(&format!("{what} invstd"), &invstd.read(gpu()).unwrap(), &bn_ref.invstd, 1e-4);
        assert_close(&format!("{what} running mean"), &rm.read(gpu()).unwrap(), &bn_ref.running_mean, 1e-5);
        assert_close(&format!("{what} running var"), &rv.read(gpu()).unwrap(), &bn_ref.running_var, 1e-4);
    }
}
