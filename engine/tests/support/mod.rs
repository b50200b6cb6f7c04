//! Shared harness of the integration tests: a real Prometheus on loopback
//! with backfilled history, OpenMetrics text to backfill, and a canned HTTP
//! peer for error cases. Use it with `mod support;`.
//!
//! - [`prometheus`]: [`Prometheus`] started from `/usr/bin/prometheus` and
//!   `promtool` (Debian's `prometheus` package, `scripts/install-deps`).
//! - [`openmetrics`]: [`openmetrics_gauges`] writes the text `promtool`
//!   backfills.
//! - [`http_peer`]: [`CannedPeer`] answers every request with one fixed
//!   response (a proxy's HTML page, a 503).
//! - [`webhook`]: [`WebhookReceiver`], an idempotent webhook receiver that
//!   records what it gets.
//! - [`child`]: [`Prognos`], `prognos run` as a child killed on drop, and
//!   [`eventually`].
//! - [`dashboards`]: [`dashboard_queries`], the PromQL of the Grafana
//!   dashboards with Grafana's variables substituted.
//! - [`webdriver`]: [`webdriver::Browser`], Debian's headless Chromium
//!   driven through chromedriver, for the web UI's tests.
//! - [`deploy`]: the deployment tests' helpers: the compose file, the
//!   rendered Kubernetes manifests, the files their containers mount, and
//!   the promtool, amtool and `prognos check` runs.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod child;
pub mod dashboards;
pub mod deploy;
pub mod http_peer;
pub mod openmetrics;
pub mod prometheus;
pub mod webdriver;
pub mod webhook;

pub use child::{Prognos, eventually};
pub use dashboards::{DashboardQuery, dashboard_queries};
pub use http_peer::CannedPeer;
pub use openmetrics::{GaugeSeries, disk_filling, now_secs, openmetrics_gauges};
pub use prometheus::{Prometheus, free_port};
pub use webhook::WebhookReceiver;
