//! Offline tiles (docs/semantics.md section 11.2): random backfill runs write tiles only
//! (the store keeps nothing), and every point read from the tiles equals a model of the
//! runs' raw rows: per bucket, the newest tile covering it, whatever the spills; a window
//! that reaches a bucket no tile covers is reported with its first uncovered range.

use std::collections::BTreeSet;

use tessera_core::AggValue;
use tessera_store::{
    AggregationSpec, BackfillLayout, BackfillOptions, BucketStore, KeyColumn, RuleSpec,
    SeriesBatch, SeriesSpec, StoreOptions, TileManifest, TileTarget, ValueColumn, ValueKind,
    WindowRead,
};

mod common;
use common::TestRng;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const KEYS: u64 = 6;
/// Hourly on the epoch, and 6-hourly from a 90-minute origin; rules sum then count each.
const LAYOUTS: [(i64, i64); 2] = [(HOUR, 0), (6 * HOUR, 90 * 60_000)];

fn series() -> SeriesSpec {
    let mut rules = Vec::new();
    for (size, origin) in LAYOUTS {
        for kind in ["sum", "count"] {
            rules.push(RuleSpec {
                aggregation: AggregationSpec {
                    kind: kind.into(),
                    ..Default::default()
                },
                bucket_size_ms: size,
                bucket_origin_ms: origin,
                // Short: the tiles must answer far past it.
                retention_ms: DAY,
            });
        }
    }
    SeriesSpec {
        id: "s".into(),
        value_kind: ValueKind::Number,
        vector_dim: None,
        rules,
    }
}

type Row = (u64, i64, f64);

fn start_of(t: i64, (size, origin): (i64, i64)) -> i64 {
    (t - origin).div_euclid(size) * size + origin
}

/// One recorded tile of the model: its layout, range and rows.
struct ModelTile {
    layout: usize,
    range: (i64, i64),
    rows: Vec<Row>,
}

/// The expected (sum, count) of `key` over the buckets `[first, edge)` of `layout`, or
/// the first uncovered range.
fn expected(
    tiles: &[ModelTile],
    layout: usize,
    key: u64,
    (first, edge): (i64, i64),
) -> Result<(Option<f64>, u64), (i64, i64)> {
    let (size, _) = LAYOUTS[layout];
    let mut gap: Option<(i64, i64)> = None;
    let (mut sum, mut count, mut any) = (0.0, 0u64, false);
    let mut s = first;
    while s < edge {
        let newest = tiles
            .iter()
            .rev()
            .find(|t| t.layout == layout && s >= t.range.0 && s < t.range.1);
        match newest {
            None => {
                gap = Some(match gap {
                    None => (s, s + size),
                    Some((from, to)) if to == s => (from, s + size),
                    Some(g) => g,
                });
            }
            Some(tile) => {
                for &(k, t, v) in &tile.rows {
                    if k == key && start_of(t, LAYOUTS[layout]) == s && !v.is_nan() {
                        sum += v;
                        count += 1;
                        any = true;
                    }
                }
            }
        }
        s += size;
    }
    match gap {
        Some(g) => Err(g),
        None => Ok((any.then_some(sum), count)),
    }
}

#[test]
fn points_read_from_random_tiles_equal_the_newest_tile_of_each_bucket() {
    for seed in 0..5u64 {
        let store_dir = tempfile::tempdir().unwrap();
        let tile_dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::default();
        options.clock.pin(Some(NOW));
        let (store, _) = BucketStore::open(store_dir.path(), vec![series()], options).unwrap();
        let mut rng = TestRng(seed * 104_729 + 3);
        let mut tiles: Vec<ModelTile> = Vec::new();
        let layouts: Vec<BackfillLayout> = LAYOUTS
            .iter()
            .map(|&(size, _)| BackfillLayout {
                series_id: "s".into(),
                bucket_size_ms: size,
            })
            .collect();
        for step in 0..7 {
            let lower = NOW - 10 * DAY + rng.below(8 * DAY as u64) as i64;
            let upper = lower + HOUR + rng.below(2 * DAY as u64) as i64;
            let ranges = store
                .backfill_ranges(&layouts, Some(lower), Some(upper))
                .unwrap();
            let from = ranges.iter().map(|r| r.start_ms).min().unwrap();
            let to = ranges.iter().map(|r| r.end_ms).max().unwrap();
            let keys: Vec<u64> = (0..KEYS).filter(|_| rng.below(3) > 0).collect();
            let n = if keys.is_empty() {
                0
            } else {
                rng.below(90) as usize
            };
            let rows: Vec<Row> = (0..n)
                .map(|_| {
                    let key = keys[rng.below(keys.len() as u64) as usize];
                    let t = from - HOUR + rng.below((to - from + 2 * HOUR) as u64) as i64;
                    let v = if rng.below(8) == 0 {
                        f64::NAN
                    } else {
                        rng.below(40) as f64 * 0.25
                    };
                    (key, t, v)
                })
                .collect();
            let allow_empty = rng.below(2) == 0;
            let mut run = store
                .begin_backfill(
                    &ranges,
                    BackfillOptions {
                        spill_buckets: 1 + rng.below(10) as usize,
                        online: false,
                        tiles: Some(TileTarget {
                            dir: tile_dir.path().to_path_buf(),
                            allow_empty,
                        }),
                    },
                )
                .unwrap();
            for chunk in rows.chunks(9) {
                let k: Vec<f64> = chunk.iter().map(|r| r.0 as f64).collect();
                let t: Vec<f64> = chunk.iter().map(|r| r.1 as f64).collect();
                let v: Vec<f64> = chunk.iter().map(|r| r.2).collect();
                run.fold(&[SeriesBatch {
                    series_id: "s",
                    keys: vec![KeyColumn::Ints(&k)],
                    timestamps_ms: &t,
                    values: ValueColumn::Numbers(&v),
                    by: None,
                    selection: None,
                }])
                .unwrap();
            }
            let report = run.finish(&store).unwrap();
            let mut recorded = 0;
            for (l, range) in ranges.iter().enumerate() {
                let inside: Vec<Row> = rows
                    .iter()
                    .copied()
                    .filter(|r| {
                        let s = start_of(r.1, LAYOUTS[l]);
                        r.1 >= from && r.1 < to && s >= range.start_ms && s < range.end_ms
                    })
                    .collect();
                // A layout gets a tile when a bucket of its range held a value, or always
                // with allow_empty.
                let has_state = inside.iter().any(|r| !r.2.is_nan());
                if has_state || allow_empty {
                    tiles.push(ModelTile {
                        layout: l,
                        range: (range.start_ms, range.end_ms),
                        rows: inside,
                    });
                    recorded += 1;
                }
            }
            assert_eq!(report.tiles_written, recorded, "seed {seed} step {step}");
            // The store itself holds nothing of an offline run.
            let k = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
            assert!(store
                .read_buckets("s", &[KeyColumn::Ints(&k[..1])], NOW - 20 * DAY, NOW)
                .unwrap()
                .is_empty());

            // Random points, far past retention too; every rule, windows of 1h to 3d.
            let points = 40;
            let point_keys: Vec<f64> = (0..points).map(|_| rng.below(KEYS) as f64).collect();
            let times: Vec<i64> = (0..points)
                .map(|_| NOW - 12 * DAY + rng.below(12 * DAY as u64) as i64)
                .collect();
            let windows = [HOUR, 6 * HOUR, DAY, 3 * DAY];
            let reads: Vec<WindowRead> = (0..4)
                .map(|rule| WindowRead {
                    series_id: "s".into(),
                    rule,
                    window_ms: windows[rng.below(4) as usize],
                })
                .collect();
            let answer = store
                .read_points_from_tiles(
                    tile_dir.path(),
                    &[KeyColumn::Ints(&point_keys)],
                    &times,
                    &reads,
                    false,
                )
                .unwrap();
            let mut uncovered = BTreeSet::new();
            for u in &answer.uncovered {
                uncovered.insert((u.cell, u.from_ms, u.to_ms));
            }
            for row in 0..points {
                for (r, read) in reads.iter().enumerate() {
                    let layout = read.rule / 2;
                    let span = LAYOUTS[layout];
                    let edge = start_of(times[row], span);
                    let first = start_of(edge - read.window_ms, span);
                    let cell = row * reads.len() + r;
                    let context = format!(
                        "seed {seed} step {step}: key {} at {} rule {} window {}",
                        point_keys[row], times[row], read.rule, read.window_ms
                    );
                    match expected(&tiles, layout, point_keys[row] as u64, (first, edge)) {
                        Err((from, to)) => {
                            assert!(
                                uncovered.contains(&(cell, from, to)),
                                "{context}: gap {from}..{to} not reported: {:?}",
                                answer.uncovered
                            );
                        }
                        Ok((sum, count)) => {
                            assert!(
                                !answer.uncovered.iter().any(|u| u.cell == cell),
                                "{context}: reported uncovered"
                            );
                            let value = &answer.answer.values[cell];
                            let want = if read.rule % 2 == 0 {
                                sum.map_or(AggValue::Null, AggValue::Number)
                            } else {
                                AggValue::Count(count)
                            };
                            assert_eq!(value, &want, "{context}");
                        }
                    }
                }
            }
        }
        // The manifest lists every tile, with files DuckDB (or anything) can read.
        let manifest = TileManifest::read(tile_dir.path()).unwrap();
        assert_eq!(manifest.tiles.len(), tiles.len(), "seed {seed}");
        for tile in &manifest.tiles {
            for file in &tile.files {
                let bytes = std::fs::read(tile_dir.path().join(file)).unwrap();
                assert_eq!(&bytes[..4], b"PAR1");
            }
        }
    }
}
