//! The napi-rs binding: the only crate that knows about JavaScript. It converts
//! JavaScript descriptions, typed arrays and buffers into the store's borrowed batch
//! types, runs heavy work off the event loop (one async task type), and turns every
//! error, and any panic, into a JavaScript error whose message starts with a stable
//! `[CODE]`.

mod backfill;
#[cfg(feature = "fold-ceiling")]
mod bench;
mod catalog;
mod conversions;
mod description;
mod engine;
mod error;
pub mod limits;
mod messages;
mod objects;
mod read_only;
mod tasks;
mod tiles;
mod windowed;

pub use backfill::*;
#[cfg(feature = "fold-ceiling")]
pub use bench::*;
pub use catalog::*;
pub use description::*;
pub use engine::*;
pub use messages::*;
pub use objects::*;
pub use tasks::StoreTask;
pub use tiles::*;
pub use windowed::*;
