//! Where the engine reads series from: the [`Source`] trait, answered by
//! Prometheus ([`PromClient`]) in production and by [`memory::MemorySource`]
//! (a PromQL subset over samples held in memory) when rules are replayed over
//! the labelled incident suite. The engine cannot tell them apart, so
//! `prognos eval alerts` measures the code `prognos run` runs.

pub mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::prom::{InstantSample, PromClient, PromError, QueryResult, RangeSeries};

/// A query's answer, boxed so the trait can be used as `dyn Source`.
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PromError>> + Send + 'a>>;

/// Answers PromQL range and instant queries.
pub trait Source: Send + Sync {
    /// `expr` evaluated at every `step` seconds from `start` to `end`
    /// (Unix seconds, inclusive), one series per label set.
    fn query_range<'a>(
        &'a self,
        expr: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> SourceFuture<'a, QueryResult<Vec<RangeSeries>>>;

    /// `expr` evaluated at `time` (the source's "now" when `None`).
    fn query<'a>(
        &'a self,
        expr: &'a str,
        time: Option<i64>,
    ) -> SourceFuture<'a, QueryResult<Vec<InstantSample>>>;

    /// Whether it evaluates full PromQL, so that one series' history can be
    /// asked for alone ([`crate::prom::narrow::one_series`]); a source that
    /// cannot answers the whole expression, filtered by the caller.
    fn full_promql(&self) -> bool {
        false
    }
}

impl Source for PromClient {
    fn query_range<'a>(
        &'a self,
        expr: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> SourceFuture<'a, QueryResult<Vec<RangeSeries>>> {
        Box::pin(PromClient::query_range(self, expr, start, end, step))
    }

    fn query<'a>(
        &'a self,
        expr: &'a str,
        time: Option<i64>,
    ) -> SourceFuture<'a, QueryResult<Vec<InstantSample>>> {
        Box::pin(PromClient::query(self, expr, time))
    }

    fn full_promql(&self) -> bool {
        true
    }
}

impl<S: Source + ?Sized> Source for Arc<S> {
    fn query_range<'a>(
        &'a self,
        expr: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> SourceFuture<'a, QueryResult<Vec<RangeSeries>>> {
        (**self).query_range(expr, start, end, step)
    }

    fn query<'a>(
        &'a self,
        expr: &'a str,
        time: Option<i64>,
    ) -> SourceFuture<'a, QueryResult<Vec<InstantSample>>> {
        (**self).query(expr, time)
    }

    fn full_promql(&self) -> bool {
        (**self).full_promql()
    }
}
