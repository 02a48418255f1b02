//! Bucket records: the value stored under a bucket key. A record is the encoded states of
//! every rule of one layout, concatenated in stored-list order (`layout.rs`); records
//! written before a rule was added to the layout are shorter. Each state is self-delimiting
//! and tagged with its kind and format version, so the RocksDB merge operator can merge
//! records without knowing the plan.

use rocksdb::MergeOperands;
use tessera_core::{AggState, CoreResult};

/// Appends the record of `states`.
pub fn encode_record(states: &[AggState], out: &mut Vec<u8>) {
    for state in states {
        state.encode(out);
    }
}

/// Decodes every state of a record.
pub fn decode_record(mut bytes: &[u8]) -> CoreResult<Vec<AggState>> {
    let mut states = Vec::with_capacity(4);
    while !bytes.is_empty() {
        let (state, used) = AggState::decode(bytes)?;
        states.push(state);
        bytes = &bytes[used..];
    }
    Ok(states)
}

/// Merges the record `bytes` into `acc` state by state. An empty `acc` takes the record.
///
/// Records of one layout may differ in length: a rule added to a layout appends a slot,
/// so records written before it are shorter (docs/semantics.md section 9.4). A shorter
/// record leaves the accumulator's trailing states as they are; a longer one appends its
/// extra states (states are self-describing). A state of another kind at the same
/// position is a corruption.
pub fn merge_record_into(acc: &mut Vec<AggState>, bytes: &[u8]) -> CoreResult<()> {
    if acc.is_empty() {
        *acc = decode_record(bytes)?;
        return Ok(());
    }
    let mut rest = bytes;
    let mut index = 0;
    while !rest.is_empty() {
        let (state, used) = AggState::decode(rest)?;
        match acc.get_mut(index) {
            Some(target) => target.merge(&state)?,
            None => acc.push(state),
        }
        rest = &rest[used..];
        index += 1;
    }
    Ok(())
}

/// The RocksDB merge operator of the bucket column family: merges an existing record and
/// any number of operand records (full and partial merges are the same operation, since
/// states merge associatively). Returning `None` makes RocksDB report a corruption for
/// this key rather than serve a wrong value.
pub fn merge_records(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let mut acc = Vec::new();
    if let Some(existing) = existing {
        merge_record_into(&mut acc, existing).ok()?;
    }
    for operand in operands {
        merge_record_into(&mut acc, operand).ok()?;
    }
    let mut out = Vec::with_capacity(existing.map_or(16, |e| e.len()));
    encode_record(&acc, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::Aggregation;

    #[test]
    fn records_merge_state_by_state() {
        let mut a = vec![
            AggState::new(&Aggregation::Sum),
            AggState::new(&Aggregation::Count),
        ];
        let mut b = a.clone();
        for v in [1.0, 2.0] {
            a.iter_mut().for_each(|s| s.update_number(v));
        }
        b.iter_mut().for_each(|s| s.update_number(4.0));
        let mut bytes = Vec::new();
        encode_record(&b, &mut bytes);
        merge_record_into(&mut a, &bytes).unwrap();
        assert_eq!(a[0].evaluate(), tessera_core::AggValue::Number(7.0));
        assert_eq!(a[1].evaluate(), tessera_core::AggValue::Count(3));
    }

    #[test]
    fn records_of_different_lengths_merge_slot_by_slot() {
        let sum = |v: f64| {
            let mut s = AggState::new(&Aggregation::Sum);
            s.update_number(v);
            s
        };
        let count = |n: u32| {
            let mut s = AggState::new(&Aggregation::Count);
            (0..n).for_each(|_| s.update_number(1.0));
            s
        };
        let encoded = |states: &[AggState]| {
            let mut bytes = Vec::new();
            encode_record(states, &mut bytes);
            bytes
        };
        // A shorter record leaves the trailing state alone.
        let mut acc = vec![sum(1.0), count(2)];
        merge_record_into(&mut acc, &encoded(&[sum(4.0)])).unwrap();
        assert_eq!(acc[0].evaluate(), tessera_core::AggValue::Number(5.0));
        assert_eq!(acc[1].evaluate(), tessera_core::AggValue::Count(2));
        // A longer one appends its extra state.
        let mut acc = vec![sum(1.0)];
        merge_record_into(&mut acc, &encoded(&[sum(2.0), count(3)])).unwrap();
        assert_eq!(acc.len(), 2);
        assert_eq!(acc[0].evaluate(), tessera_core::AggValue::Number(3.0));
        assert_eq!(acc[1].evaluate(), tessera_core::AggValue::Count(3));
        // The merge operator gives the same answer in any operand order.
        let short = encoded(&[sum(1.0)]);
        let long = encoded(&[sum(2.0), count(3)]);
        let mut a = Vec::new();
        merge_record_into(&mut a, &short).unwrap();
        merge_record_into(&mut a, &long).unwrap();
        let mut b = Vec::new();
        merge_record_into(&mut b, &long).unwrap();
        merge_record_into(&mut b, &short).unwrap();
        assert_eq!(encoded(&a), encoded(&b));
    }

    #[test]
    fn a_state_of_another_kind_in_a_slot_is_an_error() {
        let mut count = vec![AggState::new(&Aggregation::Count)];
        let mut sum_bytes = Vec::new();
        encode_record(&[AggState::new(&Aggregation::Sum)], &mut sum_bytes);
        assert!(merge_record_into(&mut count, &sum_bytes).is_err());
        let mut two = vec![
            AggState::new(&Aggregation::Sum),
            AggState::new(&Aggregation::Count),
        ];
        let mut bytes = Vec::new();
        encode_record(
            &[
                AggState::new(&Aggregation::Sum),
                AggState::new(&Aggregation::Sum),
            ],
            &mut bytes,
        );
        assert!(merge_record_into(&mut two, &bytes).is_err());
    }
}
