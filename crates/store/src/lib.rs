//! Tessera's RocksDB bucket store: coalesced ingest of columnar batches, atomic commits
//! with source positions, dead letters and resolver states, window reads over many keys
//! and rules, and retention.

pub mod backfill;
mod bucket_table;
pub mod buffer;
mod bulk;
pub mod commit;
pub mod coverage;
pub mod error;
pub mod fold;
pub mod key;
pub mod layout;
pub mod meta;
pub mod options;
pub mod points;
pub mod read_only;
pub mod reads;
pub mod record;
mod retention;
pub mod runs;
mod sources;
pub mod store;
pub mod tiles;
pub mod windowed;

pub use backfill::{Backfill, BackfillLayout, BackfillOptions, BackfillRange, BackfillReport};
pub use buffer::BufferPlan;
pub use commit::{CommitRecords, CommitReport, IngestReport};
pub use coverage::{RetentionChange, WindowCoverage};
pub use error::{StoreError, StoreErrorKind, StoreResult};
pub use fold::{KeyColumn, SeriesBatch, ValueColumn, NULL_CODE};
pub use layout::{
    reconcile, AggregationSpec, Reconciliation, RuleSlot, RuleSpec, SeriesLayout, SeriesSpec,
    SeriesSummary, ValueKind,
};
pub use meta::{
    store_column_families, DeadLetter, ResolverState, SourcePosition, STORE_FORMAT_VERSION,
};
pub use options::{Clock, CommitMode, StoreOptions};
pub use points::{ParityAnswer, PointAnswer, RecomputedWindow, StaleWindow};
pub use reads::{
    BufferExplanation, BufferedReads, Explanation, StoredBucket, WindowAnswer, WindowRead,
};
pub use runs::BackfillRunRecord;
pub use store::{BucketStore, DescribedSeries, OpenReport, SeriesChange};
pub use tiles::{
    TileEntry, TileManifest, TilePointAnswer, TileTarget, UncoveredWindow, TILE_FORMAT_VERSION,
    TILE_MANIFEST, TILE_SCHEMA,
};
pub use windowed::{KeptMessage, WindowedMessage, WindowedValue, WindowedWrite};
