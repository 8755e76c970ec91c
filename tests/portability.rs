//! Every shader parses, validates and translates to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and
//! GLSL (GL) with naga, so the backends we cannot run here are still checked on every commit.
//! Shaders with pipeline-overridable constants are translated with their defaults; those that use
//! subgroup operations (`Shader::needs_subgroups`) are validated with that capability, which the
//! host checks for before it runs them, and are not translated to GLSL ES, which has none.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use sn_wgpu::gpu::Shader;

/// Every shader: the ops' and the profiler's ceiling.
fn shaders() -> Vec<&'static Shader> {
    sn_wgpu::ops::shaders().chain([&sn_wgpu::profile::CEILING_SHADER]).collect()
}

#[test]
fn every_file_in_shaders_is_run_by_an_op() {
    let listed: Vec<&str> = shaders().iter().map(|s| s.name).collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(listed.contains(&stem.as_str()), "{} is in no op's Shader (sn_wgpu::ops::FAMILIES)", path.display());
    }
}

/// The module with its overridable constants at their defaults, and its validation info.
fn parse_and_validate(shader: &Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let (name, source) = (shader.name, shader.source);
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl does not parse:\n{}", e.emit_to_string(source)));
    // Default capabilities: what every WebGPU implementation must offer, and subgroups where the
    // shader needs them.
    let mut capabilities = Capabilities::default();
    if shader.needs_subgroups {
        capabilities |= Capabilities::SUBGROUP;
    }
    let info = Validator::new(ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl does not validate:\n{}", e.emit_to_string(source)));
    let defaults = naga::back::PipelineConstants::default();
    let (module, info) = naga::back::pipeline_constants::process_overrides(&module, &info, None, &defaults)
        .unwrap_or_else(|e| panic!("shaders/{name}.wgsl: its overridable constants do not resolve: {e}"));
    (module.into_owned(), info.into_owned())
}

fn compute_entry_points(module: &naga::Module) -> Vec<String> {
    module.entry_points.iter().map(|ep| ep.name.clone()).collect()
}

#[test]
fn every_shader_has_compute_entry_points_and_a_header() {
    for shader in shaders() {
        let (name, source, (module, _)) = (shader.name, shader.source, parse_and_validate(shader));
        assert!(!module.entry_points.is_empty(), "shaders/{name}.wgsl has no entry point");
        for ep in &module.entry_points {
            assert_eq!(
                ep.stage,
                naga::ShaderStage::Compute,
                "shaders/{name}.wgsl: {} is not a compute entry point",
                ep.name
            );
        }
        let header_lines = source.lines().take_while(|l| l.starts_with("//")).count();
        assert!(
            header_lines >= 5,
            "shaders/{name}.wgsl must open with a header comment explaining what it computes and its indexing"
        );
    }
}

#[test]
fn translates_to_spirv() {
    for shader in shaders() {
        let (name, (module, info)) = (shader.name, parse_and_validate(shader));
        spv::write_vec(&module, &info, &spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("shaders/{name}.wgsl -> SPIR-V: {e}"));
    }
}

#[test]
fn translates_to_msl() {
    for shader in shaders() {
        let (name, (module, info)) = (shader.name, parse_and_validate(shader));
        msl::write_string(&module, &info, &msl::Options::default(), &msl::PipelineOptions::default())
            .unwrap_or_else(|e| panic!("shaders/{name}.wgsl -> MSL: {e}"));
    }
}

#[test]
fn translates_to_hlsl() {
    for shader in shaders() {
        let (name, (module, info)) = (shader.name, parse_and_validate(shader));
        let mut out = String::new();
        let options = hlsl::Options::default();
        let pipeline = hlsl::PipelineOptions::default();
        hlsl::Writer::new(&mut out, &options, &pipeline)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("shaders/{name}.wgsl -> HLSL: {e}"));
    }
}

#[test]
fn translates_to_glsl() {
    for shader in shaders().into_iter().filter(|s| !s.needs_subgroups) {
        let (name, (module, info)) = (shader.name, parse_and_validate(shader));
        // GLSL needs one translation per entry point; compute shaders need ES 3.10 or later.
        for entry_point in compute_entry_points(&module) {
            let options = glsl::Options { version: glsl::Version::new_gles(310), ..Default::default() };
            let pipeline = glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry_point.clone(),
                multiview: None,
            };
            let mut out = String::new();
            glsl::Writer::new(
                &mut out,
                &module,
                &info,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .unwrap_or_else(|e| panic!("shaders/{name}.wgsl:{entry_point} -> GLSL: {e}"));
        }
    }
}

/// The text of `fn NAME` in `source` (to its closing brace at column 0), if it defines one.
fn helper_text(source: &str, name: &str) -> Option<String> {
    let start = source.find(&format!("\nfn {name}("))? + 1;
    let end = start + source[start..].find("\n}\n")? + 3;
    Some(source[start..end].to_string())
}

#[test]
fn shared_helpers_are_identical_in_every_shader() {
    // Each shader stays readable on its own, so the helpers are copied, not prepended; this keeps
    // the copies from drifting (f32 and vec2<f32> sums are the same text but for the type).
    for name in ["workgroup_sum", "flat_group"] {
        let copies: Vec<(&str, String)> = shaders()
            .iter()
            .filter_map(|s| helper_text(s.source, name).map(|t| (s.name, t.replace("vec2<f32>", "f32"))))
            .collect();
        assert!(copies.len() >= 2, "{name}: expected copies in several shaders, found {}", copies.len());
        for (shader, text) in &copies[1..] {
            assert_eq!(
                text, &copies[0].1,
                "shaders/{shader}.wgsl's {name} differs from shaders/{}.wgsl's",
                copies[0].0
            );
        }
    }
    // The flat workgroup index is written once per shader, in flat_group.
    for shader in shaders() {
        let inline = shader
            .source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//") && l.contains("wid.y * nwg.x + wid.x"))
            .filter(|l| l.trim() != "return wid.y * nwg.x + wid.x;")
            .count();
        assert_eq!(inline, 0, "shaders/{}.wgsl computes the flat workgroup index inline; call flat_group", shader.name);
    }
}
