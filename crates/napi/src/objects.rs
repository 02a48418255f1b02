//! The plain objects that cross the boundary: batches, keys, commit options and records,
//! queries and their answers. Their TypeScript types are generated from these.

use napi::bindgen_prelude::{Buffer, Either, Float64Array, Uint32Array};
use napi_derive::napi;

use crate::description::{RuleDescription, SeriesSummaryDescription};

/// One part of the group keys of a batch or a query: integers (JS numbers, NaN = null)
/// or dictionary-encoded strings (`strings` + `codes`, code 0xFFFFFFFF = null).
#[napi(object)]
pub struct KeyPart {
    pub ints: Option<Float64Array>,
    pub strings: Option<Vec<String>>,
    pub codes: Option<Uint32Array>,
}

/// The rows of one ingest call that feed one series, as columns. Give exactly one of
/// `numbers`, `strings` + `codes`, or `vectors` (row-major, `rows x vectorDim`).
#[napi(object)]
pub struct SeriesBatchInput {
    pub series_id: String,
    pub keys: Vec<KeyPart>,
    /// Event times in Unix milliseconds (fractions are floored).
    pub timestamps_ms: Float64Array,
    /// Numeric values; NaN (and any non-finite number) is null and skipped.
    pub numbers: Option<Float64Array>,
    pub strings: Option<Vec<String>>,
    pub codes: Option<Uint32Array>,
    pub vectors: Option<Float64Array>,
    /// The `by` column of min_by_n / max_by_n, or the weight of a weighted top-k.
    pub by: Option<Float64Array>,
    /// Row indexes to take (rows that passed the series' ingest filters); all when absent.
    pub selection: Option<Uint32Array>,
}

/// A source position written atomically with the buckets it produced.
#[napi(object)]
pub struct SourcePositionInput {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
}

#[napi(object)]
pub struct OpenOptions {
    /// Create the store when missing (default true).
    pub create_if_missing: Option<bool>,
    /// Fsync the WAL on each commit (default false; the WAL is always written).
    pub sync_commits: Option<bool>,
    /// Block cache for reads in bytes (default 128 MiB).
    pub block_cache_bytes: Option<f64>,
    /// Commits of at least this many buckets and no source positions or dead letters
    /// are ingested as one synced table file instead of going through the WAL and the
    /// memtable (default 131,072).
    pub bulk_commit_buckets: Option<f64>,
    /// Pins the engine clock from the start (as `setClock` does later), so that what the
    /// opening records (a new series' coverage) is judged by it.
    pub clock_ms: Option<f64>,
}

/// What opening found: which series of the description are new, which were kept, and
/// which stored series the description no longer names, with the readable summary the
/// store keeps for each (as given now, or as last given for an orphaned series).
#[napi(object)]
pub struct OpenReportOutput {
    pub new_series: Vec<String>,
    pub kept_series: Vec<String>,
    pub orphaned_series: Vec<String>,
    /// The kept series whose rules changed, and how (docs/semantics.md section 9.4).
    pub changed_series: Vec<SeriesChangeOutput>,
    pub summaries: Vec<ReportedSeriesSummary>,
}

/// What a definition change did to a kept series.
#[napi(object)]
pub struct SeriesChangeOutput {
    pub series_id: String,
    /// The id the series was stored under, when the store adopted it under its new id.
    pub adopted_from: Option<String>,
    /// Rules added: complete from the bucket edge after the open.
    pub added: Vec<RuleDescription>,
    /// Rules no longer requested: kept in their slots, no longer folded or read.
    pub retired: Vec<RuleDescription>,
    /// Layouts whose retention grew.
    pub widened: Vec<RetentionChangeOutput>,
}

/// A layout whose retention grew: its rules are complete from the first bucket the old
/// retention had not made stale.
#[napi(object)]
pub struct RetentionChangeOutput {
    pub bucket_size_ms: f64,
    pub from_ms: f64,
    pub to_ms: f64,
}

/// The stored summary of one series of an open report.
#[napi(object)]
pub struct ReportedSeriesSummary {
    pub id: String,
    pub summary: SeriesSummaryDescription,
}

#[napi(object)]
pub struct IngestReportOutput {
    pub rows: f64,
    pub pending_rows: f64,
    pub pending_buckets: f64,
}

#[napi(object)]
pub struct CommitReportOutput {
    pub rows: f64,
    pub buckets_written: f64,
    pub bytes_written: f64,
    /// The commit was ingested as a table file (a bulk commit).
    pub table_file: bool,
}

/// What a commit writes besides its buckets, in the same atomic write.
#[napi(object)]
pub struct CommitOptions {
    /// Replace stored buckets instead of merging into them (backfills).
    pub replace: Option<bool>,
    /// Next offsets of the sources whose messages the commit folded.
    pub positions: Option<Vec<SourcePositionInput>>,
    /// Messages that could not be folded, kept atomically with this commit.
    pub dead_letters: Option<Vec<DeadLetterRecord>>,
    /// Resolver states as of the end of this commit.
    pub resolver_states: Option<Vec<ResolverStateRecord>>,
    /// Windowed resolvers' records written with this commit.
    pub windowed: Option<Vec<crate::windowed::WindowedRecordsInput>>,
}

/// One partition's offset.
#[napi(object)]
pub struct PartitionOffset {
    pub partition: i32,
    pub offset: i64,
}

/// What a stream resolver remembers across restarts besides its positions: its
/// watermark (the newest source time seen, Unix ms) and, per partition, the offset from
/// which a restart reads the source again to rebuild its dedupe memory.
#[napi(object)]
pub struct ResolverStateRecord {
    pub resolver: String,
    pub watermark_ms: Option<f64>,
    pub replay_from: Vec<PartitionOffset>,
}

/// A message kept instead of folded: why (naming the field), its raw bytes and its
/// position in the source.
#[napi(object)]
pub struct DeadLetterRecord {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub field: Option<String>,
    pub raw: Buffer,
    pub received_at_ms: f64,
}

/// Which dead letters to read.
#[napi(object)]
pub struct DeadLetterQuery {
    /// One source's letters only.
    pub source: Option<String>,
    /// At most this many (default 1000).
    pub limit: Option<u32>,
}

/// One window of one rule to read for every key of a query.
#[napi(object)]
pub struct WindowReadInput {
    pub series_id: String,
    pub rule: u32,
    pub window_ms: f64,
    /// The continuous buffer of the feature in ms (docs/semantics.md section 9.6); none
    /// or 0 reads buckets alone.
    pub buffer_ms: Option<f64>,
}

/// Reads for many keys: the answer has `rows x reads` cells, row-major.
#[napi(object)]
pub struct WindowQuery {
    pub keys: Vec<KeyPart>,
    pub reads: Vec<WindowReadInput>,
    /// The query's now in Unix ms (default: the engine's clock).
    pub now_ms: Option<f64>,
    pub explain: Option<bool>,
    /// Raw rows for the buffered reads, as an ingest's batches: each buffered read folds
    /// the rows of its series, key and raw range (see `bufferPlans`).
    pub raw: Option<Vec<SeriesBatchInput>>,
}

/// Where the parts of one buffered read come from (docs/semantics.md section 9.6).
#[napi(object)]
pub struct BufferPlanOutput {
    /// The read's index in its query.
    pub read: u32,
    /// Stored buckets starting before this are merged; `null`: none is.
    pub buckets_before_ms: Option<f64>,
    /// Raw rows with a time in [rawFromMs, rawToMs] are folded in (none when from > to).
    pub raw_from_ms: f64,
    pub raw_to_ms: f64,
    /// The part of the window [gapFromMs, gapToMs) that has no data, if any.
    pub gap_from_ms: Option<f64>,
    pub gap_to_ms: Option<f64>,
    /// The end of the buckets backfills filled, if any did.
    pub filled_until_ms: Option<f64>,
}

/// The buffered reads of one query.
#[napi(object)]
pub struct QueryBufferPlans {
    pub plans: Vec<BufferPlanOutput>,
}

/// Point-in-time reads: one time per key (docs/semantics.md section 11).
#[napi(object)]
pub struct PointQuery {
    pub keys: Vec<KeyPart>,
    /// One time per key row, Unix ms.
    pub times_ms: Float64Array,
    pub reads: Vec<WindowReadInput>,
    pub explain: Option<bool>,
}

/// Windows recomputed from raw rows, one time per key (docs/semantics.md section 11).
#[napi(object)]
pub struct RecomputeQuery {
    pub keys: Vec<KeyPart>,
    /// One time per key row, Unix ms.
    pub times_ms: Float64Array,
    pub reads: Vec<WindowReadInput>,
    /// The raw rows, as an ingest's batches.
    pub raw: Vec<SeriesBatchInput>,
    /// Round each window's start down to a bucket edge (default: exactly `(t - W, t]`).
    pub aligned: Option<bool>,
}

/// The parity check's recompute (docs/semantics.md section 11, "Parity check"): windows
/// as the online store serves them, folded from raw rows, one time per key.
#[napi(object)]
pub struct ParityQuery {
    pub keys: Vec<KeyPart>,
    /// One time per key row, Unix ms.
    pub times_ms: Float64Array,
    pub reads: Vec<WindowReadInput>,
    /// The raw rows, as an ingest's batches.
    pub raw: Vec<SeriesBatchInput>,
    /// The online store's number for every cell (`row * reads + read`; NaN for none),
    /// whose rank among the window's values is returned for percentile reads.
    pub online: Float64Array,
}

/// The parity check's recompute with what judging it needs.
#[napi(object)]
pub struct ParityPointsResult {
    /// The recomputed windows.
    pub answer: WindowQueryResult,
    /// Per cell, the catalog's tolerance of the read's aggregation: 0 (exact), a
    /// relative gap (rounding, distinct counts), a weight (top-k: a share of the window's
    /// total weight) or a normalized rank gap (percentiles).
    pub tolerance: Float64Array,
    /// Per cell, two numbers: the rank range `[below, at or below]` (normalized) of the
    /// online value among the window's values; NaN for reads that are not percentiles.
    pub online_rank: Float64Array,
    /// The same for the recomputed value.
    pub recomputed_rank: Float64Array,
}

/// A cell whose window reaches buckets that retention removed.
#[napi(object)]
pub struct StaleWindowOutput {
    /// `row * reads + read`.
    pub cell: u32,
    pub first_bucket_start_ms: f64,
    /// The first bucket the store still keeps.
    pub kept_from_ms: f64,
}

/// The answer to a point-in-time read.
#[napi(object)]
pub struct PointQueryResult {
    pub answer: WindowQueryResult,
    pub stale: Vec<StaleWindowOutput>,
}

/// A cell whose value is not one number: a list of items (min_by_n, top-k) or a vector.
#[napi(object)]
pub struct ListValue {
    pub index: u32,
    pub items: Option<Vec<Either<f64, String>>>,
    pub weights: Option<Vec<f64>>,
    pub vector: Option<Vec<f64>>,
}

/// Which buckets a cell merged.
#[napi(object)]
pub struct ValueExplanation {
    pub first_bucket_start_ms: f64,
    pub last_bucket_start_ms: f64,
    pub buckets_merged: u32,
    /// For a buffered read: its plan, and the raw rows of this key folded into the value.
    pub buffer: Option<BufferPlanOutput>,
    pub buffer_rows: Option<u32>,
}

#[napi(object)]
pub struct WindowQueryResult {
    pub rows: u32,
    pub reads: u32,
    /// One number per cell; NaN where the window holds no data or the value is a list.
    pub numbers: Float64Array,
    pub lists: Vec<ListValue>,
    pub explanations: Option<Vec<ValueExplanation>>,
}

/// One rule's value in one stored bucket.
#[napi(object)]
pub struct RuleValue {
    pub rule: u32,
    pub number: Option<f64>,
    pub items: Option<Vec<Either<f64, String>>>,
    pub vector: Option<Vec<f64>>,
}

#[napi(object)]
pub struct StoredBucketOutput {
    pub size_ms: f64,
    pub start_ms: f64,
    pub values: Vec<RuleValue>,
}

#[napi(object)]
pub struct EngineStats {
    pub series: u32,
    /// Rows and buckets staged and not yet committed.
    pub pending_rows: f64,
    pub pending_buckets: f64,
    pub bucket_entries_estimate: f64,
    pub disk_bytes: f64,
}
