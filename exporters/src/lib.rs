//! Instrumentation for the services prognos watches (Shop_API, CRM_API,
//! MES_API): the RED metrics of the monitoring plan (rate, errors, duration,
//! plus user vs system traffic), the saturation gauge `http_requests_in_flight`
//! and the process CPU and memory metrics — as a counter, a gauge, a histogram
//! and a summary, the four types the plan names.
//!
//! The names below are the contract: a service written in another language
//! should export the same names, labels and label values, so that the
//! prognos rules and the Grafana dashboards work for it unchanged.
//!
//! # Metrics
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `http_requests_total` | counter | `route`, `method`, `code`, `caller` | requests answered |
//! | `http_requests_in_flight` | gauge | — | requests being processed |
//! | `http_request_duration_seconds` | histogram | `route`, `method` | latency; buckets 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10 s |
//! | `http_request_duration_summary_seconds` | summary | `route`, `method` (+ `quantile`) | latency quantiles 0.5, 0.9, 0.99 over the last 10 min; cumulative `_sum`, `_count` |
//! | `process_cpu_seconds_total` | counter | — | user + system CPU time, seconds |
//! | `process_resident_memory_bytes` | gauge | — | resident set size |
//! | `process_virtual_memory_bytes` | gauge | — | virtual memory size |
//! | `process_open_fds` | gauge | — | open file descriptors |
//! | `process_max_fds` | gauge | — | soft limit on file descriptors |
//! | `process_start_time_seconds` | gauge | — | process start, Unix seconds |
//!
//! The `process_*` names are the ones every official Prometheus client
//! library exports; most languages get them for free.
//!
//! # Labels
//!
//! | label | values |
//! | --- | --- |
//! | `route` | the route *template* that matched (`/orders/{id}`), never the raw path (`/orders/42`): cardinality; `unmatched` when no route matched (404s of unknown paths) |
//! | `method` | upper-case HTTP method (`GET`, `POST`, …); non-standard methods are `OTHER` |
//! | `code` | numeric HTTP status (`200`, `404`, `500`); a handler panic is `500` |
//! | `caller` | `system` when the request header `X-Caller-Kind` is `system` (case-insensitive), otherwise `user` — callers that are services, jobs or probes should send `X-Caller-Kind: system` |
//!
//! Durations are in seconds, measured from the request reaching the
//! instrumentation until the response head is ready.
//!
//! # Queries the plan asks for
//!
//! * RPS: `sum(rate(http_requests_total[5m]))`
//! * user RPS: `sum(rate(http_requests_total{caller="user"}[5m]))`
//! * HTTP 500s: `sum(increase(http_requests_total{code="500"}[5m]))`
//! * p99 latency: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`
//! * CPU %: `100 * rate(process_cpu_seconds_total[5m])`; memory: `process_resident_memory_bytes`
//!
//! # Use (axum)
//!
//! See [`http`]: create [`http::HttpMetrics`] on a registry, add
//! [`http::layer`] to the router, call [`process::register`], and add
//! `/metrics` with [`serve::with_metrics`]. The OpenMetrics text is produced by
//! [`serve::encode_text`], which also writes the summaries (prometheus-client
//! 0.25 has no summary type; see [`summary`]).

pub mod http;
pub mod process;
pub mod serve;
pub mod summary;
