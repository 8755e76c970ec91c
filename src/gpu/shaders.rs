//! Every WGSL file, compiled into the binary. One file per kernel family; an op's Rust file in
//! `src/ops/` shares its name.

/// (name, source) of every shader, in the order the data flows through a training step.
pub const SHADERS: &[(&str, &str)] = &[
    ("conv1d", include_str!("../../shaders/conv1d.wgsl")),
    ("conv1d_tiled", include_str!("../../shaders/conv1d_tiled.wgsl")),
    ("conv1d_cpu", include_str!("../../shaders/conv1d_cpu.wgsl")),
    ("batchnorm", include_str!("../../shaders/batchnorm.wgsl")),
    ("relu", include_str!("../../shaders/relu.wgsl")),
    ("maxpool1d", include_str!("../../shaders/maxpool1d.wgsl")),
    ("bn_relu_pool", include_str!("../../shaders/bn_relu_pool.wgsl")),
    ("bn_relu_pool_cpu", include_str!("../../shaders/bn_relu_pool_cpu.wgsl")),
    ("softmax", include_str!("../../shaders/softmax.wgsl")),
    ("kl_div", include_str!("../../shaders/kl_div.wgsl")),
    ("adam", include_str!("../../shaders/adam.wgsl")),
    ("ceiling", include_str!("../../shaders/ceiling.wgsl")),
];

/// The shaders that use subgroup operations: the host runs them only where the adapter has them.
pub const NEEDS_SUBGROUPS: &[&str] = &["conv1d_cpu"];

pub fn source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| *src)
        .unwrap_or_else(|| panic!("no shader named {name:?} in src/gpu/shaders.rs"))
}
