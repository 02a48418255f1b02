//! Point-in-time reads in the materialized mode (docs/semantics.md section 11) against an
//! oracle: each point's value must be what the online read serves at `e - 1 ms`, `e` the
//! edge of the bucket holding the point's time in the read's layout, one key and one read
//! at a time (`read_windows`), bit for bit, with the same explanation; and the windows
//! that reach buckets retention removed are listed, in row order. Random histories over
//! integer keys (negative ones, nulls, keys without data) and string keys of several
//! lengths, two bucket sizes (one with a non-epoch origin), and random points: on bucket
//! edges, many in one bucket of one key, before any data and past retention.

use tessera_core::BucketSpan;
use tessera_store::{
    AggregationSpec, BucketStore, CommitMode, CommitRecords, KeyColumn, RuleSpec, SeriesBatch,
    SeriesSpec, StoreOptions, ValueColumn, WindowRead,
};

mod common;
use common::TestRng;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const ORIGIN: i64 = 7 * HOUR + 13 * 60_000;

fn rule(kind: &str, n: Option<u32>, size: i64, origin: i64, retention: i64) -> RuleSpec {
    RuleSpec {
        aggregation: AggregationSpec {
            kind: kind.into(),
            n,
            ..AggregationSpec::default()
        },
        bucket_size_ms: size,
        bucket_origin_ms: origin,
        retention_ms: retention,
    }
}

fn description() -> Vec<SeriesSpec> {
    let numbers = |id: &str| SeriesSpec {
        id: id.into(),
        value_kind: tessera_store::ValueKind::Number,
        vector_dim: None,
        rules: vec![
            rule("sum", None, HOUR, 0, 2 * DAY),
            rule("count", None, HOUR, 0, 2 * DAY),
            rule("max", None, HOUR, 0, 2 * DAY),
            rule("mean", None, DAY, ORIGIN, 6 * DAY),
            rule("var", None, DAY, ORIGIN, 6 * DAY),
            rule("min_by_n", Some(2), DAY, ORIGIN, 6 * DAY),
        ],
    };
    vec![numbers("by_id"), numbers("by_name")]
}

/// Every rule of a series at a few windows.
fn reads_of(series: &str) -> Vec<WindowRead> {
    let spec = description().into_iter().find(|s| s.id == series).unwrap();
    let mut reads = Vec::new();
    for (rule, r) in spec.rules.iter().enumerate() {
        for window in [r.bucket_size_ms, 5 * HOUR + 1, 2 * DAY, 5 * DAY] {
            reads.push(WindowRead {
                series_id: series.into(),
                rule,
                window_ms: window,
            });
        }
    }
    reads
}

/// Integer keys: a few negative ones, and 20 more than the history has.
fn int_key(rng: &mut TestRng) -> f64 {
    rng.below(40) as f64 - 6.0
}

fn name_of(k: f64) -> String {
    // Names of several lengths, so that store order (length, then bytes) differs from
    // byte order.
    format!("u{}", (k as i64 + 6) * 7)
}

/// The query keys of `series`: the integers, or the names by code.
fn key_columns<'a>(
    series: &str,
    ids: &'a [f64],
    names: &'a [String],
    codes: &'a [u32],
) -> Vec<KeyColumn<'a>> {
    if series == "by_id" {
        vec![KeyColumn::Ints(ids)]
    } else {
        vec![KeyColumn::Strings { dict: names, codes }]
    }
}

#[test]
fn point_reads_equal_the_online_read_at_each_points_bucket_edge() {
    let mut rng = TestRng(11);
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        bulk_commit_buckets: 500,
        ..StoreOptions::default()
    };
    options.clock.pin(Some(NOW));
    let (mut store, _) = BucketStore::open(dir.path(), description(), options.clone()).unwrap();
    let names: Vec<String> = (-6..34).map(|k| name_of(k as f64)).collect();
    for batch in 0..12 {
        let n = 50 + rng.below(600) as usize;
        // Keys -6..13 have data; up to 9 days back and a little past now.
        let keys: Vec<f64> = (0..n).map(|_| rng.below(20) as f64 - 6.0).collect();
        let ts: Vec<f64> = (0..n)
            .map(|_| {
                (NOW - rng.below((9 * DAY) as u64) as i64 + rng.below(HOUR as u64) as i64) as f64
            })
            .collect();
        let values: Vec<f64> = (0..n)
            .map(|_| {
                if rng.chance(0.1) {
                    f64::NAN
                } else {
                    (rng.below(801) as f64 - 400.0) * 0.37
                }
            })
            .collect();
        let by: Vec<f64> = (0..n).map(|_| rng.below(50) as f64).collect();
        let codes: Vec<u32> = keys.iter().map(|&k| (k + 6.0) as u32).collect();
        store
            .stage(&[
                SeriesBatch {
                    series_id: "by_id",
                    keys: vec![KeyColumn::Ints(&keys)],
                    timestamps_ms: &ts,
                    values: ValueColumn::Numbers(&values),
                    by: Some(&by),
                    selection: None,
                },
                SeriesBatch {
                    series_id: "by_name",
                    keys: vec![KeyColumn::Strings {
                        dict: &names,
                        codes: &codes,
                    }],
                    timestamps_ms: &ts,
                    values: ValueColumn::Numbers(&values),
                    by: Some(&by),
                    selection: None,
                },
            ])
            .unwrap();
        store
            .commit_staged(CommitRecords::default(), CommitMode::Merge)
            .unwrap();
        if batch % 5 == 2 {
            store.compact().unwrap();
        }
    }

    let mut compared = 0usize;
    let mut with_data = 0usize;
    let mut stale_seen = 0usize;
    for round in 0..6 {
        // The engine clock moves: retention judges staleness by it.
        let clock = NOW - (round as i64) * 17 * HOUR;
        options.clock.pin(Some(clock));
        let points = 300 + rng.below(500) as usize;
        let mut ids = Vec::with_capacity(points);
        let mut times = Vec::with_capacity(points);
        for i in 0..points {
            let key = if rng.chance(0.03) {
                f64::NAN
            } else {
                int_key(&mut rng)
            };
            let back = rng.below((8 * DAY) as u64) as i64;
            let t = match i % 5 {
                // On an hour edge, on a day edge of the origin, or repeating the previous
                // point's key in the same hour.
                0 => (clock - back) / HOUR * HOUR,
                1 => BucketSpan::new(DAY, ORIGIN).unwrap().start_of(clock - back),
                2 if i > 0 => {
                    ids.push(ids[i - 1]);
                    times.push(times[i - 1] + (rng.below(60_000) as i64));
                    continue;
                }
                _ => clock - back,
            };
            ids.push(key);
            times.push(t);
        }
        let codes: Vec<u32> = ids
            .iter()
            .map(|&k| {
                if k.is_nan() {
                    u32::MAX
                } else {
                    (k + 6.0) as u32
                }
            })
            .collect();
        for series in ["by_id", "by_name"] {
            let reads = reads_of(series);
            let spec = description().into_iter().find(|s| s.id == series).unwrap();
            let answer = store
                .read_points(
                    &key_columns(series, &ids, &names, &codes),
                    &times,
                    &reads,
                    true,
                )
                .unwrap();
            let explanations = answer.explanations.as_ref().unwrap();
            let mut want_stale = Vec::new();
            for row in 0..points {
                for (r, read) in reads.iter().enumerate() {
                    let rule = &spec.rules[read.rule];
                    let span = BucketSpan::new(rule.bucket_size_ms, rule.bucket_origin_ms).unwrap();
                    let now = span.start_of(times[row]) - 1;
                    let online = store
                        .read_windows(
                            &key_columns(series, &ids[row..=row], &names, &codes[row..=row]),
                            std::slice::from_ref(read),
                            now,
                            true,
                        )
                        .unwrap();
                    let cell = row * reads.len() + r;
                    let where_ = format!(
                        "round {round}, {series}, row {row} (key {}, t {}), rule {} window {}",
                        ids[row], times[row], read.rule, read.window_ms
                    );
                    assert_eq!(answer.values[cell], online.values[0], "{where_}");
                    assert_eq!(
                        explanations[cell],
                        online.explanations.as_ref().unwrap()[0],
                        "{where_}"
                    );
                    let first = explanations[cell].first_bucket_start;
                    if span.is_stale(first, rule.retention_ms, clock) {
                        want_stale.push((cell, first));
                    }
                    with_data += usize::from(explanations[cell].buckets_merged > 0);
                    compared += 1;
                }
            }
            let got_stale: Vec<(usize, i64)> = answer
                .stale
                .iter()
                .map(|s| (s.cell, s.first_bucket_start))
                .collect();
            let differ = got_stale.iter().zip(&want_stale).position(|(a, b)| a != b);
            assert!(
                differ.is_none() && got_stale.len() == want_stale.len(),
                "round {round}, {series}: {} stale windows listed, {} expected; first difference at {differ:?}: {:?} vs {:?}",
                got_stale.len(),
                want_stale.len(),
                differ.map(|i| got_stale[i]),
                differ.map(|i| want_stale[i]),
            );
            stale_seen += want_stale.len();
            // The first bucket kept is the first the clock does not judge stale.
            for s in &answer.stale {
                let read = &reads[s.cell % reads.len()];
                let rule = &spec.rules[read.rule];
                let span = BucketSpan::new(rule.bucket_size_ms, rule.bucket_origin_ms).unwrap();
                assert!(!span.is_stale(s.kept_from, rule.retention_ms, clock));
                assert!(span.is_stale(s.kept_from - rule.bucket_size_ms, rule.retention_ms, clock));
            }
        }
    }
    // The rounds compare merged values and reach retention, not only empty windows.
    assert!(compared > 50_000, "{compared}");
    assert!(with_data * 5 > compared, "{with_data} of {compared}");
    assert!(stale_seen > 1_000, "{stale_seen}");
}

#[test]
fn a_point_read_takes_one_time_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = BucketStore::open(dir.path(), description(), StoreOptions::default()).unwrap();
    let keys = [1.0, 2.0];
    let error = store
        .read_points(&[KeyColumn::Ints(&keys)], &[NOW], &reads_of("by_id"), false)
        .unwrap_err();
    assert!(
        error.message.contains("1 times for 2 keys"),
        "{}",
        error.message
    );
}
