//! Kernel choices measured on the device itself, kept on disk: where an op pass has several
//! kernels, which one ran fastest at a shape on this adapter. A GPU rewards other kernels than a
//! CPU driver, and one GPU other shapes than the next, so no constant measured on one device
//! decides for the others; the choice is measured once per adapter, driver and kernel source, and
//! every later run reads it back, so it also picks the same kernels (and gets the same rounding)
//! run after run.
//!
//! The file (`kernel-choices.json` in the user's cache folder, or `SN_WGPU_TUNE_CACHE`) holds one
//! entry per (adapter, op, hash of the op's shader sources, pass, shape): the kernel chosen and
//! the time of each candidate. An entry whose adapter, driver or sources differ from this run's
//! is never used, so a new driver or an edited shader is measured again; a file that does not
//! parse is set aside with a note and rewritten, never an error. Entries are only ever added:
//! when two processes measure the same pass at once, the first to write wins and the other adopts
//! its choice, so no run ever sees a choice change under it.
//!
//! Only the command line turns the file on ([`use_cache_file`]); a library user or a test gets
//! the built-in first guesses unless it opens a [`Tuning`] itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What a choice is looked up by, besides the adapter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TuneKey {
    /// The op, e.g. `conv1d`.
    pub op: &'static str,
    /// [`source_hash`] of every shader the op's candidates run.
    pub sources: String,
    /// The pass, e.g. `forward`.
    pub pass: &'static str,
    /// The shape, written out in full.
    pub shape: String,
}

/// A measured choice: the kernel that ran fastest and each candidate's time per run, with how many
/// runs it was timed over (1 for a candidate dropped after one run that was far slower than the best).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub kernel: String,
    pub nanos: BTreeMap<String, f64>,
    pub runs: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    adapter: String,
    op: String,
    sources: String,
    pass: String,
    shape: String,
    #[serde(flatten)]
    choice: Choice,
}

impl Entry {
    fn key(&self) -> (String, String, String, String, String) {
        (self.adapter.clone(), self.op.clone(), self.sources.clone(), self.pass.clone(), self.shape.clone())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    entries: Vec<Entry>,
}

const FORMAT: u32 = 1;

/// The cache file the command line uses, set once at start ([`use_cache_file`]).
static CACHE_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Turns the kernel-choice file on for every device this process opens: `SN_WGPU_TUNE_CACHE` if
/// set (`off` turns tuning off), else `kernel-choices.json` in the user's cache folder.
pub fn use_cache_file() {
    CACHE_FILE.get_or_init(|| match std::env::var_os("SN_WGPU_TUNE_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => dirs::cache_dir().map(|d| d.join("sn-wgpu").join("kernel-choices.json")),
    });
}

/// The file [`use_cache_file`] chose, if any.
pub(crate) fn cache_file() -> Option<PathBuf> {
    CACHE_FILE.get().cloned().flatten()
}

/// A stable hash (64-bit FNV-1a) of shader sources, as hex: part of every key, so an edited
/// kernel is measured again.
pub fn source_hash(sources: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in sources {
        for b in s.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What identifies the adapter to the cache: name, backend, vendor and device ids, driver.
pub fn adapter_id(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | vendor {:#x} device {:#x} | {} {}",
        info.name, info.backend, info.vendor, info.device, info.driver, info.driver_info
    )
}

/// This device's measured choices, and the file they are kept in (none: measure nothing, keep
/// nothing, and every op takes its built-in first guess).
pub struct Tuning {
    path: Option<PathBuf>,
    adapter: String,
    choices: Mutex<BTreeMap<TuneKey, Choice>>,
    notes: Mutex<Vec<String>>,
}

impl Tuning {
    /// No file: the built-in first guesses everywhere.
    pub fn off(info: &wgpu::AdapterInfo) -> Tuning {
        Tuning { path: None, adapter: adapter_id(info), choices: Mutex::default(), notes: Mutex::default() }
    }

    /// The choices `path` holds for this adapter. A missing file is an empty one; a damaged one is
    /// noted ([`Tuning::take_notes`]) and read as empty, and is replaced at the next write.
    pub fn open(path: &Path, info: &wgpu::AdapterInfo) -> Tuning {
        let tuning = Tuning { path: Some(path.to_path_buf()), ..Tuning::off(info) };
        let file = tuning.read_file();
        *tuning.choices.lock().unwrap() = tuning.mine(&file);
        tuning
    }

    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn lookup(&self, key: &TuneKey) -> Option<Choice> {
        self.choices.lock().unwrap().get(key).cloned()
    }

    /// Every choice in force for this adapter.
    pub fn all(&self) -> BTreeMap<TuneKey, Choice> {
        self.choices.lock().unwrap().clone()
    }

    /// What happened to the file that a user should hear about (a damaged file set aside), once.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }

    /// Keeps `choice` for `key` and writes it to the file, unless another process wrote one for the
    /// same key first: then that one is kept and returned, so every run agrees.
    pub fn record(&self, key: &TuneKey, choice: Choice) -> Result<Choice> {
        let Some(path) = &self.path else { bail!("kernel tuning is off: there is no file to keep a choice in") };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // One writer at a time: read, add, write, under an OS lock the kernel drops with the process.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
        let mut file = self.read_file();
        let entry = Entry {
            adapter: self.adapter.clone(),
            op: key.op.to_string(),
            sources: key.sources.clone(),
            pass: key.pass.to_string(),
            shape: key.shape.clone(),
            choice,
        };
        let kept = match file.entries.iter().find(|e| e.key() == entry.key()) {
            Some(first) => first.choice.clone(),
            None => {
                let kept = entry.choice.clone();
                file.entries.push(entry);
                write_atomically(path, &serde_json::to_vec_pretty(&file)?)
                    .with_context(|| format!("writing the kernel choices to {}", path.display()))?;
                kept
            }
        };
        let mut choices = self.mine(&file);
        choices.insert(key.clone(), kept.clone());
        *self.choices.lock().unwrap() = choices;
        Ok(kept)
    }

    /// The file's contents; a damaged file is noted and read as empty.
    fn read_file(&self) -> CacheFile {
        let Some(path) = &self.path else { return CacheFile::default() };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CacheFile { format: FORMAT, entries: vec![] },
            Err(e) => {
                self.note(format!("kernel choices: cannot read {} ({e}); measuring again", path.display()));
                return CacheFile { format: FORMAT, entries: vec![] };
            }
        };
        match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(file) if file.format == FORMAT => file,
            Ok(file) => {
                self.note(format!(
                    "kernel choices: {} is format {}, this sn-wgpu writes {FORMAT}; measuring again and replacing it",
                    path.display(),
                    file.format
                ));
                CacheFile { format: FORMAT, entries: vec![] }
            }
            Err(e) => {
                self.note(format!(
                    "kernel choices: {} is damaged ({e}); measuring again and replacing it",
                    path.display()
                ));
                CacheFile { format: FORMAT, entries: vec![] }
            }
        }
    }

    fn note(&self, note: String) {
        self.notes.lock().unwrap().push(note);
    }

    /// The file's entries for this adapter.
    fn mine(&self, file: &CacheFile) -> BTreeMap<TuneKey, Choice> {
        let mut out = BTreeMap::new();
        for e in file.entries.iter().filter(|e| e.adapter == self.adapter) {
            // Keys name ops and passes by the names the code knows; an entry for another op or
            // pass (a newer sn-wgpu's) is kept in the file and passed over here.
            let (Some(op), Some(pass)) = (known(&e.op), known(&e.pass)) else { continue };
            let key = TuneKey { op, sources: e.sources.clone(), pass, shape: e.shape.clone() };
            out.entry(key).or_insert_with(|| e.choice.clone());
        }
        out
    }
}

/// The op and pass names a key may hold, as the `&'static str`s the ops use.
const NAMES: &[&str] = &["conv1d", "forward", "input_grad", "weight_grad"];

fn known(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == name)
}

/// Writes `bytes` beside `path` and renames the copy over it: readers see the old file or the new.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
