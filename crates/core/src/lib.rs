//! Tessera's pure-Rust core: durations, epoch-aligned bucket arithmetic and the mergeable
//! partial states of every aggregation. Nothing here knows about RocksDB or JavaScript.

pub mod aggregation;
pub mod bucket;
pub mod duration;
pub mod error;
pub mod hint;
pub mod item;
pub mod sketch;

pub use aggregation::{AggState, AggValue, Aggregation, NumericSummary, STATE_FORMAT_VERSION};
pub use bucket::{BucketSpan, StartCache, WindowBuckets};
pub use duration::{format_duration, parse_duration, MAX_DURATION_MS};
pub use error::{CoreError, CoreErrorKind, CoreResult};
pub use item::Item;
