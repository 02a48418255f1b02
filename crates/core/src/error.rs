//! Errors of the core layer. Each carries a stable code so that the binding can map it
//! to a TypeScript error class, and a message that names what was wrong.

use std::fmt;

/// What kind of problem a [`CoreError`] reports. Codes are stable strings shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreErrorKind {
    /// A duration string could not be parsed.
    InvalidDuration,
    /// A bucket size or origin is not usable.
    InvalidBucket,
    /// An aggregation's arguments are out of range (n = 0, quantile > 1, ...).
    InvalidAggregation,
    /// An encoded state could not be decoded: truncated, corrupted or of an unknown version.
    CorruptState,
    /// Two states of different kinds or parameters were merged.
    StateMismatch,
    /// An input value does not fit the aggregation (wrong vector dimension, ...).
    InvalidInput,
}

impl CoreErrorKind {
    /// The stable code of this kind, e.g. `"INVALID_DURATION"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidDuration => "INVALID_DURATION",
            Self::InvalidBucket => "INVALID_BUCKET",
            Self::InvalidAggregation => "INVALID_AGGREGATION",
            Self::CorruptState => "CORRUPT_STATE",
            Self::StateMismatch => "STATE_MISMATCH",
            Self::InvalidInput => "INVALID_INPUT",
        }
    }
}

/// An error of the core layer: a kind with a code plus a message naming the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError {
    pub kind: CoreErrorKind,
    pub message: String,
}

impl CoreError {
    pub fn new(kind: CoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(CoreErrorKind::CorruptState, message)
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
