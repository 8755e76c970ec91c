//! Every launch binds what its shader declares. naga reflects each WGSL file; the tests hold to it
//! (1) each shader's Rust binding table (`Shader::bindings`: number, name, read-only or
//! read-write), and (2) every launch a training step and an inference pass record, with every conv
//! kernel, fused and plain: the storage buffers it binds must be exactly the ones its entry point
//! uses, and its uniform parameters must be as large as the WGSL `Params` struct. wgpu alone would
//! catch a missing buffer only when the launch is built, and neither a read-only buffer bound for
//! writing nor a Rust `Params` with padding the shader lacks. Run by `tools/test.sh` for both device
//! classes, since the CPU-shaped kernels bind other entry points.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::*;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, StorageAccess};
use sn_wgpu::autograd::Tape;
use sn_wgpu::gpu::{Binding, Dispatch, Shader};
use sn_wgpu::model::{soundnet8, Fusion, Model};
use sn_wgpu::ops::adam::AdamConfig;
use sn_wgpu::ops::batchnorm::BnMode;
use sn_wgpu::ops::conv1d::ConvKernel;
use sn_wgpu::train::{StepShape, TeacherLoss, TrainStep};
use sn_wgpu::Tensor;

fn shaders() -> Vec<&'static Shader> {
    sn_wgpu::ops::shaders().chain([&sn_wgpu::profile::CEILING_SHADER]).collect()
}

/// A shader as naga sees it.
struct Reflected {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
}

fn reflect(shader: &Shader) -> Reflected {
    let module = naga::front::wgsl::parse_str(shader.source)
        .unwrap_or_else(|e| panic!("shaders/{}.wgsl does not parse: {e}", shader.name));
    let capabilities =
        if shader.needs_subgroups { Capabilities::default() | Capabilities::SUBGROUP } else { Capabilities::default() };
    let info = Validator::new(ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| panic!("shaders/{}.wgsl does not validate: {e}", shader.name));
    Reflected { module, info }
}

impl Reflected {
    /// Every storage buffer the module declares, as a `Binding`.
    fn storage_bindings(&self, used_by: Option<usize>) -> BTreeSet<Binding> {
        let mut out = BTreeSet::new();
        for (handle, var) in self.module.global_variables.iter() {
            let (AddressSpace::Storage { access }, Some(binding)) = (var.space, &var.binding) else { continue };
            if let Some(entry) = used_by {
                if self.info.get_entry_point(entry)[handle].is_empty() {
                    continue;
                }
            }
            let name: &'static str = Box::leak(var.name.clone().unwrap_or_default().into_boxed_str());
            out.insert(Binding { number: binding.binding, name, writable: access.contains(StorageAccess::STORE) });
        }
        out
    }

    /// The size in bytes of the uniform at binding 0.
    fn params_size(&self) -> Option<u32> {
        self.module.global_variables.iter().find_map(|(_, var)| {
            let binding = var.binding.as_ref()?;
            (var.space == AddressSpace::Uniform && binding.binding == 0)
                .then(|| self.module.types[var.ty].inner.size(self.module.to_ctx()))
        })
    }

    fn entry_index(&self, entry: &str) -> Option<usize> {
        self.module.entry_points.iter().position(|ep| ep.name == entry)
    }
}

#[test]
fn every_binding_table_matches_its_wgsl_declarations() {
    for shader in shaders() {
        let declared = reflect(shader).storage_bindings(None);
        let table: BTreeSet<Binding> = shader.bindings.iter().copied().collect();
        assert_eq!(table.len(), shader.bindings.len(), "{}: a binding listed twice", shader.name);
        assert_eq!(table, declared, "shaders/{}.wgsl: the Rust table (left) and the WGSL (right) differ", shader.name);
        assert!(reflect(shader).params_size().is_some(), "shaders/{}.wgsl has no uniform at binding 0", shader.name);
    }
}

/// Checks one launch against its entry point; returns the problem, if any.
fn check_launch(dispatch: &Dispatch) -> Result<(), String> {
    let (shader, entry, bound, params_size) = dispatch.interface();
    let reflected = reflect(shader);
    let index = reflected.entry_index(entry).ok_or(format!("{}: no entry point {entry}", shader.name))?;
    let used = reflected.storage_bindings(Some(index));
    let bound: BTreeSet<Binding> = bound.iter().copied().collect();
    if bound != used {
        return Err(format!("{}::{entry} binds {bound:?} but uses {used:?}", shader.name));
    }
    let wgsl = reflected.params_size().expect("checked by the table test") as usize;
    if wgsl != params_size {
        return Err(format!("{}::{entry}: Rust Params is {params_size} bytes, the WGSL struct {wgsl}", shader.name));
    }
    Ok(())
}

/// Every launch of a narrow SoundNet-8 training step (Adam included) with each teacher loss, and of
/// an eval-mode forward, with `kernel` and `fusion`.
fn step_and_inference_launches(kernel: ConvKernel, fusion: Fusion, check: &mut impl FnMut(&Dispatch)) {
    let g = gpu();
    let mut model = Model::init(g, soundnet8().narrow(8, 10, 7), 0).unwrap();
    model.fusion = fusion;
    model.conv_kernel = kernel;
    let shape = StepShape { batch: 2, micro_batches: 1, samples: model.arch.min_samples() };
    for loss in [TeacherLoss::Kl, TeacherLoss::L2] {
        let step = TrainStep::with_loss(g, &model, shape, loss, AdamConfig::default(), None).unwrap();
        step.launches().into_iter().for_each(&mut *check);
    }
    let input = Tensor::zeros(g, &[1, 1, model.arch.min_samples()], "waveform").unwrap();
    let mut tape = Tape::new(g);
    let x = tape.input(&input);
    model.forward(&mut tape, x, BnMode::Eval, None).unwrap();
    tape.forward.iter().for_each(check);
}

per_class!(every_launch_binds_exactly_what_its_entry_point_uses);
fn every_launch_binds_exactly_what_its_entry_point_uses() {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    let kernels = [ConvKernel::Auto, ConvKernel::Plain, ConvKernel::Tiled, ConvKernel::Cpu];
    for kernel in kernels {
        for fusion in [Fusion::Fused, Fusion::Plain] {
            step_and_inference_launches(kernel, fusion, &mut |d| {
                if seen.insert(d.label().to_string()) {
                    if let Err(problem) = check_launch(d) {
                        problems.push(problem);
                    }
                }
            });
        }
    }
    println!("checked {} distinct entry points: {seen:?}", seen.len());
    assert!(problems.is_empty(), "launches that disagree with their WGSL:\n{}", problems.join("\n"));
    // The check must have reached every family, and both losses.
    for family in sn_wgpu::ops::FAMILIES {
        let of_family = |l: &&String| family.shaders.iter().any(|s| l.starts_with(&format!("{}::", s.name)));
        assert!(seen.iter().any(|l| of_family(&l)), "no launch of the {} family was checked", family.name);
    }
    for entry in ["conv1d_tiled::", "teacher_loss::kl_", "teacher_loss::l2_", "teacher_loss::reduce_columns"] {
        assert!(seen.iter().any(|l| l.starts_with(entry)), "no {entry} launch was checked");
    }
}

#[test]
fn a_params_struct_of_the_wrong_size_is_caught() {
    use sn_wgpu::gpu::Cost;
    let g = gpu();
    let t = Tensor::zeros(g, &[4], "t").unwrap();
    let relu = &sn_wgpu::ops::relu::SHADER;
    let (x, y) = (relu.bindings[0], relu.bindings[1]);
    let params = [4u32, 0, 0, 0];
    let good = g.prepare(relu.entry("forward"), &params, &[(x, &t), (y, &t)], [1, 1, 1], Cost::default());
    assert_eq!(check_launch(&good), Ok(()));
    // Too small a buffer wgpu refuses itself; too large a one it takes, and the shader reads only
    // its start: the conv1d Params had 4 bytes of padding the WGSL lacked until this test.
    let long_params = [4u32, 0, 0, 0, 0, 0, 0, 0];
    let bad = g.prepare(relu.entry("forward"), &long_params, &[(x, &t), (y, &t)], [1, 1, 1], Cost::default());
    assert!(check_launch(&bad).unwrap_err().contains("Params is 32 bytes, the WGSL struct 16"));
}
