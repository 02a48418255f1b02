//! The records of scheduled backfill runs, kept in the meta column family under
//! `backfillrun/<job>\0<scheduled time, i64 BE with the sign bit flipped>` as JSON, so that
//! a scheduler restarted after a crash knows which runs completed and which were due
//! (docs/semantics.md section 10). One record per (job, scheduled time); a run's later
//! states overwrite its earlier ones.

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreErrorKind, StoreResult};
use crate::store::BucketStore;

const RUN_PREFIX: &[u8] = b"backfillrun/";

/// One run of a scheduled backfill job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRunRecord {
    pub job: String,
    /// The schedule's time this run is for.
    pub scheduled_ms: i64,
    /// `REGISTERED` (the first time a scheduler saw the job), `INITIALIZING`, `RUNNING`,
    /// `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_ms: Option<i64>,
    #[serde(default)]
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn job_prefix(job: &str) -> Vec<u8> {
    let mut key = RUN_PREFIX.to_vec();
    key.extend_from_slice(job.as_bytes());
    key.push(0);
    key
}

fn run_key(job: &str, scheduled_ms: i64) -> Vec<u8> {
    let mut key = job_prefix(job);
    key.extend_from_slice(&((scheduled_ms as u64) ^ (1 << 63)).to_be_bytes());
    key
}

impl BucketStore {
    /// Writes (or overwrites) the record of one run.
    pub fn put_backfill_run(&self, record: &BackfillRunRecord) -> StoreResult<()> {
        if record.job.is_empty() || record.job.contains('\0') {
            return Err(StoreError::new(
                StoreErrorKind::InvalidBatch,
                format!("'{}' is not a job name", record.job.escape_debug()),
            ));
        }
        let value = serde_json::to_vec(record).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Storage,
                format!("cannot encode a run record: {e}"),
            )
        })?;
        let mut write = rocksdb::WriteOptions::default();
        write.set_sync(true);
        self.db.put_cf_opt(
            self.meta(),
            run_key(&record.job, record.scheduled_ms),
            value,
            &write,
        )?;
        Ok(())
    }

    /// The records of one job's runs (or of every job), oldest scheduled time first.
    pub fn backfill_runs(&self, job: Option<&str>) -> StoreResult<Vec<BackfillRunRecord>> {
        let prefix = job.map_or_else(|| RUN_PREFIX.to_vec(), job_prefix);
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.meta());
        it.seek(&prefix);
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if !key.starts_with(&prefix) {
                break;
            }
            let record: BackfillRunRecord = serde_json::from_slice(value).map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Storage,
                    format!("a backfill run record is corrupt: {e}"),
                )
            })?;
            out.push(record);
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}
