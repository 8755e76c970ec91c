//! What every kernel check needs: the device, and a seeded stream of N(0, 1) inputs so that a
//! failure comes back the same run after run.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::gpu::Gpu;
use crate::gpu::Tensor;

pub struct Lab<'g> {
    pub gpu: &'g Gpu,
    rng: StdRng,
}

impl<'g> Lab<'g> {
    pub fn new(gpu: &'g Gpu, seed: u64) -> Lab<'g> {
        Lab { gpu, rng: StdRng::seed_from_u64(seed) }
    }

    /// `n` samples of N(0, 1).
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect()
    }

    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(self.gpu, data, shape, "selftest input")
    }

    /// An output filled with NaN, so any element the kernel leaves unwritten fails its check.
    pub fn poisoned(&self, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::zeros(self.gpu, shape, "selftest output")?;
        t.poison(self.gpu);
        Ok(t)
    }

    /// Records work with `f` into one encoder and submits it.
    pub fn run(&self, f: impl FnOnce(&Gpu, &mut wgpu::CommandEncoder) -> Result<()>) -> Result<()> {
        let mut encoder = self.gpu.encoder("selftest");
        f(self.gpu, &mut encoder)?;
        self.gpu.submit(encoder);
        Ok(())
    }

    pub fn read(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.read(self.gpu)
    }
}
