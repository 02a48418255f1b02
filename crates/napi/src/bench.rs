//! Peers for the benchmark suite (`bench/`), measured inside Rust on the caller's data so
//! that Tessera's figures sit next to the ceiling of an in-memory fold in the same run.

use std::time::Instant;

use napi::bindgen_prelude::Float64Array;
use napi_derive::napi;
use rustc_hash::FxHashMap;

use crate::error::js_error;

#[derive(Clone, Copy)]
struct FoldState {
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
}

/// The Rust in-memory ceiling: folds (key, bucket) -> sum/count/min/max (mean is
/// sum/count) with a hash map, no store, no encoding. Returns nanoseconds per event, the
/// median of `rounds` runs (Tessera's own figures are medians too), and checks its count
/// so the work cannot be optimised away.
#[napi]
pub fn bench_fold_ceiling(
    keys: Float64Array,
    timestamps_ms: Float64Array,
    values: Float64Array,
    bucket_ms: f64,
    rounds: u32,
) -> napi::Result<f64> {
    if keys.len() != timestamps_ms.len() || keys.len() != values.len() || keys.is_empty() {
        return Err(js_error(
            "INVALID_BATCH",
            "keys, timestamps and values must have the same non-zero length",
        ));
    }
    let bucket = bucket_ms as i64;
    let mut runs = Vec::with_capacity(rounds.max(1) as usize);
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let mut map: FxHashMap<(i64, i64), FoldState> = FxHashMap::default();
        for i in 0..keys.len() {
            let v = values[i];
            let slot = map
                .entry((keys[i] as i64, (timestamps_ms[i] as i64).div_euclid(bucket)))
                .or_insert(FoldState {
                    sum: 0.0,
                    count: 0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                });
            slot.sum += v;
            slot.count += 1;
            slot.min = slot.min.min(v);
            slot.max = slot.max.max(v);
        }
        let elapsed = started.elapsed().as_nanos() as f64;
        let total: u64 = map.values().map(|s| s.count).sum();
        if total != keys.len() as u64 {
            return Err(js_error("INTERNAL", "the ceiling fold lost events"));
        }
        runs.push(elapsed / keys.len() as f64);
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}
