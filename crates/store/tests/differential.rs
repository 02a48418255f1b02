//! Differential test of the store: random events in random batches; after every commit,
//! every window of every key, for every exact aggregation, at two bucket sizes (one with
//! a non-epoch origin), equals a naive recompute from the raw rows under the
//! bucket-overlap rule of docs/semantics.md section 5.

use tessera_core::{AggValue, Item};
use tessera_store::{
    AggregationSpec, BucketStore, CommitMode, CommitRecords, KeyColumn, RuleSpec, SeriesBatch,
    SeriesSpec, StoreOptions, ValueColumn, ValueKind, WindowRead,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
mod common;

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const KEYS: usize = 12;

use common::TestRng;

#[derive(Clone)]
struct Row {
    key: usize,
    t: i64,
    value: f64, // NaN = null; multiples of 0.25 so sums are exact in any order
    by: f64,
    text: Option<String>,
    vector: [f64; 3],
}

fn agg(kind: &str, n: Option<u32>) -> AggregationSpec {
    AggregationSpec {
        kind: kind.into(),
        n,
        ..AggregationSpec::default()
    }
}

const NUMERIC_KINDS: &[(&str, Option<u32>)] = &[
    ("sum", None),
    ("count", None),
    ("min", None),
    ("max", None),
    ("mean", None),
    ("var", None),
    ("var_sample", None),
    ("std", None),
    ("std_sample", None),
    ("min_by_n", Some(3)),
    ("max_by_n", Some(3)),
];

/// Two layouts: hourly on the epoch, and 1d buckets whose origin is 7h13m past it.
fn spans() -> [(i64, i64); 2] {
    [(HOUR, 0), (DAY, 7 * HOUR + 13 * 60_000)]
}

fn rules(kinds: &[(&str, Option<u32>)]) -> Vec<RuleSpec> {
    rules_at(kinds, &spans())
}

fn rules_at(kinds: &[(&str, Option<u32>)], spans: &[(i64, i64)]) -> Vec<RuleSpec> {
    let mut out = Vec::new();
    for &(size, origin) in spans {
        for (kind, n) in kinds {
            out.push(RuleSpec {
                aggregation: agg(kind, *n),
                bucket_size_ms: size,
                bucket_origin_ms: origin,
                retention_ms: 7 * DAY,
            });
        }
    }
    out
}

fn description() -> Vec<SeriesSpec> {
    vec![
        SeriesSpec {
            id: "numbers".into(),
            value_kind: ValueKind::Number,
            vector_dim: None,
            rules: rules(NUMERIC_KINDS),
        },
        // Only sum/count/mean/min/max: the store folds these through one summary per
        // bucket (its fast path), which must agree with the recompute as well.
        SeriesSpec {
            id: "summarised".into(),
            value_kind: ValueKind::Number,
            vector_dim: None,
            rules: rules(&NUMERIC_KINDS[..5]),
        },
        // One summary layout with integer keys: the prefetching fold (fed through a
        // selection here, all rows in reverse order).
        SeriesSpec {
            id: "summarised_hourly".into(),
            value_kind: ValueKind::Number,
            vector_dim: None,
            rules: rules_at(&NUMERIC_KINDS[..5], &spans()[..1]),
        },
        // Every numeric rule at one layout with integer keys: the prefetching fold of rule
        // states.
        SeriesSpec {
            id: "numbers_hourly".into(),
            value_kind: ValueKind::Number,
            vector_dim: None,
            rules: rules_at(NUMERIC_KINDS, &spans()[..1]),
        },
        // One summary layout with string keys: the summary table of interned keys.
        SeriesSpec {
            id: "summarised_daily_by_name".into(),
            value_kind: ValueKind::Number,
            vector_dim: None,
            rules: rules_at(&NUMERIC_KINDS[..5], &spans()[1..]),
        },
        SeriesSpec {
            id: "strings".into(),
            value_kind: ValueKind::String,
            vector_dim: None,
            rules: rules(&[
                ("count", None),
                ("min_by_n", Some(2)),
                ("max_by_n", Some(4)),
            ]),
        },
        SeriesSpec {
            id: "vectors".into(),
            value_kind: ValueKind::Vector,
            vector_dim: Some(3),
            rules: rules(&[("sum", None), ("mean", None), ("count", None)]),
        },
    ]
}

fn random_rows(rng: &mut TestRng, n: usize) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let null = rng.chance(0.1);
            let quarter = |rng: &mut TestRng| (rng.below(801) as f64 - 400.0) * 0.25;
            Row {
                key: rng.below(KEYS as u64) as usize,
                // Up to 9 days back, and a little past now (late and early events).
                t: NOW - rng.below((9 * DAY) as u64) as i64 + rng.below(HOUR as u64) as i64,
                value: if null { f64::NAN } else { quarter(rng) },
                by: (rng.below(50) as f64) - 25.0,
                text: (!rng.chance(0.1)).then(|| format!("v{}", rng.below(30))),
                vector: [quarter(rng), quarter(rng), quarter(rng)],
            }
        })
        .collect()
}

/// Naive aggregation of the raw values of one window.
fn oracle(kind: &str, n: Option<u32>, rows: &[&Row], strings: bool) -> AggValue {
    if strings {
        let present: Vec<&&Row> = rows.iter().filter(|r| r.text.is_some()).collect();
        return match kind {
            "count" => AggValue::Count(present.len() as u64),
            "min_by_n" | "max_by_n" => {
                let mut pairs: Vec<(f64, Item)> = present
                    .iter()
                    .map(|r| (r.by, Item::Text(r.text.clone().unwrap())))
                    .collect();
                ranked(kind, n.unwrap(), &mut pairs)
            }
            _ => unreachable!(),
        };
    }
    let values: Vec<f64> = rows
        .iter()
        .map(|r| r.value)
        .filter(|v| v.is_finite())
        .collect();
    let count = values.len() as f64;
    let mean = values.iter().sum::<f64>() / count;
    let m2: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let need = |min: usize, v: f64| {
        if values.len() >= min {
            AggValue::Number(v)
        } else {
            AggValue::Null
        }
    };
    match kind {
        "sum" => need(1, values.iter().sum()),
        "count" => AggValue::Count(values.len() as u64),
        "min" => need(1, values.iter().cloned().fold(f64::INFINITY, f64::min)),
        "max" => need(1, values.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
        "mean" => need(1, mean),
        "var" => need(2, m2 / count),
        "var_sample" => need(2, m2 / (count - 1.0)),
        "std" => need(2, (m2 / count).sqrt()),
        "std_sample" => need(2, (m2 / (count - 1.0)).sqrt()),
        "min_by_n" | "max_by_n" => {
            let mut pairs: Vec<(f64, Item)> = rows
                .iter()
                .filter(|r| r.value.is_finite())
                .map(|r| (r.by, Item::Number(r.value)))
                .collect();
            ranked(kind, n.unwrap(), &mut pairs)
        }
        _ => unreachable!(),
    }
}

fn ranked(kind: &str, n: u32, pairs: &mut [(f64, Item)]) -> AggValue {
    if pairs.is_empty() {
        return AggValue::Null;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    if kind == "max_by_n" {
        pairs.reverse();
    }
    AggValue::Items(pairs.iter().take(n as usize).map(|p| p.1.clone()).collect())
}

fn vector_oracle(kind: &str, rows: &[&Row]) -> AggValue {
    if kind == "count" {
        return AggValue::Count(rows.len() as u64);
    }
    if rows.is_empty() {
        return AggValue::Null;
    }
    let mut sum = [0.0; 3];
    for r in rows {
        for (s, v) in sum.iter_mut().zip(r.vector) {
            *s += v;
        }
    }
    if kind == "mean" {
        sum.iter_mut().for_each(|s| *s /= rows.len() as f64);
    }
    AggValue::Vector(sum.to_vec())
}

fn close_enough(kind: &str, got: &AggValue, want: &AggValue) -> bool {
    match (got, want) {
        (AggValue::Number(a), AggValue::Number(b))
            if kind.starts_with("var") || kind.starts_with("std") =>
        {
            (a - b).abs() <= 1e-12 * b.abs().max(1.0)
        }
        (AggValue::Vector(a), AggValue::Vector(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
        }
        _ => got == want,
    }
}

#[test]
fn every_window_of_every_key_matches_a_recompute_after_every_batch() {
    let mut rng = TestRng(7);
    let dir = tempfile::tempdir().unwrap();
    // Commits of a few hundred buckets and more are ingested as table files, smaller ones
    // go through the WAL and the memtable: the batches' random sizes take both paths, in
    // any interleaving.
    let options = StoreOptions {
        bulk_commit_buckets: 700,
        ..StoreOptions::default()
    };
    options.clock.pin(Some(NOW));
    let (mut store, report) = BucketStore::open(dir.path(), description(), options).unwrap();
    let mut table_files = 0;
    assert_eq!(report.new_series.len(), description().len());

    let windows = [HOUR, 3 * HOUR, DAY, 2 * DAY + 5 * HOUR, 7 * DAY];
    let query_times = [NOW, NOW - 5 * HOUR - 17 * 60_000, NOW - 3 * DAY];
    let int_keys: Vec<f64> = (0..KEYS).map(|k| k as f64).collect();
    let mut all: Vec<Row> = Vec::new();
    let mut checked = 0u64;

    for batch_number in 0..40 {
        let size = 1 + rng.below(400) as usize;
        let rows = random_rows(&mut rng, size);
        let keys: Vec<f64> = rows.iter().map(|r| r.key as f64).collect();
        let ts: Vec<f64> = rows.iter().map(|r| r.t as f64).collect();
        let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
        let by: Vec<f64> = rows.iter().map(|r| r.by).collect();
        let dict: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
        let codes: Vec<u32> = rows
            .iter()
            .map(|r| match &r.text {
                Some(t) => t[1..].parse().unwrap(),
                None => u32::MAX,
            })
            .collect();
        let string_keys: Vec<String> = (0..KEYS).map(|k| format!("user-{k}")).collect();
        let string_key_codes: Vec<u32> = rows.iter().map(|r| r.key as u32).collect();
        let vectors: Vec<f64> = rows.iter().flat_map(|r| r.vector).collect();
        let reversed: Vec<u32> = (0..rows.len() as u32).rev().collect();
        // A numeric series keyed by the integer keys.
        let numeric = |series_id, with_by: bool, selection| SeriesBatch {
            series_id,
            keys: vec![KeyColumn::Ints(&keys)],
            timestamps_ms: &ts,
            values: ValueColumn::Numbers(&values),
            by: with_by.then_some(by.as_slice()),
            selection,
        };
        let batches = [
            numeric("numbers_hourly", true, None),
            numeric("summarised_hourly", false, Some(reversed.as_slice())),
            SeriesBatch {
                series_id: "summarised_daily_by_name",
                keys: vec![KeyColumn::Strings {
                    dict: &string_keys,
                    codes: &string_key_codes,
                }],
                timestamps_ms: &ts,
                values: ValueColumn::Numbers(&values),
                by: None,
                selection: None,
            },
            numeric("numbers", true, None),
            numeric("summarised", false, None),
            SeriesBatch {
                series_id: "strings",
                keys: vec![KeyColumn::Strings {
                    dict: &string_keys,
                    codes: &string_key_codes,
                }],
                timestamps_ms: &ts,
                values: ValueColumn::Strings {
                    dict: &dict,
                    codes: &codes,
                },
                by: Some(&by),
                selection: None,
            },
            SeriesBatch {
                series_id: "vectors",
                keys: vec![KeyColumn::Ints(&keys)],
                timestamps_ms: &ts,
                values: ValueColumn::Vectors(&vectors),
                by: None,
                selection: None,
            },
        ];
        store.stage(&batches).unwrap();
        let commit = store
            .commit_staged(CommitRecords::default(), CommitMode::Merge)
            .unwrap();
        table_files += usize::from(commit.table_file);
        all.extend(rows);
        if batch_number % 9 == 4 {
            // Exercise the merge operator's full merge through compaction too.
            store.compact().unwrap();
        }

        for &now in &query_times {
            for (series, string_keys, strings) in [
                ("numbers", false, false),
                ("summarised", false, false),
                ("summarised_hourly", false, false),
                ("numbers_hourly", false, false),
                ("summarised_daily_by_name", true, false),
                ("strings", true, true),
                ("vectors", false, false),
            ] {
                let spec = description().into_iter().find(|s| s.id == series).unwrap();
                let mut reads = Vec::new();
                for rule in 0..spec.rules.len() {
                    for &w in &windows {
                        reads.push(WindowRead {
                            series_id: series.into(),
                            rule,
                            window_ms: w,
                        });
                    }
                }
                let answer = if string_keys {
                    let string_keys: Vec<String> = (0..KEYS).map(|k| format!("user-{k}")).collect();
                    let codes: Vec<u32> = (0..KEYS as u32).collect();
                    store
                        .read_windows(
                            &[KeyColumn::Strings {
                                dict: &string_keys,
                                codes: &codes,
                            }],
                            &reads,
                            now,
                            true,
                        )
                        .unwrap()
                } else {
                    store
                        .read_windows(&[KeyColumn::Ints(&int_keys)], &reads, now, true)
                        .unwrap()
                };
                for key in 0..KEYS {
                    for (i, read) in reads.iter().enumerate() {
                        let rule = &spec.rules[read.rule];
                        let (w, in_window) = common::window_rows(rule, now, read.window_ms, NOW);
                        let rows: Vec<&Row> = all
                            .iter()
                            .filter(|r| r.key == key && in_window(r.t))
                            .collect();
                        let kind = rule.aggregation.kind.as_str();
                        let want = if series == "vectors" {
                            vector_oracle(kind, &rows)
                        } else {
                            oracle(kind, rule.aggregation.n, &rows, strings)
                        };
                        let got = &answer.values[key * reads.len() + i];
                        assert!(
                            close_enough(kind, got, &want),
                            "batch {batch_number}, now {now}, series {series}, key {key}, {kind} \
                             at bucket {} ms, window {} ms: got {got:?}, want {want:?}",
                            rule.bucket_size_ms,
                            read.window_ms
                        );
                        let explanation =
                            answer.explanations.as_ref().unwrap()[key * reads.len() + i];
                        assert_eq!(explanation.first_bucket_start, w.first_start);
                        assert_eq!(explanation.last_bucket_start, w.last_start);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100_000, "checked {checked} windows");
    assert!(
        (8..=32).contains(&table_files),
        "{table_files} of 40 commits were table files"
    );
}
