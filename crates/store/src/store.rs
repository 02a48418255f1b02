//! [`BucketStore`]: the RocksDB tile store. Two column families:
//! - `buckets`: bucket key -> bucket record, merged by [`crate::record::merge_records`]
//!   and expired by a retention compaction filter;
//! - `meta`: the format version, the registered series, and source positions.
//!
//! Writes are blind merges: a commit writes one merge operand per touched bucket plus the
//! source positions, in one atomic `WriteBatch`, and never reads. A commit of many
//! buckets and no positions is ingested as one table file instead (see [`crate::bulk`]).

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, IngestExternalFileOptions,
    Options, WriteBatch, WriteOptions, DB,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tessera_core::{AggState, AggValue, BucketSpan, STATE_FORMAT_VERSION};

use crate::bulk::{reset_dir, BulkRecords};
use crate::error::{invalid_batch, invalid_description, StoreError, StoreErrorKind, StoreResult};
use crate::fold::{KeyColumn, PendingDelta, SeriesBatch, NULL_CODE};
use crate::key::{bucket_key, int_key_part, parse_bucket_key, push_int_part, push_text_part};
use crate::layout::{SeriesLayout, SeriesSpec};
use crate::record::{decode_record, merge_records};

/// The on-disk layout version of a store directory (keys, records, meta). A directory
/// written by another version is refused rather than misread.
pub const STORE_FORMAT_VERSION: u32 = 1;

pub(crate) const BUCKETS_CF: &str = "buckets";
pub(crate) const META_CF: &str = "meta";
const FORMAT_KEY: &[u8] = b"format";
const NEXT_SERIES_KEY: &[u8] = b"next_series_number";
const SERIES_PREFIX: &[u8] = b"series/";
const POSITION_PREFIX: &[u8] = b"position/";
const DEAD_LETTER_PREFIX: &[u8] = b"deadletter/";
/// The directory, inside the store's, where bulk commits write their table files.
const BULK_DIR: &str = "bulk";
/// The name of the bucket records' merge operator.
pub(crate) const BUCKET_MERGE_OPERATOR: &str = "tessera.bucket_records.v1";
/// Block size of the bucket tables.
pub(crate) const BLOCK_SIZE: usize = 16 << 10;

/// A clock in Unix milliseconds that tests can pin. Retention is judged by it.
#[derive(Debug, Clone)]
pub struct Clock(Arc<AtomicI64>);

impl Default for Clock {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(i64::MIN)))
    }
}

impl Clock {
    /// Now, from the pinned time or the system clock.
    pub fn now_ms(&self) -> i64 {
        match self.0.load(Ordering::Relaxed) {
            i64::MIN => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            pinned => pinned,
        }
    }

    /// Pins the clock to `ms`, or back to the system clock with `None`.
    pub fn pin(&self, ms: Option<i64>) {
        self.0.store(ms.unwrap_or(i64::MIN), Ordering::Relaxed);
    }
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Create the directory and store when missing (default true).
    pub create_if_missing: bool,
    /// Fsync the WAL on every commit (default false: the WAL is written, and a killed
    /// process loses nothing; a power loss may lose the last commits).
    pub sync_commits: bool,
    /// Block cache for reads (default 128 MiB).
    pub block_cache_bytes: usize,
    /// A commit of at least this many buckets that carries no source positions and no
    /// dead letters is written as one sorted table file and ingested, rather than through
    /// the WAL and the memtable (default 131,072: a file of a few megabytes at least).
    /// Ingestion syncs the file, so such a commit is durable whatever `sync_commits` says,
    /// and so are the commits before it (the WAL is synced first).
    pub bulk_commit_buckets: usize,
    pub clock: Clock,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            create_if_missing: true,
            sync_commits: false,
            block_cache_bytes: 128 << 20,
            bulk_commit_buckets: 131_072,
            clock: Clock::default(),
        }
    }
}

/// What opening a store with a description found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Series of the description that the store did not hold yet.
    pub new_series: Vec<String>,
    /// Series of the description that the store already held.
    pub kept_series: Vec<String>,
    /// Series the store holds that the description no longer names. Their buckets stay
    /// until their retention passes.
    pub orphaned_series: Vec<String>,
}

/// A position in a source (e.g. a Kafka partition and offset), written atomically with
/// the buckets it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
}

/// A message that could not be folded, kept with the commit that consumed it so that it
/// is neither lost nor counted twice: the reason (naming the field), the raw bytes and
/// the source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub field: Option<String>,
    pub raw: Vec<u8>,
    pub received_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct DeadLetterMeta {
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    received_at_ms: i64,
}

/// How a commit writes its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Merge into what is stored (streams, incremental ingest).
    #[default]
    Merge,
    /// Replace what is stored (backfills recompute buckets and replace them).
    Replace,
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitReport {
    pub rows: u64,
    pub buckets_written: u64,
    pub bytes_written: u64,
    /// Written as one ingested table file (see [`StoreOptions::bulk_commit_buckets`]).
    pub table_file: bool,
}

/// What an ingest call folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestReport {
    /// Rows folded by this call, summed over the series it fed.
    pub rows: u64,
    /// Rows and buckets waiting for the next commit.
    pub pending_rows: u64,
    pub pending_buckets: u64,
}

/// One window to read: a rule of a series over the `window_ms` before `now`.
#[derive(Debug, Clone)]
pub struct WindowRead {
    pub series_id: String,
    pub rule: usize,
    pub window_ms: i64,
}

/// Which buckets a value merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// The first and last bucket starts that the window covers (section 5's overlap rule).
    pub first_bucket_start: i64,
    pub last_bucket_start: i64,
    /// How many of those buckets held data and were merged.
    pub buckets_merged: u32,
}

/// The answer to a window query: `values[row * reads + read]`.
#[derive(Debug, Clone)]
pub struct WindowAnswer {
    pub values: Vec<AggValue>,
    pub explanations: Option<Vec<Explanation>>,
}

/// One stored bucket of one series layout, with the evaluated value of each of its rules.
#[derive(Debug, Clone)]
pub struct StoredBucket {
    pub size_ms: i64,
    pub start: i64,
    /// (rule index in the series, evaluated value).
    pub values: Vec<(usize, AggValue)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredSeries {
    pub(crate) number: u32,
    pub(crate) spec: SeriesSpec,
}

type RetentionTable = FxHashMap<(u32, i64), (BucketSpan, i64)>;

/// The RocksDB bucket store of one directory.
pub struct BucketStore {
    pub(crate) db: DB,
    pub(crate) path: PathBuf,
    pub(crate) series: Vec<SeriesLayout>,
    pub(crate) by_id: HashMap<String, usize>,
    pub(crate) pending: PendingDelta,
    /// The records of a bulk commit, kept for the next one.
    pub(crate) bulk: BulkRecords,
    pub(crate) retention: Arc<RwLock<Arc<RetentionTable>>>,
    pub(crate) options: StoreOptions,
}

impl BucketStore {
    /// Opens (or creates) the store at `path` for the series of a description.
    pub fn open(
        path: impl AsRef<Path>,
        description: Vec<SeriesSpec>,
        options: StoreOptions,
    ) -> StoreResult<(Self, OpenReport)> {
        let path = path.as_ref().to_path_buf();
        let display = path.display().to_string();
        let exists = path.join("CURRENT").exists();
        if !exists && !options.create_if_missing {
            return Err(StoreError::new(
                StoreErrorKind::Storage,
                format!("no Tessera store at '{display}' (and createIfMissing is off)"),
            ));
        }
        if exists {
            let families = DB::list_cf(&Options::default(), &path)?;
            if !families.iter().any(|f| f == META_CF) {
                return Err(StoreError::new(
                    StoreErrorKind::IncompatibleFormat,
                    format!("'{display}' holds a RocksDB database that is not a Tessera store"),
                ));
            }
        }

        let retention: Arc<RwLock<Arc<RetentionTable>>> = Arc::default();
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.increase_parallelism(2);
        db_options.set_max_background_jobs(2);

        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_block_size(BLOCK_SIZE);
        let mut buckets = Options::default();
        buckets.set_block_based_table_factory(&table);
        buckets.set_compression_type(DBCompressionType::Lz4);
        buckets.set_write_buffer_size(64 << 20);
        // A large commit fills a memtable by itself; with room for four, the next commit
        // need not wait for the last one's flush.
        buckets.set_max_write_buffer_number(4);
        buckets.set_merge_operator_associative(BUCKET_MERGE_OPERATOR, merge_records);
        buckets.set_compaction_filter_factory(RetentionFilterFactory {
            table: retention.clone(),
            clock: options.clock.clone(),
        });
        let meta = Options::default();
        let db = DB::open_cf_descriptors(
            &db_options,
            &path,
            vec![
                ColumnFamilyDescriptor::new(BUCKETS_CF, buckets),
                ColumnFamilyDescriptor::new(META_CF, meta),
            ],
        )
        .map_err(|e| {
            StoreError::new(
                StoreErrorKind::Storage,
                format!("cannot open the store at '{display}': {}", e.into_string()),
            )
        })?;

        let mut store = Self {
            db,
            path,
            series: Vec::new(),
            by_id: HashMap::new(),
            pending: PendingDelta::default(),
            bulk: BulkRecords::default(),
            retention,
            options,
        };
        store.check_format(exists)?;
        reset_dir(&store.path.join(BULK_DIR))?;
        let report = store.register(description)?;
        Ok((store, report))
    }

    fn meta(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(META_CF).expect("meta column family")
    }

    fn buckets_cf(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(BUCKETS_CF)
            .expect("buckets column family")
    }

    pub(crate) fn check_format(&self, existed: bool) -> StoreResult<()> {
        let expected = format_bytes();
        match self.db.get_cf(self.meta(), FORMAT_KEY)? {
            Some(found) if found == expected => Ok(()),
            Some(found) => {
                let (store, state) = match found.as_slice() {
                    [a, b, c, d, s] => (u32::from_le_bytes([*a, *b, *c, *d]), *s),
                    _ => (0, 0),
                };
                Err(StoreError::new(
                    StoreErrorKind::IncompatibleFormat,
                    format!(
                        "the store at '{}' was written in format {store} (state format {state}); \
                         this build reads format {STORE_FORMAT_VERSION} (state format \
                         {STATE_FORMAT_VERSION}). Open it with the Tessera version that wrote it, \
                         or rebuild it with a backfill into a new directory",
                        self.path.display()
                    ),
                ))
            }
            None if existed && self.has_any_series()? => Err(StoreError::new(
                StoreErrorKind::IncompatibleFormat,
                format!(
                    "the store at '{}' has data but no format record",
                    self.path.display()
                ),
            )),
            None => Ok(self.db.put_cf(self.meta(), FORMAT_KEY, expected)?),
        }
    }

    fn has_any_series(&self) -> StoreResult<bool> {
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(SERIES_PREFIX);
        Ok(it.valid() && it.key().is_some_and(|k| k.starts_with(SERIES_PREFIX)))
    }

    pub(crate) fn stored_series(&self) -> StoreResult<Vec<StoredSeries>> {
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(SERIES_PREFIX);
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !key.starts_with(SERIES_PREFIX) {
                break;
            }
            let stored: StoredSeries = serde_json::from_slice(value).map_err(|e| {
                StoreError::new(
                    StoreErrorKind::IncompatibleFormat,
                    format!(
                        "series record '{}' cannot be read: {e}",
                        String::from_utf8_lossy(key)
                    ),
                )
            })?;
            out.push(stored);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Makes `description` the active series set: known series keep their data, new ones
    /// get a number, and stored series that it does not name are reported as orphaned.
    fn register(&mut self, description: Vec<SeriesSpec>) -> StoreResult<OpenReport> {
        let stored = self.stored_series()?;
        let known: HashMap<&str, &StoredSeries> =
            stored.iter().map(|s| (s.spec.id.as_str(), s)).collect();
        let mut next = match self.db.get_cf(self.meta(), NEXT_SERIES_KEY)? {
            Some(v) if v.len() == 4 => u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
            _ => 1,
        };
        let mut report = OpenReport::default();
        let mut batch = WriteBatch::default();
        let mut layouts = Vec::with_capacity(description.len());
        let mut by_id = HashMap::new();
        for spec in description {
            if by_id.contains_key(&spec.id) {
                return Err(invalid_description(format!(
                    "series '{}' is described twice",
                    spec.id
                )));
            }
            let number = match known.get(spec.id.as_str()) {
                Some(old) if old.spec == spec => {
                    report.kept_series.push(spec.id.clone());
                    old.number
                }
                Some(_) => {
                    return Err(invalid_description(format!(
                        "series '{}' is stored with a different description; a changed series \
                         needs a new id (the planner derives ids from the description)",
                        spec.id
                    )))
                }
                None => {
                    let number = next;
                    next += 1;
                    report.new_series.push(spec.id.clone());
                    number
                }
            };
            let layout = SeriesLayout::new(spec, number)?;
            if !known.contains_key(layout.spec.id.as_str()) {
                let record = StoredSeries {
                    number,
                    spec: layout.spec.clone(),
                };
                let bytes = serde_json::to_vec(&record)
                    .map_err(|e| invalid_description(format!("series record: {e}")))?;
                batch.put_cf(self.meta(), series_key(&layout.spec.id), bytes);
            }
            by_id.insert(layout.spec.id.clone(), layouts.len());
            layouts.push(layout);
        }
        for old in &stored {
            if !by_id.contains_key(&old.spec.id) {
                report.orphaned_series.push(old.spec.id.clone());
            }
        }
        batch.put_cf(self.meta(), NEXT_SERIES_KEY, next.to_le_bytes());
        self.db.write(batch)?;

        // Retention covers every stored series, orphaned ones too, so they still expire.
        let mut table = RetentionTable::default();
        let orphaned = stored
            .iter()
            .filter(|s| !by_id.contains_key(&s.spec.id))
            .filter_map(|s| SeriesLayout::new(s.spec.clone(), s.number).ok());
        for layout in layouts.iter().cloned().chain(orphaned) {
            for l in &layout.layouts {
                table.insert((layout.number, l.span.size_ms()), (l.span, l.retention_ms));
            }
        }
        *self.retention.write().expect("retention lock") = Arc::new(table);
        self.series = layouts;
        self.by_id = by_id;
        Ok(report)
    }

    /// The active series, in description order.
    pub fn series(&self) -> &[SeriesLayout] {
        &self.series
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn clock(&self) -> &Clock {
        &self.options.clock
    }

    fn series_index(&self, id: &str) -> StoreResult<usize> {
        self.by_id.get(id).copied().ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::UnknownSeries,
                format!("unknown series '{id}'"),
            )
        })
    }

    /// Folds batches into the pending delta. Every batch is checked first: a bad batch is
    /// an error and nothing of the call is folded.
    pub fn ingest(&mut self, batches: &[SeriesBatch<'_>]) -> StoreResult<IngestReport> {
        let mut indexes = Vec::with_capacity(batches.len());
        for batch in batches {
            let index = self.series_index(batch.series_id)?;
            PendingDelta::validate(&self.series[index], batch)?;
            indexes.push(index);
        }
        let before = self.pending.rows();
        for (batch, &index) in batches.iter().zip(&indexes) {
            self.pending.fold(index, &self.series[index], batch);
        }
        Ok(IngestReport {
            rows: self.pending.rows() - before,
            pending_rows: self.pending.rows(),
            pending_buckets: self.pending.bucket_count() as u64,
        })
    }

    /// Rows and buckets folded but not committed.
    pub fn pending(&self) -> (u64, u64) {
        (self.pending.rows(), self.pending.bucket_count() as u64)
    }

    /// Drops the pending delta without writing it.
    pub fn discard_pending(&mut self) {
        self.pending.clear();
    }

    /// Writes the pending delta and `positions` in one atomic batch: after a crash either
    /// all of it is there or none of it is.
    pub fn commit(
        &mut self,
        positions: &[SourcePosition],
        mode: CommitMode,
    ) -> StoreResult<CommitReport> {
        self.commit_with_dead_letters(positions, &[], mode)
    }

    /// [`BucketStore::commit`], also keeping `dead_letters` in the same atomic batch.
    pub fn commit_with_dead_letters(
        &mut self,
        positions: &[SourcePosition],
        dead_letters: &[DeadLetter],
        mode: CommitMode,
    ) -> StoreResult<CommitReport> {
        if positions.is_empty()
            && dead_letters.is_empty()
            && self.pending.bucket_count() >= self.options.bulk_commit_buckets.max(1)
        {
            return self.commit_bulk(mode);
        }
        self.bulk.release();
        // Sized for the usual record up front: growing a batch of many megabytes by
        // doubling copies it again and again.
        let mut batch = WriteBatch::with_capacity_bytes(self.pending.bucket_count() * 96 + 4096);
        let buckets_cf = self
            .db
            .cf_handle(BUCKETS_CF)
            .expect("buckets column family");
        let written = self
            .pending
            .write_records(&self.series, |key, record| match mode {
                CommitMode::Merge => batch.merge_cf(buckets_cf, key, record),
                CommitMode::Replace => batch.put_cf(buckets_cf, key, record),
            });
        let report = CommitReport {
            rows: self.pending.rows(),
            buckets_written: written.buckets,
            bytes_written: written.bytes,
            table_file: false,
        };
        for position in positions {
            batch.put_cf(
                self.meta(),
                position_key(&position.source, position.partition),
                position.offset.to_le_bytes(),
            );
        }
        for letter in dead_letters {
            let meta = serde_json::to_vec(&DeadLetterMeta {
                reason: letter.reason.clone(),
                field: letter.field.clone(),
                received_at_ms: letter.received_at_ms,
            })
            .map_err(|e| invalid_batch(format!("dead letter: {e}")))?;
            let mut value = Vec::with_capacity(4 + meta.len() + letter.raw.len());
            value.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            value.extend_from_slice(&meta);
            value.extend_from_slice(&letter.raw);
            batch.put_cf(
                self.meta(),
                dead_letter_key(&letter.source, letter.partition, letter.offset),
                value,
            );
        }
        let mut write = WriteOptions::default();
        write.set_sync(self.options.sync_commits);
        self.db.write_opt(batch, &write)?;
        self.pending.clear();
        Ok(report)
    }

    /// Writes the pending buckets as one table file and ingests it.
    fn commit_bulk(&mut self, mode: CommitMode) -> StoreResult<CommitReport> {
        let bulk = &mut self.bulk;
        bulk.clear();
        let written = self
            .pending
            .write_records(&self.series, |key, record| bulk.push(key, record));
        let report = CommitReport {
            rows: self.pending.rows(),
            buckets_written: written.buckets,
            bytes_written: written.bytes,
            table_file: bulk.len() > 0,
        };
        if bulk.len() > 0 {
            let file = self.path.join(BULK_DIR).join("commit.sst");
            bulk.write_table(&file, mode)?;
            // Commits before this one that went through an unsynced WAL become durable
            // first, so that a power failure cannot keep this commit and lose them.
            if !self.options.sync_commits {
                self.db.flush_wal(true)?;
            }
            let mut ingest = IngestExternalFileOptions::default();
            ingest.set_move_files(true);
            let buckets_cf = self
                .db
                .cf_handle(BUCKETS_CF)
                .expect("buckets column family");
            let ingested = self
                .db
                .ingest_external_file_cf_opts(buckets_cf, &ingest, vec![&file]);
            // Moved files are hard links: the store has its own now.
            let _ = std::fs::remove_file(&file);
            ingested?;
        }
        bulk.clear();
        self.pending.clear();
        Ok(report)
    }

    /// The stored positions of one source, by partition.
    pub fn positions(&self, source: &str) -> StoreResult<Vec<SourcePosition>> {
        let prefix = position_prefix(source);
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !key.starts_with(&prefix) || key.len() != prefix.len() + 4 || value.len() != 8 {
                break;
            }
            let raw = u32::from_be_bytes(key[prefix.len()..].try_into().unwrap_or([0; 4]));
            out.push(SourcePosition {
                source: source.to_string(),
                partition: (raw ^ (1 << 31)) as i32,
                offset: i64::from_le_bytes(value.try_into().unwrap_or([0; 8])),
            });
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Dead letters in key order (source, partition, offset), of one source or all, at
    /// most `limit` of them.
    pub fn dead_letters(&self, source: Option<&str>, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let prefix = match source {
            Some(source) => dead_letter_prefix(source),
            None => DEAD_LETTER_PREFIX.to_vec(),
        };
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() && out.len() < limit {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(decode_dead_letter(key, value)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// How many dead letters are kept, of one source or all.
    pub fn dead_letter_count(&self, source: Option<&str>) -> StoreResult<u64> {
        let prefix = match source {
            Some(source) => dead_letter_prefix(source),
            None => DEAD_LETTER_PREFIX.to_vec(),
        };
        let mut n = 0;
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() && it.key().is_some_and(|k| k.starts_with(&prefix)) {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// Reads windows for many group keys at once. `keys` holds one column per key part,
    /// with one row per group key; the answer holds `rows x reads` values. Only committed
    /// data is read, from one consistent snapshot.
    pub fn read_windows(
        &self,
        keys: &[KeyColumn<'_>],
        reads: &[WindowRead],
        now_ms: i64,
        explain: bool,
    ) -> StoreResult<WindowAnswer> {
        let rows = key_rows(keys)?;
        let groups = self.plan_reads(reads, now_ms)?;
        let wall = self.options.clock.now_ms();
        // A window without data evaluates the empty state: null, or 0 for count.
        let empty: Vec<AggValue> = groups
            .per_read
            .iter()
            .map(|r| AggState::new(&self.series[r.series].rules[r.rule].aggregation).evaluate())
            .collect();
        let mut values = Vec::with_capacity(rows * reads.len());
        for _ in 0..rows {
            values.extend(empty.iter().cloned());
        }
        let mut explanations = explain.then(|| {
            let mut e = Vec::with_capacity(rows * reads.len());
            for _ in 0..rows {
                for plan in &groups.per_read {
                    e.push(Explanation {
                        first_bucket_start: plan.first_start,
                        last_bucket_start: plan.last_start,
                        buckets_merged: 0,
                    });
                }
            }
            e
        });
        let mut iter = self.db.raw_iterator_cf(self.buckets_cf());
        let mut group_key = Vec::with_capacity(32);
        let mut lo = Vec::with_capacity(64);
        let mut hi = Vec::with_capacity(64);
        let mut accumulators: Vec<Option<AggState>> = Vec::new();
        for row in 0..rows {
            if !encode_key_row(keys, row, &mut group_key)? {
                // A null key has no data: every value stays Null.
                continue;
            }
            for group in &groups.groups {
                let series = &self.series[group.series];
                let layout = &series.layouts[group.layout];
                let size = layout.span.size_ms();
                bucket_key(&mut lo, series.number, &group_key, size, group.first_start);
                bucket_key(&mut hi, series.number, &group_key, size, group.last_start);
                accumulators.clear();
                accumulators.resize(group.reads.len(), None);
                iter.seek(&lo);
                while iter.valid() {
                    let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                        break;
                    };
                    if key > hi.as_slice() {
                        break;
                    }
                    let Some(parts) = parse_bucket_key(key) else {
                        break;
                    };
                    if layout.span.is_stale(parts.start, layout.retention_ms, wall) {
                        iter.next();
                        continue;
                    }
                    let states = decode_record(value).map_err(|e| corrupt_bucket(series, e))?;
                    for (slot, read) in group.reads.iter().enumerate() {
                        if parts.start < read.first_start {
                            continue;
                        }
                        let Some(state) = states.get(read.position) else {
                            return Err(corrupt_bucket(
                                series,
                                tessera_core::CoreError::corrupt("record is missing a rule state"),
                            ));
                        };
                        match &mut accumulators[slot] {
                            Some(acc) => acc.merge(state).map_err(|e| corrupt_bucket(series, e))?,
                            empty => *empty = Some(state.clone()),
                        }
                        if let Some(e) = explanations.as_mut() {
                            e[row * reads.len() + read.read_index].buckets_merged += 1;
                        }
                    }
                    iter.next();
                }
                iter.status()?;
                for (slot, read) in group.reads.iter().enumerate() {
                    if let Some(acc) = &accumulators[slot] {
                        values[row * reads.len() + read.read_index] = acc.evaluate();
                    }
                }
            }
        }
        Ok(WindowAnswer {
            values,
            explanations,
        })
    }

    /// The stored buckets of one series and group key between two times (inclusive
    /// bucket starts), each with its rules' values: what a window merged, bucket by bucket.
    pub fn read_buckets(
        &self,
        series_id: &str,
        keys: &[KeyColumn<'_>],
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<Vec<StoredBucket>> {
        let series = &self.series[self.series_index(series_id)?];
        if key_rows(keys)? != 1 {
            return Err(invalid_batch("read_buckets takes exactly one group key"));
        }
        let mut group_key = Vec::new();
        if !encode_key_row(keys, 0, &mut group_key)? {
            return Ok(Vec::new());
        }
        let wall = self.options.clock.now_ms();
        let mut out = Vec::new();
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        let mut iter = self.db.raw_iterator_cf(self.buckets_cf());
        for layout in &series.layouts {
            let size = layout.span.size_ms();
            bucket_key(
                &mut lo,
                series.number,
                &group_key,
                size,
                layout.span.start_of(from_ms),
            );
            bucket_key(
                &mut hi,
                series.number,
                &group_key,
                size,
                layout.span.start_of(to_ms),
            );
            iter.seek(&lo);
            while iter.valid() {
                let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                    break;
                };
                if key > hi.as_slice() {
                    break;
                }
                let Some(parts) = parse_bucket_key(key) else {
                    break;
                };
                if !layout.span.is_stale(parts.start, layout.retention_ms, wall) {
                    let states = decode_record(value).map_err(|e| corrupt_bucket(series, e))?;
                    let values = layout
                        .rules
                        .iter()
                        .zip(&states)
                        .map(|(&rule, state)| (rule, state.evaluate()))
                        .collect();
                    out.push(StoredBucket {
                        size_ms: size,
                        start: parts.start,
                        values,
                    });
                }
                iter.next();
            }
            iter.status()?;
        }
        Ok(out)
    }

    /// Flushes memtables to SST files (the WAL already makes commits durable; this is for
    /// measuring bytes on disk and for tests).
    pub fn flush(&self) -> StoreResult<()> {
        self.db.flush_cf(self.buckets_cf())?;
        self.db.flush_cf(self.meta())?;
        Ok(())
    }

    /// Compacts the bucket column family, which also drops buckets past their retention.
    /// RocksDB compacts on its own as data grows; this forces it now.
    pub fn compact(&self) -> StoreResult<()> {
        self.db.flush_cf(self.buckets_cf())?;
        // RocksDB applies compaction filters to values, not to merge operands: the first
        // pass folds each bucket's operands into one value, the second filters them.
        // Background compactions reach the same state over time on their own.
        for _ in 0..2 {
            self.db
                .compact_range_cf(self.buckets_cf(), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// Stored bucket entries (an estimate from RocksDB when `exact` is false).
    pub fn bucket_entries(&self, exact: bool) -> StoreResult<u64> {
        if !exact {
            return Ok(self
                .db
                .property_int_value_cf(self.buckets_cf(), "rocksdb.estimate-num-keys")?
                .unwrap_or(0));
        }
        let mut n = 0;
        let mut it = self.db.raw_iterator_cf(self.buckets_cf());
        it.seek_to_first();
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// Bytes of SST files of the bucket column family.
    pub fn disk_bytes(&self) -> StoreResult<u64> {
        Ok(self
            .db
            .property_int_value_cf(self.buckets_cf(), "rocksdb.total-sst-files-size")?
            .unwrap_or(0))
    }

    fn plan_reads(&self, reads: &[WindowRead], now_ms: i64) -> StoreResult<ReadPlan> {
        let mut plan = ReadPlan::default();
        let mut group_of: HashMap<(usize, usize), usize> = HashMap::new();
        for (read_index, read) in reads.iter().enumerate() {
            let series_index = self.series_index(&read.series_id)?;
            let series = &self.series[series_index];
            let Some(&(layout_index, position)) = series.rule_slots.get(read.rule) else {
                return Err(invalid_batch(format!(
                    "series '{}' has {} rules, a read asks for rule {}",
                    read.series_id,
                    series.rules.len(),
                    read.rule
                )));
            };
            if read.window_ms <= 0 {
                return Err(invalid_batch(format!(
                    "series '{}' rule {}: window {} ms is not positive",
                    read.series_id, read.rule, read.window_ms
                )));
            }
            let layout = &series.layouts[layout_index];
            let window = layout.span.window(now_ms, read.window_ms);
            plan.per_read.push(ReadWindow {
                series: series_index,
                rule: read.rule,
                first_start: window.first_start,
                last_start: window.last_start,
            });
            let group = *group_of
                .entry((series_index, layout_index))
                .or_insert_with(|| {
                    plan.groups.push(ReadGroup {
                        series: series_index,
                        layout: layout_index,
                        first_start: window.first_start,
                        last_start: window.last_start,
                        reads: Vec::new(),
                    });
                    plan.groups.len() - 1
                });
            let group = &mut plan.groups[group];
            group.first_start = group.first_start.min(window.first_start);
            group.reads.push(PlannedRead {
                read_index,
                position,
                first_start: window.first_start,
            });
        }
        Ok(plan)
    }
}

#[derive(Default)]
struct ReadPlan {
    groups: Vec<ReadGroup>,
    per_read: Vec<ReadWindow>,
}

struct ReadWindow {
    series: usize,
    rule: usize,
    first_start: i64,
    last_start: i64,
}

struct ReadGroup {
    series: usize,
    layout: usize,
    first_start: i64,
    last_start: i64,
    reads: Vec<PlannedRead>,
}

struct PlannedRead {
    read_index: usize,
    position: usize,
    first_start: i64,
}

fn corrupt_bucket(series: &SeriesLayout, e: tessera_core::CoreError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Core(e.kind),
        format!(
            "series '{}': a stored bucket cannot be read: {}",
            series.spec.id, e.message
        ),
    )
}

fn key_rows(keys: &[KeyColumn<'_>]) -> StoreResult<usize> {
    let lens: Vec<usize> = keys
        .iter()
        .map(|k| match k {
            KeyColumn::Ints(v) => v.len(),
            KeyColumn::Strings { codes, .. } => codes.len(),
        })
        .collect();
    match lens.split_first() {
        None => Err(invalid_batch("a query needs at least one group key column")),
        Some((first, rest)) if rest.iter().all(|l| l == first) => Ok(*first),
        Some(_) => Err(invalid_batch(format!(
            "group key columns have different lengths: {lens:?}"
        ))),
    }
}

/// Encodes row `row` of the key columns; false for a null key.
fn encode_key_row(keys: &[KeyColumn<'_>], row: usize, out: &mut Vec<u8>) -> StoreResult<bool> {
    out.clear();
    for column in keys {
        match column {
            KeyColumn::Ints(v) => {
                if v[row].is_nan() {
                    return Ok(false);
                }
                push_int_part(out, int_key_part(v[row], row, "query")?);
            }
            KeyColumn::Strings { dict, codes } => match codes[row] {
                NULL_CODE => return Ok(false),
                code => match dict.get(code as usize) {
                    Some(text) => push_text_part(out, text),
                    None => {
                        return Err(invalid_batch(format!(
                            "query key at row {row} has code {code}, the dictionary has {}",
                            dict.len()
                        )))
                    }
                },
            },
        }
    }
    Ok(true)
}

fn format_bytes() -> Vec<u8> {
    let mut v = STORE_FORMAT_VERSION.to_le_bytes().to_vec();
    v.push(STATE_FORMAT_VERSION);
    v
}

fn series_key(id: &str) -> Vec<u8> {
    let mut k = SERIES_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn position_prefix(source: &str) -> Vec<u8> {
    let mut k = POSITION_PREFIX.to_vec();
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k
}

fn position_key(source: &str, partition: i32) -> Vec<u8> {
    let mut k = position_prefix(source);
    k.extend_from_slice(&((partition as u32) ^ (1 << 31)).to_be_bytes());
    k
}

fn dead_letter_prefix(source: &str) -> Vec<u8> {
    let mut k = DEAD_LETTER_PREFIX.to_vec();
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k
}

fn dead_letter_key(source: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut k = dead_letter_prefix(source);
    k.extend_from_slice(&((partition as u32) ^ (1 << 31)).to_be_bytes());
    k.extend_from_slice(&((offset as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn decode_dead_letter(key: &[u8], value: &[u8]) -> StoreResult<DeadLetter> {
    let corrupt = || {
        StoreError::new(
            StoreErrorKind::Core(tessera_core::CoreErrorKind::CorruptState),
            format!(
                "dead letter '{}' cannot be read",
                String::from_utf8_lossy(key)
            ),
        )
    };
    let rest = &key[DEAD_LETTER_PREFIX.len()..];
    let nul = rest.iter().position(|&b| b == 0).ok_or_else(corrupt)?;
    let (source, tail) = (&rest[..nul], &rest[nul + 1..]);
    if tail.len() != 12 || value.len() < 4 {
        return Err(corrupt());
    }
    let partition =
        (u32::from_be_bytes(tail[0..4].try_into().map_err(|_| corrupt())?) ^ (1 << 31)) as i32;
    let offset =
        (u64::from_be_bytes(tail[4..12].try_into().map_err(|_| corrupt())?) ^ (1 << 63)) as i64;
    let meta_len = u32::from_le_bytes(value[0..4].try_into().map_err(|_| corrupt())?) as usize;
    let meta_bytes = value.get(4..4 + meta_len).ok_or_else(corrupt)?;
    let meta: DeadLetterMeta = serde_json::from_slice(meta_bytes).map_err(|_| corrupt())?;
    Ok(DeadLetter {
        source: String::from_utf8_lossy(source).into_owned(),
        partition,
        offset,
        reason: meta.reason,
        field: meta.field,
        raw: value[4 + meta_len..].to_vec(),
        received_at_ms: meta.received_at_ms,
    })
}

/// Makes one retention filter per compaction, with the retention table and the clock as
/// they are when the compaction starts.
struct RetentionFilterFactory {
    table: Arc<RwLock<Arc<RetentionTable>>>,
    clock: Clock,
}

struct RetentionFilter {
    table: Arc<RetentionTable>,
    now_ms: i64,
}

const RETENTION_FILTER_NAME: &CStr = c"tessera.retention";

impl CompactionFilterFactory for RetentionFilterFactory {
    type Filter = RetentionFilter;

    fn create(&mut self, _context: CompactionFilterContext) -> RetentionFilter {
        RetentionFilter {
            table: self.table.read().map(|t| t.clone()).unwrap_or_default(),
            now_ms: self.clock.now_ms(),
        }
    }

    fn name(&self) -> &CStr {
        RETENTION_FILTER_NAME
    }
}

impl CompactionFilter for RetentionFilter {
    fn filter(&mut self, _level: u32, key: &[u8], _value: &[u8]) -> Decision {
        let Some(parts) = parse_bucket_key(key) else {
            return Decision::Keep;
        };
        match self.table.get(&(parts.series, parts.size_ms)) {
            Some((span, retention)) if span.is_stale(parts.start, *retention, self.now_ms) => {
                Decision::Remove
            }
            _ => Decision::Keep,
        }
    }

    fn name(&self) -> &CStr {
        RETENTION_FILTER_NAME
    }
}

/// The column families of a store directory, for tools that open it with RocksDB alone.
pub fn store_column_families() -> [&'static str; 2] {
    [BUCKETS_CF, META_CF]
}
