//! A synthetic dataset made in memory: eight kinds of procedural sound, each taught a peaked
//! distribution over a few named object and scene classes. The kinds differ in pitch, spectrum
//! and rhythm, so even a small network learns them quickly: a smoke test of training that needs
//! no files.

use std::f64::consts::TAU;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::categories;
use super::crop::Crop;
use super::{Dataset, Example, OBJECT_CLASSES, SAMPLE_RATE, SCALE, SCENE_CLASSES};

/// One synthetic kind of sound and what its teacher says about it: class names (whole lines of
/// the category lists) with the probability each gets before noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoClass {
    pub name: &'static str,
    pub sound: &'static str,
    pub objects: &'static [(&'static str, f32)],
    pub scenes: &'static [(&'static str, f32)],
}

pub const DEMO_CLASSES: [DemoClass; 8] = [
    DemoClass {
        name: "low tone",
        sound: "a pure tone at 110-160 Hz",
        objects: &[("organ, pipe organ", 0.6), ("church, church building", 0.25)],
        scenes: &[("church/indoor", 0.65), ("church/outdoor", 0.2)],
    },
    DemoClass {
        name: "whistle",
        sound: "a pure tone at 1.8-2.4 kHz",
        objects: &[("whistle", 0.6), ("steam locomotive", 0.25)],
        scenes: &[("train_station/platform", 0.6), ("railroad_track", 0.25)],
    },
    DemoClass {
        name: "bird chirps",
        sound: "short rising sweeps from 2-3 kHz, three or four a second",
        objects: &[("robin, American robin, Turdus migratorius", 0.5), ("goldfinch, Carduelis carduelis", 0.3)],
        scenes: &[("forest_path", 0.6), ("forest/broadleaf", 0.25)],
    },
    DemoClass {
        name: "surf",
        sound: "low-passed noise swelling every 4-10 s",
        objects: &[
            ("seashore, coast, seacoast, sea-coast", 0.6),
            ("breakwater, groin, groyne, mole, bulwark, seawall, jetty", 0.25),
        ],
        scenes: &[("beach", 0.5), ("ocean", 0.35)],
    },
    DemoClass {
        name: "clock ticks",
        sound: "a click train at 3-6 clicks a second",
        objects: &[("wall clock", 0.5), ("analog clock", 0.35)],
        scenes: &[("living_room", 0.5), ("home_office", 0.3)],
    },
    DemoClass {
        name: "siren",
        sound: "a tone swept between about 500 and 1200 Hz every 2-3 s",
        objects: &[
            ("ambulance", 0.5),
            ("police van, police wagon, paddy wagon, patrol wagon, wagon, black Maria", 0.3),
        ],
        scenes: &[("street", 0.55), ("highway", 0.3)],
    },
    DemoClass {
        name: "tremolo strings",
        sound: "a 440-660 Hz tone with two overtones, amplitude-modulated at 5-8 Hz",
        objects: &[("violin, fiddle", 0.55), ("cello, violoncello", 0.3)],
        scenes: &[("orchestra_pit", 0.55), ("stage/indoor", 0.3)],
    },
    DemoClass {
        name: "drum",
        sound: "decaying noise bursts over an 80 Hz thump, about two a second",
        objects: &[("drum, membranophone, tympan", 0.6), ("drumstick", 0.2)],
        scenes: &[("music_studio", 0.55), ("stage/outdoor", 0.25)],
    },
];

/// (class index, probability) of the classes a kind's teacher names.
type Peaks = Vec<(usize, f32)>;

/// `clips_per_class` clips of each [`DEMO_CLASSES`] kind; example i is of kind i mod 8, so any
/// run of eight consecutive examples holds every kind.
#[derive(Debug, Clone)]
pub struct DemoDataset {
    crop: Crop,
    clips_per_class: usize,
    seed: u64,
    /// Per kind, its named objects and scenes.
    peaks: Vec<(Peaks, Peaks)>,
}

impl DemoDataset {
    pub fn new(crop: Crop, clips_per_class: usize, seed: u64) -> DemoDataset {
        let resolve = |names: &[&str], wanted: &[(&str, f32)]| -> Peaks {
            wanted
                .iter()
                .map(|&(name, p)| {
                    (categories::index(names, name).unwrap_or_else(|| panic!("no class named {name:?}")), p)
                })
                .collect()
        };
        let peaks = DEMO_CLASSES
            .iter()
            .map(|k| (resolve(categories::objects(), k.objects), resolve(categories::scenes(), k.scenes)))
            .collect();
        DemoDataset { crop, clips_per_class, seed, peaks }
    }

    pub fn classes() -> &'static [DemoClass] {
        &DEMO_CLASSES
    }

    /// The kind of example `i` (an index into [`DEMO_CLASSES`]).
    pub fn class_of(&self, i: usize) -> usize {
        i % DEMO_CLASSES.len()
    }
}

impl Dataset for DemoDataset {
    fn len(&self) -> usize {
        self.clips_per_class * DEMO_CLASSES.len()
    }

    fn classes(&self) -> crate::model::Heads<Option<usize>> {
        crate::model::Heads { objects: Some(OBJECT_CLASSES), scenes: Some(SCENE_CLASSES), classes: None }
    }

    fn crop(&self) -> Crop {
        self.crop
    }

    fn example(&self, i: usize) -> Result<Example> {
        let kind = self.class_of(i);
        let mut rng = StdRng::seed_from_u64(self.seed ^ (i as u64).wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let waveform = synthesize(kind, self.crop.samples, &mut rng);
        let (objects, scenes) = &self.peaks[kind];
        let mut obj = Vec::with_capacity(self.crop.steps * OBJECT_CLASSES);
        let mut sce = Vec::with_capacity(self.crop.steps * SCENE_CLASSES);
        for _ in 0..self.crop.steps {
            obj.extend(noisy_distribution(OBJECT_CLASSES, objects, &mut rng));
            sce.extend(noisy_distribution(SCENE_CLASSES, scenes, &mut rng));
        }
        Ok(Example { waveform, objects: obj, scenes: sce, classes: Vec::new() })
    }
}

/// The peaks jittered by up to 10%, the rest of the mass spread unevenly over every class, then
/// normalised: a valid distribution that is clearly the kind's, but never exactly the same.
fn noisy_distribution(classes: usize, peaks: &[(usize, f32)], rng: &mut StdRng) -> Vec<f32> {
    let named: f64 = peaks.iter().map(|&(_, p)| p as f64).sum();
    let spread: Vec<f64> = (0..classes).map(|_| rng.random_range(0.5..1.5)).collect();
    let total: f64 = spread.iter().sum();
    let mut row: Vec<f64> = spread.iter().map(|u| (1.0 - named) * u / total).collect();
    for &(c, p) in peaks {
        row[c] += p as f64 * rng.random_range(0.9..1.1);
    }
    let sum: f64 = row.iter().sum();
    row.iter().map(|v| (v / sum) as f32).collect()
}

/// `len` samples of kind `kind`, peaking at 40-80% of full scale.
fn synthesize(kind: usize, len: usize, rng: &mut StdRng) -> Vec<f32> {
    let sr = SAMPLE_RATE as f64;
    let t = |i: usize| i as f64 / sr;
    let phase: f64 = rng.random_range(0.0..TAU);
    let mut x: Vec<f64> = match kind {
        0 | 1 => {
            let f = if kind == 0 { rng.random_range(110.0..160.0) } else { rng.random_range(1800.0..2400.0) };
            (0..len).map(|i| (TAU * f * t(i) + phase).sin()).collect()
        }
        2 => {
            let (f0, period, dur) =
                (rng.random_range(2000.0..3000.0), rng.random_range(0.25..0.33), rng.random_range(0.08..0.15));
            (0..len)
                .map(|i| {
                    let local = (t(i) + phase / TAU * period) % period;
                    if local >= dur {
                        return 0.0;
                    }
                    // The frequency rises linearly from f0 to 1.6 f0 over the chirp.
                    let inst_phase = TAU * f0 * (local + 0.3 * local * local / dur);
                    inst_phase.sin() * (std::f64::consts::PI * local / dur).sin().powi(2)
                })
                .collect()
        }
        3 => {
            let (alpha, swell) = (rng.random_range(0.05..0.1), rng.random_range(0.1..0.25));
            let mut state = 0.0;
            (0..len)
                .map(|i| {
                    state += alpha * (rng.random_range(-1.0..1.0) - state);
                    state * (0.6 + 0.4 * (TAU * swell * t(i) + phase).sin())
                })
                .collect()
        }
        4 => {
            let period = 1.0 / rng.random_range(3.0..6.0);
            (0..len)
                .map(|i| {
                    let local = (t(i) + phase / TAU * period) % period;
                    (TAU * 3000.0 * local).sin() * (-local / 0.001).exp()
                })
                .collect()
        }
        5 => {
            let (fc, dev, fm) =
                (rng.random_range(750.0..900.0), rng.random_range(200.0..300.0), rng.random_range(0.3..0.6));
            let mut acc = phase;
            (0..len)
                .map(|i| {
                    acc += TAU * (fc + dev * (TAU * fm * t(i)).sin()) / sr;
                    acc.sin()
                })
                .collect()
        }
        6 => {
            let (f, fa) = (rng.random_range(440.0..660.0), rng.random_range(5.0..8.0));
            (0..len)
                .map(|i| {
                    let w = TAU * f * t(i) + phase;
                    let tone = w.sin() + 0.5 * (2.0 * w).sin() + 0.25 * (3.0 * w).sin();
                    tone * (0.55 + 0.45 * (TAU * fa * t(i)).sin())
                })
                .collect()
        }
        _ => {
            let period = rng.random_range(0.4..0.6);
            (0..len)
                .map(|i| {
                    let local = (t(i) + phase / TAU * period) % period;
                    let burst = rng.random_range(-1.0..1.0) * (-local / 0.04).exp();
                    burst + 0.8 * (TAU * 80.0 * local).sin() * (-local / 0.08).exp()
                })
                .collect()
        }
    };
    for v in &mut x {
        *v += 0.01 * rng.random_range(-1.0..1.0);
    }
    let peak = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-9);
    let gain = rng.random_range(0.4..0.8) * SCALE as f64 / peak;
    x.iter().map(|v| (v * gain) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_class_exists() {
        DemoDataset::new(Crop::new(100, 1).unwrap(), 1, 0);
    }
}
