//! Which excerpts activate each unit most. A unit's candidates are the positions of its layer
//! whose whole receptive field lies inside a clip (no padding, no tiling: what the unit saw is a
//! real stretch of that clip, and the right-edge column that batchnorm lights up on padding never
//! wins). Each clip offers its best such position once, so a unit's top k are k different clips.
//! Selectivity says how far those top k stand out from everything the unit saw: the mean of the
//! top-k activations minus the mean over every whole position of every clip, in standard
//! deviations of the latter. Purity, when the clips are labelled, is the share of the top k from
//! their most common class.

use std::ops::Range;

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::eval::{Features, Geometry};

/// The positions `j` of a layer whose receptive field, samples `j S - P .. j S - P + R`, lies
/// inside a clip of `samples`, among the `steps` the layer has.
pub fn whole_positions(g: &Geometry, samples: usize, steps: usize) -> Range<usize> {
    let first = g.offset.div_ceil(g.stride);
    let end = match (samples + g.offset).checked_sub(g.field) {
        Some(room) => (room / g.stride + 1).min(steps),
        None => 0,
    };
    first..end.max(first)
}

/// Each clip's best whole position per unit, and every unit's running statistics.
pub struct Tally {
    units: usize,
    /// `(clip index, per unit (activation, position))` for the clips with a whole position.
    best: Vec<(usize, Vec<(f32, usize)>)>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    max: Vec<f32>,
    positions: usize,
}

/// One excerpt: a clip's position and the unit's activation there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hit {
    pub clip: usize,
    pub position: usize,
    pub activation: f32,
}

/// What a unit's top k say, with labels when the clips have them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitRanking {
    pub unit: usize,
    /// Highest activation first; ties in clip order.
    pub top: Vec<Hit>,
    pub mean: f64,
    pub std: f64,
    pub max: f32,
    pub selectivity: f64,
    /// The most common class among the top k (the one reached first in rank order on ties) and its
    /// share of the k.
    pub purity: Option<Purity>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Purity {
    pub class: usize,
    pub share: f64,
}

impl Tally {
    pub fn new(units: usize) -> Tally {
        Tally {
            units,
            best: Vec::new(),
            sum: vec![0.0; units],
            sum_sq: vec![0.0; units],
            max: vec![f32::NEG_INFINITY; units],
            positions: 0,
        }
    }

    /// Adds clip `clip`'s features at `positions`; false when there are none.
    pub fn add(&mut self, clip: usize, f: &Features, positions: Range<usize>) -> bool {
        assert_eq!(f.channels, self.units, "one layer's features throughout");
        if positions.is_empty() {
            return false;
        }
        let mut best = Vec::with_capacity(self.units);
        for u in 0..self.units {
            let row = &f.data[u * f.steps..(u + 1) * f.steps];
            let mut top = (f32::NEG_INFINITY, positions.start);
            for j in positions.clone() {
                let v = row[j];
                let v64 = f64::from(v);
                self.sum[u] += v64;
                self.sum_sq[u] += v64 * v64;
                if v > top.0 {
                    top = (v, j);
                }
            }
            self.max[u] = self.max[u].max(top.0);
            best.push(top);
        }
        self.positions += positions.len();
        self.best.push((clip, best));
        true
    }

    /// Clips with at least one whole position: the most any unit's top k can hold.
    pub fn clips(&self) -> usize {
        self.best.len()
    }

    /// Every unit's top `k`, statistics and purity (`labels[clip]`: the clip's class, if known).
    pub fn rank(&self, k: usize, labels: Option<&[Option<usize>]>) -> Result<Vec<UnitRanking>> {
        ensure!(k >= 1, "--top-k 0: a unit needs at least one excerpt");
        ensure!(
            k <= self.clips(),
            "--top-k {k} is more than the {} clip(s) with a whole receptive field of this layer: each clip \
             gives a unit one excerpt",
            self.clips()
        );
        let n = self.positions as f64;
        Ok((0..self.units)
            .map(|u| {
                let mut hits: Vec<Hit> = self
                    .best
                    .iter()
                    .map(|(clip, b)| Hit { clip: *clip, position: b[u].1, activation: b[u].0 })
                    .collect();
                // Stable: equal activations keep clip order.
                hits.sort_by(|a, b| b.activation.total_cmp(&a.activation));
                hits.truncate(k);
                let mean = self.sum[u] / n;
                let std = (self.sum_sq[u] / n - mean * mean).max(0.0).sqrt();
                let top_mean = hits.iter().map(|h| f64::from(h.activation)).sum::<f64>() / k as f64;
                let selectivity = if std > 0.0 { (top_mean - mean) / std } else { 0.0 };
                let purity = labels.map(|l| purity(&hits, l)).unwrap_or(None);
                UnitRanking { unit: u, top: hits, mean, std, max: self.max[u], selectivity, purity }
            })
            .collect())
    }
}

/// The most common class among `hits` and its share of them; `None` when none is labelled.
fn purity(hits: &[Hit], labels: &[Option<usize>]) -> Option<Purity> {
    let classes: Vec<usize> = hits.iter().filter_map(|h| labels[h.clip]).collect();
    let first = *classes.first()?;
    let count = |c: usize| classes.iter().filter(|&&x| x == c).count();
    let class = classes.iter().copied().fold(first, |best, c| if count(c) > count(best) { c } else { best });
    Some(Purity { class, share: count(class) as f64 / hits.len() as f64 })
}

/// The chance that `k` clips drawn at random (without replacement) from clips with these
/// `class_counts` hold at least `need` of one class. `None` when `2 need <= k`, where two
/// classes could both reach `need` and the sum below would count such draws twice.
pub fn chance_of_purity(class_counts: &[usize], k: usize, need: usize) -> Option<f64> {
    if 2 * need <= k {
        return None;
    }
    let total: usize = class_counts.iter().sum();
    let ln_choose = |n: usize, r: usize| -> f64 {
        if r > n {
            return f64::NEG_INFINITY;
        }
        (0..r).map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln()).sum()
    };
    let all = ln_choose(total, k);
    Some(
        class_counts
            .iter()
            .map(|&c| {
                (need..=k.min(c)).map(|m| (ln_choose(c, m) + ln_choose(total - c, k - m) - all).exp()).sum::<f64>()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::soundnet8;

    #[test]
    fn whole_positions_keep_the_field_inside_the_clip() {
        let g = Geometry::of(&soundnet8(), "conv7").unwrap();
        // R = 91,166, S = 32,768, P = 55,584: in a 5 s clip only position 2 sees no padding.
        assert_eq!((g.field, g.stride, g.offset), (91_166, 32_768, 55_584));
        let steps = g.out_len(110_250).unwrap();
        assert_eq!(whole_positions(&g, 110_250, steps), 2..3);
        for samples in [90_000, 110_250, 220_500, 1_000_000] {
            let steps = g.out_len(samples).unwrap_or(0);
            for j in whole_positions(&g, samples, steps) {
                let start = (j * g.stride) as i64 - g.offset as i64;
                assert!(start >= 0 && start as usize + g.field <= samples, "{samples}: {j}");
            }
            let r = whole_positions(&g, samples, steps);
            assert!(
                r.end >= steps || (r.end * g.stride + g.field) > samples + g.offset,
                "{samples}: {r:?} stops early"
            );
        }
        assert!(whole_positions(&g, 90_000, g.out_len(90_000).unwrap()).is_empty());
    }

    fn features(rows: &[&[f32]]) -> Features {
        Features {
            layer: "x".into(),
            channels: rows.len(),
            steps: rows[0].len(),
            data: rows.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    #[test]
    fn ranking_takes_each_clips_best_whole_position() {
        let mut t = Tally::new(2);
        // Position 0 is outside the whole range and must never win, however high.
        assert!(t.add(0, &features(&[&[9.0, 1.0, 3.0], &[0.0, 0.0, 0.0]]), 1..3));
        assert!(t.add(1, &features(&[&[9.0, 5.0, 2.0], &[0.0, 0.0, 0.0]]), 1..3));
        assert!(!t.add(2, &features(&[&[9.0, 9.0, 9.0], &[0.0, 0.0, 0.0]]), 1..1));
        assert!(t.add(3, &features(&[&[9.0, 3.0, 0.5], &[0.0, 0.0, 0.0]]), 1..3));
        let labels = [Some(4), None, Some(7), Some(4)];
        let r = t.rank(2, Some(&labels)).unwrap();
        let top: Vec<(usize, usize, f32)> = r[0].top.iter().map(|h| (h.clip, h.position, h.activation)).collect();
        // Clip 3 ties clip 0 at 3.0 and comes after it.
        assert_eq!(top, [(1, 1, 5.0), (0, 2, 3.0)]);
        let values = [1.0, 3.0, 5.0, 2.0, 3.0, 0.5];
        let mean = values.iter().sum::<f64>() / 6.0;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0).sqrt();
        assert!((r[0].selectivity - (4.0 - mean) / std).abs() < 1e-9);
        assert_eq!(r[0].purity, Some(Purity { class: 4, share: 0.5 }));
        // A unit that never varies has no selectivity.
        assert_eq!((r[1].selectivity, r[1].std, r[1].max), (0.0, 0.0, 0.0));
        assert!(t.rank(4, None).unwrap_err().to_string().contains("more than the 3 clip(s)"));
        assert!(t.rank(0, None).is_err());
    }

    #[test]
    fn chance_of_purity_is_the_hypergeometric_tail() {
        // 10 balanced classes of 40 clips, 4 of 5 from one class: 10 * P(X >= 4).
        let p = chance_of_purity(&[40; 10], 5, 4).unwrap();
        let choose = |n: f64, r: u32| (0..r).fold(1.0, |a, i| a * (n - i as f64) / (i as f64 + 1.0));
        let one = (choose(40.0, 4) * choose(360.0, 1) + choose(40.0, 5)) / choose(400.0, 5);
        assert!((p - 10.0 * one).abs() < 1e-12, "{p}");
        assert!(p > 0.003 && p < 0.005);
        assert_eq!(chance_of_purity(&[1, 1], 2, 2), Some(0.0));
        assert_eq!(chance_of_purity(&[3, 3], 4, 2), None);
    }
}
