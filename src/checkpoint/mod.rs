//! Checkpoints: safetensors files of named f32 tensors in PyTorch layouts, plus string metadata
//! (`model`, `step`). They load in PyTorch with `safetensors.torch.load_file`.
//!
//! Every tensor's entry is checked on read (`layout`), so a damaged file is refused naming the
//! tensor at fault. Writes are atomic: the bytes go to a temporary file beside the target, are
//! flushed to disk, and the file is renamed over the target, so a crash leaves either the old
//! checkpoint or the new one.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

mod layout;
mod values;

pub use values::problem as value_problem;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    pub fn insert(&mut self, name: &str, shape: &[usize], data: Vec<f32>) {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
        self.tensors.insert(name.to_string(), (shape.to_vec(), data));
    }

    /// The values of `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (have, data) = self.tensors.get(name).with_context(|| format!("checkpoint has no tensor {name}"))?;
        ensure!(have == shape, "checkpoint tensor {name} has shape {have:?}, expected {shape:?}");
        Ok(data)
    }

    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata.get(key).map(String::as_str).with_context(|| format!("checkpoint has no metadata {key:?}"))
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(&String, Vec<u8>)> =
            self.tensors.iter().map(|(k, (_, v))| (k, bytemuck::cast_slice::<f32, u8>(v).to_vec())).collect();
        let views = bytes
            .iter()
            .map(|(k, b)| Ok((k.as_str(), TensorView::new(Dtype::F32, self.tensors[*k].0.clone(), b)?)))
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let metadata: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        Ok(safetensors::serialize(views, Some(metadata))?)
    }

    /// Reads safetensors `bytes` whose every tensor is f32 with offsets that match its shape.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        layout::check(bytes)?;
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
        let st = SafeTensors::deserialize(bytes)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Checkpoint { tensors, metadata })
    }

    /// Reads a checkpoint file, refusing one that holds a value no checkpoint can (`values`: a NaN
    /// or an infinity, a negative variance, a weight of astronomical size), so a damaged file never
    /// passes for a good one.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
        let checkpoint = Checkpoint::from_bytes(&bytes)
            .with_context(|| format!("{} is not a valid safetensors checkpoint", path.display()))?;
        for (name, (_, data)) in &checkpoint.tensors {
            if let Some(problem) = values::problem(name, data) {
                bail!("checkpoint {}: {problem}", path.display());
            }
        }
        Ok(checkpoint)
    }

    /// Writes to a temporary file beside `path`, syncs it, then renames it over `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
        let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename itself is durable once the directory is synced.
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("writing checkpoint {}: {e}", path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_file() {
        let dir = std::env::temp_dir().join(format!("sn-wgpu-ckpt-{}", std::process::id()));
        let path = dir.join("last.safetensors");
        let mut c = Checkpoint::default();
        c.insert("conv1.weight", &[2, 1, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-8, values::MAX_MAGNITUDE]);
        c.insert("bn1.running_var", &[2], vec![1.0, 2.0]);
        c.metadata.insert("model".into(), "soundnet8".into());
        c.metadata.insert("step".into(), "7".into());
        c.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.get("conv1.weight", &[2, 1, 3]).unwrap()[2], 3.5);
        assert!(back.get("conv1.weight", &[6]).unwrap_err().to_string().contains("expected [6]"));
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(leftovers.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_non_finite_value_is_refused_naming_the_file_and_tensor() {
        let path = std::env::temp_dir().join(format!("sn-wgpu-nan-{}.safetensors", std::process::id()));
        let mut c = Checkpoint::default();
        c.insert("conv1.weight", &[3], vec![1.0, f32::NAN, 2.0]);
        c.save(&path).unwrap();
        let err = format!("{:#}", Checkpoint::load(&path).unwrap_err());
        assert!(
            err.contains(&path.display().to_string()) && err.contains("conv1.weight") && err.contains("index 1"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_infinity_in_any_kind_of_tensor_is_refused_as_a_nan_is() {
        // Every kind of tensor a training checkpoint holds: weights, biases, batchnorm's affine
        // parameters and running statistics, and Adam's two moments.
        let kinds = [
            ("conv1.weight", vec![2, 1, 3]),
            ("conv1.bias", vec![2]),
            ("bn1.weight", vec![2]),
            ("bn1.bias", vec![2]),
            ("bn1.running_mean", vec![2]),
            ("bn1.running_var", vec![2]),
            ("objects.weight", vec![3, 2, 1]),
            ("adam.m.conv1.weight", vec![2, 1, 3]),
            ("adam.v.bn1.bias", vec![2]),
        ];
        let good = || {
            let mut c = Checkpoint::default();
            for (name, shape) in &kinds {
                c.insert(name, shape, vec![0.5; shape.iter().product()]);
            }
            c
        };
        let path = std::env::temp_dir().join(format!("sn-wgpu-inf-{}.safetensors", std::process::id()));
        good().save(&path).unwrap();
        Checkpoint::load(&path).expect("the finite checkpoint loads");
        for (name, _) in &kinds {
            for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                let mut c = good();
                c.tensors.get_mut(*name).unwrap().1[1] = bad;
                c.save(&path).unwrap();
                let err = format!("{:#}", Checkpoint::load(&path).expect_err(&format!("{bad} in {name} loaded")));
                assert!(err.contains(name) && err.contains("index 1") && err.contains(&format!("({bad})")), "{err}");
            }
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_torn_file_is_an_error_naming_it() {
        let path = std::env::temp_dir().join(format!("sn-wgpu-torn-{}.safetensors", std::process::id()));
        let mut c = Checkpoint::default();
        c.insert("x", &[4], vec![1.0; 4]);
        let bytes = c.to_bytes().unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = format!("{:#}", Checkpoint::load(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
