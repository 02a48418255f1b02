//! Bulk commits. A commit of many buckets (a backfill, a large batch from a sparse key
//! space) is written as one sorted table file and ingested into the buckets column
//! family, instead of going through the WAL, the memtable and a later flush, which would
//! copy every record three times and cost several hundred nanoseconds per record on two
//! cores. Ingestion is atomic: the file joins the store in one manifest edit, after it has
//! been synced, so a killed process either has the whole commit or none of it.
//!
//! The records are gathered here first because a table file takes keys in strictly
//! increasing byte order, and the fold hands them over in key order only within one
//! layout of one series.

use std::path::Path;

use rocksdb::{BlockBasedOptions, DBCompressionType, Options, SstFileWriter};

use crate::error::{StoreError, StoreErrorKind, StoreResult};
use crate::options::{CommitMode, BLOCK_SIZE};

/// Where a record lies in [`BulkRecords::bytes`]: its key, then its value.
#[derive(Debug, Clone, Copy)]
struct Entry {
    at: usize,
    key_len: u32,
    record_len: u32,
}

/// One commit's (bucket key, record) pairs. The buffers are kept from one bulk commit to
/// the next, so that tens of megabytes are not faulted in anew each time, and given back
/// at the first commit that is not a bulk one.
#[derive(Debug, Default)]
pub(crate) struct BulkRecords {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl BulkRecords {
    pub fn push(&mut self, key: &[u8], record: &[u8]) {
        self.entries.push(Entry {
            at: self.bytes.len(),
            key_len: key.len() as u32,
            record_len: record.len() as u32,
        });
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(record);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// Gives the buffers back (when commits stopped being bulk ones).
    pub fn release(&mut self) {
        if self.bytes.capacity() > 0 {
            *self = Self::default();
        }
    }

    fn key(&self, entry: &Entry) -> &[u8] {
        &self.bytes[entry.at..entry.at + entry.key_len as usize]
    }

    fn record(&self, entry: &Entry) -> &[u8] {
        let start = entry.at + entry.key_len as usize;
        &self.bytes[start..start + entry.record_len as usize]
    }

    /// Puts the entries in key order. They usually are already (one layout of integer
    /// keys), which one pass confirms.
    fn sort(&mut self) {
        let in_order = self
            .entries
            .windows(2)
            .all(|pair| self.key(&pair[0]) < self.key(&pair[1]));
        if !in_order {
            let mut entries = std::mem::take(&mut self.entries);
            entries.sort_unstable_by(|a, b| self.key(a).cmp(self.key(b)));
            self.entries = entries;
        }
    }

    /// Writes the records, sorted, into a new table file at `path` and syncs it: merge
    /// operands, or puts that replace what the store holds.
    pub fn write_table(&mut self, path: &Path, mode: CommitMode) -> StoreResult<()> {
        self.sort();
        let options = table_file_options();
        let mut writer = SstFileWriter::create(&options);
        writer.open(path)?;
        for entry in &self.entries {
            let (key, record) = (self.key(entry), self.record(entry));
            match mode {
                CommitMode::Merge => writer.merge(key, record)?,
                CommitMode::Replace => writer.put(key, record)?,
            }
        }
        writer.finish()?;
        Ok(())
    }
}

/// The options of an ingested file. Its blocks are the store's size; they are not
/// compressed, since the file lands in level 0 and is rewritten (and compressed) by the
/// first compaction that takes it, off the committing thread.
pub(crate) fn table_file_options() -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_size(BLOCK_SIZE);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_compression_type(DBCompressionType::None);
    options
}

/// Empties the directory bulk commits write their files in, creating it if needed. A
/// file left there by a process that died before ingesting it was never part of the
/// store.
pub(crate) fn reset_dir(dir: &Path) -> StoreResult<()> {
    let io = |e: std::io::Error| {
        StoreError::new(
            StoreErrorKind::Storage,
            format!("cannot prepare '{}' for bulk commits: {e}", dir.display()),
        )
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)
}
