//! One writer per folder: a command that writes into a folder first takes an exclusive lock on
//! `.sn-wgpu.lock` in it, an OS lock (`flock` on Unix, `LockFileEx` on Windows) that the kernel
//! drops when the process ends however it ends, so a killed run never leaves a stale lock behind.
//! A second process is refused before it writes anything, with the holder's pid. The file stays
//! in the folder (deleting it would let a third process lock a new file while the second still
//! holds the old one).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The lock file's name in a locked folder.
pub const LOCK_FILE: &str = ".sn-wgpu.lock";

/// Held while it lives.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Creates `dir` if needed and locks it, or says which process holds it.
pub fn lock(dir: &Path, what: &str) -> Result<FolderLock> {
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
        Ok(()) => {
            file.set_len(0)
                .and_then(|_| writeln!(file, "{}", std::process::id()))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(FolderLock { _file: file })
        }
        Err(TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            let pid = if pid.is_empty() { "unknown".to_string() } else { pid.to_string() };
            bail!(
                "{} is in use by another sn-wgpu process (pid {pid}); wait for it to end, or choose another {what}",
                dir.display()
            )
        }
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("sn-wgpu-lock-{}", std::process::id()));
        let first = lock(&dir, "--out").unwrap();
        let err = lock(&dir, "--out").unwrap_err().to_string();
        assert!(
            err.contains("in use by another sn-wgpu process") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        lock(&dir, "--out").expect("free again once the holder is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
