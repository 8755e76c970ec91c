//! Compute pipelines, built once per (shader, entry point) and kept for the life of the device.

use std::collections::HashMap;
use std::sync::Mutex;

use super::shaders;

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
}

impl PipelineCache {
    /// The pipeline for `entry` in `shader`. Its bind group layout is derived from the shader
    /// (binding 0 the uniform parameters, then the storage buffers the entry point uses).
    pub fn get(&self, device: &wgpu::Device, shader: &'static str, entry: &'static str) -> wgpu::ComputePipeline {
        if let Some(p) = self.pipelines.lock().unwrap().get(&(shader, entry)) {
            return p.clone();
        }
        let module = self
            .modules
            .lock()
            .unwrap()
            .entry(shader)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader),
                    source: wgpu::ShaderSource::Wgsl(shaders::source(shader).into()),
                })
            })
            .clone();
        let label = format!("{shader}::{entry}");
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        self.pipelines.lock().unwrap().insert((shader, entry), pipeline.clone());
        pipeline
    }
}
