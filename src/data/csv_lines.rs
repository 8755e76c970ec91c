//! Line numbers of CSV records as an editor shows them, for messages. The csv crate's own count
//! falls one behind at every blank line and every line of a CRLF file (ESC-50 ships its meta.csv
//! with CRLF), so lines are counted from a record's byte offset instead.

use csv::{Position, StringRecord};

/// The lines of a CSV file's text, counted on from the last offset asked: records are asked for
/// in order, so a file of a million lines is counted once, not once per record.
pub struct Lines<'a> {
    text: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a [u8]) -> Lines<'a> {
        Lines { text, offset: 0, line: 1 }
    }

    /// The 1-based line that byte `offset` is on: one more than the line breaks before it
    /// (`\n`, `\r\n` or a lone `\r`).
    pub fn line_at(&mut self, offset: u64) -> u64 {
        let offset = (offset as usize).min(self.text.len());
        if offset < self.offset {
            (self.offset, self.line) = (0, 1);
        }
        let text = self.text;
        let breaks = (self.offset..offset)
            .filter(|&i| text[i] == b'\n' || (text[i] == b'\r' && text.get(i + 1) != Some(&b'\n')))
            .count();
        (self.offset, self.line) = (offset, self.line + breaks as u64);
        self.line
    }
}

/// The line `record` starts on; `fallback` (where the reader stood before reading it) when the
/// record carries no position.
pub fn record_line(lines: &mut Lines, record: &StringRecord, fallback: &Position) -> u64 {
    let start = record_start(lines.text, record.position().unwrap_or(fallback));
    lines.line_at(start)
}

/// Where the record at `position` starts: csv puts it before the blank lines it skipped, and no
/// record starts with a line break (a quoted one starts with its quote).
fn record_start(text: &[u8], position: &Position) -> u64 {
    let from = (position.byte() as usize).min(text.len());
    let breaks = text[from..].iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
    (from + breaks) as u64
}

/// A read error as `line N: reason`, N the record's start when the error knows it, else
/// `fallback`'s line. The csv crate's own message is not used: it repeats its miscounted line.
pub fn read_error(lines: &mut Lines, error: &csv::Error, fallback: &Position) -> String {
    let start = record_start(lines.text, error.position().unwrap_or(fallback));
    let line = lines.line_at(start);
    let reason = match error.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} field(s), but the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8 text ({err})"),
        _ => error.to_string(),
    };
    format!("line {line}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of each record, or the message of each error, in `text` read as a CSV with a header.
    fn lines(text: &str) -> Vec<Result<u64, String>> {
        let bytes = text.as_bytes();
        let mut reader = csv::Reader::from_reader(bytes);
        reader.headers().unwrap();
        let mut record = StringRecord::new();
        let mut out = Vec::new();
        let mut counted = Lines::new(bytes);
        loop {
            let before = reader.position().clone();
            match reader.read_record(&mut record) {
                Ok(false) => return out,
                Ok(true) => out.push(Ok(record_line(&mut counted, &record, &before))),
                Err(e) => out.push(Err(read_error(&mut counted, &e, &before))),
            }
        }
    }

    #[test]
    fn lines_count_blank_lines_crlf_and_quoted_breaks() {
        assert_eq!(lines("h,i\na,1\nb,2\n"), [Ok(2), Ok(3)]);
        assert_eq!(lines("h,i\r\na,1\r\nb,2\r\n"), [Ok(2), Ok(3)]);
        assert_eq!(lines("h,i\n\na,1\n\n\nb,2\n"), [Ok(3), Ok(6)]);
        assert_eq!(lines("h,i\r\"a\nb\",1\rc,2"), [Ok(2), Ok(4)]);
        assert_eq!(
            lines("h,i\r\na,1\r\nb\r\nc,3\r\n"),
            [Ok(2), Err("line 3: 1 field(s), but the header has 2".into()), Ok(4)]
        );
    }

    #[test]
    fn asking_again_from_an_earlier_offset_counts_from_the_start() {
        let mut lines = Lines::new(b"a\nb\r\nc\rd\n");
        assert_eq!(lines.line_at(9), 5);
        assert_eq!(lines.line_at(2), 2);
        assert_eq!(lines.line_at(5), 3);
    }
}
