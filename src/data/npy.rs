//! `.npy` files opened with their size checked: the header's shape, multiplied out without
//! overflow, must be exactly the bytes the file holds after the header. npyz multiplies the shape
//! unchecked (a shape of (2**63, 2) panics where overflow is checked and counts 0 values where it
//! is not, passing every later check), and reads a shape larger than the file until the data runs
//! out; so the shape is read from the header first, before npyz parses it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use npyz::{NpyFile, NpyHeader};

/// The longest header read for its shape; numpy's are a few hundred bytes.
const MAX_HEADER: usize = 1 << 20;

/// `file`, at its start, opened for reading its values once its shape matches its size.
pub fn open(mut file: File) -> Result<NpyFile<BufReader<File>>, String> {
    let io = |e: std::io::Error| format!("cannot read the file ({e})");
    if let Some(shape) = header_shape(&mut file) {
        if shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).is_none() {
            return Err(format!("shape {shape:?} has more values than any file holds"));
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let header = NpyHeader::from_reader(&mut file).map_err(|e| format!("not a .npy file ({e})"))?;
    let start = file.stream_position().map_err(io)?;
    let present = file.metadata().map_err(io)?.len().saturating_sub(start);
    let shape = header.shape().to_vec();
    // A dtype without a size is left to the reader, which names it as not float.
    if let Some(item) = header.dtype().num_bytes().filter(|&b| b > 0) {
        match shape.iter().try_fold(item as u64, |n, &d| n.checked_mul(d)) {
            Some(need) if need == present => {}
            Some(need) => {
                return Err(format!(
                    "shape {shape:?} of {} needs {need} bytes of data, but the file holds {present} after its header",
                    header.dtype().descr()
                ))
            }
            None => return Err(format!("shape {shape:?} has more values than any file holds")),
        }
    }
    Ok(NpyFile::with_header(header, BufReader::new(file)))
}

/// The shape the header of `r` (at its start) announces, as written; None where the header is
/// not one this reads, which npyz then explains.
fn header_shape(r: &mut impl Read) -> Option<Vec<u64>> {
    // Magic, version, and the header's length: 2 bytes in version 1, 4 in versions 2 and 3.
    let mut head = [0u8; 12];
    r.read_exact(&mut head[..10]).ok()?;
    if &head[..6] != b"\x93NUMPY" {
        return None;
    }
    let len = if head[6] == 1 {
        usize::from(u16::from_le_bytes([head[8], head[9]]))
    } else {
        r.read_exact(&mut head[10..]).ok()?;
        u32::from_le_bytes(head[8..12].try_into().ok()?) as usize
    };
    let mut text = vec![0u8; len.min(MAX_HEADER)];
    r.read_exact(&mut text).ok()?;
    let text = std::str::from_utf8(&text).ok()?;
    let after = &text[text.find("shape")?..];
    let dims = after.split_once('(')?.1.split_once(')')?.0;
    dims.split(',').map(str::trim).filter(|d| !d.is_empty()).map(|d| d.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::header_shape;

    fn shape_of(header: &str) -> Option<Vec<u64>> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        header_shape(&mut bytes.as_slice())
    }

    #[test]
    fn the_shape_is_read_as_written() {
        let dict = |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
        assert_eq!(shape_of(&dict("(3, 401)")), Some(vec![3, 401]));
        assert_eq!(shape_of(&dict("(9223372036854775808, 2)")), Some(vec![1 << 63, 2]));
        assert_eq!(shape_of(&dict("(7,)")), Some(vec![7]));
        assert_eq!(shape_of(&dict("()")), Some(vec![]));
        assert_eq!(shape_of(&dict("(-1, 2)")), None);
        assert_eq!(header_shape(&mut b"not an npy file".as_slice()), None);
    }
}
