//! Features of any layer for clips of any length: an eval-mode forward pass recorded once per
//! input length and replayed per clip, with long recordings cut into overlapping chunks (see
//! `geometry`) so GPU memory stays bounded by the chunk length.

use anyhow::{bail, ensure, Context, Result};

use super::geometry::{Chunking, Geometry};
use crate::autograd::Tape;
use crate::data::{crop, SAMPLE_RATE};
use crate::gpu::Tensor;
use crate::gpu::{Dispatch, Gpu};
use crate::model::Model;

/// Samples per chunk unless asked otherwise: about 95 s, which keeps SoundNet-8's largest
/// activation (conv1's, 16 channels at half the input rate) at 64 MiB, inside every adapter's
/// minimum storage-binding limit of 128 MiB, and the whole plan near 300 MB.
pub const DEFAULT_CHUNK_SAMPLES: usize = 1 << 21;

/// One layer's output for one clip: `data` is row-major `[channels, steps]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub layer: String,
    pub channels: usize,
    pub steps: usize,
    pub data: Vec<f32>,
}

/// What `Extractor::extract` gives for one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// One entry per requested layer, in the order asked.
    pub features: Vec<Features>,
    /// Samples the network saw: the clip's, or the tiled length when it was too short.
    pub samples: usize,
    /// Set when the clip was tiled, saying from what to what.
    pub note: Option<String>,
}

/// A forward pass for one input length, recorded once: its input, launches, the requested
/// outputs and a mappable buffer per output, so replaying it allocates nothing.
struct Plan {
    samples: usize,
    input: Tensor,
    forward: Vec<Dispatch>,
    outputs: Vec<Tensor>,
    staging: Vec<wgpu::Buffer>,
}

impl Plan {
    fn new(gpu: &Gpu, model: &Model, layers: &[String], last: &str, samples: usize) -> Result<Plan> {
        let mut tape = Tape::new(gpu);
        let input = Tensor::zeros(gpu, &[1, 1, samples], "waveform")?;
        let x = tape.input(&input);
        let recorded = model.forward_until(&mut tape, x, last)?;
        let outputs: Vec<Tensor> = layers
            .iter()
            .map(|l| {
                let (_, var) =
                    recorded.iter().find(|(n, _)| n == l).expect("forward_until records every layer up to the last");
                tape.value(*var).clone()
            })
            .collect();
        let staging = outputs
            .iter()
            .zip(layers)
            .map(|(t, l)| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("{l} readback")),
                    size: t.bytes().max(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(Plan { samples, input, forward: tape.forward, outputs, staging })
    }

    /// Runs the pass on `waveform` (exactly `samples` long) and reads every output back as
    /// (channels, steps, values).
    fn run(&self, gpu: &Gpu, waveform: &[f32]) -> Result<Vec<(usize, usize, Vec<f32>)>> {
        self.input.write(gpu, waveform)?;
        let mut encoder = gpu.encoder("extract");
        for d in &self.forward {
            d.encode(gpu, &mut encoder);
        }
        for (t, s) in self.outputs.iter().zip(&self.staging) {
            encoder.copy_buffer_to_buffer(&t.buffer, t.offset, s, 0, t.bytes());
        }
        gpu.submit(encoder);
        let (tx, rx) = std::sync::mpsc::channel();
        for s in &self.staging {
            let tx = tx.clone();
            s.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
        }
        gpu.wait()?;
        for _ in &self.staging {
            rx.recv().context("readback callback never ran")?.context("mapping a feature readback buffer")?;
        }
        let mut values = Vec::with_capacity(self.outputs.len());
        for (t, s) in self.outputs.iter().zip(&self.staging) {
            let bytes = s.get_mapped_range(..t.bytes()).context("reading mapped features")?;
            values.push((t.shape[1], t.shape[2], bytemuck::cast_slice::<u8, f32>(&bytes).to_vec()));
            drop(bytes);
            s.unmap();
        }
        Ok(values)
    }
}

/// Extracts a fixed set of layers from clips one at a time.
pub struct Extractor<'m> {
    model: &'m Model,
    layers: Vec<String>,
    /// The deepest requested layer: where the recorded pass stops.
    last: String,
    chunking: Chunking,
    tile_to: usize,
    /// The plan for full chunks, and one for the most recent other length (a clip that fits in
    /// one chunk, or a recording's last chunk): clips of one length reuse it.
    full: Option<Plan>,
    other: Option<Plan>,
}

impl<'m> Extractor<'m> {
    /// An extractor of `layers` (names from `Model::layer_names`) cutting long clips into chunks
    /// of `chunk_samples`. Nothing is recorded until the first clip.
    pub fn new(model: &'m Model, layers: &[&str], chunk_samples: usize) -> Result<Extractor<'m>> {
        let names = model.layer_names();
        let mut geometries = Vec::with_capacity(layers.len());
        for l in layers {
            ensure!(
                names.iter().any(|n| n == l),
                "{} has no layer {l:?}; its layers are {}",
                model.arch.name,
                names.join(", ")
            );
            geometries.push(Geometry::of(&model.arch, l)?);
        }
        let last = names.iter().rev().find(|n| layers.contains(&n.as_str())).context("no layers to extract")?.clone();
        let chunking = Chunking::new(geometries, chunk_samples)?;
        let tile_to = chunking.min_samples;
        Ok(Extractor {
            model,
            layers: layers.iter().map(|l| l.to_string()).collect(),
            last,
            chunking,
            tile_to,
            full: None,
            other: None,
        })
    }

    /// Clips shorter than the layers need are tiled to `samples` instead of to that minimum
    /// (`predict` tiles to 10 s, as the original SoundNet does). Never below the minimum.
    pub fn tile_short_clips_to(mut self, samples: usize) -> Extractor<'m> {
        self.tile_to = samples.max(self.chunking.min_samples);
        self
    }

    /// The shortest clip used as it is.
    pub fn min_samples(&self) -> usize {
        self.chunking.min_samples
    }

    /// The geometry of each requested layer, in the order asked.
    pub fn geometries(&self) -> &[Geometry] {
        &self.chunking.layers
    }

    pub fn layers(&self) -> &[String] {
        &self.layers
    }

    /// The requested layers of `waveform` (22,050 Hz, scaled to ±256), each `[channels, steps]`.
    pub fn extract(&mut self, gpu: &Gpu, waveform: &[f32]) -> Result<Extraction> {
        ensure!(!waveform.is_empty(), "an empty clip has no features");
        let (tiled, note) = if waveform.len() < self.chunking.min_samples {
            let secs = |n: usize| n as f64 / SAMPLE_RATE as f64;
            let note = format!(
                "{} samples ({:.2} s) is shorter than the {} samples {} needs; tiled (repeated) to {} samples ({:.2} s)",
                waveform.len(),
                secs(waveform.len()),
                self.chunking.min_samples,
                self.layers.join(", "),
                self.tile_to,
                secs(self.tile_to)
            );
            (Some(crop::tile(waveform, self.tile_to)), Some(note))
        } else {
            (None, None)
        };
        let waveform = tiled.as_deref().unwrap_or(waveform);
        let samples = waveform.len();
        let mut features: Vec<Features> = Vec::with_capacity(self.layers.len());
        for chunk in self.chunking.chunks(samples) {
            let values = self.plan(gpu, chunk.len)?.run(gpu, &waveform[chunk.start..chunk.start + chunk.len])?;
            for (i, (channels, local_steps, local)) in values.into_iter().enumerate() {
                if features.len() <= i {
                    let steps = self.chunking.layers[i].out_len(samples).expect("at least min_samples");
                    features.push(Features {
                        layer: self.layers[i].clone(),
                        channels,
                        steps,
                        data: vec![0.0; channels * steps],
                    });
                }
                let f = &mut features[i];
                let keep = &chunk.keep[i];
                // The chunk starts at a multiple of every layer's stride, so its local positions
                // are the global ones shifted by start / stride.
                let shift = chunk.start / self.chunking.layers[i].stride;
                ensure!(
                    keep.end - shift <= local_steps,
                    "{}: chunk at {} has {local_steps} steps, needs {}",
                    f.layer,
                    chunk.start,
                    keep.end - shift
                );
                for c in 0..channels {
                    let row = &local[c * local_steps..(c + 1) * local_steps];
                    f.data[c * f.steps + keep.start..c * f.steps + keep.end]
                        .copy_from_slice(&row[keep.start - shift..keep.end - shift]);
                }
            }
        }
        for f in &features {
            // Weights that passed the checkpoint's checks can still overflow on some input; a NaN
            // or infinity here would print as a uniform distribution or be written as features.
            if let Some(i) = f.data.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{} gave {} at channel {}, step {}: the weights overflow f32 arithmetic on this clip",
                    f.layer,
                    f.data[i],
                    i / f.steps,
                    i % f.steps
                );
            }
        }
        Ok(Extraction { features, samples, note })
    }

    /// The plan for inputs of `samples`, recorded on first use.
    fn plan(&mut self, gpu: &Gpu, samples: usize) -> Result<&Plan> {
        let slot = if samples == self.chunking.chunk { &mut self.full } else { &mut self.other };
        if slot.as_ref().is_none_or(|p| p.samples != samples) {
            // Free the old plan's buffers before allocating the new one.
            *slot = None;
            *slot = Some(Plan::new(gpu, self.model, &self.layers, &self.last, samples)?);
        }
        Ok(slot.as_ref().expect("just recorded"))
    }
}
