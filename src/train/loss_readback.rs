//! Reading each step's losses back without waiting for the GPU.
//!
//! After a step is recorded, its losses are copied into one of a small ring of mappable buffers and
//! a map is requested; `poll` collects the steps whose maps have completed, in order. Only when the
//! CPU gets a whole ring ahead of the GPU does recording wait, for the oldest step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::gpu::Gpu;

const RING: usize = 4;
/// Waits `drain` makes, 1 ms apart, before it reports a readback lost.
const DRAIN_ATTEMPTS: usize = 1000;

struct Slot {
    buffer: wgpu::Buffer,
    step: Option<u64>,
    mapped: Arc<AtomicBool>,
}

/// Losses of one step: one value per recorded loss (micro-batch x head).
#[derive(Debug, Clone, PartialEq)]
pub struct StepLosses {
    pub step: u64,
    pub values: Vec<f32>,
}

pub struct LossReadback {
    slots: Vec<Slot>,
    next: usize,
    bytes: u64,
}

impl LossReadback {
    pub fn new(gpu: &Gpu, values_per_step: usize) -> LossReadback {
        let bytes = 4 * values_per_step as u64;
        let slots = (0..RING)
            .map(|_| Slot {
                buffer: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("loss readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                step: None,
                mapped: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        LossReadback { slots, next: 0, bytes }
    }

    /// Records the copy of `losses` for `step` into the next free slot. Returns the losses of
    /// steps it had to wait for because the ring was full.
    pub fn record_copy(
        &mut self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        losses: &wgpu::Buffer,
        step: u64,
    ) -> Result<Vec<StepLosses>> {
        let mut done = Vec::new();
        if self.slots[self.next].step.is_some() {
            gpu.wait()?;
            done = self.poll(gpu)?;
        }
        let slot = &mut self.slots[self.next];
        encoder.copy_buffer_to_buffer(losses, 0, &slot.buffer, 0, self.bytes);
        slot.step = Some(step);
        Ok(done)
    }

    /// Requests the map of the slot just recorded; call right after submitting.
    pub fn after_submit(&mut self) {
        let slot = &self.slots[self.next];
        let flag = slot.mapped.clone();
        slot.buffer.map_async(wgpu::MapMode::Read, .., move |r| flag.store(r.is_ok(), Ordering::Release));
        self.next = (self.next + 1) % RING;
    }

    /// Losses of every step whose readback has completed, oldest first. Never blocks.
    pub fn poll(&mut self, gpu: &Gpu) -> Result<Vec<StepLosses>> {
        gpu.device.poll(wgpu::PollType::Poll)?;
        let mut done = Vec::new();
        // Oldest first: the ring's order starting at the next slot to be written.
        for i in 0..RING {
            let slot = &mut self.slots[(self.next + i) % RING];
            let Some(step) = slot.step else { continue };
            if !slot.mapped.load(Ordering::Acquire) {
                continue;
            }
            let values: Vec<f32> = bytemuck::cast_slice(&slot.buffer.get_mapped_range(..)?).to_vec();
            slot.buffer.unmap();
            slot.mapped.store(false, Ordering::Release);
            slot.step = None;
            done.push(StepLosses { step, values });
        }
        done.sort_by_key(|s| s.step);
        Ok(done)
    }

    /// Waits for every outstanding step and returns their losses.
    pub fn drain(&mut self, gpu: &Gpu) -> Result<Vec<StepLosses>> {
        let mut done = Vec::new();
        // When another thread polls the same device, it may collect a finished mapping and run
        // its callback a moment after our wait returns: look again briefly before giving up.
        for _ in 0..DRAIN_ATTEMPTS {
            gpu.wait()?;
            done.extend(self.poll(gpu)?);
            if self.slots.iter().all(|s| s.step.is_none()) {
                done.sort_by_key(|s| s.step);
                return Ok(done);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("a loss readback did not complete after the GPU went idle")
    }
}
