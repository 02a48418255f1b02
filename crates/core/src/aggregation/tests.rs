//! Tests of the aggregation states: fixed examples, golden bytes, and properties checked
//! against independent naive computations from the raw rows.

use super::*;
use crate::error::CoreErrorKind;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

const VECTOR_LEN: usize = 4;

/// One raw row, carrying every input kind so that one generator serves every aggregation.
#[derive(Debug, Clone)]
struct Row {
    value: f64,
    by: f64,
    item: Item,
    vector: [f64; VECTOR_LEN],
}

fn fold_row(state: &mut AggState, row: &Row) {
    match state {
        AggState::MinByN(_) | AggState::MaxByN(_) => state.update_ranked(row.by, row.item.clone()),
        AggState::VectorSum(v) | AggState::VectorMean(v) => {
            let dim = v.dim() as usize;
            state.update_vector(&row.vector[..dim]).unwrap();
        }
        _ => state.update_number(row.value),
    }
}

fn fold_all(agg: &Aggregation, rows: &[Row]) -> AggState {
    let mut state = AggState::new(agg);
    for row in rows {
        fold_row(&mut state, row);
    }
    state
}

fn encoded(state: &AggState) -> Vec<u8> {
    let mut out = Vec::new();
    state.encode(&mut out);
    out
}

fn hex(state: &AggState) -> String {
    encoded(state).iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes and decodes, checking the length is reported exactly even with bytes after.
fn roundtrip(state: &AggState) -> AggState {
    let mut bytes = encoded(state);
    let len = bytes.len();
    bytes.extend_from_slice(&[0xff, 0x00, 0x21]);
    let (decoded, used) = AggState::decode(&bytes).unwrap();
    assert_eq!(used, len);
    decoded
}

/// Splits the rows at random cut points (empty parts included), folds each part, round
/// trips each partial state through its bytes, then merges them in a random tree.
fn fold_partitioned(agg: &Aggregation, rows: &[Row], cuts: &[Index], picks: &[Index]) -> AggState {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(rows.len() + 1)).collect();
    bounds.push(0);
    bounds.push(rows.len());
    bounds.sort_unstable();
    let mut states: Vec<AggState> = bounds
        .windows(2)
        .map(|w| roundtrip(&fold_all(agg, &rows[w[0]..w[1]])))
        .collect();
    let mut picks = picks.iter().cycle();
    let mut pick = |len: usize| picks.next().map_or(0, |p| p.index(len));
    while states.len() > 1 {
        let mut target = states.swap_remove(pick(states.len()));
        let source = states.swap_remove(pick(states.len()));
        target.merge(&source).unwrap();
        states.push(roundtrip(&target));
    }
    states.pop().unwrap()
}

fn finite_values(rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .map(|r| r.value)
        .filter(|v| v.is_finite())
        .collect()
}

/// Independent evaluation from the raw rows: sorting, plain loops and two-pass variance.
fn naive(agg: &Aggregation, rows: &[Row]) -> AggValue {
    let values = finite_values(rows);
    let n = values.len();
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut sum = 0.0;
    for v in &values {
        sum += v;
    }
    let variance = |sample: bool| {
        if n < 2 {
            return None;
        }
        let mean = sum / n as f64;
        let m2: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        Some(m2 / if sample { (n - 1) as f64 } else { n as f64 })
    };
    let or_null = |v: Option<f64>| v.map_or(AggValue::Null, AggValue::Number);
    match *agg {
        Aggregation::Sum => or_null((n > 0).then_some(sum)),
        Aggregation::Count => AggValue::Count(n as u64),
        Aggregation::Min => or_null(sorted.first().copied()),
        Aggregation::Max => or_null(sorted.last().copied()),
        Aggregation::Mean => or_null((n > 0).then(|| sum / n as f64)),
        Aggregation::Var { sample } => or_null(variance(sample)),
        Aggregation::Std { sample } => or_null(variance(sample).map(f64::sqrt)),
        Aggregation::MinByN { n } | Aggregation::MaxByN { n } => {
            let mut pairs: Vec<(f64, Item)> = rows
                .iter()
                .filter(|r| r.by.is_finite())
                .map(|r| (r.by, r.item.clone()))
                .collect();
            pairs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then_with(|| a.1.cmp(&b.1)));
            if matches!(agg, Aggregation::MaxByN { .. }) {
                pairs.reverse();
            }
            let items: Vec<Item> = pairs.into_iter().take(n as usize).map(|p| p.1).collect();
            if items.is_empty() {
                AggValue::Null
            } else {
                AggValue::Items(items)
            }
        }
        Aggregation::VectorSum { dim } | Aggregation::VectorMean { dim } => {
            let vectors: Vec<&[f64]> = rows
                .iter()
                .map(|r| &r.vector[..dim as usize])
                .filter(|v| v.iter().all(|x| x.is_finite()))
                .collect();
            if vectors.is_empty() {
                return AggValue::Null;
            }
            let mut sums = vec![0.0; dim as usize];
            for v in &vectors {
                for (s, x) in sums.iter_mut().zip(v.iter()) {
                    *s += x;
                }
            }
            if matches!(agg, Aggregation::VectorMean { .. }) {
                for s in &mut sums {
                    *s /= vectors.len() as f64;
                }
            }
            AggValue::Vector(sums)
        }
        Aggregation::ApproxCountDistinct { .. }
        | Aggregation::ApproxTopK { .. }
        | Aggregation::ApproxPercentile { .. } => {
            unreachable!("the sketches are compared with exact answers in sketch_tests")
        }
    }
}

/// Within 1e-12 relative (both sides Null, or both numbers that close).
fn close(a: &AggValue, b: &AggValue) -> bool {
    match (a, b) {
        (AggValue::Null, AggValue::Null) => true,
        (AggValue::Number(x), AggValue::Number(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        _ => false,
    }
}

/// Multiples of 0.25 in [-1000, 1000): every sum of a few thousand of them is exact.
fn dyadic() -> impl Strategy<Value = f64> {
    (-4000i32..4000).prop_map(|k| f64::from(k) * 0.25)
}

fn nullable(values: impl Strategy<Value = f64>) -> impl Strategy<Value = f64> {
    prop_oneof![
        12 => values,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (-3i32..3).prop_map(|k| Item::Number(f64::from(k))),
        Just(Item::Number(-0.0)),
        "[ab]{0,2}".prop_map(Item::Text),
        "\\PC{0,6}".prop_map(Item::Text),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    // A narrow `by` range so that ties (settled by item) are common.
    let by = nullable(prop_oneof![
        (-4i32..4).prop_map(|k| f64::from(k) * 0.5),
        Just(-0.0)
    ]);
    let element = prop_oneof![20 => dyadic(), 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)];
    (
        nullable(dyadic()),
        by,
        item(),
        [element.clone(), element.clone(), element.clone(), element],
    )
        .prop_map(|(value, by, item, vector)| Row {
            value,
            by,
            item,
            vector,
        })
}

fn exact_aggregation() -> impl Strategy<Value = Aggregation> {
    prop_oneof![
        Just(Aggregation::Sum),
        Just(Aggregation::Count),
        Just(Aggregation::Min),
        Just(Aggregation::Max),
        Just(Aggregation::Mean),
        (1u32..7).prop_map(|n| Aggregation::MinByN { n }),
        (1u32..7).prop_map(|n| Aggregation::MaxByN { n }),
        (1u32..=VECTOR_LEN as u32).prop_map(|dim| Aggregation::VectorSum { dim }),
        (1u32..=VECTOR_LEN as u32).prop_map(|dim| Aggregation::VectorMean { dim }),
    ]
}

fn spread_aggregation() -> impl Strategy<Value = Aggregation> {
    prop_oneof![
        any::<bool>().prop_map(|sample| Aggregation::Var { sample }),
        any::<bool>().prop_map(|sample| Aggregation::Std { sample }),
    ]
}

fn any_aggregation() -> impl Strategy<Value = Aggregation> {
    prop_oneof![exact_aggregation(), spread_aggregation()]
}

fn any_state() -> impl Strategy<Value = AggState> {
    (any_aggregation(), vec(row(), 0..12)).prop_map(|(agg, rows)| fold_all(&agg, &rows))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn exact_merge_of_partitions_equals_folding_all_rows(
        agg in exact_aggregation(),
        rows in vec(row(), 0..60),
        cuts in vec(any::<Index>(), 0..6),
        picks in vec(any::<Index>(), 0..12),
    ) {
        let whole = fold_all(&agg, &rows);
        let merged = fold_partitioned(&agg, &rows, &cuts, &picks);
        prop_assert_eq!(&merged, &whole);
        prop_assert_eq!(whole.evaluate(), naive(&agg, &rows));
        prop_assert_eq!(whole.is_empty(), merged.is_empty());
    }

    #[test]
    fn spread_merge_of_partitions_matches_two_pass_variance(
        agg in spread_aggregation(),
        rows in vec(row(), 0..60),
        cuts in vec(any::<Index>(), 0..6),
        picks in vec(any::<Index>(), 0..12),
    ) {
        let whole = fold_all(&agg, &rows);
        let merged = fold_partitioned(&agg, &rows, &cuts, &picks);
        let expected = naive(&agg, &rows);
        prop_assert!(close(&whole.evaluate(), &expected), "{:?} vs {:?}", whole.evaluate(), expected);
        prop_assert!(close(&merged.evaluate(), &expected), "{:?} vs {:?}", merged.evaluate(), expected);
        match (&merged, &whole) {
            (AggState::Var { moments: a, .. }, AggState::Var { moments: b, .. })
            | (AggState::Std { moments: a, .. }, AggState::Std { moments: b, .. }) => {
                prop_assert_eq!(a.count, b.count);
            }
            _ => prop_assert!(false, "states changed kind"),
        }
    }

    #[test]
    fn merge_is_commutative_bit_for_bit(
        agg in any_aggregation(),
        left in vec(row(), 0..20),
        right in vec(row(), 0..20),
    ) {
        let (a, b) = (fold_all(&agg, &left), fold_all(&agg, &right));
        let mut ab = a.clone();
        ab.merge(&b).unwrap();
        let mut ba = b.clone();
        ba.merge(&a).unwrap();
        prop_assert_eq!(encoded(&ab), encoded(&ba));
    }

    #[test]
    fn merging_an_empty_state_changes_nothing(agg in any_aggregation(), rows in vec(row(), 0..20)) {
        let state = fold_all(&agg, &rows);
        let mut merged = state.clone();
        merged.merge(&AggState::new(&agg)).unwrap();
        prop_assert_eq!(encoded(&merged), encoded(&state));
        let mut into_empty = AggState::new(&agg);
        into_empty.merge(&state).unwrap();
        prop_assert_eq!(encoded(&into_empty), encoded(&state));
    }

    #[test]
    fn states_round_trip_through_their_bytes(state in any_state()) {
        let bytes = encoded(&state);
        let (decoded, used) = AggState::decode(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&decoded, &state);
        prop_assert_eq!(encoded(&decoded), bytes);
    }

    #[test]
    fn concatenated_states_decode_one_after_another(states in vec(any_state(), 0..5)) {
        let mut bytes = Vec::new();
        for s in &states {
            s.encode(&mut bytes);
        }
        let mut rest = &bytes[..];
        for s in &states {
            let (decoded, used) = AggState::decode(rest).unwrap();
            prop_assert_eq!(&decoded, s);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn every_truncation_of_a_valid_encoding_is_an_error(state in any_state()) {
        let bytes = encoded(&state);
        for len in 0..bytes.len() {
            let e = AggState::decode(&bytes[..len]).unwrap_err();
            prop_assert_eq!(e.kind, CoreErrorKind::CorruptState);
        }
    }

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in vec(any::<u8>(), 0..80)) {
        check_decode_is_total(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_random_payloads(kind in 0u8..32, payload in vec(any::<u8>(), 0..80)) {
        let mut bytes = vec![(STATE_FORMAT_VERSION << 5) | kind];
        bytes.extend_from_slice(&payload);
        check_decode_is_total(&bytes)?;
    }

    #[test]
    fn decode_never_panics_on_corrupted_states(
        state in any_state(),
        flips in vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encoded(&state);
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        check_decode_is_total(&bytes)?;
    }
}

/// Whatever decode accepts, it reports a length within the input and re-encodes to bytes
/// that decode to the same bytes again.
fn check_decode_is_total(bytes: &[u8]) -> Result<(), TestCaseError> {
    match AggState::decode(bytes) {
        Ok((state, used)) => {
            prop_assert!(used <= bytes.len() && used > 0);
            let again = encoded(&state);
            let (state2, used2) = AggState::decode(&again).unwrap();
            prop_assert_eq!(used2, again.len());
            prop_assert_eq!(encoded(&state2), again);
        }
        Err(e) => prop_assert_eq!(e.kind, CoreErrorKind::CorruptState),
    }
    Ok(())
}

// ---- golden bytes: any change to the stored format must fail here ----

#[test]
fn golden_bytes_of_every_kind() {
    let numbers = |agg: Aggregation, values: &[f64]| {
        let mut state = AggState::new(&agg);
        for v in values {
            state.update_number(*v);
        }
        state
    };
    let moments = Moments {
        count: 4,
        mean: 2.5,
        m2: 5.0,
    };
    let var_payload = "04000000000000044000000000000014 40".replace(' ', "");
    let mut min_by = AggState::new(&Aggregation::MinByN { n: 2 });
    min_by.update_ranked(2.0, Item::Text("ab".into()));
    min_by.update_ranked(1.0, Item::Number(10.0));
    min_by.update_ranked(3.0, Item::Number(1.0));
    let mut max_by = AggState::new(&Aggregation::MaxByN { n: 3 });
    max_by.update_ranked(5.0, Item::Text("x".into()));
    let mut vector_sum = AggState::new(&Aggregation::VectorSum { dim: 2 });
    vector_sum.update_vector(&[0.5, -1.0]).unwrap();
    vector_sum.update_vector(&[0.5, 0.5]).unwrap();

    let cases: Vec<(AggState, String)> = vec![
        (
            numbers(Aggregation::Sum, &[1.0, 0.5]),
            "41000000000000f83f".into(),
        ),
        (
            AggState::new(&Aggregation::Sum),
            "41000000000000f87f".into(),
        ),
        (AggState::Count(300), "42ac02".into()),
        (AggState::new(&Aggregation::Count), "4200".into()),
        (
            numbers(Aggregation::Min, &[3.0, -2.0]),
            "4300000000000000c0".into(),
        ),
        (
            AggState::new(&Aggregation::Min),
            "43000000000000f87f".into(),
        ),
        (
            numbers(Aggregation::Max, &[-1.0, 0.25]),
            "44000000000000d03f".into(),
        ),
        (
            numbers(Aggregation::Mean, &[1.5, 2.5, 3.5]),
            "450000000000001e4003".into(),
        ),
        (
            AggState::new(&Aggregation::Mean),
            "45000000000000000000".into(),
        ),
        (
            numbers(Aggregation::Var { sample: false }, &[1.0, 2.0, 3.0, 4.0]),
            format!("46{var_payload}"),
        ),
        (
            AggState::Var {
                moments,
                sample: true,
            },
            format!("47{var_payload}"),
        ),
        (
            AggState::Std {
                moments,
                sample: false,
            },
            format!("48{var_payload}"),
        ),
        (
            AggState::Std {
                moments,
                sample: true,
            },
            format!("49{var_payload}"),
        ),
        (
            AggState::new(&Aggregation::Var { sample: false }),
            "4600".into(),
        ),
        (
            min_by,
            "4a0202000000000000f03f000000000000002440000000000000004001026162".into(),
        ),
        (max_by, "4b03010000000000001440010178".into()),
        (vector_sum, "4c0202000000000000f03f000000000000e0bf".into()),
        (
            AggState::new(&Aggregation::VectorMean { dim: 3 }),
            "4d0300".into(),
        ),
    ];
    for (state, expected) in cases {
        assert_eq!(hex(&state), expected, "{state:?}");
        assert_eq!(roundtrip(&state), state);
    }
}

#[test]
fn fixed_sizes_match_the_reference_figures() {
    let mut sum = AggState::new(&Aggregation::Sum);
    sum.update_number(1e300);
    assert_eq!(encoded(&sum).len(), 9);
    for agg in [Aggregation::Min, Aggregation::Max] {
        let mut s = AggState::new(&agg);
        s.update_number(-7.0);
        assert_eq!(encoded(&s).len(), 9);
        assert_eq!(encoded(&AggState::new(&agg)).len(), 9);
    }
    let mean = AggState::Mean {
        sum: 1.0,
        count: i64::MAX as u64,
    };
    assert_eq!(encoded(&mean).len(), 18);
    assert_eq!(encoded(&AggState::Count(u64::MAX)).len(), 11);
    // The in-memory state stays small: it is held per (key, bucket) in ingest batches.
    assert!(std::mem::size_of::<AggState>() <= 48);
}

// ---- decode errors ----

fn decode_error(bytes: &[u8]) -> String {
    let e = AggState::decode(bytes).unwrap_err();
    assert_eq!(e.kind, CoreErrorKind::CorruptState);
    e.message
}

#[test]
fn decode_errors_say_what_is_wrong() {
    assert!(decode_error(&[]).contains("empty input"));
    let msg = decode_error(&[(3 << 5) | 1, 0, 0]);
    assert!(
        msg.contains("version 3") && msg.contains("reads versions 1..=2"),
        "{msg}"
    );
    assert!(decode_error(&[0x01]).contains("version 0"));
    assert!(decode_error(&[0x20]).contains("unknown aggregation state kind 0"));
    assert!(decode_error(&[0x3f]).contains("unknown aggregation state kind 31"));
    assert!(decode_error(&[0x20 | 20]).contains("approx_count_distinct"));
    assert!(decode_error(&[0x20 | 22]).contains("approx_percentile"));
    let msg = decode_error(&[0x21, 0, 0, 0]);
    assert!(msg.contains("truncated sum state"), "{msg}");
    // A varint that never ends, and one past 64 bits.
    assert!(decode_error(&[0x22, 0x80, 0x80]).contains("truncated count state"));
    assert!(
        decode_error(&[0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
            .contains("beyond 64 bits")
    );
    assert_eq!(
        AggState::decode(&[0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Ok((AggState::Count(u64::MAX), 11))
    );
    // min_by_n: n = 0, more pairs than n, a bad item tag, invalid UTF-8, out of order.
    assert!(decode_error(&[0x2a, 0x00, 0x00]).contains("n = 0"));
    assert!(decode_error(&[0x2a, 0xe9, 0x07, 0x00]).contains("n = 1001"));
    assert!(decode_error(&[0x2a, 0x01, 0x02]).contains("2 pairs kept with n = 1"));
    let mut bad_tag = vec![0x2a, 0x01, 0x01];
    bad_tag.extend_from_slice(&1.0f64.to_le_bytes());
    bad_tag.push(7);
    assert!(decode_error(&bad_tag).contains("item tag 7"));
    let mut bad_text = vec![0x2a, 0x01, 0x01];
    bad_text.extend_from_slice(&1.0f64.to_le_bytes());
    bad_text.extend_from_slice(&[0x01, 0x02, 0xc3, 0x28]);
    assert!(decode_error(&bad_text).contains("not UTF-8"));
    let mut huge_text = vec![0x2a, 0x01, 0x01];
    huge_text.extend_from_slice(&1.0f64.to_le_bytes());
    huge_text.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_error(&huge_text).contains("truncated min_by_n state"));
    let mut unordered = vec![0x2a, 0x02, 0x02];
    for by in [2.0f64, 1.0] {
        unordered.extend_from_slice(&by.to_le_bytes());
        unordered.push(0);
        unordered.extend_from_slice(&0.0f64.to_le_bytes());
    }
    assert!(decode_error(&unordered).contains("out of order"));
    unordered[0] = 0x2b; // the same pairs are in order for max_by_n
    assert!(AggState::decode(&unordered).is_ok());
    let mut nan_by = vec![0x2a, 0x01, 0x01];
    nan_by.extend_from_slice(&f64::NAN.to_le_bytes());
    nan_by.push(0);
    nan_by.extend_from_slice(&0.0f64.to_le_bytes());
    assert!(decode_error(&nan_by).contains("non-finite"));
    // Vectors: dim 0, dim too large, sums missing.
    assert!(decode_error(&[0x2c, 0x00, 0x00]).contains("dim = 0"));
    assert!(decode_error(&[0x2c, 0x81, 0x80, 0x04, 0x00]).contains("dim = 65537"));
    assert!(decode_error(&[0x2d, 0x80, 0x80, 0x04, 0x01]).contains("needs 524288 bytes"));
    // mean: a sum over no values.
    let mut mean = vec![0x25];
    mean.extend_from_slice(&3.0f64.to_le_bytes());
    mean.push(0);
    assert!(decode_error(&mean).contains("over no values"));
}

// ---- aggregation arguments and names ----

#[test]
fn names_and_validation() {
    let names = [
        (Aggregation::Sum, "sum"),
        (Aggregation::Count, "count"),
        (Aggregation::Min, "min"),
        (Aggregation::Max, "max"),
        (Aggregation::Mean, "mean"),
        (Aggregation::Var { sample: false }, "var"),
        (Aggregation::Var { sample: true }, "var_sample"),
        (Aggregation::Std { sample: false }, "std"),
        (Aggregation::Std { sample: true }, "std_sample"),
        (Aggregation::MinByN { n: 5 }, "min_by_n(5)"),
        (Aggregation::MaxByN { n: 1 }, "max_by_n(1)"),
        (Aggregation::VectorSum { dim: 3 }, "vector_sum(3)"),
        (Aggregation::VectorMean { dim: 384 }, "vector_mean(384)"),
    ];
    for (agg, name) in names {
        assert_eq!(agg.name(), name);
        assert_eq!(agg.validate(), Ok(()));
        assert_eq!(AggState::new(&agg).aggregation(), agg);
    }
    for bad in [
        Aggregation::MinByN { n: 0 },
        Aggregation::MaxByN { n: 1001 },
        Aggregation::VectorSum { dim: 0 },
        Aggregation::VectorMean { dim: 65_537 },
    ] {
        let e = bad.validate().unwrap_err();
        assert_eq!(e.kind, CoreErrorKind::InvalidAggregation);
        assert!(e.message.contains(&bad.name()), "{}", e.message);
    }
    assert!(Aggregation::MaxByN { n: 1000 }.validate().is_ok());
    assert!(Aggregation::VectorSum { dim: 65_536 }.validate().is_ok());
    assert_eq!(
        Aggregation::MinByN { n: 0 }.validate().unwrap_err().message,
        "invalid aggregation min_by_n(0): n must be between 1 and 1000, got 0"
    );
}

// ---- evaluation rules ----

#[test]
fn nothing_is_null_except_count_which_is_zero() {
    for agg in [
        Aggregation::Sum,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Mean,
        Aggregation::Var { sample: false },
        Aggregation::Std { sample: true },
        Aggregation::MinByN { n: 2 },
        Aggregation::MaxByN { n: 2 },
        Aggregation::VectorSum { dim: 2 },
        Aggregation::VectorMean { dim: 2 },
    ] {
        let state = AggState::new(&agg);
        assert!(state.is_empty());
        assert_eq!(state.evaluate(), AggValue::Null, "{}", agg.name());
    }
    assert_eq!(
        AggState::new(&Aggregation::Count).evaluate(),
        AggValue::Count(0)
    );
}

#[test]
fn non_finite_numbers_are_null_everywhere() {
    for agg in [
        Aggregation::Sum,
        Aggregation::Count,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Mean,
        Aggregation::Var { sample: false },
    ] {
        let mut state = AggState::new(&agg);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            state.update_number(v);
            state.update_item(&Item::Number(v)).unwrap();
        }
        assert!(state.is_empty(), "{}", agg.name());
    }
    let mut ranked = AggState::new(&Aggregation::MinByN { n: 3 });
    ranked.update_ranked(f64::NAN, Item::Number(1.0));
    ranked.update_ranked(f64::NEG_INFINITY, Item::Number(1.0));
    assert!(ranked.is_empty());
    let mut vector = AggState::new(&Aggregation::VectorMean { dim: 2 });
    vector.update_vector(&[1.0, f64::NAN]).unwrap();
    assert!(vector.is_empty());
    vector.update_vector(&[1.0, 3.0]).unwrap();
    vector.update_vector(&[f64::INFINITY, 3.0]).unwrap();
    vector.update_vector(&[3.0, 5.0]).unwrap();
    assert_eq!(vector.evaluate(), AggValue::Vector(vec![2.0, 4.0]));
}

#[test]
fn sum_of_zero_is_a_value_and_overflow_both_ways_is_null() {
    let mut sum = AggState::new(&Aggregation::Sum);
    sum.update_number(1.0);
    sum.update_number(-1.0);
    assert_eq!(sum.evaluate(), AggValue::Number(0.0));
    let mut up = AggState::new(&Aggregation::Sum);
    up.update_number(f64::MAX);
    up.update_number(f64::MAX);
    assert_eq!(up.evaluate(), AggValue::Number(f64::INFINITY));
    let mut down = AggState::new(&Aggregation::Sum);
    down.update_number(-f64::MAX);
    down.update_number(-f64::MAX);
    up.merge(&down).unwrap();
    assert_eq!(up.evaluate(), AggValue::Null);
}

#[test]
fn variance_needs_two_values_for_population_and_sample() {
    for agg in [
        Aggregation::Var { sample: false },
        Aggregation::Var { sample: true },
        Aggregation::Std { sample: false },
        Aggregation::Std { sample: true },
    ] {
        let mut state = AggState::new(&agg);
        state.update_number(5.0);
        assert!(!state.is_empty());
        assert_eq!(state.evaluate(), AggValue::Null, "{}", agg.name());
    }
    let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let eval = |agg: Aggregation| {
        let mut state = AggState::new(&agg);
        values.iter().for_each(|v| state.update_number(*v));
        state.evaluate()
    };
    assert_eq!(
        eval(Aggregation::Var { sample: false }),
        AggValue::Number(4.0)
    );
    assert_eq!(
        eval(Aggregation::Std { sample: false }),
        AggValue::Number(2.0)
    );
    assert_eq!(
        eval(Aggregation::Var { sample: true }),
        AggValue::Number(32.0 / 7.0)
    );
    assert_eq!(
        eval(Aggregation::Std { sample: true }),
        AggValue::Number((32.0f64 / 7.0).sqrt())
    );
}

#[test]
fn mean_min_max_count() {
    let eval = |agg: Aggregation| {
        let mut state = AggState::new(&agg);
        for v in [3.0, f64::NAN, -1.0, 4.0] {
            state.update_number(v);
        }
        state.evaluate()
    };
    assert_eq!(eval(Aggregation::Mean), AggValue::Number(2.0));
    assert_eq!(eval(Aggregation::Min), AggValue::Number(-1.0));
    assert_eq!(eval(Aggregation::Max), AggValue::Number(4.0));
    assert_eq!(eval(Aggregation::Count), AggValue::Count(3));
    assert_eq!(eval(Aggregation::Sum), AggValue::Number(6.0));
}

#[test]
fn signed_zeros_give_the_same_extremum_in_any_order() {
    for agg in [Aggregation::Min, Aggregation::Max] {
        let mut a = AggState::new(&agg);
        a.update_number(0.0);
        a.update_number(-0.0);
        let mut b = AggState::new(&agg);
        b.update_number(-0.0);
        b.update_number(0.0);
        assert_eq!(encoded(&a), encoded(&b));
    }
}

#[test]
fn ranked_keeps_the_best_pairs_best_first_with_duplicates() {
    let mut min = AggState::new(&Aggregation::MinByN { n: 3 });
    let mut max = AggState::new(&Aggregation::MaxByN { n: 3 });
    let pairs = [
        (3.0, Item::Text("c".into())),
        (1.0, Item::Text("b".into())),
        (1.0, Item::Text("a".into())),
        (2.0, Item::Number(7.0)),
        (1.0, Item::Text("a".into())),
        (9.0, Item::Text("z".into())),
        (9.0, Item::Number(1.0)),
    ];
    for (by, item) in pairs {
        min.update_ranked(by, item.clone());
        max.update_ranked(by, item);
    }
    assert_eq!(
        min.evaluate(),
        AggValue::Items(vec![
            Item::Text("a".into()),
            Item::Text("a".into()),
            Item::Text("b".into())
        ])
    );
    // Among equal `by`s max_by_n prefers the larger item: the reverse of one pair order.
    assert_eq!(
        max.evaluate(),
        AggValue::Items(vec![
            Item::Text("z".into()),
            Item::Number(1.0),
            Item::Text("c".into())
        ])
    );
    if let AggState::MinByN(ranked) = &min {
        assert_eq!(ranked.n(), 3);
        assert_eq!(ranked.pairs()[0].0, 1.0);
    }
}

#[test]
fn update_item_counts_text_and_rejects_misfits() {
    let mut count = AggState::new(&Aggregation::Count);
    count.update_item(&Item::Text("x".into())).unwrap();
    count.update_item(&Item::Text(String::new())).unwrap();
    count.update_item(&Item::Number(2.0)).unwrap();
    count.update_item(&Item::Number(f64::NAN)).unwrap();
    assert_eq!(count.evaluate(), AggValue::Count(3));

    let mut sum = AggState::new(&Aggregation::Sum);
    sum.update_item(&Item::Number(2.5)).unwrap();
    assert_eq!(sum.evaluate(), AggValue::Number(2.5));
    let e = sum.update_item(&Item::Text("abc".into())).unwrap_err();
    assert_eq!(e.kind, CoreErrorKind::InvalidInput);
    assert_eq!(e.message, "sum aggregates numbers, got the text 'abc'");
    assert_eq!(sum.evaluate(), AggValue::Number(2.5));

    let mut ranked = AggState::new(&Aggregation::MaxByN { n: 2 });
    let e = ranked.update_item(&Item::Number(1.0)).unwrap_err();
    assert!(e.message.contains("max_by_n(2)") && e.message.contains("pairs"));
    let mut vector = AggState::new(&Aggregation::VectorSum { dim: 2 });
    let e = vector.update_item(&Item::Text("v".into())).unwrap_err();
    assert!(e.message.contains("vector_sum(2)") && e.message.contains("vectors"));
}

#[test]
fn update_vector_names_the_expected_dimension() {
    let mut vector = AggState::new(&Aggregation::VectorMean { dim: 3 });
    let e = vector.update_vector(&[1.0, 2.0]).unwrap_err();
    assert_eq!(e.kind, CoreErrorKind::InvalidInput);
    assert_eq!(
        e.message,
        "vector_mean(3) expects vectors of dimension 3, got dimension 2"
    );
    let e = AggState::new(&Aggregation::Sum)
        .update_vector(&[1.0])
        .unwrap_err();
    assert_eq!(e.kind, CoreErrorKind::InvalidInput);
}

#[test]
fn plain_numbers_and_pairs_do_not_leak_into_other_kinds() {
    let mut ranked = AggState::new(&Aggregation::MinByN { n: 2 });
    ranked.update_number(1.0);
    assert!(ranked.is_empty());
    let mut sum = AggState::new(&Aggregation::Sum);
    sum.update_ranked(1.0, Item::Number(1.0));
    assert!(sum.is_empty());
}

#[test]
fn merge_rejects_other_kinds_and_arguments() {
    let cases = [
        (
            Aggregation::Sum,
            Aggregation::Count,
            "cannot merge a count state into a sum state",
        ),
        (
            Aggregation::Var { sample: false },
            Aggregation::Var { sample: true },
            "cannot merge a var_sample state into a var state",
        ),
        (
            Aggregation::Var { sample: false },
            Aggregation::Std { sample: false },
            "cannot merge a std state into a var state",
        ),
        (
            Aggregation::MinByN { n: 3 },
            Aggregation::MinByN { n: 5 },
            "cannot merge a min_by_n(5) state into a min_by_n(3) state",
        ),
        (
            Aggregation::MinByN { n: 3 },
            Aggregation::MaxByN { n: 3 },
            "cannot merge a max_by_n(3) state into a min_by_n(3) state",
        ),
        (
            Aggregation::VectorSum { dim: 2 },
            Aggregation::VectorSum { dim: 3 },
            "cannot merge a vector_sum(3) state into a vector_sum(2) state",
        ),
        (
            Aggregation::VectorSum { dim: 2 },
            Aggregation::VectorMean { dim: 2 },
            "cannot merge a vector_mean(2) state into a vector_sum(2) state",
        ),
    ];
    for (into, from, message) in cases {
        let mut state = AggState::new(&into);
        state.update_number(1.0);
        let before = state.clone();
        let e = state.merge(&AggState::new(&from)).unwrap_err();
        assert_eq!(e.kind, CoreErrorKind::StateMismatch);
        assert_eq!(e.message, message);
        assert_eq!(state, before);
    }
}

proptest! {
    /// Values bunched near a large mean are the hard case for variance: the spread is
    /// tiny next to the mean, so rounding in the mean shows in M2.
    #[test]
    fn spread_is_accurate_for_clustered_values(
        base in -4000i32..4000,
        offsets in vec(0i32..3, 2..60),
        cuts in vec(any::<Index>(), 0..6),
        picks in vec(any::<Index>(), 0..12),
    ) {
        let rows: Vec<Row> = offsets
            .iter()
            .map(|o| Row {
                value: f64::from(base + o) * 0.25,
                by: 0.0,
                item: Item::Number(0.0),
                vector: [0.0; VECTOR_LEN],
            })
            .collect();
        for agg in [Aggregation::Var { sample: false }, Aggregation::Std { sample: true }] {
            let expected = naive(&agg, &rows);
            let whole = fold_all(&agg, &rows).evaluate();
            let merged = fold_partitioned(&agg, &rows, &cuts, &picks).evaluate();
            prop_assert!(close(&whole, &expected), "{:?} vs {:?}", whole, expected);
            prop_assert!(close(&merged, &expected), "{:?} vs {:?}", merged, expected);
        }
    }
}
