//! The records of the `meta` column family and their keys: the format version, the
//! registered series (with their readable summaries), source positions, dead letters and
//! resolver states. Everything here is pure encoding; the store writes these records in
//! the same atomic writes as the buckets they describe.
//!
//! | key | value |
//! |---|---|
//! | `format` | store format (u32 LE) + state format (u8) |
//! | `next_series_number` | u32 LE |
//! | `series/<id>` | JSON [`StoredSeries`] |
//! | `position/<source>\0<partition>` | next offset (i64 LE) |
//! | `deadletter/<source>\0<partition><offset>` | u32 LE meta length, JSON meta, raw bytes |
//! | `resolver/<name>` | JSON [`ResolverState`] |
//!
//! Partitions and offsets in keys are big-endian with the sign bit flipped, so that keys
//! order as the numbers do.

use serde::{Deserialize, Serialize};
use tessera_core::STATE_FORMAT_VERSION;

use crate::error::{invalid_batch, StoreError, StoreErrorKind, StoreResult};
use crate::layout::{SeriesSpec, SeriesSummary};

/// The version of the store's layout (keys, records, column families). Bump it whenever
/// any of them changes; a store written in another version is refused at open, except
/// the versions in [`UPGRADABLE_FORMAT_VERSIONS`].
///
/// Version 3: a definition change keeps a series and its buckets, so one layout's records
/// may hold different numbers of states (a build of version 2 refuses to merge them),
/// series records carry the rule order and retired rules (a build of version 2 would
/// read a retired rule as active, and read slots by the wrong index), and coverage is
/// kept per rule.
pub const STORE_FORMAT_VERSION: u32 = 3;

/// Older versions this build opens, upgrading the format record in place: everything a
/// version 2 store holds reads the same in version 3 (records of one length, series
/// records without a rule order, coverage per layout).
pub(crate) const UPGRADABLE_FORMAT_VERSIONS: &[u32] = &[2];

pub(crate) const BUCKETS_CF: &str = "buckets";
pub(crate) const META_CF: &str = "meta";
pub(crate) const FORMAT_KEY: &[u8] = b"format";
pub(crate) const NEXT_SERIES_KEY: &[u8] = b"next_series_number";
pub(crate) const SERIES_PREFIX: &[u8] = b"series/";
const POSITION_PREFIX: &[u8] = b"position/";
pub(crate) const DEAD_LETTER_PREFIX: &[u8] = b"deadletter/";
const RESOLVER_PREFIX: &[u8] = b"resolver/";

/// The column families of a store directory, for tools that open it with RocksDB alone.
pub fn store_column_families() -> [&'static str; 2] {
    [BUCKETS_CF, META_CF]
}

/// A position in a source (e.g. a Kafka partition and offset), written atomically with
/// the buckets it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
}

/// A message that could not be folded, kept with the commit that consumed it so that it
/// is neither lost nor counted twice: the reason (naming the field), the raw bytes and
/// the source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub field: Option<String>,
    pub raw: Vec<u8>,
    pub received_at_ms: i64,
}

/// What a stream resolver must remember across restarts besides its positions, written in
/// the same commit as the buckets and positions it goes with: the newest source time it
/// has seen (its watermark) and, per partition, the offset from which a restart must read
/// the source again to rebuild what it remembers (its dedupe horizon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverState {
    pub resolver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_ms: Option<i64>,
    /// (partition, offset) pairs.
    #[serde(default)]
    pub replay_from: Vec<(i32, i64)>,
}

#[derive(Serialize, Deserialize)]
struct DeadLetterMeta {
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    received_at_ms: i64,
}

/// A registered series: its store-wide number (used in bucket keys), its spec with the
/// stored rule list (`layout.rs`), which of those rules the last description requested
/// and in what order, and the readable summary the planner gave when it was last opened,
/// so that a series whose definition is gone from the code can still be described.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredSeries {
    pub number: u32,
    pub spec: SeriesSpec,
    /// The requested rule index -> the stored rule index; stored rules it does not name
    /// are retired. Absent when every stored rule is requested, in stored order (every
    /// record written before rules could be retired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_order: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SeriesSummary>,
}

impl StoredSeries {
    /// The requested rule index -> stored rule index mapping of the last description.
    pub fn order(&self) -> Vec<usize> {
        self.rule_order
            .clone()
            .unwrap_or_else(|| (0..self.spec.rules.len()).collect())
    }

    /// The series as it was last described.
    pub fn layout(&self) -> StoreResult<crate::layout::SeriesLayout> {
        crate::layout::SeriesLayout::with_order(self.spec.clone(), self.number, self.order())
    }
}

pub(crate) fn format_bytes() -> Vec<u8> {
    let mut v = STORE_FORMAT_VERSION.to_le_bytes().to_vec();
    v.push(STATE_FORMAT_VERSION);
    v
}

pub(crate) fn series_key(id: &str) -> Vec<u8> {
    prefixed(SERIES_PREFIX, id)
}

pub(crate) fn resolver_key(resolver: &str) -> Vec<u8> {
    prefixed(RESOLVER_PREFIX, resolver)
}

fn prefixed(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn encode_series(record: &StoredSeries) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| {
        StoreError::new(
            StoreErrorKind::InvalidDescription,
            format!("series record: {e}"),
        )
    })
}

pub(crate) fn decode_series(key: &[u8], value: &[u8]) -> StoreResult<StoredSeries> {
    serde_json::from_slice(value).map_err(|e| {
        StoreError::new(
            StoreErrorKind::IncompatibleFormat,
            format!(
                "series record '{}' cannot be read: {e}",
                String::from_utf8_lossy(key)
            ),
        )
    })
}

pub(crate) fn encode_resolver_state(state: &ResolverState) -> StoreResult<Vec<u8>> {
    if state.resolver.is_empty() {
        return Err(invalid_batch("a resolver state needs the resolver's name"));
    }
    serde_json::to_vec(state).map_err(|e| invalid_batch(format!("resolver state: {e}")))
}

pub(crate) fn decode_resolver_state(key: &[u8], value: &[u8]) -> StoreResult<ResolverState> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, &e.to_string()))
}

pub(crate) fn position_prefix(source: &str) -> Vec<u8> {
    let mut k = prefixed(POSITION_PREFIX, source);
    k.push(0);
    k
}

pub(crate) fn position_key(source: &str, partition: i32) -> Vec<u8> {
    let mut k = position_prefix(source);
    k.extend_from_slice(&ordered_i32(partition));
    k
}

/// Reads a position record found under `prefix` (the source's): `None` when the key or
/// value is not one.
pub(crate) fn decode_position(prefix: &[u8], key: &[u8], value: &[u8]) -> Option<(i32, i64)> {
    let partition: [u8; 4] = key.strip_prefix(prefix)?.try_into().ok()?;
    let offset: [u8; 8] = value.try_into().ok()?;
    Some((
        (u32::from_be_bytes(partition) ^ (1 << 31)) as i32,
        i64::from_le_bytes(offset),
    ))
}

pub(crate) fn dead_letter_prefix(source: Option<&str>) -> Vec<u8> {
    match source {
        Some(source) => {
            let mut k = prefixed(DEAD_LETTER_PREFIX, source);
            k.push(0);
            k
        }
        None => DEAD_LETTER_PREFIX.to_vec(),
    }
}

pub(crate) fn dead_letter_key(source: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut k = dead_letter_prefix(Some(source));
    k.extend_from_slice(&ordered_i32(partition));
    k.extend_from_slice(&((offset as u64) ^ (1 << 63)).to_be_bytes());
    k
}

pub(crate) fn encode_dead_letter(letter: &DeadLetter) -> StoreResult<Vec<u8>> {
    let meta = serde_json::to_vec(&DeadLetterMeta {
        reason: letter.reason.clone(),
        field: letter.field.clone(),
        received_at_ms: letter.received_at_ms,
    })
    .map_err(|e| invalid_batch(format!("dead letter: {e}")))?;
    let mut value = Vec::with_capacity(4 + meta.len() + letter.raw.len());
    value.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    value.extend_from_slice(&meta);
    value.extend_from_slice(&letter.raw);
    Ok(value)
}

pub(crate) fn decode_dead_letter(key: &[u8], value: &[u8]) -> StoreResult<DeadLetter> {
    let bad = || corrupt(key, "not a dead letter record");
    let rest = &key[DEAD_LETTER_PREFIX.len()..];
    let nul = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let (source, tail) = (&rest[..nul], &rest[nul + 1..]);
    if tail.len() != 12 || value.len() < 4 {
        return Err(bad());
    }
    let partition =
        (u32::from_be_bytes(tail[0..4].try_into().map_err(|_| bad())?) ^ (1 << 31)) as i32;
    let offset =
        (u64::from_be_bytes(tail[4..12].try_into().map_err(|_| bad())?) ^ (1 << 63)) as i64;
    let meta_len = u32::from_le_bytes(value[0..4].try_into().map_err(|_| bad())?) as usize;
    let meta_bytes = value.get(4..4 + meta_len).ok_or_else(bad)?;
    let meta: DeadLetterMeta = serde_json::from_slice(meta_bytes).map_err(|_| bad())?;
    Ok(DeadLetter {
        source: String::from_utf8_lossy(source).into_owned(),
        partition,
        offset,
        reason: meta.reason,
        field: meta.field,
        raw: value[4 + meta_len..].to_vec(),
        received_at_ms: meta.received_at_ms,
    })
}

fn ordered_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

fn corrupt(key: &[u8], why: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Core(tessera_core::CoreErrorKind::CorruptState),
        format!(
            "meta record '{}' cannot be read: {why}",
            String::from_utf8_lossy(key)
        ),
    )
}
