//! The Prometheus HTTP API client the live engine reads metrics with.
//!
//! - [`settings`]: [`ClientSettings`] (URL, timeout, auth, CA, limits).
//! - [`client`]: [`PromClient`]: instant and range queries, readiness.
//! - [`types`]: what queries return ([`RangeSeries`], [`InstantSample`],
//!   [`QueryResult`]).
//! - [`error`]: [`PromError`] with a metric-friendly kind and whether
//!   retrying can help.
//! - [`response`]: parsing the JSON envelope ([`response::parse`]), with
//!   bounded warnings and error messages.
//! - [`narrow`]: a rule's expression narrowed to one of its series.
//! - `chunk`, `retry`: splitting long ranges under Prometheus's 11,000-point
//!   limit, backoff with full jitter.

mod chunk;
pub mod client;
pub mod error;
pub mod narrow;
pub mod response;
mod retry;
pub mod settings;
pub mod types;

pub use client::PromClient;
pub use error::PromError;
pub use settings::{ClientSettings, DEFAULT_MAX_RESPONSE_BYTES, PROMETHEUS_MAX_POINTS};
pub use types::{InstantSample, Labels, QueryResult, RangeSeries};
