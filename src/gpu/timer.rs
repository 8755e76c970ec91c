//! GPU timestamps around each kernel's compute pass, for benches and profiling.
//!
//! While a timing window is open, every `Gpu::dispatch` asks for two query slots and the pass
//! writes its start and end time into them. Adapters without `TIMESTAMP_QUERY` give no slots; the
//! caller then falls back to wall-clock time and must say so.

use std::sync::Mutex;

use anyhow::{ensure, Result};

use super::{Gpu, KernelInfo};

/// wgpu's limit on queries in one query set, two per timed pass.
pub const MAX_TIMED_PASSES: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

#[derive(Default)]
pub struct KernelTimer {
    window: Mutex<Option<Window>>,
}

struct Window {
    queries: wgpu::QuerySet,
    capacity: u32,
    passes: Vec<KernelInfo>,
    /// Passes recorded after the window filled up: their time is missing, so the result is refused.
    untimed: usize,
}

/// One timed pass: what ran, when it started (nanoseconds after the first timed pass began) and
/// how long it took on the GPU.
#[derive(Debug, Clone)]
pub struct KernelTime {
    pub info: KernelInfo,
    pub start_nanos: f64,
    pub nanos: f64,
}

impl KernelTimer {
    /// Query slots for the next pass, or `None` when no window is open or the window is full.
    pub(crate) fn pass_writes(&self, info: &KernelInfo) -> Option<(wgpu::QuerySet, u32)> {
        let mut window = self.window.lock().unwrap();
        let w = window.as_mut()?;
        let index = 2 * w.passes.len() as u32;
        if index + 2 > w.capacity {
            w.untimed += 1;
            return None;
        }
        w.passes.push(info.clone());
        Some((w.queries.clone(), index))
    }
}

impl Gpu {
    /// Opens a timing window for up to `max_passes` passes (at most `MAX_TIMED_PASSES`). Returns
    /// false, and times nothing, when the adapter has no timestamp queries. A device has one
    /// window: opening another discards the first, so threads sharing a `Gpu` must take turns.
    pub fn start_timing(&self, max_passes: u32) -> bool {
        if !self.has_timestamps() {
            return false;
        }
        let capacity = 2 * max_passes.clamp(1, MAX_TIMED_PASSES);
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timer"),
            ty: wgpu::QueryType::Timestamp,
            count: capacity,
        });
        *self.timer.window.lock().unwrap() = Some(Window { queries, capacity, passes: Vec::new(), untimed: 0 });
        true
    }

    /// Closes the window opened by `start_timing` and reads back each pass's GPU time. Call it
    /// after submitting the work that was recorded while the window was open.
    pub fn finish_timing(&self) -> Result<Vec<KernelTime>> {
        let window = self.timer.window.lock().unwrap().take();
        let Some(w) = window else { return Ok(Vec::new()) };
        ensure!(w.untimed == 0, "{} passes ran after the timing window of {} filled up", w.untimed, w.capacity / 2);
        let count = 2 * w.passes.len() as u32;
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = u64::from(count) * u64::from(wgpu::QUERY_SIZE);
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = self.encoder("resolve timestamps");
        encoder.resolve_query_set(&w.queries, 0..count, &resolve, 0);
        let ticks: Vec<u64> = bytemuck::cast_slice(&self.read_bytes(encoder, &resolve, 0, bytes)?).to_vec();
        let period = f64::from(self.queue.get_timestamp_period());
        let origin = ticks.iter().step_by(2).min().copied().unwrap_or(0);
        let times = w
            .passes
            .into_iter()
            .zip(ticks.chunks_exact(2))
            .map(|(info, t)| {
                ensure!(t[1] >= t[0], "timestamp for {} runs backwards", info.kernel);
                Ok(KernelTime {
                    info,
                    start_nanos: (t[0] - origin) as f64 * period,
                    nanos: (t[1] - t[0]) as f64 * period,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(times)
    }
}
