//! Windowed resolvers' records: messages kept by key and time or held per tumbling
//! period, and period values, written atomically with source positions; read back in
//! order after a reopen; held periods closed; retained messages removed by retention as
//! RocksDB compacts.

use tessera_store::{
    BucketStore, CommitMode, CommitRecords, SourcePosition, StoreOptions, WindowedMessage,
    WindowedWrite,
};

const MINUTE: i64 = 60_000;
const NOW: i64 = 1_767_225_600_000;

fn message(key: &str, time_ms: i64, offset: i64) -> WindowedMessage {
    WindowedMessage {
        resolver: "logins".into(),
        key: key.into(),
        time_ms,
        partition: 0,
        offset,
        body: format!("{{\"key\":\"{key}\",\"offset\":{offset}}}").into_bytes(),
    }
}

fn open(dir: &std::path::Path, clock: i64) -> BucketStore {
    let options = StoreOptions::default();
    options.clock.pin(Some(clock));
    BucketStore::open(dir, Vec::new(), options).unwrap().0
}

fn commit(store: &mut BucketStore, writes: &[WindowedWrite], next_offset: i64) {
    let position = SourcePosition {
        source: "logins".into(),
        partition: 0,
        offset: next_offset,
    };
    store
        .commit_batches(
            &[],
            CommitRecords {
                positions: std::slice::from_ref(&position),
                windowed: writes,
                ..Default::default()
            },
            CommitMode::Merge,
        )
        .unwrap();
}

#[test]
fn retained_messages_come_back_by_key_in_time_order_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), NOW);
        let writes: Vec<WindowedWrite> = [
            ("a", NOW - 5 * MINUTE, 3),
            ("b", NOW - 4 * MINUTE, 4),
            ("a", NOW - 9 * MINUTE, 5),
            ("a", NOW - 5 * MINUTE, 6),
            ("ab", NOW - MINUTE, 7),
        ]
        .into_iter()
        .map(|(k, t, o)| WindowedWrite::Retain(message(k, t, o)))
        .collect();
        commit(&mut store, &writes, 8);
    }
    let store = open(dir.path(), NOW);
    assert_eq!(store.positions("logins").unwrap()[0].offset, 8);
    let keys = ["a".to_string(), "b".to_string(), "c".to_string()];
    let found = store
        .retained_messages("logins", &keys, NOW - 9 * MINUTE, NOW)
        .unwrap();
    let times: Vec<Vec<(i64, String)>> = found
        .iter()
        .map(|list| {
            list.iter()
                .map(|m| (m.time_ms, String::from_utf8(m.body.clone()).unwrap()))
                .collect()
        })
        .collect();
    // (after, until]: the message at exactly NOW - 9m is out; one time's messages by offset.
    assert_eq!(
        times,
        vec![
            vec![
                (NOW - 5 * MINUTE, r#"{"key":"a","offset":3}"#.to_string()),
                (NOW - 5 * MINUTE, r#"{"key":"a","offset":6}"#.to_string()),
            ],
            vec![(NOW - 4 * MINUTE, r#"{"key":"b","offset":4}"#.to_string())],
            vec![],
        ]
    );
}

#[test]
fn a_closed_period_leaves_its_values_and_drops_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), NOW);
    let w = 10 * MINUTE;
    let hold = |start: i64, key: &str, t: i64, o: i64| WindowedWrite::Hold {
        window_ms: w,
        period_start_ms: start,
        message: message(key, t, o),
    };
    commit(
        &mut store,
        &[
            hold(NOW - 20 * MINUTE, "a", NOW - 15 * MINUTE, 0),
            hold(NOW - 20 * MINUTE, "b", NOW - 12 * MINUTE, 1),
            hold(NOW - 10 * MINUTE, "a", NOW - 5 * MINUTE, 2),
        ],
        3,
    );
    assert_eq!(
        store.held_periods("logins", w).unwrap(),
        vec![NOW - 20 * MINUTE, NOW - 10 * MINUTE]
    );
    let held = store.held_messages("logins", w, NOW - 20 * MINUTE).unwrap();
    assert_eq!(
        held.iter()
            .map(|m| (m.key.as_str(), m.time_ms))
            .collect::<Vec<_>>(),
        vec![("a", NOW - 15 * MINUTE), ("b", NOW - 12 * MINUTE)]
    );
    // Closing the first period: its values, observed at its end, and no messages left.
    let value = |key: &str, end: i64, v: &str| WindowedWrite::Value {
        resolver: "logins".into(),
        window_ms: w,
        key: key.into(),
        end_ms: end,
        value: v.as_bytes().to_vec(),
    };
    commit(
        &mut store,
        &[
            value("a", NOW - 10 * MINUTE, "1"),
            value("b", NOW - 10 * MINUTE, "1"),
            WindowedWrite::Close {
                resolver: "logins".into(),
                window_ms: w,
                period_start_ms: NOW - 20 * MINUTE,
            },
        ],
        3,
    );
    assert_eq!(
        store.held_periods("logins", w).unwrap(),
        vec![NOW - 10 * MINUTE]
    );
    assert!(store
        .held_messages("logins", w, NOW - 20 * MINUTE)
        .unwrap()
        .is_empty());
    commit(&mut store, &[value("a", NOW, "7")], 3);
    let keys = [
        "a".to_string(),
        "a".to_string(),
        "a".to_string(),
        "b".to_string(),
    ];
    let at = [NOW - 11 * MINUTE, NOW - 10 * MINUTE, NOW + MINUTE, NOW];
    let values: Vec<Option<(i64, String)>> = store
        .windowed_values("logins", w, &keys, &at)
        .unwrap()
        .into_iter()
        .map(|v| v.map(|v| (v.end_ms, String::from_utf8(v.value).unwrap())))
        .collect();
    assert_eq!(
        values,
        vec![
            None,
            Some((NOW - 10 * MINUTE, "1".into())),
            Some((NOW, "7".into())),
            Some((NOW - 10 * MINUTE, "1".into())),
        ]
    );
    // Another window of the resolver is another record.
    assert_eq!(
        store
            .windowed_values("logins", 2 * w, &keys[..1], &at[..1])
            .unwrap(),
        vec![None]
    );
}

#[test]
fn retention_removes_retained_messages_as_the_store_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default();
    options.clock.pin(Some(NOW));
    let clock = options.clock.clone();
    let (mut store, _) = BucketStore::open(dir.path(), Vec::new(), options).unwrap();
    store.set_windowed_retention("logins", 30 * MINUTE).unwrap();
    let writes: Vec<WindowedWrite> = (0..60)
        .map(|i| WindowedWrite::Retain(message("a", NOW - i * MINUTE, i)))
        .collect();
    commit(&mut store, &writes, 60);
    let all = |store: &BucketStore| {
        store
            .retained_messages("logins", &["a".to_string()], i64::MIN + 1, i64::MAX)
            .unwrap()[0]
            .len()
    };
    store.compact().unwrap();
    // At NOW the last 30 minutes stay: (NOW - 30m, NOW].
    assert_eq!(all(&store), 30);
    clock.pin(Some(NOW + 20 * MINUTE));
    store.compact().unwrap();
    assert_eq!(all(&store), 10);
    // Held messages and values are not retained messages: retention leaves them.
    assert!(store.set_windowed_retention("", 1).is_err());
}
