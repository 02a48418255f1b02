//! Behaviour of the store around the data: reopening, format versions, series changes,
//! source positions, retention, atomic rejection of bad batches, replace commits.

use tessera_core::AggValue;
use tessera_store::{
    AggregationSpec, BucketStore, CommitMode, CommitRecords, DescribedSeries, KeyColumn,
    ResolverState, RuleSpec, SeriesBatch, SeriesSpec, SeriesSummary, SourcePosition,
    StoreErrorKind, StoreOptions, ValueColumn, ValueKind, WindowRead,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_767_225_600_000;

fn sum_series(id: &str, retention_ms: i64) -> SeriesSpec {
    SeriesSpec {
        id: id.into(),
        value_kind: ValueKind::Number,
        vector_dim: None,
        rules: vec![
            RuleSpec {
                aggregation: AggregationSpec {
                    kind: "sum".into(),
                    ..Default::default()
                },
                bucket_size_ms: HOUR,
                bucket_origin_ms: 0,
                retention_ms,
            },
            RuleSpec {
                aggregation: AggregationSpec {
                    kind: "count".into(),
                    ..Default::default()
                },
                bucket_size_ms: HOUR,
                bucket_origin_ms: 0,
                retention_ms,
            },
        ],
    }
}

fn pinned() -> StoreOptions {
    let options = StoreOptions::default();
    options.clock.pin(Some(NOW));
    options
}

fn ingest(store: &mut BucketStore, series: &str, keys: &[f64], ts: &[f64], values: &[f64]) {
    store
        .stage(&[SeriesBatch {
            series_id: series,
            keys: vec![KeyColumn::Ints(keys)],
            timestamps_ms: ts,
            values: ValueColumn::Numbers(values),
            by: None,
            selection: None,
        }])
        .unwrap();
}

fn sum_of(store: &BucketStore, series: &str, key: f64, window: i64) -> AggValue {
    store
        .read_windows(
            &[KeyColumn::Ints(&[key])],
            &[WindowRead {
                series_id: series.into(),
                rule: 0,
                window_ms: window,
            }],
            NOW,
            false,
        )
        .unwrap()
        .values
        .remove(0)
}

#[test]
fn data_and_positions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) =
            BucketStore::open(dir.path(), vec![sum_series("s", 7 * DAY)], pinned()).unwrap();
        ingest(
            &mut store,
            "s",
            &[1.0, 1.0, 2.0],
            &[(NOW - 10) as f64; 3],
            &[2.0, 3.0, 4.0],
        );
        let position = SourcePosition {
            source: "topic-a".into(),
            partition: 3,
            offset: 41,
        };
        store
            .commit_staged(
                CommitRecords {
                    positions: &[position],
                    ..Default::default()
                },
                CommitMode::Merge,
            )
            .unwrap();
    }
    let (store, report) =
        BucketStore::open(dir.path(), vec![sum_series("s", 7 * DAY)], pinned()).unwrap();
    assert_eq!(report.kept_series, vec!["s".to_string()]);
    assert_eq!(sum_of(&store, "s", 1.0, DAY), AggValue::Number(5.0));
    assert_eq!(sum_of(&store, "s", 2.0, DAY), AggValue::Number(4.0));
    assert_eq!(sum_of(&store, "s", 3.0, DAY), AggValue::Null);
    let positions = store.positions("topic-a").unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!((positions[0].partition, positions[0].offset), (3, 41));
    assert!(
        store.positions("topic").unwrap().is_empty(),
        "a prefix of a source name is another source"
    );
}

#[test]
fn uncommitted_folds_are_not_visible_and_not_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) =
            BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
        ingest(&mut store, "s", &[1.0], &[(NOW - 10) as f64], &[2.0]);
        assert_eq!(sum_of(&store, "s", 1.0, DAY), AggValue::Null);
        assert_eq!(store.staged(), (1, 1));
    }
    let (store, _) = BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
    assert_eq!(sum_of(&store, "s", 1.0, DAY), AggValue::Null);
}

#[test]
fn reopening_with_other_series_reports_new_and_orphaned_ones() {
    let dir = tempfile::tempdir().unwrap();
    drop(
        BucketStore::open(
            dir.path(),
            vec![sum_series("a", DAY), sum_series("b", DAY)],
            pinned(),
        )
        .unwrap(),
    );
    let (_, report) = BucketStore::open(
        dir.path(),
        vec![sum_series("b", DAY), sum_series("c", DAY)],
        pinned(),
    )
    .unwrap();
    assert_eq!(report.kept_series, vec!["b".to_string()]);
    assert_eq!(report.new_series, vec!["c".to_string()]);
    assert_eq!(report.orphaned_series, vec!["a".to_string()]);
}

#[test]
fn a_series_stored_with_another_value_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(BucketStore::open(dir.path(), vec![sum_series("a", DAY)], pinned()).unwrap());
    let mut strings = sum_series("a", DAY);
    strings.value_kind = ValueKind::String;
    strings.rules.truncate(0);
    strings.rules.push(RuleSpec {
        aggregation: AggregationSpec {
            kind: "approx_count_distinct".into(),
            ..Default::default()
        },
        bucket_size_ms: HOUR,
        bucket_origin_ms: 0,
        retention_ms: DAY,
    });
    let err = BucketStore::open(dir.path(), vec![strings], pinned())
        .err()
        .unwrap();
    assert_eq!(err.kind, StoreErrorKind::InvalidDescription);
    assert!(err.message.contains("'a'"), "{}", err.message);
}

#[test]
fn a_directory_of_another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(BucketStore::open(dir.path(), vec![sum_series("a", DAY)], pinned()).unwrap());
    {
        // Rewrite the format record as a future version would.
        let cfs = tessera_store::store_column_families();
        let mut options = rocksdb::Options::default();
        options.create_if_missing(false);
        let db = rocksdb::DB::open_cf(&options, dir.path(), cfs).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"format", [9, 0, 0, 0, 1]).unwrap();
    }
    let err = BucketStore::open(dir.path(), vec![sum_series("a", DAY)], pinned())
        .err()
        .unwrap();
    assert_eq!(err.kind, StoreErrorKind::IncompatibleFormat);
    assert!(err.message.contains("format 9"), "{}", err.message);
    let reads = format!("reads format {}", tessera_store::STORE_FORMAT_VERSION);
    assert!(err.message.contains(&reads), "{}", err.message);
}

#[test]
fn a_rocksdb_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let err = BucketStore::open(dir.path(), vec![sum_series("a", DAY)], pinned())
        .err()
        .unwrap();
    assert_eq!(err.kind, StoreErrorKind::IncompatibleFormat);
    assert!(
        err.message.contains("not a Tessera store"),
        "{}",
        err.message
    );
}

#[test]
fn stale_buckets_are_never_served_and_compaction_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let options = pinned();
    let clock = options.clock.clone();
    let (mut store, _) =
        BucketStore::open(dir.path(), vec![sum_series("s", DAY)], options).unwrap();
    // 48 hourly buckets of one key, the oldest 47 hours back.
    let ts: Vec<f64> = (0..48).map(|h| (NOW - h * HOUR) as f64).collect();
    ingest(&mut store, "s", &[1.0; 48], &ts, &[1.0; 48]);
    store
        .commit_staged(CommitRecords::default(), CommitMode::Merge)
        .unwrap();
    assert_eq!(store.bucket_entries(true).unwrap(), 48);

    // Retention keeps the largest window (1d) plus one bucket. A 2-day window asked at
    // now is served only from buckets that are not stale.
    let served = |store: &BucketStore| match sum_of(store, "s", 1.0, 2 * DAY) {
        AggValue::Number(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        served(&store),
        26.0,
        "24 hours of the day plus one bucket, plus the current hour"
    );

    // A day later, without anyone asking but a compaction, older buckets are gone.
    clock.pin(Some(NOW + DAY));
    store.compact().unwrap();
    let left = store.bucket_entries(true).unwrap();
    assert!(left < 48, "compaction removed stale buckets ({left} left)");
    assert_eq!(
        left, 2,
        "the buckets within 1d + 1 bucket of the new now are kept"
    );
}

#[test]
fn a_bad_batch_is_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = BucketStore::open(
        dir.path(),
        vec![sum_series("a", DAY), sum_series("b", DAY)],
        pinned(),
    )
    .unwrap();
    let good_ts = [(NOW - 5) as f64];
    let bad_ts = [f64::NAN];
    let err = store
        .stage(&[
            SeriesBatch {
                series_id: "a",
                keys: vec![KeyColumn::Ints(&[1.0])],
                timestamps_ms: &good_ts,
                values: ValueColumn::Numbers(&[1.0]),
                by: None,
                selection: None,
            },
            SeriesBatch {
                series_id: "b",
                keys: vec![KeyColumn::Ints(&[1.0])],
                timestamps_ms: &bad_ts,
                values: ValueColumn::Numbers(&[1.0]),
                by: None,
                selection: None,
            },
        ])
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::InvalidBatch);
    assert!(
        err.message.contains("series 'b'") && err.message.contains("row 0"),
        "{}",
        err.message
    );
    assert_eq!(store.staged(), (0, 0), "nothing of the call was folded");

    let err = store
        .stage(&[SeriesBatch {
            series_id: "a",
            keys: vec![KeyColumn::Ints(&[1.5])],
            timestamps_ms: &good_ts,
            values: ValueColumn::Numbers(&[1.0]),
            by: None,
            selection: None,
        }])
        .unwrap_err();
    assert!(err.message.contains("not an integer"), "{}", err.message);

    let err = store
        .stage(&[SeriesBatch {
            series_id: "zzz",
            keys: vec![KeyColumn::Ints(&[1.0])],
            timestamps_ms: &good_ts,
            values: ValueColumn::Numbers(&[1.0]),
            by: None,
            selection: None,
        }])
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::UnknownSeries);
}

#[test]
fn replace_commits_overwrite_and_merge_commits_add() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) =
        BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
    let ts = [(NOW - 10) as f64];
    ingest(&mut store, "s", &[1.0], &ts, &[5.0]);
    store
        .commit_staged(CommitRecords::default(), CommitMode::Merge)
        .unwrap();
    ingest(&mut store, "s", &[1.0], &ts, &[7.0]);
    store
        .commit_staged(CommitRecords::default(), CommitMode::Merge)
        .unwrap();
    assert_eq!(sum_of(&store, "s", 1.0, HOUR), AggValue::Number(12.0));
    ingest(&mut store, "s", &[1.0], &ts, &[3.0]);
    store
        .commit_staged(CommitRecords::default(), CommitMode::Replace)
        .unwrap();
    assert_eq!(sum_of(&store, "s", 1.0, HOUR), AggValue::Number(3.0));
}

#[test]
fn bulk_commits_merge_replace_mix_with_batched_ones_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = || StoreOptions {
        bulk_commit_buckets: 3,
        ..pinned()
    };
    let keys = [1.0, 2.0, 3.0];
    let ts = [(NOW - 10) as f64; 3];
    let sums = |store: &BucketStore| keys.map(|k| sum_of(store, "s", k, HOUR));
    {
        let (mut store, _) =
            BucketStore::open(dir.path(), vec![sum_series("s", DAY)], options()).unwrap();
        let commit = |store: &mut BucketStore, keys: &[f64], values: &[f64], mode| {
            ingest(store, "s", keys, &ts[..keys.len()], values);
            store
                .commit_staged(CommitRecords::default(), mode)
                .unwrap()
                .table_file
        };
        assert!(commit(
            &mut store,
            &keys,
            &[1.0, 2.0, 3.0],
            CommitMode::Merge
        ));
        assert!(!commit(&mut store, &[1.0], &[10.0], CommitMode::Merge));
        assert!(commit(&mut store, &keys, &[100.0; 3], CommitMode::Merge));
        assert_eq!(sums(&store), [111.0, 102.0, 103.0].map(AggValue::Number));
        assert!(commit(
            &mut store,
            &keys,
            &[5.0, 6.0, 7.0],
            CommitMode::Replace
        ));
        assert!(!commit(&mut store, &[2.0], &[1.0], CommitMode::Merge));
        assert_eq!(sums(&store), [5.0, 7.0, 7.0].map(AggValue::Number));
        // Source positions are written with their buckets in one batch, so a commit that
        // carries them is never a table file.
        ingest(&mut store, "s", &keys, &ts, &[1.0; 3]);
        let position = SourcePosition {
            source: "topic".into(),
            partition: 0,
            offset: 9,
        };
        assert!(
            !store
                .commit_staged(
                    CommitRecords {
                        positions: &[position],
                        ..Default::default()
                    },
                    CommitMode::Merge,
                )
                .unwrap()
                .table_file
        );
    }
    // A file a killed process left before ingesting it is not part of the store.
    std::fs::write(dir.path().join("bulk").join("commit.sst"), b"torn").unwrap();
    let (store, _) = BucketStore::open(dir.path(), vec![sum_series("s", DAY)], options()).unwrap();
    assert_eq!(sums(&store), [6.0, 8.0, 8.0].map(AggValue::Number));
    assert_eq!(store.positions("topic").unwrap()[0].offset, 9);
    assert_eq!(
        std::fs::read_dir(dir.path().join("bulk")).unwrap().count(),
        0
    );
}

#[test]
fn selection_and_null_keys_choose_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) =
        BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
    let ts = [(NOW - 10) as f64; 4];
    store
        .stage(&[SeriesBatch {
            series_id: "s",
            keys: vec![KeyColumn::Ints(&[1.0, 1.0, f64::NAN, 1.0])],
            timestamps_ms: &ts,
            values: ValueColumn::Numbers(&[1.0, 10.0, 100.0, 1000.0]),
            by: None,
            selection: Some(&[1, 2, 3]),
        }])
        .unwrap();
    store
        .commit_staged(CommitRecords::default(), CommitMode::Merge)
        .unwrap();
    assert_eq!(sum_of(&store, "s", 1.0, HOUR), AggValue::Number(1010.0));
}

#[test]
fn dead_letters_are_kept_with_their_commit_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let letter = |source: &str, partition: i32, offset: i64| tessera_store::DeadLetter {
        source: source.into(),
        partition,
        offset,
        reason: format!("field 'amount' is not a number at {offset}"),
        field: Some("amount".into()),
        raw: vec![b'{', 0xff, b'}'],
        received_at_ms: NOW,
    };
    {
        let (mut store, _) =
            BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
        ingest(&mut store, "s", &[1.0], &[(NOW - 1) as f64], &[2.0]);
        store
            .commit_staged(
                CommitRecords {
                    positions: &[SourcePosition {
                        source: "t".into(),
                        partition: 0,
                        offset: 12,
                    }],
                    dead_letters: &[letter("t", 0, 11), letter("t", -1, 3), letter("t2", 0, 1)],
                    ..Default::default()
                },
                CommitMode::Merge,
            )
            .unwrap();
    }
    let (store, _) = BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
    assert_eq!(store.dead_letter_count(None).unwrap(), 3);
    assert_eq!(store.dead_letter_count(Some("t")).unwrap(), 2);
    let kept = store.dead_letters(Some("t"), 10).unwrap();
    assert_eq!(
        kept,
        vec![letter("t", -1, 3), letter("t", 0, 11)],
        "ordered by partition, offset"
    );
    assert_eq!(store.dead_letters(None, 1).unwrap().len(), 1);
    assert_eq!(sum_of(&store, "s", 1.0, DAY), AggValue::Number(2.0));
}

#[test]
fn a_commit_of_batches_writes_its_own_rows_and_never_the_staged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) =
        BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
    // Staged rows of key 1, then a commit of a batch of key 2 with a position.
    ingest(&mut store, "s", &[1.0], &[(NOW - 1) as f64], &[5.0]);
    let batch = [SeriesBatch {
        series_id: "s",
        keys: vec![KeyColumn::Ints(&[2.0, 2.0])],
        timestamps_ms: &[(NOW - 1) as f64, (NOW - 2) as f64],
        values: ValueColumn::Numbers(&[3.0, 4.0]),
        by: None,
        selection: None,
    }];
    let position = SourcePosition {
        source: "topic".into(),
        partition: 0,
        offset: 2,
    };
    let report = store
        .commit_batches(
            &batch,
            CommitRecords {
                positions: std::slice::from_ref(&position),
                ..Default::default()
            },
            CommitMode::Merge,
        )
        .unwrap();
    assert_eq!(report.rows, 2);
    assert_eq!(sum_of(&store, "s", 2.0, DAY), AggValue::Number(7.0));
    assert_eq!(
        sum_of(&store, "s", 1.0, DAY),
        AggValue::Null,
        "staged, not committed"
    );
    assert_eq!(store.staged(), (1, 1));
    assert_eq!(store.positions("topic").unwrap(), vec![position]);
    // A bad batch writes nothing, its records neither.
    let bad = [SeriesBatch {
        series_id: "nope",
        ..batch[0].clone()
    }];
    let other = SourcePosition {
        source: "other".into(),
        partition: 0,
        offset: 1,
    };
    assert!(store
        .commit_batches(
            &bad,
            CommitRecords {
                positions: std::slice::from_ref(&other),
                ..Default::default()
            },
            CommitMode::Merge,
        )
        .is_err());
    assert_eq!(store.positions("other").unwrap(), vec![]);
    // The staged rows are written by their own commit.
    assert_eq!(
        store
            .commit_staged(CommitRecords::default(), CommitMode::Merge)
            .unwrap()
            .rows,
        1
    );
    assert_eq!(sum_of(&store, "s", 1.0, DAY), AggValue::Number(5.0));
    assert_eq!(store.staged(), (0, 0));
}

#[test]
fn resolver_states_and_series_summaries_are_records_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let summary = SeriesSummary {
        namespace: "transaction".into(),
        group_key: vec!["user_id".into()],
        column: Some("amount".into()),
        filters: vec![],
        aggregations: vec!["sum per 1h".into(), "count per 1h".into()],
        description: "transaction.amount by user_id: sum per 1h, count per 1h".into(),
    };
    let state = ResolverState {
        resolver: "txns".into(),
        watermark_ms: Some(NOW - 5),
        replay_from: vec![(0, 17), (3, 2)],
    };
    {
        let (mut store, report) = BucketStore::open_described(
            dir.path(),
            vec![DescribedSeries {
                summary: Some(summary.clone()),
                ..sum_series("s", DAY).into()
            }],
            pinned(),
        )
        .unwrap();
        assert_eq!(report.summaries.get("s"), Some(&summary));
        assert_eq!(store.resolver_state("txns").unwrap(), None);
        store
            .commit_batches(
                &[],
                CommitRecords {
                    resolver_states: std::slice::from_ref(&state),
                    ..Default::default()
                },
                CommitMode::Merge,
            )
            .unwrap();
    }
    // Reopened without the series: it is orphaned and still described.
    let (store, report) =
        BucketStore::open(dir.path(), vec![sum_series("t", DAY)], pinned()).unwrap();
    assert_eq!(report.orphaned_series, vec!["s".to_string()]);
    assert_eq!(report.summaries.get("s"), Some(&summary));
    assert_eq!(store.resolver_state("txns").unwrap(), Some(state));
}

#[test]
fn a_failed_commit_keeps_the_staged_rows_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) =
        BucketStore::open(dir.path(), vec![sum_series("s", DAY)], pinned()).unwrap();
    ingest(&mut store, "s", &[1.0, 1.0], &[NOW as f64; 2], &[2.0, 3.0]);
    // A resolver state without a name is refused, so the whole write is.
    let nameless = [ResolverState {
        resolver: String::new(),
        watermark_ms: None,
        replay_from: vec![],
    }];
    let refused = store.commit_staged(
        CommitRecords {
            resolver_states: &nameless,
            ..Default::default()
        },
        CommitMode::Merge,
    );
    assert!(refused.is_err(), "the nameless resolver state is refused");
    assert_eq!(store.staged(), (2, 1), "the staged rows are still there");
    assert_eq!(
        sum_of(&store, "s", 1.0, DAY),
        AggValue::Null,
        "nothing was written"
    );

    let report = store
        .commit_staged(CommitRecords::default(), CommitMode::Merge)
        .unwrap();
    assert_eq!(report.rows, 2);
    assert_eq!(store.staged(), (0, 0));
    assert_eq!(sum_of(&store, "s", 1.0, DAY), AggValue::Number(5.0));
}
