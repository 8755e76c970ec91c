//! One writer per folder, and only its own files replaced.
//!
//! A command that writes into a folder first locks `.sn-wgpu.lock` in it: an OS lock (`flock` on
//! Unix, `LockFileEx` on Windows) that the kernel drops when the process ends however it ends, so
//! a killed run never leaves a stale lock behind. A second process is refused before it writes
//! anything, with the holder's pid. The lock file stays in the folder (deleting it would let a
//! third process lock a new file while the second still holds the old one).
//!
//! Under the lock, `.sn-wgpu-written` lists every file sn-wgpu has written in the folder, one path
//! (relative, `/`-separated) a line. A file may be overwritten or removed only when the list names
//! it and it is not one of the command's inputs; any other file in the way is left as it is and
//! the command stops before writing. A name is added to the list (saved atomically) before its file
//! is written, so a run that dies midway leaves nothing of its own that a later run would take
//! for a user's file.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file's name in a locked folder.
pub const LOCK_FILE: &str = ".sn-wgpu.lock";

/// The list of the files sn-wgpu wrote in a folder.
pub const WRITTEN_LIST: &str = ".sn-wgpu-written";

/// A locked folder and what sn-wgpu wrote in it; the lock is held while this lives.
#[derive(Debug)]
pub struct OutFolder {
    dir: PathBuf,
    /// The flag that named the folder, for messages.
    what: String,
    written: BTreeSet<String>,
    /// The command's inputs, canonical: never overwritten, even where the list names them.
    inputs: BTreeSet<PathBuf>,
    _lock: File,
}

impl OutFolder {
    /// Creates `dir` if needed and locks it, or says which process holds it. `what` is the flag
    /// that named it (`--out`).
    pub fn lock(dir: &Path, what: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {what} {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => file
                .set_len(0)
                .and_then(|_| writeln!(file, "{}", std::process::id()))
                .with_context(|| format!("writing {}", path.display()))?,
            Err(TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = pid.trim();
                let pid = if pid.is_empty() { "unknown" } else { pid };
                bail!(
                    "{} is in use by another sn-wgpu process (pid {pid}); wait for it to end, or choose another {what}",
                    dir.display()
                )
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        let list = dir.join(WRITTEN_LIST);
        // Read leniently: a damaged name matches no file, so it permits nothing.
        let written = match std::fs::read(&list) {
            Ok(bytes) => {
                String::from_utf8_lossy(&bytes).lines().filter(|l| is_plain_relative(l)).map(str::to_string).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", list.display())),
        };
        Ok(OutFolder { dir: dir.to_path_buf(), what: what.to_string(), written, inputs: BTreeSet::new(), _lock: file })
    }

    /// Marks `inputs` as files this command reads: claiming or removing one is refused.
    pub fn reading(mut self, inputs: &[PathBuf]) -> Self {
        self.inputs.extend(inputs.iter().filter_map(|f| f.canonicalize().ok()));
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the list names `name` (a path relative to the folder).
    pub fn wrote(&self, name: &str) -> bool {
        self.written.contains(name)
    }

    /// The names on the list, sorted.
    pub fn written(&self) -> impl Iterator<Item = &str> {
        self.written.iter().map(String::as_str)
    }

    /// Makes `names` (paths relative to the folder, `/`-separated) this command's to write and
    /// returns their full paths. Each must be free, or written by sn-wgpu and not an input; all
    /// are checked before any is recorded, and the list is saved (and the names' subfolders made)
    /// before this returns, so the caller writes only after that.
    pub fn claim<S: AsRef<str>>(&mut self, names: &[S]) -> Result<Vec<PathBuf>> {
        let mut paths = Vec::with_capacity(names.len());
        for name in names.iter().map(AsRef::as_ref) {
            if !is_plain_relative(name) {
                bail!("{name:?}: not a file name inside {} {}", self.what, self.dir.display());
            }
            let path = self.dir.join(name);
            if self.is_input(&path) {
                bail!(
                    "{}: is one of the inputs, and writing there would overwrite it; choose another {}",
                    path.display(),
                    self.what
                );
            }
            if path.symlink_metadata().is_ok() && !self.written.contains(name) {
                bail!(
                    "{}: exists and was not written by sn-wgpu (the files it wrote in {} are listed in {WRITTEN_LIST} \
                     there), so it is left as it is; move it, or choose another {}",
                    path.display(),
                    self.dir.display(),
                    self.what
                );
            }
            paths.push(path);
        }
        let before = self.written.len();
        self.written.extend(names.iter().map(|n| n.as_ref().to_string()));
        if self.written.len() != before || !self.dir.join(WRITTEN_LIST).exists() {
            self.save_list()?;
        }
        for path in &paths {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("{}: cannot create the folder", parent.display()))?;
            }
        }
        Ok(paths)
    }

    /// Removes `name` when sn-wgpu wrote it and it is not an input, and takes it off the list;
    /// anything else is left untouched (false).
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let path = self.dir.join(name);
        if !self.written.contains(name) || self.is_input(&path) {
            return Ok(false);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        self.written.remove(name);
        self.save_list()?;
        Ok(true)
    }

    fn is_input(&self, path: &Path) -> bool {
        path.canonicalize().is_ok_and(|p| self.inputs.contains(&p))
    }

    fn save_list(&self) -> Result<()> {
        let list = self.dir.join(WRITTEN_LIST);
        let tmp = self.dir.join(format!("{WRITTEN_LIST}.tmp"));
        let text: String = self.written.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &list))
            .with_context(|| format!("{}: cannot write the list of files sn-wgpu wrote", list.display()))
    }
}

/// Writes the single file `path` (a PNG or trace a flag names, `what`) through `write`, under the
/// lock and list of its folder: refused when a file sn-wgpu did not write is there.
pub fn write_file(path: &Path, what: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (if dir.as_os_str().is_empty() { Path::new(".") } else { dir }, name),
        _ => bail!("{what} {}: not a file path", path.display()),
    };
    let Some(name) = name.to_str() else { bail!("{what} {}: the file name is not UTF-8", path.display()) };
    let mut folder = OutFolder::lock(dir, what)?;
    let [file] = <[PathBuf; 1]>::try_from(folder.claim(&[name])?).expect("one name, one path");
    write(&file)
}

/// A path the list may hold: relative, of plain components, not the lock or the list. A list
/// edited to name anything else, such as `../x`, removes and permits nothing.
fn is_plain_relative(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && !name.contains('\\')
        && path.components().all(|c| matches!(c, Component::Normal(_)))
        && !matches!(name, LOCK_FILE | WRITTEN_LIST)
        && !name.starts_with(&format!("{WRITTEN_LIST}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sn-wgpu-out-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = scratch("lock");
        let first = OutFolder::lock(&dir, "--out").unwrap();
        let err = OutFolder::lock(&dir, "--out").unwrap_err().to_string();
        assert!(
            err.contains("in use by another sn-wgpu process") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        OutFolder::lock(&dir, "--out").expect("free again once the holder is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_files_on_the_list_are_overwritten_or_removed() {
        let dir = scratch("list");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("mine.txt"), "a user's").unwrap();
        std::fs::write(dir.join("sub/input.wav"), "an input").unwrap();
        let mut folder = OutFolder::lock(&dir, "--out").unwrap().reading(&[dir.join("sub/input.wav")]);
        let err = folder.claim(&["new.npy", "mine.txt"]).unwrap_err().to_string();
        assert!(err.contains("mine.txt") && err.contains("not written by sn-wgpu"), "{err}");
        assert!(!folder.wrote("new.npy"), "nothing is recorded when one name is refused");
        let err = folder.claim(&["sub/input.wav"]).unwrap_err().to_string();
        assert!(err.contains("one of the inputs"), "{err}");
        assert!(folder.claim(&["../escape"]).is_err());

        let paths = folder.claim(&["new.npy", "deep/er/x.npy"]).unwrap();
        for p in &paths {
            std::fs::write(p, "ours").unwrap();
        }
        assert!(!folder.remove("mine.txt").unwrap());
        drop(folder);

        // The list outlives the process that wrote it; edits naming other files permit nothing.
        let list = dir.join(WRITTEN_LIST);
        let mut text = std::fs::read_to_string(&list).unwrap();
        assert_eq!(text, "deep/er/x.npy\nnew.npy\n");
        text.push_str("../outside\nmine.txt/../mine.txt\n.sn-wgpu.lock\n");
        std::fs::write(&list, text).unwrap();
        let mut folder = OutFolder::lock(&dir, "--out").unwrap();
        assert_eq!(folder.written().collect::<Vec<_>>(), ["deep/er/x.npy", "new.npy"]);
        folder.claim(&["new.npy"]).expect("its own file may be overwritten");
        assert!(folder.remove("new.npy").unwrap());
        assert!(!dir.join("new.npy").exists() && !folder.wrote("new.npy"));
        assert_eq!(std::fs::read_to_string(dir.join("mine.txt")).unwrap(), "a user's");
        assert!(dir.join("sub/input.wav").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_single_file_is_written_only_where_nothing_foreign_is() {
        let dir = scratch("single");
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("chart.png");
        write_file(&png, "--confusion", |p| Ok(std::fs::write(p, "1")?)).unwrap();
        write_file(&png, "--confusion", |p| Ok(std::fs::write(p, "2")?)).expect("its own file again");
        assert_eq!(std::fs::read_to_string(&png).unwrap(), "2");
        std::fs::write(dir.join("other.png"), "a user's").unwrap();
        let err = write_file(&dir.join("other.png"), "--confusion", |_| unreachable!()).unwrap_err().to_string();
        assert!(err.contains("other.png") && err.contains("--confusion"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
