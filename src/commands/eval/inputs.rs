//! The audio files `predict` and `extract` are given: files as named, folders as the audio files
//! directly inside them. A named path that does not exist is kept, so that it fails with the
//! other unreadable files instead of stopping the run before the good ones.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

/// The extensions `audio::load` decodes, looked for inside folders.
const AUDIO_EXTENSIONS: [&str; 4] = ["wav", "mp3", "flac", "ogg"];

/// The files named, and the audio files directly inside the folders named (sorted by name). A
/// folder that cannot be listed or holds no audio file is an error: it was named by mistake.
pub fn audio_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}: cannot list the folder", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("{}: cannot list the folder", path.display()))?;
        found.retain(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        });
        ensure!(
            !found.is_empty(),
            "{}: no audio files ({}) in the folder",
            path.display(),
            AUDIO_EXTENSIONS.join(", ")
        );
        found.sort();
        files.extend(found);
    }
    ensure!(!files.is_empty(), "no audio files or folders named");
    Ok(files)
}
