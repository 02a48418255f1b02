//! Errors of the store layer: a stable code plus a message naming the series, key or
//! file that was wrong. Core errors keep their own codes.

use std::fmt;
use tessera_core::CoreError;

/// Stable codes of store errors, shown to users and mapped to error classes in TypeScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A core error (bad duration, bad aggregation, corrupt state, ...); the code is the core's.
    Core(tessera_core::CoreErrorKind),
    /// The directory was written by an incompatible format version.
    IncompatibleFormat,
    /// The store description (series, rules) is not usable.
    InvalidDescription,
    /// An ingest batch or a query does not fit the store description.
    InvalidBatch,
    /// A series id that the store does not know.
    UnknownSeries,
    /// RocksDB reported an error (I/O, corruption, lock held by another process).
    Storage,
    /// The store was closed.
    Closed,
}

impl StoreErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Core(kind) => kind.code(),
            Self::IncompatibleFormat => "INCOMPATIBLE_FORMAT",
            Self::InvalidDescription => "INVALID_DESCRIPTION",
            Self::InvalidBatch => "INVALID_BATCH",
            Self::UnknownSeries => "UNKNOWN_SERIES",
            Self::Storage => "STORAGE",
            Self::Closed => "CLOSED",
        }
    }
}

/// An error of the store layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<CoreError> for StoreError {
    fn from(e: CoreError) -> Self {
        Self::new(StoreErrorKind::Core(e.kind), e.message)
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        Self::new(StoreErrorKind::Storage, e.into_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

pub(crate) fn invalid_batch(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::InvalidBatch, message)
}

pub(crate) fn invalid_description(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::InvalidDescription, message)
}
