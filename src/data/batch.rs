//! Batches and their order: a seeded shuffle per epoch or manifest order, and the assembly of
//! examples into the layouts the GPU reads.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use super::{Dataset, Example};
use crate::model::HeadKind;

/// `n` examples of `samples` samples and `steps` output steps. The teachers are channel-major,
/// `[n, classes, steps]`, because the loss on the GPU reads `[N, C, T]` like the network's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub n: usize,
    pub samples: usize,
    pub steps: usize,
    /// The dataset indices of the examples, in batch order.
    pub indices: Vec<usize>,
    /// `[n, 1, samples]`
    pub waveform: Vec<f32>,
    /// `[n, object classes, steps]` (empty when the dataset has no objects teacher)
    pub objects: Vec<f32>,
    /// `[n, scene classes, steps]` (empty when the dataset has no scenes teacher)
    pub scenes: Vec<f32>,
    /// `[n, classes, steps]`, one-hot rows of each clip's label (empty when the dataset has no labels)
    pub classes: Vec<f32>,
}

impl Batch {
    /// The target rows of head `kind`.
    pub fn teacher(&self, kind: HeadKind) -> &[f32] {
        match kind {
            HeadKind::Objects => &self.objects,
            HeadKind::Scenes => &self.scenes,
            HeadKind::Classes => &self.classes,
        }
    }

    /// Every head's target rows, as a training step takes them.
    pub fn targets(&self) -> crate::model::Heads<&[f32]> {
        crate::model::Heads::from_fn(|kind| self.teacher(kind))
    }
}

impl Batch {
    /// Stacks examples of `steps` steps, transposing each teacher from `[steps, C]` to `[C, steps]`.
    pub fn assemble(indices: Vec<usize>, examples: &[Example], samples: usize, steps: usize) -> Batch {
        let n = examples.len();
        let mut waveform = Vec::with_capacity(n * samples);
        let mut objects = Vec::new();
        let mut scenes = Vec::new();
        let mut classes = Vec::new();
        for e in examples {
            assert_eq!(e.waveform.len(), samples, "example waveform length");
            waveform.extend_from_slice(&e.waveform);
            transpose_into(&mut objects, &e.objects, steps, e.objects.len() / steps);
            transpose_into(&mut scenes, &e.scenes, steps, e.scenes.len() / steps);
            transpose_into(&mut classes, &e.classes, steps, e.classes.len() / steps);
        }
        Batch { n, samples, steps, indices, waveform, objects, scenes, classes }
    }
}

/// Appends `rows` (`[steps, classes]`) as `[classes, steps]`.
fn transpose_into(out: &mut Vec<f32>, rows: &[f32], steps: usize, classes: usize) {
    assert_eq!(rows.len(), steps * classes, "teacher rows [steps, classes]");
    for c in 0..classes {
        out.extend((0..steps).map(|t| rows[t * classes + c]));
    }
}

/// Loads and assembles the examples `indices` of `dataset`; errors say which example failed.
pub fn load_batch(dataset: &dyn Dataset, indices: &[usize]) -> Result<Batch> {
    load_batch_into(dataset, indices, None, None)
}

/// Where each clip's crop starts under `train --random-crop`: drawn from the seed, the batch and
/// the place in it alone, so batch b is the same whichever run makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCrops {
    pub seed: u64,
    pub batch: usize,
}

impl RandomCrops {
    /// SplitMix64 of the three: any shift, evenly.
    fn shift(&self, position: usize) -> u64 {
        let mut z = self.seed
            ^ (self.batch as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (position as u64).wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// [`load_batch`], reusing the buffers of a batch already consumed. Each clip is written straight
/// into the batch's waveform, so a batch costs no fresh memory: at 32 x 20 s the waveform is
/// 56 MB, and faulting in fresh pages for it cost more than decoding a packed clip.
pub fn load_batch_into(
    dataset: &dyn Dataset,
    indices: &[usize],
    reuse: Option<Batch>,
    crops: Option<RandomCrops>,
) -> Result<Batch> {
    let crop = dataset.crop();
    let mut waveform = reuse.map(|b| b.waveform).unwrap_or_default();
    if waveform.len() != indices.len() * crop.samples {
        waveform.clear();
        waveform.resize(indices.len() * crop.samples, 0.0);
    }
    // Clips outside the decoded-clip cache are decoded again each time they are served: on a fast
    // GPU one thread decoding a whole batch would be the step's bound, so the clips decode in
    // parallel (rayon keeps their order). Every sample of `waveform` is written.
    let examples = waveform
        .par_chunks_mut(crop.samples)
        .zip(indices.par_iter())
        .enumerate()
        .map(|(p, (out, &i))| {
            match crops {
                Some(c) => dataset.example_shifted(i, out, c.shift(p)),
                None => dataset.example_into(i, out),
            }
            .with_context(|| format!("example {i}"))
        })
        .collect::<Result<Vec<_>>>()?;
    // The examples carry only their teachers now: assemble those, then put the waveform in.
    let mut batch = Batch::assemble(indices.to_vec(), &examples, 0, crop.steps);
    batch.samples = crop.samples;
    batch.waveform = waveform;
    Ok(batch)
}

/// Which examples make batch b, for any b: deterministic in (len, batch size, seed, shuffle, and
/// a streamed dataset's shard sizes), so the same seed gives the same batches and a run can
/// resume at any batch.
///
/// When the dataset holds at least one batch, each epoch is an order of all its items cut into
/// `len / batch` batches and the partial rest is dropped. A dataset smaller than one batch is
/// read as an endless stream of epochs, and each batch takes the next `batch` items of it,
/// wrapping around; then an epoch is one batch.
///
/// An epoch's order is a seeded permutation of the items, or their order without shuffling. A
/// streamed dataset (packed shards) is shuffled the way a stream is: the shards in a seeded
/// order, then each run of [`SHUFFLE_WINDOW`] consecutive items of that order permuted, so
/// batch b is computed from one or two windows, and neither memory nor time per batch grows with
/// the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    len: usize,
    batch: usize,
    seed: u64,
    shuffle: bool,
    /// The items of each shard, for a streamed dataset.
    shards: Option<Vec<usize>>,
}

/// Items shuffled together in a streamed dataset's epoch: about 3.6 GB of 20 s clips, so reads
/// stay within a few shards at a time while every batch mixes several of them.
pub const SHUFFLE_WINDOW: usize = 4096;

impl Order {
    pub fn new(len: usize, batch: usize, seed: u64, shuffle: bool) -> Order {
        assert!(len > 0 && batch > 0, "an order needs examples ({len}) and a batch size ({batch})");
        Order { len, batch, seed, shuffle, shards: None }
    }

    /// The order for `dataset`: streamed when it is read as shards.
    pub fn for_dataset(dataset: &dyn Dataset, batch: usize, seed: u64, shuffle: bool) -> Order {
        let shards = dataset.shard_sizes();
        assert!(shards.as_ref().is_none_or(|s| s.iter().sum::<usize>() == dataset.len()), "shards hold every item");
        Order { shards, ..Order::new(dataset.len(), batch, seed, shuffle) }
    }

    pub fn batch_size(&self) -> usize {
        self.batch
    }

    pub fn batches_per_epoch(&self) -> usize {
        (self.len / self.batch).max(1)
    }

    fn epoch_seed(&self, epoch: usize) -> u64 {
        // Each epoch seeds its own generators, so any epoch can be made without the earlier ones.
        self.seed ^ (epoch as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The dataset order of `epoch`: a seeded permutation, or 0..len without shuffling.
    pub fn epoch(&self, epoch: usize) -> Vec<usize> {
        self.epoch_slice(epoch, 0..self.len)
    }

    /// Positions `range` of `epoch`'s order.
    fn epoch_slice(&self, epoch: usize, range: std::ops::Range<usize>) -> Vec<usize> {
        match (&self.shards, self.shuffle) {
            (_, false) => range.collect(),
            (None, true) => {
                let mut order: Vec<usize> = (0..self.len).collect();
                order.shuffle(&mut StdRng::seed_from_u64(self.epoch_seed(epoch)));
                order[range].to_vec()
            }
            (Some(shards), true) => self.streamed_slice(shards, epoch, range),
        }
    }

    fn streamed_slice(&self, shards: &[usize], epoch: usize, range: std::ops::Range<usize>) -> Vec<usize> {
        let mixed = self.epoch_seed(epoch);
        let mut shard_order: Vec<usize> = (0..shards.len()).collect();
        shard_order.shuffle(&mut StdRng::seed_from_u64(mixed ^ 0x94D0_49BB_1331_11EB));
        let mut first_item = Vec::with_capacity(shards.len());
        let mut total = 0;
        for &n in shards {
            first_item.push(total);
            total += n;
        }
        // Where each shard of the epoch's shard order starts in the epoch's stream.
        let mut stream_start = Vec::with_capacity(shards.len());
        let mut at = 0;
        for &s in &shard_order {
            stream_start.push(at);
            at += shards[s];
        }
        let item_of_stream = |q: usize| {
            let k = stream_start.partition_point(|&start| start <= q) - 1;
            first_item[shard_order[k]] + (q - stream_start[k])
        };
        let mut window: (usize, Vec<usize>) = (usize::MAX, Vec::new());
        range
            .map(|p| {
                let w = p / SHUFFLE_WINDOW;
                let start = w * SHUFFLE_WINDOW;
                if window.0 != w {
                    let mut perm: Vec<usize> = (start..(start + SHUFFLE_WINDOW).min(self.len)).collect();
                    let window_seed = mixed ^ (w as u64).wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    perm.shuffle(&mut StdRng::seed_from_u64(window_seed));
                    window = (w, perm);
                }
                item_of_stream(window.1[p - start])
            })
            .collect()
    }

    /// The dataset indices of batch `b` (counted from the start of training).
    pub fn batch(&self, b: usize) -> Vec<usize> {
        if self.len >= self.batch {
            let per_epoch = self.len / self.batch;
            let (epoch, j) = (b / per_epoch, b % per_epoch);
            self.epoch_slice(epoch, j * self.batch..(j + 1) * self.batch)
        } else {
            let start = b * self.batch;
            let mut out = Vec::with_capacity(self.batch);
            let mut current = (usize::MAX, Vec::new());
            for p in start..start + self.batch {
                let epoch = p / self.len;
                if current.0 != epoch {
                    current = (epoch, self.epoch(epoch));
                }
                out.push(current.1[p % self.len]);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::crop::Crop;
    use crate::data::{OBJECT_CLASSES, SCENE_CLASSES};

    #[test]
    fn epochs_are_permutations_and_drop_the_rest() {
        let order = Order::new(10, 3, 7, true);
        assert_eq!(order.batches_per_epoch(), 3);
        let mut seen: Vec<usize> = (0..3).flat_map(|b| order.batch(b)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "one epoch has no repeats");
        assert_ne!(order.epoch(0), order.epoch(1));
    }

    #[test]
    fn streamed_epochs_are_permutations_that_mix_shards_within_a_window() {
        let shards = vec![1000, 1, 1500, 700, 40, 2000, 900];
        let len: usize = shards.iter().sum();
        let order = Order { shards: Some(shards.clone()), ..Order::new(len, 32, 11, true) };
        for epoch in 0..2 {
            let mut all = order.epoch(epoch);
            let first_window: Vec<usize> = all[..SHUFFLE_WINDOW].to_vec();
            all.sort();
            assert_eq!(all, (0..len).collect::<Vec<_>>(), "epoch {epoch} serves every item once");
            // No shard fills a window, so the first window mixes at least three of them.
            let shard_of = |i: usize| {
                shards
                    .iter()
                    .scan(0, |s, &n| {
                        *s += n;
                        Some(*s)
                    })
                    .position(|end| i < end)
                    .unwrap()
            };
            let mut seen: Vec<usize> = first_window.iter().map(|&i| shard_of(i)).collect();
            seen.dedup();
            assert!(seen.len() > 2, "a window mixes shards: {seen:?}");
        }
        assert_ne!(order.epoch(0), order.epoch(1), "each epoch has its own order");
        let per_epoch = order.batches_per_epoch();
        let from_batches: Vec<usize> = (per_epoch..2 * per_epoch).flat_map(|b| order.batch(b)).collect();
        assert_eq!(from_batches, order.epoch(1)[..per_epoch * 32], "batch b is the same computed alone");
        let unshuffled = Order { shuffle: false, ..order.clone() };
        assert_eq!(unshuffled.batch(1), (32..64).collect::<Vec<_>>());
    }

    #[test]
    fn small_datasets_wrap_around() {
        let order = Order::new(3, 5, 0, false);
        assert_eq!(order.batch(0), vec![0, 1, 2, 0, 1]);
        assert_eq!(order.batch(1), vec![2, 0, 1, 2, 0]);
    }

    #[test]
    fn teachers_are_transposed_to_channel_major_per_example() {
        // Example e's rows hold 10^4 e + i, so every value says which example and row it is from.
        let rows = |e: usize, classes: usize| (0..2 * classes).map(|i| (10_000 * e + i) as f32).collect::<Vec<_>>();
        let example = |e: usize| Example {
            waveform: vec![e as f32; 4],
            objects: rows(e, OBJECT_CLASSES),
            scenes: rows(e, SCENE_CLASSES),
            classes: rows(e, 3),
        };
        let b = Batch::assemble(vec![5, 9], &[example(5), example(9)], 4, 2);
        assert_eq!(b.waveform, [5.0, 5.0, 5.0, 5.0, 9.0, 9.0, 9.0, 9.0]);
        for (n, e) in [(0, 5), (1, 9)] {
            for (teacher, classes) in [(&b.objects, OBJECT_CLASSES), (&b.scenes, SCENE_CLASSES), (&b.classes, 3)] {
                let expected = rows(e, classes);
                for c in 0..classes {
                    for t in 0..2 {
                        // batch[n, c, t] = example n's rows[t * C + c]
                        assert_eq!(
                            teacher[(n * classes + c) * 2 + t],
                            expected[t * classes + c],
                            "row {n} c {c} t {t}"
                        );
                    }
                }
            }
        }
    }

    /// Example `i` is `i` everywhere; `bad` fails to load.
    struct Numbered {
        bad: usize,
    }

    impl Dataset for Numbered {
        fn len(&self) -> usize {
            64
        }
        fn crop(&self) -> Crop {
            Crop::new(3, 1).unwrap()
        }
        fn classes(&self) -> crate::model::Heads<Option<usize>> {
            crate::model::Heads { objects: Some(2), ..Default::default() }
        }
        fn example(&self, i: usize) -> Result<Example> {
            anyhow::ensure!(i != self.bad, "clip {i} is unreadable");
            Ok(Example { waveform: vec![i as f32; 3], objects: vec![i as f32, -(i as f32)], ..Example::default() })
        }
    }

    #[test]
    fn batches_load_in_parallel_in_order_and_report_the_bad_example() {
        let indices: Vec<usize> = (0..40).rev().step_by(3).collect();
        let on = |threads: usize, bad: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| load_batch(&Numbered { bad }, &indices))
        };
        let one = on(1, usize::MAX).unwrap();
        assert_eq!(on(4, usize::MAX).unwrap(), one);
        assert_eq!(one.indices, indices);
        let waveform: Vec<f32> = indices.iter().flat_map(|&i| [i as f32; 3]).collect();
        assert_eq!(one.waveform, waveform, "examples in the order asked, whichever thread loaded them");
        let objects: Vec<f32> = indices.iter().flat_map(|&i| [i as f32, -(i as f32)]).collect();
        assert_eq!(one.objects, objects, "each example's own teacher, in the same order");
        let err = on(4, indices[5]).unwrap_err();
        assert!(format!("{err:#}").contains(&format!("example {0}: clip {0} is unreadable", indices[5])), "{err:#}");
    }
}
