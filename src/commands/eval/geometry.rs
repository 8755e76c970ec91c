//! Where each output of a layer looks in the waveform, and how a long recording is cut into
//! overlapping chunks whose outputs, put together, equal one pass over the whole recording.
//!
//! Every layer up to the one extracted is a window op (a conv with kernel k, stride s, padding p,
//! or a max-pool with k = s, p = 0); batchnorm and ReLU act per position. Chaining them, with
//! `J_i` the product of the strides before op i:
//!   total stride      S = prod s_i
//!   receptive field   R = 1 + sum (k_i - 1) J_i
//!   left offset       P = sum p_i J_i
//! and output j reads waveform samples `j S - P ..= j S - P + R - 1` (negative or past-the-end
//! indices being the zero padding of some layer).
//!
//! Chunks. A chunk is the waveform slice `a .. a + len` with `a` a multiple of S, so every layer's
//! positions in the chunk are the global ones shifted by a whole number and the conv and pool
//! windows line up with the single pass. An output computed in the chunk equals the single pass
//! when its whole receptive field lies inside the chunk, except at a chunk edge that is also the
//! recording's true start (a = 0) or end (a + len = L): there, the padding the chunk adds is the
//! padding the single pass adds. (An output that would touch padding a chunk invents at an inner
//! edge has a receptive field reaching past that edge, by induction over the layers, so the field
//! test catches it.) Inner chunks keep outputs `ceil((a + P) / S) ..`, which start where the
//! previous chunk stopped; the hop between chunk starts is the largest multiple of S for which the
//! previous chunk still holds those outputs whole. The last chunk runs to the true end.

use anyhow::{ensure, Result};

use crate::model::arch::{out_len, Arch};

/// One window op: kernel, stride, zero padding on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

/// The chain of window ops from the waveform to one layer's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub layer: String,
    pub windows: Vec<Window>,
    /// S: waveform samples between consecutive outputs.
    pub stride: usize,
    /// R: waveform samples one output depends on.
    pub field: usize,
    /// P: how far before sample `j S` the field of output j starts.
    pub offset: usize,
}

impl Geometry {
    /// The geometry of `layer` (`conv1`..`convN`, `poolN` where layer N pools, `objects`, `scenes`).
    pub fn of(arch: &Arch, layer: &str) -> Result<Geometry> {
        let mut windows = Vec::new();
        let mut found = false;
        'body: for (i, l) in arch.body.iter().enumerate() {
            windows.push(Window { k: l.k, stride: l.stride, pad: l.pad });
            if layer == format!("conv{}", i + 1) {
                found = true;
                break 'body;
            }
            if let Some(p) = l.pool {
                windows.push(Window { k: p, stride: p, pad: 0 });
                if layer == format!("pool{}", i + 1) {
                    found = true;
                    break 'body;
                }
            }
        }
        if !found {
            let head = arch.heads.iter().find(|h| h.name == layer);
            ensure!(head.is_some(), "{} has no layer {layer:?}", arch.name);
            let h = head.expect("checked");
            windows.push(Window { k: h.k, stride: h.stride, pad: h.pad });
        }
        let (mut stride, mut field, mut offset) = (1, 1, 0);
        for w in &windows {
            field += (w.k - 1) * stride;
            offset += w.pad * stride;
            stride *= w.stride;
        }
        Ok(Geometry { layer: layer.to_string(), windows, stride, field, offset })
    }

    /// Output positions for `samples` of waveform; `None` when too short for one.
    pub fn out_len(&self, samples: usize) -> Option<usize> {
        self.windows.iter().try_fold(samples, |len, w| out_len(len, w.k, w.stride, w.pad))
    }

    /// The shortest waveform giving one output.
    pub fn min_samples(&self) -> usize {
        // Output counts grow with the input length, so bisect.
        let (mut lo, mut hi) = (1, self.field + self.stride);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.out_len(mid).is_some() {
                hi = mid
            } else {
                lo = mid + 1
            }
        }
        lo
    }

    /// The waveform samples output `j` reads, clipped to a recording of `samples`: `start..end`.
    pub fn span(&self, j: usize, samples: usize) -> (usize, usize) {
        let first = (j * self.stride) as i64 - self.offset as i64;
        let start = first.clamp(0, samples as i64) as usize;
        let end = (first + self.field as i64).clamp(0, samples as i64) as usize;
        (start, end)
    }

    /// The first output an inner chunk starting at sample `a` computes from real samples only.
    fn first_whole(&self, a: usize) -> usize {
        (a + self.offset).div_ceil(self.stride)
    }

    /// The largest hop (a multiple of this layer's stride) for chunks of `chunk` samples: inner
    /// chunk k keeps outputs `first_whole(a_k)..first_whole(a_k + hop)`, and the last of them must
    /// still have its field inside the chunk. Zero when the chunk is too short.
    fn max_hop(&self, chunk: usize) -> usize {
        // The last whole output of a chunk at a (a multiple of S) is a/S + floor((chunk - R + P)/S);
        // the kept range ends at a/S + hop/S + ceil(P/S) - 1.
        let Some(room) = (chunk + self.offset).checked_sub(self.field) else { return 0 };
        (room / self.stride + 1).saturating_sub(self.offset.div_ceil(self.stride)) * self.stride
    }
}

/// One chunk of a recording: samples `start..start + len`, and per layer the global output range
/// it contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub len: usize,
    pub keep: Vec<std::ops::Range<usize>>,
}

/// How recordings are cut for a set of layers extracted together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunking {
    pub layers: Vec<Geometry>,
    /// Samples per chunk: the length of the one plan every full chunk replays.
    pub chunk: usize,
    /// Samples between chunk starts.
    pub hop: usize,
    /// Chunk starts are multiples of this (every layer's stride divides it).
    pub align: usize,
    /// The shortest waveform every layer gives an output for.
    pub min_samples: usize,
}

impl Chunking {
    pub fn new(layers: Vec<Geometry>, chunk: usize) -> Result<Chunking> {
        ensure!(!layers.is_empty(), "no layers to extract");
        // Strides are prefix products of the same chain, so the largest is a multiple of the rest.
        let align = layers.iter().map(|g| g.stride).max().expect("a layer");
        let min_samples = layers.iter().map(Geometry::min_samples).max().expect("a layer");
        // A chunk of R + align samples already allows a hop of align (see `max_hop`); and the last
        // chunk, moved back to hold `min_samples`, must still fit in one chunk.
        let needed = layers.iter().map(|g| g.field).max().expect("a layer").max(min_samples) + align;
        ensure!(
            chunk >= needed,
            "chunks of {chunk} samples are too short for {}: use at least {needed}",
            layers.iter().map(|g| g.layer.as_str()).collect::<Vec<_>>().join(", ")
        );
        let hop = layers.iter().map(|g| g.max_hop(chunk)).min().expect("a layer") / align * align;
        Ok(Chunking { layers, chunk, hop, align, min_samples })
    }

    /// The chunks of a recording of `samples` (at least `min_samples`): one when it fits.
    pub fn chunks(&self, samples: usize) -> Vec<Chunk> {
        assert!(
            samples >= self.min_samples,
            "{samples} samples is shorter than the {} every layer needs",
            self.min_samples
        );
        let totals: Vec<usize> = self.layers.iter().map(|g| g.out_len(samples).expect("long enough")).collect();
        let mut chunks = Vec::new();
        let mut next = vec![0; self.layers.len()];
        let mut start = 0;
        loop {
            if start + self.chunk >= samples {
                // The last chunk runs to the true end. Start it early enough that it holds a whole
                // output of every layer: moving it back only repeats outputs that are not kept.
                let latest = (samples - self.min_samples) / self.align * self.align;
                let start = start.min(latest);
                let keep = next.iter().zip(&totals).map(|(&n, &t)| n..t).collect();
                chunks.push(Chunk { start, len: samples - start, keep });
                return chunks;
            }
            let following = start + self.hop;
            let keep = self
                .layers
                .iter()
                .zip(&mut next)
                .map(|(g, n)| {
                    let end = g.first_whole(following);
                    let range = *n..end;
                    *n = end;
                    range
                })
                .collect();
            chunks.push(Chunk { start, len: self.chunk, keep });
            start = following;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{soundnet5, soundnet8};

    #[test]
    fn soundnet8_heads_advance_65536_samples() {
        let g = Geometry::of(&soundnet8(), "objects").unwrap();
        assert_eq!(g.stride, 65_536);
        assert_eq!(g.field, 320_542);
        assert_eq!(g.offset, 55_584);
        assert_eq!(g.min_samples(), soundnet8().min_samples());
        assert_eq!(g.out_len(441_000), Some(4));
        let conv1 = Geometry::of(&soundnet8(), "conv1").unwrap();
        assert_eq!((conv1.stride, conv1.field, conv1.offset), (2, 64, 32));
        assert!(Geometry::of(&soundnet8(), "pool3").is_err());
    }

    #[test]
    fn out_len_matches_the_layer_table() {
        for arch in [soundnet8(), soundnet5()] {
            let l = arch.lengths(500_000).unwrap();
            for (n, layer) in arch.body.iter().enumerate() {
                assert_eq!(Geometry::of(&arch, &format!("conv{}", n + 1)).unwrap().out_len(500_000), Some(l.body[n].0));
                if layer.pool.is_some() {
                    assert_eq!(
                        Geometry::of(&arch, &format!("pool{}", n + 1)).unwrap().out_len(500_000),
                        Some(l.body[n].1)
                    );
                }
            }
            assert_eq!(Geometry::of(&arch, "scenes").unwrap().out_len(500_000), Some(l.steps));
        }
    }

    /// Every output is kept exactly once, by a chunk whose slice holds its whole receptive field
    /// or reaches the true edge the field crosses.
    #[test]
    fn chunks_keep_every_output_once_from_whole_fields() {
        let arch = soundnet8();
        let layers: Vec<Geometry> =
            ["conv1", "pool2", "conv5", "pool5", "objects"].iter().map(|l| Geometry::of(&arch, l).unwrap()).collect();
        let chunking = Chunking::new(layers.clone(), 400_000).unwrap();
        for samples in [chunking.min_samples, 399_999, 400_000, 400_001, 1_000_000, 3_333_333] {
            let chunks = chunking.chunks(samples);
            for (i, g) in layers.iter().enumerate() {
                let mut next = 0;
                for c in &chunks {
                    assert_eq!(c.start % chunking.align, 0);
                    assert!(c.len <= chunking.chunk && c.start + c.len <= samples);
                    let range = c.keep[i].clone();
                    assert_eq!(range.start, next, "{} at {samples}: gap or overlap", g.layer);
                    next = range.end;
                    let local = g.out_len(c.len).unwrap_or(0);
                    for j in range {
                        assert!(
                            j >= c.start / g.stride && j - c.start / g.stride < local,
                            "{} output {j} not in chunk {c:?}",
                            g.layer
                        );
                        let first = (j * g.stride) as i64 - g.offset as i64;
                        let last = first + g.field as i64 - 1;
                        assert!(
                            first >= c.start as i64 || c.start == 0,
                            "{} output {j}: field starts before {c:?}",
                            g.layer
                        );
                        assert!(
                            last < (c.start + c.len) as i64 || c.start + c.len == samples,
                            "{} output {j}: field ends after {c:?}",
                            g.layer
                        );
                    }
                }
                assert_eq!(next, g.out_len(samples).unwrap(), "{} at {samples}", g.layer);
            }
        }
        assert!(Chunking::new(layers, 100_000).is_err());
    }
}
