//! Windowed stream resolvers' records across the boundary (`crates/store/src/windowed.rs`):
//! the writes a commit carries, and the reads of kept messages and period values.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tessera_store::{KeptMessage, WindowedMessage, WindowedWrite};

use crate::description::whole_ms;
use crate::engine::{reading, NativeEngine};
use crate::error::{from_store, js_error};

/// One record a commit writes for a windowed resolver. `kind`:
/// - `retain`: a continuous resolver's message (`key`, `timeMs`, `partition`, `offset`,
///   `body`);
/// - `hold`: a tumbling resolver's message held in the period of `windowMs` starting at
///   `periodStartMs` (and the message fields);
/// - `value`: a closed period's value for `key` (`windowMs`, `endMs`, `value` as JSON);
/// - `close`: removes the messages held for the period of `windowMs` at `periodStartMs`.
#[napi(object)]
pub struct WindowedWriteInput {
    pub kind: String,
    pub resolver: String,
    pub key: Option<String>,
    pub time_ms: Option<f64>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub body: Option<Buffer>,
    pub window_ms: Option<f64>,
    pub period_start_ms: Option<f64>,
    pub end_ms: Option<f64>,
    pub value: Option<Buffer>,
}

/// A kept message read back.
#[napi(object)]
pub struct KeptMessageOutput {
    pub key: String,
    pub time_ms: f64,
    pub body: Buffer,
}

/// A closed period's value read back: when it was observed, and the value as JSON.
#[napi(object)]
pub struct WindowedValueOutput {
    pub end_ms: f64,
    pub value: Buffer,
}

fn required<T>(value: Option<T>, field: &str, input: &WindowedWriteInput) -> napi::Result<T> {
    value.ok_or_else(|| {
        js_error(
            "INVALID_BATCH",
            format!(
                "a windowed '{}' record of {} needs {field}",
                input.kind, input.resolver
            ),
        )
    })
}

fn ms(value: Option<f64>, field: &str, input: &WindowedWriteInput) -> napi::Result<i64> {
    whole_ms(required(value, field, input)?, field, &input.resolver)
}

fn message(input: &WindowedWriteInput) -> napi::Result<WindowedMessage> {
    Ok(WindowedMessage {
        resolver: input.resolver.clone(),
        key: required(input.key.clone(), "key", input)?,
        time_ms: ms(input.time_ms, "timeMs", input)?,
        partition: required(input.partition, "partition", input)?,
        offset: required(input.offset, "offset", input)?,
        body: required(input.body.as_ref(), "body", input)?.to_vec(),
    })
}

pub(crate) fn windowed_write(input: WindowedWriteInput) -> napi::Result<WindowedWrite> {
    Ok(match input.kind.as_str() {
        "retain" => WindowedWrite::Retain(message(&input)?),
        "hold" => WindowedWrite::Hold {
            window_ms: ms(input.window_ms, "windowMs", &input)?,
            period_start_ms: ms(input.period_start_ms, "periodStartMs", &input)?,
            message: message(&input)?,
        },
        "value" => WindowedWrite::Value {
            window_ms: ms(input.window_ms, "windowMs", &input)?,
            key: required(input.key.clone(), "key", &input)?,
            end_ms: ms(input.end_ms, "endMs", &input)?,
            value: required(input.value.as_ref(), "value", &input)?.to_vec(),
            resolver: input.resolver,
        },
        "close" => WindowedWrite::Close {
            window_ms: ms(input.window_ms, "windowMs", &input)?,
            period_start_ms: ms(input.period_start_ms, "periodStartMs", &input)?,
            resolver: input.resolver,
        },
        other => {
            return Err(js_error(
                "INVALID_BATCH",
                format!("unknown windowed record kind '{other}' (retain, hold, value, close)"),
            ))
        }
    })
}

fn kept(m: KeptMessage) -> KeptMessageOutput {
    KeptMessageOutput {
        key: m.key,
        time_ms: m.time_ms as f64,
        body: m.body.into(),
    }
}

#[napi]
impl NativeEngine {
    /// The messages a continuous resolver kept for each key with times in
    /// `(afterMs, untilMs]`, in time order.
    #[napi(catch_unwind)]
    pub fn retained_messages(
        &self,
        resolver: String,
        keys: Vec<String>,
        after_ms: f64,
        until_ms: f64,
    ) -> napi::Result<Vec<Vec<KeptMessageOutput>>> {
        let (after, until) = (
            whole_ms(after_ms, "afterMs", &resolver)?,
            whole_ms(until_ms, "untilMs", &resolver)?,
        );
        reading(&self.store, |store| {
            store
                .retained_messages(&resolver, &keys, after, until)
                .map(|all| {
                    all.into_iter()
                        .map(|list| list.into_iter().map(kept).collect())
                        .collect()
                })
                .map_err(from_store)
        })
    }

    /// The starts of the periods of `windowMs` a tumbling resolver holds messages for.
    #[napi(catch_unwind)]
    pub fn held_periods(&self, resolver: String, window_ms: f64) -> napi::Result<Vec<f64>> {
        let window = whole_ms(window_ms, "windowMs", &resolver)?;
        reading(&self.store, |store| {
            store
                .held_periods(&resolver, window)
                .map(|starts| starts.into_iter().map(|s| s as f64).collect())
                .map_err(from_store)
        })
    }

    /// The messages a tumbling resolver holds in one period, by key then time.
    #[napi(catch_unwind)]
    pub fn held_messages(
        &self,
        resolver: String,
        window_ms: f64,
        period_start_ms: f64,
    ) -> napi::Result<Vec<KeptMessageOutput>> {
        let window = whole_ms(window_ms, "windowMs", &resolver)?;
        let start = whole_ms(period_start_ms, "periodStartMs", &resolver)?;
        reading(&self.store, |store| {
            store
                .held_messages(&resolver, window, start)
                .map(|all| all.into_iter().map(kept).collect())
                .map_err(from_store)
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
        at_ms: Vec<f64>,
    ) -> napi::Result<Vec<Option<WindowedValueOutput>>> {
        let window = whole_ms(window_ms, "windowMs", &resolver)?;
        let at = at_ms
            .iter()
            .map(|&t| whole_ms(t.floor(), "atMs", &resolver))
            .collect::<napi::Result<Vec<_>>>()?;
        reading(&self.store, |store| {
            store
                .windowed_values(&resolver, window, &keys, &at)
                .map(|all| {
                    all.into_iter()
                        .map(|v| {
                            v.map(|v| WindowedValueOutput {
                                end_ms: v.end_ms as f64,
                                value: v.value.into(),
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
        let retention = whole_ms(retention_ms, "retentionMs", &resolver)?;
        reading(&self.store, |store| {
            store
                .set_windowed_retention(&resolver, retention)
                .map_err(from_store)
        })
    }
}
