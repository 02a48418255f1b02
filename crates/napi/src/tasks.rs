//! The one async task of the binding: a closure over the shared store, run on the libuv
//! pool (`compute`) and handed back to JavaScript as a promise (`resolve`), with panics
//! turned into `[INTERNAL]` errors as for synchronous calls.

use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::error::guard;

type StoreWork<T> = Box<dyn FnOnce() -> napi::Result<T> + Send>;

/// Work on the store off the JavaScript thread.
pub struct StoreTask<T> {
    name: &'static str,
    work: Option<StoreWork<T>>,
}

impl<T> StoreTask<T> {
    pub(crate) fn new(
        name: &'static str,
        work: impl FnOnce() -> napi::Result<T> + Send + 'static,
    ) -> Self {
        Self {
            name,
            work: Some(Box::new(work)),
        }
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for StoreTask<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let work = self.work.take().ok_or_else(|| {
            crate::error::js_error("INTERNAL", format!("{} ran twice", self.name))
        })?;
        guard(self.name, work)
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }
}
