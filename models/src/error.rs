//! The error type of the models crate.

/// Errors raised by the models. Each message shows the bad value and what is allowed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// Not enough (non-missing) points for the requested model.
    #[error("{model} needs at least {needed} points, got {got}")]
    TooShort {
        model: &'static str,
        needed: usize,
        got: usize,
    },
    /// A parameter outside its allowed range.
    #[error("invalid {name} {value}: {allowed}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// Input points that cannot form a series.
    #[error("invalid series: {0}")]
    InvalidSeries(String),
    /// A model from augurs failed.
    #[error("fitting {model}: {message}")]
    Fit {
        model: &'static str,
        message: String,
    },
}

/// Result with the models crate's error.
pub type Result<T> = std::result::Result<T, Error>;
