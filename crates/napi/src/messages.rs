//! `JsonMessageDecoder`: the fast path of declarative stream resolvers, decoding a poll's
//! JSON messages into columns in one call (see the `tessera-message` crate).

use napi::bindgen_prelude::{Buffer, Float64Array, Uint32Array, Uint8Array};
use napi_derive::napi;
use tessera_message::{FieldType, MessageField, MessageOutput, MessagePlan, OutputKind};

use crate::error::{guard, js_error};

#[napi(string_enum)]
#[derive(Debug, PartialEq, Eq)]
pub enum MessageFieldType {
    #[napi(value = "string")]
    String,
    #[napi(value = "number")]
    Number,
    #[napi(value = "boolean")]
    Boolean,
}

/// One top-level field of a message schema.
#[napi(object)]
pub struct MessageFieldDescription {
    pub name: String,
    #[napi(js_name = "type")]
    pub field_type: MessageFieldType,
    pub optional: bool,
    pub nullable: bool,
}

#[napi(string_enum)]
#[derive(Debug, PartialEq, Eq)]
pub enum MessageOutputKind {
    /// Any finite number.
    #[napi(value = "float")]
    Float,
    /// A whole number within 2^53.
    #[napi(value = "int")]
    Int,
    /// A boolean, as 1 / 0.
    #[napi(value = "boolean")]
    Boolean,
    /// A zoned ISO-8601 string, as Unix ms.
    #[napi(value = "time")]
    Time,
    #[napi(value = "string")]
    String,
}

/// A value to pull out of every message: the index of its field, and how.
#[napi(object)]
pub struct MessageOutputDescription {
    pub field: u32,
    pub kind: MessageOutputKind,
    /// A missing or null value reads as NaN (numeric kinds only) instead of leaving the
    /// message to the general path.
    pub nullable: bool,
    /// Return the value (else it is only checked, and its column comes back empty).
    pub keep: bool,
}

/// A message schema and the values a resolver reads from it.
#[napi(object)]
pub struct MessagePlanDescription {
    pub fields: Vec<MessageFieldDescription>,
    pub outputs: Vec<MessageOutputDescription>,
}

/// A dictionary-encoded string column: message `i` holds `dict[codes[i]]`, or nothing
/// when the code is 0xFFFFFFFF.
#[napi(object)]
pub struct DecodedStrings {
    pub dict: Vec<String>,
    pub codes: Uint32Array,
}

/// Columns of one decoded poll. Output `o` is `numbers[o]` (float, int, boolean, time) or
/// `strings[o]` (string); the other, and both for an output not kept, are empty.
#[napi(object)]
pub struct DecodedMessageColumns {
    /// Per message: 1 when decoded here, 0 when the general path must decide.
    pub decoded: Uint8Array,
    pub numbers: Vec<Float64Array>,
    pub strings: Vec<DecodedStrings>,
}

#[napi]
pub struct JsonMessageDecoder {
    plan: MessagePlan,
}

#[napi]
impl JsonMessageDecoder {
    #[napi(constructor)]
    pub fn new(description: MessagePlanDescription) -> napi::Result<Self> {
        let fields = description
            .fields
            .into_iter()
            .map(|f| MessageField {
                name: f.name,
                field_type: match f.field_type {
                    MessageFieldType::String => FieldType::String,
                    MessageFieldType::Number => FieldType::Number,
                    MessageFieldType::Boolean => FieldType::Boolean,
                },
                optional: f.optional,
                nullable: f.nullable,
            })
            .collect();
        let outputs = description
            .outputs
            .into_iter()
            .map(|o| MessageOutput {
                field: o.field as usize,
                kind: match o.kind {
                    MessageOutputKind::Float => OutputKind::Float,
                    MessageOutputKind::Int => OutputKind::Int,
                    MessageOutputKind::Boolean => OutputKind::Bool,
                    MessageOutputKind::Time => OutputKind::Time,
                    MessageOutputKind::String => OutputKind::String,
                },
                nullable: o.nullable,
                keep: o.keep,
            })
            .collect();
        let plan = MessagePlan::new(fields, outputs)
            .map_err(|e| js_error("INVALID_DESCRIPTION", format!("message plan: {e}")))?;
        Ok(Self { plan })
    }

    /// Decodes the messages it can; the others are left for the general path. Message
    /// `i` is `bytes[offsets[i]..offsets[i + 1]]` (one buffer for a whole poll: far
    /// cheaper to pass than a buffer per message).
    #[napi]
    pub fn decode(
        &self,
        bytes: Buffer,
        offsets: Uint32Array,
    ) -> napi::Result<DecodedMessageColumns> {
        guard("decoding messages", || {
            let out = self
                .plan
                .decode_concatenated(&bytes, &offsets)
                .map_err(|e| js_error("INVALID_BATCH", e))?;
            Ok(DecodedMessageColumns {
                decoded: Uint8Array::new(out.decoded),
                numbers: out.numbers.into_iter().map(Float64Array::new).collect(),
                strings: out
                    .strings
                    .into_iter()
                    .map(|s| DecodedStrings {
                        dict: s.dict,
                        codes: Uint32Array::new(s.codes),
                    })
                    .collect(),
            })
        })
    }
}
