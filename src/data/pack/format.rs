//! The bytes of a shard (the layout is in `pack/mod.rs`): headers and footers made and checked,
//! one item found at an offset, and a clip turned back into the network's samples. Every length
//! read from a file is checked against the bytes really there before it is used, so a damaged
//! shard is an error, never a panic or a read past the end.

/// The version `pack.json` and every shard header carry.
pub const VERSION: u32 = 1;
pub const FILE_MAGIC: &[u8; 8] = b"SNWGPACK";
pub const END_MAGIC: &[u8; 8] = b"SNWGPEND";
pub const FILE_HEADER: usize = 16;
pub const FOOTER: usize = 16;
pub const ITEM_HEADER: usize = 32;
const ITEM_MAGIC: &[u8; 4] = b"ITEM";
/// int16 steps per unit of the network's scale: [-256, 256] maps onto the 16-bit range.
const STEPS_PER_UNIT: f32 = 128.0;

/// What an item header says: its lengths and the CRC-32 of the bytes after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemHeader {
    pub samples: u32,
    pub name_len: u32,
    pub objects: TableShape,
    pub scenes: TableShape,
    pub crc: u32,
}

/// A teacher table's rows and width (0 and 0 when the item has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableShape {
    pub rows: u32,
    pub width: u32,
}

impl TableShape {
    /// The table's bytes; None past u64 (a damaged header: 2^32 x 2^32 x 4 overflows).
    fn bytes(self) -> Option<u64> {
        (self.rows as u64).checked_mul(self.width as u64)?.checked_mul(4)
    }
}

pub fn pad4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

impl ItemHeader {
    /// The bytes after the header: name, clip and tables, each padded to 4 (None when a damaged
    /// header's lengths add up past u64).
    pub fn body_len(&self) -> Option<u64> {
        let fixed = pad4(self.name_len as u64) + pad4(self.samples as u64 * 2);
        fixed.checked_add(self.objects.bytes()?)?.checked_add(self.scenes.bytes()?)
    }

    pub fn encode(&self) -> [u8; ITEM_HEADER] {
        let mut out = [0u8; ITEM_HEADER];
        out[..4].copy_from_slice(ITEM_MAGIC);
        let fields = [
            self.samples,
            self.name_len,
            self.objects.rows,
            self.objects.width,
            self.scenes.rows,
            self.scenes.width,
            self.crc,
        ];
        for (k, v) in fields.iter().enumerate() {
            out[4 + 4 * k..8 + 4 * k].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ItemHeader, String> {
        if bytes.len() < ITEM_HEADER {
            return Err(format!("an item header needs {ITEM_HEADER} bytes, only {} are left", bytes.len()));
        }
        if &bytes[..4] != ITEM_MAGIC {
            return Err(format!("no item starts here (found bytes {:02x?}, expected `ITEM`)", &bytes[..4]));
        }
        let field = |k: usize| u32::from_le_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().expect("4 bytes"));
        Ok(ItemHeader {
            samples: field(0),
            name_len: field(1),
            objects: TableShape { rows: field(2), width: field(3) },
            scenes: TableShape { rows: field(4), width: field(5) },
            crc: field(6),
        })
    }
}

pub fn file_header() -> [u8; FILE_HEADER] {
    let mut out = [0u8; FILE_HEADER];
    out[..8].copy_from_slice(FILE_MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out
}

pub fn check_file_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < FILE_HEADER || &bytes[..8] != FILE_MAGIC {
        return Err("not a shard sn-wgpu pack wrote (it does not start with SNWGPACK)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("shard format version {version}, but this sn-wgpu reads version {VERSION}"));
    }
    Ok(())
}

pub fn footer(index_offset: u64) -> [u8; FOOTER] {
    let mut out = [0u8; FOOTER];
    out[..8].copy_from_slice(&index_offset.to_le_bytes());
    out[8..].copy_from_slice(END_MAGIC);
    out
}

/// The index's offset and item count, from a whole shard's bytes.
pub fn read_footer(bytes: &[u8]) -> Result<(u64, u64), String> {
    let len = bytes.len() as u64;
    let no_end = || "the shard has no index at its end: it was cut short, or its writer stopped".to_string();
    if bytes.len() < FILE_HEADER + FOOTER || &bytes[bytes.len() - 8..] != END_MAGIC {
        return Err(no_end());
    }
    let at = u64::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 8].try_into().expect("8 bytes"));
    let index_bytes = (len - FOOTER as u64).checked_sub(at).filter(|b| at >= FILE_HEADER as u64 && b % 8 == 0);
    match index_bytes {
        Some(b) => Ok((at, b / 8)),
        None => Err(format!("the footer's index offset {at} does not fit the shard's {len} bytes")),
    }
}

/// One item's parts, borrowed from the shard's bytes.
#[derive(Debug)]
pub struct ItemView<'a> {
    pub header: ItemHeader,
    pub name: &'a [u8],
    /// int16, little-endian.
    pub clip: &'a [u8],
    /// float32 `[rows, width]`, little-endian.
    pub objects: &'a [u8],
    pub scenes: &'a [u8],
    /// Where the next item starts.
    pub end: u64,
}

/// The item at `offset` of `bytes`, its whole body within `limit` (the index's offset); the CRC
/// is checked when `check_crc`.
pub fn item_at(bytes: &[u8], offset: u64, limit: u64, check_crc: bool) -> Result<ItemView<'_>, String> {
    let limit = limit.min(bytes.len() as u64);
    let start = usize::try_from(offset).ok().filter(|&o| (o as u64) < limit).ok_or("the offset is past the items")?;
    let header = ItemHeader::decode(&bytes[start..limit as usize])?;
    let body_start = offset + ITEM_HEADER as u64;
    let body_len = header.body_len();
    let end = body_len.and_then(|b| body_start.checked_add(b)).filter(|&e| e <= limit).ok_or_else(|| {
        format!(
            "the item header says {} bytes follow, but the shard has {} before its index",
            body_len.map_or("more than 2^64".to_string(), |b| b.to_string()),
            limit.saturating_sub(body_start)
        )
    })?;
    let body = &bytes[body_start as usize..end as usize];
    if check_crc {
        let found = crc32fast::hash(body);
        if found != header.crc {
            return Err(format!(
                "the item's CRC-32 is {found:08x}, its header says {:08x}: the bytes changed",
                header.crc
            ));
        }
    }
    let mut at = 0usize;
    let mut take = |n: u64, padded: u64| {
        let part = &body[at..at + n as usize];
        at += padded as usize;
        part
    };
    let name = take(header.name_len as u64, pad4(header.name_len as u64));
    let clip = take(header.samples as u64 * 2, pad4(header.samples as u64 * 2));
    let (objects_len, scenes_len) = (header.objects.bytes().expect("fits"), header.scenes.bytes().expect("fits"));
    let objects = take(objects_len, objects_len);
    let scenes = take(scenes_len, scenes_len);
    Ok(ItemView { header, name, clip, objects, scenes, end })
}

/// A clip in the network's scale as int16 bytes: rounded to the nearest step, +256 held at the
/// largest step.
pub fn encode_clip(clip: &[f32], out: &mut Vec<u8>) {
    out.reserve(clip.len() * 2);
    for &x in clip {
        let q = (x * STEPS_PER_UNIT).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16;
        out.extend_from_slice(&q.to_le_bytes());
    }
}

/// The first `out.len()` samples of a stored clip, repeating it from its start when it is shorter
/// (the crop of `data::crop::tile`); every element of `out` is written. `clip` holds at least one
/// sample.
pub fn decode_clip_tiled_into(clip: &[u8], out: &mut [f32]) {
    let n = clip.len() / 2;
    assert!(n > 0, "tiling an empty clip");
    let first = n.min(out.len());
    for (o, b) in out[..first].iter_mut().zip(clip.chunks_exact(2)) {
        *o = i16::from_le_bytes([b[0], b[1]]) as f32 * (1.0 / STEPS_PER_UNIT);
    }
    let mut done = first;
    while done < out.len() {
        let more = (out.len() - done).min(done);
        out.copy_within(..more, done);
        done += more;
    }
}

/// float32 little-endian bytes as values.
pub fn decode_table(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_values_come_back_exactly_and_full_scale_is_held() {
        let clip = [0.0, 1.0 / 128.0, -256.0, 255.5, 256.0, -300.0, 0.3];
        let mut bytes = Vec::new();
        encode_clip(&clip, &mut bytes);
        let mut back = vec![f32::NAN; 9];
        decode_clip_tiled_into(&bytes, &mut back);
        assert_eq!(&back[..5], &[0.0, 1.0 / 128.0, -256.0, 255.5, 32767.0 / 128.0]);
        assert_eq!(back[5], -256.0);
        assert_eq!(back[6], (0.3f32 * 128.0).round() / 128.0);
        assert_eq!(&back[7..], &back[..2], "a short clip repeats from its start");
    }

    #[test]
    fn a_header_round_trips_and_a_bad_one_is_refused() {
        let h = ItemHeader {
            samples: 7,
            name_len: 3,
            objects: TableShape { rows: 2, width: 5 },
            scenes: TableShape::default(),
            crc: 0xdead_beef,
        };
        assert_eq!(ItemHeader::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.body_len(), Some(4 + 16 + 40));
        let huge = TableShape { rows: u32::MAX, width: u32::MAX };
        assert_eq!(ItemHeader { objects: huge, scenes: huge, ..h }.body_len(), None);
        let mut bad = h.encode();
        bad[0] = b'X';
        assert!(ItemHeader::decode(&bad).unwrap_err().contains("no item starts here"));
        assert!(ItemHeader::decode(&bad[..10]).unwrap_err().contains("32 bytes"));
    }

    #[test]
    fn a_footer_that_does_not_fit_is_refused() {
        let mut bytes = file_header().to_vec();
        bytes.extend_from_slice(&footer(16));
        assert_eq!(read_footer(&bytes).unwrap(), (16, 0));
        let mut wrong = file_header().to_vec();
        wrong.extend_from_slice(&footer(1 << 40));
        assert!(read_footer(&wrong).unwrap_err().contains("does not fit"));
        assert!(read_footer(&bytes[..bytes.len() - 1]).unwrap_err().contains("cut short"));
    }
}
