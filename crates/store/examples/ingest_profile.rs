//! Times the phases of batched ingest (fold, commit) without Node, for profiling:
//! `cargo run --release --example ingest_profile -- <keys> <events> <hours> [<aggregation>
//! [replace [<commit every> [<bulk commit buckets>]]]]`; the aggregation is `summary`
//! (sum/count/mean/min/max, the default), `percentile` or `cpc`.

use std::time::Instant;

use tessera_store::{
    AggregationSpec, BucketStore, CommitMode, CommitRecords, KeyColumn, RuleSpec, SeriesBatch,
    SeriesSpec, StoreOptions, ValueColumn, ValueKind,
};

const HOUR: i64 = 3_600_000;

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<u64> = raw
        .iter()
        .take(3)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let aggregation = raw.get(3).map_or("summary", String::as_str);
    let mode = match raw.get(4).map(String::as_str) {
        Some("replace") => CommitMode::Replace,
        _ => CommitMode::Merge,
    };
    let keys = *args.first().unwrap_or(&1_000_000);
    let events = *args.get(1).unwrap_or(&8_000_000) as usize;
    let hours = *args.get(2).unwrap_or(&8);
    let commit_every = raw
        .get(5)
        .map_or(1_048_576, |c| c.parse().expect("commit every"));
    let mut options = StoreOptions::default();
    if let Some(bulk) = raw.get(6) {
        options.bulk_commit_buckets = bulk.parse().expect("bulk commit buckets");
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = 1_767_225_600_000_f64;
    let step = (hours as f64 * HOUR as f64) / events as f64;
    let key_col: Vec<f64> = (0..events).map(|_| (random() % keys) as f64).collect();
    let ts: Vec<f64> = (0..events)
        .map(|i| start + (i as f64 * step).floor())
        .collect();
    let values: Vec<f64> = (0..events)
        .map(|_| (random() % 10_000) as f64 / 100.0)
        .collect();
    let aggregations: Vec<AggregationSpec> = match aggregation {
        "summary" => ["sum", "count", "mean", "min", "max"]
            .iter()
            .map(|kind| AggregationSpec {
                kind: (*kind).into(),
                ..Default::default()
            })
            .collect(),
        "percentile" => vec![AggregationSpec {
            kind: "approx_percentile".into(),
            quantile: Some(0.9),
            ..Default::default()
        }],
        "cpc" => vec![AggregationSpec {
            kind: "approx_count_distinct".into(),
            ..Default::default()
        }],
        other => panic!("unknown aggregation {other}"),
    };
    let rules = aggregations
        .into_iter()
        .map(|aggregation| RuleSpec {
            aggregation,
            bucket_size_ms: HOUR,
            bucket_origin_ms: 0,
            retention_ms: 30 * 24 * HOUR,
        })
        .collect();
    let series = SeriesSpec {
        id: "txn".into(),
        value_kind: ValueKind::Number,
        vector_dim: None,
        rules,
    };
    let dir = std::env::temp_dir().join(format!("tessera-profile-{}", std::process::id()));
    let (mut store, _) = BucketStore::open(&dir, vec![series], options).unwrap();
    let (mut fold_ns, mut commit_ns, mut buckets) = (0u128, 0u128, 0u64);
    let all = Instant::now();
    let cpu_before = thread_cpu_ns();
    let mut since = 0;
    for offset in (0..events).step_by(4096) {
        let end = (offset + 4096).min(events);
        let t = Instant::now();
        store
            .stage(&[SeriesBatch {
                series_id: "txn",
                keys: vec![KeyColumn::Ints(&key_col[offset..end])],
                timestamps_ms: &ts[offset..end],
                values: ValueColumn::Numbers(&values[offset..end]),
                by: None,
                selection: None,
            }])
            .unwrap();
        fold_ns += t.elapsed().as_nanos();
        since += end - offset;
        if since >= commit_every || end == events {
            let t = Instant::now();
            let report = store.commit_staged(CommitRecords::default(), mode).unwrap();
            commit_ns += t.elapsed().as_nanos();
            buckets += report.buckets_written;
            since = 0;
        }
    }
    let total = all.elapsed().as_nanos();
    let cpu = thread_cpu_ns() - cpu_before;
    println!(
        "events {events} keys {keys}: {:.2}M ev/s ({:.0} ns of this thread's CPU per event); fold {:.0} ns/event, commit {:.0} ns/bucket ({buckets} buckets, {:.2} per event)",
        events as f64 / total as f64 * 1e3,
        cpu as f64 / events as f64,
        fold_ns as f64 / events as f64,
        commit_ns as f64 / buckets as f64,
        buckets as f64 / events as f64
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CPU time of the calling thread in ns (Linux; 0 elsewhere). RocksDB's compactions run
/// on threads of their own and are not in it.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
