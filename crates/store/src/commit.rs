//! Commits: how folded rows, source positions, dead letters and resolver states become
//! one atomic write.
//!
//! There are two ways rows reach a commit, and they never mix:
//! - [`BucketStore::commit_batches`] folds the batches it is given into a delta of its
//!   own and commits that delta, with the positions, dead letters and resolver states of
//!   the same call, in one atomic write. This is what streams and single-shot ingests
//!   use, so a commit carries exactly the rows its positions account for, whatever other
//!   callers have staged.
//! - [`BucketStore::stage`] folds rows into the store's staging delta, and
//!   [`BucketStore::commit_staged`] writes what was staged (with positions the caller
//!   gives, if any). Staged rows are never part of a `commit_batches` write.
//!
//! A write is one `WriteBatch` (merge operands or puts per touched bucket, in key order,
//! plus the meta records), or, for a large delta that carries no meta records, one
//! synced table file ingested in one step (see [`crate::bulk`]). Either way a crash
//! leaves all of a commit or none of it.

use rocksdb::{IngestExternalFileOptions, WriteBatch, WriteOptions};

use crate::error::StoreResult;
use crate::fold::{PendingDelta, SeriesBatch};
use crate::meta::{
    dead_letter_key, encode_dead_letter, encode_resolver_state, position_key, resolver_key,
    DeadLetter, ResolverState, SourcePosition,
};
use crate::options::CommitMode;
use crate::store::{BucketStore, BULK_DIR};
use crate::windowed::WindowedWrite;

/// What a commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitReport {
    pub rows: u64,
    pub buckets_written: u64,
    pub bytes_written: u64,
    /// Written as one ingested table file (see [`crate::StoreOptions::bulk_commit_buckets`]).
    pub table_file: bool,
}

/// What staging folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestReport {
    /// Rows folded by this call, summed over the series it fed.
    pub rows: u64,
    /// Rows and buckets staged and waiting for [`BucketStore::commit_staged`].
    pub pending_rows: u64,
    pub pending_buckets: u64,
}

/// The meta records that go into the same atomic write as a commit's buckets.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitRecords<'a> {
    /// Next offsets of the sources whose messages the commit folded.
    pub positions: &'a [SourcePosition],
    /// Messages the commit consumed without folding them.
    pub dead_letters: &'a [DeadLetter],
    /// Resolver states as of the end of the commit.
    pub resolver_states: &'a [ResolverState],
    /// Windowed resolvers' messages, period values and closed periods (`windowed.rs`).
    pub windowed: &'a [WindowedWrite],
}

impl CommitRecords<'_> {
    fn is_empty(&self) -> bool {
        self.positions.is_empty()
            && self.dead_letters.is_empty()
            && self.resolver_states.is_empty()
            && self.windowed.is_empty()
    }
}

impl BucketStore {
    /// Folds `batches` into a delta of this call's own and writes it, with `records`, in
    /// one atomic write. Every batch is checked first: a bad batch is an error and nothing
    /// of the call is written. Rows staged with [`BucketStore::stage`] are not part of it.
    pub fn commit_batches(
        &mut self,
        batches: &[SeriesBatch<'_>],
        records: CommitRecords<'_>,
        mode: CommitMode,
    ) -> StoreResult<CommitReport> {
        let indexes = self.validate_batches(batches)?;
        let mut delta = std::mem::take(&mut self.scratch);
        for (batch, &index) in batches.iter().zip(&indexes) {
            delta.fold(index, &self.series[index], batch);
        }
        let written = self.write_delta(&mut delta, records, mode);
        delta.clear();
        self.scratch = delta;
        written
    }

    /// Folds batches into the staging delta; nothing is written until
    /// [`BucketStore::commit_staged`]. A bad batch is an error and nothing of the call is
    /// staged.
    pub fn stage(&mut self, batches: &[SeriesBatch<'_>]) -> StoreResult<IngestReport> {
        let indexes = self.validate_batches(batches)?;
        let before = self.staged.rows();
        for (batch, &index) in batches.iter().zip(&indexes) {
            self.staged.fold(index, &self.series[index], batch);
        }
        Ok(IngestReport {
            rows: self.staged.rows() - before,
            pending_rows: self.staged.rows(),
            pending_buckets: self.staged.bucket_count() as u64,
        })
    }

    /// Rows and buckets staged but not committed.
    pub fn staged(&self) -> (u64, u64) {
        (self.staged.rows(), self.staged.bucket_count() as u64)
    }

    /// Drops the staged rows without writing them.
    pub fn discard_staged(&mut self) {
        self.staged.clear();
    }

    /// Writes the staged rows, with `records`, in one atomic write, and empties the
    /// staging delta. When the write fails nothing of it is in the store, so the staged
    /// rows are kept: the caller can commit them again or drop them with
    /// [`BucketStore::discard_staged`].
    pub fn commit_staged(
        &mut self,
        records: CommitRecords<'_>,
        mode: CommitMode,
    ) -> StoreResult<CommitReport> {
        let mut delta = std::mem::take(&mut self.staged);
        let written = self.write_delta(&mut delta, records, mode);
        if written.is_ok() {
            delta.clear();
        }
        self.staged = delta;
        written
    }

    fn validate_batches(&self, batches: &[SeriesBatch<'_>]) -> StoreResult<Vec<usize>> {
        let mut indexes = Vec::with_capacity(batches.len());
        for batch in batches {
            let index = self.series_index(batch.series_id)?;
            PendingDelta::validate(&self.series[index], batch)?;
            indexes.push(index);
        }
        Ok(indexes)
    }

    fn write_delta(
        &mut self,
        delta: &mut PendingDelta,
        records: CommitRecords<'_>,
        mode: CommitMode,
    ) -> StoreResult<CommitReport> {
        if records.is_empty() && delta.bucket_count() >= self.options.bulk_commit_buckets.max(1) {
            return self.write_bulk(delta, mode);
        }
        self.bulk.release();
        // Sized for the usual record up front: growing a batch of many megabytes by
        // doubling copies it again and again.
        let mut batch = WriteBatch::with_capacity_bytes(delta.bucket_count() * 96 + 4096);
        let buckets_cf = self.buckets_cf();
        let written = delta.write_records(&self.series, |key, record| match mode {
            CommitMode::Merge => batch.merge_cf(buckets_cf, key, record),
            CommitMode::Replace => batch.put_cf(buckets_cf, key, record),
        });
        let meta = self.meta();
        for position in records.positions {
            batch.put_cf(
                meta,
                position_key(&position.source, position.partition),
                position.offset.to_le_bytes(),
            );
        }
        for letter in records.dead_letters {
            batch.put_cf(
                meta,
                dead_letter_key(&letter.source, letter.partition, letter.offset),
                encode_dead_letter(letter)?,
            );
        }
        for state in records.resolver_states {
            batch.put_cf(
                meta,
                resolver_key(&state.resolver),
                encode_resolver_state(state)?,
            );
        }
        for record in records.windowed {
            record.write(&mut batch, meta)?;
        }
        let mut write = WriteOptions::default();
        write.set_sync(self.options.sync_commits);
        self.db.write_opt(batch, &write)?;
        Ok(CommitReport {
            rows: delta.rows(),
            buckets_written: written.buckets,
            bytes_written: written.bytes,
            table_file: false,
        })
    }

    /// Writes a delta's buckets as one table file and ingests it.
    fn write_bulk(
        &mut self,
        delta: &mut PendingDelta,
        mode: CommitMode,
    ) -> StoreResult<CommitReport> {
        let bulk = &mut self.bulk;
        bulk.clear();
        let written = delta.write_records(&self.series, |key, record| bulk.push(key, record));
        let report = CommitReport {
            rows: delta.rows(),
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
            let ingested =
                self.db
                    .ingest_external_file_cf_opts(self.buckets_cf(), &ingest, vec![&file]);
            // Moved files are hard links: the store has its own now.
            let _ = std::fs::remove_file(&file);
            ingested?;
        }
        self.bulk.clear();
        Ok(report)
    }
}
