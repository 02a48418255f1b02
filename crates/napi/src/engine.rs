//! `NativeEngine`: one open bucket store, shared by sync calls on the JS thread and
//! async tasks on the libuv pool (writes take the write lock, reads the read lock).
//! Wrapped by `ts/bucket-engine.ts`.
//!
//! Exactly-once lives here and in the store, not in JavaScript: `commitBatches` folds
//! its batches into a delta of its own and writes it with its positions, dead letters
//! and resolver states in one atomic write, under one hold of the write lock, so no
//! other call's rows or records can land between the fold and the write. Rows staged
//! with `stage` wait for `commitStaged` and are never part of a `commitBatches` write.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use napi::bindgen_prelude::{AsyncTask, Either};
use napi_derive::napi;
use tessera_store::key::GroupKeyPart;
use tessera_store::{
    BucketStore, BufferedReads, Clock, OpenReport, RecomputedWindow, StoreOptions,
};

use crate::conversions::{
    answer_cells, buffer_plan_output, commit_input, dead_letter_output, key_columns,
    open_report_output, position_output, read_buffers, read_time, resolver_state_record,
    rule_value, series_batches, window_reads,
};
use crate::description::{whole_ms, StoreDescription};
use crate::error::{from_store, guard, js_error};
use crate::objects::{
    CommitOptions, CommitReportOutput, DeadLetterQuery, DeadLetterRecord, EngineStats,
    IngestReportOutput, KeyPart, OpenOptions, OpenReportOutput, ParityPointsResult, ParityQuery,
    PointQuery, PointQueryResult, QueryBufferPlans, RecomputeQuery, ResolverStateRecord,
    SeriesBatchInput, SourcePositionInput, StaleWindowOutput, StoredBucketOutput, ValueExplanation,
    WindowQuery, WindowQueryResult,
};
use crate::tasks::StoreTask;

pub(crate) type Shared = Arc<RwLock<Option<BucketStore>>>;

/// An open Tessera store.
#[napi]
pub struct NativeEngine {
    pub(crate) store: Shared,
    pub(crate) clock: Clock,
    pub(crate) report: OpenReport,
}

fn write(store: &Shared) -> RwLockWriteGuard<'_, Option<BucketStore>> {
    // A panic while folding leaves the staged delta half-written; drop it. (A
    // `commitBatches` delta is emptied at the start of every call.)
    store.write().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        if let Some(s) = guard.as_mut() {
            s.discard_staged();
        }
        guard
    })
}

pub(crate) fn read(store: &Shared) -> RwLockReadGuard<'_, Option<BucketStore>> {
    store.read().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn closed() -> napi::Error {
    js_error("CLOSED", "the engine was closed")
}

/// Runs `f` on the open store under the write lock.
fn with_store<T>(
    store: &Shared,
    f: impl FnOnce(&mut BucketStore) -> napi::Result<T>,
) -> napi::Result<T> {
    let mut guard = write(store);
    f(guard.as_mut().ok_or_else(closed)?)
}

/// Runs `f` on the open store under the read lock.
pub(crate) fn reading<T>(
    store: &Shared,
    f: impl FnOnce(&BucketStore) -> napi::Result<T>,
) -> napi::Result<T> {
    let guard = read(store);
    f(guard.as_ref().ok_or_else(closed)?)
}

fn stage(store: &Shared, batches: &[SeriesBatchInput]) -> napi::Result<IngestReportOutput> {
    let converted = series_batches(batches)?;
    with_store(store, |s| {
        let report = s.stage(&converted).map_err(from_store)?;
        Ok(IngestReportOutput {
            rows: report.rows as f64,
            pending_rows: report.pending_rows as f64,
            pending_buckets: report.pending_buckets as f64,
        })
    })
}

fn commit_report(report: tessera_store::CommitReport) -> CommitReportOutput {
    CommitReportOutput {
        rows: report.rows as f64,
        buckets_written: report.buckets_written as f64,
        bytes_written: report.bytes_written as f64,
        table_file: report.table_file,
    }
}

fn commit_batches(
    store: &Shared,
    batches: &[SeriesBatchInput],
    options: Option<CommitOptions>,
) -> napi::Result<CommitReportOutput> {
    let converted = series_batches(batches)?;
    let input = commit_input(options)?;
    with_store(store, |s| {
        s.commit_batches(&converted, input.records(), input.mode)
            .map(commit_report)
            .map_err(from_store)
    })
}

fn commit_staged(
    store: &Shared,
    options: Option<CommitOptions>,
) -> napi::Result<CommitReportOutput> {
    let input = commit_input(options)?;
    with_store(store, |s| {
        s.commit_staged(input.records(), input.mode)
            .map(commit_report)
            .map_err(from_store)
    })
}

fn run_queries(
    store: &Shared,
    clock: &Clock,
    queries: &[WindowQuery],
) -> napi::Result<Vec<WindowQueryResult>> {
    reading(store, |store| {
        let mut results = Vec::with_capacity(queries.len());
        for query in queries {
            let keys = key_columns(&query.keys)?;
            let reads = window_reads(&query.reads)?;
            let buffers = read_buffers(&query.reads)?;
            let raw = series_batches(query.raw.as_deref().unwrap_or_default())?;
            let now = read_time(query.now_ms, clock, "query")?;
            let buffered = buffers.iter().any(|&b| b > 0).then_some(BufferedReads {
                buffers_ms: &buffers,
                raw: &raw,
            });
            let answer = store
                .read_windows_buffered(&keys, &reads, now, query.explain.unwrap_or(false), buffered)
                .map_err(from_store)?;
            results.push(query_result(
                answer.values,
                answer.explanations,
                reads.len(),
            ));
        }
        Ok(results)
    })
}

/// The boundary's answer to a window read: numbers and lists per cell, explanations.
pub(crate) fn query_result(
    values: Vec<tessera_core::AggValue>,
    explanations: Option<Vec<tessera_store::Explanation>>,
    reads: usize,
) -> WindowQueryResult {
    let cells = values.len();
    let (numbers, lists) = answer_cells(values);
    let rows = cells.checked_div(reads).unwrap_or(0);
    WindowQueryResult {
        rows: rows as u32,
        reads: reads as u32,
        numbers,
        lists,
        explanations: explanations.map(|e| {
            e.into_iter()
                .enumerate()
                .map(|(cell, x)| ValueExplanation {
                    first_bucket_start_ms: x.first_bucket_start as f64,
                    last_bucket_start_ms: x.last_bucket_start as f64,
                    buckets_merged: x.buckets_merged,
                    buffer: x
                        .buffer
                        .map(|b| buffer_plan_output(cell % reads.max(1), &b.plan)),
                    buffer_rows: x.buffer.map(|b| b.raw_rows),
                })
                .collect()
        }),
    }
}

/// The times of point reads, as whole ms.
pub(crate) fn point_times(times: &[f64]) -> napi::Result<Vec<i64>> {
    times
        .iter()
        .enumerate()
        .map(|(row, &t)| {
            if t.is_finite() {
                Ok(t.floor() as i64)
            } else {
                Err(js_error(
                    "INVALID_BATCH",
                    format!("point {row}: its time is {t}, not a time in Unix ms"),
                ))
            }
        })
        .collect()
}

/// Windows recomputed from raw rows, each key at its own time.
fn run_recompute(store: &Shared, query: &RecomputeQuery) -> napi::Result<WindowQueryResult> {
    reading(store, |store| {
        let keys = key_columns(&query.keys)?;
        let reads = window_reads(&query.reads)?;
        let times = point_times(&query.times_ms)?;
        let raw = series_batches(&query.raw)?;
        let window = if query.aligned.unwrap_or(false) {
            RecomputedWindow::Aligned
        } else {
            RecomputedWindow::Exact
        };
        let values = store
            .recompute_points(&keys, &times, &reads, &raw, window)
            .map_err(from_store)?;
        Ok(query_result(values, None, reads.len()))
    })
}

/// The parity check's recompute: windows as the online store serves them.
fn run_parity(store: &Shared, query: &ParityQuery) -> napi::Result<ParityPointsResult> {
    reading(store, |store| {
        let keys = key_columns(&query.keys)?;
        let reads = window_reads(&query.reads)?;
        let times = point_times(&query.times_ms)?;
        let raw = series_batches(&query.raw)?;
        let answer = store
            .parity_points(&keys, &times, &reads, &raw, &query.online)
            .map_err(from_store)?;
        let cells = answer.ranks.len();
        let mut online_rank = vec![f64::NAN; cells * 2];
        let mut recomputed_rank = vec![f64::NAN; cells * 2];
        for (cell, ranks) in answer.ranks.iter().enumerate() {
            if let Some([online, recomputed]) = ranks {
                online_rank[cell * 2] = online.0;
                online_rank[cell * 2 + 1] = online.1;
                recomputed_rank[cell * 2] = recomputed.0;
                recomputed_rank[cell * 2 + 1] = recomputed.1;
            }
        }
        Ok(ParityPointsResult {
            tolerance: answer.tolerance.into(),
            online_rank: online_rank.into(),
            recomputed_rank: recomputed_rank.into(),
            answer: query_result(answer.values, None, reads.len()),
        })
    })
}

/// Point-in-time reads: each key at its own time, in the materialized mode.
fn run_point_query(store: &Shared, query: &PointQuery) -> napi::Result<PointQueryResult> {
    reading(store, |store| {
        let keys = key_columns(&query.keys)?;
        let reads = window_reads(&query.reads)?;
        let times = point_times(&query.times_ms)?;
        let answer = store
            .read_points(&keys, &times, &reads, query.explain.unwrap_or(false))
            .map_err(from_store)?;
        Ok(PointQueryResult {
            stale: answer
                .stale
                .iter()
                .map(|s| StaleWindowOutput {
                    cell: s.cell as u32,
                    first_bucket_start_ms: s.first_bucket_start as f64,
                    kept_from_ms: s.kept_from as f64,
                })
                .collect(),
            answer: query_result(answer.values, answer.explanations, reads.len()),
        })
    })
}

/// The plans of the buffered reads of each query.
fn buffer_plans(
    store: &Shared,
    clock: &Clock,
    queries: &[WindowQuery],
) -> napi::Result<Vec<QueryBufferPlans>> {
    reading(store, |store| {
        queries
            .iter()
            .map(|query| {
                let reads = window_reads(&query.reads)?;
                let buffers = read_buffers(&query.reads)?;
                let now = read_time(query.now_ms, clock, "query")?;
                let plans = store
                    .buffer_plans(&reads, &buffers, now)
                    .map_err(from_store)?;
                Ok(QueryBufferPlans {
                    plans: plans
                        .iter()
                        .enumerate()
                        .filter_map(|(read, plan)| {
                            plan.as_ref().map(|p| buffer_plan_output(read, p))
                        })
                        .collect(),
                })
            })
            .collect()
    })
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
            let described = description.into_specs()?;
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
                if let Some(v) = o.clock_ms {
                    store_options
                        .clock
                        .pin(Some(whole_ms(v, "clockMs", "open")?));
                }
            }
            let clock = store_options.clock.clone();
            let (store, report) =
                BucketStore::open_described(&path, described, store_options).map_err(from_store)?;
            Ok(Self {
                store: Arc::new(RwLock::new(Some(store))),
                clock,
                report,
            })
        })
    }

    /// Which series opening found new, kept and orphaned, with their stored summaries.
    #[napi(getter)]
    pub fn open_report(&self) -> OpenReportOutput {
        open_report_output(&self.report)
    }

    /// Folds `batches` into a delta of this call's own and writes it, with the options'
    /// positions, dead letters and resolver states, in one atomic write. Rows staged with
    /// `stage` are not part of it. A bad batch is an error and nothing is written.
    #[napi(catch_unwind)]
    pub fn commit_batches(
        &self,
        batches: Vec<SeriesBatchInput>,
        options: Option<CommitOptions>,
    ) -> napi::Result<CommitReportOutput> {
        guard("commitBatches", || {
            commit_batches(&self.store, &batches, options)
        })
    }

    /// `commitBatches` on the libuv pool. Do not modify the arrays until it settles.
    #[napi(ts_return_type = "Promise<CommitReportOutput>")]
    pub fn commit_batches_async(
        &self,
        batches: Vec<SeriesBatchInput>,
        options: Option<CommitOptions>,
    ) -> AsyncTask<StoreTask<CommitReportOutput>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("commitBatches", move || {
            commit_batches(&store, &batches, options)
        }))
    }

    /// Folds batches into the staging delta; nothing is written until `commitStaged`. A
    /// bad batch is an error and nothing of the call is staged.
    #[napi(catch_unwind)]
    pub fn stage(&self, batches: Vec<SeriesBatchInput>) -> napi::Result<IngestReportOutput> {
        guard("stage", || stage(&self.store, &batches))
    }

    /// `stage` on the libuv pool. Do not modify the arrays until the promise settles.
    #[napi(ts_return_type = "Promise<IngestReportOutput>")]
    pub fn stage_async(
        &self,
        batches: Vec<SeriesBatchInput>,
    ) -> AsyncTask<StoreTask<IngestReportOutput>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("stage", move || stage(&store, &batches)))
    }

    /// Writes everything staged, with the options' records, in one atomic write.
    #[napi(catch_unwind)]
    pub fn commit_staged(
        &self,
        options: Option<CommitOptions>,
    ) -> napi::Result<CommitReportOutput> {
        guard("commitStaged", || commit_staged(&self.store, options))
    }

    /// `commitStaged` on the libuv pool.
    #[napi(ts_return_type = "Promise<CommitReportOutput>")]
    pub fn commit_staged_async(
        &self,
        options: Option<CommitOptions>,
    ) -> AsyncTask<StoreTask<CommitReportOutput>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("commitStaged", move || {
            commit_staged(&store, options)
        }))
    }

    /// Drops the staged rows without writing them.
    #[napi]
    pub fn discard_staged(&self) -> napi::Result<()> {
        write(&self.store)
            .as_mut()
            .ok_or_else(closed)?
            .discard_staged();
        Ok(())
    }

    /// Reads windows of committed data for many keys and rules in one call.
    #[napi(catch_unwind)]
    pub fn query(&self, queries: Vec<WindowQuery>) -> napi::Result<Vec<WindowQueryResult>> {
        guard("query", || run_queries(&self.store, &self.clock, &queries))
    }

    /// Where the buffered reads of each query take their parts from at its now: the raw
    /// rows a query must pass in `raw` (docs/semantics.md section 9.6).
    #[napi(catch_unwind)]
    pub fn buffer_plans(&self, queries: Vec<WindowQuery>) -> napi::Result<Vec<QueryBufferPlans>> {
        guard("bufferPlans", || {
            buffer_plans(&self.store, &self.clock, &queries)
        })
    }

    /// Reads windows for many keys, each at its own time (`timesMs`), from the complete
    /// buckets before the edge of the bucket holding it (docs/semantics.md section 11),
    /// on the libuv pool.
    #[napi(ts_return_type = "Promise<PointQueryResult>")]
    pub fn query_points_async(&self, query: PointQuery) -> AsyncTask<StoreTask<PointQueryResult>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("queryPoints", move || {
            run_point_query(&store, &query)
        }))
    }

    /// Recomputes windows from raw rows (`raw`), each key at its own time, exactly or
    /// aligned to bucket edges (docs/semantics.md section 11), on the libuv pool.
    #[napi(ts_return_type = "Promise<WindowQueryResult>")]
    pub fn recompute_points_async(
        &self,
        query: RecomputeQuery,
    ) -> AsyncTask<StoreTask<WindowQueryResult>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("recomputePoints", move || {
            run_recompute(&store, &query)
        }))
    }

    /// The parity check's recompute (docs/semantics.md section 11, "Parity check"): each
    /// window as the online store serves it at the key's time (the bucket holding it
    /// whole, stale buckets left out), folded from raw rows, with its tolerance and the
    /// ranks percentiles are judged by, on the libuv pool.
    #[napi(ts_return_type = "Promise<ParityPointsResult>")]
    pub fn parity_points_async(
        &self,
        query: ParityQuery,
    ) -> AsyncTask<StoreTask<ParityPointsResult>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("parityPoints", move || {
            run_parity(&store, &query)
        }))
    }

    /// Every group key of a series with a bucket the store still serves, as key parts
    /// (numbers for integer parts, strings for string parts), in key order.
    #[napi(catch_unwind)]
    pub fn group_keys(&self, series_id: String) -> napi::Result<Vec<Vec<Either<f64, String>>>> {
        guard("groupKeys", || {
            reading(&self.store, |store| {
                let keys = store.group_keys(&series_id).map_err(from_store)?;
                Ok(keys
                    .into_iter()
                    .map(|parts| {
                        parts
                            .into_iter()
                            .map(|part| match part {
                                GroupKeyPart::Int(v) => Either::A(v as f64),
                                GroupKeyPart::Text(s) => Either::B(s),
                            })
                            .collect()
                    })
                    .collect())
            })
        })
    }

    /// `query` on the libuv pool.
    #[napi(ts_return_type = "Promise<WindowQueryResult[]>")]
    pub fn query_async(
        &self,
        queries: Vec<WindowQuery>,
    ) -> AsyncTask<StoreTask<Vec<WindowQueryResult>>> {
        let (store, clock) = (self.store.clone(), self.clock.clone());
        AsyncTask::new(StoreTask::new("query", move || {
            run_queries(&store, &clock, &queries)
        }))
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
            reading(&self.store, |store| {
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
                            .map(|(rule, value)| rule_value(rule, value))
                            .collect(),
                    })
                    .collect())
            })
        })
    }

    /// The stored positions of one source.
    #[napi(catch_unwind)]
    pub fn positions(&self, source: String) -> napi::Result<Vec<SourcePositionInput>> {
        guard("positions", || {
            reading(&self.store, |store| {
                Ok(store
                    .positions(&source)
                    .map_err(from_store)?
                    .into_iter()
                    .map(position_output)
                    .collect())
            })
        })
    }

    /// The state a resolver committed last (watermark, dedupe horizon), if any.
    #[napi(catch_unwind)]
    pub fn resolver_state(&self, resolver: String) -> napi::Result<Option<ResolverStateRecord>> {
        guard("resolverState", || {
            reading(&self.store, |store| {
                Ok(store
                    .resolver_state(&resolver)
                    .map_err(from_store)?
                    .map(resolver_state_record))
            })
        })
    }

    /// Kept dead letters in (source, partition, offset) order.
    #[napi(catch_unwind)]
    pub fn dead_letters(
        &self,
        query: Option<DeadLetterQuery>,
    ) -> napi::Result<Vec<DeadLetterRecord>> {
        guard("deadLetters", || {
            reading(&self.store, |store| {
                let source = query.as_ref().and_then(|q| q.source.as_deref());
                let limit = query.as_ref().and_then(|q| q.limit).unwrap_or(1000) as usize;
                Ok(store
                    .dead_letters(source, limit)
                    .map_err(from_store)?
                    .into_iter()
                    .map(dead_letter_output)
                    .collect())
            })
        })
    }

    /// How many dead letters are kept, of one source or all.
    #[napi(catch_unwind)]
    pub fn dead_letter_count(&self, source: Option<String>) -> napi::Result<f64> {
        guard("deadLetterCount", || {
            reading(&self.store, |store| {
                Ok(store
                    .dead_letter_count(source.as_deref())
                    .map_err(from_store)? as f64)
            })
        })
    }

    /// Flushes memtables to disk (commits are already durable through the WAL).
    #[napi(catch_unwind)]
    pub fn flush(&self) -> napi::Result<()> {
        guard("flush", || {
            reading(&self.store, |store| store.flush().map_err(from_store))
        })
    }

    /// Compacts now, which also removes buckets past their retention.
    #[napi(catch_unwind)]
    pub fn compact(&self) -> napi::Result<()> {
        guard("compact", || {
            reading(&self.store, |store| store.compact().map_err(from_store))
        })
    }

    /// Counts and sizes, for monitoring and benchmarks.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> napi::Result<EngineStats> {
        guard("stats", || {
            reading(&self.store, |store| {
                let (pending_rows, pending_buckets) = store.staged();
                Ok(EngineStats {
                    series: store.series().len() as u32,
                    pending_rows: pending_rows as f64,
                    pending_buckets: pending_buckets as f64,
                    bucket_entries_estimate: store.bucket_entries(false).map_err(from_store)?
                        as f64,
                    disk_bytes: store.disk_bytes().map_err(from_store)? as f64,
                })
            })
        })
    }

    /// Counts stored bucket entries exactly (a full scan; for tests).
    #[napi(catch_unwind)]
    pub fn count_bucket_entries(&self) -> napi::Result<f64> {
        guard("countBucketEntries", || {
            reading(&self.store, |store| {
                Ok(store.bucket_entries(true).map_err(from_store)? as f64)
            })
        })
    }

    /// Pins the engine's clock (retention and default query time) to `nowMs`, or back to
    /// the system clock with `null`. For tests and replays.
    /// The engine clock in Unix ms: the time `setClock` pinned, else the system clock.
    #[napi]
    pub fn clock_ms(&self) -> f64 {
        self.clock.now_ms() as f64
    }

    #[napi]
    pub fn set_clock(&self, now_ms: Option<f64>) {
        self.clock.pin(now_ms.map(|v| v as i64));
    }

    /// Closes the store; staged rows are dropped. Later calls fail with `[CLOSED]`.
    #[napi]
    pub fn close(&self) -> napi::Result<()> {
        write(&self.store).take();
        Ok(())
    }
}
