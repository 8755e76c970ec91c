//! A labeled dataset folder, what `probe` and `train --labels` read, laid out as ESC-50/ESC-10
//! ship: `meta.csv` with columns `filename,fold,target` (and optionally `category`, the class name;
//! other columns are ignored) and the clips under `audio/`. The whole file is checked before any
//! audio is decoded or any feature file read, and every problem is reported with its line, so a
//! broken folder is fixed in one pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::data::{csv_lines, Problem, ValidationError};

pub const META: &str = "meta.csv";
pub const AUDIO_DIR: &str = "audio";
const REQUIRED: [&str; 3] = ["filename", "fold", "target"];

/// One row of `meta.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaClip {
    /// The `filename` column as written.
    pub filename: String,
    /// `audio/<filename>` under the dataset folder (not checked here: `--features` needs no audio).
    pub audio: PathBuf,
    pub fold: u32,
    /// Index into [`Meta::classes`].
    pub class: usize,
    /// The line of `meta.csv` the clip is on, for messages.
    pub line: u64,
}

/// A class: its `target` value and a name for tables and legends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub target: u32,
    /// The `category` column when there is one, else `class <target>`.
    pub name: String,
}

/// A validated `meta.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub dir: PathBuf,
    /// In file order.
    pub clips: Vec<MetaClip>,
    /// The distinct targets, ascending. Targets need not be contiguous (an ESC-50 subset may keep
    /// its ESC-50 numbers), so clips refer to classes by index, not by target.
    pub classes: Vec<Class>,
    /// The distinct folds, ascending: consecutive integers, at least two.
    pub folds: Vec<u32>,
}

impl Meta {
    /// Reads and checks `dir/meta.csv`. Fails with a [`ValidationError`] listing every problem
    /// (file, line and reason).
    pub fn read(dir: &Path) -> Result<Meta, ValidationError> {
        let path = dir.join(META);
        let fail = |problems: Vec<Problem>| ValidationError { dataset: dir.to_path_buf(), problems };
        let one = |reason: String| fail(vec![Problem::new(&path, reason)]);
        if !path.is_file() {
            return Err(one(format!(
                "no such file: the probe needs {META} (columns filename,fold,target and optionally category) \
                 and the clips under {AUDIO_DIR}/"
            )));
        }
        // Read whole, so each record's line can be counted from its byte offset.
        let text = std::fs::read(&path).map_err(|e| one(format!("cannot read the file ({e})")))?;
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_slice());
        let header = reader.headers().map_err(|e| one(format!("line 1: cannot read the header ({e})")))?.clone();
        let find = |name: &str| header.iter().position(|h| h == name);
        let mut columns = [0; 3];
        for (slot, name) in columns.iter_mut().zip(REQUIRED) {
            *slot = find(name).ok_or_else(|| {
                let found = header.iter().collect::<Vec<_>>().join(",");
                one(format!(
                    "line 1: missing column `{name}`: expected filename,fold,target (and optionally category), \
                     found {found}"
                ))
            })?;
        }
        let category_column = find("category");

        // (filename, fold, target, line) of every good row, then the classes they name.
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        // The first line where each target's category was seen, to name it in a conflict.
        let mut categories: BTreeMap<u32, (String, u64)> = BTreeMap::new();
        let mut record = csv::StringRecord::new();
        let mut lines = csv_lines::Lines::new(&text);
        loop {
            let before = reader.position().clone();
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    problems.push(Problem::new(&path, csv_lines::read_error(&mut lines, &e, &before)));
                    continue;
                }
            }
            let line = csv_lines::record_line(&mut lines, &record, &before);
            let mut problem = |reason: String| problems.push(Problem::new(&path, format!("line {line}: {reason}")));
            let field = |c: usize| record.get(c).unwrap_or("");
            let [filename_c, fold_c, target_c] = columns;
            let filename = field(filename_c).to_string();
            let fold = field(fold_c).parse::<u32>();
            let target = field(target_c).parse::<u32>();
            if filename.is_empty() {
                problem("empty `filename`".into());
            }
            if fold.is_err() {
                problem(format!("`fold` is {:?}: expected a non-negative integer", field(fold_c)));
            }
            if target.is_err() {
                problem(format!("`target` is {:?}: expected a non-negative integer class number", field(target_c)));
            }
            if let (Ok(target), Some(c)) = (&target, category_column) {
                let name = field(c).to_string();
                match categories.get(target) {
                    Some((first, first_line)) if *first != name => problem(format!(
                        "target {target} has category {name:?}, but line {first_line} gave it {first:?}"
                    )),
                    Some(_) => {}
                    None => {
                        categories.insert(*target, (name, line));
                    }
                }
            }
            if let (false, Ok(fold), Ok(target)) = (filename.is_empty(), fold, target) {
                rows.push((filename, fold, target, line));
            }
        }
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        if rows.is_empty() {
            return Err(one("no clips: expected at least one row after the header".into()));
        }

        let mut targets: Vec<u32> = rows.iter().map(|r| r.2).collect();
        targets.sort_unstable();
        targets.dedup();
        if targets.len() < 2 {
            return Err(one(format!("every clip has target {}: a classifier needs at least two classes", targets[0])));
        }
        let mut folds: Vec<u32> = rows.iter().map(|r| r.1).collect();
        folds.sort_unstable();
        folds.dedup();
        if folds.len() < 2 {
            return Err(one(format!(
                "every clip is in fold {}: leave-one-fold-out needs at least two folds",
                folds[0]
            )));
        }
        // Folds are numbered consecutively (ESC: 1..5); a gap is most likely a typo, and a fold
        // with no clips cannot be tested.
        let (first, last) = (folds[0], folds[folds.len() - 1]);
        let empty: Vec<Problem> = (first..=last)
            .filter(|f| folds.binary_search(f).is_err())
            .map(|f| Problem::new(&path, format!("fold {f} has no clips (the folds run from {first} to {last})")))
            .collect();
        if !empty.is_empty() {
            return Err(fail(empty));
        }

        let classes = targets
            .iter()
            .map(|&t| Class {
                target: t,
                name: match categories.get(&t) {
                    Some((name, _)) if !name.is_empty() => name.clone(),
                    _ => format!("class {t}"),
                },
            })
            .collect();
        let clips = rows
            .into_iter()
            .map(|(filename, fold, target, line)| MetaClip {
                audio: dir.join(AUDIO_DIR).join(&filename),
                filename,
                fold,
                class: targets.binary_search(&target).expect("collected from these rows"),
                line,
            })
            .collect();
        Ok(Meta { dir: dir.to_path_buf(), clips, classes, folds })
    }

    /// `meta.csv`'s path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.join(META)
    }
}
