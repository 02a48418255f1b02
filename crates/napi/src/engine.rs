//! `NativeEngine`: one open bucket store, shared by sync calls on the JS thread and
//! AsyncTasks on the libuv pool (ingest and commit take the write lock, queries the read
//! lock). Mirrors `ts/engine-native.ts`.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Float64Array, Uint32Array};
use napi::{Env, Task};
use napi_derive::napi;
use tessera_core::AggValue;
use tessera_store::{
    BucketStore, Clock, CommitMode, DeadLetter, KeyColumn, OpenReport, SeriesBatch, SourcePosition,
    StoreOptions, ValueColumn, WindowRead,
};

use crate::description::{whole_ms, StoreDescription};
use crate::error::{from_store, guard, js_error};

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
}

/// What opening found: which series of the description are new, which were kept, and
/// which stored series the description no longer names.
#[napi(object)]
pub struct OpenReportOutput {
    pub new_series: Vec<String>,
    pub kept_series: Vec<String>,
    pub orphaned_series: Vec<String>,
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

#[napi(object)]
pub struct CommitOptions {
    /// Replace stored buckets instead of merging into them (backfills).
    pub replace: Option<bool>,
    /// Messages that could not be folded, kept atomically with this commit.
    pub dead_letters: Option<Vec<DeadLetterRecord>>,
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
}

/// Reads for many keys: the answer has `rows x reads` cells, row-major.
#[napi(object)]
pub struct WindowQuery {
    pub keys: Vec<KeyPart>,
    pub reads: Vec<WindowReadInput>,
    /// The query's now in Unix ms (default: the engine's clock).
    pub now_ms: Option<f64>,
    pub explain: Option<bool>,
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
    pub pending_rows: f64,
    pub pending_buckets: f64,
    pub bucket_entries_estimate: f64,
    pub disk_bytes: f64,
}

type Shared = Arc<RwLock<Option<BucketStore>>>;

/// An open Tessera store.
#[napi]
pub struct NativeEngine {
    pub(crate) store: Shared,
    pub(crate) clock: Clock,
    pub(crate) report: OpenReport,
}

fn write(store: &Shared) -> napi::Result<RwLockWriteGuard<'_, Option<BucketStore>>> {
    // A panic while folding leaves the pending delta half-written; drop it.
    Ok(store.write().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        if let Some(s) = guard.as_mut() {
            s.discard_pending();
        }
        guard
    }))
}

fn read(store: &Shared) -> RwLockReadGuard<'_, Option<BucketStore>> {
    store.read().unwrap_or_else(|p| p.into_inner())
}

fn closed() -> napi::Error {
    js_error("CLOSED", "the engine was closed")
}

fn key_columns(parts: &[KeyPart]) -> napi::Result<Vec<KeyColumn<'_>>> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match (&p.ints, &p.strings, &p.codes) {
            (Some(ints), None, None) => Ok(KeyColumn::Ints(ints)),
            (None, Some(dict), Some(codes)) => Ok(KeyColumn::Strings { dict, codes }),
            _ => Err(js_error(
                "INVALID_BATCH",
                format!("key part {i} must give either `ints` or `strings` with `codes`"),
            )),
        })
        .collect()
}

fn series_batch(input: &SeriesBatchInput) -> napi::Result<SeriesBatch<'_>> {
    let values = match (&input.numbers, &input.strings, &input.codes, &input.vectors) {
        (Some(n), None, None, None) => ValueColumn::Numbers(n),
        (None, Some(dict), Some(codes), None) => ValueColumn::Strings { dict, codes },
        (None, None, None, Some(v)) => ValueColumn::Vectors(v),
        _ => {
            return Err(js_error(
                "INVALID_BATCH",
                format!(
                "series '{}': give exactly one of `numbers`, `strings` with `codes`, or `vectors`",
                input.series_id
            ),
            ))
        }
    };
    Ok(SeriesBatch {
        series_id: &input.series_id,
        keys: key_columns(&input.keys)?,
        timestamps_ms: &input.timestamps_ms,
        values,
        by: input.by.as_deref(),
        selection: input.selection.as_deref(),
    })
}

fn positions(input: Option<Vec<SourcePositionInput>>) -> Vec<SourcePosition> {
    input
        .unwrap_or_default()
        .into_iter()
        .map(|p| SourcePosition {
            source: p.source,
            partition: p.partition,
            offset: p.offset,
        })
        .collect()
}

fn ingest_into(
    store: &mut BucketStore,
    batches: &[SeriesBatchInput],
) -> napi::Result<IngestReportOutput> {
    let converted = batches
        .iter()
        .map(series_batch)
        .collect::<napi::Result<Vec<_>>>()?;
    let report = store.ingest(&converted).map_err(from_store)?;
    Ok(IngestReportOutput {
        rows: report.rows as f64,
        pending_rows: report.pending_rows as f64,
        pending_buckets: report.pending_buckets as f64,
    })
}

fn commit_into(
    store: &mut BucketStore,
    positions: &[SourcePosition],
    options: &Option<CommitOptions>,
) -> napi::Result<CommitReportOutput> {
    let mode = match options.as_ref().and_then(|o| o.replace) {
        Some(true) => CommitMode::Replace,
        _ => CommitMode::Merge,
    };
    let dead_letters: Vec<DeadLetter> = options
        .as_ref()
        .and_then(|o| o.dead_letters.as_ref())
        .map(|letters| {
            letters
                .iter()
                .map(|l| DeadLetter {
                    source: l.source.clone(),
                    partition: l.partition,
                    offset: l.offset,
                    reason: l.reason.clone(),
                    field: l.field.clone(),
                    raw: l.raw.to_vec(),
                    received_at_ms: l.received_at_ms as i64,
                })
                .collect()
        })
        .unwrap_or_default();
    let report = store
        .commit_with_dead_letters(positions, &dead_letters, mode)
        .map_err(from_store)?;
    Ok(CommitReportOutput {
        rows: report.rows as f64,
        buckets_written: report.buckets_written as f64,
        bytes_written: report.bytes_written as f64,
        table_file: report.table_file,
    })
}

/// Runs `f` on the open store under the write lock.
fn with_store<T>(
    store: &Shared,
    f: impl FnOnce(&mut BucketStore) -> napi::Result<T>,
) -> napi::Result<T> {
    let mut guard = write(store)?;
    f(guard.as_mut().ok_or_else(closed)?)
}

/// Folds and commits under ONE hold of the write lock, so that no other call's rows or
/// positions can land between the fold and the commit (exactly-once depends on it).
fn ingest_and_commit_into(
    store: &Shared,
    batches: &[SeriesBatchInput],
    positions: &[SourcePosition],
    options: &Option<CommitOptions>,
) -> napi::Result<CommitReportOutput> {
    with_store(store, |store| {
        ingest_into(store, batches)?;
        commit_into(store, positions, options)
    })
}

fn item_value(item: &tessera_core::Item) -> Either<f64, String> {
    match item {
        tessera_core::Item::Number(n) => Either::A(*n),
        tessera_core::Item::Text(s) => Either::B(s.clone()),
    }
}

fn run_queries(
    store: &Shared,
    clock: &Clock,
    queries: &[WindowQuery],
) -> napi::Result<Vec<WindowQueryResult>> {
    let guard = read(store);
    let store = guard.as_ref().ok_or_else(closed)?;
    let mut results = Vec::with_capacity(queries.len());
    for query in queries {
        let keys = key_columns(&query.keys)?;
        let reads = query
            .reads
            .iter()
            .map(|r| {
                Ok(WindowRead {
                    series_id: r.series_id.clone(),
                    rule: r.rule as usize,
                    window_ms: whole_ms(r.window_ms, "windowMs", &r.series_id)?,
                })
            })
            .collect::<napi::Result<Vec<_>>>()?;
        let now = match query.now_ms {
            Some(now) => whole_ms(now, "nowMs", "query")?,
            None => clock.now_ms(),
        };
        let answer = store
            .read_windows(&keys, &reads, now, query.explain.unwrap_or(false))
            .map_err(from_store)?;
        let mut numbers = Vec::with_capacity(answer.values.len());
        let mut lists = Vec::new();
        for (index, value) in answer.values.into_iter().enumerate() {
            numbers.push(match value {
                AggValue::Null => f64::NAN,
                AggValue::Number(x) => x,
                AggValue::Count(c) => c as f64,
                AggValue::Items(items) => {
                    lists.push(ListValue {
                        index: index as u32,
                        items: Some(items.iter().map(item_value).collect()),
                        weights: None,
                        vector: None,
                    });
                    f64::NAN
                }
                AggValue::Vector(v) => {
                    lists.push(ListValue {
                        index: index as u32,
                        items: None,
                        weights: None,
                        vector: Some(v),
                    });
                    f64::NAN
                }
                AggValue::WeightedItems(pairs) => {
                    let (items, weights) = pairs.iter().map(|(i, w)| (item_value(i), *w)).unzip();
                    lists.push(ListValue {
                        index: index as u32,
                        items: Some(items),
                        weights: Some(weights),
                        vector: None,
                    });
                    f64::NAN
                }
            });
        }
        let rows = if reads.is_empty() {
            0
        } else {
            numbers.len() / reads.len()
        };
        results.push(WindowQueryResult {
            rows: rows as u32,
            reads: reads.len() as u32,
            numbers: Float64Array::new(numbers),
            lists,
            explanations: answer.explanations.map(|e| {
                e.into_iter()
                    .map(|x| ValueExplanation {
                        first_bucket_start_ms: x.first_bucket_start as f64,
                        last_bucket_start_ms: x.last_bucket_start as f64,
                        buckets_merged: x.buckets_merged,
                    })
                    .collect()
            }),
        });
    }
    Ok(results)
}

#[napi]
impl NativeEngine {
    /// Opens or creates the store at `path` for the series of `description`.
    #[napi(factory, catch_unwind)]
    pub fn open(
        path: String,
        description: StoreDescription,
        options: Option<OpenOptions>,
    ) -> napi::Result<Self> {
        guard("open", || {
            let specs = description.into_specs()?;
            let mut store_options = StoreOptions::default();
            if let Some(o) = options {
                if let Some(v) = o.create_if_missing {
                    store_options.create_if_missing = v;
                }
                if let Some(v) = o.sync_commits {
                    store_options.sync_commits = v;
                }
                if let Some(v) = o.block_cache_bytes {
                    store_options.block_cache_bytes = v.max(0.0) as usize;
                }
                if let Some(v) = o.bulk_commit_buckets {
                    store_options.bulk_commit_buckets = v.max(0.0) as usize;
                }
            }
            let clock = store_options.clock.clone();
            let (store, report) =
                BucketStore::open(&path, specs, store_options).map_err(from_store)?;
            Ok(Self {
                store: Arc::new(RwLock::new(Some(store))),
                clock,
                report,
            })
        })
    }

    /// Which series opening found new, kept and orphaned.
    #[napi(getter)]
    pub fn open_report(&self) -> OpenReportOutput {
        OpenReportOutput {
            new_series: self.report.new_series.clone(),
            kept_series: self.report.kept_series.clone(),
            orphaned_series: self.report.orphaned_series.clone(),
        }
    }

    /// Folds batches into memory. Nothing is written until `commit`; a bad batch is an
    /// error and nothing of the call is folded.
    #[napi(catch_unwind)]
    pub fn ingest(&self, batches: Vec<SeriesBatchInput>) -> napi::Result<IngestReportOutput> {
        guard("ingest", || {
            with_store(&self.store, |s| ingest_into(s, &batches))
        })
    }

    /// `ingest` on the libuv pool. Do not modify the arrays until the promise settles.
    #[napi(ts_return_type = "Promise<IngestReportOutput>")]
    pub fn ingest_async(&self, batches: Vec<SeriesBatchInput>) -> AsyncTask<IngestTask> {
        AsyncTask::new(IngestTask {
            store: self.store.clone(),
            batches,
        })
    }

    /// Writes everything folded since the last commit, and `positions`, in one atomic
    /// RocksDB write batch.
    #[napi(catch_unwind)]
    pub fn commit(
        &self,
        positions: Option<Vec<SourcePositionInput>>,
        options: Option<CommitOptions>,
    ) -> napi::Result<CommitReportOutput> {
        let positions = self::positions(positions);
        guard("commit", || {
            with_store(&self.store, |s| commit_into(s, &positions, &options))
        })
    }

    /// `commit` on the libuv pool.
    #[napi(ts_return_type = "Promise<CommitReportOutput>")]
    pub fn commit_async(
        &self,
        positions: Option<Vec<SourcePositionInput>>,
        options: Option<CommitOptions>,
    ) -> AsyncTask<CommitTask> {
        AsyncTask::new(CommitTask {
            store: self.store.clone(),
            positions: self::positions(positions),
            options,
        })
    }

    /// Folds `batches` and commits them with `positions` as one atomic write.
    #[napi(catch_unwind)]
    pub fn ingest_and_commit(
        &self,
        batches: Vec<SeriesBatchInput>,
        positions: Option<Vec<SourcePositionInput>>,
        options: Option<CommitOptions>,
    ) -> napi::Result<CommitReportOutput> {
        let positions = self::positions(positions);
        guard("ingestAndCommit", || {
            ingest_and_commit_into(&self.store, &batches, &positions, &options)
        })
    }

    /// `ingestAndCommit` on the libuv pool.
    #[napi(ts_return_type = "Promise<CommitReportOutput>")]
    pub fn ingest_and_commit_async(
        &self,
        batches: Vec<SeriesBatchInput>,
        positions: Option<Vec<SourcePositionInput>>,
        options: Option<CommitOptions>,
    ) -> AsyncTask<IngestAndCommitTask> {
        AsyncTask::new(IngestAndCommitTask {
            store: self.store.clone(),
            batches,
            positions: self::positions(positions),
            options,
        })
    }

    /// Reads windows of committed data for many keys and rules in one call.
    #[napi(catch_unwind)]
    pub fn query(&self, queries: Vec<WindowQuery>) -> napi::Result<Vec<WindowQueryResult>> {
        guard("query", || run_queries(&self.store, &self.clock, &queries))
    }

    /// `query` on the libuv pool.
    #[napi(ts_return_type = "Promise<WindowQueryResult[]>")]
    pub fn query_async(&self, queries: Vec<WindowQuery>) -> AsyncTask<QueryTask> {
        AsyncTask::new(QueryTask {
            store: self.store.clone(),
            clock: self.clock.clone(),
            queries,
        })
    }

    /// The stored buckets of one series and group key with bucket starts in
    /// [fromMs, toMs], each with the value of every rule: a window, bucket by bucket.
    #[napi(catch_unwind)]
    pub fn read_buckets(
        &self,
        series_id: String,
        key: Vec<KeyPart>,
        from_ms: f64,
        to_ms: f64,
    ) -> napi::Result<Vec<StoredBucketOutput>> {
        guard("readBuckets", || {
            let guard = read(&self.store);
            let store = guard.as_ref().ok_or_else(closed)?;
            let keys = key_columns(&key)?;
            let buckets = store
                .read_buckets(
                    &series_id,
                    &keys,
                    whole_ms(from_ms, "fromMs", &series_id)?,
                    whole_ms(to_ms, "toMs", &series_id)?,
                )
                .map_err(from_store)?;
            Ok(buckets
                .into_iter()
                .map(|b| StoredBucketOutput {
                    size_ms: b.size_ms as f64,
                    start_ms: b.start as f64,
                    values: b
                        .values
                        .into_iter()
                        .map(|(rule, value)| {
                            let mut out = RuleValue {
                                rule: rule as u32,
                                number: None,
                                items: None,
                                vector: None,
                            };
                            match value {
                                AggValue::Null => {}
                                AggValue::Number(x) => out.number = Some(x),
                                AggValue::Count(c) => out.number = Some(c as f64),
                                AggValue::Items(items) => {
                                    out.items = Some(items.iter().map(item_value).collect())
                                }
                                AggValue::Vector(v) => out.vector = Some(v),
                                // RuleValue has no weights field: the items, heaviest first.
                                AggValue::WeightedItems(pairs) => {
                                    out.items =
                                        Some(pairs.iter().map(|(i, _)| item_value(i)).collect())
                                }
                            }
                            out
                        })
                        .collect(),
                })
                .collect())
        })
    }

    /// The stored positions of one source.
    #[napi(catch_unwind)]
    pub fn positions(&self, source: String) -> napi::Result<Vec<SourcePositionInput>> {
        guard("positions", || {
            let guard = read(&self.store);
            let store = guard.as_ref().ok_or_else(closed)?;
            Ok(store
                .positions(&source)
                .map_err(from_store)?
                .into_iter()
                .map(|p| SourcePositionInput {
                    source: p.source,
                    partition: p.partition,
                    offset: p.offset,
                })
                .collect())
        })
    }

    /// Kept dead letters in (source, partition, offset) order.
    #[napi(catch_unwind)]
    pub fn dead_letters(
        &self,
        query: Option<DeadLetterQuery>,
    ) -> napi::Result<Vec<DeadLetterRecord>> {
        guard("deadLetters", || {
            let guard = read(&self.store);
            let store = guard.as_ref().ok_or_else(closed)?;
            let source = query.as_ref().and_then(|q| q.source.as_deref());
            let limit = query.as_ref().and_then(|q| q.limit).unwrap_or(1000) as usize;
            Ok(store
                .dead_letters(source, limit)
                .map_err(from_store)?
                .into_iter()
                .map(|l| DeadLetterRecord {
                    source: l.source,
                    partition: l.partition,
                    offset: l.offset,
                    reason: l.reason,
                    field: l.field,
                    raw: l.raw.into(),
                    received_at_ms: l.received_at_ms as f64,
                })
                .collect())
        })
    }

    /// How many dead letters are kept, of one source or all.
    #[napi(catch_unwind)]
    pub fn dead_letter_count(&self, source: Option<String>) -> napi::Result<f64> {
        guard("deadLetterCount", || {
            let guard = read(&self.store);
            let store = guard.as_ref().ok_or_else(closed)?;
            Ok(store
                .dead_letter_count(source.as_deref())
                .map_err(from_store)? as f64)
        })
    }

    /// Drops what was folded since the last commit.
    #[napi]
    pub fn discard_pending(&self) -> napi::Result<()> {
        let mut guard = write(&self.store)?;
        guard.as_mut().ok_or_else(closed)?.discard_pending();
        Ok(())
    }

    /// Flushes memtables to disk (commits are already durable through the WAL).
    #[napi(catch_unwind)]
    pub fn flush(&self) -> napi::Result<()> {
        guard("flush", || {
            let guard = read(&self.store);
            guard
                .as_ref()
                .ok_or_else(closed)?
                .flush()
                .map_err(from_store)
        })
    }

    /// Compacts now, which also removes buckets past their retention.
    #[napi(catch_unwind)]
    pub fn compact(&self) -> napi::Result<()> {
        guard("compact", || {
            let guard = read(&self.store);
            guard
                .as_ref()
                .ok_or_else(closed)?
                .compact()
                .map_err(from_store)
        })
    }

    /// Counts and sizes, for monitoring and benchmarks.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> napi::Result<EngineStats> {
        guard("stats", || {
            let guard = read(&self.store);
            let store = guard.as_ref().ok_or_else(closed)?;
            let (pending_rows, pending_buckets) = store.pending();
            Ok(EngineStats {
                series: store.series().len() as u32,
                pending_rows: pending_rows as f64,
                pending_buckets: pending_buckets as f64,
                bucket_entries_estimate: store.bucket_entries(false).map_err(from_store)? as f64,
                disk_bytes: store.disk_bytes().map_err(from_store)? as f64,
            })
        })
    }

    /// Counts stored bucket entries exactly (a full scan; for tests).
    #[napi(catch_unwind)]
    pub fn count_bucket_entries(&self) -> napi::Result<f64> {
        guard("countBucketEntries", || {
            let guard = read(&self.store);
            let store = guard.as_ref().ok_or_else(closed)?;
            Ok(store.bucket_entries(true).map_err(from_store)? as f64)
        })
    }

    /// Pins the engine's clock (retention and default query time) to `nowMs`, or back to
    /// the system clock with `null`. For tests and replays.
    #[napi]
    pub fn set_clock(&self, now_ms: Option<f64>) {
        self.clock.pin(now_ms.map(|v| v as i64));
    }

    /// Closes the store; uncommitted folds are dropped. Later calls fail with `[CLOSED]`.
    #[napi]
    pub fn close(&self) -> napi::Result<()> {
        let mut guard = write(&self.store)?;
        guard.take();
        Ok(())
    }
}

pub struct IngestTask {
    store: Shared,
    batches: Vec<SeriesBatchInput>,
}

impl Task for IngestTask {
    type Output = IngestReportOutput;
    type JsValue = IngestReportOutput;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guard("ingest", || {
            with_store(&self.store, |s| ingest_into(s, &self.batches))
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct IngestAndCommitTask {
    store: Shared,
    batches: Vec<SeriesBatchInput>,
    positions: Vec<SourcePosition>,
    options: Option<CommitOptions>,
}

impl Task for IngestAndCommitTask {
    type Output = CommitReportOutput;
    type JsValue = CommitReportOutput;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guard("ingestAndCommit", || {
            ingest_and_commit_into(&self.store, &self.batches, &self.positions, &self.options)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct CommitTask {
    store: Shared,
    positions: Vec<SourcePosition>,
    options: Option<CommitOptions>,
}

impl Task for CommitTask {
    type Output = CommitReportOutput;
    type JsValue = CommitReportOutput;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guard("commit", || {
            with_store(&self.store, |s| {
                commit_into(s, &self.positions, &self.options)
            })
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct QueryTask {
    store: Shared,
    clock: Clock,
    queries: Vec<WindowQuery>,
}

impl Task for QueryTask {
    type Output = Vec<WindowQueryResult>;
    type JsValue = Vec<WindowQueryResult>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guard("query", || {
            run_queries(&self.store, &self.clock, &self.queries)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}
