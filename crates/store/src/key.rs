//! Bucket keys. A key orders (series, group key, bucket size, bucket start) so that one
//! window of one group key at one bucket size is one contiguous range:
//!
//! ```text
//! [series number: u32 BE][group key length: u16 BE][group key bytes]
//! [bucket size ms: u64 BE][bucket start ms: i64 BE with the sign bit flipped]
//! ```
//!
//! Flipping the sign bit makes negative starts (before 1970) sort before positive ones.
//! A group key is a tuple of parts; each part is `i` + i64 BE (sign flipped) for integers
//! or `s` + u32 BE length + UTF-8 for strings, so a key's bytes never depend on how the
//! caller passed it.

use crate::error::{invalid_batch, StoreResult};

/// Bytes of a bucket key after the group key: size (8) and start (8).
const SUFFIX_LEN: usize = 16;

/// Appends an integer group-key part.
#[inline]
pub fn push_int_part(out: &mut Vec<u8>, value: i64) {
    out.push(b'i');
    out.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}

/// Appends a string group-key part.
#[inline]
pub fn push_text_part(out: &mut Vec<u8>, value: &str) {
    out.push(b's');
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// Converts a JavaScript number used as a key part into an i64, refusing fractions and
/// values past 2^53 that a JS number cannot hold exactly.
#[inline]
pub fn int_key_part(value: f64, row: usize, context: &str) -> StoreResult<i64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.fract() != 0.0 || !(-MAX_SAFE..=MAX_SAFE).contains(&value) {
        return Err(invalid_batch(format!(
            "{context}: group key at row {row} is {value}, not an integer in the safe range"
        )));
    }
    Ok(value as i64)
}

/// Decodes a group key back into readable parts (for explanations and listings).
pub fn describe_group_key(bytes: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut rest = bytes;
    while let Some((&tag, tail)) = rest.split_first() {
        match tag {
            b'i' if tail.len() >= 8 => {
                let raw = u64::from_be_bytes(tail[..8].try_into().unwrap_or([0; 8]));
                parts.push(((raw ^ (1 << 63)) as i64).to_string());
                rest = &tail[8..];
            }
            b's' if tail.len() >= 4 => {
                let len = u32::from_be_bytes(tail[..4].try_into().unwrap_or([0; 4])) as usize;
                let end = (4 + len).min(tail.len());
                parts.push(format!("{:?}", String::from_utf8_lossy(&tail[4..end])));
                rest = &tail[end..];
            }
            _ => {
                parts.push("<corrupt>".into());
                break;
            }
        }
    }
    parts.join(",")
}

#[inline]
fn flip(start: i64) -> [u8; 8] {
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

/// Writes the key of one bucket into `out` (cleared first).
#[inline]
pub fn bucket_key(out: &mut Vec<u8>, series: u32, group_key: &[u8], size_ms: i64, start: i64) {
    out.clear();
    out.extend_from_slice(&series.to_be_bytes());
    out.extend_from_slice(&(group_key.len() as u16).to_be_bytes());
    out.extend_from_slice(group_key);
    out.extend_from_slice(&(size_ms as u64).to_be_bytes());
    out.extend_from_slice(&flip(start));
}

/// The parts of a bucket key that retention and reads need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketKeyParts<'a> {
    pub series: u32,
    pub group_key: &'a [u8],
    pub size_ms: i64,
    pub start: i64,
}

/// Splits a bucket key; `None` for a key that is not one (never expected in the bucket
/// column family, but the compaction filter must not panic on anything).
pub fn parse_bucket_key(key: &[u8]) -> Option<BucketKeyParts<'_>> {
    if key.len() < 6 + SUFFIX_LEN {
        return None;
    }
    let series = u32::from_be_bytes(key[0..4].try_into().ok()?);
    let len = u16::from_be_bytes(key[4..6].try_into().ok()?) as usize;
    if key.len() != 6 + len + SUFFIX_LEN {
        return None;
    }
    let group_key = &key[6..6 + len];
    let suffix = &key[6 + len..];
    let size_ms = u64::from_be_bytes(suffix[0..8].try_into().ok()?) as i64;
    let start = (u64::from_be_bytes(suffix[8..16].try_into().ok()?) ^ (1 << 63)) as i64;
    Some(BucketKeyParts {
        series,
        group_key,
        size_ms,
        start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_round_trip_and_order_by_start() {
        let mut group = Vec::new();
        push_int_part(&mut group, -42);
        push_text_part(&mut group, "bank-a");
        let mut a = Vec::new();
        let mut b = Vec::new();
        bucket_key(&mut a, 7, &group, 3_600_000, -3_600_000);
        bucket_key(&mut b, 7, &group, 3_600_000, 0);
        assert!(a < b, "a bucket before 1970 sorts first");
        let parts = parse_bucket_key(&a).unwrap();
        assert_eq!(parts.series, 7);
        assert_eq!(parts.group_key, &group[..]);
        assert_eq!(parts.size_ms, 3_600_000);
        assert_eq!(parts.start, -3_600_000);
        assert_eq!(describe_group_key(&group), "-42,\"bank-a\"");
        assert!(parse_bucket_key(&a[..a.len() - 1]).is_none());
    }

    #[test]
    fn integer_parts_order_numerically() {
        let enc = |v: i64| {
            let mut out = Vec::new();
            push_int_part(&mut out, v);
            out
        };
        assert!(enc(-5) < enc(3));
        assert!(enc(3) < enc(1 << 40));
    }

    #[test]
    fn int_key_parts_refuse_fractions_and_unsafe_numbers() {
        assert_eq!(int_key_part(12.0, 0, "s").unwrap(), 12);
        assert!(int_key_part(1.5, 3, "s")
            .unwrap_err()
            .message
            .contains("row 3"));
        assert!(int_key_part(f64::NAN, 0, "s").is_err());
        assert!(int_key_part(1e300, 0, "s").is_err());
    }
}
