//! `--shard K/N`: which inputs one of N machines takes. An input goes to shard
//! `fnv1a64(path) mod N`, so every input lands in exactly one shard, whatever the order or number
//! of the inputs, on every run and machine given the same path (`tools/teacher_from_video.py`
//! assigns videos the same way).

use std::path::Path;
use std::str::FromStr;

/// Shard `index` of `count`, 0-based (`--shard 0/8` .. `--shard 7/8`, as a Slurm array's
/// `$SLURM_ARRAY_TASK_ID` or a Kubernetes indexed Job's `$JOB_COMPLETION_INDEX` count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {s:?}: expected K/N with 0 <= K < N, such as 0/8 (shards count from 0)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (k.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether `path` (as listed: named, or found in a named folder) belongs to this shard.
    pub fn takes(&self, path: &Path) -> bool {
        fnv1a64(path.to_string_lossy().as_bytes()) % self.count == self.index
    }
}

/// The 64-bit FNV-1a hash: tiny, fixed forever, and the same in any language.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_goes_to_exactly_one_shard() {
        // The reference values of FNV-1a 64 (the empty string, "a").
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let paths: Vec<String> = (0..200).map(|i| format!("clips/{i:04}.wav")).collect();
        let shards: Vec<Shard> = (0..7).map(|k| format!("{k}/7").parse().unwrap()).collect();
        let mut sizes = [0; 7];
        for p in &paths {
            let owners: Vec<usize> = (0..7).filter(|&k| shards[k].takes(Path::new(p))).collect();
            assert_eq!(owners.len(), 1, "{p}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 10), "an even spread: {sizes:?}");
        for bad in ["3/3", "1", "a/4", "0/0", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
