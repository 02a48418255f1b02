//! Reading a store that another handle holds open for writing: the read-only open takes
//! no lock, sees every commit made before it opened (buckets merged from their operands,
//! positions, dead letters, series), writes nothing, and refuses what is not a store.

use tessera_core::AggValue;
use tessera_store::{
    AggregationSpec, BucketStore, CommitMode, CommitRecords, DeadLetter, KeyColumn, RuleSpec,
    SeriesBatch, SeriesSpec, SourcePosition, StoreErrorKind, StoreOptions, ValueColumn, ValueKind,
    WindowRead,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_767_225_600_000;

fn sum_series(id: &str) -> SeriesSpec {
    SeriesSpec {
        id: id.into(),
        value_kind: ValueKind::Number,
        vector_dim: None,
        rules: vec![RuleSpec {
            aggregation: AggregationSpec {
                kind: "sum".into(),
                ..Default::default()
            },
            bucket_size_ms: HOUR,
            bucket_origin_ms: 0,
            retention_ms: DAY,
        }],
    }
}

fn pinned() -> StoreOptions {
    let options = StoreOptions::default();
    options.clock.pin(Some(NOW));
    options
}

fn commit(store: &mut BucketStore, key: f64, value: f64, offset: i64, letters: &[DeadLetter]) {
    store
        .stage(&[SeriesBatch {
            series_id: "s",
            keys: vec![KeyColumn::Ints(&[key])],
            timestamps_ms: &[(NOW - 1) as f64],
            values: ValueColumn::Numbers(&[value]),
            by: None,
            selection: None,
        }])
        .unwrap();
    store
        .commit_staged(
            CommitRecords {
                positions: &[SourcePosition {
                    source: "t".into(),
                    partition: 0,
                    offset,
                }],
                dead_letters: letters,
                ..Default::default()
            },
            CommitMode::Merge,
        )
        .unwrap();
}

fn sum_of(store: &BucketStore, key: f64) -> AggValue {
    store
        .read_windows(
            &[KeyColumn::Ints(&[key])],
            &[WindowRead {
                series_id: "s".into(),
                rule: 0,
                window_ms: DAY,
            }],
            NOW,
            false,
        )
        .unwrap()
        .values
        .remove(0)
}

fn letter(offset: i64) -> DeadLetter {
    DeadLetter {
        source: "t".into(),
        partition: 0,
        offset,
        reason: "not JSON".into(),
        field: None,
        raw: b"{oops".to_vec(),
        received_at_ms: NOW,
    }
}

#[test]
fn a_read_only_open_sees_the_commits_of_the_handle_that_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut writer, _) = BucketStore::open(dir.path(), vec![sum_series("s")], pinned()).unwrap();
    // Two commits into the same bucket: the reader must merge their operands.
    commit(&mut writer, 7.0, 2.5, 10, &[letter(3)]);
    commit(&mut writer, 7.0, 4.0, 20, &[letter(15)]);
    // The writer holds the lock: a second writable open fails, a read-only one does not.
    let locked = BucketStore::open(dir.path(), vec![sum_series("s")], pinned());
    assert!(locked.is_err(), "the store is locked by the writer");

    let (reader, _) = BucketStore::open_read_only(dir.path(), pinned()).unwrap();
    assert_eq!(sum_of(&reader, 7.0), AggValue::Number(6.5));
    assert_eq!(reader.positions("t").unwrap()[0].offset, 20);
    assert_eq!(reader.dead_letter_count(Some("t")).unwrap(), 2);
    assert_eq!(
        reader.dead_letters(None, 10).unwrap(),
        vec![letter(3), letter(15)]
    );
    let ids: Vec<&str> = reader.series().iter().map(|s| s.spec.id.as_str()).collect();
    assert_eq!(ids, ["s"]);

    // Later commits are not seen by a reader opened before them; a new reader sees them.
    commit(&mut writer, 7.0, 1.0, 30, &[]);
    assert_eq!(sum_of(&reader, 7.0), AggValue::Number(6.5));
    let (fresh, _) = BucketStore::open_read_only(dir.path(), pinned()).unwrap();
    assert_eq!(sum_of(&fresh, 7.0), AggValue::Number(7.5));
    assert_eq!(fresh.positions("t").unwrap()[0].offset, 30);
}

#[test]
fn a_read_only_store_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut writer, _) =
            BucketStore::open(dir.path(), vec![sum_series("s")], pinned()).unwrap();
        commit(&mut writer, 1.0, 1.0, 1, &[]);
    }
    let (mut reader, _) = BucketStore::open_read_only(dir.path(), pinned()).unwrap();
    fold_one(&mut reader);
    let refused = reader.commit_staged(CommitRecords::default(), CommitMode::Merge);
    assert!(refused.is_err(), "a commit on a read-only store fails");
    drop(reader);
    let (writer, _) = BucketStore::open(dir.path(), vec![sum_series("s")], pinned()).unwrap();
    assert_eq!(sum_of(&writer, 1.0), AggValue::Number(1.0));
}

fn fold_one(store: &mut BucketStore) {
    store
        .stage(&[SeriesBatch {
            series_id: "s",
            keys: vec![KeyColumn::Ints(&[1.0])],
            timestamps_ms: &[(NOW - 1) as f64],
            values: ValueColumn::Numbers(&[5.0]),
            by: None,
            selection: None,
        }])
        .unwrap();
}

#[test]
fn a_read_only_open_of_what_is_not_a_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = BucketStore::open_read_only(dir.path().join("nothing"), pinned()).err();
    assert_eq!(missing.map(|e| e.kind), Some(StoreErrorKind::Storage));
}
