//! Backfills: replacing a range of a series' buckets with the states folded from a run's
//! rows (docs/semantics.md section 9).
//!
//! A run names layouts (a series and one of its bucket sizes) and a time range. The range
//! is widened to each layout's bucket edges ([`BucketStore::backfill_ranges`]) so that no
//! bucket is rebuilt from part of its rows. Rows are folded in memory, as a commit folds
//! them; whenever the fold holds [`BackfillOptions::spill_buckets`] buckets, it is written
//! out, on a thread of its own while the next rows fold, as two sorted table files per
//! layout in the store's `backfill` directory:
//! - a file of range deletions, one per group key the spill saw, covering that key's
//!   buckets in the layout's range (a key the run returns loses every bucket of the range
//!   it has no rows in), except the keys the spill before saw too: their deletion is
//!   written already;
//! - a file of the spill's bucket records as merge operands, only those in the range.
//!
//! The buckets go from the fold's tables to the files in key order as they are sorted
//! (`PendingDelta::emit_sorted`), with nothing gathered or sorted again in between.
//! [`Backfill::finish`] ingests every file in one step, the deletions first, so each
//! spill's records are merged on top of every deletion and of each other. Ingestion is
//! one manifest edit: a query reads the old buckets or the new ones, never a mix, and a
//! process killed before it leaves the old state (the directory is emptied on the next
//! open). Memory is bounded by the spill size, whatever the number of rows: two deltas
//! (one folding, one being written), one set of sort buffers, and the group keys of two
//! spills.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use rocksdb::{IngestExternalFileOptions, SstFileWriter};

use crate::bulk::table_file_options;
use crate::error::{invalid_batch, StoreError, StoreErrorKind, StoreResult};
use crate::fold::{BucketSink, PendingDelta, SeriesBatch};
use crate::key::bucket_key;
use crate::layout::{Layout, SeriesLayout};
use crate::store::BucketStore;
use crate::tiles::{commit_tiles, staging_dir, TilePart, TileSink, TileTarget, TiledLayout};

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
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Buckets folded in memory before they are written out to a table file.
    pub spill_buckets: usize,
    /// Replace the range in the store (the online target).
    pub online: bool,
    /// Write offline tiles of the range there too (`tiles.rs`).
    pub tiles: Option<TileTarget>,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            spill_buckets: 1 << 20,
            online: true,
            tiles: None,
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
    /// Range deletions written: one per (group key, layout) per spill, except where the
    /// spill before saw the key too.
    pub key_ranges_cleared: u64,
    /// Times the fold was written out to table files.
    pub spills: u64,
    /// Table files ingested by [`Backfill::finish`].
    pub table_files: u64,
    /// Rows skipped because their time lies outside the run's range (summed over the
    /// series they fed).
    pub rows_outside_range: u64,
    /// Offline tiles recorded (one per layout with rows, or per layout with
    /// `allow_empty`).
    pub tiles_written: u64,
    /// Rows of those tiles: one per (rule, group key, bucket).
    pub tile_rows: u64,
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
            let layout = series.layout_of_size(wanted.bucket_size_ms)?;
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
        if !options.online && options.tiles.is_none() {
            return Err(invalid_batch(
                "a backfill writes the store, offline tiles or both; this one writes neither",
            ));
        }
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
            full.layout_of_size(range.bucket_size_ms)?;
            if !by_id.contains_key(&range.series_id) {
                by_id.insert(range.series_id.clone(), series.len());
                series.push(full.restricted_to(&sizes[range.series_id.as_str()]));
            }
            bounds.insert(
                (full.number, range.bucket_size_ms),
                (range.start_ms, range.end_ms),
            );
        }
        let run = format!(
            "run-{}-{}",
            std::process::id(),
            self.backfills_started
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let dir = self.path.join(BACKFILL_DIR).join(&run);
        let tile_staging = match &options.tiles {
            Some(target) => Some(staging_dir(target, &run)?),
            None => None,
        };
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
            previous_keys: SpillKeys::default(),
            spare_keys: SpillKeys::default(),
            spilling: None,
            spill_buckets: options.spill_buckets.max(1),
            ranges: ranges.to_vec(),
            online: options.online,
            tiles: options.tiles,
            tile_staging,
            tile_parts: Vec::new(),
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
    /// The delta of the last finished spill, emptied, for the next one.
    spare: Option<PendingDelta>,
    /// The group keys the last finished spill saw, and a set to reuse.
    previous_keys: SpillKeys,
    spare_keys: SpillKeys,
    spilling: Option<JoinHandle<StoreResult<SpillDone>>>,
    spill_buckets: usize,
    deletions: Vec<PathBuf>,
    data: Vec<PathBuf>,
    report: BackfillReport,
    /// The layouts' ranges, for the coverage records once the run is in.
    ranges: Vec<BackfillRange>,
    /// Whether the run replaces its ranges in the store.
    online: bool,
    /// Where it writes offline tiles, and the directory it stages their files in.
    tiles: Option<TileTarget>,
    tile_staging: Option<PathBuf>,
    tile_parts: Vec<TilePart>,
}

type Bounds = HashMap<(u32, i64), (i64, i64)>;

/// What one spill needs, owned, so that it can run on a thread of its own.
struct SpillJob {
    delta: PendingDelta,
    series: Arc<Vec<SeriesLayout>>,
    bounds: Arc<Bounds>,
    dir: PathBuf,
    /// The spill's number, which names its files.
    number: u64,
    /// The group keys the spill before this one saw.
    previous: SpillKeys,
    /// A set to fill with this spill's group keys.
    seen: SpillKeys,
    /// Whether the spill writes table files for the store.
    online: bool,
    /// Where it writes its tile files, for an offline target.
    tiles: Option<PathBuf>,
}

/// What a spill wrote, and its buffers back.
#[derive(Default)]
struct SpillDone {
    /// The delta, emptied.
    delta: Option<PendingDelta>,
    /// The group keys this spill saw, and the set of the spill before, to reuse.
    seen: Option<SpillKeys>,
    previous: Option<SpillKeys>,
    deletions: Vec<PathBuf>,
    data: Vec<PathBuf>,
    buckets_written: u64,
    bytes_written: u64,
    key_ranges_cleared: u64,
    tile_parts: Vec<TilePart>,
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

    /// Hands the folded buckets to a spill: on a thread of its own once the spill before
    /// has finished (`background`), or, for the last one, on this thread at once, while the
    /// spill before may still be writing on its own.
    fn spill(&mut self, background: bool) -> StoreResult<()> {
        if background {
            self.join_spill()?;
        }
        if self.delta.bucket_count() == 0 {
            return self.join_spill();
        }
        self.report.rows += self.delta.rows();
        let mut fresh = self.spare.take().unwrap_or_default();
        // The sort buffers of the last spill go with the delta spilled next, so that one
        // set serves every spill in turn.
        fresh.swap_sort_scratch(&mut self.delta);
        let delta = std::mem::replace(&mut self.delta, fresh);
        let number = self.report.spills;
        self.report.spills += 1;
        // A spill still writing has not handed over the keys it saw: this one then clears
        // every key it holds (some range deletions twice, rather than a wait).
        let previous = if self.spilling.is_some() {
            SpillKeys::default()
        } else {
            std::mem::take(&mut self.previous_keys)
        };
        let job = SpillJob {
            delta,
            series: Arc::clone(&self.series),
            bounds: Arc::clone(&self.bounds),
            dir: self.dir.clone(),
            number,
            previous,
            seen: std::mem::take(&mut self.spare_keys),
            online: self.online,
            tiles: self.tile_staging.clone(),
        };
        if background {
            self.spilling = Some(std::thread::spawn(move || write_spill(job)));
            Ok(())
        } else {
            let done = write_spill(job);
            self.join_spill()?;
            self.absorb(done?);
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
        self.tile_parts.extend(done.tile_parts);
        self.spare = done.delta;
        self.previous_keys = done.seen.unwrap_or_default();
        self.spare_keys = done.previous.unwrap_or_default();
    }

    /// Writes out what is still in memory and ingests every file of the run in one
    /// atomic step. Consumes the backfill; its directory is removed either way.
    pub fn finish(mut self, store: &BucketStore) -> StoreResult<BackfillReport> {
        self.spill(false)?;
        if let Some(target) = &self.tiles {
            let layouts = self
                .ranges
                .iter()
                .filter_map(|r| {
                    let series = &self.series[*self.by_id.get(&r.series_id)?];
                    Some(TiledLayout {
                        series,
                        bucket_size_ms: r.bucket_size_ms,
                        start_ms: r.start_ms,
                        end_ms: r.end_ms,
                    })
                })
                .collect::<Vec<_>>();
            self.report.tile_rows = self.tile_parts.iter().map(|p| p.rows).sum();
            self.report.tiles_written = commit_tiles(
                target,
                &layouts,
                &self.tile_parts,
                store.options.clock.now_ms(),
            )?;
        }
        if !self.online {
            return Ok(self.report);
        }
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

/// The group keys one spill saw in one layout, in key order: the next spill clears only
/// the keys this one did not (its range deletion is already written, and every deletion
/// file is ingested before every data file).
#[derive(Default)]
struct KeySet {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeySet {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Whether `key` is in the set, for keys asked in key order: `cursor` (0 at first)
    /// moves forward past the keys before it.
    fn contains_from(&self, cursor: &mut usize, key: &[u8]) -> bool {
        while *cursor < self.ends.len() {
            let have = self.get(*cursor);
            // The store's order of group keys: by length, then bytes.
            match have.len().cmp(&key.len()).then_with(|| have.cmp(key)) {
                std::cmp::Ordering::Less => *cursor += 1,
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Greater => return false,
            }
        }
        false
    }
}

/// Per (series number, bucket size): the group keys of a spill.
type SpillKeys = HashMap<(u32, i64), KeySet>;

/// The two table files of one layout in one spill, opened when the layout has buckets.
struct LayoutFiles<'a> {
    deletions: SstFileWriter<'a>,
    data: SstFileWriter<'a>,
    deletions_path: PathBuf,
    data_path: PathBuf,
    has_deletions: bool,
    has_data: bool,
}

/// The sink a spill's buckets are written to: per layout, a deletion file and a data file,
/// written as the buckets come (in key order), so that nothing is gathered or sorted again.
struct SpillWriter<'a> {
    options: &'a rocksdb::Options,
    bounds: &'a Bounds,
    dir: &'a std::path::Path,
    number: u64,
    previous: &'a SpillKeys,
    seen: SpillKeys,
    /// The layout being written: its key, range, files, and the cursor in `previous`.
    layout: Option<(u32, i64)>,
    range: (i64, i64),
    files: Option<LayoutFiles<'a>>,
    cursor: usize,
    /// The group key of the last bucket of the layout, if it had one.
    has_key: bool,
    last_group_key: Vec<u8>,
    from: Vec<u8>,
    to: Vec<u8>,
    file_index: u32,
    done: SpillDone,
    error: Option<StoreError>,
}

impl SpillWriter<'_> {
    /// Finishes the files of the layout being written.
    fn close_layout(&mut self) -> StoreResult<()> {
        if let Some(files) = self.files.take() {
            for (mut writer, path, used, list) in [
                (
                    files.deletions,
                    files.deletions_path,
                    files.has_deletions,
                    &mut self.done.deletions,
                ),
                (
                    files.data,
                    files.data_path,
                    files.has_data,
                    &mut self.done.data,
                ),
            ] {
                if used {
                    writer.finish()?;
                    list.push(path);
                } else {
                    drop(writer);
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(())
    }

    fn write(
        &mut self,
        key: &[u8],
        group_key: &[u8],
        start: i64,
        record: Option<&[u8]>,
    ) -> StoreResult<()> {
        let Some((series, size_ms)) = self.layout else {
            return Ok(());
        };
        let (from, to) = self.range;
        if to <= from {
            return Ok(());
        }
        if self.files.is_none() {
            let name = |what: &str| {
                self.dir.join(format!(
                    "{:06}-{:03}-{what}.sst",
                    self.number, self.file_index
                ))
            };
            let (deletions_path, data_path) = (name("deletions"), name("data"));
            self.file_index += 1;
            let deletions = SstFileWriter::create(self.options);
            deletions.open(&deletions_path)?;
            let data = SstFileWriter::create(self.options);
            data.open(&data_path)?;
            self.files = Some(LayoutFiles {
                deletions,
                data,
                deletions_path,
                data_path,
                has_deletions: false,
                has_data: false,
            });
            self.cursor = 0;
        }
        let files = self.files.as_mut().expect("opened above");
        if !self.has_key || group_key != self.last_group_key.as_slice() {
            self.has_key = true;
            self.last_group_key.clear();
            self.last_group_key.extend_from_slice(group_key);
            let seen = self.seen.entry((series, size_ms)).or_default();
            seen.push(group_key);
            let cleared = self
                .previous
                .get(&(series, size_ms))
                .is_some_and(|keys| keys.contains_from(&mut self.cursor, group_key));
            if !cleared {
                bucket_key(&mut self.from, series, group_key, size_ms, from);
                bucket_key(&mut self.to, series, group_key, size_ms, to);
                files.deletions.delete_range(&self.from, &self.to)?;
                files.has_deletions = true;
                self.done.key_ranges_cleared += 1;
            }
        }
        if let Some(record) = record {
            if !record.is_empty() && start >= from && start < to {
                files.data.merge(key, record)?;
                files.has_data = true;
                self.done.buckets_written += 1;
                self.done.bytes_written += (key.len() + record.len()) as u64;
            }
        }
        Ok(())
    }
}

impl BucketSink for SpillWriter<'_> {
    fn layout(&mut self, series: &SeriesLayout, layout: &Layout) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.close_layout() {
            self.error = Some(e);
            return;
        }
        let size_ms = layout.span.size_ms();
        let range = self.bounds.get(&(series.number, size_ms)).copied();
        self.layout = range.map(|_| (series.number, size_ms));
        self.range = range.unwrap_or((0, 0));
        self.has_key = false;
    }

    fn bucket(&mut self, key: &[u8], group_key: &[u8], start: i64, record: Option<&[u8]>) {
        if self.error.is_none() {
            if let Err(e) = self.write(key, group_key, start, record) {
                self.error = Some(e);
            }
        }
    }
}

/// Writes one spill: the buckets of `job.delta`, in key order, per layout as a deletion
/// file (one range over the layout's range per group key seen, unless the spill before
/// saw it too) and a data file (the records inside the range, as merge operands). A file
/// with nothing to hold is not written.
fn write_spill(job: SpillJob) -> StoreResult<SpillDone> {
    let SpillJob {
        mut delta,
        series,
        bounds,
        dir,
        number,
        previous,
        mut seen,
        online,
        tiles,
    } = job;
    let options = table_file_options();
    seen.values_mut().for_each(KeySet::clear);
    let mut writer = SpillWriter {
        options: &options,
        bounds: &bounds,
        dir: &dir,
        number,
        previous: &previous,
        seen,
        layout: None,
        range: (0, 0),
        files: None,
        cursor: 0,
        has_key: false,
        last_group_key: Vec::with_capacity(64),
        from: Vec::with_capacity(64),
        to: Vec::with_capacity(64),
        file_index: 0,
        done: SpillDone::default(),
        error: None,
    };
    let mut tile_sink = tiles
        .as_deref()
        .map(|dir| TileSink::new(&bounds, dir, number));
    {
        let mut sinks = Sinks {
            online: online.then_some(&mut writer),
            tiles: tile_sink.as_mut(),
        };
        delta.emit_sorted(&series, true, &mut sinks);
    }
    if let Some(error) = writer.error.take() {
        return Err(error);
    }
    writer.close_layout()?;
    if let Some(mut sink) = tile_sink {
        if let Some(error) = sink.error.take() {
            return Err(error);
        }
        sink.close_layout()?;
        writer.done.tile_parts = std::mem::take(&mut sink.parts);
    }
    let seen = std::mem::take(&mut writer.seen);
    let mut done = std::mem::take(&mut writer.done);
    drop(writer);
    delta.clear();
    done.delta = Some(delta);
    done.seen = Some(seen);
    done.previous = Some(previous);
    Ok(done)
}

/// The sinks a spill writes to: the store's table files, offline tiles, or both.
struct Sinks<'s, 'a, 'b> {
    online: Option<&'s mut SpillWriter<'a>>,
    tiles: Option<&'s mut TileSink<'b>>,
}

impl BucketSink for Sinks<'_, '_, '_> {
    fn layout(&mut self, series: &SeriesLayout, layout: &Layout) {
        if let Some(w) = self.online.as_deref_mut() {
            w.layout(series, layout);
        }
        if let Some(t) = self.tiles.as_deref_mut() {
            t.layout(series, layout);
        }
    }

    fn bucket(&mut self, key: &[u8], group_key: &[u8], start: i64, record: Option<&[u8]>) {
        if let Some(w) = self.online.as_deref_mut() {
            w.bucket(key, group_key, start, record);
        }
        if let Some(t) = self.tiles.as_deref_mut() {
            t.bucket(key, group_key, start, record);
        }
    }
}

impl Drop for Backfill {
    fn drop(&mut self) {
        if let Some(handle) = self.spilling.take() {
            let _ = handle.join();
        }
        // Ingested files were moved (hard-linked): the store has its own now.
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(staging) = &self.tile_staging {
            let _ = std::fs::remove_dir_all(staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KeySet;
    use crate::key::{push_int_part, push_text_part};

    #[test]
    fn a_key_set_answers_keys_asked_in_the_store_order() {
        let int = |k: i64| {
            let mut out = Vec::new();
            push_int_part(&mut out, k);
            out
        };
        let text = |s: &str| {
            let mut out = Vec::new();
            push_text_part(&mut out, s);
            out
        };
        // The store's order: by length (a two-letter text part is shorter than an
        // integer part), then bytes.
        let mut set = KeySet::default();
        for key in [text("ab"), text("ba"), int(-5), int(3), int(70)] {
            set.push(&key);
        }
        let mut cursor = 0;
        let asked = [
            text("a"),
            text("ab"),
            text("bb"),
            int(-9),
            int(-5),
            int(4),
            int(70),
            text("abcdef"),
        ];
        let found: Vec<bool> = asked
            .iter()
            .map(|k| set.contains_from(&mut cursor, k))
            .collect();
        assert_eq!(found, [false, true, false, false, true, false, true, false]);
    }
}
