//! Timing a list of launches: with GPU timestamps when the adapter has them, otherwise one
//! submission per launch timed on the CPU.

use std::time::Instant;

use anyhow::Result;

use crate::gpu::{Dispatch, Gpu, KernelTime};

/// How kernel times were measured: the profile says which, because they are not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Timestamps written by the GPU at the start and end of each kernel's pass.
    GpuTimestamps,
    /// Each kernel submitted alone and waited for, timed on the CPU: includes the submission and
    /// the wake-up after it, so short kernels look slower than they are.
    CpuWall,
}

impl Clock {
    /// GPU timestamps unless the adapter has none or `force_cpu` asks for CPU timing.
    pub fn choose(gpu: &Gpu, force_cpu: bool) -> Clock {
        if gpu.has_timestamps() && !force_cpu {
            Clock::GpuTimestamps
        } else {
            Clock::CpuWall
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "GPU timestamps around each kernel's compute pass",
            Clock::CpuWall => {
                "CPU wall time of each kernel submitted alone and waited for (no GPU timestamps; \
                 includes submission overhead)"
            }
        }
    }
}

/// Runs `launches` once, in order, and returns how long each took.
pub fn time_launches(gpu: &Gpu, launches: &[&Dispatch], clock: Clock) -> Result<Vec<KernelTime>> {
    match clock {
        Clock::GpuTimestamps => {
            gpu.start_timing(launches.len() as u32);
            let mut encoder = gpu.encoder("timed launches");
            for d in launches {
                d.encode(gpu, &mut encoder);
            }
            gpu.submit(encoder);
            gpu.wait()?;
            gpu.finish_timing()
        }
        Clock::CpuWall => {
            let origin = Instant::now();
            let mut times = Vec::with_capacity(launches.len());
            for d in launches {
                let start = Instant::now();
                let mut encoder = gpu.encoder("timed launch");
                d.encode(gpu, &mut encoder);
                gpu.submit(encoder);
                gpu.wait()?;
                times.push(KernelTime {
                    info: d.info().clone(),
                    start_nanos: (start - origin).as_nanos() as f64,
                    nanos: start.elapsed().as_nanos() as f64,
                });
            }
            Ok(times)
        }
    }
}
