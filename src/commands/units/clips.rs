//! The clips `units` ranks and, when the folder has a `meta.csv`, their classes. The folder is
//! either laid out as ESC-50/ESC-10 ship (`meta.csv` and the clips under `audio/`) or holds the
//! audio files directly (with or without a `meta.csv` beside them). `meta.csv` needs a `filename`
//! column and a `category` (class name) or `target` (class number) column; other columns are
//! ignored, and clips it does not list are simply unlabelled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::data::csv_lines;
use crate::eval::audio_files;

pub const META: &str = "meta.csv";

/// The clips, sorted by file name, and their classes when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Clips {
    pub files: Vec<PathBuf>,
    pub labels: Option<Labels>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    pub meta: PathBuf,
    /// Class names in order of first appearance in `meta.csv`.
    pub classes: Vec<String>,
    /// Per clip, its class index, `None` when `meta.csv` does not list it.
    pub of_clip: Vec<Option<usize>>,
}

impl Clips {
    /// The clips of `dir` (its `audio/` folder when there is one) and the labels of its `meta.csv`.
    pub fn find(dir: &Path) -> Result<Clips> {
        if !dir.is_dir() {
            bail!("{}: no such folder of clips", dir.display());
        }
        let audio = dir.join("audio");
        let folder = if audio.is_dir() { audio } else { dir.to_path_buf() };
        let files = audio_files(std::slice::from_ref(&folder))?;
        let meta = dir.join(META);
        let labels = if meta.is_file() { Some(read_labels(&meta, &files)?) } else { None };
        Ok(Clips { files, labels })
    }

    pub fn class_of(&self, clip: usize) -> Option<&str> {
        let labels = self.labels.as_ref()?;
        labels.of_clip[clip].map(|c| labels.classes[c].as_str())
    }

    pub fn name(&self, clip: usize) -> String {
        self.files[clip].file_name().unwrap_or_default().to_string_lossy().into_owned()
    }
}

fn read_labels(meta: &Path, files: &[PathBuf]) -> Result<Labels> {
    let text = std::fs::read(meta).with_context(|| format!("{}: cannot read the file", meta.display()))?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_slice());
    let header =
        reader.headers().with_context(|| format!("{}: line 1: cannot read the header", meta.display()))?.clone();
    let find = |name: &str| header.iter().position(|h| h == name);
    let Some(filename) = find("filename") else {
        bail!("{}: line 1: no `filename` column, so the clips cannot be labelled", meta.display());
    };
    let (class_column, numbered) = match (find("category"), find("target")) {
        (Some(c), _) => (c, false),
        (None, Some(t)) => (t, true),
        (None, None) => bail!("{}: line 1: no `category` or `target` column to label the clips with", meta.display()),
    };
    let mut classes: Vec<String> = Vec::new();
    let mut by_file: HashMap<String, usize> = HashMap::new();
    let mut position = csv::Position::new();
    let mut lines = csv_lines::Lines::new(&text);
    for record in reader.records() {
        let record = record
            .map_err(|e| anyhow::anyhow!("{}: {}", meta.display(), csv_lines::read_error(&mut lines, &e, &position)))?;
        let line = csv_lines::record_line(&mut lines, &record, &position);
        if let Some(p) = record.position() {
            position = p.clone();
        }
        let (file, class) = (&record[filename], &record[class_column]);
        if file.is_empty() || class.is_empty() {
            bail!("{}: line {line}: empty `filename` or class", meta.display());
        }
        let class = if numbered { format!("class {class}") } else { class.to_string() };
        let index = classes.iter().position(|c| *c == class).unwrap_or_else(|| {
            classes.push(class);
            classes.len() - 1
        });
        if by_file.insert(file.to_string(), index).is_some_and(|other| other != index) {
            bail!("{}: line {line}: {file} is listed again with another class", meta.display());
        }
    }
    let of_clip = files
        .iter()
        .map(|f| by_file.get(f.file_name().unwrap_or_default().to_string_lossy().as_ref()).copied())
        .collect();
    Ok(Labels { meta: meta.to_path_buf(), classes, of_clip })
}
