//! The limits of the store's formats that the TypeScript conversion path checks before a
//! row is written (`ts/rows/`), read from the store so that they are stated once.

use napi_derive::napi;
use tessera_store::key::{INT_PART_BYTES, MAX_GROUP_KEY_BYTES, TEXT_PART_HEADER_BYTES};

/// How the store encodes a group key, and how long one may be: an encoded key takes
/// `intPartBytes` per integer part and `stringPartHeaderBytes` plus the UTF-8 bytes per
/// string part, and holds at most `maxBytes` (so one string part at most
/// `maxBytes - stringPartHeaderBytes` bytes).
#[napi(object)]
pub struct GroupKeyFormat {
    pub max_bytes: u32,
    pub int_part_bytes: u32,
    pub string_part_header_bytes: u32,
}

/// The store's group-key format (see [`GroupKeyFormat`]).
#[napi]
pub fn group_key_format() -> GroupKeyFormat {
    GroupKeyFormat {
        max_bytes: MAX_GROUP_KEY_BYTES as u32,
        int_part_bytes: INT_PART_BYTES as u32,
        string_part_header_bytes: TEXT_PART_HEADER_BYTES as u32,
    }
}
