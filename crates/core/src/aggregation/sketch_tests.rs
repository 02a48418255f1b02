//! Tests of the sketch aggregations as [`AggState`]s: arguments, update paths, merge rules,
//! the outer encoding (golden bytes), corrupt input, and accuracy after merging bucket
//! states that went through their stored bytes. The sketches themselves (bodies, images,
//! 200-trial accuracy) are tested in `crate::sketch`.

use super::*;
use crate::error::CoreErrorKind;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use crate::sketch::test_support::{quiet_crate_panics, Rng};

fn encoded(state: &AggState) -> Vec<u8> {
    let mut out = Vec::new();
    state.encode(&mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(s: &str) -> Item {
    Item::Text(s.to_owned())
}

/// Encodes and decodes with bytes after the state, checking the reported length.
fn roundtrip(state: &AggState) -> AggState {
    let mut bytes = encoded(state);
    let len = bytes.len();
    bytes.extend_from_slice(&[0x21, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]);
    let (decoded, used) = AggState::decode(&bytes).unwrap();
    assert_eq!(used, len);
    decoded
}

fn top_k(k: u32, weighted: bool) -> Aggregation {
    Aggregation::ApproxTopK { k, weighted }
}

fn cpc(lg_k: u32) -> Aggregation {
    Aggregation::ApproxCountDistinct { lg_k }
}

fn percentile(quantile: f64, size: u32) -> Aggregation {
    Aggregation::ApproxPercentile { quantile, size }
}

#[test]
fn names_defaults_and_validation() {
    for (agg, name) in [
        (cpc(11), "approx_count_distinct(lgK=11)"),
        (top_k(10, false), "approx_top_k(10)"),
        (top_k(3, true), "approx_top_k(3, weighted)"),
        (percentile(0.9, 200), "approx_percentile(0.9, size=200)"),
        (percentile(0.0, 10), "approx_percentile(0, size=10)"),
    ] {
        assert_eq!(agg.name(), name);
        assert_eq!(agg.validate(), Ok(()));
        assert_eq!(AggState::new(&agg).aggregation(), agg);
        assert_eq!(roundtrip(&AggState::new(&agg)).aggregation(), agg);
    }
    assert_eq!(Aggregation::APPROX_COUNT_DISTINCT, cpc(11));
    assert_eq!(Aggregation::approx_percentile(0.5), percentile(0.5, 200));
    for (bad, message) in [
        (
            cpc(40),
            "invalid aggregation approx_count_distinct(lgK=40): lgK must be between 4 and 26, got 40",
        ),
        (
            cpc(3),
            "invalid aggregation approx_count_distinct(lgK=3): lgK must be between 4 and 26, got 3",
        ),
        (
            top_k(0, false),
            "invalid aggregation approx_top_k(0): k must be between 1 and 1000, got 0",
        ),
        (
            top_k(1001, true),
            "invalid aggregation approx_top_k(1001, weighted): k must be between 1 and 1000, got 1001",
        ),
        (
            percentile(1.5, 200),
            "invalid aggregation approx_percentile(1.5, size=200): quantile must be a number in \
             [0, 1], got 1.5",
        ),
        (
            percentile(f64::NAN, 200),
            "invalid aggregation approx_percentile(NaN, size=200): quantile must be a number in \
             [0, 1], got NaN",
        ),
        (
            percentile(0.5, 9),
            "invalid aggregation approx_percentile(0.5, size=9): sketchSize must be between 10 \
             and 1000, got 9",
        ),
    ] {
        let e = bad.validate().unwrap_err();
        assert_eq!(e.kind, CoreErrorKind::InvalidAggregation);
        assert_eq!(e.message, message);
        // `new` does not validate; it clamps instead of failing.
        let _ = AggState::new(&bad).evaluate();
    }
}

#[test]
fn agg_state_stays_small() {
    // The sketches are boxed: the in-memory state of every (key, bucket) of an ingest
    // batch stays as small as it was for the exact aggregations.
    assert!(std::mem::size_of::<AggState>() <= 48);
}

#[test]
fn empty_sketches_evaluate_like_count_and_the_rest() {
    assert_eq!(AggState::new(&cpc(11)).evaluate(), AggValue::Count(0));
    assert_eq!(AggState::new(&top_k(5, false)).evaluate(), AggValue::Null);
    assert_eq!(
        AggState::new(&percentile(0.5, 200)).evaluate(),
        AggValue::Null
    );
    for agg in [cpc(11), top_k(5, true), percentile(0.5, 100)] {
        let mut state = AggState::new(&agg);
        assert!(state.is_empty());
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            state.update_number(v);
            state.update_item(&Item::Number(v)).unwrap();
            state.update_weighted(Item::Number(v), 1.0).unwrap();
        }
        state.update_ranked(1.0, Item::Number(1.0));
        assert!(state.is_empty(), "{}", agg.name());
        assert!(roundtrip(&state).is_empty());
    }
}

#[test]
fn count_distinct_takes_numbers_and_strings_by_every_path() {
    let mut by_item = AggState::new(&cpc(11));
    let mut by_fast_paths = AggState::new(&cpc(11));
    for i in 0..500 {
        let n = f64::from(i % 200);
        by_item.update_item(&Item::Number(n)).unwrap();
        by_fast_paths.update_number(n);
        let s = format!("user-{}", i % 150);
        by_item.update_item(&Item::Text(s.clone())).unwrap();
        by_fast_paths.update_text(&s).unwrap();
    }
    // 3 and 3.0 are one item; the number 1 and the string "1" are two.
    by_item.update_item(&Item::Number(3.0)).unwrap();
    by_item.update_item(&text("1")).unwrap();
    by_fast_paths.update_text("1").unwrap();
    assert_eq!(by_item, by_fast_paths);
    assert_eq!(encoded(&by_item), encoded(&by_fast_paths));
    let AggValue::Count(estimate) = by_item.evaluate() else {
        panic!("a count-distinct estimate is a whole number");
    };
    assert!(
        (estimate as f64 - 351.0).abs() <= 351.0 * 0.03,
        "{estimate}"
    );
    // A weight means nothing to a distinct count.
    by_item.update_weighted(text("new"), 5.0).unwrap();
    by_fast_paths.update_text("new").unwrap();
    assert_eq!(by_item, by_fast_paths);
}

/// Bytes per bucket: one item is 11 (header, length, lgK, one hash; a CPC sketch of one
/// item took 39), the exact form's largest state at lgK 11 is 1,332, and one more item makes
/// it a sketch, which counts on within the sketch's error.
#[test]
fn count_distinct_bytes_per_bucket() {
    let mut one = AggState::new(&cpc(11));
    one.update_text("only").unwrap();
    assert_eq!(encoded(&one).len(), 11);
    assert_eq!(encoded(&one)[0], 0x57);
    assert_eq!(one.evaluate(), AggValue::Count(1));
    let mut full = AggState::new(&cpc(11));
    for i in 0..166 {
        full.update_number(f64::from(i));
    }
    assert_eq!(encoded(&full).len(), 1_332);
    assert_eq!(full.evaluate(), AggValue::Count(166));
    full.update_number(166.0);
    let bytes = encoded(&full);
    assert_eq!(bytes[0], 0x54, "a sketch past 166 items");
    assert!(bytes.len() < 1_332, "{} bytes", bytes.len());
    let AggValue::Count(n) = full.evaluate() else {
        panic!("{:?}", full.evaluate());
    };
    assert!(n.abs_diff(167) <= 5, "{n}");
}

#[test]
fn top_k_unweighted_and_weighted() {
    let mut unweighted = AggState::new(&top_k(2, false));
    for item in [
        text("a"),
        Item::Number(7.0),
        text("a"),
        text("b"),
        text("a"),
    ] {
        unweighted.update_item(&item).unwrap();
    }
    unweighted.update_number(7.0);
    unweighted.update_text("b").unwrap();
    unweighted.update_text("b").unwrap();
    assert_eq!(
        unweighted.evaluate(),
        AggValue::WeightedItems(vec![(text("a"), 3.0), (text("b"), 3.0)])
    );

    let mut weighted = AggState::new(&top_k(3, true));
    weighted.update_weighted(text("x"), 2.5).unwrap();
    weighted.update_weighted(Item::Number(1.0), 0.75).unwrap();
    weighted.update_weighted(text("x"), 0.125).unwrap();
    weighted.update_weighted(text("y"), 10.0).unwrap();
    // Skipped: null, negative, zero and infinite weights, and a null item.
    for w in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
        weighted.update_weighted(text("z"), w).unwrap();
    }
    weighted
        .update_weighted(Item::Number(f64::NAN), 3.0)
        .unwrap();
    let expected = AggValue::WeightedItems(vec![
        (text("y"), 10.0),
        (text("x"), 2.625),
        (Item::Number(1.0), 0.75),
    ]);
    assert_eq!(weighted.evaluate(), expected);
    assert_eq!(roundtrip(&weighted).evaluate(), expected);
    assert_eq!(roundtrip(&weighted), weighted);
}

#[test]
fn percentile_takes_numbers_and_rejects_text() {
    let mut state = AggState::new(&percentile(0.5, 200));
    for v in [5.0, 1.0, 3.0] {
        state.update_number(v);
    }
    state.update_item(&Item::Number(4.0)).unwrap();
    state.update_item(&Item::Number(2.0)).unwrap();
    assert_eq!(state.evaluate(), AggValue::Number(3.0));
    let e = state.update_item(&text("abc")).unwrap_err();
    assert_eq!(e.kind, CoreErrorKind::InvalidInput);
    assert_eq!(
        e.message,
        "approx_percentile(0.5, size=200) aggregates numbers, got the text 'abc'"
    );
    assert!(state.update_text("abc").is_err());
    // The quantile travels with the state: two rules over one column are two states.
    let mut high = AggState::new(&percentile(1.0, 200));
    for v in [5.0, 1.0, 3.0, 4.0, 2.0] {
        high.update_number(v);
    }
    assert_eq!(roundtrip(&high).evaluate(), AggValue::Number(5.0));
    assert_eq!(roundtrip(&state).evaluate(), AggValue::Number(3.0));
}

#[test]
fn merge_rejects_other_sketches_and_arguments() {
    let cases = [
        (
            cpc(11),
            cpc(12),
            "cannot merge a approx_count_distinct(lgK=12) state into a \
             approx_count_distinct(lgK=11) state",
        ),
        (
            top_k(5, false),
            top_k(6, false),
            "cannot merge a approx_top_k(6) state into a approx_top_k(5) state",
        ),
        (
            top_k(5, false),
            top_k(5, true),
            "cannot merge a approx_top_k(5, weighted) state into a approx_top_k(5) state",
        ),
        (
            percentile(0.5, 200),
            percentile(0.9, 200),
            "cannot merge a approx_percentile(0.9, size=200) state into a \
             approx_percentile(0.5, size=200) state",
        ),
        (
            percentile(0.5, 200),
            percentile(0.5, 100),
            "cannot merge a approx_percentile(0.5, size=100) state into a \
             approx_percentile(0.5, size=200) state",
        ),
        (
            cpc(11),
            Aggregation::Count,
            "cannot merge a count state into a approx_count_distinct(lgK=11) state",
        ),
        (
            Aggregation::Sum,
            percentile(0.5, 200),
            "cannot merge a approx_percentile(0.5, size=200) state into a sum state",
        ),
    ];
    for (into, from, message) in cases {
        let mut state = AggState::new(&into);
        state.update_number(1.0);
        let mut other = AggState::new(&from);
        other.update_number(2.0);
        let before = state.clone();
        let e = state.merge(&other).unwrap_err();
        assert_eq!(e.kind, CoreErrorKind::StateMismatch);
        assert_eq!(e.message, message);
        assert_eq!(state, before);
    }
}

// ---- golden bytes of the outer encoding: any change to the stored format fails here ----

/// The states pinned by the golden bytes: empty and small ones of each kind. The bodies
/// after the length prefix are the sketch bodies pinned in `crate::sketch`.
fn golden_states() -> Vec<(&'static str, AggState)> {
    let mut distinct = AggState::new(&cpc(11));
    for item in [Item::Number(1.0), Item::Number(2.5), text("a")] {
        distinct.update_item(&item).unwrap();
    }
    let mut weighted = AggState::new(&top_k(3, true));
    weighted.update_weighted(text("apple"), 2.0).unwrap();
    weighted.update_weighted(Item::Number(42.0), 0.5).unwrap();
    let mut unweighted = AggState::new(&top_k(1, false));
    unweighted.update_number(-0.0);
    let mut median = AggState::new(&percentile(0.5, 200));
    for v in [3.0, 1.0, 2.0] {
        median.update_number(v);
    }
    // lgK 4 keeps 8 hashes: 9 items make a sketch.
    let mut sketch = AggState::new(&cpc(4));
    for i in 0..9 {
        sketch.update_number(f64::from(i));
    }
    vec![
        ("empty approx_count_distinct", AggState::new(&cpc(11))),
        ("approx_count_distinct of 3 items (exact)", distinct),
        ("approx_count_distinct(lgK=4) of 9 items (sketch)", sketch),
        ("empty approx_top_k(2)", AggState::new(&top_k(2, false))),
        ("weighted approx_top_k(3)", weighted),
        ("approx_top_k(1) of 0", unweighted),
        (
            "empty approx_percentile(0.99, size=100)",
            AggState::new(&percentile(0.99, 100)),
        ),
        ("approx_percentile(0.5) of 3 values", median),
    ]
}

/// Header, varint payload length, then: lgK and the item hashes, or the CPC body; the
/// flags byte and the top-k body; the f64 quantile and the t-digest body.
const GOLDEN: [&str; 8] = [
    "57010b",
    "57190b846536f373db6b31b63c97cd719f2a8f41d7d068a8dfcce1",
    concat!(
        "542901080110040016cc9308000000020000000000000000202b403170b55720",
        "632140ee37190d01000000",
    ),
    "550c0001020001010a0603050000",
    concat!(
        "55470101030004010a06030000000200000000000000c4090000000000000000",
        "000000000000d007000000000000f40100000000000073050000006170706c65",
        "692a00000000000000",
    ),
    concat!(
        "55350001010004010a06030000000100000000000000e8030000000000000000",
        "000000000000e803000000000000690000000000000000",
    ),
    "5611ae47e17a14aeef3f010101146400010000",
    concat!(
        "5659000000000000e03f01020114c80004000003000000000000000000000000",
        "00f03f0000000000000840000000000000f03f01000000000000000000000000",
        "000040010000000000000000000000000008400100000000000000",
    ),
];

#[test]
fn golden_bytes_of_the_sketch_kinds() {
    let states = golden_states();
    let actual: Vec<String> = states.iter().map(|(_, s)| hex(&encoded(s))).collect();
    for ((label, state), (hex_now, golden)) in states.iter().zip(actual.iter().zip(GOLDEN)) {
        assert_eq!(hex_now, golden, "{label}: stored format changed");
        let (decoded, used) = AggState::decode(&encoded(state)).unwrap();
        assert_eq!(used, hex_now.len() / 2);
        assert_eq!(&decoded, state, "{label}");
        assert_eq!(decoded.evaluate(), state.evaluate(), "{label}");
    }
    // Headers: version 2 in the top three bits, kinds 23 and 20, 21, 22.
    for (golden, header) in GOLDEN
        .iter()
        .zip([0x57, 0x57, 0x54, 0x55, 0x55, 0x55, 0x56, 0x56])
    {
        assert_eq!(&golden[..2], format!("{header:02x}"));
    }
}

#[test]
fn sketch_states_concatenate_with_exact_states() {
    let mut sum = AggState::new(&Aggregation::Sum);
    sum.update_number(2.0);
    let mut states = vec![sum];
    states.extend(golden_states().into_iter().map(|(_, s)| s));
    states.push(AggState::Count(3));
    let mut bytes = Vec::new();
    for s in &states {
        s.encode(&mut bytes);
    }
    let mut rest = &bytes[..];
    for s in &states {
        let (decoded, used) = AggState::decode(rest).unwrap();
        assert_eq!(&decoded, s);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
}

/// Format 1 states of every kind but the `approx_count_distinct` sketch (whose items were
/// hashed another way) decode as the format 2 states with the same payload.
#[test]
fn format_1_states_still_decode() {
    let mut sum = AggState::new(&Aggregation::Sum);
    sum.update_number(2.5);
    let mut states = vec![sum, AggState::Count(7)];
    states.extend(
        golden_states()
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| !matches!(s, AggState::ApproxCountDistinct(_))),
    );
    for state in states {
        let mut bytes = encoded(&state);
        assert_eq!(bytes[0] >> 5, 2);
        bytes[0] = (1 << 5) | (bytes[0] & 0x1f);
        let (decoded, used) = AggState::decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(decoded, state);
    }
}

// ---- corrupt input: an error, never a panic ----

fn decode_error(bytes: &[u8]) -> String {
    let e = AggState::decode(bytes).unwrap_err();
    assert_eq!(e.kind, CoreErrorKind::CorruptState);
    e.message
}

#[test]
fn corrupt_sketch_states_say_what_is_wrong() {
    quiet_crate_panics();
    for kind in [0x54, 0x57] {
        assert!(decode_error(&[kind]).contains("truncated approx_count_distinct state"));
        assert!(decode_error(&[kind, 0x05, 0x01]).contains("payload at byte 2 needs 5 bytes"));
    }
    assert!(decode_error(&[0x54, 0x00]).contains("approx_count_distinct state is empty"));
    assert!(decode_error(&[0x57, 0x00]).contains("approx_count_distinct exact state is empty"));
    assert!(decode_error(&[0x57, 0x02, 0x0b, 0x00]).contains("not a multiple of 8"));
    // Format 1 had no exact kind, and its sketches hashed items another way.
    assert!(decode_error(&[0x37, 0x01, 0x0b]).contains("unknown aggregation state kind 23"));
    let mut old_sketch = encoded(&golden_states()[2].1);
    old_sketch[0] = (1 << 5) | 20;
    assert!(decode_error(&old_sketch).contains("approx_count_distinct sketch of state format 1"));
    assert!(decode_error(&[0x55, 0x00]).contains("corrupt approx_top_k state: an empty payload"));
    let mut top_k = encoded(&AggState::new(&top_k(2, false)));
    top_k[2] = 0x02;
    assert!(decode_error(&top_k).contains("flags 0x02"));
    let mut median = encoded(&AggState::new(&percentile(0.5, 200)));
    median[2..10].copy_from_slice(&1.5f64.to_le_bytes());
    assert!(decode_error(&median).contains("quantile 1.5"));
    median[2..10].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(decode_error(&median).contains("quantile NaN"));
    assert!(decode_error(&[0x56, 0x03, 0, 0, 0]).contains("too short for the quantile"));
    // A payload length past the end, and one that stops short of the body.
    let mut distinct = encoded(&golden_states()[1].1);
    distinct[1] += 1;
    assert!(decode_error(&distinct).contains("truncated approx_count_distinct state"));
    distinct[1] -= 2;
    assert!(AggState::decode(&distinct).is_err());
}

#[test]
fn every_truncation_and_bit_flip_of_a_sketch_state_is_handled() {
    quiet_crate_panics();
    let mut big = AggState::new(&cpc(11));
    let mut digest = AggState::new(&percentile(0.25, 50));
    let mut items = AggState::new(&top_k(4, true));
    for i in 0..3000 {
        big.update_number(f64::from(i));
        digest.update_number(f64::from(i % 97) * 1.5);
        items
            .update_weighted(text(&format!("i{}", i % 70)), f64::from(i % 7))
            .unwrap();
    }
    let mut states: Vec<AggState> = golden_states().into_iter().map(|(_, s)| s).collect();
    states.extend([big, digest, items]);
    for state in states {
        let bytes = encoded(&state);
        for len in 0..bytes.len() {
            assert_eq!(
                AggState::decode(&bytes[..len]).unwrap_err().kind,
                CoreErrorKind::CorruptState
            );
        }
        for at in 0..bytes.len() {
            for pattern in [0xff, 0x01, 0x80] {
                let mut changed = bytes.clone();
                changed[at] ^= pattern;
                check_decode_is_total(&changed);
            }
        }
    }
}

/// Whatever decode accepts is usable: it evaluates, merges into a fresh state of its own
/// aggregation, and re-encodes to bytes that decode again.
fn check_decode_is_total(bytes: &[u8]) {
    match AggState::decode(bytes) {
        Ok((state, used)) => {
            assert!(used > 0 && used <= bytes.len());
            let _ = state.evaluate();
            let mut fresh = AggState::new(&state.aggregation());
            let _ = fresh.merge(&state);
            let again = encoded(&state);
            let (state2, used2) = AggState::decode(&again).unwrap();
            assert_eq!(used2, again.len());
            assert_eq!(state2, state);
        }
        Err(e) => assert_eq!(e.kind, CoreErrorKind::CorruptState, "{e}"),
    }
}

fn sketch_aggregation() -> impl Strategy<Value = Aggregation> {
    prop_oneof![
        (4u32..=12).prop_map(cpc),
        (1u32..6, any::<bool>()).prop_map(|(k, w)| top_k(k, w)),
        (0u32..=4, 10u32..60).prop_map(|(q, size)| percentile(f64::from(q) / 4.0, size)),
    ]
}

fn sketch_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (-40i32..40).prop_map(|k| Item::Number(f64::from(k) * 0.5)),
        "[a-e]{0,2}".prop_map(Item::Text),
    ]
}

fn sketch_state() -> impl Strategy<Value = AggState> {
    (sketch_aggregation(), vec((sketch_item(), 0u32..4), 0..120)).prop_map(|(agg, rows)| {
        let mut state = AggState::new(&agg);
        for (item, w) in rows {
            match (&state, item) {
                (AggState::ApproxPercentile { .. }, Item::Text(_)) => {}
                (_, item) => state.update_weighted(item, f64::from(w)).unwrap(),
            }
        }
        state
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sketch_states_round_trip(state in sketch_state()) {
        let decoded = roundtrip(&state);
        prop_assert_eq!(&decoded, &state);
        prop_assert_eq!(decoded.evaluate(), state.evaluate());
    }

    #[test]
    fn decode_never_panics_on_corrupted_sketch_states(
        state in sketch_state(),
        flips in vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        quiet_crate_panics();
        let mut bytes = encoded(&state);
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        check_decode_is_total(&bytes);
    }

    #[test]
    fn decode_never_panics_on_random_sketch_payloads(
        kind in 20u8..=22,
        payload in vec(any::<u8>(), 0..120),
    ) {
        quiet_crate_panics();
        let mut bytes = vec![(STATE_FORMAT_VERSION << 5) | kind];
        bytes.push(payload.len() as u8);
        bytes.extend_from_slice(&payload);
        check_decode_is_total(&bytes);
    }

    /// Merging partial states (through their bytes) answers like folding all the rows:
    /// small top-k states are exact, the t-digest stays exact while it keeps every value,
    /// a distinct count is exact up to its exact limit, and past it a CPC union estimates
    /// within four standard errors (its ICON estimator differs from the HIP estimator of an
    /// unmerged sketch, so the two are not bit-equal).
    #[test]
    fn merged_partitions_answer_like_the_whole(
        agg in prop_oneof![
            (4u32..=12).prop_map(cpc),
            (1u32..6, any::<bool>()).prop_map(|(k, w)| top_k(k, w)),
            // Sizes at which 40 values stay single centroids: the digest is exact.
            (0u32..=4, 100u32..200).prop_map(|(q, size)| percentile(f64::from(q) / 4.0, size)),
        ],
        rows in vec((sketch_item(), 1u32..4), 0..40),
        cuts in vec(any::<Index>(), 0..6),
    ) {
        let fold = |rows: &[(Item, u32)]| {
            let mut state = AggState::new(&agg);
            for (item, w) in rows {
                if !matches!((&state, item), (AggState::ApproxPercentile { .. }, Item::Text(_))) {
                    state.update_weighted(item.clone(), f64::from(*w)).unwrap();
                }
            }
            state
        };
        let whole = fold(&rows);
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(rows.len() + 1)).collect();
        bounds.extend([0, rows.len()]);
        bounds.sort_unstable();
        let mut merged = AggState::new(&agg);
        for w in bounds.windows(2) {
            merged.merge(&roundtrip(&fold(&rows[w[0]..w[1]]))).unwrap();
        }
        prop_assert_eq!(merged.is_empty(), whole.is_empty());
        if let Aggregation::ApproxCountDistinct { lg_k } = agg {
            let mut distinct: Vec<&Item> = rows.iter().map(|(item, _)| item).collect();
            distinct.sort();
            distinct.dedup();
            let truth = distinct.len();
            if truth <= CountDistinctState::exact_limit(lg_k as u8) {
                prop_assert_eq!(merged.evaluate(), AggValue::Count(truth as u64));
                prop_assert_eq!(whole.evaluate(), AggValue::Count(truth as u64));
            }
            let truth = truth as f64;
            let bound = 4.0 * 0.7 / f64::from(1u32 << lg_k).sqrt() * truth + 0.5;
            for state in [&merged, &whole] {
                let AggValue::Count(estimate) = state.evaluate() else {
                    panic!("not a whole number");
                };
                let estimate = estimate as f64;
                prop_assert!((estimate - truth).abs() <= bound, "{} vs {}", estimate, truth);
            }
        } else {
            prop_assert_eq!(merged.evaluate(), whole.evaluate());
        }
    }
}

// ---- accuracy after merging bucket states through their stored bytes ----

/// Trials of `buckets` bucket states of CPC lgK 11, each encoded and decoded as the store
/// does, merged into one window: within 3.1% in at least 95% of trials. (The store's
/// `sketches` test runs 200 trials of each sketch through the store itself.)
fn count_distinct_trials(buckets: usize, per_bucket: usize, universe: u64) {
    let trials = if cfg!(debug_assertions) { 20 } else { 100 };
    let mut within = 0;
    for trial in 0..trials {
        let mut rng = Rng::new(77 + trial);
        let salt = rng.next_u64();
        let mut exact = std::collections::HashSet::new();
        let mut window = AggState::new(&Aggregation::APPROX_COUNT_DISTINCT);
        for _ in 0..buckets {
            let mut bucket = AggState::new(&Aggregation::APPROX_COUNT_DISTINCT);
            for _ in 0..per_bucket {
                let id = (rng.next_u64() % universe) ^ salt;
                if id.is_multiple_of(2) {
                    bucket.update_text(&format!("u{id}")).unwrap();
                    exact.insert((1, id));
                } else {
                    bucket.update_number((id >> 11) as f64);
                    exact.insert((0, id >> 11));
                }
            }
            window.merge(&roundtrip(&bucket)).unwrap();
        }
        let AggValue::Count(estimate) = roundtrip(&window).evaluate() else {
            panic!("not a whole number");
        };
        let estimate = estimate as f64;
        let truth = exact.len() as f64;
        if (estimate - truth).abs() <= 0.031 * truth {
            within += 1;
        }
    }
    assert!(within * 100 >= trials * 95, "{within}/{trials} within 3.1%");
}

#[test]
fn count_distinct_after_merging_30_and_720_buckets() {
    count_distinct_trials(30, 300, 1 << 40);
    count_distinct_trials(720, 20, 9_000);
}
