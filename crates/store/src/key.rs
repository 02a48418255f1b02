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
//!
//! The group key length is a u16, so an encoded group key holds at most
//! [`MAX_GROUP_KEY_BYTES`]: one string part of at most 65,530 UTF-8 bytes, or any tuple
//! whose parts ([`INT_PART_BYTES`] per integer, [`TEXT_PART_HEADER_BYTES`] plus the UTF-8
//! bytes per string) add up to no more. A batch with a longer key is refused when it is
//! validated ([`check_group_keys`]), before anything is folded, and [`bucket_key`] never
//! writes a length that wrapped.

use crate::error::{invalid_batch, StoreResult};
use crate::fold::{KeyColumn, NULL_CODE};

/// The most bytes an encoded group key may take: its length is written as a u16.
pub const MAX_GROUP_KEY_BYTES: usize = u16::MAX as usize;

/// Bytes of an integer group-key part: the tag and the i64.
pub const INT_PART_BYTES: usize = 9;

/// Bytes of a string group-key part besides its UTF-8: the tag and the u32 length.
pub const TEXT_PART_HEADER_BYTES: usize = 5;

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

/// One part of a group key as stored: an integer or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKeyPart {
    Int(i64),
    Text(String),
}

/// Decodes a group key into its parts; `None` for bytes that are not one.
pub fn decode_group_key(bytes: &[u8]) -> Option<Vec<GroupKeyPart>> {
    let mut parts = Vec::new();
    let mut rest = bytes;
    while let Some((&tag, tail)) = rest.split_first() {
        match tag {
            b'i' if tail.len() >= 8 => {
                let raw = u64::from_be_bytes(tail[..8].try_into().ok()?);
                parts.push(GroupKeyPart::Int((raw ^ (1 << 63)) as i64));
                rest = &tail[8..];
            }
            b's' if tail.len() >= 4 => {
                let len = u32::from_be_bytes(tail[..4].try_into().ok()?) as usize;
                let text = tail.get(4..4 + len)?;
                parts.push(GroupKeyPart::Text(String::from_utf8(text.to_vec()).ok()?));
                rest = &tail[4 + len..];
            }
            _ => return None,
        }
    }
    Some(parts)
}

#[inline]
fn flip(start: i64) -> [u8; 8] {
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

/// Refuses the first row (of `selection`, or of all rows) whose group key would encode to
/// more than [`MAX_GROUP_KEY_BYTES`]. Rows with a null part belong to no group and pass.
/// Unless some dictionary holds a string long enough, no row is looked at.
///
/// # Errors
/// An invalid-batch error naming the row, its encoded length and the limit.
pub fn check_group_keys(
    keys: &[KeyColumn<'_>],
    selection: Option<&[u32]>,
    context: &str,
) -> StoreResult<()> {
    let longest: usize = keys
        .iter()
        .map(|column| match column {
            KeyColumn::Ints(_) => INT_PART_BYTES,
            KeyColumn::Strings { dict, .. } => {
                TEXT_PART_HEADER_BYTES + dict.iter().map(String::len).max().unwrap_or(0)
            }
        })
        .sum();
    if longest <= MAX_GROUP_KEY_BYTES {
        return Ok(());
    }
    let encoded_len = |row: usize| -> Option<usize> {
        let mut len = 0;
        for column in keys {
            len += match column {
                KeyColumn::Ints(v) if v.get(row)?.is_nan() => return None,
                KeyColumn::Ints(_) => INT_PART_BYTES,
                KeyColumn::Strings { dict, codes } => match *codes.get(row)? {
                    NULL_CODE => return None,
                    code => TEXT_PART_HEADER_BYTES + dict.get(code as usize)?.len(),
                },
            };
        }
        Some(len)
    };
    let rows = keys.first().map_or(0, |column| match column {
        KeyColumn::Ints(v) => v.len(),
        KeyColumn::Strings { codes, .. } => codes.len(),
    });
    let check = |row: usize| {
        match encoded_len(row) {
        Some(len) if len > MAX_GROUP_KEY_BYTES => Err(invalid_batch(format!(
            "{context}: the group key at row {row} encodes to {len} bytes; a group key holds at most {MAX_GROUP_KEY_BYTES}"
        ))),
        _ => Ok(()),
    }
    };
    match selection {
        Some(rows) => rows.iter().try_for_each(|&row| check(row as usize)),
        None => (0..rows).try_for_each(check),
    }
}

/// Writes the key of one bucket into `out` (cleared first). A group key longer than
/// [`MAX_GROUP_KEY_BYTES`] has no bucket key: `out` is left empty and the result is
/// false, so no length ever wraps. Writes never get there ([`check_group_keys`] refuses
/// the batch), and a read over an empty key range finds nothing, which is what a key
/// that cannot be stored holds.
#[inline]
pub fn bucket_key(
    out: &mut Vec<u8>,
    series: u32,
    group_key: &[u8],
    size_ms: i64,
    start: i64,
) -> bool {
    out.clear();
    let Ok(len) = u16::try_from(group_key.len()) else {
        return false;
    };
    out.extend_from_slice(&series.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(group_key);
    out.extend_from_slice(&(size_ms as u64).to_be_bytes());
    out.extend_from_slice(&flip(start));
    true
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
        assert_eq!(
            decode_group_key(&group),
            Some(vec![
                GroupKeyPart::Int(-42),
                GroupKeyPart::Text("bank-a".into())
            ])
        );
        assert_eq!(decode_group_key(&group[..group.len() - 1]), None);
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

    fn text_key(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        push_text_part(&mut out, text);
        out
    }

    #[test]
    fn a_group_key_at_the_limit_round_trips_and_one_byte_more_has_no_key() {
        let longest = "k".repeat(MAX_GROUP_KEY_BYTES - TEXT_PART_HEADER_BYTES);
        let group = text_key(&longest);
        assert_eq!(group.len(), MAX_GROUP_KEY_BYTES);
        let mut key = Vec::new();
        assert!(bucket_key(&mut key, 3, &group, 60_000, 120_000));
        let parts = parse_bucket_key(&key).unwrap();
        assert_eq!(parts.group_key, &group[..]);
        assert_eq!(parts.start, 120_000);

        let past = text_key(&format!("{longest}k"));
        key.extend_from_slice(b"stale");
        assert!(!bucket_key(&mut key, 3, &past, 60_000, 120_000));
        assert!(key.is_empty(), "no key rather than a wrapped length");
    }

    #[test]
    fn check_group_keys_refuses_the_first_row_past_the_limit() {
        let at_limit = "a".repeat(MAX_GROUP_KEY_BYTES - TEXT_PART_HEADER_BYTES);
        // 'é' is two UTF-8 bytes: the limit is on bytes, not characters.
        let past = format!(
            "{}é",
            "a".repeat(MAX_GROUP_KEY_BYTES - TEXT_PART_HEADER_BYTES - 1)
        );
        let dict = vec!["short".to_owned(), at_limit, past];
        let codes = [0, 1, NULL_CODE, 2];
        let single = [KeyColumn::Strings {
            dict: &dict,
            codes: &codes,
        }];
        let err = check_group_keys(&single, None, "series 's'").unwrap_err();
        assert_eq!(
            err.message,
            "series 's': the group key at row 3 encodes to 65536 bytes; a group key holds at most 65535"
        );
        assert!(check_group_keys(&single, Some(&[0, 1, 2]), "s").is_ok());

        // With an integer part, the string's limit is nine bytes lower.
        let ints = [1.0, 2.0, 3.0, f64::NAN];
        let composite = [
            KeyColumn::Ints(&ints),
            KeyColumn::Strings {
                dict: &dict,
                codes: &codes,
            },
        ];
        let err = check_group_keys(&composite, None, "s").unwrap_err();
        assert!(
            err.message.contains("row 1 encodes to 65544 bytes"),
            "{}",
            err.message
        );
        assert!(check_group_keys(&composite, Some(&[0, 2, 3]), "s").is_ok());

        let small = ["x".to_owned()];
        let few = [
            KeyColumn::Ints(&ints),
            KeyColumn::Strings {
                dict: &small,
                codes: &[0, 0, 0, 0],
            },
        ];
        assert!(check_group_keys(&few, None, "s").is_ok());
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
