//! The named tensors of a SoundNet: trainable parameters and batchnorm running statistics, with the
//! original initialisation and the checkpoint names (`conv{i}.weight`, `bn{i}.running_mean`, ...).

use anyhow::{ensure, Context, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::Arch;
use crate::checkpoint::Checkpoint;
use crate::gpu::Gpu;
use crate::gpu::Tensor;

/// How a tensor starts: the original torch7 SoundNet initialisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal { mean: f32, std: f32 },
    Constant(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

fn spec(name: String, shape: Vec<usize>, init: Init) -> TensorSpec {
    TensorSpec { name, shape, init }
}

/// Trainable parameters in a fixed order (the order Adam and checkpoints use): per body layer the
/// conv weight `[Cout, Cin, K]` ~ N(0, 0.01) and bias (0), the batchnorm gamma ~ N(1, 0.02) and
/// beta (0); then each head's weight and bias.
pub fn parameter_specs(arch: &Arch) -> Vec<TensorSpec> {
    let weight = Init::Normal { mean: 0.0, std: 0.01 };
    let mut specs = Vec::new();
    for (i, l) in arch.body.iter().enumerate() {
        let n = i + 1;
        specs.push(spec(format!("conv{n}.weight"), vec![l.cout, l.cin, l.k], weight));
        specs.push(spec(format!("conv{n}.bias"), vec![l.cout], Init::Constant(0.0)));
        specs.push(spec(format!("bn{n}.weight"), vec![l.cout], Init::Normal { mean: 1.0, std: 0.02 }));
        specs.push(spec(format!("bn{n}.bias"), vec![l.cout], Init::Constant(0.0)));
    }
    let features = arch.feature_channels();
    for h in &arch.heads {
        specs.push(spec(format!("{}.weight", h.name), vec![h.classes, features, h.k], weight));
        specs.push(spec(format!("{}.bias", h.name), vec![h.classes], Init::Constant(0.0)));
    }
    specs
}

/// Batchnorm running statistics: updated by training-mode forward passes, used in eval mode.
pub fn running_stat_specs(arch: &Arch) -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    for (i, l) in arch.body.iter().enumerate() {
        specs.push(spec(format!("bn{}.running_mean", i + 1), vec![l.cout], Init::Constant(0.0)));
        specs.push(spec(format!("bn{}.running_var", i + 1), vec![l.cout], Init::Constant(1.0)));
    }
    specs
}

/// Values for `specs`, drawn from one seeded generator in spec order.
pub fn initial_values(specs: &[TensorSpec], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    specs
        .iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            match s.init {
                Init::Constant(c) => vec![c; n],
                Init::Normal { mean, std } => {
                    let normal = Normal::new(mean, std).expect("a positive standard deviation");
                    (0..n).map(|_| normal.sample(&mut rng)).collect()
                }
            }
        })
        .collect()
}

/// Named GPU tensors in spec order, all views of one buffer, `flat`, so that an elementwise
/// kernel (Adam, clearing the gradients) covers every one of them in a single launch.
pub struct NamedTensors {
    pub specs: Vec<TensorSpec>,
    pub tensors: Vec<Tensor>,
    /// The whole buffer: each tensor starts at a multiple of the adapter's storage-offset alignment,
    /// and the gaps between them hold zeros.
    pub flat: Tensor,
}

/// Where each of `specs` starts in the flat buffer (in floats), and the buffer's length.
fn flat_layout(gpu: &Gpu, specs: &[TensorSpec]) -> (Vec<usize>, usize) {
    let align = (gpu.limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let mut starts = Vec::with_capacity(specs.len());
    let mut end = 0;
    for s in specs {
        starts.push(end);
        end = (end + s.shape.iter().product::<usize>()).div_ceil(align) * align;
    }
    (starts, end)
}

impl NamedTensors {
    fn with_flat(specs: Vec<TensorSpec>, starts: &[usize], flat: Tensor) -> Result<NamedTensors> {
        let tensors = specs
            .iter()
            .zip(starts)
            .map(|(s, &start)| flat.view(4 * start as u64, &s.shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(NamedTensors { specs, tensors, flat })
    }

    /// `values` (one per spec) uploaded into one buffer; `label` names it in errors.
    pub fn upload(gpu: &Gpu, specs: Vec<TensorSpec>, values: &[Vec<f32>], label: &str) -> Result<NamedTensors> {
        ensure!(values.len() == specs.len(), "{label}: {} values for {} tensors", values.len(), specs.len());
        let (starts, len) = flat_layout(gpu, &specs);
        let mut data = vec![0.0; len];
        for ((s, v), &start) in specs.iter().zip(values).zip(&starts) {
            ensure!(
                v.len() == s.shape.iter().product::<usize>(),
                "{label}: {} values do not fill {} {:?}",
                v.len(),
                s.name,
                s.shape
            );
            data[start..start + v.len()].copy_from_slice(v);
        }
        let flat = Tensor::from_slice(gpu, &data, &[len], label)?;
        NamedTensors::with_flat(specs, &starts, flat)
    }

    /// Tensors of zeros with the same names and shapes (gradients, Adam moments).
    pub fn zeros_like(gpu: &Gpu, specs: &[TensorSpec], label: &str) -> Result<NamedTensors> {
        let (starts, len) = flat_layout(gpu, specs);
        let flat = Tensor::zeros(gpu, &[len], label)?;
        NamedTensors::with_flat(specs.to_vec(), &starts, flat)
    }

    /// Values read from `checkpoint` under `prefix` + each name, shapes checked.
    pub fn from_checkpoint(
        gpu: &Gpu,
        specs: Vec<TensorSpec>,
        checkpoint: &Checkpoint,
        prefix: &str,
        label: &str,
    ) -> Result<NamedTensors> {
        let values = specs
            .iter()
            .map(|s| checkpoint.get(&format!("{prefix}{}", s.name), &s.shape).map(<[f32]>::to_vec))
            .collect::<Result<Vec<_>>>()?;
        NamedTensors::upload(gpu, specs, &values, label)
    }

    /// Reads every tensor back into `checkpoint` under `prefix` + its name.
    pub fn write_to(&self, gpu: &Gpu, checkpoint: &mut Checkpoint, prefix: &str) -> Result<()> {
        for (s, t) in self.specs.iter().zip(&self.tensors) {
            let values = t.read(gpu).with_context(|| format!("reading {} back from the GPU", s.name))?;
            checkpoint.insert(&format!("{prefix}{}", s.name), &s.shape, values);
        }
        Ok(())
    }

    /// The name of the first tensor holding a NaN or infinity, if one does (reads them back).
    pub fn first_non_finite(&self, gpu: &Gpu) -> Result<Option<String>> {
        for (s, t) in self.specs.iter().zip(&self.tensors) {
            let values = t.read(gpu).with_context(|| format!("reading {} back from the GPU", s.name))?;
            if values.iter().any(|v| !v.is_finite()) {
                return Ok(Some(s.name.clone()));
            }
        }
        Ok(None)
    }

    pub fn get(&self, name: &str) -> &Tensor {
        let i = self.specs.iter().position(|s| s.name == name).unwrap_or_else(|| panic!("no tensor named {name}"));
        &self.tensors[i]
    }

    /// Bytes of GPU memory, alignment gaps included.
    pub fn bytes(&self) -> u64 {
        self.flat.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::soundnet8;

    #[test]
    fn soundnet8_has_the_checkpoint_names_and_shapes() {
        let specs = parameter_specs(&soundnet8());
        assert_eq!(specs.len(), 7 * 4 + 4);
        assert_eq!(specs[0].name, "conv1.weight");
        assert_eq!(specs[0].shape, vec![16, 1, 64]);
        let objects = specs.iter().find(|s| s.name == "objects.weight").unwrap();
        assert_eq!(objects.shape, vec![1000, 1024, 8]);
        let total: usize = specs.iter().map(|s| s.shape.iter().product::<usize>()).sum();
        // Conv weights and biases, batchnorm affine parameters and the two heads.
        assert_eq!(
            total,
            16 * 64
                + 32 * 16 * 32
                + 64 * 32 * 16
                + 128 * 64 * 8
                + 256 * 128 * 4
                + 512 * 256 * 4
                + 1024 * 512 * 4
                + 3 * (16 + 32 + 64 + 128 + 256 + 512 + 1024)
                + 1401 * 1024 * 8
                + 1401
        );
    }

    #[test]
    fn initialisation_follows_the_original_and_the_seed() {
        let specs = parameter_specs(&soundnet8());
        let a = initial_values(&specs, 1);
        assert_eq!(a, initial_values(&specs, 1));
        assert_ne!(a[0], initial_values(&specs, 2)[0]);
        let std = |v: &[f32], mean: f32| (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        let conv7 = &a[specs.iter().position(|s| s.name == "conv7.weight").unwrap()];
        assert!((std(conv7, 0.0) - 0.01).abs() < 1e-4);
        let gamma7 = &a[specs.iter().position(|s| s.name == "bn7.weight").unwrap()];
        assert!((std(gamma7, 1.0) - 0.02).abs() < 3e-3);
        assert!(a[1].iter().all(|&b| b == 0.0));
    }
}
