//! Bucket records: the value stored under a bucket key. A record is the encoded states of
//! every rule of one layout, concatenated in rule order. Each state is self-delimiting
//! and tagged with its kind and format version, so the RocksDB merge operator can merge
//! records without knowing the plan.

use rocksdb::MergeOperands;
use tessera_core::{AggState, CoreError, CoreResult};

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
pub fn merge_record_into(acc: &mut Vec<AggState>, bytes: &[u8]) -> CoreResult<()> {
    if acc.is_empty() {
        *acc = decode_record(bytes)?;
        return Ok(());
    }
    let mut rest = bytes;
    let mut index = 0;
    while !rest.is_empty() {
        let (state, used) = AggState::decode(rest)?;
        let Some(target) = acc.get_mut(index) else {
            return Err(CoreError::corrupt(format!(
                "a bucket record holds more states ({}+) than the record it merges into ({})",
                index + 1,
                acc.len()
            )));
        };
        target.merge(&state)?;
        rest = &rest[used..];
        index += 1;
    }
    if index != acc.len() {
        return Err(CoreError::corrupt(format!(
            "a bucket record holds {index} states, the record it merges into {}",
            acc.len()
        )));
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
    fn a_record_of_another_shape_is_an_error() {
        let mut a = vec![AggState::new(&Aggregation::Sum)];
        let mut bytes = Vec::new();
        encode_record(
            &[
                AggState::new(&Aggregation::Sum),
                AggState::new(&Aggregation::Sum),
            ],
            &mut bytes,
        );
        assert!(merge_record_into(&mut a, &bytes).is_err());
        let mut count = vec![AggState::new(&Aggregation::Count)];
        let mut sum_bytes = Vec::new();
        encode_record(&[AggState::new(&Aggregation::Sum)], &mut sum_bytes);
        assert!(merge_record_into(&mut count, &sum_bytes).is_err());
    }
}
