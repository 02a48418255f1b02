//! Retention: a rule keeps its largest window plus one bucket. Older buckets are never
//! served (reads skip them) and a compaction filter removes them as RocksDB compacts,
//! without anyone querying.

use std::ffi::CStr;
use std::sync::{Arc, RwLock};

use rocksdb::compaction_filter::{CompactionFilter, Decision};
use rocksdb::compaction_filter_factory::{CompactionFilterContext, CompactionFilterFactory};
use rustc_hash::FxHashMap;
use tessera_core::BucketSpan;

use crate::key::parse_bucket_key;
use crate::layout::SeriesLayout;
use crate::options::Clock;

/// (series number, bucket size) -> (bucket span, retention in ms).
pub(crate) type RetentionTable = FxHashMap<(u32, i64), (BucketSpan, i64)>;

/// The retention table the compaction filter reads; replaced whole when a description is
/// registered.
pub(crate) type SharedRetention = Arc<RwLock<Arc<RetentionTable>>>;

/// The retention of every layout of `series`.
pub(crate) fn retention_table<'a>(
    series: impl Iterator<Item = &'a SeriesLayout>,
) -> RetentionTable {
    let mut table = RetentionTable::default();
    for layout in series {
        // Layouts whose rules are all retired are never written, but their buckets
        // still expire.
        for l in layout.layouts.iter().chain(&layout.retired_layouts) {
            table.insert((layout.number, l.span.size_ms()), (l.span, l.retention_ms));
        }
    }
    table
}

/// Makes one retention filter per compaction, with the retention table and the clock as
/// they are when the compaction starts.
pub(crate) struct RetentionFilterFactory {
    pub table: SharedRetention,
    pub clock: Clock,
}

pub(crate) struct RetentionFilter {
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
