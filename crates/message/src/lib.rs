//! Stream messages decoded in bulk: JSON objects checked against a flat message schema
//! (fields of string, number or boolean type, optional or nullable) and the values that
//! a resolver writes pulled out into columns. Its own crate, so that only this decoder
//! (and the store's records) depend on serde, never the core.
//!
//! This is the fast path of a declarative stream resolver whose schema has this simple
//! shape. It is deliberately conservative: a message it *accepts* yields exactly what the
//! general path (`JSON.parse`, the schema, the resolver's mapping) would make of it, and
//! anything else (not JSON, not an object, a field of the wrong type, a missing or null
//! output, an unusual timestamp, bytes that are not UTF-8) is handed back undecided, for
//! the general path to accept, or to turn into a dead letter with its exact reason.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// The JSON type a schema field requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Number,
    Boolean,
}

/// One top-level field of the message schema.
#[derive(Debug, Clone)]
pub struct MessageField {
    pub name: String,
    pub field_type: FieldType,
    /// May be absent.
    pub optional: bool,
    /// May be `null`.
    pub nullable: bool,
}

/// How a value is written to its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// Any (finite) number.
    Float,
    /// A whole number within 2^53.
    Int,
    /// `true` / `false` as 1 / 0.
    Bool,
    /// A zoned ISO-8601 date-time string, as Unix milliseconds.
    Time,
    /// A string.
    String,
}

/// A value the resolver writes: which field, as what.
#[derive(Debug, Clone, Copy)]
pub struct MessageOutput {
    pub field: usize,
    pub kind: OutputKind,
    /// A missing or null value is NaN (a null the aggregations skip) rather than a reason
    /// to leave the message to the general path. Numeric kinds only.
    pub nullable: bool,
    /// The value is returned; otherwise it is only checked (its column stays empty).
    pub keep: bool,
}

/// A string column, dictionary-encoded: row `r` holds `dict[codes[r]]`, or nothing when
/// the code is [`NO_STRING`] (an undecided message).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StringColumn {
    pub dict: Vec<String>,
    pub codes: Vec<u32>,
}

/// The code of a row without a string.
pub const NO_STRING: u32 = u32::MAX;

impl StringColumn {
    /// Row `r`'s string, if it has one.
    pub fn get(&self, r: usize) -> Option<&str> {
        let code = *self.codes.get(r)?;
        self.dict.get(code as usize).map(String::as_str)
    }
}

/// The columns of a decoded batch. Output `o` is in `numbers[o]` (Float, Int, Bool,
/// Time) or `strings[o]` (String); the other, and both for an output not kept, are empty.
/// Rows of undecided messages hold NaN / [`NO_STRING`].
#[derive(Debug, Default)]
pub struct DecodedMessages {
    /// Per message: 1 when decoded here, 0 when the general path must decide.
    pub decoded: Vec<u8>,
    pub numbers: Vec<Vec<f64>>,
    pub strings: Vec<StringColumn>,
}

/// A compiled message schema and the outputs read from it.
#[derive(Debug, Clone)]
pub struct MessagePlan {
    fields: Vec<MessageField>,
    outputs: Vec<MessageOutput>,
    /// For each field: the outputs that read it.
    readers: Vec<Vec<usize>>,
}

/// What one field of one message held.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    Absent,
    Null,
    /// Present with the required type; the outputs have been written.
    Value,
}

impl MessagePlan {
    /// # Errors
    /// A description of the problem when an output names no field, or a kind does not fit
    /// its field's type (a bug of the caller, not of a message).
    pub fn new(fields: Vec<MessageField>, outputs: Vec<MessageOutput>) -> Result<Self, String> {
        let mut readers = vec![Vec::new(); fields.len()];
        for (o, output) in outputs.iter().enumerate() {
            let field = fields.get(output.field).ok_or_else(|| {
                format!(
                    "output {o} reads field {}, of {}",
                    output.field,
                    fields.len()
                )
            })?;
            let fits = match output.kind {
                OutputKind::Float | OutputKind::Int => field.field_type == FieldType::Number,
                OutputKind::Bool => field.field_type == FieldType::Boolean,
                OutputKind::Time | OutputKind::String => field.field_type == FieldType::String,
            };
            if !fits {
                return Err(format!(
                    "output {o} reads field '{}' ({:?}) as {:?}",
                    field.name, field.field_type, output.kind
                ));
            }
            if output.nullable && output.kind == OutputKind::String {
                return Err(format!(
                    "output {o} (field '{}'): a string output cannot be nullable",
                    field.name
                ));
            }
            readers[output.field].push(o);
        }
        Ok(Self {
            fields,
            outputs,
            readers,
        })
    }

    fn field_index(&self, name: &str) -> Option<usize> {
        // Message schemas are small: a scan beats hashing the key.
        self.fields.iter().position(|f| f.name == name)
    }

    /// Decodes every message it can; see the module documentation for which it leaves.
    /// Messages are given as slices (`messages`), or as one buffer and the `n + 1`
    /// offsets that bound them (see [`MessagePlan::decode_concatenated`]).
    pub fn decode_batch<'a>(
        &self,
        messages: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> DecodedMessages {
        let n = messages.len();
        let mut out = DecodedMessages {
            decoded: vec![0; n],
            numbers: Vec::with_capacity(self.outputs.len()),
            strings: Vec::with_capacity(self.outputs.len()),
        };
        for output in &self.outputs {
            let is_string = output.kind == OutputKind::String;
            let rows = |yes: bool| if yes && output.keep { n } else { 0 };
            out.numbers.push(vec![f64::NAN; rows(!is_string)]);
            out.strings.push(StringColumn {
                dict: Vec::new(),
                codes: vec![NO_STRING; rows(is_string)],
            });
        }
        // Per string output: its dictionary's index, so each distinct string is kept once.
        let mut interned: Vec<HashMap<String, u32>> = vec![HashMap::new(); self.outputs.len()];
        let mut seen = vec![Seen::Absent; self.fields.len()];
        for (row, bytes) in messages.enumerate() {
            seen.fill(Seen::Absent);
            let mut sink = RowSink {
                plan: self,
                row,
                out: &mut out,
                interned: &mut interned,
                seen: &mut seen,
            };
            if sink.decode(bytes) && self.complete(&seen) {
                out.decoded[row] = 1;
            } else {
                for (o, output) in self.outputs.iter().enumerate() {
                    if !output.keep {
                        continue;
                    }
                    if output.kind == OutputKind::String {
                        // Its string stays in the dictionary, unused: harmless.
                        out.strings[o].codes[row] = NO_STRING;
                    } else {
                        out.numbers[o][row] = f64::NAN;
                    }
                }
            }
        }
        out
    }

    /// [`MessagePlan::decode_batch`] of the messages `bytes[offsets[i]..offsets[i + 1]]`.
    ///
    /// # Errors
    /// When the offsets do not rise within `bytes`.
    pub fn decode_concatenated(
        &self,
        bytes: &[u8],
        offsets: &[u32],
    ) -> Result<DecodedMessages, String> {
        let bounds = offsets.windows(2);
        if offsets.is_empty()
            || offsets
                .last()
                .is_some_and(|&end| end as usize > bytes.len())
            || bounds.clone().any(|w| w[0] > w[1])
        {
            return Err(format!(
                "{} offsets do not bound messages within {} bytes",
                offsets.len(),
                bytes.len()
            ));
        }
        Ok(self.decode_batch(bounds.map(|w| &bytes[w[0] as usize..w[1] as usize])))
    }

    /// Every required field is there, and every output has a value or may be null.
    fn complete(&self, seen: &[Seen]) -> bool {
        let nullable = |f: usize| self.readers[f].iter().all(|&o| self.outputs[o].nullable);
        self.fields
            .iter()
            .zip(seen)
            .enumerate()
            .all(|(f, (field, &s))| match s {
                Seen::Value => true,
                // The field's schema allowed the null (visit_unit checks it).
                Seen::Null => nullable(f),
                Seen::Absent => field.optional && nullable(f),
            })
    }
}

struct RowSink<'p> {
    plan: &'p MessagePlan,
    row: usize,
    out: &'p mut DecodedMessages,
    interned: &'p mut [HashMap<String, u32>],
    seen: &'p mut [Seen],
}

impl RowSink<'_> {
    fn decode(&mut self, bytes: &[u8]) -> bool {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        de::Deserializer::deserialize_map(&mut deserializer, &mut *self).is_ok()
            && deserializer.end().is_ok()
    }

    fn write_number(&mut self, field: usize, v: f64) -> bool {
        for &o in &self.plan.readers[field] {
            let output = self.plan.outputs[o];
            if output.kind == OutputKind::Int
                && !(v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_991.0)
            {
                return false;
            }
            if output.keep {
                self.out.numbers[o][self.row] = v;
            }
        }
        true
    }

    fn write_bool(&mut self, field: usize, v: bool) {
        for &o in &self.plan.readers[field] {
            if self.plan.outputs[o].keep {
                self.out.numbers[o][self.row] = if v { 1.0 } else { 0.0 };
            }
        }
    }

    fn write_str(&mut self, field: usize, v: &str) -> bool {
        for &o in &self.plan.readers[field] {
            let output = self.plan.outputs[o];
            match output.kind {
                OutputKind::Time => match iso_ms(v) {
                    Some(ms) if output.keep => self.out.numbers[o][self.row] = ms,
                    Some(_) => {}
                    None => return false,
                },
                _ if output.keep => {
                    let column = &mut self.out.strings[o];
                    let code = match self.interned[o].get(v) {
                        Some(&code) => code,
                        None => {
                            let code = column.dict.len() as u32;
                            column.dict.push(v.to_owned());
                            self.interned[o].insert(v.to_owned(), code);
                            code
                        }
                    };
                    column.codes[self.row] = code;
                }
                _ => {}
            }
        }
        true
    }
}

/// Not an error a caller sees: any failure sends the message to the general path.
#[derive(Debug)]
struct Undecided;

impl fmt::Display for Undecided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the general path")
    }
}

impl std::error::Error for Undecided {}

impl de::Error for Undecided {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Undecided
    }
}

impl<'de> Visitor<'de> for &mut RowSink<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(FieldKey(self.plan))? {
            match key {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(field) => {
                    // A repeated key: the last one wins, as with JSON.parse.
                    let seen = map.next_value_seed(FieldValue { sink: self, field })?;
                    self.seen[field] = seen;
                }
            }
        }
        Ok(())
    }
}

/// Reads a key as the index of the schema field it names, if any.
struct FieldKey<'p>(&'p MessagePlan);

impl<'de> DeserializeSeed<'de> for FieldKey<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.field_index(v))
    }
}

/// Reads one field's value, checking its type and writing the outputs that read it.
struct FieldValue<'s, 'p> {
    sink: &'s mut RowSink<'p>,
    field: usize,
}

impl<'de> DeserializeSeed<'de> for FieldValue<'_, '_> {
    type Value = Seen;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Seen, D::Error> {
        d.deserialize_any(self)
    }
}

impl FieldValue<'_, '_> {
    fn field(&self) -> &MessageField {
        &self.sink.plan.fields[self.field]
    }

    fn number<E: de::Error>(self, v: f64) -> Result<Seen, E> {
        if self.field().field_type != FieldType::Number || !v.is_finite() {
            return Err(E::custom(Undecided));
        }
        if self.sink.write_number(self.field, v) {
            Ok(Seen::Value)
        } else {
            Err(E::custom(Undecided))
        }
    }
}

impl<'de> Visitor<'de> for FieldValue<'_, '_> {
    type Value = Seen;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value of the schema's type")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Seen, E> {
        if self.field().nullable {
            Ok(Seen::Null)
        } else {
            Err(E::custom(Undecided))
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Seen, E> {
        if self.field().field_type != FieldType::Boolean {
            return Err(E::custom(Undecided));
        }
        self.sink.write_bool(self.field, v);
        Ok(Seen::Value)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seen, E> {
        self.number(v)
    }

    // Integers convert to the nearest double, as JSON.parse reads them.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seen, E> {
        self.number(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seen, E> {
        self.number(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Seen, E> {
        if self.field().field_type != FieldType::String {
            return Err(E::custom(Undecided));
        }
        if self.sink.write_str(self.field, v) {
            Ok(Seen::Value)
        } else {
            Err(E::custom(Undecided))
        }
    }
}

fn digits(s: &[u8], from: usize, count: usize) -> Option<u32> {
    s.get(from..from + count)?.iter().try_fold(0u32, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS[.fff...](Z|z|+HH:MM|-HH:MM)` as Unix milliseconds, exactly as
/// the TypeScript conversion path reads it (`ts/rows/time.ts`: fractions truncated to the
/// millisecond); `None` for any other shape, a date that is not on the calendar
/// (`2026-02-30`), or a year before 1000, so that the general path decides (and refuses
/// the impossible date with its reason).
pub fn iso_ms(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let n = b.len();
    if n < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if year < 1000
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b[i] == b'.' {
        // Truncated to the millisecond: digits past the third count for nothing.
        let mut scale = 100;
        i += 1;
        let start = i;
        while i < n && b[i].is_ascii_digit() {
            ms += i64::from(b[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == n => 0i64,
        &sign @ (b'+' | b'-') if i + 6 == n && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    if day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    Some((seconds * 1000 + ms - offset_minutes * 60_000) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> MessagePlan {
        let field = |name: &str, field_type, optional, nullable| MessageField {
            name: name.into(),
            field_type,
            optional,
            nullable,
        };
        MessagePlan::new(
            vec![
                field("user", FieldType::String, false, false),
                field("amount", FieldType::Number, false, false),
                field("ts", FieldType::String, false, false),
                field("note", FieldType::String, true, true),
                field("flag", FieldType::Boolean, true, false),
                field("n", FieldType::Number, true, false),
            ],
            vec![
                MessageOutput {
                    field: 0,
                    kind: OutputKind::String,
                    nullable: false,
                    keep: true,
                },
                MessageOutput {
                    field: 1,
                    kind: OutputKind::Float,
                    nullable: false,
                    keep: true,
                },
                MessageOutput {
                    field: 2,
                    kind: OutputKind::Time,
                    nullable: false,
                    keep: true,
                },
            ],
        )
        .unwrap()
    }

    fn decode(messages: &[&str]) -> DecodedMessages {
        plan().decode_batch(messages.iter().map(|m| m.as_bytes()))
    }

    #[test]
    fn decodes_good_messages_into_columns() {
        let out = decode(&[
            r#"{"user":"u1","amount":12.5,"ts":"2026-01-31T12:00:00Z","other":[1,{"x":2}]}"#,
            r#" {"ts":"2026-01-31T14:00:00.1239+02:00","amount":-3,"user":"\u00e9\"","note":null,"flag":true} "#,
            r#"{"user":"a","user":"b","amount":1e3,"ts":"2026-01-31T12:00:00z","n":1}"#,
        ]);
        assert_eq!(out.decoded, vec![1, 1, 1]);
        let ids: Vec<_> = (0..3).map(|r| out.strings[0].get(r)).collect();
        assert_eq!(ids, vec![Some("u1"), Some("é\""), Some("b")]);
        assert_eq!(out.numbers[1], vec![12.5, -3.0, 1000.0]);
        let noon = 1_769_860_800_000.0;
        assert_eq!(out.numbers[2], vec![noon, noon + 123.0, noon]);
    }

    #[test]
    fn leaves_everything_else_to_the_general_path() {
        let out = decode(&[
            "",
            "not json",
            "[1,2]",
            r#"{"user":"u1","amount":1,"ts":"2026-01-31T12:00:00Z"} x"#,
            r#"{"amount":1,"ts":"2026-01-31T12:00:00Z"}"#,
            r#"{"user":null,"amount":1,"ts":"2026-01-31T12:00:00Z"}"#,
            r#"{"user":"u1","amount":"1","ts":"2026-01-31T12:00:00Z"}"#,
            r#"{"user":"u1","amount":1e999,"ts":"2026-01-31T12:00:00Z"}"#,
            r#"{"user":"u1","amount":1,"ts":"2026-01-31T12:00:00"}"#,
            r#"{"user":"u1","amount":1,"ts":"2026-02-30T12:00:00Z"}"#,
            r#"{"user":"u1","amount":1,"ts":"0099-01-01T12:00:00Z"}"#,
            r#"{"user":"u1","amount":1,"ts":"2026-01-31T12:00:00Z","flag":1}"#,
            r#"{"user":"u1","amount":1,"ts":"2026-01-31T12:00:00Z","n":null}"#,
        ]);
        assert_eq!(out.decoded, vec![0; 13]);
        assert!((0..13).all(|r| out.strings[0].get(r).is_none()));
        assert!(out.numbers[1].iter().all(|v| v.is_nan()));
        let invalid_utf8: &[u8] =
            b"{\"user\":\"\xff\",\"amount\":1,\"ts\":\"2026-01-31T12:00:00Z\"}";
        assert_eq!(
            plan().decode_batch([invalid_utf8].into_iter()).decoded,
            vec![0]
        );
    }

    #[test]
    fn nullable_outputs_read_a_missing_or_null_value_as_nan() {
        let field = |name: &str, optional, nullable| MessageField {
            name: name.into(),
            field_type: FieldType::Number,
            optional,
            nullable,
        };
        let output = |field, nullable| MessageOutput {
            field,
            kind: OutputKind::Float,
            nullable,
            keep: true,
        };
        let plan = MessagePlan::new(
            vec![field("a", true, true), field("b", true, true)],
            vec![output(0, true), output(1, false)],
        )
        .unwrap();
        let out = plan.decode_batch(
            [
                r#"{"a":null,"b":1}"#,
                r#"{"b":2}"#,
                r#"{"a":3}"#,
                r#"{"a":4,"b":null}"#,
            ]
            .iter()
            .map(|m| m.as_bytes()),
        );
        assert_eq!(out.decoded, vec![1, 1, 0, 0]);
        assert!(out.numbers[0][0].is_nan() && out.numbers[0][1].is_nan());
        assert_eq!(out.numbers[1][..2], [1.0, 2.0]);
    }

    #[test]
    fn outputs_not_kept_are_checked_but_not_returned() {
        let field = |name: &str, field_type| MessageField {
            name: name.into(),
            field_type,
            optional: false,
            nullable: false,
        };
        let plan = MessagePlan::new(
            vec![
                field("id", FieldType::String),
                field("at", FieldType::String),
            ],
            vec![
                MessageOutput {
                    field: 0,
                    kind: OutputKind::String,
                    nullable: false,
                    keep: false,
                },
                MessageOutput {
                    field: 1,
                    kind: OutputKind::Time,
                    nullable: false,
                    keep: false,
                },
            ],
        )
        .unwrap();
        let out = plan.decode_batch(
            [
                r#"{"id":"a","at":"2026-01-31T12:00:00Z"}"#,
                r#"{"id":"b","at":"2026-01-31T12:00:00"}"#,
            ]
            .iter()
            .map(|m| m.as_bytes()),
        );
        assert_eq!(out.decoded, vec![1, 0], "a naive time is still checked");
        assert!(out.strings[0].codes.is_empty() && out.numbers[1].is_empty());
    }

    #[test]
    fn concatenated_messages_decode_as_slices_do() {
        let messages = [
            r#"{"user":"u1","amount":1,"ts":"2026-01-31T12:00:00Z"}"#,
            "bad",
            r#"{"user":"u1","amount":2,"ts":"2026-01-31T12:00:00Z"}"#,
        ];
        let bytes = messages.concat();
        let mut offsets = vec![0u32];
        for m in messages {
            offsets.push(offsets.last().unwrap() + m.len() as u32);
        }
        let out = plan()
            .decode_concatenated(bytes.as_bytes(), &offsets)
            .unwrap();
        assert_eq!(out.decoded, vec![1, 0, 1]);
        assert_eq!(
            out.strings[0].dict,
            vec!["u1"],
            "one entry per distinct string"
        );
        assert_eq!(out.strings[0].codes, vec![0, NO_STRING, 0]);
        assert!(plan().decode_concatenated(b"{}", &[0, 3]).is_err());
        assert!(plan().decode_concatenated(b"{}", &[2, 1]).is_err());
        assert!(plan().decode_concatenated(b"{}", &[]).is_err());
    }

    #[test]
    fn int_outputs_take_only_safe_whole_numbers() {
        let plan = MessagePlan::new(
            vec![MessageField {
                name: "k".into(),
                field_type: FieldType::Number,
                optional: false,
                nullable: false,
            }],
            vec![MessageOutput {
                field: 0,
                kind: OutputKind::Int,
                nullable: false,
                keep: true,
            }],
        )
        .unwrap();
        let out = plan.decode_batch(
            [
                r#"{"k":42}"#,
                r#"{"k":4.5}"#,
                r#"{"k":9007199254740993}"#,
                r#"{"k":-0}"#,
            ]
            .iter()
            .map(|m| m.as_bytes()),
        );
        assert_eq!(out.decoded, vec![1, 0, 0, 1]);
        assert_eq!(out.numbers[0][0], 42.0);
        // JSON.parse keeps the sign of -0, and so does this.
        assert!(out.numbers[0][3] == 0.0 && out.numbers[0][3].is_sign_negative());
    }

    #[test]
    fn iso_times_match_the_calendar() {
        assert_eq!(iso_ms("1970-01-01T00:00:00Z"), Some(0.0));
        // Date.parse("2000-02-29T23:59:59.999-01:30")
        assert_eq!(
            iso_ms("2000-02-29T23:59:59.999-01:30"),
            Some(951_874_199_999.0)
        );
        assert_eq!(iso_ms("1969-12-31T23:59:59.5Z"), Some(-500.0));
        assert_eq!(iso_ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(
            iso_ms("2026-02-30T00:00:00Z"),
            None,
            "never rolled over to March 2"
        );
        assert_eq!(iso_ms("2026-04-31T00:00:00Z"), None);
        assert_eq!(iso_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000.0));
        assert_eq!(
            iso_ms("2026-01-31T12:00:00.9999999Z"),
            Some(1_769_860_800_999.0)
        );
        assert_eq!(iso_ms("2026-01-31 12:00:00Z"), None);
        assert_eq!(iso_ms("2026-01-31T12:00:00+0200"), None);
        assert_eq!(iso_ms("2026-01-31T12:00:00."), None);
    }

    #[test]
    fn a_plan_refuses_outputs_that_do_not_fit_their_field() {
        let field = MessageField {
            name: "x".into(),
            field_type: FieldType::String,
            optional: false,
            nullable: false,
        };
        let err = MessagePlan::new(
            vec![field],
            vec![MessageOutput {
                field: 0,
                kind: OutputKind::Float,
                nullable: false,
                keep: true,
            }],
        )
        .unwrap_err();
        assert!(err.contains("'x'"), "{err}");
        assert!(MessagePlan::new(
            Vec::new(),
            vec![MessageOutput {
                field: 3,
                kind: OutputKind::Float,
                nullable: false,
                keep: true,
            }]
        )
        .is_err());
    }
}
