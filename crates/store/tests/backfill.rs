//! Backfills (docs/semantics.md section 9): a run replaces, per key it returns and per
//! layout it rebuilds, every bucket of the widened range; keys it does not return keep
//! their buckets; later runs win. Checked against a model of the raw rows after every
//! step of random stream commits and random backfills, with spills forced small.

use std::collections::{BTreeMap, BTreeSet};

use tessera_core::AggValue;
use tessera_store::{
    AggregationSpec, BackfillLayout, BackfillOptions, BucketStore, CommitMode, CommitRecords,
    KeyColumn, RuleSpec, SeriesBatch, SeriesSpec, StoreOptions, ValueColumn, ValueKind,
};

mod common;
use common::TestRng;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const KEYS: u64 = 9;
/// The two layouts of the series: hourly on the epoch, and 6-hourly from a 90-minute origin.
const LAYOUTS: [(i64, i64); 2] = [(HOUR, 0), (6 * HOUR, 90 * 60_000)];

fn series() -> SeriesSpec {
    let mut rules = Vec::new();
    for (size, origin) in LAYOUTS {
        for kind in ["sum", "count"] {
            rules.push(RuleSpec {
                aggregation: AggregationSpec {
                    kind: kind.into(),
                    ..Default::default()
                },
                bucket_size_ms: size,
                bucket_origin_ms: origin,
                retention_ms: 30 * DAY,
            });
        }
    }
    SeriesSpec {
        id: "s".into(),
        value_kind: ValueKind::Number,
        vector_dim: None,
        rules,
    }
}

/// (key, time, value); NaN values are nulls.
type Row = (u64, i64, f64);

fn columns(rows: &[Row]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        rows.iter().map(|r| r.0 as f64).collect(),
        rows.iter().map(|r| r.1 as f64).collect(),
        rows.iter().map(|r| r.2).collect(),
    )
}

fn batch<'a>(keys: &'a [f64], ts: &'a [f64], values: &'a [f64]) -> SeriesBatch<'a> {
    SeriesBatch {
        series_id: "s",
        keys: vec![KeyColumn::Ints(keys)],
        timestamps_ms: ts,
        values: ValueColumn::Numbers(values),
        by: None,
        selection: None,
    }
}

/// Commits `rows` as a stream would: merged into what the buckets hold.
fn commit(store: &mut BucketStore, rows: &[Row]) {
    let (k, t, v) = columns(rows);
    store
        .commit_batches(
            &[batch(&k, &t, &v)],
            CommitRecords::default(),
            CommitMode::Merge,
        )
        .unwrap();
}

/// Both layouts of the series, as a backfill names them.
fn both_layouts() -> Vec<BackfillLayout> {
    LAYOUTS
        .iter()
        .map(|&(size, _)| BackfillLayout {
            series_id: "s".into(),
            bucket_size_ms: size,
        })
        .collect()
}

fn start_of(t: i64, (size, origin): (i64, i64)) -> i64 {
    (t - origin).div_euclid(size) * size + origin
}

/// The raw rows each (layout, key, bucket start) holds, by the documented rule.
#[derive(Default)]
struct Model {
    buckets: [BTreeMap<(u64, i64), Vec<f64>>; 2],
}

impl Model {
    fn add(&mut self, rows: &[Row]) {
        for &(key, t, value) in rows {
            for (l, layout) in LAYOUTS.iter().enumerate() {
                self.buckets[l]
                    .entry((key, start_of(t, *layout)))
                    .or_default()
                    .push(value);
            }
        }
    }

    /// A backfill with `rows` replacing `ranges[l]` of layout `l` for the keys the rows hold.
    fn backfill(&mut self, rows: &[Row], ranges: &[(i64, i64); 2]) {
        let keys: BTreeSet<u64> = rows.iter().map(|r| r.0).collect();
        for (l, &(from, to)) in ranges.iter().enumerate() {
            self.buckets[l].retain(|&(k, s), _| !(keys.contains(&k) && s >= from && s < to));
            for &(key, t, value) in rows {
                let s = start_of(t, LAYOUTS[l]);
                if s >= from && s < to {
                    self.buckets[l].entry((key, s)).or_default().push(value);
                }
            }
        }
    }
}

fn check(store: &BucketStore, model: &Model, step: &str) {
    for key in 0..KEYS {
        let k = [key as f64];
        let stored = store
            .read_buckets("s", &[KeyColumn::Ints(&k)], NOW - 40 * DAY, NOW + DAY)
            .unwrap();
        for (l, (size, _)) in LAYOUTS.iter().enumerate() {
            let mut expected: Vec<(i64, AggValue, AggValue)> = Vec::new();
            for ((_, start), values) in model.buckets[l].range((key, i64::MIN)..=(key, i64::MAX)) {
                let present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                if present.is_empty() {
                    continue; // a bucket of nulls only is not stored
                }
                expected.push((
                    *start,
                    AggValue::Number(present.iter().sum()),
                    AggValue::Count(present.len() as u64),
                ));
            }
            let actual: Vec<(i64, AggValue, AggValue)> = stored
                .iter()
                .filter(|b| b.size_ms == *size)
                .map(|b| (b.start, b.values[0].1.clone(), b.values[1].1.clone()))
                .collect();
            assert_eq!(actual, expected, "{step}: key {key}, layout {size} ms");
        }
    }
}

fn random_rows(rng: &mut TestRng, n: usize, from: i64, to: i64, keys: &[u64]) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let key = keys[rng.below(keys.len() as u64) as usize];
            let t = from + rng.below((to - from) as u64) as i64;
            // Quarters, so sums are exact in any order; a few nulls.
            let value = if rng.below(10) == 0 {
                f64::NAN
            } else {
                rng.below(40) as f64 * 0.25
            };
            (key, t, value)
        })
        .collect()
}

#[test]
fn random_backfills_replace_per_key_and_bucket_and_later_runs_win() {
    for seed in 0..6u64 {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::default();
        options.clock.pin(Some(NOW));
        let (mut store, _) = BucketStore::open(dir.path(), vec![series()], options).unwrap();
        let mut rng = TestRng(seed * 7919 + 1);
        let mut model = Model::default();
        let all_keys: Vec<u64> = (0..KEYS).collect();
        for step in 0..14 {
            if rng.below(3) > 0 {
                let n = 1 + rng.below(60) as usize;
                let rows = random_rows(&mut rng, n, NOW - 4 * DAY, NOW, &all_keys);
                commit(&mut store, &rows);
                model.add(&rows);
                check(&store, &model, &format!("seed {seed} step {step} (stream)"));
                continue;
            }
            // A backfill over a random range and a random subset of keys (a tagged run).
            let lower = NOW - 4 * DAY + rng.below(3 * DAY as u64) as i64;
            let upper = lower + 1 + rng.below(DAY as u64) as i64;
            let keys: Vec<u64> = all_keys
                .iter()
                .copied()
                .filter(|_| rng.below(2) == 0)
                .collect();
            let layouts = both_layouts();
            let ranges = store
                .backfill_ranges(&layouts, Some(lower), Some(upper))
                .unwrap();
            for (range, layout) in ranges.iter().zip(LAYOUTS) {
                assert_eq!(range.start_ms, start_of(lower, layout));
                assert_eq!((range.start_ms - layout.1).rem_euclid(layout.0), 0);
                assert_eq!((range.end_ms - layout.1).rem_euclid(layout.0), 0);
                assert!(range.end_ms >= upper && range.end_ms - upper < layout.0);
            }
            // The resolver is asked for the union of the widened ranges.
            let from = ranges.iter().map(|r| r.start_ms).min().unwrap();
            let to = ranges.iter().map(|r| r.end_ms).max().unwrap();
            let rows = if keys.is_empty() {
                Vec::new()
            } else {
                // A few rows outside the range, which the run must skip.
                let n = rng.below(80) as usize;
                random_rows(&mut rng, n, from - 2 * HOUR, to + 2 * HOUR, &keys)
            };
            let inside: Vec<Row> = rows
                .iter()
                .copied()
                .filter(|r| r.1 >= from && r.1 < to)
                .collect();
            let spill = 1 + rng.below(12) as usize;
            let mut run = store
                .begin_backfill(
                    &ranges,
                    BackfillOptions {
                        spill_buckets: spill,
                        ..BackfillOptions::default()
                    },
                )
                .unwrap();
            for chunk in rows.chunks(7) {
                let (k, t, v) = columns(chunk);
                run.fold(&[batch(&k, &t, &v)]).unwrap();
            }
            let report = run.finish(&store).unwrap();
            assert_eq!(report.rows, inside.len() as u64);
            assert_eq!(
                report.rows_outside_range,
                (rows.len() - inside.len()) as u64
            );
            model.backfill(
                &inside,
                &[
                    (ranges[0].start_ms, ranges[0].end_ms),
                    (ranges[1].start_ms, ranges[1].end_ms),
                ],
            );
            check(
                &store,
                &model,
                &format!("seed {seed} step {step} (backfill {lower}..{upper}, spill {spill})"),
            );
        }
        // Everything survives a reopen and a compaction.
        store.compact().unwrap();
        check(&store, &model, &format!("seed {seed} after compaction"));
    }
}

#[test]
fn default_bounds_cover_retention_and_stop_at_the_open_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default();
    let now = NOW + 25 * 60_000; // 00:25, inside the hourly bucket of 00:00
    options.clock.pin(Some(now));
    let (store, _) = BucketStore::open(dir.path(), vec![series()], options).unwrap();
    let layouts = [BackfillLayout {
        series_id: "s".into(),
        bucket_size_ms: HOUR,
    }];
    let ranges = store.backfill_ranges(&layouts, None, None).unwrap();
    assert_eq!(ranges[0].end_ms, NOW);
    assert_eq!(
        ranges[0].start_ms,
        start_of(now - ranges[0].retention_ms, LAYOUTS[0])
    );
    assert_eq!(ranges[0].retention_ms, 30 * DAY);
    // An unknown layout is refused by name.
    let bad = [BackfillLayout {
        series_id: "s".into(),
        bucket_size_ms: 2 * HOUR,
    }];
    let err = store.backfill_ranges(&bad, None, None).unwrap_err();
    assert!(
        err.message
            .contains("series 's' has no buckets of 7200000 ms"),
        "{}",
        err.message
    );
}

#[test]
fn an_unfinished_backfill_leaves_the_old_state_and_its_files_go_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let options = StoreOptions::default();
        options.clock.pin(Some(NOW));
        BucketStore::open(dir.path(), vec![series()], options)
            .unwrap()
            .0
    };
    let mut store = open();
    let old: Vec<Row> = vec![(1, NOW - 5 * HOUR, 2.0), (1, NOW - 3 * HOUR, 3.0)];
    commit(&mut store, &old);
    let mut model = Model::default();
    model.add(&old);
    let layouts = both_layouts();
    let ranges = store
        .backfill_ranges(&layouts, Some(NOW - DAY), Some(NOW))
        .unwrap();
    let mut run = store
        .begin_backfill(
            &ranges,
            BackfillOptions {
                spill_buckets: 1,
                ..BackfillOptions::default()
            },
        )
        .unwrap();
    let new: Vec<Row> = vec![(1, NOW - 4 * HOUR, 10.0), (2, NOW - 2 * HOUR, 1.0)];
    let (k, t, v) = columns(&new);
    run.fold(&[batch(&k, &t, &v)]).unwrap();
    // Spilled, not visible.
    check(&store, &model, "during the run");
    // A process that dies here leaves its files behind; forget the run without its Drop.
    std::mem::forget(run);
    drop(store);
    let staged = dir.path().join("backfill");
    assert!(std::fs::read_dir(&staged).unwrap().next().is_some());
    let store = open();
    assert_eq!(std::fs::read_dir(&staged).unwrap().count(), 0);
    check(&store, &model, "after reopening");
    // Running the same backfill again gives the answer of an uninterrupted run.
    let mut run = store
        .begin_backfill(&ranges, BackfillOptions::default())
        .unwrap();
    run.fold(&[batch(&k, &t, &v)]).unwrap();
    run.finish(&store).unwrap();
    model.backfill(
        &new,
        &[
            (ranges[0].start_ms, ranges[0].end_ms),
            (ranges[1].start_ms, ranges[1].end_ms),
        ],
    );
    check(&store, &model, "after the re-run");
}

#[test]
fn a_bad_batch_folds_nothing_and_a_series_outside_the_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default();
    options.clock.pin(Some(NOW));
    let mut other = series();
    other.id = "other".into();
    let (store, _) = BucketStore::open(dir.path(), vec![series(), other], options).unwrap();
    let ranges = store
        .backfill_ranges(
            &[BackfillLayout {
                series_id: "s".into(),
                bucket_size_ms: HOUR,
            }],
            Some(NOW - DAY),
            Some(NOW),
        )
        .unwrap();
    let mut run = store
        .begin_backfill(&ranges, BackfillOptions::default())
        .unwrap();
    let (k, t, v) = (
        vec![1.0, 2.0],
        vec![(NOW - HOUR) as f64, f64::INFINITY],
        vec![1.0, 2.0],
    );
    let err = run.fold(&[batch(&k, &t, &v)]).unwrap_err();
    assert!(
        err.message.contains("timestamp at row 1"),
        "{}",
        err.message
    );
    assert_eq!(run.rows(), 0);
    let mut wrong = batch(&k[..1], &t[..1], &v[..1]);
    wrong.series_id = "other";
    let err = run.fold(&[wrong]).unwrap_err();
    assert!(
        err.message
            .contains("series 'other' is not rebuilt by this backfill"),
        "{}",
        err.message
    );
}
