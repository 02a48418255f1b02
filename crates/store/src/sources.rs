//! What the store remembers about the sources that feed it: committed positions, kept
//! dead letters and resolver states. All of it is written by commits (see
//! [`crate::commit`]); this module only reads it.

use crate::error::StoreResult;
use crate::meta::{
    dead_letter_prefix, decode_dead_letter, decode_position, decode_resolver_state,
    position_prefix, resolver_key, DeadLetter, ResolverState, SourcePosition,
};
use crate::store::BucketStore;

impl BucketStore {
    /// The stored positions of one source, by partition.
    pub fn positions(&self, source: &str) -> StoreResult<Vec<SourcePosition>> {
        let prefix = position_prefix(source);
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            let Some((partition, offset)) = decode_position(&prefix, key, value) else {
                break;
            };
            out.push(SourcePosition {
                source: source.to_string(),
                partition,
                offset,
            });
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// The state a resolver committed last, if any.
    pub fn resolver_state(&self, resolver: &str) -> StoreResult<Option<ResolverState>> {
        let key = resolver_key(resolver);
        match self.db.get_cf(self.meta(), &key)? {
            Some(value) => Ok(Some(decode_resolver_state(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// Dead letters in key order (source, partition, offset), of one source or all, at
    /// most `limit` of them.
    pub fn dead_letters(&self, source: Option<&str>, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let prefix = dead_letter_prefix(source);
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() && out.len() < limit {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(decode_dead_letter(key, value)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// How many dead letters are kept, of one source or all.
    pub fn dead_letter_count(&self, source: Option<&str>) -> StoreResult<u64> {
        let prefix = dead_letter_prefix(source);
        let mut n = 0;
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() && it.key().is_some_and(|k| k.starts_with(&prefix)) {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }
}
