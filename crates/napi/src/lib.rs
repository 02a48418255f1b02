//! The napi-rs binding: the only crate that knows about JavaScript. It converts
//! JavaScript descriptions, typed arrays and buffers into the store's borrowed batch
//! types, runs heavy work off the event loop (AsyncTask), and turns every error, and any
//! panic, into a JavaScript error whose message starts with a stable `[CODE]`.

mod bench;
mod description;
mod engine;
mod error;
mod messages;
mod read_only;

pub use bench::*;
pub use description::*;
pub use engine::*;
pub use messages::*;
