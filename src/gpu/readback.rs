//! Copying a GPU buffer back to the CPU. Blocking, so kept off the training hot path: tests,
//! checkpoints and the occasional loss read use it.

use anyhow::{Context, Result};

use super::Gpu;

impl Gpu {
    /// Finishes `encoder` with a copy of `bytes` of `source` from byte `offset` into a mappable
    /// buffer, submits it, waits, and returns the bytes.
    pub fn read_bytes(
        &self,
        mut encoder: wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(source, offset, &staging, 0, bytes);
        self.submit(encoder);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv().context("readback callback never ran")?.context("mapping the readback buffer")?;
        let data = staging.get_mapped_range(..).context("reading the mapped buffer")?.to_vec();
        staging.unmap();
        Ok(data)
    }
}
