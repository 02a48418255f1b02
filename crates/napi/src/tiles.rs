//! Offline tiles across the boundary (`crates/store/src/tiles.rs`): point-in-time reads
//! from a tile directory, and how far its tiles cover each layout.

use napi::bindgen_prelude::{AsyncTask, Float64Array};
use napi_derive::napi;
use tessera_store::BackfillLayout;

use crate::backfill::BackfillLayoutInput;
use crate::conversions::{key_columns, window_reads};
use crate::description::whole_ms;
use crate::engine::{point_times, query_result, reading, NativeEngine, Shared};
use crate::error::from_store;
use crate::objects::{KeyPart, WindowQueryResult, WindowReadInput};
use crate::tasks::StoreTask;

/// Windows read from offline tiles, one time per key (docs/semantics.md section 11.2).
#[napi(object)]
pub struct TilePointQuery {
    pub keys: Vec<KeyPart>,
    /// One time per key row, Unix ms.
    pub times_ms: Float64Array,
    pub reads: Vec<WindowReadInput>,
    /// The tile directory.
    pub tile_dir: String,
    pub explain: Option<bool>,
}

/// A cell whose window reaches buckets no tile of its rule covers.
#[napi(object)]
pub struct UncoveredWindowOutput {
    /// `row * reads + read`.
    pub cell: u32,
    /// The first uncovered range of bucket starts, `[fromMs, toMs)`.
    pub from_ms: f64,
    pub to_ms: f64,
}

/// The answer to a point-in-time read from tiles.
#[napi(object)]
pub struct TilePointResult {
    pub answer: WindowQueryResult,
    pub uncovered: Vec<UncoveredWindowOutput>,
}

fn run_tile_query(store: &Shared, query: &TilePointQuery) -> napi::Result<TilePointResult> {
    reading(store, |store| {
        let keys = key_columns(&query.keys)?;
        let reads = window_reads(&query.reads)?;
        let times = point_times(&query.times_ms)?;
        let found = store
            .read_points_from_tiles(
                query.tile_dir.as_ref(),
                &keys,
                &times,
                &reads,
                query.explain.unwrap_or(false),
            )
            .map_err(from_store)?;
        Ok(TilePointResult {
            uncovered: found
                .uncovered
                .iter()
                .map(|u| UncoveredWindowOutput {
                    cell: u.cell as u32,
                    from_ms: u.from_ms as f64,
                    to_ms: u.to_ms as f64,
                })
                .collect(),
            answer: query_result(found.answer.values, found.answer.explanations, reads.len()),
        })
    })
}

#[napi]
impl NativeEngine {
    /// Reads windows for many keys, each at its own time, from the offline tiles of
    /// `tileDir` (the materialized mode's windows), on the libuv pool.
    #[napi(ts_return_type = "Promise<TilePointResult>")]
    pub fn query_tiles_async(
        &self,
        query: TilePointQuery,
    ) -> AsyncTask<StoreTask<TilePointResult>> {
        let store = self.store.clone();
        AsyncTask::new(StoreTask::new("queryTiles", move || {
            run_tile_query(&store, &query)
        }))
    }

    /// For each layout: up to where the tiles of `tileDir` cover all its rules, or null
    /// when a rule has no tile.
    #[napi(catch_unwind)]
    pub fn tile_covered_end(
        &self,
        tile_dir: String,
        layouts: Vec<BackfillLayoutInput>,
    ) -> napi::Result<Vec<Option<f64>>> {
        let layouts = layouts
            .into_iter()
            .map(|l| {
                Ok(BackfillLayout {
                    bucket_size_ms: whole_ms(l.bucket_size_ms, "bucketSizeMs", &l.series_id)?,
                    series_id: l.series_id,
                })
            })
            .collect::<napi::Result<Vec<_>>>()?;
        reading(&self.store, |store| {
            store
                .tile_covered_end(tile_dir.as_ref(), &layouts)
                .map(|ends| ends.into_iter().map(|e| e.map(|v| v as f64)).collect())
                .map_err(from_store)
        })
    }
}
