//! Backfills: replacing a range of a series' buckets with the states folded from a run's
//! rows (docs/semantics.md section 9).
//!
//! A run names layouts (a series and one of its bucket sizes) and a time range. The range
//! is widened to each layout's bucket edges ([`BucketStore::backfill_ranges`]) so that no
//! bucket is rebuilt from part of its rows. Rows are folded in memory, as a commit folds
//! them; whenever the fold holds [`BackfillOptions::spill_buckets`] buckets, it is written
//! out as two sorted table files in the store's `backfill` directory:
//! - a file of range deletions, one per (group key, layout) the spill saw, covering that
//!   key's buckets in the layout's range (a key the run returns loses every bucket of the
//!   range it has no rows in);
//! - a file of the spill's bucket records as merge operands, only those in the range.
//!
//! [`Backfill::finish`] ingests every file in one step, the deletions first, so each
//! spill's records are merged on top of every deletion and of each other. Ingestion is
//! one manifest edit: a query reads the old buckets or the new ones, never a mix, and a
//! process killed before it leaves the old state (the directory is emptied on the next
//! open). Memory is bounded by the spill size, whatever the number of rows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use rocksdb::{IngestExternalFileOptions, SstFileWriter};

use crate::bulk::{table_file_options, BulkRecords};
use crate::error::{invalid_batch, StoreError, StoreErrorKind, StoreResult};
use crate::fold::{PendingDelta, SeriesBatch};
use crate::key::{bucket_key, parse_bucket_key};
use crate::layout::SeriesLayout;
use crate::store::BucketStore;

/// The directory, inside the store's, where backfills stage their table files.
pub(crate) const BACKFILL_DIR: &str = "backfill";

/// One layout a backfill rebuilds: a series and one of its bucket sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillLayout {
    pub series_id: String,
    pub bucket_size_ms: i64,
}

/// The buckets of one layout a backfill replaces: those starting in
/// `[start_ms, end_ms)`, both on the layout's bucket edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRange {
    pub series_id: String,
    pub bucket_size_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The layout's retention (its largest window plus one bucket is kept).
    pub retention_ms: i64,
}

/// How a backfill runs.
#[derive(Debug, Clone, Copy)]
pub struct BackfillOptions {
    /// Buckets folded in memory before they are written out to a table file.
    pub spill_buckets: usize,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            spill_buckets: 1 << 20,
        }
    }
}

/// What a backfill wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackfillReport {
    pub rows: u64,
    /// Bucket records written (a bucket spread over several spills counts once per spill).
    pub buckets_written: u64,
    pub bytes_written: u64,
    /// Range deletions written, one per (group key, layout) per spill.
    pub key_ranges_cleared: u64,
    /// Times the fold was written out to table files.
    pub spills: u64,
    /// Table files ingested by [`Backfill::finish`].
    pub table_files: u64,
    /// Rows skipped because their time lies outside the run's range (summed over the
    /// series they fed).
    pub rows_outside_range: u64,
}

impl BucketStore {
    /// The ranges a backfill of `layouts` replaces for the requested `[lower, upper)`:
    /// the lower bound rounded down and the upper bound rounded up to each layout's
    /// bucket edges. Without a lower bound a layout starts at the engine clock minus its
    /// retention; without an upper bound it ends at the start of the bucket holding the
    /// engine clock, so buckets a running stream still writes are left alone.
    pub fn backfill_ranges(
        &self,
        layouts: &[BackfillLayout],
        lower_ms: Option<i64>,
        upper_ms: Option<i64>,
    ) -> StoreResult<Vec<BackfillRange>> {
        let now = self.options.clock.now_ms();
        let mut ranges = Vec::with_capacity(layouts.len());
        for wanted in layouts {
            let series = &self.series[self.series_index(&wanted.series_id)?];
            let layout = series
                .layouts
                .iter()
                .find(|l| l.span.size_ms() == wanted.bucket_size_ms)
                .ok_or_else(|| {
                    invalid_batch(format!(
                        "series '{}' has no buckets of {} ms",
                        wanted.series_id, wanted.bucket_size_ms
                    ))
                })?;
            let span = layout.span;
            let lower = lower_ms.unwrap_or_else(|| now.saturating_sub(layout.retention_ms));
            let start = span.start_of(lower);
            let end = match upper_ms {
                None => span.start_of(now),
                Some(upper) => {
                    let edge = span.start_of(upper);
                    if edge == upper {
                        edge
                    } else {
                        edge + span.size_ms()
                    }
                }
            };
            ranges.push(BackfillRange {
                series_id: wanted.series_id.clone(),
                bucket_size_ms: wanted.bucket_size_ms,
                start_ms: start,
                end_ms: end.max(start),
                retention_ms: layout.retention_ms,
            });
        }
        Ok(ranges)
    }

    /// Starts a backfill of `ranges`. Nothing is visible until [`Backfill::finish`].
    pub fn begin_backfill(
        &self,
        ranges: &[BackfillRange],
        options: BackfillOptions,
    ) -> StoreResult<Backfill> {
        let mut sizes: HashMap<&str, Vec<i64>> = HashMap::new();
        for range in ranges {
            if range.end_ms < range.start_ms {
                return Err(invalid_batch(format!(
                    "series '{}': backfill range ends ({}) before it starts ({})",
                    range.series_id, range.end_ms, range.start_ms
                )));
            }
            sizes
                .entry(range.series_id.as_str())
                .or_default()
                .push(range.bucket_size_ms);
        }
        let mut series: Vec<SeriesLayout> = Vec::new();
        let mut by_id = HashMap::new();
        let mut bounds = HashMap::new();
        for range in ranges {
            let full = &self.series[self.series_index(&range.series_id)?];
            if !full
                .layouts
                .iter()
                .any(|l| l.span.size_ms() == range.bucket_size_ms)
            {
                return Err(invalid_batch(format!(
                    "series '{}' has no buckets of {} ms",
                    range.series_id, range.bucket_size_ms
                )));
            }
            if !by_id.contains_key(&range.series_id) {
                by_id.insert(range.series_id.clone(), series.len());
                series.push(full.restricted_to(&sizes[range.series_id.as_str()]));
            }
            bounds.insert(
                (full.number, range.bucket_size_ms),
                (range.start_ms, range.end_ms),
            );
        }
        let dir = self.path.join(BACKFILL_DIR).join(format!(
            "run-{}-{}",
            std::process::id(),
            self.backfills_started
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Storage,
                format!("cannot create '{}' for a backfill: {e}", dir.display()),
            )
        })?;
        Ok(Backfill {
            dir,
            series: Arc::new(series),
            by_id,
            bounds: Arc::new(bounds),
            from_ms: ranges.iter().map(|r| r.start_ms).min().unwrap_or(0),
            to_ms: ranges.iter().map(|r| r.end_ms).max().unwrap_or(0),
            delta: PendingDelta::default(),
            spare: None,
            spilling: None,
            spill_buckets: options.spill_buckets.max(1),
            ranges: ranges.to_vec(),
            deletions: Vec::new(),
            data: Vec::new(),
            report: BackfillReport::default(),
        })
    }
}

/// A backfill in progress: rows folded and spilled, not yet visible. Dropping it without
/// [`Backfill::finish`] discards it.
///
/// A spill is written by a thread of its own while the next rows fold, one spill at a
/// time, so that folding and writing table files overlap; its delta and record buffer
/// come back for the spill after.
pub struct Backfill {
    dir: PathBuf,
    /// The series the run rebuilds, each restricted to the layouts it replaces.
    series: Arc<Vec<SeriesLayout>>,
    by_id: HashMap<String, usize>,
    /// (series number, bucket size) -> the replaced range of bucket starts.
    bounds: Arc<Bounds>,
    /// The run's range: from the earliest start to the latest end of its layouts.
    from_ms: i64,
    to_ms: i64,
    delta: PendingDelta,
    /// The buffers of the last finished spill, for the next one.
    spare: Option<(PendingDelta, BulkRecords)>,
    spilling: Option<JoinHandle<StoreResult<SpillDone>>>,
    spill_buckets: usize,
    deletions: Vec<PathBuf>,
    data: Vec<PathBuf>,
    report: BackfillReport,
    /// The layouts' ranges, for the coverage records once the run is in.
    ranges: Vec<BackfillRange>,
}

type Bounds = HashMap<(u32, i64), (i64, i64)>;

/// What one spill needs, owned, so that it can run on a thread of its own.
struct SpillJob {
    delta: PendingDelta,
    records: BulkRecords,
    series: Arc<Vec<SeriesLayout>>,
    bounds: Arc<Bounds>,
    deletions_path: PathBuf,
    data_path: PathBuf,
}

/// What a spill wrote, and its buffers back (cleared).
struct SpillDone {
    delta: PendingDelta,
    records: BulkRecords,
    deletions: Option<PathBuf>,
    data: Option<PathBuf>,
    buckets_written: u64,
    bytes_written: u64,
    key_ranges_cleared: u64,
}

impl Backfill {
    /// Folds batches of the run's rows. Every batch is checked first: a bad batch is an
    /// error and nothing of the call is folded (the backfill itself can go on or be
    /// dropped).
    pub fn fold(&mut self, batches: &[SeriesBatch<'_>]) -> StoreResult<u64> {
        let mut indexes = Vec::with_capacity(batches.len());
        for batch in batches {
            let index = *self.by_id.get(batch.series_id).ok_or_else(|| {
                StoreError::new(
                    StoreErrorKind::UnknownSeries,
                    format!(
                        "series '{}' is not rebuilt by this backfill",
                        batch.series_id
                    ),
                )
            })?;
            PendingDelta::validate(&self.series[index], batch)?;
            indexes.push(index);
        }
        // Rows outside the run's range are not the run's: they are skipped, so that a key
        // with rows only outside the range keeps its buckets.
        let (from, to) = (self.from_ms as f64, self.to_ms as f64);
        let inside = |t: f64| t >= from && t < to;
        let selections: Vec<Option<Vec<u32>>> = batches
            .iter()
            .map(|batch| {
                let ts = batch.timestamps_ms;
                let all_inside = match batch.selection {
                    None => ts.iter().all(|&t| inside(t)),
                    Some(rows) => rows.iter().all(|&r| inside(ts[r as usize])),
                };
                (!all_inside).then(|| match batch.selection {
                    None => (0..ts.len() as u32)
                        .filter(|&r| inside(ts[r as usize]))
                        .collect(),
                    Some(rows) => rows
                        .iter()
                        .copied()
                        .filter(|&r| inside(ts[r as usize]))
                        .collect(),
                })
            })
            .collect();
        let before = self.delta.rows();
        for ((batch, &index), selection) in batches.iter().zip(&indexes).zip(&selections) {
            let given = batch
                .selection
                .map_or(batch.timestamps_ms.len(), <[u32]>::len);
            match selection {
                None => self.delta.fold(index, &self.series[index], batch),
                Some(rows) => {
                    self.report.rows_outside_range += (given - rows.len()) as u64;
                    let mut narrowed = batch.clone();
                    narrowed.selection = Some(rows);
                    self.delta.fold(index, &self.series[index], &narrowed);
                }
            }
        }
        let folded = self.delta.rows() - before;
        if self.delta.bucket_count() >= self.spill_buckets {
            self.spill(true)?;
        }
        Ok(folded)
    }

    /// Rows folded so far.
    pub fn rows(&self) -> u64 {
        self.report.rows + self.delta.rows()
    }

    /// Hands the folded buckets to a spill, on a thread of its own (`background`) or on
    /// this one, after the spill before it has finished.
    fn spill(&mut self, background: bool) -> StoreResult<()> {
        self.join_spill()?;
        if self.delta.bucket_count() == 0 {
            return Ok(());
        }
        self.report.rows += self.delta.rows();
        let (fresh, records) = self.spare.take().unwrap_or_default();
        let delta = std::mem::replace(&mut self.delta, fresh);
        let number = self.report.spills;
        self.report.spills += 1;
        let job = SpillJob {
            delta,
            records,
            series: Arc::clone(&self.series),
            bounds: Arc::clone(&self.bounds),
            deletions_path: self.dir.join(format!("{number:06}-deletions.sst")),
            data_path: self.dir.join(format!("{number:06}-data.sst")),
        };
        if background {
            self.spilling = Some(std::thread::spawn(move || write_spill(job)));
            Ok(())
        } else {
            let done = write_spill(job)?;
            self.absorb(done);
            Ok(())
        }
    }

    /// Waits for the spill in progress, if any, and takes what it wrote.
    fn join_spill(&mut self) -> StoreResult<()> {
        if let Some(handle) = self.spilling.take() {
            let done = handle.join().map_err(|_| {
                StoreError::new(StoreErrorKind::Storage, "a backfill spill panicked")
            })??;
            self.absorb(done);
        }
        Ok(())
    }

    fn absorb(&mut self, done: SpillDone) {
        self.deletions.extend(done.deletions);
        self.data.extend(done.data);
        self.report.buckets_written += done.buckets_written;
        self.report.bytes_written += done.bytes_written;
        self.report.key_ranges_cleared += done.key_ranges_cleared;
        self.spare = Some((done.delta, done.records));
    }

    /// Writes out what is still in memory and ingests every file of the run in one
    /// atomic step. Consumes the backfill; its directory is removed either way.
    pub fn finish(mut self, store: &BucketStore) -> StoreResult<BackfillReport> {
        self.spill(false)?;
        let mut files: Vec<PathBuf> = std::mem::take(&mut self.deletions);
        files.append(&mut self.data);
        self.report.table_files = files.len() as u64;
        if !files.is_empty() {
            // Commits before this one that went through an unsynced WAL become durable
            // first, so that a power failure cannot keep the backfill and lose them.
            if !store.options.sync_commits {
                store.db.flush_wal(true)?;
            }
            let mut ingest = IngestExternalFileOptions::default();
            ingest.set_move_files(true);
            store
                .db
                .ingest_external_file_cf_opts(store.buckets_cf(), &ingest, files)?;
        }
        // After the ingest: a crash in between leaves the coverage short (a window is
        // reported as needing a backfill it has), never long.
        for range in &self.ranges {
            store.extend_coverage(
                &range.series_id,
                range.bucket_size_ms,
                range.start_ms,
                range.end_ms,
            )?;
            store.extend_filled(&range.series_id, range.bucket_size_ms, range.end_ms)?;
        }
        Ok(self.report)
    }
}

/// Writes one spill: the records of `job.delta`, sorted, as a deletion file (one range
/// per (group key, layout) seen, over that layout's range) and a data file (the records
/// inside the range, as merge operands). A file with nothing to hold is not written.
fn write_spill(job: SpillJob) -> StoreResult<SpillDone> {
    let SpillJob {
        mut delta,
        mut records,
        series,
        bounds,
        deletions_path,
        data_path,
    } = job;
    records.clear();
    delta.write_records_and_empty(&series, |key, record| {
        records.push(key, record.unwrap_or_default())
    });
    delta.clear();
    let mut done = SpillDone {
        delta: PendingDelta::default(),
        records: BulkRecords::default(),
        deletions: None,
        data: None,
        buckets_written: 0,
        bytes_written: 0,
        key_ranges_cleared: 0,
    };
    let options = table_file_options();
    let mut deletions = SstFileWriter::create(&options);
    deletions.open(&deletions_path)?;
    let mut data = SstFileWriter::create(&options);
    data.open(&data_path)?;
    let (mut has_deletions, mut has_data) = (false, false);
    let mut last_prefix: Vec<u8> = Vec::new();
    let (mut from, mut to) = (Vec::with_capacity(64), Vec::with_capacity(64));
    for (key, record) in records.sorted() {
        let parts = parse_bucket_key(key).expect("the fold writes bucket keys");
        let Some(&(start, end)) = bounds.get(&(parts.series, parts.size_ms)) else {
            continue;
        };
        let prefix = &key[..key.len() - 8];
        if prefix != last_prefix.as_slice() {
            last_prefix.clear();
            last_prefix.extend_from_slice(prefix);
            if end > start {
                bucket_key(
                    &mut from,
                    parts.series,
                    parts.group_key,
                    parts.size_ms,
                    start,
                );
                bucket_key(&mut to, parts.series, parts.group_key, parts.size_ms, end);
                deletions.delete_range(&from, &to)?;
                has_deletions = true;
                done.key_ranges_cleared += 1;
            }
        }
        if !record.is_empty() && parts.start >= start && parts.start < end {
            data.merge(key, record)?;
            has_data = true;
            done.buckets_written += 1;
            done.bytes_written += (key.len() + record.len()) as u64;
        }
    }
    for (mut writer, path, used, slot) in [
        (
            deletions,
            deletions_path,
            has_deletions,
            &mut done.deletions,
        ),
        (data, data_path, has_data, &mut done.data),
    ] {
        if used {
            writer.finish()?;
            *slot = Some(path);
        } else {
            drop(writer);
            let _ = std::fs::remove_file(&path);
        }
    }
    records.clear();
    done.delta = delta;
    done.records = records;
    Ok(done)
}

impl Drop for Backfill {
    fn drop(&mut self) {
        if let Some(handle) = self.spilling.take() {
            let _ = handle.join();
        }
        // Ingested files were moved (hard-linked): the store has its own now.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
