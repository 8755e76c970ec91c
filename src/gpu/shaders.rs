//! A WGSL file as the Rust that runs it sees it: its name, its source (compiled into the binary)
//! and the storage buffers it declares. Each op's module holds its shader's `Shader`, beside the
//! encoders that launch it, so a launch names its buffers by the same constants the table lists.

/// One storage buffer as the shader declares it: `@binding(number) var<storage, read> name` or
/// `var<storage, read_write> name`. Binding 0 is always the uniform parameters and is not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    pub number: u32,
    pub name: &'static str,
    pub writable: bool,
}

impl Binding {
    pub const fn read(number: u32, name: &'static str) -> Binding {
        Binding { number, name, writable: false }
    }

    pub const fn read_write(number: u32, name: &'static str) -> Binding {
        Binding { number, name, writable: true }
    }
}

/// A shader file: `shaders/{name}.wgsl`.
#[derive(Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    /// Every storage buffer it declares, in binding order. `tests/bindings.rs` holds this
    /// table to the WGSL declarations, and every launch's buffers to the entry point's.
    pub bindings: &'static [Binding],
    /// Whether it uses subgroup operations: the host runs it only where the adapter has them.
    pub needs_subgroups: bool,
}
