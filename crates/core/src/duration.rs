//! Durations as users write them in feature definitions (`"10m"`, `"1h30m"`, `"all"`),
//! parsed into milliseconds and printed back in one canonical form.

use crate::error::{CoreError, CoreErrorKind, CoreResult};

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;

/// The longest window, 36,500 days (100 years): what `"infinity"` and `"all"` mean.
pub const MAX_DURATION_MS: i64 = 36_500 * 86_400_000;

/// Units accepted when parsing. Weeks are accepted but never printed (a week prints as
/// `7d`), so that each duration has exactly one canonical spelling.
const PARSE_UNITS: [(&str, i64); 6] = [
    ("w", WEEK_MS),
    ("d", DAY_MS),
    ("h", HOUR_MS),
    ("m", MINUTE_MS),
    ("s", SECOND_MS),
    ("ms", 1),
];

/// Units used when printing, largest first.
const PRINT_UNITS: [(&str, i64); 5] = [
    ("d", DAY_MS),
    ("h", HOUR_MS),
    ("m", MINUTE_MS),
    ("s", SECOND_MS),
    ("ms", 1),
];

const VALID_EXAMPLES: &str = "valid examples: '10m', '1h', '1h30m'";

fn invalid(input: &str, problem: impl std::fmt::Display) -> CoreError {
    CoreError::new(
        CoreErrorKind::InvalidDuration,
        format!("invalid duration '{input}': {problem}; {VALID_EXAMPLES}"),
    )
}

/// Parses a duration into milliseconds.
///
/// Accepted forms:
/// - parts of a whole number and a unit (`w`, `d`, `h`, `m`, `s`, `ms`), combined in one
///   string (`1h30m`, `1d 12h`), each unit at most once, spaces allowed between parts;
/// - a bare whole number, meaning seconds (`"600"` is ten minutes);
/// - `"infinity"` or `"all"`, meaning [`MAX_DURATION_MS`];
/// - any of the numeric forms with a leading `-` for a negative duration.
///
/// `ms` is read greedily, so `1ms` is one millisecond and `1m5s` is 65 seconds.
///
/// ```
/// use tessera_core::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
/// assert_eq!(parse_duration("600").unwrap(), 600_000);
/// assert!(parse_duration("1x").is_err());
/// ```
pub fn parse_duration(input: &str) -> CoreResult<i64> {
    let text = input.trim();
    if text.is_empty() {
        return Err(invalid(input, "empty duration"));
    }
    if text == "infinity" || text == "all" {
        return Ok(MAX_DURATION_MS);
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    // The sign belongs to the first number: "- 1h" and a lone "-" are not durations.
    if body.is_empty() || body.starts_with(|c: char| c.is_whitespace()) {
        return Err(invalid(input, "unknown part '-'"));
    }

    // Summed in i128 so that i64::MIN (whose magnitude exceeds i64::MAX) still parses.
    let magnitude: i128 = if body.bytes().all(|b| b.is_ascii_digit()) {
        parse_count(input, body, body)? * i128::from(SECOND_MS)
    } else {
        parse_parts(input, body)?
    };
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| invalid(input, format!("out of range '{text}'")))
}

/// Sums the `<number><unit>` parts of `body`.
fn parse_parts(input: &str, body: &str) -> CoreResult<i128> {
    let bytes = body.as_bytes();
    let mut seen = [false; PARSE_UNITS.len()];
    let mut total: i128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &body[start..i];
        let mut fractional = false;
        if i < bytes.len() && bytes[i] == b'.' {
            fractional = true;
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        // A unit is the run up to the next digit, space or dot. Those are all ASCII, so
        // the slice boundaries are always char boundaries.
        let unit_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_digit()
            && !bytes[i].is_ascii_whitespace()
            && bytes[i] != b'.'
        {
            i += 1;
        }
        let part = &body[start..i];
        let unit = &body[unit_start..i];
        if fractional {
            return Err(invalid(input, format!("fractional number '{part}'")));
        }
        if digits.is_empty() {
            return Err(invalid(input, format!("unknown part '{part}'")));
        }
        if unit.is_empty() {
            return Err(invalid(input, format!("missing unit in '{part}'")));
        }
        let Some(slot) = PARSE_UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(input, format!("unknown part '{part}'")));
        };
        if seen[slot] {
            return Err(invalid(
                input,
                format!("repeated unit '{unit}' in '{part}'"),
            ));
        }
        seen[slot] = true;
        total += parse_count(input, digits, part)? * i128::from(PARSE_UNITS[slot].1);
        if total > i128::from(i64::MAX) + 1 {
            return Err(invalid(input, format!("out of range '{}'", body.trim())));
        }
    }
    Ok(total)
}

/// Parses the whole number of one part. Anything past u64 cannot be a duration.
fn parse_count(input: &str, digits: &str, part: &str) -> CoreResult<i128> {
    digits
        .parse::<u64>()
        .map(i128::from)
        .map_err(|_| invalid(input, format!("out of range '{part}'")))
}

/// Prints a duration canonically: largest unit first (`d`, `h`, `m`, `s`, `ms`; weeks
/// print as days), no zero parts, `0s` for zero, a leading `-` when negative, and
/// `infinity` for anything at or above [`MAX_DURATION_MS`].
///
/// `parse_duration(&format_duration(x)) == x` for every `x` below [`MAX_DURATION_MS`].
///
/// ```
/// use tessera_core::format_duration;
/// assert_eq!(format_duration(90_061_005), "1d1h1m1s5ms");
/// assert_eq!(format_duration(604_800_000), "7d");
/// ```
pub fn format_duration(ms: i64) -> String {
    if ms >= MAX_DURATION_MS {
        return "infinity".to_owned();
    }
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    // unsigned_abs: i64::MIN has no positive i64 counterpart.
    let mut rest = ms.unsigned_abs();
    for (unit, size) in PRINT_UNITS {
        let size = size.unsigned_abs();
        let count = rest / size;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(input: &str) -> String {
        let e = parse_duration(input).unwrap_err();
        assert_eq!(e.kind, CoreErrorKind::InvalidDuration);
        e.message
    }

    #[test]
    fn parses_the_examples_of_the_semantics_note() {
        let cases = [
            ("10m", 10 * MINUTE_MS),
            ("30m", 30 * MINUTE_MS),
            ("1d", DAY_MS),
            ("7d", 7 * DAY_MS),
            ("1w", WEEK_MS),
            ("1h30m", HOUR_MS + 30 * MINUTE_MS),
            ("1d12h", DAY_MS + 12 * HOUR_MS),
            ("1d1h1m1s5ms", DAY_MS + HOUR_MS + MINUTE_MS + SECOND_MS + 5),
            ("1h 30m", HOUR_MS + 30 * MINUTE_MS),
            ("  1d  12h ", DAY_MS + 12 * HOUR_MS),
            ("30m1h", HOUR_MS + 30 * MINUTE_MS),
            ("-1h", -HOUR_MS),
            ("-1h30m", -(HOUR_MS + 30 * MINUTE_MS)),
            ("500ms", 500),
            ("1m500ms", MINUTE_MS + 500),
            ("1ms1m", MINUTE_MS + 1),
            ("600", 600 * SECOND_MS),
            ("-600", -600 * SECOND_MS),
            ("0", 0),
            ("0s", 0),
            ("infinity", MAX_DURATION_MS),
            ("all", MAX_DURATION_MS),
            ("36500d", MAX_DURATION_MS),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn errors_name_the_input_and_the_bad_part() {
        assert_eq!(
            err("1x"),
            "invalid duration '1x': unknown part '1x'; valid examples: '10m', '1h', '1h30m'"
        );
        assert_eq!(
            err(""),
            "invalid duration '': empty duration; valid examples: '10m', '1h', '1h30m'"
        );
        assert_eq!(
            err("   "),
            "invalid duration '   ': empty duration; valid examples: '10m', '1h', '1h30m'"
        );
        assert_eq!(
            err("1h2h"),
            "invalid duration '1h2h': repeated unit 'h' in '2h'; valid examples: '10m', '1h', '1h30m'"
        );
        assert_eq!(
            err("1.5h"),
            "invalid duration '1.5h': fractional number '1.5h'; valid examples: '10m', '1h', '1h30m'"
        );
        assert!(err("1h30").contains("missing unit in '30'"));
        assert!(err("h").contains("unknown part 'h'"));
        assert!(err("1mins").contains("unknown part '1mins'"));
        assert!(err("1H").contains("unknown part '1H'"));
        assert!(err("1 h").contains("missing unit in '1'"));
        assert!(err("-").contains("unknown part '-'"));
        assert!(err("- 1h").contains("unknown part '-'"));
        assert!(err("--1h").contains("unknown part '-'"));
        assert!(err("-infinity").contains("unknown part 'infinity'"));
        assert!(err("1é").contains("unknown part '1é'"));
        assert!(err("99999999999999999999999d").contains("out of range '99999999999999999999999d'"));
        assert!(err("9223372036854775808").contains("out of range"));
        assert!(err("200000000000d").contains("out of range '200000000000d'"));
        assert!(err("106751991167d7h12m55s808ms").contains("out of range"));
    }

    #[test]
    fn extremes_of_i64_parse() {
        assert_eq!(parse_duration("-106751991167d7h12m55s808ms"), Ok(i64::MIN));
        assert_eq!(parse_duration("106751991167d7h12m55s807ms"), Ok(i64::MAX));
    }

    #[test]
    fn formats_canonically() {
        let cases = [
            (0, "0s"),
            (5, "5ms"),
            (SECOND_MS, "1s"),
            (10 * MINUTE_MS, "10m"),
            (HOUR_MS + 30 * MINUTE_MS, "1h30m"),
            (WEEK_MS, "7d"),
            (DAY_MS + HOUR_MS + MINUTE_MS + SECOND_MS + 5, "1d1h1m1s5ms"),
            (DAY_MS + 5, "1d5ms"),
            (-HOUR_MS, "-1h"),
            (MAX_DURATION_MS - 1, "36499d23h59m59s999ms"),
            (MAX_DURATION_MS, "infinity"),
            (i64::MAX, "infinity"),
            (-MAX_DURATION_MS, "-36500d"),
            (i64::MIN, "-106751991167d7h12m55s808ms"),
        ];
        for (ms, expected) in cases {
            assert_eq!(format_duration(ms), expected, "{ms}");
        }
    }

    #[test]
    fn round_trips_at_the_edges() {
        for ms in [0, 1, -1, 999, 1000, 59_999, i64::MIN, MAX_DURATION_MS - 1] {
            assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }
        assert_eq!(
            parse_duration(&format_duration(i64::MAX)),
            Ok(MAX_DURATION_MS)
        );
    }

    proptest! {
        #[test]
        fn parse_inverts_format(ms in i64::MIN..MAX_DURATION_MS) {
            prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }

        #[test]
        fn parse_inverts_format_for_short_durations(ms in -10_000_000i64..10_000_000) {
            prop_assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }

        #[test]
        fn format_inverts_parse_of_canonical_parts(
            d in 0i64..36_500, h in 0i64..24, m in 0i64..60, s in 0i64..60, ms in 0i64..1000,
        ) {
            let total = d * DAY_MS + h * HOUR_MS + m * MINUTE_MS + s * SECOND_MS + ms;
            let text = format_duration(total);
            prop_assert_eq!(parse_duration(&text), Ok(total));
            // No zero parts: every number printed is non-zero (except the lone "0s").
            if total != 0 {
                prop_assert!(!text.starts_with('0'));
                prop_assert!(!["d0", "h0", "m0", "s0"].iter().any(|p| text.contains(p)));
            }
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,12}") {
            let _ = parse_duration(&input);
        }

        #[test]
        fn parse_never_panics_on_duration_like_input(input in "[-0-9.wdhms ]{0,16}") {
            let _ = parse_duration(&input);
        }
    }
}
