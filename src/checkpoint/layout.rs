//! A safetensors header checked tensor by tensor before the crate reads it. The crate checks
//! offsets in file order, so one tensor's damaged `data_offsets` are blamed on the tensor after
//! it in that order, and a size that does not match the shape names no tensor at all; here every
//! error names the tensor it is about.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

/// What a header says of one tensor.
#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// Refuses `bytes` unless every tensor is f32, its offsets lie in the data and span exactly its
/// shape's bytes, and the tensors cover the data without overlap or gap.
pub fn check(bytes: &[u8]) -> Result<()> {
    let len_bytes: [u8; 8] = bytes.get(..8).context("shorter than a safetensors header")?.try_into()?;
    let header_len = u64::from_le_bytes(len_bytes);
    let data_start = header_len.checked_add(8).filter(|&end| end <= bytes.len() as u64).with_context(|| {
        format!("the header claims {header_len} bytes, more than the file's {} after its length", bytes.len() - 8)
    })?;
    let data_len = bytes.len() as u64 - data_start;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..data_start as usize]).context("the header is not a JSON object of tensors")?;
    let mut spans = Vec::new();
    for (name, value) in header.into_iter().filter(|(name, _)| name != "__metadata__") {
        let entry: Entry = serde_json::from_value(value).with_context(|| format!("tensor {name}: malformed entry"))?;
        let [start, end] = entry.data_offsets;
        let offsets = format!("data_offsets [{start}, {end}]");
        ensure!(entry.dtype == "F32", "tensor {name} is {}; sn-wgpu checkpoints hold f32 only", entry.dtype);
        let need = entry.shape.iter().try_fold(4u64, |n, &d| n.checked_mul(d));
        let need = need.with_context(|| format!("tensor {name}: shape {:?} is larger than any file", entry.shape))?;
        ensure!(
            start <= end && end <= data_len,
            "tensor {name}: {offsets} lie outside the file's {data_len} bytes of tensor data"
        );
        ensure!(
            end - start == need,
            "tensor {name}: {offsets} hold {} bytes, but its shape {:?} of f32 needs {need}",
            end - start,
            entry.shape
        );
        spans.push((start, end, name));
    }
    spans.sort();
    let mut covered: (u64, Option<&str>) = (0, None);
    for (start, end, name) in &spans {
        match covered {
            (at, Some(before)) if *start < at => bail!("tensors {before} and {name} overlap"),
            (at, _) if *start > at => bail!("bytes {at} to {start} of tensor data belong to no tensor (before {name})"),
            _ => covered = (*end, Some(name)),
        }
    }
    ensure!(covered.0 == data_len, "bytes {} to {data_len} of tensor data belong to no tensor", covered.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;

    /// The bytes of a three-tensor checkpoint with `edit` applied to its header's text (kept the
    /// same length, so the data stays where it was).
    fn with_header(edit: impl Fn(&str) -> String) -> Vec<u8> {
        let mut c = Checkpoint::default();
        c.insert("conv1.weight", &[2, 1, 3], vec![1.0; 6]);
        c.insert("conv1.bias", &[2], vec![0.5; 2]);
        c.insert("conv2.bias", &[4], vec![0.25; 4]);
        let bytes = c.to_bytes().unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = edit(std::str::from_utf8(&bytes[8..8 + n]).unwrap());
        assert_eq!(header.len(), n, "{header}");
        [&bytes[..8], header.as_bytes(), &bytes[8 + n..]].concat()
    }

    /// What reading the edited checkpoint says.
    fn error(edit: impl Fn(&str) -> String) -> String {
        format!("{:#}", Checkpoint::from_bytes(&with_header(edit)).unwrap_err())
    }

    #[test]
    fn a_damaged_entry_is_blamed_on_its_own_tensor() {
        assert!(check(&with_header(str::to_string)).is_ok());
        // Replaces `from` with `to` in conv1.weight's entry, which reads
        // "conv1.weight":{"dtype":"F32","shape":[2,1,3],"data_offsets":[8,32]}.
        let conv1 = |from: &'static str, to: &'static str| {
            move |h: &str| {
                let at = h.find("\"conv1.weight\"").unwrap();
                assert!(h[at..].contains(from), "{h}");
                format!("{}{}", &h[..at], h[at..].replacen(from, to, 1))
            }
        };
        assert_eq!(
            error(conv1("[8,32]", "[8,28]")),
            "tensor conv1.weight: data_offsets [8, 28] hold 20 bytes, but its shape [2, 1, 3] of f32 needs 24"
        );
        assert_eq!(
            error(conv1("[2,1,3]", "[2,1,4]")),
            "tensor conv1.weight: data_offsets [8, 32] hold 24 bytes, but its shape [2, 1, 4] of f32 needs 32"
        );
        assert_eq!(
            error(conv1("[8,32]", "[8,92]")),
            "tensor conv1.weight: data_offsets [8, 92] lie outside the file's 48 bytes of tensor data"
        );
        assert_eq!(error(conv1("[8,32]", "[4,28]")), "tensors conv1.bias and conv1.weight overlap");
        assert_eq!(
            error(conv1("[8,32]", "[9,33]")),
            "bytes 8 to 9 of tensor data belong to no tensor (before conv1.weight)"
        );
        assert_eq!(error(conv1("F32", "F16")), "tensor conv1.weight is F16; sn-wgpu checkpoints hold f32 only");
    }
}
