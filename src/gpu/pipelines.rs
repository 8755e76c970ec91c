//! Compute pipelines, built once per (shader, entry point, constants) and kept for the life of the
//! device.

use std::collections::HashMap;
use std::sync::Mutex;

use super::shaders::Shader;

/// Values for a shader's pipeline-overridable constants (`override NAME: u32`), by name.
pub type Constants = [(&'static str, u32)];

type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u32)>);

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

/// The checks wgpu adds to our shaders: every buffer and array access stays bounds-checked, but
/// loops are not given an extra iteration counter. That counter guards against shaders that never
/// terminate (every loop of ours has a bound from its parameters), and it hides a loop's trip
/// count from the driver, which then cannot unroll it: on lavapipe the conv1d_cpu kernels ran 3.6x
/// slower with it, because their register rows only stay in registers when unrolled.
fn runtime_checks() -> wgpu::ShaderRuntimeChecks {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    checks.force_loop_bounding = false;
    checks
}

impl PipelineCache {
    /// The pipeline for `entry` in `shader` with `constants` set. Its bind group layout is derived
    /// from the shader (binding 0 the uniform parameters, then the storage buffers the entry point
    /// uses).
    pub fn get(
        &self,
        device: &wgpu::Device,
        shader: &'static Shader,
        entry: &'static str,
        constants: &Constants,
    ) -> wgpu::ComputePipeline {
        let key = (shader.name, entry, constants.to_vec());
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
        let module = self
            .modules
            .lock()
            .unwrap()
            .entry(shader.name)
            .or_insert_with(|| {
                let descriptor = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                };
                // SAFETY: the only check dropped is the loop counter (see `runtime_checks`); every
                // loop in shaders/ is bounded by its uniform parameters or by constants.
                unsafe { device.create_shader_module_trusted(descriptor, runtime_checks()) }
            })
            .clone();
        let label = format!("{}::{entry}", shader.name);
        let values: Vec<(&str, f64)> = constants.iter().map(|&(name, v)| (name, f64::from(v))).collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &values, ..Default::default() },
            cache: None,
        });
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        pipeline
    }
}
