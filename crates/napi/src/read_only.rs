//! `NativeEngine.openReadOnly`: the store of a directory that another process may hold
//! (a `tessera serve`, a stream), opened as a RocksDB secondary instance (see
//! `tessera_store::read_only`). The engine it returns reads like any other; it sees the
//! commits made before it was opened, and its writes fail.

use std::sync::{Arc, RwLock};

use napi_derive::napi;
use tessera_store::{BucketStore, StoreOptions};

use crate::description::StoreDescription;
use crate::engine::NativeEngine;
use crate::error::{from_store, guard};

#[napi]
impl NativeEngine {
    /// Opens the store at `path` for reading without taking its lock. Without a
    /// description every stored series is active and the open report lists them all as
    /// kept, with their summaries. With one, the report and the coverage are what opening
    /// the store for it would find and record, and reads take its rule indexes; nothing
    /// is written.
    #[napi(factory, catch_unwind)]
    pub fn open_read_only(
        path: String,
        description: Option<StoreDescription>,
    ) -> napi::Result<Self> {
        guard("openReadOnly", || {
            let options = StoreOptions::default();
            let clock = options.clock.clone();
            let (store, report) = match description {
                None => BucketStore::open_read_only(&path, options),
                Some(d) => BucketStore::open_read_only_described(&path, d.into_specs()?, options),
            }
            .map_err(from_store)?;
            Ok(Self {
                store: Arc::new(RwLock::new(Some(store))),
                clock,
                report,
            })
        })
    }
}
