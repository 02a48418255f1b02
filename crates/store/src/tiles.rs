//! Offline tiles (docs/semantics.md section 11.2): a backfill's buckets written to Parquet
//! files instead of (or besides) the store, so that point-in-time queries can merge
//! history that retention removed from the store, and so that other tools (DuckDB) can
//! read them.
//!
//! A tile is what one backfill run wrote for one layout (a series and one of its bucket
//! sizes): the buckets starting in `[start, end)`, one row per (rule, group key, bucket),
//! each holding the rule's state encoded exactly as in the store's records. Its files sit
//! under `<dir>/series=<id>/bucket_ms=<size>/`, one per spill of the run. The manifest
//! `<dir>/tiles.json` lists every tile with its range and rules: it is the coverage record
//! of each (series, bucket size, rule). A rule is named by its aggregation (the catalog
//! name and arguments, as JSON), so that tiles stay readable by any store whose
//! definitions hold that rule, whatever its slot there.
//!
//! Tiles overlap: a bucket start covered by several tiles of a rule is read from the
//! newest (the highest sequence), never merged across tiles, as a later backfill replaces
//! an earlier one in the store. Within one tile, rows of the same bucket (a bucket spread
//! over two spills) merge.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::column::reader::{get_typed_column_reader, ColumnReader};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde::{Deserialize, Serialize};
use tessera_core::AggState;

use crate::error::{invalid_batch, StoreError, StoreErrorKind, StoreResult};
use crate::fold::{BucketSink, KeyColumn};
use crate::key::describe_group_key;
use crate::layout::{AggregationSpec, Layout, SeriesLayout};
use crate::points::{point_rows, point_window, PointAnswer};
use crate::reads::{encode_key_row, Explanation, WindowRead};
use crate::store::BucketStore;

/// The version of the tile files and manifest this build writes and reads.
pub const TILE_FORMAT_VERSION: u32 = 1;
/// The manifest's file name in the tile directory.
pub const TILE_MANIFEST: &str = "tiles.json";
/// The key of the format version in each file's key-value metadata.
pub const TILE_FORMAT_KEY: &str = "tessera.tile_format";
const STAGING_DIR: &str = ".staging";
const LOCK_FILE: &str = "tiles.lock";

/// The Parquet schema of a tile file.
pub const TILE_SCHEMA: &str = "message tessera_tile {
  REQUIRED BYTE_ARRAY series (UTF8);
  REQUIRED INT64 bucket_ms;
  REQUIRED BYTE_ARRAY rule (UTF8);
  REQUIRED BYTE_ARRAY group_key;
  REQUIRED BYTE_ARRAY key (UTF8);
  REQUIRED INT64 bucket_start (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY state;
}";

/// Where a backfill writes tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileTarget {
    pub dir: PathBuf,
    /// Record a tile for a layout the run had no rows for (its range is then covered, with
    /// no data); without it such a layout gets no tile and its range stays uncovered.
    pub allow_empty: bool,
}

/// One tile: what one run wrote for one layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TileEntry {
    /// Increases with every tile written to the directory: the newest wins.
    pub sequence: u64,
    pub series_id: String,
    pub bucket_size_ms: i64,
    pub bucket_origin_ms: i64,
    /// The rules whose states the tile holds, by aggregation.
    pub rules: Vec<AggregationSpec>,
    /// The tile covers the buckets starting in `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Its files, relative to the tile directory (none for an empty tile).
    pub files: Vec<String>,
    pub rows: u64,
    /// The engine clock when it was written.
    pub written_ms: i64,
}

/// The manifest of a tile directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TileManifest {
    pub format: u32,
    pub tiles: Vec<TileEntry>,
}

impl Default for TileManifest {
    fn default() -> Self {
        Self {
            format: TILE_FORMAT_VERSION,
            tiles: Vec::new(),
        }
    }
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Storage,
        format!("offline tiles: cannot {what} '{}': {e}", path.display()),
    )
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Storage,
        format!("offline tiles: '{}': {e}", path.display()),
    )
}

/// The text a rule is named by in tile files and the manifest.
pub fn rule_name(spec: &AggregationSpec) -> String {
    serde_json::to_string(spec).unwrap_or_else(|_| spec.kind.clone())
}

impl TileManifest {
    /// Reads the manifest of `dir`; a directory without one has no tiles.
    pub fn read(dir: &Path) -> StoreResult<Self> {
        let path = dir.join(TILE_MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        let manifest: Self =
            serde_json::from_str(&text).map_err(|e| io_error("parse", &path, e))?;
        if manifest.format != TILE_FORMAT_VERSION {
            return Err(StoreError::new(
                StoreErrorKind::IncompatibleFormat,
                format!(
                    "offline tiles: '{}' is tile format {}, this version reads format {TILE_FORMAT_VERSION}",
                    path.display(),
                    manifest.format
                ),
            ));
        }
        Ok(manifest)
    }

    /// Writes the manifest of `dir` atomically (a new file renamed over the old one).
    fn write(&self, dir: &Path) -> StoreResult<()> {
        let path = dir.join(TILE_MANIFEST);
        let temp = dir.join(format!("{TILE_MANIFEST}.{}.tmp", std::process::id()));
        let text = serde_json::to_vec_pretty(self).map_err(|e| io_error("encode", &path, e))?;
        let mut file = File::create(&temp).map_err(|e| io_error("create", &temp, e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("write", &temp, e))?;
        std::fs::rename(&temp, &path).map_err(|e| io_error("replace", &path, e))?;
        sync_dir(dir);
        Ok(())
    }

    /// The tiles of one layout holding `rule`, newest first.
    fn tiles_of<'a>(
        &'a self,
        series_id: &'a str,
        bucket_size_ms: i64,
        rule: &'a AggregationSpec,
    ) -> impl Iterator<Item = &'a TileEntry> + 'a {
        let mut found: Vec<&TileEntry> = self
            .tiles
            .iter()
            .filter(move |t| {
                t.series_id == series_id
                    && t.bucket_size_ms == bucket_size_ms
                    && t.rules.contains(rule)
            })
            .collect();
        found.sort_by_key(|t| std::cmp::Reverse(t.sequence));
        found.into_iter()
    }

    /// The first part of `[from, to)` that no tile of the rule covers, if any.
    pub fn first_gap(
        &self,
        series_id: &str,
        bucket_size_ms: i64,
        rule: &AggregationSpec,
        (from, to): (i64, i64),
    ) -> Option<(i64, i64)> {
        let mut ranges: Vec<(i64, i64)> = self
            .tiles_of(series_id, bucket_size_ms, rule)
            .map(|t| (t.start_ms, t.end_ms))
            .collect();
        ranges.sort_unstable();
        let mut at = from;
        for (start, end) in ranges {
            if at >= to {
                break;
            }
            if start > at {
                return Some((at, start.min(to)));
            }
            at = at.max(end);
        }
        (at < to).then_some((at, to))
    }

    /// Where the tiles of a layout's rules are contiguous up to, from the earliest start of
    /// its newest run on: the end of the covered stretch that ends latest, over all the
    /// rules (the lowest such end), or `None` when some rule has no tile.
    pub fn covered_end(
        &self,
        series_id: &str,
        bucket_size_ms: i64,
        rules: &[AggregationSpec],
    ) -> Option<i64> {
        let mut end = i64::MAX;
        for rule in rules {
            let latest = self
                .tiles_of(series_id, bucket_size_ms, rule)
                .map(|t| t.end_ms)
                .max()?;
            end = end.min(latest);
        }
        (end != i64::MAX).then_some(end)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The rows of one layout of one spill, column by column.
#[derive(Default)]
struct TileRows {
    rule: Vec<ByteArray>,
    group_key: Vec<ByteArray>,
    key: Vec<ByteArray>,
    bucket_start: Vec<i64>,
    state: Vec<ByteArray>,
}

impl TileRows {
    fn len(&self) -> usize {
        self.bucket_start.len()
    }
}

/// A file one spill wrote for one layout.
#[derive(Debug, Clone)]
pub(crate) struct TilePart {
    pub series_number: u32,
    pub bucket_size_ms: i64,
    pub path: PathBuf,
    pub rows: u64,
}

/// The layout a [`TileSink`] is writing.
struct SinkLayout {
    series_id: String,
    number: u32,
    size_ms: i64,
    /// The run's range of bucket starts in this layout.
    range: (i64, i64),
    /// The name of each state position of its records (`None` for a retired rule).
    names: Vec<Option<ByteArray>>,
}

/// Receives a spill's buckets and writes, per layout of the run, one tile file of their
/// states (see the module documentation).
pub(crate) struct TileSink<'a> {
    pub bounds: &'a HashMap<(u32, i64), (i64, i64)>,
    pub dir: &'a Path,
    pub number: u64,
    /// The layout being written.
    layout: Option<SinkLayout>,
    rows: TileRows,
    pub parts: Vec<TilePart>,
    pub error: Option<StoreError>,
}

impl<'a> TileSink<'a> {
    pub fn new(bounds: &'a HashMap<(u32, i64), (i64, i64)>, dir: &'a Path, number: u64) -> Self {
        Self {
            bounds,
            dir,
            number,
            layout: None,
            rows: TileRows::default(),
            parts: Vec::new(),
            error: None,
        }
    }

    /// Writes the rows of the layout being written, if it has any, to a file of its own.
    pub fn close_layout(&mut self) -> StoreResult<()> {
        let Some(SinkLayout {
            series_id,
            number,
            size_ms,
            ..
        }) = self.layout.take()
        else {
            return Ok(());
        };
        let rows = std::mem::take(&mut self.rows);
        if rows.len() == 0 {
            return Ok(());
        }
        let path = self.dir.join(format!(
            "{number}-{size_ms}-{:06}-{}.parquet",
            self.number,
            self.parts.len()
        ));
        write_tile_file(&path, &series_id, size_ms, &rows)?;
        self.parts.push(TilePart {
            series_number: number,
            bucket_size_ms: size_ms,
            path,
            rows: rows.len() as u64,
        });
        Ok(())
    }

    fn add(&mut self, group_key: &[u8], start: i64, record: &[u8]) -> StoreResult<()> {
        let Some(SinkLayout {
            series_id,
            range: (from, to),
            names,
            ..
        }) = &self.layout
        else {
            return Ok(());
        };
        if start < *from || start >= *to {
            return Ok(());
        }
        let mut rest = record;
        let mut position = 0;
        let mut key_text: Option<ByteArray> = None;
        while !rest.is_empty() {
            let (_, used) = AggState::decode(rest).map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Core(e.kind),
                    format!(
                        "series '{series_id}': a bucket cannot be tiled: {}",
                        e.message
                    ),
                )
            })?;
            if let Some(Some(name)) = names.get(position) {
                let key = key_text
                    .get_or_insert_with(|| {
                        ByteArray::from(describe_group_key(group_key).into_bytes())
                    })
                    .clone();
                self.rows.rule.push(name.clone());
                self.rows
                    .group_key
                    .push(ByteArray::from(group_key.to_vec()));
                self.rows.key.push(key);
                self.rows.bucket_start.push(start);
                self.rows.state.push(ByteArray::from(rest[..used].to_vec()));
            }
            rest = &rest[used..];
            position += 1;
        }
        Ok(())
    }
}

impl BucketSink for TileSink<'_> {
    fn layout(&mut self, series: &SeriesLayout, layout: &Layout) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.close_layout() {
            self.error = Some(e);
            return;
        }
        let size_ms = layout.span.size_ms();
        self.layout = self.bounds.get(&(series.number, size_ms)).map(|&range| {
            let names = layout
                .rules
                .iter()
                .map(|&stored| {
                    (!series.rules[stored].retired).then(|| {
                        ByteArray::from(
                            rule_name(&series.spec.rules[stored].aggregation).into_bytes(),
                        )
                    })
                })
                .collect();
            SinkLayout {
                series_id: series.spec.id.clone(),
                number: series.number,
                size_ms,
                range,
                names,
            }
        });
    }

    fn bucket(&mut self, _key: &[u8], group_key: &[u8], start: i64, record: Option<&[u8]>) {
        if self.error.is_some() {
            return;
        }
        if let Some(record) = record {
            if let Err(e) = self.add(group_key, start, record) {
                self.error = Some(e);
            }
        }
    }
}

fn write_tile_file(path: &Path, series_id: &str, size_ms: i64, rows: &TileRows) -> StoreResult<()> {
    let schema = Arc::new(parse_message_type(TILE_SCHEMA).map_err(|e| parquet_error(path, e))?);
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            TILE_FORMAT_KEY.to_string(),
            TILE_FORMAT_VERSION.to_string(),
        )]))
        .build();
    let file = File::create(path).map_err(|e| io_error("create", path, e))?;
    let fail = |e| parquet_error(path, e);
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(properties)).map_err(fail)?;
    let n = rows.len();
    let series = vec![ByteArray::from(series_id.as_bytes().to_vec()); n];
    let sizes = vec![size_ms; n];
    let mut group = writer.next_row_group().map_err(fail)?;
    let mut column = 0;
    while let Some(mut col) = group.next_column().map_err(fail)? {
        let written = match column {
            0 => col
                .typed::<ByteArrayType>()
                .write_batch(&series, None, None),
            1 => col.typed::<Int64Type>().write_batch(&sizes, None, None),
            2 => col
                .typed::<ByteArrayType>()
                .write_batch(&rows.rule, None, None),
            3 => col
                .typed::<ByteArrayType>()
                .write_batch(&rows.group_key, None, None),
            4 => col
                .typed::<ByteArrayType>()
                .write_batch(&rows.key, None, None),
            5 => col
                .typed::<Int64Type>()
                .write_batch(&rows.bucket_start, None, None),
            _ => col
                .typed::<ByteArrayType>()
                .write_batch(&rows.state, None, None),
        };
        written.map_err(fail)?;
        col.close().map_err(fail)?;
        column += 1;
    }
    group.close().map_err(fail)?;
    let file = writer.into_inner().map_err(fail)?;
    file.sync_all().map_err(|e| io_error("sync", path, e))?;
    Ok(())
}

/// The rows of a tile file this read needs: (rule, group key, bucket start, state).
struct FileRows {
    rule: Vec<ByteArray>,
    group_key: Vec<ByteArray>,
    bucket_start: Vec<i64>,
    state: Vec<ByteArray>,
}

/// Reads `rows` values of a required column of type `T`.
fn read_column<T: DataType>(
    reader: ColumnReader,
    rows: usize,
    path: &Path,
) -> StoreResult<Vec<T::T>> {
    let mut typed = get_typed_column_reader::<T>(reader);
    let mut out = Vec::with_capacity(rows);
    while out.len() < rows {
        let (records, _, _) = typed
            .read_records(rows - out.len(), None, None, &mut out)
            .map_err(|e| parquet_error(path, e))?;
        if records == 0 {
            break;
        }
    }
    Ok(out)
}

fn read_tile_file(path: &Path) -> StoreResult<FileRows> {
    let file = File::open(path).map_err(|e| io_error("open", path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(path, e))?;
    let version = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == TILE_FORMAT_KEY))
        .and_then(|k| k.value.clone());
    if version.as_deref() != Some(&TILE_FORMAT_VERSION.to_string()) {
        return Err(StoreError::new(
            StoreErrorKind::IncompatibleFormat,
            format!(
                "offline tiles: '{}' is tile format {}, this version reads format {TILE_FORMAT_VERSION}",
                path.display(),
                version.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    // The columns read, by index and physical type: a file of another schema is refused,
    // not misread.
    let schema = reader.metadata().file_metadata().schema_descr();
    let expected = [
        (2, PhysicalType::BYTE_ARRAY),
        (3, PhysicalType::BYTE_ARRAY),
        (5, PhysicalType::INT64),
        (6, PhysicalType::BYTE_ARRAY),
    ];
    if schema.num_columns() != 7
        || expected
            .iter()
            .any(|&(i, t)| schema.column(i).physical_type() != t)
    {
        return Err(StoreError::new(
            StoreErrorKind::IncompatibleFormat,
            format!(
                "offline tiles: '{}' does not have the tile schema (docs/semantics.md section 11.2)",
                path.display()
            ),
        ));
    }
    let mut out = FileRows {
        rule: Vec::new(),
        group_key: Vec::new(),
        bucket_start: Vec::new(),
        state: Vec::new(),
    };
    for g in 0..reader.num_row_groups() {
        let group = reader
            .get_row_group(g)
            .map_err(|e| parquet_error(path, e))?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let column = |i| {
            group
                .get_column_reader(i)
                .map_err(|e| parquet_error(path, e))
        };
        out.rule
            .extend(read_column::<ByteArrayType>(column(2)?, rows, path)?);
        out.group_key
            .extend(read_column::<ByteArrayType>(column(3)?, rows, path)?);
        out.bucket_start
            .extend(read_column::<Int64Type>(column(5)?, rows, path)?);
        out.state
            .extend(read_column::<ByteArrayType>(column(6)?, rows, path)?);
    }
    let n = out.bucket_start.len();
    if out.rule.len() != n || out.group_key.len() != n || out.state.len() != n {
        return Err(parquet_error(
            path,
            parquet::errors::ParquetError::General("its columns differ in length".into()),
        ));
    }
    Ok(out)
}

/// Holds the tile directory's lock (an advisory lock on `tiles.lock`) while a run adds its
/// tiles, so that two writers never lose each other's manifest entries.
fn lock_dir(dir: &Path) -> StoreResult<File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("open", &path, e))?;
    file.lock().map_err(|e| io_error("lock", &path, e))?;
    Ok(file)
}

/// A directory to stage a run's tile files in, inside the tile directory (so that they
/// are moved into place by a rename).
pub(crate) fn staging_dir(target: &TileTarget, run: &str) -> StoreResult<PathBuf> {
    let dir = target.dir.join(STAGING_DIR).join(run);
    std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
    Ok(dir)
}

/// One layout a run tiles: its series, bucket size and range.
pub(crate) struct TiledLayout<'a> {
    pub series: &'a SeriesLayout,
    pub bucket_size_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Moves a run's files into place and records its tiles in the manifest, under the
/// directory's lock. Returns the tiles recorded. A crash before the manifest is replaced
/// leaves files no tile names (never read, removed with the staging directory).
pub(crate) fn commit_tiles(
    target: &TileTarget,
    layouts: &[TiledLayout<'_>],
    parts: &[TilePart],
    written_ms: i64,
) -> StoreResult<u64> {
    std::fs::create_dir_all(&target.dir).map_err(|e| io_error("create", &target.dir, e))?;
    let _lock = lock_dir(&target.dir)?;
    let mut manifest = TileManifest::read(&target.dir)?;
    let mut sequence = manifest.tiles.iter().map(|t| t.sequence).max().unwrap_or(0);
    let mut added = 0;
    for layout in layouts {
        let series = layout.series;
        let spans = series.layout_of_size(layout.bucket_size_ms)?;
        if layout.end_ms <= layout.start_ms {
            continue;
        }
        let mine: Vec<&TilePart> = parts
            .iter()
            .filter(|p| {
                p.series_number == series.number && p.bucket_size_ms == layout.bucket_size_ms
            })
            .collect();
        if mine.is_empty() && !target.allow_empty {
            continue;
        }
        sequence += 1;
        let folder = format!(
            "series={}/bucket_ms={}",
            safe_name(&series.spec.id),
            layout.bucket_size_ms
        );
        let into = target.dir.join(&folder);
        std::fs::create_dir_all(&into).map_err(|e| io_error("create", &into, e))?;
        let mut files = Vec::with_capacity(mine.len());
        for (i, part) in mine.iter().enumerate() {
            let name = format!(
                "tile-{sequence:08}-{}-{}-{i:03}.parquet",
                layout.start_ms, layout.end_ms
            );
            let to = into.join(&name);
            std::fs::rename(&part.path, &to).map_err(|e| io_error("move a tile to", &to, e))?;
            files.push(format!("{folder}/{name}"));
        }
        sync_dir(&into);
        manifest.tiles.push(TileEntry {
            sequence,
            series_id: series.spec.id.clone(),
            bucket_size_ms: layout.bucket_size_ms,
            bucket_origin_ms: spans.span.origin_ms(),
            rules: series
                .active_rules(spans)
                .map(|r| series.spec.rules[r].aggregation.clone())
                .collect(),
            start_ms: layout.start_ms,
            end_ms: layout.end_ms,
            files,
            rows: mine.iter().map(|p| p.rows).sum(),
            written_ms,
        });
        added += 1;
    }
    if added > 0 {
        manifest.write(&target.dir)?;
    }
    Ok(added)
}

fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A window a tile read cannot answer: part of its buckets is in no tile of its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UncoveredWindow {
    /// The cell: `row * reads + read`.
    pub cell: usize,
    /// The first uncovered range of bucket starts, `[from, to)`.
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The answer to a point-in-time read from tiles.
#[derive(Debug, Clone)]
pub struct TilePointAnswer {
    pub answer: PointAnswer,
    pub uncovered: Vec<UncoveredWindow>,
}

/// A tile read's states of one (rule, group key): (bucket start, state), by start.
type KeyStates = Vec<(i64, AggState)>;

impl BucketStore {
    /// Reads windows for many group keys, each row at its own time, from the offline
    /// tiles of `dir` instead of the store (docs/semantics.md section 11.2): the same
    /// windows as [`BucketStore::read_points`], merged from the tile states in bucket
    /// order. Retention does not apply; a window whose buckets no tile of its rule covers
    /// is listed in `uncovered` (its value is left empty).
    pub fn read_points_from_tiles(
        &self,
        dir: &Path,
        keys: &[KeyColumn<'_>],
        times_ms: &[i64],
        reads: &[WindowRead],
        explain: bool,
    ) -> StoreResult<TilePointAnswer> {
        let rows = point_rows(keys, times_ms)?;
        let manifest = TileManifest::read(dir)?;
        let plan = self.plan_reads(reads, self.options.clock.now_ms())?;
        let mut values = self.empty_values(&plan, rows);
        let mut explanations = explain.then(|| {
            vec![
                Explanation {
                    first_bucket_start: 0,
                    last_bucket_start: 0,
                    buckets_merged: 0,
                    buffer: None,
                };
                rows * reads.len()
            ]
        });
        let mut uncovered = Vec::new();
        let mut group_keys: Vec<Option<Vec<u8>>> = Vec::with_capacity(rows);
        let mut scratch = Vec::new();
        for row in 0..rows {
            let has = encode_key_row(keys, row, &mut scratch)?;
            group_keys.push(has.then(|| scratch.clone()));
        }
        // The bucket starts each (series, rule) is read for, over every read and row of it,
        // so that two windows of one rule load its tiles once.
        let mut ranges: HashMap<(usize, usize), (i64, i64)> = HashMap::new();
        for (read, planned) in reads.iter().zip(&plan.per_read) {
            let series = &self.series[planned.series];
            let slot = series.rule_slot(read.rule)?;
            let span = series.layouts[slot.layout].span;
            let range = ranges
                .entry((planned.series, slot.stored))
                .or_insert((i64::MAX, i64::MIN));
            for &t in times_ms {
                let (first, edge) = point_window(span, t, read.window_ms);
                *range = (range.0.min(first), range.1.max(edge));
            }
        }
        let mut loaded: HashMap<(usize, usize), HashMap<Vec<u8>, KeyStates>> = HashMap::new();
        for (read_index, (read, planned)) in reads.iter().zip(&plan.per_read).enumerate() {
            let series = &self.series[planned.series];
            let slot = series.rule_slot(read.rule)?;
            let layout = &series.layouts[slot.layout];
            let span = layout.span;
            let size = span.size_ms();
            let rule = &series.spec.rules[slot.stored].aggregation;
            if let Some(t) = manifest.tiles.iter().find(|t| {
                t.series_id == series.spec.id
                    && t.bucket_size_ms == size
                    && t.bucket_origin_ms != span.origin_ms()
            }) {
                return Err(invalid_batch(format!(
                    "offline tiles: series '{}' has {size} ms buckets from origin {} ms, and tile {} was written with origin {} ms",
                    series.spec.id,
                    span.origin_ms(),
                    t.sequence,
                    t.bucket_origin_ms
                )));
            }
            // The windows of every row, and the ones no tile covers.
            let mut windows = Vec::with_capacity(rows);
            for (row, &t) in times_ms.iter().enumerate() {
                let (first, edge) = point_window(span, t, read.window_ms);
                windows.push((first, edge));
                let cell = row * reads.len() + read_index;
                if let Some(e) = explanations.as_mut() {
                    e[cell].first_bucket_start = first;
                    e[cell].last_bucket_start = edge - size;
                }
                if let Some((from, to)) =
                    manifest.first_gap(&series.spec.id, size, rule, (first, edge))
                {
                    uncovered.push(UncoveredWindow {
                        cell,
                        from_ms: from,
                        to_ms: to,
                    });
                }
            }
            let key = (planned.series, slot.stored);
            let states = match loaded.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(self.tile_states(
                    dir,
                    &manifest,
                    series,
                    size,
                    rule,
                    ranges[&key],
                    &group_keys,
                )?),
            };
            for (row, &(first, edge)) in windows.iter().enumerate() {
                let Some(key) = &group_keys[row] else {
                    continue;
                };
                let Some(list) = states.get(key) else {
                    continue;
                };
                let from = list.partition_point(|(s, _)| *s < first);
                let mut acc: Option<AggState> = None;
                let mut merged = 0u32;
                for (start, state) in &list[from..] {
                    if *start >= edge {
                        break;
                    }
                    match &mut acc {
                        Some(a) => a.merge(state).map_err(|e| corrupt_tile(series, e))?,
                        empty => *empty = Some(state.clone()),
                    }
                    merged += 1;
                }
                let cell = row * reads.len() + read_index;
                if let Some(acc) = acc {
                    values[cell] = acc.evaluate();
                }
                if let Some(e) = explanations.as_mut() {
                    e[cell].buckets_merged = merged;
                }
            }
        }
        uncovered.sort_by_key(|u| u.cell);
        Ok(TilePointAnswer {
            answer: PointAnswer {
                values,
                explanations,
                stale: Vec::new(),
            },
            uncovered,
        })
    }

    /// The states of one rule's tiles with bucket starts in `[lo, hi)`, for the group keys
    /// asked, each key's in bucket order: a bucket is read from the newest tile of the rule
    /// covering it, and the rows of one bucket within that tile merge.
    #[allow(clippy::too_many_arguments)]
    fn tile_states(
        &self,
        dir: &Path,
        manifest: &TileManifest,
        series: &SeriesLayout,
        size: i64,
        rule: &AggregationSpec,
        (lo, hi): (i64, i64),
        group_keys: &[Option<Vec<u8>>],
    ) -> StoreResult<HashMap<Vec<u8>, KeyStates>> {
        let wanted: std::collections::HashSet<&[u8]> =
            group_keys.iter().flatten().map(Vec::as_slice).collect();
        let name = rule_name(rule);
        let tiles: Vec<&TileEntry> = manifest.tiles_of(&series.spec.id, size, rule).collect();
        let mut out: HashMap<Vec<u8>, KeyStates> = HashMap::new();
        for (i, tile) in tiles.iter().enumerate() {
            if tile.end_ms <= lo || tile.start_ms >= hi {
                continue;
            }
            let newer = &tiles[..i];
            for file in &tile.files {
                let rows = read_tile_file(&dir.join(file))?;
                for r in 0..rows.bucket_start.len() {
                    let start = rows.bucket_start[r];
                    if start < lo
                        || start >= hi
                        || start < tile.start_ms
                        || start >= tile.end_ms
                        || rows.rule[r].data() != name.as_bytes()
                        || !wanted.contains(rows.group_key[r].data())
                        || newer
                            .iter()
                            .any(|n| start >= n.start_ms && start < n.end_ms)
                    {
                        continue;
                    }
                    let (state, _) = AggState::decode(rows.state[r].data())
                        .map_err(|e| corrupt_tile(series, e))?;
                    out.entry(rows.group_key[r].data().to_vec())
                        .or_default()
                        .push((start, state));
                }
            }
        }
        for list in out.values_mut() {
            // Stable: rows of one bucket keep their order (they came from one tile).
            list.sort_by_key(|(start, _)| *start);
            let mut merged: KeyStates = Vec::with_capacity(list.len());
            for (start, state) in list.drain(..) {
                match merged.last_mut() {
                    Some((s, acc)) if *s == start => {
                        acc.merge(&state).map_err(|e| corrupt_tile(series, e))?;
                    }
                    _ => merged.push((start, state)),
                }
            }
            *list = merged;
        }
        Ok(out)
    }
}

impl BucketStore {
    /// For each layout: where the offline tiles of `dir` cover all its active rules up to
    /// (the latest end of each rule's tiles, the lowest over the rules), or `None` when a
    /// rule has no tile. A scheduled offline backfill starts there.
    pub fn tile_covered_end(
        &self,
        dir: &Path,
        layouts: &[crate::backfill::BackfillLayout],
    ) -> StoreResult<Vec<Option<i64>>> {
        let manifest = TileManifest::read(dir)?;
        layouts
            .iter()
            .map(|wanted| {
                let series = &self.series[self.series_index(&wanted.series_id)?];
                let layout = series.layout_of_size(wanted.bucket_size_ms)?;
                let rules: Vec<AggregationSpec> = series
                    .active_rules(layout)
                    .map(|r| series.spec.rules[r].aggregation.clone())
                    .collect();
                Ok(manifest.covered_end(&series.spec.id, wanted.bucket_size_ms, &rules))
            })
            .collect()
    }
}

fn corrupt_tile(series: &SeriesLayout, e: tessera_core::CoreError) -> StoreError {
    StoreError::new(
        StoreErrorKind::Core(e.kind),
        format!(
            "series '{}': an offline tile cannot be read: {}",
            series.spec.id, e.message
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sequence: u64, start_ms: i64, end_ms: i64, rule: &str) -> TileEntry {
        TileEntry {
            sequence,
            series_id: "s".into(),
            bucket_size_ms: 10,
            bucket_origin_ms: 0,
            rules: vec![AggregationSpec {
                kind: rule.into(),
                ..AggregationSpec::default()
            }],
            start_ms,
            end_ms,
            files: Vec::new(),
            rows: 0,
            written_ms: 0,
        }
    }

    #[test]
    fn the_first_gap_is_the_first_range_no_tile_of_the_rule_covers() {
        let sum = AggregationSpec {
            kind: "sum".into(),
            ..AggregationSpec::default()
        };
        let manifest = TileManifest {
            format: TILE_FORMAT_VERSION,
            tiles: vec![
                entry(1, 0, 30, "sum"),
                entry(2, 50, 80, "sum"),
                entry(3, 30, 50, "count"),
                entry(4, 20, 40, "sum"),
            ],
        };
        assert_eq!(manifest.first_gap("s", 10, &sum, (0, 40)), None);
        assert_eq!(manifest.first_gap("s", 10, &sum, (10, 70)), Some((40, 50)));
        assert_eq!(
            manifest.first_gap("s", 10, &sum, (60, 100)),
            Some((80, 100))
        );
        assert_eq!(manifest.first_gap("s", 20, &sum, (0, 10)), Some((0, 10)));
        assert_eq!(manifest.first_gap("t", 10, &sum, (0, 10)), Some((0, 10)));
        assert_eq!(
            manifest.covered_end("s", 10, std::slice::from_ref(&sum)),
            Some(80)
        );
        let count = AggregationSpec {
            kind: "count".into(),
            ..AggregationSpec::default()
        };
        assert_eq!(
            manifest.covered_end("s", 10, &[sum, count.clone()]),
            Some(50)
        );
        let max = AggregationSpec {
            kind: "max".into(),
            ..AggregationSpec::default()
        };
        assert_eq!(manifest.covered_end("s", 10, &[count, max]), None);
    }

    #[test]
    fn a_manifest_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(TILE_MANIFEST),
            r#"{"format": 99, "tiles": []}"#,
        )
        .unwrap();
        let error = TileManifest::read(dir.path()).unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::IncompatibleFormat);
        assert!(error.message.contains("format 99"), "{}", error.message);
        assert_eq!(
            TileManifest::read(&dir.path().join("none")).unwrap().tiles,
            Vec::new()
        );
    }
}
