//! A GPU buffer with a shape. f32, row-major; activations are `[N, C, L]`.

use anyhow::{bail, ensure, Result};
use wgpu::util::DeviceExt;

use super::Gpu;

/// Cloning shares the buffer (wgpu buffers are reference-counted): a clone is another handle, not a copy.
/// A tensor may be a view of part of a larger buffer (the model's parameters share one, so that
/// Adam updates them all in one launch): it starts `offset` bytes in.
#[derive(Clone)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub shape: Vec<usize>,
}

const USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Refuses a tensor the adapter could not bind whole, rather than letting a kernel read garbage.
fn check_fits(gpu: &Gpu, shape: &[usize], label: &str) -> Result<u64> {
    let bytes = 4 * shape.iter().product::<usize>() as u64;
    let bind = gpu.limits.max_storage_buffer_binding_size;
    let alloc = gpu.limits.max_buffer_size;
    if bytes > bind.min(alloc) {
        bail!(
            "tensor {label} {shape:?} needs {:.1} MiB, but adapter {} binds at most {:.1} MiB per \
             storage buffer (max_storage_buffer_binding_size) and allocates at most {:.1} MiB per \
             buffer; use a smaller batch or a shorter input",
            mib(bytes),
            gpu.info.name,
            mib(bind),
            mib(alloc)
        );
    }
    // wgpu cannot bind an empty buffer; keep one element so a zero-size tensor still binds.
    Ok(bytes.max(4))
}

impl Tensor {
    /// A tensor of zeros (wgpu zero-initialises new buffers).
    pub fn zeros(gpu: &Gpu, shape: &[usize], label: &str) -> Result<Tensor> {
        let size = check_fits(gpu, shape, label)?;
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: USAGE,
            mapped_at_creation: false,
        });
        Ok(Tensor { buffer, offset: 0, shape: shape.to_vec() })
    }

    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize], label: &str) -> Result<Tensor> {
        ensure!(
            data.len() == shape.iter().product::<usize>(),
            "tensor {label}: {} values do not fill shape {shape:?}",
            data.len()
        );
        if data.is_empty() {
            return Tensor::zeros(gpu, shape, label);
        }
        check_fits(gpu, shape, label)?;
        let buffer = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: USAGE,
        });
        Ok(Tensor { buffer, offset: 0, shape: shape.to_vec() })
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        4 * self.numel() as u64
    }

    /// The tensor's bytes of its buffer, as a binding (at least 4 bytes: wgpu binds nothing smaller).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.bytes().max(4)),
        })
    }

    /// A tensor of `shape` that views this one's buffer from `offset` bytes past its start.
    pub fn view(&self, offset: u64, shape: &[usize]) -> Result<Tensor> {
        let view = Tensor { buffer: self.buffer.clone(), offset: self.offset + offset, shape: shape.to_vec() };
        ensure!(
            offset + view.bytes() <= self.bytes().max(4),
            "a view of {:?} at byte {offset} does not fit in a tensor of shape {:?}",
            shape,
            self.shape
        );
        Ok(view)
    }

    /// Overwrites the contents (queued; takes effect before the next submission runs).
    pub fn write(&self, gpu: &Gpu, data: &[f32]) -> Result<()> {
        ensure!(data.len() == self.numel(), "writing {} values into a tensor of shape {:?}", data.len(), self.shape);
        gpu.queue.write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Fills the tensor with NaN, so that any element a kernel forgets to write shows up in a test.
    pub fn poison(&self, gpu: &Gpu) {
        if self.numel() > 0 {
            gpu.queue.write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(&vec![f32::NAN; self.numel()]));
        }
    }

    /// Blocking copy to the CPU.
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        if self.numel() == 0 {
            return Ok(Vec::new());
        }
        let bytes = gpu.read_bytes(gpu.encoder("read tensor"), &self.buffer, self.offset, self.bytes())?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    /// Blocking copy to the CPU of a buffer that holds u32 (max-pool argmax indices).
    pub fn read_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        if self.numel() == 0 {
            return Ok(Vec::new());
        }
        let bytes = gpu.read_bytes(gpu.encoder("read tensor"), &self.buffer, self.offset, self.bytes())?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}
