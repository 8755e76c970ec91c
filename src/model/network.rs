//! SoundNet on the tape: the layer table turned into conv -> batchnorm -> ReLU (-> max-pool)
//! blocks and two heads, with every layer's output kept by name for feature extraction.

use anyhow::{bail, Context, Result};

use super::heads::{HeadKind, Heads};
use super::params::{initial_values, parameter_specs, running_stat_specs, NamedTensors};
use super::Arch;
use crate::autograd::{Tape, Var};
use crate::checkpoint::Checkpoint;
use crate::gpu::Gpu;
use crate::ops::batchnorm::{BnMode, RunningStats};
use crate::ops::conv1d::{ConvKernel, ConvSpec};

/// A SoundNet on the GPU: its layer table, parameters and batchnorm running statistics.
pub struct Model {
    pub arch: Arch,
    pub params: NamedTensors,
    pub running: NamedTensors,
    /// How training-mode body layers are recorded (eval mode always uses the plain ops).
    pub fusion: Fusion,
    /// Which kernels every convolution runs.
    pub conv_kernel: ConvKernel,
    /// Body layers, from the first, that training leaves as they are (`train --freeze`): their
    /// parameters get no gradient and their batchnorm runs in eval mode, on its running statistics.
    pub frozen: usize,
    /// The names of the `classes` head's classes, in its order (empty for a model without one).
    pub class_names: Vec<String>,
}

/// Checkpoint metadata: the body layer a fine-tuning classifier sits on (`Arch::head_on`).
pub const HEAD_ON_KEY: &str = "head_on";
/// Checkpoint metadata: the `classes` head's class names, a JSON list.
pub const CLASS_NAMES_KEY: &str = "class_names";

/// How a training-mode body layer records batchnorm -> ReLU (-> max-pool) after its conv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fusion {
    /// One `bn_relu_pool` op: fewer launches and bytes; a pooling layer then exposes only its
    /// `pool{n}` output, not the unpooled `conv{n}`.
    #[default]
    Fused,
    /// Separate batchnorm, ReLU and max-pool ops, every intermediate kept (for comparisons).
    Plain,
}

/// The values one forward pass produced: every layer by name (`conv1`..`convN` after ReLU,
/// `pool1`.. after pooling; a fused training pass has no `conv{n}` for pooling layers), and each
/// head's logits `[N, classes, steps]`, in the order of `arch.heads`.
pub struct Outputs {
    pub layers: Vec<(String, Var)>,
    pub heads: Vec<Var>,
}

impl Model {
    /// A freshly initialised model (conv weights N(0, 0.01), biases 0, BN gamma N(1, 0.02), beta 0).
    pub fn init(gpu: &Gpu, arch: Arch, seed: u64) -> Result<Model> {
        let specs = parameter_specs(&arch);
        let values = initial_values(&specs, seed);
        let params = NamedTensors::upload(gpu, specs, &values, "parameters")?;
        let stats = running_stat_specs(&arch);
        let stat_values = initial_values(&stats, seed);
        let running = NamedTensors::upload(gpu, stats, &stat_values, "batchnorm running statistics")?;
        Ok(Model::with_tensors(arch, params, running))
    }

    fn with_tensors(arch: Arch, params: NamedTensors, running: NamedTensors) -> Model {
        let (fusion, conv_kernel) = (Fusion::default(), ConvKernel::default());
        Model { arch, params, running, fusion, conv_kernel, frozen: 0, class_names: Vec::new() }
    }

    /// A model whose body comes from `checkpoint` (every body tensor of `arch`, shapes checked)
    /// and whose heads start fresh, as `init` starts them: fine-tuning a pretrained SoundNet on
    /// new classes.
    pub fn with_pretrained_body(gpu: &Gpu, arch: Arch, checkpoint: &Checkpoint, seed: u64) -> Result<Model> {
        let fresh = |specs: &[super::params::TensorSpec], values: Vec<Vec<f32>>| {
            specs
                .iter()
                .zip(values)
                .map(|(s, fresh)| {
                    let is_head = arch.heads.iter().any(|h| s.name.starts_with(&format!("{}.", h.name)));
                    match is_head {
                        true => Ok(fresh),
                        false => checkpoint.get(&s.name, &s.shape).map(<[f32]>::to_vec),
                    }
                })
                .collect::<Result<Vec<_>>>()
        };
        let specs = parameter_specs(&arch);
        let values = fresh(&specs, initial_values(&specs, seed))?;
        let params = NamedTensors::upload(gpu, specs, &values, "parameters")?;
        let stats = running_stat_specs(&arch);
        let stat_values = fresh(&stats, initial_values(&stats, seed))?;
        let running = NamedTensors::upload(gpu, stats, &stat_values, "batchnorm running statistics")?;
        Ok(Model::with_tensors(arch, params, running))
    }

    /// The model stored in `checkpoint`: its `model` metadata names the architecture (and
    /// `head_on` the layer a fine-tuning classifier sits on), and the heads it holds
    /// (`objects.weight`, `scenes.weight`, `classes.weight`) give their number and widths.
    pub fn from_checkpoint(gpu: &Gpu, checkpoint: &Checkpoint) -> Result<Model> {
        let mut arch = Arch::by_name(checkpoint.meta("model")?)?;
        if let Some(layer) = checkpoint.metadata.get(HEAD_ON_KEY) {
            arch = arch.with_head_on(layer)?;
        }
        let mut classes = Heads::default();
        for kind in HeadKind::ALL {
            let name = format!("{kind}.weight");
            if let Some((shape, _)) = checkpoint.tensors.get(&name) {
                *classes.get_mut(kind) = Some(head_classes(&name, shape)?);
            }
        }
        anyhow::ensure!(
            classes.present().next().is_some(),
            "the checkpoint has no head: none of objects.weight, scenes.weight or classes.weight"
        );
        let mut model = Model::from_checkpoint_with_arch(gpu, arch.with_heads(classes), checkpoint)?;
        if let Some(json) = checkpoint.metadata.get(CLASS_NAMES_KEY) {
            let names: Vec<String> = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("the checkpoint's {CLASS_NAMES_KEY} is not a JSON list of names ({e})"))?;
            anyhow::ensure!(
                Some(names.len()) == classes.classes,
                "the checkpoint names {} classes, but its classes head has {:?}",
                names.len(),
                classes.classes
            );
            model.class_names = names;
        }
        Ok(model)
    }

    pub fn from_checkpoint_with_arch(gpu: &Gpu, arch: Arch, checkpoint: &Checkpoint) -> Result<Model> {
        let params = NamedTensors::from_checkpoint(gpu, parameter_specs(&arch), checkpoint, "", "parameters")?;
        let running = NamedTensors::from_checkpoint(
            gpu,
            running_stat_specs(&arch),
            checkpoint,
            "",
            "batchnorm running statistics",
        )?;
        Ok(Model::with_tensors(arch, params, running))
    }

    /// How this model records a conv; `batchnorm_follows` when a training-mode batchnorm comes
    /// next (its statistics then come from the fused conv, when the fused ops are in use).
    fn conv_spec(&self, stride: usize, pad: usize, batchnorm_follows: bool) -> ConvSpec {
        let batch_stats = batchnorm_follows && self.fusion == Fusion::Fused;
        ConvSpec { stride, pad, kernel: self.conv_kernel, batch_stats }
    }

    /// Reads the weights and running statistics back into `checkpoint`, with `model` metadata.
    pub fn write_checkpoint(&self, gpu: &Gpu, checkpoint: &mut Checkpoint) -> Result<()> {
        self.params.write_to(gpu, checkpoint, "")?;
        self.running.write_to(gpu, checkpoint, "")?;
        checkpoint.metadata.insert("model".into(), self.arch.name.clone());
        if let Some(layer) = &self.arch.head_on {
            checkpoint.metadata.insert(HEAD_ON_KEY.into(), layer.clone());
        }
        if !self.class_names.is_empty() {
            let json = serde_json::to_string(&self.class_names).expect("names serialise");
            checkpoint.metadata.insert(CLASS_NAMES_KEY.into(), json);
        }
        Ok(())
    }

    /// Records the forward pass on `tape`. With `grads`, parameters are trainable and their
    /// gradients go there; without, the pass is inference only.
    pub fn forward(
        &self,
        tape: &mut Tape,
        waveform: Var,
        mode: BnMode,
        grads: Option<&NamedTensors>,
    ) -> Result<Outputs> {
        let mut layers = self.record(tape, waveform, mode, grads, None)?;
        let heads = layers.split_off(layers.len() - self.arch.heads.len()).into_iter().map(|(_, v)| v).collect();
        Ok(Outputs { layers, heads })
    }

    /// Records an inference pass only as far as `last` (`conv3`, `pool5`, `objects`, ...), so that
    /// extracting a shallow layer costs only the layers below it. Returns every layer recorded, by
    /// name, in network order (`objects` and `scenes` included when reached).
    pub fn forward_until(&self, tape: &mut Tape, waveform: Var, last: &str) -> Result<Vec<(String, Var)>> {
        self.record(tape, waveform, BnMode::Eval, None, Some(last))
    }

    /// The names `forward_until` accepts, in network order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (i, layer) in self.arch.body.iter().enumerate() {
            names.push(format!("conv{}", i + 1));
            if layer.pool.is_some() {
                names.push(format!("pool{}", i + 1));
            }
        }
        names.extend(self.arch.heads.iter().map(|h| h.name.to_string()));
        names
    }

    fn record(
        &self,
        tape: &mut Tape,
        waveform: Var,
        mode: BnMode,
        grads: Option<&NamedTensors>,
        last: Option<&str>,
    ) -> Result<Vec<(String, Var)>> {
        if let Some(last) = last {
            anyhow::ensure!(
                self.layer_names().iter().any(|n| n == last),
                "{} has no layer {last:?}; its layers are {}",
                self.arch.name,
                self.layer_names().join(", ")
            );
        }
        let done = |layers: &Vec<(String, Var)>| last.is_some_and(|l| layers.last().is_some_and(|(n, _)| n == l));
        let param = |tape: &mut Tape, name: &str, trained: bool| {
            let value = self.params.get(name);
            match grads.filter(|_| trained) {
                Some(g) => tape.parameter(value, g.get(name)),
                None => tape.input(value),
            }
        };
        let outer_mode = mode;
        let mut x = waveform;
        let mut layers = Vec::new();
        for (i, layer) in self.arch.body.iter().enumerate() {
            let n = i + 1;
            // A frozen layer is recorded as inference: no gradient reaches it, so the backward pass
            // stops above it.
            let trained = i >= self.frozen;
            let mode = if trained { outer_mode } else { BnMode::Eval };
            let param = |tape: &mut Tape, name: &str| param(tape, name, trained);
            let (w, b) = (param(tape, &format!("conv{n}.weight")), param(tape, &format!("conv{n}.bias")));
            let (gamma, beta) = (param(tape, &format!("bn{n}.weight")), param(tape, &format!("bn{n}.bias")));
            let name = format!("conv{n}");
            let (y, conv_stats) = tape
                .conv1d(x, w, b, self.conv_spec(layer.stride, layer.pad, mode == BnMode::Train), &name)
                .with_context(|| format!("{name} of {}", self.arch.name))?;
            x = y;
            let stats = RunningStats {
                mean: self.running.get(&format!("bn{n}.running_mean")),
                var: self.running.get(&format!("bn{n}.running_var")),
            };
            if mode == BnMode::Train && self.fusion == Fusion::Fused {
                let (label, output) = match layer.pool {
                    Some(_) => (format!("bn{n}+relu+pool{n}"), format!("pool{n}")),
                    None => (format!("bn{n}+relu"), name),
                };
                x = tape
                    .bn_relu_pool((x, conv_stats.as_ref()), (gamma, beta), stats, layer.pool.unwrap_or(1), &label)
                    .with_context(|| format!("{label} of {}", self.arch.name))?;
                layers.push((output, x));
                if done(&layers) {
                    return Ok(layers);
                }
                continue;
            }
            x = tape.batchnorm(x, (gamma, beta), stats, mode, &format!("bn{n}"))?;
            x = tape.relu(x, &name)?;
            layers.push((name, x));
            if done(&layers) {
                return Ok(layers);
            }
            if let Some(k) = layer.pool {
                let name = format!("pool{n}");
                x = tape.maxpool(x, k, &name).with_context(|| format!("{name} of {}", self.arch.name))?;
                layers.push((name, x));
                if done(&layers) {
                    return Ok(layers);
                }
            }
        }
        for spec in &self.arch.heads {
            let (w, b) = (
                param(tape, &format!("{}.weight", spec.name), true),
                param(tape, &format!("{}.bias", spec.name), true),
            );
            let (logits, _) = tape
                .conv1d(x, w, b, self.conv_spec(spec.stride, spec.pad, false), spec.name)
                .with_context(|| format!("{} head of {}", spec.name, self.arch.name))?;
            layers.push((spec.name.to_string(), logits));
            if done(&layers) {
                break;
            }
        }
        Ok(layers)
    }
}

/// The classes of a head whose weight `name` has `shape`, read only once the shape is one a head
/// can have: a damaged checkpoint is refused here, not by an index out of range or a clip that
/// fails for a reason no clip has.
fn head_classes(name: &str, shape: &[usize]) -> Result<usize> {
    match shape {
        [0, _, _] => bail!("the checkpoint's {name} has shape {shape:?}: a head needs at least one class"),
        [classes, _, _] => Ok(*classes),
        _ => bail!("the checkpoint's {name} has shape {shape:?}: a head's weight is [classes, channels, kernel]"),
    }
}
