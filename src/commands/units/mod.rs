//! `sn-wgpu units`: what each hidden unit of a layer detects, the paper's Figure 6. Every clip of
//! a folder goes through the network once; for every unit, the clips whose excerpts activate it
//! most (`ranking`: one excerpt per clip, only positions whose receptive field lies inside the
//! clip) are cut to the unit's receptive field and written as WAVs (`excerpts`), and one
//! self-contained HTML page (`page`) lists the units with audio players, clip names and, when a
//! `meta.csv` labels the clips (`clips`), their classes and each unit's purity, with a summary of
//! how many units are pure detectors.

pub mod clips;
pub mod excerpts;
pub mod page;
pub mod ranking;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

pub use clips::Clips;
pub use ranking::{Tally, UnitRanking};

use crate::data::{audio, SAMPLE_RATE};
use crate::eval::{load_model, Extractor, Geometry};
use crate::gpu::Gpu;
use crate::out_folder::OutFolder;

pub struct UnitsOptions {
    /// A folder of clips (or `meta.csv` + `audio/`).
    pub dir: PathBuf,
    pub weights: Option<PathBuf>,
    pub layer: String,
    /// Excerpts per unit.
    pub top_k: usize,
    /// Only the N most selective units; all units that vary when `None`.
    pub units: Option<usize>,
    /// A unit is a pure detector when this share of its top k is one class.
    pub pure: f64,
    /// The folder the page and its excerpts go to.
    pub out: PathBuf,
    pub chunk_samples: usize,
}

/// One excerpt on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excerpt {
    pub clip: String,
    pub class: Option<String>,
    pub activation: f32,
    /// Where in the clip the excerpt lies, in seconds.
    pub seconds: [f64; 2],
    /// The WAV, relative to the page.
    pub wav: String,
}

/// One unit on the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    pub unit: usize,
    pub selectivity: f64,
    pub max: f32,
    pub mean: f64,
    pub purity: Option<f64>,
    pub class: Option<String>,
    pub excerpts: Vec<Excerpt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitsReport {
    pub dir: PathBuf,
    pub weights: PathBuf,
    pub layer: String,
    /// The layer's channels.
    pub units_in_layer: usize,
    /// Units whose activation never varies over the clips' whole positions (after a ReLU: never
    /// fire); they have no top excerpts and are left out.
    pub silent_units: usize,
    pub clips: usize,
    /// Clips shorter than the receptive field: no position of theirs is ranked.
    pub clips_too_short: Vec<String>,
    pub field_samples: usize,
    pub field_seconds: f64,
    pub stride_seconds: f64,
    pub top_k: usize,
    pub pure_threshold: f64,
    /// Class names, when a `meta.csv` labels the clips.
    pub classes: Vec<String>,
    /// Units (of those that vary) at or above the purity threshold, and per class how many.
    pub pure_units: Option<usize>,
    pub pure_by_class: Vec<(String, usize)>,
    /// The share of units expected that pure if each unit's top k were random clips.
    pub pure_by_chance: Option<f64>,
    /// The units on the page, most selective first.
    pub units: Vec<Unit>,
    pub page: PathBuf,
    /// Distinct excerpt files written.
    pub excerpt_files: usize,
}

/// Ranks every unit of `opts.layer` over the clips of `opts.dir` and writes the page.
pub fn run(gpu: &Gpu, opts: &UnitsOptions) -> Result<UnitsReport> {
    ensure!(opts.top_k >= 1, "--top-k 0: a unit needs at least one excerpt");
    ensure!(opts.pure > 0.0 && opts.pure <= 1.0, "--pure {}: expected a share in (0, 1]", opts.pure);
    ensure!(opts.units != Some(0), "--units 0: nothing to show");
    let clips = Clips::find(&opts.dir)?;
    let model = load_model(gpu, opts.weights.as_deref(), "units")?;
    let mut extractor = Extractor::new(&model, &[opts.layer.as_str()], opts.chunk_samples)?;
    let g = Geometry::of(&model.arch, &opts.layer)?;
    let bar = crate::eval::clip_progress_bar(clips.files.len() as u64);
    let mut tally: Option<Tally> = None;
    let mut too_short = Vec::new();
    let mut ranked = vec![false; clips.files.len()];
    for (i, file) in clips.files.iter().enumerate() {
        let waveform = audio::load(file)?;
        let out =
            extractor.extract(gpu, &waveform).with_context(|| format!("{}: running the model", file.display()))?;
        let f = &out.features[0];
        let positions = ranking::whole_positions(&g, waveform.len(), f.steps);
        ranked[i] = tally.get_or_insert_with(|| Tally::new(f.channels)).add(i, f, positions);
        if !ranked[i] {
            too_short.push(clips.name(i));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tally = tally.expect("at least one clip");
    let secs = |n: usize| n as f64 / SAMPLE_RATE as f64;
    ensure!(
        tally.clips() > 0,
        "no clip in {} is as long as {}'s receptive field, {} samples ({:.2} s): no excerpt of a clip would \
         cover what a unit sees",
        opts.dir.display(),
        opts.layer,
        g.field,
        secs(g.field)
    );
    let labels = clips.labels.as_ref().map(|l| l.of_clip.as_slice());
    let rankings = tally.rank(opts.top_k, labels).with_context(|| format!("ranking the units of {}", opts.layer))?;
    let mut live: Vec<&UnitRanking> = rankings.iter().filter(|r| r.std > 0.0).collect();
    let silent_units = rankings.len() - live.len();
    ensure!(!live.is_empty(), "every unit of {} is constant over these clips: nothing to rank", opts.layer);
    live.sort_by(|a, b| b.selectivity.total_cmp(&a.selectivity).then(a.unit.cmp(&b.unit)));

    let class_names: Vec<String> = clips.labels.as_ref().map(|l| l.classes.clone()).unwrap_or_default();
    let is_pure = |r: &UnitRanking| r.purity.as_ref().is_some_and(|p| p.share >= opts.pure - 1e-12);
    let (pure_units, pure_by_class, pure_by_chance) = match &clips.labels {
        None => (None, Vec::new(), None),
        Some(l) => {
            let mut by_class: BTreeMap<usize, usize> = BTreeMap::new();
            for r in live.iter().filter(|r| is_pure(r)) {
                *by_class.entry(r.purity.as_ref().expect("pure").class).or_default() += 1;
            }
            let mut by_class: Vec<(String, usize)> =
                by_class.into_iter().map(|(c, n)| (l.classes[c].clone(), n)).collect();
            by_class.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            // Chance over the clips the top k are drawn from: the labelled ones long enough to rank.
            let mut counts = vec![0; l.classes.len()];
            for (c, _) in l.of_clip.iter().zip(&ranked).filter(|(_, &r)| r) {
                if let Some(c) = c {
                    counts[*c] += 1;
                }
            }
            let need = (opts.pure * opts.top_k as f64 - 1e-9).ceil() as usize;
            let chance = ranking::chance_of_purity(&counts, opts.top_k, need);
            (Some(live.iter().filter(|r| is_pure(r)).count()), by_class, chance)
        }
    };
    let shown: Vec<&UnitRanking> = live.iter().copied().take(opts.units.unwrap_or(usize::MAX)).collect();
    let wanted: Vec<(usize, usize)> = shown.iter().flat_map(|r| r.top.iter().map(|h| (h.clip, h.position))).collect();
    // Held until the page is written: one writer in the folder, and only its own files replaced.
    let mut folder = OutFolder::lock(&opts.out, "--out")?.reading(&clips.files);
    folder.claim(&[page::FILE])?;
    let wavs = excerpts::write(&mut folder, &clips.files, &g, &wanted)?;
    let units = shown
        .iter()
        .map(|r| Unit {
            unit: r.unit,
            selectivity: r.selectivity,
            max: r.max,
            mean: r.mean,
            purity: r.purity.as_ref().map(|p| p.share),
            class: r.purity.as_ref().map(|p| class_names[p.class].clone()),
            excerpts: r
                .top
                .iter()
                .map(|h| {
                    let start = h.position * g.stride - g.offset;
                    Excerpt {
                        clip: clips.name(h.clip),
                        class: clips.class_of(h.clip).map(str::to_string),
                        activation: h.activation,
                        seconds: [secs(start), secs(start + g.field)],
                        wav: wavs[&(h.clip, h.position)].clone(),
                    }
                })
                .collect(),
        })
        .collect();
    let report = UnitsReport {
        dir: opts.dir.clone(),
        weights: opts.weights.clone().expect("load_model checked --weights"),
        layer: opts.layer.clone(),
        units_in_layer: rankings.len(),
        silent_units,
        clips: clips.files.len(),
        clips_too_short: too_short,
        field_samples: g.field,
        field_seconds: secs(g.field),
        stride_seconds: secs(g.stride),
        top_k: opts.top_k,
        pure_threshold: opts.pure,
        classes: class_names,
        pure_units,
        pure_by_class,
        pure_by_chance,
        units,
        page: opts.out.join(page::FILE),
        excerpt_files: wavs.len(),
    };
    page::write(&report)?;
    Ok(report)
}

impl UnitsReport {
    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    /// The summary lines the page opens with.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{}: {} units; {} clips; receptive field {} samples ({:.2} s), one position every {:.2} s; top {} \
             excerpts per unit, one per clip, only positions whose field lies inside the clip",
            self.layer,
            self.units_in_layer,
            self.clips,
            self.field_samples,
            self.field_seconds,
            self.stride_seconds,
            self.top_k
        )];
        if !self.clips_too_short.is_empty() {
            lines.push(format!(
                "{} clip(s) shorter than the receptive field are not ranked: {}",
                self.clips_too_short.len(),
                self.clips_too_short.join(", ")
            ));
        }
        let live = self.units_in_layer - self.silent_units;
        lines.push(format!(
            "{live} units vary over these clips ({} never change and are left out); {} shown, most selective first",
            self.silent_units,
            self.units.len()
        ));
        if let Some(pure) = self.pure_units {
            let classes: Vec<String> = self.pure_by_class.iter().map(|(c, n)| format!("{c} {n}")).collect();
            lines.push(format!(
                "{pure} of {live} units ({:.1}%) are pure detectors: at least {:.0}% of their top {} from one class{}",
                100.0 * pure as f64 / live as f64,
                100.0 * self.pure_threshold,
                self.top_k,
                if classes.is_empty() { String::new() } else { format!(" ({})", classes.join(", ")) }
            ));
            if let Some(p) = self.pure_by_chance {
                lines.push(format!(
                    "if each unit's top {} were {} random clips, {:.2}% of units would be that pure",
                    self.top_k,
                    self.top_k,
                    100.0 * p
                ));
            }
        }
        lines
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for line in self.summary() {
            let _ = writeln!(s, "{line}");
        }
        const LISTED: usize = 10;
        for u in self.units.iter().take(LISTED) {
            let clips: Vec<String> = u
                .excerpts
                .iter()
                .map(|e| match &e.class {
                    Some(c) => format!("{} ({c})", e.clip),
                    None => e.clip.clone(),
                })
                .collect();
            let purity = match (&u.class, u.purity) {
                (Some(c), Some(p)) => format!(", {:.0}% {c}", 100.0 * p),
                _ => String::new(),
            };
            let _ = writeln!(s, "unit {:4}: selectivity {:5.2}{purity}: {}", u.unit, u.selectivity, clips.join(", "));
        }
        if self.units.len() > LISTED {
            let _ = writeln!(s, "... and {} more units on the page", self.units.len() - LISTED);
        }
        let _ = writeln!(s, "wrote {} ({} excerpt files)", self.page.display(), self.excerpt_files);
        s
    }
}
