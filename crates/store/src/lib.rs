//! Tessera's RocksDB bucket store: coalesced ingest of columnar batches, atomic commits
//! with source positions, window reads over many keys and rules, and retention.

mod bucket_table;
mod bulk;
pub mod error;
pub mod fold;
pub mod key;
pub mod layout;
pub mod read_only;
pub mod record;
pub mod store;

pub use error::{StoreError, StoreErrorKind, StoreResult};
pub use fold::{KeyColumn, SeriesBatch, ValueColumn, NULL_CODE};
pub use layout::{AggregationSpec, RuleSpec, SeriesLayout, SeriesSpec, ValueKind};
pub use store::{
    store_column_families, BucketStore, Clock, CommitMode, CommitReport, DeadLetter, Explanation,
    IngestReport, OpenReport, SourcePosition, StoreOptions, StoredBucket, WindowAnswer, WindowRead,
    STORE_FORMAT_VERSION,
};
