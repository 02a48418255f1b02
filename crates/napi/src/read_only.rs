//! `NativeEngine.openReadOnly`: the store of a directory that another process may hold
//! (a `tessera serve`, a stream), opened as a RocksDB secondary instance (see
//! `tessera_store::read_only`). The engine it returns reads like any other; it sees the
//! commits made before it was opened, and its writes fail.

use std::sync::{Arc, RwLock};

use napi_derive::napi;
use tessera_store::{BucketStore, StoreOptions};

use crate::engine::NativeEngine;
use crate::error::{from_store, guard};

#[napi]
impl NativeEngine {
    /// Opens the store at `path` for reading without taking its lock. Every stored
    /// series is active; the open report lists them all as kept, with their summaries.
    #[napi(factory, catch_unwind)]
    pub fn open_read_only(path: String) -> napi::Result<Self> {
        guard("openReadOnly", || {
            let options = StoreOptions::default();
            let clock = options.clock.clone();
            let (store, report) =
                BucketStore::open_read_only(&path, options).map_err(from_store)?;
            Ok(Self {
                store: Arc::new(RwLock::new(Some(store))),
                clock,
                report,
            })
        })
    }
}
