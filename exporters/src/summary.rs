//! A Prometheus/OpenMetrics **summary** over a sliding time window.
//!
//! `prometheus-client` 0.25 has no summary type: its `MetricType` enum has no
//! `Summary` variant and its encoders have no summary method, so a summary
//! cannot be written through the `Registry` the ordinary way. This module
//! provides
//!
//! * [`SlidingSummary`]: one series — cumulative `_sum`/`_count` plus
//!   quantiles over the last [`SummaryConfig::window`] (10 minutes by default);
//! * [`SummaryFamily`]: a set of summaries keyed by a label set;
//! * [`SummaryFamily::register`]: registers the family in a
//!   [`Registry`] as a collector. The collector writes its OpenMetrics text
//!   (`# TYPE … summary`, `{quantile="…"}`, `_sum`, `_count`) only when the
//!   registry is encoded with [`encode_text`](crate::serve::encode_text) (used
//!   by [`metrics_router`](crate::serve::metrics_router)); with
//!   `prometheus_client::encoding::text::encode` it writes nothing. Register
//!   summaries on the top-level registry: a sub-registry's prefix and labels
//!   are not applied to them.
//!
//! # Window and error bound
//!
//! The window is split into [`SummaryConfig::buckets`] rotating time buckets
//! (default 5 × 2 minutes); a bucket is reused, after clearing, when its time
//! slot comes round again, so the quantiles cover the last 8–10 minutes. Each
//! bucket keeps at most [`SummaryConfig::max_samples`] values (default 2048):
//! all of them while it has seen no more, then a uniform random sample
//! (reservoir sampling, O(1) per observation). At scrape time each kept value
//! is weighted by `seen / kept` of its bucket and the weighted nearest-rank
//! quantile is reported.
//!
//! * While no bucket has seen more than `max_samples` observations (≈ 17
//!   requests/s per series with the defaults) the quantiles are exact
//!   nearest-rank quantiles of the window.
//! * Otherwise, by the Dvoretzky–Kiefer–Wolfowitz inequality each bucket's
//!   sample CDF is within ε = √(ln(2/δ) / 2n) of its true CDF with
//!   probability ≥ 1 − δ; the window's CDF is a weighted mix of the buckets',
//!   so its error is at most the largest bucket's. With n = 2048 and
//!   δ = 10⁻⁴, ε ≈ 0.05: the reported φ-quantile is a true q-quantile of the
//!   window for some q ∈ [φ − 0.05, φ + 0.05] with probability ≥ 99.95 %
//!   (5 buckets). It is a *rank* error: in seconds it is small where the
//!   latency distribution is dense.
//!
//! An empty window reports `NaN` quantiles (as the Go and Python clients do);
//! `_sum` and `_count` are cumulative since start, as OpenMetrics requires.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

/// Shape of a [`SlidingSummary`]: window length, rotation and quantiles.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryConfig {
    /// Length of the sliding window the quantiles cover (default 10 min).
    pub window: Duration,
    /// Number of rotating time buckets the window is split into (default 5).
    pub buckets: usize,
    /// Most values kept per bucket (default 2048); see the module docs for
    /// the error bound this gives.
    pub max_samples: usize,
    /// Quantiles to report, each in `[0, 1]` (default 0.5, 0.9, 0.99).
    pub quantiles: Vec<f64>,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            buckets: 5,
            max_samples: 2048,
            quantiles: vec![0.5, 0.9, 0.99],
        }
    }
}

/// A point-in-time reading of a [`SlidingSummary`].
#[derive(Clone, Debug, PartialEq)]
pub struct SummarySnapshot {
    /// Observations since start (cumulative, the `_count` line).
    pub count: u64,
    /// Sum of observations since start (cumulative, the `_sum` line).
    pub sum: f64,
    /// Observations currently inside the window.
    pub window_count: u64,
    /// `(quantile, value)` pairs over the window; `NaN` values if it is empty.
    pub quantiles: Vec<(f64, f64)>,
}

#[derive(Debug)]
struct Bucket {
    /// Time slot (window-relative bucket number) the contents belong to.
    slot: u64,
    /// Observations offered to this bucket in its slot.
    seen: u64,
    samples: Vec<f64>,
}

#[derive(Debug)]
struct State {
    buckets: Vec<Bucket>,
    count: u64,
    sum: f64,
    rng: u64,
}

/// One summary series: cumulative count and sum, and quantiles over a
/// sliding time window kept in rotating, bounded buckets (see module docs).
///
/// Recording takes one short, uncontended-in-practice mutex section and is
/// O(1); the sorting happens at scrape time, outside the lock. The clock is
/// injectable ([`record_at`](Self::record_at),
/// [`snapshot_at`](Self::snapshot_at)) for tests.
#[derive(Debug)]
pub struct SlidingSummary {
    config: SummaryConfig,
    bucket_nanos: u128,
    origin: Instant,
    state: Mutex<State>,
}

impl Default for SlidingSummary {
    fn default() -> Self {
        Self::new(SummaryConfig::default())
    }
}

impl SlidingSummary {
    /// A summary whose window starts now.
    pub fn new(config: SummaryConfig) -> Self {
        Self::with_origin(config, Instant::now())
    }

    /// A summary whose bucket slots are counted from `origin` (for tests
    /// driving the clock by hand). Zero `buckets`/`max_samples` are raised
    /// to 1 and a zero window to 1 ns.
    pub fn with_origin(mut config: SummaryConfig, origin: Instant) -> Self {
        config.buckets = config.buckets.max(1);
        config.max_samples = config.max_samples.max(1);
        let bucket_nanos = (config.window.as_nanos() / config.buckets as u128).max(1);
        let buckets = (0..config.buckets)
            .map(|_| Bucket {
                slot: 0,
                seen: 0,
                samples: Vec::new(),
            })
            .collect();
        // Seed the reservoir's generator from std's per-process random keys.
        let rng = std::collections::hash_map::RandomState::new().hash_one(origin) | 1;
        Self {
            config,
            bucket_nanos,
            origin,
            state: Mutex::new(State {
                buckets,
                count: 0,
                sum: 0.0,
                rng,
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SummaryConfig {
        &self.config
    }

    fn slot(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos / self.bucket_nanos).unwrap_or(u64::MAX)
    }

    /// Records `value` now. `NaN` is ignored.
    pub fn record(&self, value: f64) {
        self.record_at(value, Instant::now());
    }

    /// Records `value` as observed at `at`. `NaN` is ignored; a value older
    /// than its bucket's current contents counts in `_sum`/`_count` only.
    pub fn record_at(&self, value: f64, at: Instant) {
        if value.is_nan() {
            return;
        }
        let slot = self.slot(at);
        let max = self.config.max_samples;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.count += 1;
        state.sum += value;
        let index = (slot % self.config.buckets as u64) as usize;
        let random = next_random(&mut state.rng);
        let bucket = &mut state.buckets[index];
        if slot > bucket.slot || bucket.seen == 0 {
            bucket.slot = slot;
            bucket.seen = 0;
            bucket.samples.clear();
        } else if slot < bucket.slot {
            return;
        }
        bucket.seen += 1;
        if bucket.samples.len() < max {
            bucket.samples.push(value);
        } else {
            // Algorithm R: keep the new value with probability max / seen.
            let j = random % bucket.seen;
            if let Ok(j) = usize::try_from(j)
                && j < max
            {
                bucket.samples[j] = value;
            }
        }
    }

    /// Reads the summary now.
    pub fn snapshot(&self) -> SummarySnapshot {
        self.snapshot_at(Instant::now())
    }

    /// Reads the summary as of `at`: buckets whose slot is more than a
    /// window before `at` are left out.
    pub fn snapshot_at(&self, at: Instant) -> SummarySnapshot {
        let current = self.slot(at);
        let span = self.config.buckets as u64;
        let mut weighted: Vec<(f64, f64)> = Vec::new();
        let (count, sum, window_count) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let mut window_count = 0;
            for b in &state.buckets {
                let live = b.seen > 0 && b.slot <= current && b.slot + span > current;
                if live && !b.samples.is_empty() {
                    window_count += b.seen;
                    let weight = b.seen as f64 / b.samples.len() as f64;
                    weighted.extend(b.samples.iter().map(|&v| (v, weight)));
                }
            }
            (state.count, state.sum, window_count)
        };
        weighted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let quantiles = self
            .config
            .quantiles
            .iter()
            .map(|&q| (q, weighted_quantile(&weighted, q)))
            .collect();
        SummarySnapshot {
            count,
            sum,
            window_count,
            quantiles,
        }
    }
}

/// xorshift64*: cheap, good enough to pick reservoir slots.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Nearest-rank quantile of `(value, weight)` pairs sorted by value: the
/// smallest value whose cumulative weight reaches `q` × total.
fn weighted_quantile(sorted: &[(f64, f64)], q: f64) -> f64 {
    let total: f64 = sorted.iter().map(|p| p.1).sum();
    if sorted.is_empty() || total <= 0.0 {
        return f64::NAN;
    }
    let target = q.clamp(0.0, 1.0) * total;
    let mut cumulative = 0.0;
    for &(value, weight) in sorted {
        cumulative += weight;
        // Tolerance for rounding in the weight sum.
        if cumulative >= target * (1.0 - 1e-12) {
            return value;
        }
    }
    sorted.last().map_or(f64::NAN, |p| p.0)
}

/// A label set usable as a [`SummaryFamily`] key.
pub trait SummaryLabels: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static {
    /// `(name, value)` pairs, in the order they are written.
    fn label_pairs(&self) -> Vec<(&str, &str)>;
}

impl SummaryLabels for Vec<(String, String)> {
    fn label_pairs(&self) -> Vec<(&str, &str)> {
        self.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
}

/// Summaries keyed by label set, all with the same [`SummaryConfig`].
#[derive(Debug)]
pub struct SummaryFamily<L> {
    config: SummaryConfig,
    series: RwLock<HashMap<L, Arc<SlidingSummary>>>,
}

impl<L: SummaryLabels> Default for SummaryFamily<L> {
    fn default() -> Self {
        Self::new(SummaryConfig::default())
    }
}

impl<L: SummaryLabels> SummaryFamily<L> {
    /// An empty family whose series use `config`.
    pub fn new(config: SummaryConfig) -> Self {
        Self {
            config,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// The series for `labels`, created on first use (read lock on the hot
    /// path, write lock only to create).
    pub fn get_or_create(&self, labels: &L) -> Arc<SlidingSummary> {
        {
            let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = map.get(labels) {
                return Arc::clone(s);
            }
        }
        let mut map = self.series.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(labels.clone())
                .or_insert_with(|| Arc::new(SlidingSummary::new(self.config.clone()))),
        )
    }

    /// Writes the family in OpenMetrics text (`# HELP`, `# TYPE name
    /// summary`, quantile, `_sum` and `_count` lines), series sorted by
    /// labels, as of `at`.
    pub fn encode_text_at(
        &self,
        out: &mut String,
        name: &str,
        help: &str,
        at: Instant,
    ) -> fmt::Result {
        let mut series: Vec<(L, Arc<SlidingSummary>)> = {
            let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
            map.iter()
                .map(|(l, s)| (l.clone(), Arc::clone(s)))
                .collect()
        };
        series.sort_by_cached_key(|(l, _)| {
            l.label_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        });
        writeln!(out, "# HELP {name} {}", escape_help(help))?;
        writeln!(out, "# TYPE {name} summary")?;
        for (labels, summary) in series {
            let snap = summary.snapshot_at(at);
            let pairs = labels.label_pairs();
            for (q, v) in &snap.quantiles {
                let mut with_q = pairs.clone();
                let q = format_float(*q);
                with_q.push(("quantile", &q));
                writeln!(out, "{name}{} {}", format_labels(&with_q), format_float(*v))?;
            }
            let l = format_labels(&pairs);
            writeln!(out, "{name}_sum{l} {}", format_float(snap.sum))?;
            writeln!(out, "{name}_count{l} {}", snap.count)?;
        }
        Ok(())
    }

    /// Registers the family in `registry` under `name` (e.g.
    /// `http_request_duration_summary_seconds`). Its lines appear when the
    /// registry is encoded with [`encode_text`](crate::serve::encode_text).
    pub fn register(self: &Arc<Self>, registry: &mut Registry, name: &str, help: &str) {
        registry.register_collector(Box::new(SummaryCollector {
            name: name.to_owned(),
            help: help.to_owned(),
            family: Arc::clone(self),
        }));
    }
}

/// Formats a sample value the OpenMetrics way (`NaN`, `+Inf`, `-Inf`).
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

thread_local! {
    /// Where summary collectors write while [`encode_text`](crate::serve::encode_text)
    /// encodes a registry on this thread.
    static SINK: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` (which encodes a registry) with summary output captured; returns
/// `f`'s result and the summaries' text.
pub(crate) fn with_summary_sink<T>(f: impl FnOnce() -> T) -> (T, String) {
    struct Restore(Option<String>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SINK.with(|s| *s.borrow_mut() = previous);
        }
    }
    let mut restore = Restore(SINK.with(|s| s.borrow_mut().replace(String::new())));
    let result = f();
    let captured = SINK.with(|s| s.borrow_mut().take()).unwrap_or_default();
    // Put the outer sink (if nested) back; `restore` would also do it on panic.
    let previous = restore.0.take();
    SINK.with(|s| *s.borrow_mut() = previous);
    (result, captured)
}

#[derive(Debug)]
struct SummaryCollector<L> {
    name: String,
    help: String,
    family: Arc<SummaryFamily<L>>,
}

impl<L: SummaryLabels> Collector for SummaryCollector<L> {
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        SINK.with(|sink| match sink.borrow_mut().as_mut() {
            Some(out) => self
                .family
                .encode_text_at(out, &self.name, &self.help, Instant::now()),
            None => Ok(()),
        })
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
