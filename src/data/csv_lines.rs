//! Line numbers of CSV records as an editor shows them, for messages. The csv crate's own count
//! falls one behind at every blank line and every line of a CRLF file (ESC-50 ships its meta.csv
//! with CRLF), so lines are counted from a record's byte offset instead.

use csv::{Position, StringRecord};

/// The 1-based line of `text` that byte `offset` is on: one more than the line breaks before it
/// (`\n`, `\r\n` or a lone `\r`).
pub fn line_at(text: &[u8], offset: u64) -> u64 {
    let before = &text[..(offset as usize).min(text.len())];
    let breaks =
        before.iter().enumerate().filter(|&(i, &b)| b == b'\n' || (b == b'\r' && text.get(i + 1) != Some(&b'\n')));
    1 + breaks.count() as u64
}

/// The line `record` starts on; `fallback` (where the reader stood before reading it) when the
/// record carries no position.
pub fn record_line(text: &[u8], record: &StringRecord, fallback: &Position) -> u64 {
    line_at(text, record_start(text, record.position().unwrap_or(fallback)))
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
pub fn read_error(text: &[u8], error: &csv::Error, fallback: &Position) -> String {
    let line = line_at(text, record_start(text, error.position().unwrap_or(fallback)));
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
        loop {
            let before = reader.position().clone();
            match reader.read_record(&mut record) {
                Ok(false) => return out,
                Ok(true) => out.push(Ok(record_line(bytes, &record, &before))),
                Err(e) => out.push(Err(read_error(bytes, &e, &before))),
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
}
