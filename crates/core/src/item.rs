//! [`Item`]: a value that an aggregation keeps as a value rather than folds into a number
//! (the values of `min_by_n`, the items of `approx_top_k`, the inputs of
//! `approx_count_distinct`). Items are numbers or strings.

use std::cmp::Ordering;

/// A number or a string kept by an aggregation.
///
/// Items have a total order (every number before every string; numbers by
/// `f64::total_cmp` after `-0.0` is folded into `0.0`; strings bytewise), so that states
/// which keep items merge the same way in any order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Number(f64),
    Text(String),
}

impl Item {
    /// The bytes that identify this item for hashing and encoding. They never depend on
    /// the process: an integral number in the i64 range hashes as its little-endian i64
    /// (so `3` and `3.0` are one item), any other number as its little-endian f64 bits
    /// (with `-0.0` as `0.0`), a string as its UTF-8 bytes. A leading tag byte keeps
    /// the number 1 apart from the string "1".
    pub fn canonical_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Item::Number(v) => out.extend_from_slice(&Item::number_canonical_bytes(*v)),
            Item::Text(s) => Item::text_canonical_bytes(s, out),
        }
    }

    /// [`Item::canonical_bytes`] of `Item::Number(v)`: always 9 bytes, `'i'` and the
    /// integer, or `'f'` and the bits.
    #[inline]
    pub fn number_canonical_bytes(v: f64) -> [u8; 9] {
        let v = if v == 0.0 { 0.0 } else { v };
        let (tag, word) = if v.fract() == 0.0 && v >= i64::MIN as f64 && v < i64::MAX as f64 {
            (b'i', (v as i64).to_le_bytes())
        } else {
            (b'f', v.to_bits().to_le_bytes())
        };
        let mut bytes = [tag; 9];
        bytes[1..].copy_from_slice(&word);
        bytes
    }

    /// [`Item::canonical_bytes`] of `Item::Text(text)`, without building the item.
    pub fn text_canonical_bytes(text: &str, out: &mut Vec<u8>) {
        out.push(b's');
        out.extend_from_slice(text.as_bytes());
    }

    fn rank(&self) -> u8 {
        match self {
            Item::Number(_) => 0,
            Item::Text(_) => 1,
        }
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Item::Number(a), Item::Number(b)) => {
                let a = if *a == 0.0 { 0.0 } else { *a };
                let b = if *b == 0.0 { 0.0 } else { *b };
                a.total_cmp(&b)
            }
            (Item::Text(a), Item::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sort_before_strings_and_zero_is_one_value() {
        let mut items = vec![
            Item::Text("b".into()),
            Item::Number(2.0),
            Item::Text("a".into()),
            Item::Number(-0.0),
        ];
        items.sort();
        assert_eq!(
            items,
            vec![
                Item::Number(0.0),
                Item::Number(2.0),
                Item::Text("a".into()),
                Item::Text("b".into())
            ]
        );
        assert_eq!(Item::Number(-0.0).cmp(&Item::Number(0.0)), Ordering::Equal);
    }

    #[test]
    fn canonical_bytes_unify_integral_numbers_and_separate_types() {
        let bytes = |i: Item| {
            let mut v = Vec::new();
            i.canonical_bytes(&mut v);
            v
        };
        assert_eq!(bytes(Item::Number(3.0)), bytes(Item::Number(3.0)));
        assert_eq!(bytes(Item::Number(-0.0)), bytes(Item::Number(0.0)));
        assert_ne!(bytes(Item::Number(1.0)), bytes(Item::Text("1".into())));
        assert_ne!(bytes(Item::Number(1.5)), bytes(Item::Number(1.0)));
    }
}
