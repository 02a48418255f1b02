//! Windowed stream resolvers' records across the boundary (`crates/store/src/windowed.rs`):
//! the records a commit carries, as columns (one object per resolver and commit, not one
//! per record), and the reads of kept messages and period values, whose messages come
//! back as one JSON array text per key (one `JSON.parse` per key, not per message).

use napi::bindgen_prelude::{Buffer, Float64Array, Int32Array, Uint32Array, Uint8Array};
use napi_derive::napi;
use tessera_store::{KeptMessage, WindowedMessage, WindowedWrite};

use crate::engine::{reading, NativeEngine};
use crate::error::{from_store, js_error};

/// A record's kind in [`WindowedRecordsInput::kinds`].
const RETAIN: u8 = 0;
const HOLD: u8 = 1;
const VALUE: u8 = 2;
const CLOSE: u8 = 3;

/// The records one commit writes for one windowed resolver, as columns; record `i` is:
/// - kind 0, retain: a continuous resolver's message (`keys[keyIndexes[i]]`, `timesMs`,
///   `partitions`, `offsets`, payload);
/// - kind 1, hold: a tumbling resolver's message held in the period of `windowsMs`
///   starting at `periodStartsMs` (and the message columns);
/// - kind 2, value: a closed period's value for the key (`windowsMs`, `timesMs` the
///   period's end, payload the value as JSON);
/// - kind 3, close: removes the messages held for the period of `windowsMs` at
///   `periodStartsMs`.
///
/// Payloads are concatenated in `payload`; record `i`'s ends at `payloadEnds[i]` and
/// starts where record `i - 1`'s ends (records without one add nothing).
#[napi(object)]
pub struct WindowedRecordsInput {
    pub resolver: String,
    pub kinds: Uint8Array,
    pub keys: Vec<String>,
    pub key_indexes: Uint32Array,
    pub times_ms: Float64Array,
    pub windows_ms: Float64Array,
    pub period_starts_ms: Float64Array,
    pub partitions: Int32Array,
    pub offsets: Float64Array,
    pub payload: Buffer,
    pub payload_ends: Uint32Array,
}

/// The messages kept for one key: how many, and the messages as one JSON array.
#[napi(object)]
pub struct KeptMessagesOutput {
    pub count: u32,
    pub messages: String,
}

/// One key's messages held in a period: its key text and the messages as one JSON array.
#[napi(object)]
pub struct HeldKeyMessagesOutput {
    pub key: String,
    pub count: u32,
    pub messages: String,
}

/// A closed period's value read back: when it was observed, and the value as JSON.
#[napi(object)]
pub struct WindowedValueOutput {
    pub end_ms: f64,
    pub value: String,
}

fn bad(resolver: &str, problem: String) -> napi::Error {
    js_error(
        "INVALID_BATCH",
        format!("windowed resolver '{resolver}': {problem}"),
    )
}

/// A whole number of ms (times, windows, offsets) of a record.
fn whole(value: Option<&f64>, what: &str, record: usize, resolver: &str) -> napi::Result<i64> {
    match value {
        Some(&v) if v.is_finite() && v.fract() == 0.0 && v.abs() <= 9.007_199_254_740_991e15 => {
            Ok(v as i64)
        }
        Some(v) => Err(bad(
            resolver,
            format!("record {record}: {what} is {v}, not a whole number"),
        )),
        None => Err(bad(resolver, format!("record {record} has no {what}"))),
    }
}

/// Appends the records of `input` to `out`.
pub(crate) fn windowed_writes(
    input: &WindowedRecordsInput,
    out: &mut Vec<WindowedWrite>,
) -> napi::Result<()> {
    let resolver = input.resolver.as_str();
    let n = input.kinds.len();
    let payload: &[u8] = &input.payload;
    let mut start = 0usize;
    for i in 0..n {
        let end = input
            .payload_ends
            .get(i)
            .map_or(start, |&e| e as usize)
            .clamp(start, payload.len());
        let bytes = &payload[start..end];
        start = end;
        let key = || -> napi::Result<String> {
            let index = input.key_indexes.get(i).copied().unwrap_or(u32::MAX) as usize;
            input.keys.get(index).cloned().ok_or_else(|| {
                bad(
                    resolver,
                    format!("record {i} names key {index}, of {}", input.keys.len()),
                )
            })
        };
        let message = || -> napi::Result<WindowedMessage> {
            Ok(WindowedMessage {
                resolver: resolver.to_string(),
                key: key()?,
                time_ms: whole(input.times_ms.get(i), "timesMs", i, resolver)?,
                partition: *input
                    .partitions
                    .get(i)
                    .ok_or_else(|| bad(resolver, format!("record {i} has no partition")))?,
                offset: whole(input.offsets.get(i), "offsets", i, resolver)?,
                body: bytes.to_vec(),
            })
        };
        let write = match input.kinds[i] {
            RETAIN => WindowedWrite::Retain(message()?),
            HOLD => WindowedWrite::Hold {
                window_ms: whole(input.windows_ms.get(i), "windowsMs", i, resolver)?,
                period_start_ms: whole(
                    input.period_starts_ms.get(i),
                    "periodStartsMs",
                    i,
                    resolver,
                )?,
                message: message()?,
            },
            VALUE => WindowedWrite::Value {
                resolver: resolver.to_string(),
                window_ms: whole(input.windows_ms.get(i), "windowsMs", i, resolver)?,
                key: key()?,
                end_ms: whole(input.times_ms.get(i), "timesMs", i, resolver)?,
                value: bytes.to_vec(),
            },
            CLOSE => WindowedWrite::Close {
                resolver: resolver.to_string(),
                window_ms: whole(input.windows_ms.get(i), "windowsMs", i, resolver)?,
                period_start_ms: whole(
                    input.period_starts_ms.get(i),
                    "periodStartsMs",
                    i,
                    resolver,
                )?,
            },
            other => {
                return Err(bad(
                    resolver,
                    format!("record {i} has kind {other} (0 retain, 1 hold, 2 value, 3 close)"),
                ))
            }
        };
        out.push(write);
    }
    Ok(())
}

/// The messages' bodies (each a JSON text) as one JSON array text.
fn json_array<'a>(bodies: impl Iterator<Item = &'a [u8]>) -> (u32, String) {
    let mut text = String::from("[");
    let mut count = 0u32;
    for body in bodies {
        if count > 0 {
            text.push(',');
        }
        text.push_str(&String::from_utf8_lossy(body));
        count += 1;
    }
    text.push(']');
    (count, text)
}

fn ms(value: f64, what: &str, resolver: &str) -> napi::Result<i64> {
    whole(Some(&value.floor()), what, 0, resolver)
}

#[napi]
impl NativeEngine {
    /// The messages a continuous resolver kept for each key with times in
    /// `(afterMs, untilMs]`, in time order, as one JSON array per key.
    #[napi(catch_unwind)]
    pub fn retained_messages(
        &self,
        resolver: String,
        keys: Vec<String>,
        after_ms: f64,
        until_ms: f64,
    ) -> napi::Result<Vec<KeptMessagesOutput>> {
        let (after, until) = (
            ms(after_ms, "afterMs", &resolver)?,
            ms(until_ms, "untilMs", &resolver)?,
        );
        reading(&self.store, |store| {
            let all = store
                .retained_messages(&resolver, &keys, after, until)
                .map_err(from_store)?;
            Ok(all
                .iter()
                .map(|list| {
                    let (count, messages) = json_array(list.iter().map(|m| m.body.as_slice()));
                    KeptMessagesOutput { count, messages }
                })
                .collect())
        })
    }

    /// The starts of the periods of `windowMs` a tumbling resolver holds messages for.
    #[napi(catch_unwind)]
    pub fn held_periods(&self, resolver: String, window_ms: f64) -> napi::Result<Vec<f64>> {
        let window = ms(window_ms, "windowMs", &resolver)?;
        reading(&self.store, |store| {
            store
                .held_periods(&resolver, window)
                .map(|starts| starts.into_iter().map(|s| s as f64).collect())
                .map_err(from_store)
        })
    }

    /// The messages a tumbling resolver holds in one period, per key (in key order), each
    /// key's in time order as one JSON array.
    #[napi(catch_unwind)]
    pub fn held_messages(
        &self,
        resolver: String,
        window_ms: f64,
        period_start_ms: f64,
    ) -> napi::Result<Vec<HeldKeyMessagesOutput>> {
        let window = ms(window_ms, "windowMs", &resolver)?;
        let start = ms(period_start_ms, "periodStartMs", &resolver)?;
        reading(&self.store, |store| {
            let held = store
                .held_messages(&resolver, window, start)
                .map_err(from_store)?;
            let mut out: Vec<HeldKeyMessagesOutput> = Vec::new();
            let mut from = 0;
            while from < held.len() {
                let key = &held[from].key;
                let to = from
                    + held[from..]
                        .iter()
                        .take_while(|m: &&KeptMessage| &m.key == key)
                        .count();
                let (count, messages) =
                    json_array(held[from..to].iter().map(|m| m.body.as_slice()));
                out.push(HeldKeyMessagesOutput {
                    key: key.clone(),
                    count,
                    messages,
                });
                from = to;
            }
            Ok(out)
        })
    }

    /// For each key, the latest closed period's value of `windowMs` observed at or before
    /// its time in `atMs`.
    #[napi(catch_unwind)]
    pub fn windowed_values(
        &self,
        resolver: String,
        window_ms: f64,
        keys: Vec<String>,
        at_ms: Float64Array,
    ) -> napi::Result<Vec<Option<WindowedValueOutput>>> {
        let window = ms(window_ms, "windowMs", &resolver)?;
        let at = at_ms
            .iter()
            .map(|&t| ms(t, "atMs", &resolver))
            .collect::<napi::Result<Vec<_>>>()?;
        reading(&self.store, |store| {
            store
                .windowed_values(&resolver, window, &keys, &at)
                .map(|all| {
                    all.into_iter()
                        .map(|v| {
                            v.map(|v| WindowedValueOutput {
                                end_ms: v.end_ms as f64,
                                value: String::from_utf8_lossy(&v.value).into_owned(),
                            })
                        })
                        .collect()
                })
                .map_err(from_store)
        })
    }

    /// Keeps a continuous resolver's messages for `retentionMs`, judged by the engine
    /// clock; older ones go as RocksDB compacts.
    #[napi(catch_unwind)]
    pub fn set_windowed_retention(&self, resolver: String, retention_ms: f64) -> napi::Result<()> {
        let retention = ms(retention_ms, "retentionMs", &resolver)?;
        reading(&self.store, |store| {
            store
                .set_windowed_retention(&resolver, retention)
                .map_err(from_store)
        })
    }
}
