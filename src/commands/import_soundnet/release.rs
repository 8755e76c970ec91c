//! The authors' released training set as it unpacks, read the way the original loader reads it
//! (`data/donkey_audio.lua`, `main_train.lua`):
//!
//! - `lists/{split}_frames4_NNNN.txt`: one video frame per line, its path the line's first
//!   whitespace-separated token. The video's key is that path without its first 62 characters
//!   (the authors' frame root) and without its `/NNNNNNNN.jpg` suffix; consecutive lines with
//!   one key are that video's frames, frame k covering seconds [5k, 5k + 5) of its audio.
//! - `features/VGG16_IMNET_{SPLIT}_BNNNN/prob` and `features/VGG16_PLACES2_{SPLIT}_BNNNN/prob`:
//!   the teachers' softmax outputs, headerless row-major float32 of 1000 and 401 values per row,
//!   row i belonging to line i of list NNNN.
//! - the audio at `<root>/<key>.mp3` (keys end in `.mp4`, so files are named `<id>.mp4.mp3`).
//!
//! A video keeps at most its first `FRAMES` rows, as the original reads `label_time_steps = 4`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::data::teacher::row_problem;
use crate::data::Problem;
use crate::model::HeadKind;

/// Characters of the authors' frame root at the start of every listed path.
pub const PREFIX_CHARS: usize = 62;
/// `/NNNNNNNN.jpg`: the frame's file name after the video's key.
const SUFFIX_CHARS: usize = 13;
/// Rows a video keeps: the original's `label_time_steps`.
pub const FRAMES: usize = 4;

/// Which half of the release: its lists and feature folders are named by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    Train,
    Val,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    /// `lists/{split}_frames4_NNNN.txt`.
    pub fn list(self, lists: &Path, shard: u32) -> PathBuf {
        lists.join(format!("{}_frames4_{shard:04}.txt", self.name()))
    }

    /// The `prob` file of `head`'s teacher for list `shard`.
    pub fn prob(self, features: &Path, head: HeadKind, shard: u32) -> PathBuf {
        let net = if head == HeadKind::Objects { "IMNET" } else { "PLACES2" };
        let split = self.name().to_uppercase();
        features.join(format!("VGG16_{net}_{split}_B{shard:04}")).join("prob")
    }
}

/// One video of a list: its key, the line its first frame is on (1-based) and its frame count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub key: String,
    pub line: usize,
    pub frames: usize,
}

/// The list's videos in order, and its line count (the rows each `prob` file must hold). Every
/// line must hold a frame path of the released form; the first that does not is the error, as
/// one line off would pair every later row with the wrong video.
pub fn read_list(path: &Path) -> Result<(Vec<Video>, usize), Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| Problem::new(path, format!("cannot read the list ({e})")))?;
    let mut videos: Vec<Video> = Vec::new();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        let at = |reason: String| Problem::new(path, format!("line {}: {reason}", i + 1));
        let frame = line.split_whitespace().next().ok_or_else(|| at("empty: every line is one frame".into()))?;
        let key = video_key(frame).ok_or_else(|| {
            at(format!(
                "{frame:?} is not a frame path of the release: {PREFIX_CHARS} characters of frame root, the \
                 video's key, then /NNNNNNNN.jpg"
            ))
        })?;
        match videos.last_mut() {
            Some(v) if v.key == key => v.frames += 1,
            _ => videos.push(Video { key: key.to_string(), line: i + 1, frames: 1 }),
        }
        lines += 1;
    }
    if lines == 0 {
        return Err(Problem::new(path, "no lines: a list holds one frame per line"));
    }
    Ok((videos, lines))
}

/// The video key of a listed frame path, when it has the released form.
fn video_key(frame: &str) -> Option<&str> {
    let key = frame.get(PREFIX_CHARS..frame.len().checked_sub(SUFFIX_CHARS)?)?;
    let suffix = &frame[frame.len() - SUFFIX_CHARS..];
    let digits = suffix.get(1..9)?;
    let ok = suffix.starts_with('/') && suffix.ends_with(".jpg") && digits.bytes().all(|b| b.is_ascii_digit());
    (ok && !key.is_empty()).then_some(key)
}

/// A teacher's `prob` file, read row by row in list order.
pub struct Prob {
    pub path: PathBuf,
    pub classes: usize,
    reader: BufReader<File>,
    row: usize,
}

impl Prob {
    /// Opens `path`, which must hold exactly `lines` rows of `classes` float32 values.
    pub fn open(path: &Path, classes: usize, lines: usize) -> Result<Prob, Problem> {
        let file = File::open(path).map_err(|e| Problem::new(path, format!("cannot open the teacher's rows ({e})")))?;
        let size = file.metadata().map_err(|e| Problem::new(path, format!("cannot read its size ({e})")))?.len();
        let expected = (lines * classes * 4) as u64;
        if size != expected {
            return Err(Problem::new(
                path,
                format!(
                    "{size} bytes, expected {lines} lines x {classes} classes x 4 bytes = {expected} (a truncated \
                     download, or the prob file of another list?)"
                ),
            ));
        }
        Ok(Prob { path: path.to_path_buf(), classes, reader: BufReader::new(file), row: 0 })
    }

    /// The next `n` rows, `[n, classes]`; each must be a distribution (values in [0, 1], summing
    /// to 1 within `teacher::SUM_TOLERANCE`), or the first that is not is the problem (the rows
    /// are read either way, so the next video's start where they should).
    pub fn rows(&mut self, n: usize) -> Result<Result<Vec<f32>, Problem>, Problem> {
        let mut bytes = vec![0u8; n * self.classes * 4];
        self.reader
            .read_exact(&mut bytes)
            .map_err(|e| Problem::at_row(&self.path, self.row, format!("cannot read the rows ({e})")))?;
        let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let first = self.row;
        self.row += n;
        for (r, row) in values.chunks_exact(self.classes).enumerate() {
            let problem = row_problem(row).or_else(|| {
                row.iter().position(|&v| v > 1.0).map(|c| format!("class {c} is {}: expected at most 1", row[c]))
            });
            if let Some(reason) = problem {
                return Ok(Err(Problem::at_row(&self.path, first + r, reason)));
            }
        }
        Ok(Ok(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_the_frame_root_and_the_frame_name() {
        let root = "r".repeat(PREFIX_CHARS);
        assert_eq!(video_key(&format!("{root}1/23/456.mp4/00000002.jpg")), Some("1/23/456.mp4"));
        assert_eq!(video_key(&format!("{root}1/23/456.mp4/0000002.jpg")), None, "7 digits");
        assert_eq!(video_key(&format!("{root}1/23/456.mp4/00000002.png")), None);
        assert_eq!(video_key(&format!("{root}/00000002.jpg")), None, "no key");
        assert_eq!(video_key("short/00000002.jpg"), None);
        assert_eq!(video_key(&format!("{}é/00000001.jpg", "r".repeat(PREFIX_CHARS - 1))), None, "not at a char edge");
    }
}
