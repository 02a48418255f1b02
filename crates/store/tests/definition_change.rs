//! Definition changes (docs/semantics.md sections 5.3 and 9.4): a series reopened with other
//! rules keeps every bucket that is still valid, and its coverage records say exactly
//! which windows became incomplete. Each case asserts the stored values (against the raw
//! rows it wrote) and the coverage.

use tessera_core::{AggValue, BucketSpan};

mod common;
use tessera_store::{
    AggregationSpec, BackfillLayout, BackfillOptions, BucketStore, CommitMode, CommitRecords,
    DescribedSeries, KeyColumn, OpenReport, RuleSpec, SeriesBatch, SeriesSpec, StoreOptions,
    ValueColumn, ValueKind, WindowRead,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z
const T0: i64 = 1_767_225_600_000;
/// When each store is first opened: its rules are complete from `T0` on, so a backfill
/// of the history (up to `T0`) makes them complete.
const FIRST_OPEN: i64 = T0 - 1;

fn rule(kind: &str, bucket_size_ms: i64, retention_ms: i64) -> RuleSpec {
    RuleSpec {
        aggregation: AggregationSpec {
            kind: kind.into(),
            ..Default::default()
        },
        bucket_size_ms,
        bucket_origin_ms: 0,
        retention_ms,
    }
}

fn series(rules: Vec<RuleSpec>) -> SeriesSpec {
    SeriesSpec {
        id: "s".into(),
        value_kind: ValueKind::Number,
        vector_dim: None,
        rules,
    }
}

fn at(now: i64) -> StoreOptions {
    let options = StoreOptions::default();
    options.clock.pin(Some(now));
    options
}

fn open(dir: &std::path::Path, rules: Vec<RuleSpec>, now: i64) -> (BucketStore, OpenReport) {
    BucketStore::open(dir, vec![series(rules)], at(now)).unwrap()
}

/// Commits rows (key 1) at the given times with the given values.
fn commit(store: &mut BucketStore, rows: &[(i64, f64)]) {
    commit_to(store, "s", rows);
}

/// Commits rows (key 1) to the series `series_id`.
fn commit_to(store: &mut BucketStore, series_id: &str, rows: &[(i64, f64)]) {
    let keys = vec![1.0; rows.len()];
    let ts: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
    let values: Vec<f64> = rows.iter().map(|r| r.1).collect();
    store
        .commit_batches(
            &[SeriesBatch {
                series_id,
                keys: vec![KeyColumn::Ints(&keys)],
                timestamps_ms: &ts,
                values: ValueColumn::Numbers(&values),
                by: None,
                selection: None,
            }],
            CommitRecords::default(),
            CommitMode::Merge,
        )
        .unwrap();
}

/// The value of requested rule `rule` over `window` at `now`, for key 1.
fn value(store: &BucketStore, rule: usize, window: i64, now: i64) -> AggValue {
    store
        .read_windows(
            &[KeyColumn::Ints(&[1.0])],
            &[WindowRead {
                series_id: "s".into(),
                rule,
                window_ms: window,
            }],
            now,
            false,
        )
        .unwrap()
        .values
        .remove(0)
}

/// Where requested rule `rule`'s window is complete from, if it reads a bucket before
/// that point at `now`.
fn incomplete_until(store: &BucketStore, rule: usize, window: i64, now: i64) -> Option<i64> {
    let read = WindowRead {
        series_id: "s".into(),
        rule,
        window_ms: window,
    };
    let coverage = store.window_coverage(&[read], now).unwrap().remove(0);
    coverage
        .is_incomplete()
        .then(|| coverage.complete_from_ms.unwrap())
}

/// Backfills every active layout of the series with `rows`, from the default lower bound
/// to `upper` (rounded up to each layout's edge).
fn backfill(store: &BucketStore, rows: &[(i64, f64)], upper: i64) {
    let sizes: Vec<i64> = store.series()[0]
        .layouts
        .iter()
        .map(|l| l.span.size_ms())
        .collect();
    let layouts: Vec<BackfillLayout> = sizes
        .iter()
        .map(|&bucket_size_ms| BackfillLayout {
            series_id: "s".into(),
            bucket_size_ms,
        })
        .collect();
    let ranges = store.backfill_ranges(&layouts, None, Some(upper)).unwrap();
    let mut run = store
        .begin_backfill(&ranges, BackfillOptions::default())
        .unwrap();
    let keys = vec![1.0; rows.len()];
    let ts: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
    let values: Vec<f64> = rows.iter().map(|r| r.1).collect();
    run.fold(&[SeriesBatch {
        series_id: "s",
        keys: vec![KeyColumn::Ints(&keys)],
        timestamps_ms: &ts,
        values: ValueColumn::Numbers(&values),
        by: None,
        selection: None,
    }])
    .unwrap();
    run.finish(store).unwrap();
}

/// Hourly rows over the two days before `T0`, valued 1, 2, 3, ...
fn history() -> Vec<(i64, f64)> {
    (0..48)
        .map(|i| (T0 - 48 * HOUR + i * HOUR + 60_000, (i + 1) as f64))
        .collect()
}

fn sum_of(rows: &[(i64, f64)], from: i64, to: i64) -> f64 {
    rows.iter()
        .filter(|r| r.0 >= from && r.0 < to)
        .map(|r| r.1)
        .sum()
}

#[test]
fn an_unchanged_definition_keeps_everything_and_reports_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (mut store, _) = open(dir.path(), vec![rule("sum", HOUR, 7 * DAY)], T0);
        commit(&mut store, &rows);
    }
    let (store, report) = open(dir.path(), vec![rule("sum", HOUR, 7 * DAY)], T0 + HOUR);
    assert_eq!(report.kept_series, vec!["s".to_string()]);
    assert!(report.changed_series.is_empty());
    assert_eq!(
        value(&store, 0, 7 * DAY, T0),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
    // Registered at T0: complete from the next hour edge, as before the reopen.
    assert_eq!(
        incomplete_until(&store, 0, 7 * DAY, T0 + HOUR),
        Some(T0 + HOUR)
    );
}

#[test]
fn an_added_aggregation_keeps_the_old_buckets_and_starts_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (mut store, _) = open(dir.path(), vec![rule("sum", HOUR, 7 * DAY)], FIRST_OPEN);
        backfill(&store, &rows, T0);
        commit(&mut store, &[(T0 + 10 * 60_000, 100.0)]);
    }
    let now = T0 + 30 * 60_000;
    // The mean comes first in the new description: requested indexes differ from the
    // stored ones.
    let (mut store, report) = open(
        dir.path(),
        vec![rule("mean", HOUR, 7 * DAY), rule("sum", HOUR, 7 * DAY)],
        now,
    );
    assert_eq!(report.changed_series.len(), 1);
    let change = &report.changed_series[0];
    assert_eq!(change.added, vec![rule("mean", HOUR, 7 * DAY)]);
    assert!(change.retired.is_empty() && change.widened.is_empty());
    let stored = &store.series()[0].spec.rules;
    assert_eq!(stored[0].aggregation.kind, "sum");
    assert_eq!(stored[1].aggregation.kind, "mean");

    // The sum kept its buckets (one-state records) and the mean has none yet.
    let all = sum_of(&rows, 0, T0) + 100.0;
    assert_eq!(value(&store, 1, 7 * DAY, now), AggValue::Number(all));
    assert_eq!(value(&store, 0, 7 * DAY, now), AggValue::Null);
    // The sum stays complete (its backfill reached back); the mean is complete from
    // the hour after the reopen.
    assert_eq!(incomplete_until(&store, 1, 7 * DAY, now), None);
    assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), Some(T0 + HOUR));

    // A row in the bucket that already holds a one-state record: its two-state operand
    // merges onto it, before and after compaction.
    commit(&mut store, &[(T0 + 20 * 60_000, 50.0)]);
    for _ in 0..2 {
        assert_eq!(value(&store, 1, 7 * DAY, now), AggValue::Number(all + 50.0));
        assert_eq!(value(&store, 0, HOUR, now), AggValue::Number(50.0));
        let buckets = store
            .read_buckets("s", &[KeyColumn::Ints(&[1.0])], T0, T0)
            .unwrap();
        assert_eq!(
            buckets[0].values,
            vec![(0, AggValue::Number(50.0)), (1, AggValue::Number(150.0))]
        );
        // An older bucket's record is shorter than the layout: the mean reads empty.
        let old = store
            .read_buckets("s", &[KeyColumn::Ints(&[1.0])], T0 - HOUR, T0 - HOUR)
            .unwrap();
        assert_eq!(
            old[0].values,
            vec![(0, AggValue::Null), (1, AggValue::Number(48.0))]
        );
        store.compact().unwrap();
    }

    // A backfill of the layout, through the bucket holding the clock, completes both
    // rules and rebuilds the mean.
    let mut all_rows = rows.clone();
    all_rows.extend([(T0 + 10 * 60_000, 100.0), (T0 + 20 * 60_000, 50.0)]);
    backfill(&store, &all_rows, now);
    assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), None);
    assert_eq!(incomplete_until(&store, 1, 7 * DAY, now), None);
    assert_eq!(value(&store, 1, 7 * DAY, now), AggValue::Number(all + 50.0));
    let before_now = T0 - 1;
    let mean = sum_of(&rows, T0 - 24 * HOUR, T0) / 24.0;
    assert_eq!(value(&store, 0, DAY, before_now), AggValue::Number(mean));
    // The hour window reads the bucket before the clock's too: (48 + 100 + 50) / 3.
    assert_eq!(value(&store, 0, HOUR, now), AggValue::Number(66.0));
}

#[test]
fn a_retired_rule_keeps_its_slot_and_a_re_added_one_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (store, _) = open(
            dir.path(),
            vec![rule("sum", HOUR, 7 * DAY), rule("count", HOUR, 7 * DAY)],
            FIRST_OPEN,
        );
        backfill(&store, &rows, T0);
    }
    let now = T0 + 10 * 60_000;
    {
        let (mut store, report) = open(dir.path(), vec![rule("count", HOUR, 7 * DAY)], now);
        let change = &report.changed_series[0];
        assert_eq!(change.retired, vec![rule("sum", HOUR, 7 * DAY)]);
        assert!(change.added.is_empty());
        // The count (stored slot 1) is read through requested index 0.
        assert_eq!(value(&store, 0, 7 * DAY, now), AggValue::Count(48));
        assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), None);
        assert!(value_of_rule_1_is_refused(&store, now));
        // Rows after the retirement feed the count only; the sum's slot gets an empty
        // state.
        commit(&mut store, &[(T0 + 60_000, 7.0), (T0 - 60_000, 9.0)]);
        assert_eq!(value(&store, 0, 7 * DAY, now), AggValue::Count(50));
        let buckets = store
            .read_buckets("s", &[KeyColumn::Ints(&[1.0])], T0, T0)
            .unwrap();
        assert_eq!(buckets[0].values, vec![(0, AggValue::Count(1))]);
    }
    let later = T0 + 2 * HOUR;
    let (store, report) = open(
        dir.path(),
        vec![rule("count", HOUR, 7 * DAY), rule("sum", HOUR, 7 * DAY)],
        later,
    );
    // Requested again: a new rule at the end of the stored list, never the old slot.
    let change = &report.changed_series[0];
    assert_eq!(change.added, vec![rule("sum", HOUR, 7 * DAY)]);
    let stored: Vec<&str> = store.series()[0]
        .spec
        .rules
        .iter()
        .map(|r| r.aggregation.kind.as_str())
        .collect();
    assert_eq!(stored, vec!["sum", "count", "sum"]);
    assert_eq!(value(&store, 1, 7 * DAY, later), AggValue::Null);
    assert_eq!(
        incomplete_until(&store, 1, 7 * DAY, later),
        Some(T0 + 3 * HOUR)
    );
    assert_eq!(value(&store, 0, 7 * DAY, later), AggValue::Count(50));
    // A backfill rebuilds the re-added sum from the rows.
    let mut all_rows = rows.clone();
    all_rows.extend([(T0 + 60_000, 7.0), (T0 - 60_000, 9.0)]);
    backfill(&store, &all_rows, later + HOUR);
    assert_eq!(incomplete_until(&store, 1, 7 * DAY, later), None);
    assert_eq!(
        value(&store, 1, 7 * DAY, later),
        AggValue::Number(sum_of(&all_rows, 0, T0 + 2 * HOUR))
    );
    assert_eq!(value(&store, 0, 7 * DAY, later), AggValue::Count(50));
}

fn value_of_rule_1_is_refused(store: &BucketStore, now: i64) -> bool {
    store
        .read_windows(
            &[KeyColumn::Ints(&[1.0])],
            &[WindowRead {
                series_id: "s".into(),
                rule: 1,
                window_ms: DAY,
            }],
            now,
            false,
        )
        .is_err()
}

#[test]
fn a_widened_retention_is_complete_from_the_first_bucket_the_old_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (store, _) = open(dir.path(), vec![rule("sum", HOUR, DAY)], FIRST_OPEN);
        backfill(&store, &rows, T0);
    }
    let now = T0 + 5 * HOUR + 60_000;
    let (store, report) = open(dir.path(), vec![rule("sum", HOUR, 30 * DAY)], now);
    let change = &report.changed_series[0];
    assert!(change.added.is_empty() && change.retired.is_empty());
    assert_eq!(change.widened.len(), 1);
    assert_eq!(
        (change.widened[0].from_ms, change.widened[0].to_ms),
        (DAY, 30 * DAY)
    );
    // Buckets older than the old retention may already be gone.
    let span = BucketSpan::new(HOUR, 0).unwrap();
    let floor = span.first_fresh_start(DAY, now);
    assert_eq!(floor, T0 + 5 * HOUR - DAY - HOUR);
    assert_eq!(incomplete_until(&store, 0, 30 * DAY, now), Some(floor));
    // The old window reads only what the old retention kept, and stays complete.
    assert_eq!(incomplete_until(&store, 0, DAY, now), None);
    assert_eq!(
        value(&store, 0, DAY, now),
        AggValue::Number(sum_of(&rows, span.window(now, DAY).first_start, T0))
    );
    // A backfill with the new retention completes the wide window.
    backfill(&store, &rows, now);
    assert_eq!(incomplete_until(&store, 0, 30 * DAY, now), None);
    assert_eq!(
        value(&store, 0, 30 * DAY, now),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
}

#[test]
fn a_new_bucket_size_is_a_new_layout_that_starts_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (store, _) = open(dir.path(), vec![rule("sum", HOUR, 7 * DAY)], FIRST_OPEN);
        backfill(&store, &rows, T0);
    }
    let now = T0 + 3 * HOUR;
    let (store, report) = open(
        dir.path(),
        vec![rule("sum", DAY, 7 * DAY), rule("sum", HOUR, 7 * DAY)],
        now,
    );
    assert_eq!(
        report.changed_series[0].added,
        vec![rule("sum", DAY, 7 * DAY)]
    );
    // The new layout grew no retention of an existing one: the hourly rule is untouched.
    assert!(report.changed_series[0].widened.is_empty());
    assert_eq!(incomplete_until(&store, 1, 7 * DAY, now), None);
    assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), Some(T0 + DAY));
    assert_eq!(
        value(&store, 1, 7 * DAY, now),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
    assert_eq!(value(&store, 0, 7 * DAY, now), AggValue::Null);
    backfill(&store, &rows, now);
    assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), None);
    assert_eq!(
        value(&store, 0, 7 * DAY, now),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
}

#[test]
fn an_all_retired_layout_is_never_written_and_still_expires() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (store, _) = open(
            dir.path(),
            vec![rule("sum", HOUR, 2 * DAY), rule("sum", DAY, 3 * DAY)],
            FIRST_OPEN,
        );
        backfill(&store, &rows, T0);
        // 48 hourly buckets and 2 daily ones.
        assert_eq!(store.bucket_entries(true).unwrap(), 50);
    }
    let (mut store, report) = open(dir.path(), vec![rule("sum", HOUR, 2 * DAY)], T0);
    assert_eq!(
        report.changed_series[0].retired,
        vec![rule("sum", DAY, 3 * DAY)]
    );
    assert_eq!(store.series()[0].layouts.len(), 1);
    assert_eq!(store.series()[0].retired_layouts.len(), 1);
    // The hourly rule is untouched: its values and its coverage.
    assert_eq!(
        value(&store, 0, 2 * DAY, T0 - 1),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
    assert_eq!(incomplete_until(&store, 0, 2 * DAY, T0 - 1), None);
    commit(&mut store, &[(T0 + 60_000, 1.0)]);
    // One hourly bucket more, no daily one.
    assert_eq!(store.bucket_entries(true).unwrap(), 51);
    drop(store);
    // Three days and a bit on, every old hourly bucket (2 days + 1 hour kept) and the
    // daily ones (3 days + 1 day kept) have expired... except the daily bucket of the
    // last day, still within 3 days + 1 day of the clock.
    let later = T0 + 3 * DAY + HOUR;
    let (store, _) = open(dir.path(), vec![rule("sum", HOUR, 2 * DAY)], later);
    store.compact().unwrap();
    assert_eq!(store.bucket_entries(true).unwrap(), 1);
    let (store, _) = {
        drop(store);
        open(dir.path(), vec![rule("sum", HOUR, 2 * DAY)], later + DAY)
    };
    store.compact().unwrap();
    assert_eq!(store.bucket_entries(true).unwrap(), 0);
}

#[test]
fn a_store_of_the_previous_format_opens_and_reads_its_layout_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (mut store, _) = open(dir.path(), vec![rule("sum", HOUR, 7 * DAY)], T0);
        commit(&mut store, &rows);
        // Nothing left in the write-ahead log for a RocksDB without our merge operator.
        store.flush().unwrap();
    }
    // Rewrite the store as the previous version left it: format 2, and one coverage
    // record per layout instead of per rule.
    {
        let path = dir.path();
        let families = tessera_store::store_column_families();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, families).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(
            meta,
            b"format",
            [2, 0, 0, 0, tessera_core::STATE_FORMAT_VERSION],
        )
        .unwrap();
        let mut layout_key = b"coverage/s\0".to_vec();
        layout_key.extend_from_slice(&(HOUR as u64).to_be_bytes());
        let mut rule_key = layout_key.clone();
        rule_key.extend_from_slice(&0u32.to_be_bytes());
        db.delete_cf(meta, rule_key).unwrap();
        db.put_cf(meta, layout_key, (T0 - 2 * HOUR).to_le_bytes())
            .unwrap();
    }
    let now = T0 + HOUR;
    let (store, _) = open(
        dir.path(),
        vec![rule("sum", HOUR, 7 * DAY), rule("count", HOUR, 7 * DAY)],
        now,
    );
    assert_eq!(
        value(&store, 0, 7 * DAY, now),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
    // The sum reads its layout's record; the count has its own.
    assert_eq!(
        incomplete_until(&store, 0, 7 * DAY, now),
        Some(T0 - 2 * HOUR)
    );
    assert_eq!(
        incomplete_until(&store, 1, 7 * DAY, now),
        Some(T0 + 2 * HOUR)
    );
    drop(store);
    // The format record was upgraded.
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        dir.path(),
        tessera_store::store_column_families(),
        false,
    )
    .unwrap();
    let meta = db.cf_handle("meta").unwrap();
    let format = db.get_cf(meta, b"format").unwrap().unwrap();
    assert_eq!(
        &format[..4],
        &tessera_store::STORE_FORMAT_VERSION.to_le_bytes()
    );
}

#[test]
fn a_read_only_store_opened_with_a_description_previews_the_change_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    {
        let (store, _) = open(dir.path(), vec![rule("sum", HOUR, 7 * DAY)], FIRST_OPEN);
        backfill(&store, &rows, T0);
        store.flush().unwrap();
    }
    let now = T0 + 30 * 60_000;
    let described = vec![series(vec![
        rule("mean", HOUR, 7 * DAY),
        rule("sum", HOUR, 7 * DAY),
    ])
    .into()];
    let (store, report) =
        BucketStore::open_read_only_described(dir.path(), described, at(now)).unwrap();
    assert_eq!(
        report.changed_series[0].added,
        vec![rule("mean", HOUR, 7 * DAY)]
    );
    // Reads take the description's rule indexes.
    assert_eq!(
        value(&store, 1, 7 * DAY, now),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
    assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), Some(T0 + HOUR));
    assert_eq!(incomplete_until(&store, 1, 7 * DAY, now), None);
    drop(store);
    // Nothing was written: the plain read-only opening still has the stored rules only.
    let (store, report) = BucketStore::open_read_only(dir.path(), at(now)).unwrap();
    assert!(report.changed_series.is_empty());
    assert_eq!(store.series()[0].spec.rules.len(), 1);
}

#[test]
fn a_series_stored_under_a_former_id_is_adopted_with_its_buckets_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let rows = history();
    let mut old = series(vec![rule("sum", HOUR, 7 * DAY)]);
    old.id = "former".into();
    {
        let (mut store, _) = BucketStore::open(dir.path(), vec![old], at(T0)).unwrap();
        commit_to(&mut store, "former", &rows);
    }
    let now = T0 + 30 * 60_000;
    let described = DescribedSeries {
        former_ids: vec!["former".into(), "unknown".into()],
        ..series(vec![
            rule("sum", HOUR, 7 * DAY),
            rule("count", HOUR, 7 * DAY),
        ])
        .into()
    };
    {
        let (store, report) =
            BucketStore::open_described(dir.path(), vec![described.clone()], at(now)).unwrap();
        assert_eq!(report.kept_series, vec!["s".to_string()]);
        assert!(report.orphaned_series.is_empty() && report.new_series.is_empty());
        let change = &report.changed_series[0];
        assert_eq!(change.adopted_from.as_deref(), Some("former"));
        assert_eq!(change.added, vec![rule("count", HOUR, 7 * DAY)]);
        assert_eq!(
            value(&store, 0, 7 * DAY, now),
            AggValue::Number(sum_of(&rows, 0, T0))
        );
        // The coverage moved with the series: complete from the hour after it was first
        // registered, under its former id.
        assert_eq!(incomplete_until(&store, 0, 7 * DAY, now), Some(T0 + HOUR));
        assert_eq!(incomplete_until(&store, 1, 7 * DAY, now), Some(T0 + HOUR));
    }
    // Reopened: the series is stored under its new id only.
    let (store, report) =
        BucketStore::open_described(dir.path(), vec![described], at(now)).unwrap();
    assert_eq!(report.kept_series, vec!["s".to_string()]);
    assert!(report.changed_series.is_empty() && report.orphaned_series.is_empty());
    assert_eq!(
        value(&store, 0, 7 * DAY, now),
        AggValue::Number(sum_of(&rows, 0, T0))
    );
}

/// Random definition changes between random commits: after every reopen, every window of
/// every requested rule equals a recompute from the rows committed since the rule was
/// (last) registered. Windows stay within the smallest retention, so retention never
/// decides what a window reads.
#[test]
fn random_definition_changes_keep_what_each_rule_folded_since_it_was_registered() {
    use std::collections::{BTreeSet, HashMap};
    let kinds = ["sum", "count", "mean", "approx_count_distinct"];
    let sizes = [HOUR, 6 * HOUR];
    let universe: Vec<(&str, i64)> = kinds
        .iter()
        .flat_map(|&k| sizes.iter().map(move |&s| (k, s)))
        .collect();
    let mut rng = common::TestRng(0x5eed_0f51_07de);
    let dir = tempfile::tempdir().unwrap();
    // (step committed, key, time, value)
    let mut rows: Vec<(usize, u64, i64, f64)> = Vec::new();
    let mut since: HashMap<(&str, i64), usize> = HashMap::new();
    let mut clock = T0;
    for step in 0..30 {
        clock += rng.below(3 * HOUR as u64) as i64;
        let mut requested: Vec<(&str, i64)> = universe
            .iter()
            .copied()
            .filter(|_| rng.chance(0.5))
            .collect();
        if requested.is_empty() {
            requested.push(universe[rng.below(universe.len() as u64) as usize]);
        }
        for i in (1..requested.len()).rev() {
            requested.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let wanted: BTreeSet<(&str, i64)> = requested.iter().copied().collect();
        since.retain(|rule, _| wanted.contains(rule));
        for &rule in &requested {
            since.entry(rule).or_insert(step);
        }
        let specs: Vec<RuleSpec> = requested
            .iter()
            .map(|&(kind, size)| rule(kind, size, DAY * (1 + rng.below(2) as i64)))
            .collect();
        let (mut store, _) = open(dir.path(), specs, clock);

        let batch: Vec<(u64, i64, f64)> = (0..rng.below(40))
            .map(|_| {
                let key = 1 + rng.below(3);
                let t = clock - rng.below(DAY as u64) as i64 + rng.below(HOUR as u64) as i64;
                (key, t, rng.below(20) as f64)
            })
            .collect();
        if !batch.is_empty() {
            let keys: Vec<f64> = batch.iter().map(|r| r.0 as f64).collect();
            let ts: Vec<f64> = batch.iter().map(|r| r.1 as f64).collect();
            let values: Vec<f64> = batch.iter().map(|r| r.2).collect();
            store
                .commit_batches(
                    &[SeriesBatch {
                        series_id: "s",
                        keys: vec![KeyColumn::Ints(&keys)],
                        timestamps_ms: &ts,
                        values: ValueColumn::Numbers(&values),
                        by: None,
                        selection: None,
                    }],
                    CommitRecords::default(),
                    CommitMode::Merge,
                )
                .unwrap();
            rows.extend(batch.iter().map(|&(k, t, v)| (step, k, t, v)));
        }
        if rng.chance(0.2) {
            store.compact().unwrap();
        }

        for (index, &(kind, size)) in requested.iter().enumerate() {
            let span = BucketSpan::new(size, 0).unwrap();
            for window in [HOUR, 6 * HOUR, DAY] {
                let buckets = span.window(clock, window);
                for key in 1..=3u64 {
                    let values: Vec<f64> = rows
                        .iter()
                        .filter(|r| r.0 >= since[&(kind, size)] && r.1 == key)
                        .filter(|r| buckets.contains(span.start_of(r.2)))
                        .map(|r| r.3)
                        .collect();
                    let expected = match kind {
                        "sum" if values.is_empty() => AggValue::Null,
                        "sum" => AggValue::Number(values.iter().sum()),
                        "count" => AggValue::Count(values.len() as u64),
                        "mean" if values.is_empty() => AggValue::Null,
                        "mean" => {
                            AggValue::Number(values.iter().sum::<f64>() / values.len() as f64)
                        }
                        _ => AggValue::Count(
                            values
                                .iter()
                                .map(|v| *v as u64)
                                .collect::<BTreeSet<_>>()
                                .len() as u64,
                        ),
                    };
                    let got = store
                        .read_windows(
                            &[KeyColumn::Ints(&[key as f64])],
                            &[WindowRead {
                                series_id: "s".into(),
                                rule: index,
                                window_ms: window,
                            }],
                            clock,
                            false,
                        )
                        .unwrap()
                        .values
                        .remove(0);
                    assert_eq!(
                        got, expected,
                        "step {step}: {kind} per {size} ms, window {window} ms, key {key}"
                    );
                }
            }
        }
    }
}
