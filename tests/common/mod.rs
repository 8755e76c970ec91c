//! Shared by every kernel test: one GPU per test binary, seeded random data, the relative-error
//! measure, finite differences and the PyTorch fixtures.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use sn_wgpu::gpu::DeviceClass;
use sn_wgpu::{Gpu, Tensor};

/// The device this test runs on. GPU tests never skip: no adapter is a failure. Inside
/// [`with_class`] it is the adapter opened for that kernel class; elsewhere the adapter's own class
/// (or `SN_WGPU_KERNELS`'s).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    match TEST_CLASS.get() {
        Some(class) => gpu_of(class),
        None => GPU.get_or_init(|| open_gpu(None)),
    }
}

/// Both kernel classes: every op that has a GPU-shaped and a CPU-shaped kernel is tested with
/// both on whatever adapter runs the tests.
pub const CLASSES: [DeviceClass; 2] = [DeviceClass::Gpu, DeviceClass::Cpu];

/// The adapter, opened with the kernels of `class` whatever its type.
pub fn gpu_of(class: DeviceClass) -> &'static Gpu {
    static BY_CLASS: [OnceLock<Gpu>; 2] = [OnceLock::new(), OnceLock::new()];
    BY_CLASS[CLASSES.iter().position(|c| *c == class).expect("a class")].get_or_init(|| open_gpu(Some(class)))
}

fn open_gpu(class: Option<DeviceClass>) -> Gpu {
    match Gpu::new() {
        Ok(mut gpu) => {
            if let Some(class) = class {
                gpu.class = class;
            }
            gpu
        }
        Err(e) => panic!("GPU tests need an adapter and found none: {e:#}"),
    }
}

thread_local! {
    static TEST_CLASS: Cell<Option<DeviceClass>> = const { Cell::new(None) };
}

/// Runs `body` with [`gpu`] giving the adapter opened for `class`; a failure names the class.
pub fn with_class(class: DeviceClass, body: impl FnOnce()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("(failed with the {:?}-shaped kernels)", TEST_CLASS.get().expect("set"));
            }
            TEST_CLASS.set(None);
        }
    }
    TEST_CLASS.set(Some(class));
    let _reset = Reset;
    body();
}

/// `per_class!(name)` before a `fn name()` turns it into a module `name` of two tests,
/// `gpu_shaped` and `cpu_shaped`, that run it with each class's kernels (inside [`with_class`]): a
/// plain `cargo test` checks both kernel shapes on any adapter, and a failure names the shape.
#[allow(unused_macros)]
macro_rules! per_class {
    ($name:ident) => {
        mod $name {
            #[test]
            fn gpu_shaped() {
                $crate::common::with_class(sn_wgpu::gpu::DeviceClass::Gpu, super::$name)
            }
            #[test]
            fn cpu_shaped() {
                $crate::common::with_class(sn_wgpu::gpu::DeviceClass::Cpu, super::$name)
            }
        }
    };
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` samples of N(0, 1) as f32.
pub fn randn(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

pub fn upload(data: &[f32], shape: &[usize]) -> Tensor {
    upload_on(gpu(), data, shape)
}

pub fn upload_on(g: &Gpu, data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(g, data, shape, "test input").expect("upload")
}

/// An output tensor filled with NaN, so any element the kernel leaves unwritten fails the test.
pub fn poisoned(shape: &[usize]) -> Tensor {
    poisoned_on(gpu(), shape)
}

pub fn poisoned_on(g: &Gpu, shape: &[usize]) -> Tensor {
    let t = Tensor::zeros(g, shape, "test output").expect("allocate");
    t.poison(g);
    t
}

/// Records work with `f` into one encoder and submits it.
pub fn run(f: impl FnOnce(&mut wgpu::CommandEncoder)) {
    run_on(gpu(), f)
}

pub fn run_on(g: &Gpu, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
    let mut encoder = g.encoder("test");
    f(&mut encoder);
    g.submit(encoder);
}

/// The selftest's relative error: ||out - ref|| / ||ref||, infinite on NaN or infinity, the absolute
/// norm when the reference is all zeros.
pub use sn_wgpu::selftest::rel_err;

/// Fails with the case name, the error and the bound when `out` is not within `tol` of `reference`.
#[track_caller]
pub fn assert_close(what: &str, out: &[f32], reference: &[f64], tol: f64) {
    let e = rel_err(out, reference);
    assert!(
        e <= tol,
        "{what}: relative error {e:.3e} > {tol:.0e} (first values gpu {:?} vs ref {:?})",
        &out[..out.len().min(4)],
        &reference[..reference.len().min(4)]
    );
}

/// Relative error between two f64 vectors (finite differences against an analytic gradient).
pub fn rel_err_f64(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if norm == 0.0 {
        diff
    } else {
        diff / norm
    }
}

/// Central-difference gradient of the scalar `f` at `x`, in f64.
pub fn numeric_grad(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + h;
            let up = f(&probe);
            probe[i] = x[i] - h;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `sum(a * b)`: turns an op's output into a scalar whose gradient with respect to the output is `b`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A PyTorch fixture from `tests/fixtures/NAME.safetensors`, written by
/// `tools/make_fixtures.py`, read by the library's reader; these lookups panic, naming the fixture.
pub struct Fixture(sn_wgpu::selftest::Fixture);

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let path = format!("{}/tests/fixtures/{name}.safetensors", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (regenerate with `python3 tools/make_fixtures.py`)"));
        Fixture(sn_wgpu::selftest::Fixture::from_bytes(name, &bytes).unwrap_or_else(|e| panic!("{path}: {e:#}")))
    }

    /// A tensor's values and shape.
    pub fn tensor(&self, key: &str) -> (Vec<f32>, Vec<usize>) {
        let (values, shape) = self.0.tensor(key).unwrap_or_else(|e| panic!("{e:#}"));
        (values.to_vec(), shape.to_vec())
    }

    /// A metadata value, parsed (stride, padding, a list of clips, ...).
    pub fn meta<T: std::str::FromStr>(&self, key: &str) -> T {
        self.0.meta(key).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The case prefixes (`case0`, `case1`, ...) listed in the metadata key `cases`.
    pub fn cases(&self) -> Vec<String> {
        self.0.cases()
    }
}

/// A `.npy` file written by hand: version 1.0, `descr` such as `<f4`, C or Fortran order.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32], fortran: bool) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let order = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': {order}, 'shape': {tuple}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// A 16-bit mono PCM WAV.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// (step, loss as written) of every training line of a run's metrics.jsonl.
pub fn logged_losses(run: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", run.join("metrics.jsonl").display()))
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].to_string()))
        .collect()
}

/// A fresh empty folder under the system temp dir, unique to this test, removed when the test
/// passes and kept (its path printed) when it fails, so the evidence outlives the test. Left behind
/// on every run, the training tests' folders filled a machine's disk by half a gigabyte per run.
pub fn temp_dir(name: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("sn-wgpu-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TestDir(dir)
}

pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A narrow random SoundNet-8 whose heads keep 1000 and 401 classes, saved as a checkpoint that
/// `Model::from_checkpoint` reads back by its name `soundnet8-narrow8` (predict names the classes).
pub fn narrow_checkpoint(dir: &Path) -> PathBuf {
    let model = sn_wgpu::model::Model::init(gpu(), sn_wgpu::model::soundnet8().narrow(8, 1000, 401), 5).unwrap();
    let mut c = sn_wgpu::checkpoint::Checkpoint::default();
    model.write_checkpoint(gpu(), &mut c).unwrap();
    let path = dir.join("narrow.safetensors");
    c.save(&path).unwrap();
    path
}

/// `narrow_checkpoint`'s file with an objects weight of `shape` and a bias as wide as its first
/// dimension (1 for a shape of none), saved as `dir/NAME`: a head no sn-wgpu run would write.
pub fn with_objects_head(dir: &Path, name: &str, shape: &[usize]) -> PathBuf {
    let mut checkpoint = sn_wgpu::checkpoint::Checkpoint::load(&narrow_checkpoint(dir)).unwrap();
    let count = shape.iter().product();
    checkpoint.tensors.insert("objects.weight".into(), (shape.to_vec(), vec![0.01; count]));
    let classes = shape.first().copied().unwrap_or(1);
    checkpoint.tensors.insert("objects.bias".into(), (vec![classes], vec![0.0; classes]));
    let path = dir.join(name);
    std::fs::write(&path, checkpoint.to_bytes().unwrap()).unwrap();
    path
}
