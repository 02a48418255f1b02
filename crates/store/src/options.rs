//! How a store is opened and how a commit writes: the options every other module of the
//! store reads, and nothing that touches RocksDB.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Block size of the bucket tables (the memtable's flushes and bulk table files alike).
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
    /// A commit of at least this many buckets that carries no source positions, no dead
    /// letters and no resolver state is written as one sorted table file and ingested,
    /// rather than through the WAL and the memtable (default 131,072: a file of a few
    /// megabytes at least). Ingestion syncs the file, so such a commit is durable whatever
    /// `sync_commits` says, and so are the commits before it (the WAL is synced first).
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

/// How a commit writes its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Merge into what is stored (streams, incremental ingest).
    #[default]
    Merge,
    /// Replace what is stored (backfills recompute buckets and replace them).
    Replace,
}
