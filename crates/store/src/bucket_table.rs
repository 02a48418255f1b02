//! The ingest hash table: (key, bucket start) -> a small value (a bucket's
//! [`tessera_core::NumericSummary`], or the index of its rule states), open addressing
//! with linear probing, the value stored in the slot itself.
//!
//! A general-purpose map keeps control bytes apart from the entries, so a probe that
//! misses cache costs two misses; here one slot holds the key, the start and the value,
//! so it costs one, and [`BucketTable::prefetch`] lets the fold ask for the slot of a row
//! a few rows ahead, so that several misses are under way at once. With many keys this
//! is most of the fold's time.

use tessera_core::hint::prefetch;

/// A slot whose start is this is empty. No bucket starts there: timestamps are checked to
/// lie within +-8.64e15 ms.
const EMPTY: i64 = i64::MIN;

/// The table never holds more than this fraction (as `len * 8 > capacity * LOAD`).
const LOAD_EIGHTHS: usize = 5;

#[derive(Clone, Copy)]
pub struct BucketSlot<V> {
    pub key: i64,
    pub start: i64,
    pub value: V,
}

impl<V: Default> BucketSlot<V> {
    fn vacant() -> Self {
        Self {
            key: 0,
            start: EMPTY,
            value: V::default(),
        }
    }
}

pub struct BucketTable<V> {
    slots: Vec<BucketSlot<V>>,
    mask: usize,
    len: usize,
    /// The smallest and largest key and start held (kept on insert, for the sort of a
    /// commit).
    keys: (i64, i64),
    starts: (i64, i64),
}

impl<V: Copy + Default> Default for BucketTable<V> {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

#[inline]
fn hash(key: i64, start: i64) -> u64 {
    let h = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (start as u64)
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            .rotate_left(29);
    h ^ (h >> 31)
}

impl<V: Copy + Default> BucketTable<V> {
    fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.next_power_of_two().max(16);
        Self {
            slots: vec![BucketSlot::vacant(); capacity],
            mask: capacity - 1,
            len: 0,
            keys: (i64::MAX, i64::MIN),
            starts: (i64::MAX, i64::MIN),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Asks the CPU to load the slot where (key, start) would be found.
    #[inline]
    pub fn prefetch(&self, key: i64, start: i64) {
        prefetch(&self.slots[hash(key, start) as usize & self.mask]);
    }

    /// The value of (key, start), inserted as `V::default()` if absent; the flag says
    /// whether it was inserted.
    #[inline]
    pub fn entry(&mut self, key: i64, start: i64) -> (&mut V, bool) {
        if (self.len + 1) * 8 > self.slots.len() * LOAD_EIGHTHS {
            self.grow();
        }
        let mut index = hash(key, start) as usize & self.mask;
        loop {
            let slot = &self.slots[index];
            if slot.start == start && slot.key == key {
                return (&mut self.slots[index].value, false);
            }
            if slot.start == EMPTY {
                self.len += 1;
                self.keys = (self.keys.0.min(key), self.keys.1.max(key));
                self.starts = (self.starts.0.min(start), self.starts.1.max(start));
                let slot = &mut self.slots[index];
                slot.key = key;
                slot.start = start;
                return (&mut slot.value, true);
            }
            index = (index + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Self::with_capacity(self.slots.len() * 2));
        for slot in old.slots.into_iter().filter(|s| s.start != EMPTY) {
            *self.entry(slot.key, slot.start).0 = slot.value;
        }
    }

    /// The smallest and largest key, and the smallest and largest start, held; `None`
    /// when the table is empty.
    pub fn bounds(&self) -> Option<((i64, i64), (i64, i64))> {
        (self.len > 0).then_some((self.keys, self.starts))
    }

    /// The occupied slots, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &BucketSlot<V>> {
        self.slots.iter().filter(|s| s.start != EMPTY)
    }

    /// Empties the table. A table much larger than what it held is shrunk, so one big
    /// commit does not make every later clear walk its memory.
    pub fn clear(&mut self) {
        if self.len * 8 < self.slots.len() && self.slots.len() > 1 << 16 {
            *self = Self::with_capacity(self.len * 2);
        } else if self.len > 0 {
            self.slots.fill(BucketSlot::vacant());
            self.len = 0;
            self.keys = (i64::MAX, i64::MIN);
            self.starts = (i64::MAX, i64::MIN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn holds_what_a_map_holds_across_growth_and_clear() {
        let mut table = BucketTable::<tessera_core::NumericSummary>::default();
        let mut map: HashMap<(i64, i64), (u64, f64)> = HashMap::new();
        let mut x = 7u64;
        for round in 0..3 {
            for i in 0..50_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = (x % 20_000) as i64 - 10_000;
                let start = ((x >> 20) % 5) as i64 * 3_600_000 - 7_200_000;
                let value = (i % 97) as f64;
                table.prefetch(key, start);
                table.entry(key, start).0.update(value);
                let e = map.entry((key, start)).or_insert((0, 0.0));
                e.0 += 1;
                e.1 += value;
            }
            assert_eq!(table.len(), map.len(), "round {round}");
            for slot in table.iter() {
                let (count, sum) = map[&(slot.key, slot.start)];
                assert_eq!(slot.value.count(), count);
                assert_eq!(slot.value.sum(), sum);
            }
            table.clear();
            map.clear();
            assert_eq!(table.iter().count(), 0);
        }
    }
}
