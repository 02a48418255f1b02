//! [`BucketStore`]: the RocksDB bucket store of one directory, and how it is opened.
//! Two column families:
//! - `buckets`: bucket key -> bucket record, merged by [`crate::record::merge_records`]
//!   and expired by the retention compaction filter ([`crate::retention`]);
//! - `meta`: the format version, the registered series, source positions, dead letters
//!   and resolver states ([`crate::meta`]).
//!
//! The rest of the store's methods live by what they do: [`crate::commit`] (writes),
//! [`crate::reads`] (window reads), [`crate::sources`] (positions, dead letters,
//! resolver states).

use crate::windowed::{SharedWindowedRetention, WindowedRetentionFactory};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch, DB,
};
use tessera_core::STATE_FORMAT_VERSION;

use crate::backfill::BACKFILL_DIR;
use crate::bulk::{reset_dir, BulkRecords};
use crate::coverage::RetentionChange;
use crate::error::{invalid_description, StoreError, StoreErrorKind, StoreResult};
use crate::fold::PendingDelta;
use crate::layout::{reconcile, RuleSpec, SeriesLayout, SeriesSpec, SeriesSummary};
use crate::meta::{
    decode_series, encode_series, format_bytes, series_key, StoredSeries, BUCKETS_CF, FORMAT_KEY,
    META_CF, NEXT_SERIES_KEY, SERIES_PREFIX, STORE_FORMAT_VERSION, UPGRADABLE_FORMAT_VERSIONS,
};
use crate::options::{Clock, StoreOptions, BLOCK_SIZE};
use crate::record::merge_records;
use crate::retention::{retention_table, RetentionFilterFactory, SharedRetention};

/// The directory, inside the store's, where bulk commits write their table files.
pub(crate) const BULK_DIR: &str = "bulk";

/// The name of the bucket records' merge operator, the same for every opening of a store.
pub(crate) const BUCKET_MERGE_OPERATOR: &str = "tessera.bucket_records.v1";

/// One series of a description, as [`BucketStore::open_described`] takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedSeries {
    pub spec: SeriesSpec,
    /// The readable summary to keep in the series record.
    pub summary: Option<SeriesSummary>,
    /// Ids an older version gave the same series (the planner's former ids): when the
    /// store holds no series under `spec.id` but one under a former id, it adopts that
    /// one under the new id, with its number and so its buckets.
    pub former_ids: Vec<String>,
}

impl From<SeriesSpec> for DescribedSeries {
    fn from(spec: SeriesSpec) -> Self {
        Self {
            spec,
            summary: None,
            former_ids: Vec::new(),
        }
    }
}

/// What a definition change did to the rules of a kept series (docs/semantics.md
/// section 9.4).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesChange {
    pub series_id: String,
    /// The id the series was stored under when the store adopted it under its new id.
    pub adopted_from: Option<String>,
    /// Rules appended to the stored list: complete from the bucket edge after the open.
    pub added: Vec<RuleSpec>,
    /// Rules no longer requested: kept in their slots, no longer folded or read.
    pub retired: Vec<RuleSpec>,
    /// Layouts whose retention grew: complete from the first bucket that was not stale
    /// under the old retention.
    pub widened: Vec<RetentionChange>,
}

/// What opening a store with a description found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenReport {
    /// Series of the description that the store did not hold yet.
    pub new_series: Vec<String>,
    /// Series of the description that the store already held.
    pub kept_series: Vec<String>,
    /// Series the store holds that the description no longer names. Their buckets stay
    /// until their retention passes.
    pub orphaned_series: Vec<String>,
    /// The kept series whose rules changed, and how.
    pub changed_series: Vec<SeriesChange>,
    /// The readable summary of every series above that has one: as given for the
    /// described series, as last stored for orphaned ones.
    pub summaries: HashMap<String, SeriesSummary>,
}

/// The RocksDB bucket store of one directory.
pub struct BucketStore {
    pub(crate) db: DB,
    pub(crate) path: PathBuf,
    pub(crate) series: Vec<SeriesLayout>,
    pub(crate) by_id: HashMap<String, usize>,
    /// Rows folded by [`BucketStore::stage`] and not yet committed.
    pub(crate) staged: PendingDelta,
    /// The delta each [`BucketStore::commit_batches`] folds into, kept empty between
    /// calls so that its allocations are reused.
    pub(crate) scratch: PendingDelta,
    /// The records of a bulk commit, kept for the next one.
    pub(crate) bulk: BulkRecords,
    pub(crate) retention: SharedRetention,
    pub(crate) options: StoreOptions,
    /// Backfills begun by this opening, to name their staging directories.
    pub(crate) backfills_started: std::sync::atomic::AtomicU64,
    /// For a read-only store opened with a description: the meta records registering it
    /// would have written (key -> value, `None` for a deletion), read before the stored
    /// ones, so that its coverage is what a writable opening would record
    /// ([`BucketStore::open_read_only_described`]). Empty otherwise.
    pub(crate) meta_overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// How long each continuous windowed resolver keeps its messages (`windowed.rs`).
    pub(crate) windowed_retention: SharedWindowedRetention,
}

impl BucketStore {
    /// Opens (or creates) the store at `path` for the series of a description, without
    /// readable summaries.
    pub fn open(
        path: impl AsRef<Path>,
        description: Vec<SeriesSpec>,
        options: StoreOptions,
    ) -> StoreResult<(Self, OpenReport)> {
        let described = description.into_iter().map(DescribedSeries::from).collect();
        Self::open_described(path, described, options)
    }

    /// Opens (or creates) the store at `path` for the series of a description, each with
    /// the readable summary to keep in its series record and the ids it may be stored
    /// under by an older version.
    pub fn open_described(
        path: impl AsRef<Path>,
        description: Vec<DescribedSeries>,
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

        let retention: SharedRetention = Arc::default();
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
        let windowed_retention = SharedWindowedRetention::default();
        let mut meta = Options::default();
        meta.set_compaction_filter_factory(WindowedRetentionFactory {
            table: windowed_retention.clone(),
            clock: options.clock.clone(),
        });
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
            staged: PendingDelta::default(),
            scratch: PendingDelta::default(),
            bulk: BulkRecords::default(),
            retention,
            options,
            backfills_started: std::sync::atomic::AtomicU64::new(0),
            meta_overlay: HashMap::new(),
            windowed_retention,
        };
        store.check_format(exists, true)?;
        reset_dir(&store.path.join(BULK_DIR))?;
        // A backfill that did not finish was never part of the store.
        reset_dir(&store.path.join(BACKFILL_DIR))?;
        let report = store.register(description, true)?;
        Ok((store, report))
    }

    pub(crate) fn meta(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(META_CF).expect("meta column family")
    }

    pub(crate) fn buckets_cf(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(BUCKETS_CF)
            .expect("buckets column family")
    }

    /// Checks the format record; a store of an upgradable older format is upgraded in
    /// place when `writable` (a read-only opening reads it as it is).
    pub(crate) fn check_format(&self, existed: bool, writable: bool) -> StoreResult<()> {
        let expected = format_bytes();
        match self.db.get_cf(self.meta(), FORMAT_KEY)? {
            Some(found) if found == expected => Ok(()),
            Some(found) => {
                let (store, state) = match found.as_slice() {
                    [a, b, c, d, s] => (u32::from_le_bytes([*a, *b, *c, *d]), *s),
                    _ => (0, 0),
                };
                if state == STATE_FORMAT_VERSION && UPGRADABLE_FORMAT_VERSIONS.contains(&store) {
                    if writable {
                        self.db.put_cf(self.meta(), FORMAT_KEY, expected)?;
                    }
                    return Ok(());
                }
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
            out.push(decode_series(key, value)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Makes `description` the active series set: known series keep their data, with
    /// their stored rules reconciled with the requested ones ([`reconcile`]), new ones get
    /// a number, and stored series that it does not name are reported as orphaned. Series
    /// records, changed summaries and coverage records are written in one atomic write;
    /// without `persist` (a read-only store) they are kept in [`BucketStore::meta_overlay`]
    /// instead, and the retention table is left alone.
    pub(crate) fn register(
        &mut self,
        description: Vec<DescribedSeries>,
        persist: bool,
    ) -> StoreResult<OpenReport> {
        let stored = self.stored_series()?;
        let known: HashMap<&str, &StoredSeries> =
            stored.iter().map(|s| (s.spec.id.as_str(), s)).collect();
        let described_ids: HashSet<&str> = description.iter().map(|d| d.spec.id.as_str()).collect();
        // The stored ids of series adopted under a new id.
        let mut adopted: HashSet<String> = HashSet::new();
        let mut next = match self.db.get_cf(self.meta(), NEXT_SERIES_KEY)? {
            Some(v) if v.len() == 4 => u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
            _ => 1,
        };
        let now_ms = self.options.clock.now_ms();
        let mut report = OpenReport::default();
        let mut batch = WriteBatch::default();
        let mut layouts = Vec::with_capacity(description.len());
        let mut by_id = HashMap::new();
        for described in &description {
            let (spec, summary) = (described.spec.clone(), described.summary.clone());
            if by_id.contains_key(&spec.id) {
                return Err(invalid_description(format!(
                    "series '{}' is described twice",
                    spec.id
                )));
            }
            let mut old = known.get(spec.id.as_str()).copied();
            let mut adopted_from = None;
            if old.is_none() {
                // A series an older version stored under another id, which no series of
                // the description claims as its own.
                let former = described.former_ids.iter().find(|id| {
                    known.contains_key(id.as_str())
                        && !described_ids.contains(id.as_str())
                        && !adopted.contains(id.as_str())
                });
                if let Some(former) = former {
                    old = known.get(former.as_str()).copied();
                    adopted.insert(former.clone());
                    adopted_from = Some(former.clone());
                    batch.delete_cf(self.meta(), series_key(former));
                    self.move_coverage(&mut batch, former, &spec.id)?;
                }
            }
            let (layout, rules_changed) = match old {
                Some(old) => {
                    let before = old.layout()?;
                    let change = reconcile(&old.spec, before.order(), &spec)?;
                    let after = SeriesLayout::with_order(change.spec, old.number, change.order)?;
                    let widened = self.record_changed_coverage(
                        &mut batch,
                        &before,
                        &after,
                        &change.added,
                        now_ms,
                    )?;
                    report.kept_series.push(spec.id.clone());
                    let changed = adopted_from.is_some()
                        || !change.added.is_empty()
                        || !change.retired.is_empty()
                        || !change.retention_changed.is_empty();
                    if adopted_from.is_some()
                        || !change.added.is_empty()
                        || !change.retired.is_empty()
                        || !widened.is_empty()
                    {
                        let rules = |indexes: &[usize]| {
                            indexes
                                .iter()
                                .map(|&i| after.spec.rules[i].clone())
                                .collect()
                        };
                        report.changed_series.push(SeriesChange {
                            series_id: spec.id.clone(),
                            adopted_from: adopted_from.clone(),
                            added: rules(&change.added),
                            retired: rules(&change.retired),
                            widened,
                        });
                    }
                    (after, changed)
                }
                None => {
                    let number = next;
                    next += 1;
                    report.new_series.push(spec.id.clone());
                    let layout = SeriesLayout::new(spec, number)?;
                    self.record_new_coverage(&mut batch, &layout, now_ms);
                    (layout, true)
                }
            };
            let id = layout.spec.id.clone();
            // A new or changed series, or a known one whose summary changed (or was never
            // kept).
            let summary_changed = summary.is_some() && old.is_none_or(|o| o.summary != summary);
            if rules_changed || summary_changed {
                let order = layout.order();
                let record = StoredSeries {
                    number: layout.number,
                    spec: layout.spec.clone(),
                    rule_order: (!order.iter().copied().eq(0..layout.spec.rules.len()))
                        .then(|| order.to_vec()),
                    summary: summary
                        .clone()
                        .or_else(|| old.and_then(|o| o.summary.clone())),
                };
                batch.put_cf(self.meta(), series_key(&id), encode_series(&record)?);
            }
            if let Some(summary) = summary {
                report.summaries.insert(id.clone(), summary);
            }
            by_id.insert(id, layouts.len());
            layouts.push(layout);
        }
        for old in &stored {
            if !by_id.contains_key(&old.spec.id) && !adopted.contains(&old.spec.id) {
                report.orphaned_series.push(old.spec.id.clone());
                if let Some(summary) = &old.summary {
                    report
                        .summaries
                        .insert(old.spec.id.clone(), summary.clone());
                }
            }
        }
        batch.put_cf(self.meta(), NEXT_SERIES_KEY, next.to_le_bytes());
        if !persist {
            batch.iterate_cf(&mut MetaOverlay(&mut self.meta_overlay));
            self.series = layouts;
            self.by_id = by_id;
            return Ok(report);
        }
        self.db.write(batch)?;

        // Retention covers every stored series, orphaned ones too, so they still expire.
        let orphaned: Vec<SeriesLayout> = stored
            .iter()
            .filter(|s| !by_id.contains_key(&s.spec.id) && !adopted.contains(&s.spec.id))
            .filter_map(|s| s.layout().ok())
            .collect();
        let table = retention_table(layouts.iter().chain(&orphaned));
        *self.retention.write().expect("retention lock") = Arc::new(table);
        self.series = layouts;
        self.by_id = by_id;
        Ok(report)
    }

    /// A meta record: from [`BucketStore::meta_overlay`] when it has the key, else
    /// stored.
    pub(crate) fn meta_get(&self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        match self.meta_overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.db.get_cf(self.meta(), key)?),
        }
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

    pub(crate) fn series_index(&self, id: &str) -> StoreResult<usize> {
        self.by_id.get(id).copied().ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::UnknownSeries,
                format!("unknown series '{id}'"),
            )
        })
    }

    /// Flushes memtables to SST files (the WAL already makes commits durable; this is for
    /// measuring bytes on disk and for tests).
    pub fn flush(&self) -> StoreResult<()> {
        self.db.flush_cf(self.buckets_cf())?;
        self.db.flush_cf(self.meta())?;
        Ok(())
    }

    /// Compacts the store, which also drops buckets and windowed resolvers' retained
    /// messages past their retention. RocksDB compacts on its own as data grows; this
    /// forces it now.
    pub fn compact(&self) -> StoreResult<()> {
        self.db.flush_cf(self.meta())?;
        self.db
            .compact_range_cf(self.meta(), None::<&[u8]>, None::<&[u8]>);
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
}

/// Collects the writes of a registration's batch, all in the meta column family.
struct MetaOverlay<'a>(&'a mut HashMap<Vec<u8>, Option<Vec<u8>>>);

impl rocksdb::WriteBatchIteratorCf for MetaOverlay<'_> {
    fn put_cf(&mut self, _cf: u32, key: &[u8], value: &[u8]) {
        self.0.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete_cf(&mut self, _cf: u32, key: &[u8]) {
        self.0.insert(key.to_vec(), None);
    }

    fn merge_cf(&mut self, _cf: u32, _key: &[u8], _value: &[u8]) {
        unreachable!("a registration merges nothing")
    }
}
