//! Backfills across the boundary: the widened ranges of a run, and `NativeBackfill`, a
//! run in progress that folds batches off the event loop and ingests its table files in
//! one atomic step when it finishes (`crates/store/src/backfill.rs`). A run holds the
//! store's read lock only while it finishes, so streams and queries go on meanwhile.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;
use tessera_store::{
    Backfill, BackfillLayout, BackfillOptions, BackfillRange, BackfillReport, BackfillRunRecord,
    TileTarget,
};

use crate::conversions::{read_time, series_batches, window_reads};
use crate::description::whole_ms;
use crate::engine::{reading, NativeEngine, Shared};
use crate::error::{from_store, guard, js_error};
use crate::objects::{SeriesBatchInput, WindowReadInput};
use crate::tasks::StoreTask;

/// One layout a backfill rebuilds: a series and one of its bucket sizes.
#[napi(object)]
pub struct BackfillLayoutInput {
    pub series_id: String,
    pub bucket_size_ms: f64,
}

/// The buckets of one layout a backfill replaces: those starting in
/// `[startMs, endMs)`, on the layout's bucket edges.
#[napi(object)]
pub struct BackfillRangeRecord {
    pub series_id: String,
    pub bucket_size_ms: f64,
    pub start_ms: f64,
    pub end_ms: f64,
    /// The layout's retention.
    pub retention_ms: f64,
}

/// How a backfill runs.
#[napi(object)]
pub struct BackfillRunOptions {
    /// Buckets folded in memory before they are written out to a table file (default
    /// 1,048,576).
    pub spill_buckets: Option<u32>,
    /// Replace the range in the store (default true).
    pub online: Option<bool>,
    /// Write offline tiles of the range into this directory.
    pub tile_dir: Option<String>,
    /// With `tileDir`: record a tile for a layout the run had no rows for.
    pub allow_empty_tiles: Option<bool>,
}

/// What a backfill wrote.
#[napi(object)]
pub struct BackfillReportOutput {
    pub rows: f64,
    /// Bucket records written (a bucket spread over several spills counts once per spill).
    pub buckets_written: f64,
    pub bytes_written: f64,
    /// Range deletions written: one per (group key, layout) per spill, except where the
    /// spill before saw the key too.
    pub key_ranges_cleared: f64,
    pub spills: f64,
    pub table_files: f64,
    /// Rows skipped because their time lies outside the run's range.
    pub rows_outside_range: f64,
    /// Offline tiles recorded.
    pub tiles_written: f64,
    /// Rows of those tiles: one per (rule, group key, bucket).
    pub tile_rows: f64,
}

/// The record of one run of a scheduled backfill job.
#[napi(object)]
pub struct BackfillRunEntry {
    pub job: String,
    /// The schedule's time this run is for.
    pub scheduled_ms: f64,
    /// `REGISTERED`, `INITIALIZING`, `RUNNING`, `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: String,
    pub started_ms: Option<f64>,
    pub ended_ms: Option<f64>,
    pub lower_ms: Option<f64>,
    pub upper_ms: Option<f64>,
    pub rows: f64,
    pub error: Option<String>,
}

fn run_entry(r: BackfillRunRecord) -> BackfillRunEntry {
    let ms = |v: Option<i64>| v.map(|v| v as f64);
    BackfillRunEntry {
        job: r.job,
        scheduled_ms: r.scheduled_ms as f64,
        status: r.status,
        started_ms: ms(r.started_ms),
        ended_ms: ms(r.ended_ms),
        lower_ms: ms(r.lower_ms),
        upper_ms: ms(r.upper_ms),
        rows: r.rows as f64,
        error: r.error,
    }
}

fn run_record(e: BackfillRunEntry) -> napi::Result<BackfillRunRecord> {
    let ms = |v: Option<f64>, what: &str| v.map(|v| whole_ms(v, what, &e.job)).transpose();
    Ok(BackfillRunRecord {
        scheduled_ms: whole_ms(e.scheduled_ms, "scheduledMs", &e.job)?,
        started_ms: ms(e.started_ms, "startedMs")?,
        ended_ms: ms(e.ended_ms, "endedMs")?,
        lower_ms: ms(e.lower_ms, "lowerMs")?,
        upper_ms: ms(e.upper_ms, "upperMs")?,
        rows: if e.rows.is_finite() && e.rows >= 0.0 {
            e.rows as u64
        } else {
            0
        },
        status: e.status,
        error: e.error,
        job: e.job,
    })
}

fn range_record(range: BackfillRange) -> BackfillRangeRecord {
    BackfillRangeRecord {
        series_id: range.series_id,
        bucket_size_ms: range.bucket_size_ms as f64,
        start_ms: range.start_ms as f64,
        end_ms: range.end_ms as f64,
        retention_ms: range.retention_ms as f64,
    }
}

fn report_output(report: BackfillReport) -> BackfillReportOutput {
    BackfillReportOutput {
        rows: report.rows as f64,
        buckets_written: report.buckets_written as f64,
        bytes_written: report.bytes_written as f64,
        key_ranges_cleared: report.key_ranges_cleared as f64,
        spills: report.spills as f64,
        table_files: report.table_files as f64,
        rows_outside_range: report.rows_outside_range as f64,
        tiles_written: report.tiles_written as f64,
        tile_rows: report.tile_rows as f64,
    }
}

fn optional_ms(value: Option<f64>, what: &str) -> napi::Result<Option<i64>> {
    value.map(|v| whole_ms(v, what, "backfill")).transpose()
}

#[napi]
impl NativeEngine {
    /// The ranges a backfill of `layouts` replaces for `[lowerMs, upperMs)`, widened to
    /// each layout's bucket edges. Without `lowerMs` a layout starts at the engine clock
    /// minus its retention; without `upperMs` it ends at the start of the bucket holding
    /// the engine clock.
    #[napi(catch_unwind)]
    pub fn backfill_ranges(
        &self,
        layouts: Vec<BackfillLayoutInput>,
        lower_ms: Option<f64>,
        upper_ms: Option<f64>,
    ) -> napi::Result<Vec<BackfillRangeRecord>> {
        let layouts = layouts
            .into_iter()
            .map(|l| {
                Ok(BackfillLayout {
                    bucket_size_ms: whole_ms(l.bucket_size_ms, "bucketSizeMs", &l.series_id)?,
                    series_id: l.series_id,
                })
            })
            .collect::<napi::Result<Vec<_>>>()?;
        let (lower, upper) = (
            optional_ms(lower_ms, "lowerMs")?,
            optional_ms(upper_ms, "upperMs")?,
        );
        reading(&self.store, |store| {
            store
                .backfill_ranges(&layouts, lower, upper)
                .map(|ranges| ranges.into_iter().map(range_record).collect())
                .map_err(from_store)
        })
    }

    /// Starts a backfill of `ranges` (from `backfillRanges`). Nothing is visible until
    /// `finish`.
    #[napi(catch_unwind)]
    pub fn begin_backfill(
        &self,
        ranges: Vec<BackfillRangeRecord>,
        options: Option<BackfillRunOptions>,
    ) -> napi::Result<NativeBackfill> {
        let ranges = ranges
            .into_iter()
            .map(|r| {
                Ok(BackfillRange {
                    bucket_size_ms: whole_ms(r.bucket_size_ms, "bucketSizeMs", &r.series_id)?,
                    start_ms: whole_ms(r.start_ms, "startMs", &r.series_id)?,
                    end_ms: whole_ms(r.end_ms, "endMs", &r.series_id)?,
                    retention_ms: whole_ms(r.retention_ms, "retentionMs", &r.series_id)?,
                    series_id: r.series_id,
                })
            })
            .collect::<napi::Result<Vec<_>>>()?;
        let mut run_options = BackfillOptions::default();
        if let Some(options) = options {
            if let Some(spill) = options.spill_buckets {
                run_options.spill_buckets = spill.max(1) as usize;
            }
            run_options.online = options.online.unwrap_or(true);
            match options.tile_dir {
                Some(dir) => {
                    run_options.tiles = Some(TileTarget {
                        dir: dir.into(),
                        allow_empty: options.allow_empty_tiles.unwrap_or(false),
                    });
                }
                None if options.allow_empty_tiles.is_some() => {
                    return Err(js_error(
                        "INVALID_BATCH",
                        "allowEmptyTiles applies to offline tiles; give tileDir too",
                    ));
                }
                None => {}
            }
        }
        let run = reading(&self.store, |store| {
            store
                .begin_backfill(&ranges, run_options)
                .map_err(from_store)
        })?;
        Ok(NativeBackfill {
            store: self.store.clone(),
            run: Arc::new(Mutex::new(Some(run))),
        })
    }
}

#[napi]
impl NativeEngine {
    /// Writes (or overwrites) the record of one run of a scheduled backfill job, synced.
    #[napi(catch_unwind)]
    pub fn put_backfill_run(&self, entry: BackfillRunEntry) -> napi::Result<()> {
        let record = run_record(entry)?;
        reading(&self.store, |store| {
            store.put_backfill_run(&record).map_err(from_store)
        })
    }

    /// The records of one job's runs (or of every job's), oldest scheduled time first.
    #[napi(catch_unwind)]
    pub fn backfill_runs(&self, job: Option<String>) -> napi::Result<Vec<BackfillRunEntry>> {
        reading(&self.store, |store| {
            store
                .backfill_runs(job.as_deref())
                .map(|runs| runs.into_iter().map(run_entry).collect())
                .map_err(from_store)
        })
    }
}

/// A window's first bucket and where its layout is complete from.
#[napi(object)]
pub struct WindowCoverageRecord {
    pub first_bucket_start_ms: f64,
    /// The first complete bucket start of the layout; absent when every bucket counts as
    /// complete.
    pub complete_from_ms: Option<f64>,
}

#[napi]
impl NativeEngine {
    /// For each read, at `nowMs` (default: the engine clock): the first bucket the window
    /// reads and where its layout is complete from (docs/semantics.md section 9.4).
    #[napi(catch_unwind)]
    pub fn window_coverage(
        &self,
        reads: Vec<WindowReadInput>,
        now_ms: Option<f64>,
    ) -> napi::Result<Vec<WindowCoverageRecord>> {
        let reads = window_reads(&reads)?;
        let now = read_time(now_ms, &self.clock, "windowCoverage")?;
        reading(&self.store, |store| {
            store
                .window_coverage(&reads, now)
                .map(|all| {
                    all.into_iter()
                        .map(|c| WindowCoverageRecord {
                            first_bucket_start_ms: c.first_bucket_start_ms as f64,
                            complete_from_ms: c.complete_from_ms.map(|v| v as f64),
                        })
                        .collect()
                })
                .map_err(from_store)
        })
    }
}

type SharedRun = Arc<Mutex<Option<Backfill>>>;

/// A backfill in progress. Dropping it (or `abort`) discards it.
#[napi]
pub struct NativeBackfill {
    store: Shared,
    run: SharedRun,
}

fn not_running() -> napi::Error {
    js_error("CLOSED", "the backfill has finished or was aborted")
}

fn fold(run: &SharedRun, batches: &[SeriesBatchInput]) -> napi::Result<f64> {
    let converted = series_batches(batches)?;
    let mut guard = run.lock().unwrap_or_else(|p| p.into_inner());
    let run = guard.as_mut().ok_or_else(not_running)?;
    run.fold(&converted).map(|n| n as f64).map_err(from_store)
}

fn finish(store: &Shared, run: &SharedRun) -> napi::Result<BackfillReportOutput> {
    let taken = run
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(not_running)?;
    reading(store, |store| {
        taken.finish(store).map(report_output).map_err(from_store)
    })
}

#[napi]
impl NativeBackfill {
    /// Folds batches of the run's rows. A bad batch is an error and nothing of the call
    /// is folded. Returns the rows folded.
    #[napi(catch_unwind)]
    pub fn fold(&self, batches: Vec<SeriesBatchInput>) -> napi::Result<f64> {
        guard("backfill.fold", || fold(&self.run, &batches))
    }

    /// `fold` on the libuv pool. Do not modify the arrays until it settles.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn fold_async(&self, batches: Vec<SeriesBatchInput>) -> AsyncTask<StoreTask<f64>> {
        let run = self.run.clone();
        AsyncTask::new(StoreTask::new("backfill.fold", move || {
            fold(&run, &batches)
        }))
    }

    /// Rows folded so far.
    #[napi(getter)]
    pub fn rows(&self) -> f64 {
        let guard = self.run.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map_or(0.0, |run| run.rows() as f64)
    }

    /// Ingests the run in one atomic step, on the libuv pool.
    #[napi(ts_return_type = "Promise<BackfillReportOutput>")]
    pub fn finish_async(&self) -> AsyncTask<StoreTask<BackfillReportOutput>> {
        let (store, run) = (self.store.clone(), self.run.clone());
        AsyncTask::new(StoreTask::new("backfill.finish", move || {
            finish(&store, &run)
        }))
    }

    /// Ingests the run in one atomic step.
    #[napi(catch_unwind)]
    pub fn finish(&self) -> napi::Result<BackfillReportOutput> {
        guard("backfill.finish", || finish(&self.store, &self.run))
    }

    /// Discards the run: nothing of it is written.
    #[napi]
    pub fn abort(&self) {
        self.run.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
