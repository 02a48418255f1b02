//! The records of windowed stream resolvers (`docs/architecture.md` section 3): the
//! messages a resolver keeps for its windows and the values of its closed tumbling
//! periods, in the meta column family. They are written by [`CommitRecords::windowed`]
//! in the same atomic write as the positions of the messages they come from, so a crash
//! neither loses nor doubles a window's input.
//!
//! - A continuous resolver keeps every message, by key and time, for its largest window:
//!   `windowed/c/<resolver>\0<key><time><partition><offset>`. A query reads one key's
//!   messages of a window; the compaction filter removes the ones older than the
//!   retention registered for the resolver, without anyone querying.
//! - A tumbling resolver holds the messages of each open period, per window:
//!   `windowed/h/<resolver>\0<window><period start><key><time><partition><offset>`, and
//!   when the period closes writes each key's value, observed at the period's end:
//!   `windowed/v/<resolver>\0<window><key><period end>`, and removes the held messages.
//!
//! Keys are the resolver's canonical text of a message's key values; times and offsets
//! are big-endian with the sign bit flipped, so records sort by them.
//!
//! [`CommitRecords::windowed`]: crate::commit::CommitRecords::windowed

use std::ffi::CStr;
use std::sync::{Arc, RwLock};

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use rustc_hash::FxHashMap;

use crate::error::{invalid_batch, StoreResult};
use crate::options::Clock;
use crate::store::BucketStore;

const PREFIX: &[u8] = b"windowed/";
const RETAINED: u8 = b'c';
const HELD: u8 = b'h';
const VALUE: u8 = b'v';

/// One message a windowed resolver keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowedMessage {
    pub resolver: String,
    /// The canonical text of the message's key values.
    pub key: String,
    /// The message's event time, Unix ms.
    pub time_ms: i64,
    /// Where it was read: its source partition and offset (orders messages of one time).
    pub partition: i32,
    pub offset: i64,
    /// The message as the resolver reads it (its checked JSON).
    pub body: Vec<u8>,
}

/// A record a commit writes for a windowed resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowedWrite {
    /// A continuous resolver's message, kept for its largest window.
    Retain(WindowedMessage),
    /// A tumbling resolver's message, held in the open period of `window_ms` starting at
    /// `period_start_ms`.
    Hold {
        window_ms: i64,
        period_start_ms: i64,
        message: WindowedMessage,
    },
    /// A closed period's value for one key, observed at the period's end.
    Value {
        resolver: String,
        window_ms: i64,
        key: String,
        end_ms: i64,
        /// The value as JSON.
        value: Vec<u8>,
    },
    /// Closes a period: the messages it held are removed.
    Close {
        resolver: String,
        window_ms: i64,
        period_start_ms: i64,
    },
}

fn flip(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(bytes: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(raw) ^ (1 << 63)) as i64
}

fn head(kind: u8, resolver: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(PREFIX);
    out.push(kind);
    out.push(b'/');
    out.extend_from_slice(resolver.as_bytes());
    out.push(0);
}

fn push_key(key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
}

fn push_place(m: &WindowedMessage, out: &mut Vec<u8>) {
    out.extend_from_slice(&flip(m.time_ms));
    out.extend_from_slice(&flip(i64::from(m.partition)));
    out.extend_from_slice(&flip(m.offset));
}

/// Checks the names a record is keyed by.
fn check_name(resolver: &str) -> StoreResult<()> {
    if resolver.is_empty() || resolver.contains('\0') {
        return Err(invalid_batch(format!(
            "a windowed resolver name must be non-empty text without NUL, got {resolver:?}"
        )));
    }
    Ok(())
}

/// The first key after every key starting with `prefix`.
fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

impl WindowedWrite {
    /// Adds the write to `batch` (meta column family `cf`).
    pub(crate) fn write(
        &self,
        batch: &mut WriteBatch,
        cf: &rocksdb::ColumnFamily,
    ) -> StoreResult<()> {
        let mut key = Vec::with_capacity(96);
        match self {
            Self::Retain(m) => {
                check_name(&m.resolver)?;
                head(RETAINED, &m.resolver, &mut key);
                push_key(&m.key, &mut key);
                push_place(m, &mut key);
                batch.put_cf(cf, &key, &m.body);
            }
            Self::Hold {
                window_ms,
                period_start_ms,
                message: m,
            } => {
                check_name(&m.resolver)?;
                head(HELD, &m.resolver, &mut key);
                key.extend_from_slice(&flip(*window_ms));
                key.extend_from_slice(&flip(*period_start_ms));
                push_key(&m.key, &mut key);
                push_place(m, &mut key);
                batch.put_cf(cf, &key, &m.body);
            }
            Self::Value {
                resolver,
                window_ms,
                key: k,
                end_ms,
                value,
            } => {
                check_name(resolver)?;
                head(VALUE, resolver, &mut key);
                key.extend_from_slice(&flip(*window_ms));
                push_key(k, &mut key);
                key.extend_from_slice(&flip(*end_ms));
                batch.put_cf(cf, &key, value);
            }
            Self::Close {
                resolver,
                window_ms,
                period_start_ms,
            } => {
                check_name(resolver)?;
                head(HELD, resolver, &mut key);
                key.extend_from_slice(&flip(*window_ms));
                key.extend_from_slice(&flip(*period_start_ms));
                let end = after_prefix(&key);
                batch.delete_range_cf(cf, &key, &end);
            }
        }
        Ok(())
    }
}

/// A message read back: its key, time and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptMessage {
    pub key: String,
    pub time_ms: i64,
    pub body: Vec<u8>,
}

/// A closed period's value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowedValue {
    /// The period's end: when the value was observed.
    pub end_ms: i64,
    pub value: Vec<u8>,
}

/// Splits `<key len><key><time>...` into (key, time).
fn key_and_time(rest: &[u8]) -> Option<(String, i64)> {
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_string();
    let time = rest.get(4 + len..4 + len + 8)?;
    Some((key, unflip(time)))
}

impl BucketStore {
    /// The messages a continuous resolver kept for each of `keys` with times in
    /// `(after_ms, until_ms]`, each key's in (time, partition, offset) order.
    pub fn retained_messages(
        &self,
        resolver: &str,
        keys: &[String],
        after_ms: i64,
        until_ms: i64,
    ) -> StoreResult<Vec<Vec<KeptMessage>>> {
        check_name(resolver)?;
        let mut out = Vec::with_capacity(keys.len());
        let mut iter = self.db.raw_iterator_cf(self.meta());
        let mut lo = Vec::with_capacity(96);
        for key in keys {
            head(RETAINED, resolver, &mut lo);
            push_key(key, &mut lo);
            let key_prefix = lo.len();
            lo.extend_from_slice(&flip(after_ms.saturating_add(1)));
            let mut found = Vec::new();
            iter.seek(&lo);
            while iter.valid() {
                let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                    break;
                };
                if k.len() < key_prefix + 8 || k[..key_prefix] != lo[..key_prefix] {
                    break;
                }
                let t = unflip(&k[key_prefix..key_prefix + 8]);
                if t > until_ms {
                    break;
                }
                found.push(KeptMessage {
                    key: key.clone(),
                    time_ms: t,
                    body: v.to_vec(),
                });
                iter.next();
            }
            iter.status()?;
            out.push(found);
        }
        Ok(out)
    }

    /// The starts of the periods of `window_ms` a tumbling resolver holds messages for,
    /// in order.
    pub fn held_periods(&self, resolver: &str, window_ms: i64) -> StoreResult<Vec<i64>> {
        check_name(resolver)?;
        let mut prefix = Vec::new();
        head(HELD, resolver, &mut prefix);
        prefix.extend_from_slice(&flip(window_ms));
        let mut starts = Vec::new();
        let mut iter = self.db.raw_iterator_cf(self.meta());
        iter.seek(&prefix);
        while iter.valid() {
            let Some(k) = iter.key() else { break };
            if !k.starts_with(&prefix) || k.len() < prefix.len() + 8 {
                break;
            }
            let start_bytes = &k[prefix.len()..prefix.len() + 8];
            starts.push(unflip(start_bytes));
            // Skip to the next period start.
            let mut next = k[..prefix.len() + 8].to_vec();
            next = after_prefix(&next);
            iter.seek(&next);
        }
        iter.status()?;
        Ok(starts)
    }

    /// The messages a tumbling resolver holds in the period of `window_ms` starting at
    /// `period_start_ms`, by key, then (time, partition, offset).
    pub fn held_messages(
        &self,
        resolver: &str,
        window_ms: i64,
        period_start_ms: i64,
    ) -> StoreResult<Vec<KeptMessage>> {
        check_name(resolver)?;
        let mut prefix = Vec::new();
        head(HELD, resolver, &mut prefix);
        prefix.extend_from_slice(&flip(window_ms));
        prefix.extend_from_slice(&flip(period_start_ms));
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(self.meta(), IteratorMode::From(&prefix, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if let Some((key, time_ms)) = key_and_time(&k[prefix.len()..]) {
                out.push(KeptMessage {
                    key,
                    time_ms,
                    body: v.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// For each key: the value of the latest closed period of `window_ms` that ended at
    /// or before `at_ms[i]` (one time per key), if any.
    pub fn windowed_values(
        &self,
        resolver: &str,
        window_ms: i64,
        keys: &[String],
        at_ms: &[i64],
    ) -> StoreResult<Vec<Option<WindowedValue>>> {
        check_name(resolver)?;
        if keys.len() != at_ms.len() {
            return Err(invalid_batch(format!(
                "{} times for {} keys: a windowed value read takes one time per key",
                at_ms.len(),
                keys.len()
            )));
        }
        let mut iter = self.db.raw_iterator_cf(self.meta());
        let mut seek = Vec::with_capacity(96);
        let mut out = Vec::with_capacity(keys.len());
        for (key, &at) in keys.iter().zip(at_ms) {
            head(VALUE, resolver, &mut seek);
            seek.extend_from_slice(&flip(window_ms));
            push_key(key, &mut seek);
            let key_prefix = seek.len();
            seek.extend_from_slice(&flip(at));
            iter.seek_for_prev(&seek);
            let mut found = None;
            if iter.valid() {
                if let (Some(k), Some(v)) = (iter.key(), iter.value()) {
                    if k.len() == key_prefix + 8 && k[..key_prefix] == seek[..key_prefix] {
                        found = Some(WindowedValue {
                            end_ms: unflip(&k[key_prefix..]),
                            value: v.to_vec(),
                        });
                    }
                }
            }
            iter.status()?;
            out.push(found);
        }
        Ok(out)
    }

    /// Keeps a continuous resolver's messages for `retention_ms` (its largest window),
    /// judged by the engine clock: older ones are removed as RocksDB compacts.
    pub fn set_windowed_retention(&self, resolver: &str, retention_ms: i64) -> StoreResult<()> {
        check_name(resolver)?;
        if let Ok(mut table) = self.windowed_retention.write() {
            table.insert(resolver.as_bytes().to_vec(), retention_ms);
        }
        Ok(())
    }
}

/// Resolver name -> how long its retained messages are kept.
pub(crate) type SharedWindowedRetention = Arc<RwLock<FxHashMap<Vec<u8>, i64>>>;

/// Makes one filter per compaction of the meta column family, with the retentions and
/// the clock as they are when it starts. It touches retained messages only.
pub(crate) struct WindowedRetentionFactory {
    pub table: SharedWindowedRetention,
    pub clock: Clock,
}

pub(crate) struct WindowedRetentionFilter {
    table: FxHashMap<Vec<u8>, i64>,
    now_ms: i64,
}

const FILTER_NAME: &CStr = c"tessera.windowed_retention";

impl CompactionFilterFactory for WindowedRetentionFactory {
    type Filter = WindowedRetentionFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> WindowedRetentionFilter {
        WindowedRetentionFilter {
            table: self.table.read().map(|t| t.clone()).unwrap_or_default(),
            now_ms: self.clock.now_ms(),
        }
    }

    fn name(&self) -> &CStr {
        FILTER_NAME
    }
}

impl WindowedRetentionFilter {
    /// Whether `key` is a retained message older than its resolver's retention.
    fn expired(&self, key: &[u8]) -> Option<bool> {
        let rest = key.strip_prefix(PREFIX)?.strip_prefix(&[RETAINED, b'/'])?;
        let nul = rest.iter().position(|&b| b == 0)?;
        let retention = self.table.get(&rest[..nul])?;
        let (_, t) = key_and_time(&rest[nul + 1..])?;
        Some(t <= self.now_ms.saturating_sub(*retention))
    }
}

impl CompactionFilter for WindowedRetentionFilter {
    fn filter(&mut self, _level: u32, key: &[u8], _value: &[u8]) -> Decision {
        if self.expired(key) == Some(true) {
            Decision::Remove
        } else {
            Decision::Keep
        }
    }

    fn name(&self) -> &CStr {
        FILTER_NAME
    }
}
