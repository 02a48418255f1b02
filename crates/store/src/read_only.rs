//! Reading a store that another process holds. RocksDB lets one process open a directory
//! for writing (its `LOCK` file); a `tessera serve` or a stream runner holds it for as long
//! as it runs. [`BucketStore::open_read_only`] opens the same directory as a RocksDB
//! *secondary* instance instead, which takes no lock and reads the primary's manifest and
//! write-ahead log: it sees every commit the primary had made when it was opened (commits
//! are atomic, so never part of one), and nothing the primary writes later.
//!
//! The store opened this way has every stored series active (as it was last described)
//! and writes nothing: not the format record, not the series records, not the bulk
//! directory. A commit on it fails with RocksDB's error for writes on a secondary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::error::{StoreError, StoreErrorKind, StoreResult};
use crate::meta::{BUCKETS_CF, META_CF};
use crate::options::StoreOptions;
use crate::record::merge_records;
use crate::store::{BucketStore, DescribedSeries, OpenReport, BUCKET_MERGE_OPERATOR};

/// Numbers the secondary directories of one process.
static SECONDARY_SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl BucketStore {
    /// Opens the store at `path` for reading, whether or not another process holds it.
    /// Every stored series is active, so windows, positions and dead letters of any of
    /// them can be read; `options.create_if_missing` is ignored (a missing store is an
    /// error). The report lists every stored series as kept, with its stored summary.
    pub fn open_read_only(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> StoreResult<(Self, OpenReport)> {
        let mut store = Self::open_secondary(path.as_ref(), options)?;
        let mut report = OpenReport::default();
        for stored in store.stored_series()? {
            let layout = stored.layout()?;
            let id = layout.spec.id.clone();
            if let Some(summary) = stored.summary {
                report.summaries.insert(id.clone(), summary);
            }
            report.kept_series.push(id.clone());
            store.by_id.insert(id, store.series.len());
            store.series.push(layout);
        }
        Ok((store, report))
    }

    /// Opens the store at `path` for reading, as [`BucketStore::open_read_only`] does, for
    /// the series of a description: what opening it writable would find (new, kept,
    /// changed and orphaned series, with their stored rules reconciled with the requested
    /// ones) without writing anything. Its active series are the described ones, read
    /// through the requested rule indexes, and its coverage is what that opening would
    /// record (docs/semantics.md section 9.4).
    pub fn open_read_only_described(
        path: impl AsRef<Path>,
        description: Vec<DescribedSeries>,
        options: StoreOptions,
    ) -> StoreResult<(Self, OpenReport)> {
        let mut store = Self::open_secondary(path.as_ref(), options)?;
        let report = store.register(description, false)?;
        Ok((store, report))
    }

    fn open_secondary(path: &Path, options: StoreOptions) -> StoreResult<Self> {
        let path = path.to_path_buf();
        let display = path.display().to_string();
        if !path.join("CURRENT").exists() {
            return Err(StoreError::new(
                StoreErrorKind::Storage,
                format!("no Tessera store at '{display}'"),
            ));
        }
        let families = DB::list_cf(&Options::default(), &path)?;
        if !families.iter().any(|f| f == META_CF) {
            return Err(StoreError::new(
                StoreErrorKind::IncompatibleFormat,
                format!("'{display}' holds a RocksDB database that is not a Tessera store"),
            ));
        }

        let mut db_options = Options::default();
        // A secondary keeps every table file open, so that the primary's compactions
        // cannot delete a file it is about to read.
        db_options.set_max_open_files(-1);
        let mut buckets = Options::default();
        buckets.set_merge_operator_associative(BUCKET_MERGE_OPERATOR, merge_records);
        let secondary = secondary_dir();
        let opened = DB::open_cf_descriptors_as_secondary(
            &db_options,
            &path,
            &secondary,
            vec![
                ColumnFamilyDescriptor::new(BUCKETS_CF, buckets),
                ColumnFamilyDescriptor::new(META_CF, Options::default()),
            ],
        );
        // The secondary directory holds only the instance's info log, which stays open;
        // nothing reads it back, so it goes at once (on Linux and macOS the open log
        // outlives its name; where it cannot be removed it stays in the temp directory).
        let _ = std::fs::remove_dir_all(&secondary);
        let db = opened.map_err(|e| {
            StoreError::new(
                StoreErrorKind::Storage,
                format!(
                    "cannot open the store at '{display}' read-only: {}",
                    e.into_string()
                ),
            )
        })?;

        let store = Self {
            db,
            path,
            series: Vec::new(),
            by_id: Default::default(),
            staged: Default::default(),
            scratch: Default::default(),
            bulk: Default::default(),
            retention: Default::default(),
            options,
            backfills_started: Default::default(),
            meta_overlay: Default::default(),
            windowed_retention: Default::default(),
        };
        store.check_format(true, false)?;
        Ok(store)
    }
}

/// A fresh directory name for a secondary instance's own files.
fn secondary_dir() -> PathBuf {
    let n = SECONDARY_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("tessera-secondary-{}-{n}", std::process::id()))
}
