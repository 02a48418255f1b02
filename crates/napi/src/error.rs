//! Errors crossing into JavaScript: `[CODE] message`, parsed by `ts/errors.ts` into
//! error classes with a `code` property.

use std::panic::{catch_unwind, AssertUnwindSafe};

use napi::{Error, Status};
use tessera_store::StoreError;

pub(crate) fn js_error(code: &str, message: impl AsRef<str>) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("[{code}] {}", message.as_ref()),
    )
}

pub(crate) fn from_store(e: StoreError) -> Error {
    js_error(e.code(), e.message)
}

/// Runs `f`, turning a panic into an `[INTERNAL]` error instead of aborting Node.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(js_error(
                "INTERNAL",
                format!("{what} failed with an internal error: {detail}"),
            ))
        }
    }
}
