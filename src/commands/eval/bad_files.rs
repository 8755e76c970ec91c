//! What `predict` and `extract` do about files they cannot read: every other file is done first,
//! then the bad ones are listed. Without `--skip-bad` that list is the command's error, so it
//! exits non-zero after printing what did work; with it, the list is a note and the exit is zero.
//! When no file at all could be read, there is nothing to keep, and that is always an error.

use std::fmt::Write as _;

use anyhow::{bail, Result};

use crate::data::audio::AudioError;

/// The outcome for `failed` of `done + failed.len()` files: `Ok(None)` when none failed,
/// `Ok(Some(list))` to print when they are skipped, else the error naming them.
pub fn settle(command: &str, done: usize, failed: &[AudioError], skip_bad: bool) -> Result<Option<String>> {
    if failed.is_empty() {
        return Ok(None);
    }
    let total = done + failed.len();
    let mut list = String::new();
    for f in failed {
        let _ = write!(list, "\n  {f}");
    }
    if done == 0 {
        bail!("{command}: none of the {total} file(s) could be read:{list}");
    }
    if skip_bad {
        return Ok(Some(format!(
            "{command}: skipped {} of {total} files that could not be read (--skip-bad):{list}\n",
            failed.len()
        )));
    }
    bail!(
        "{command}: {} of {total} files could not be read (the other {done} are done above; --skip-bad exits zero \
         when some fail):{list}",
        failed.len()
    )
}

/// The note when every file of a `--skip-bad` run failed and the command may still go on (a
/// `teach` shard whose every input is bad writes an empty dataset).
pub fn all_skipped(command: &str, failed: &[AudioError]) -> String {
    let mut note = format!("{command}: none of the {} file(s) could be read; skipped (--skip-bad):", failed.len());
    for f in failed {
        let _ = write!(note, "\n  {f}");
    }
    note + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(name: &str) -> AudioError {
        AudioError { file: name.into(), reason: "cannot open audio file".into() }
    }

    #[test]
    fn failures_are_an_error_unless_skipped_and_all_failing_always_is() {
        assert_eq!(settle("predict", 3, &[], false).unwrap(), None);
        let err = settle("predict", 2, &[bad("b.wav")], false).unwrap_err().to_string();
        assert!(
            err.starts_with("predict: 1 of 3 files could not be read")
                && err.ends_with("\n  b.wav: cannot open audio file"),
            "{err}"
        );
        let note = settle("extract", 2, &[bad("b.wav")], true).unwrap().unwrap();
        assert_eq!(
            note,
            "extract: skipped 1 of 3 files that could not be read (--skip-bad):\n  b.wav: cannot open audio file\n"
        );
        let err = settle("extract", 0, &[bad("a.wav"), bad("b.wav")], true).unwrap_err().to_string();
        assert!(err.starts_with("extract: none of the 2 file(s) could be read:\n  a.wav"), "{err}");
    }
}
