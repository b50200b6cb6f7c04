//! [`MemorySource`]: samples held in memory, queried with the subset of
//! PromQL that prognos's rules use, evaluated as Prometheus does.
//!
//! Supported: selectors with `=`, `!=`, `=~`, `!~` and a 5-minute look-back;
//! `rate`, `increase`, `irate`, `delta` and `*_over_time` (avg, min, max,
//! sum, count) over range selectors, with Prometheus's extrapolation and
//! counter-reset handling; `sum`, `avg`, `min`, `max`, `count` with `by` or
//! `without`; arithmetic and comparisons between scalars and vectors
//! (one-to-one matching, `on`/`ignoring`, `bool`); `and`, `or`, `unless`;
//! unary minus; `time()`, `vector()`, `abs`, `clamp_min`, `clamp_max`.
//! Anything else is refused with a clear error rather than answered wrongly.

use std::collections::BTreeMap;

use promql_parser::label::{METRIC_NAME, Matchers};
use promql_parser::parser::{self, AggregateExpr, BinaryExpr, Call, Expr, LabelModifier};

use super::{Source, SourceFuture};
use crate::prom::{InstantSample, Labels, PromError, QueryResult, RangeSeries};

/// How far back an instant selector looks for a sample, as Prometheus's
/// default `--query.lookback-delta`.
pub const LOOKBACK_SECS: i64 = 300;

/// Most evaluation steps of one range query, as Prometheus's limit.
pub const MAX_STEPS: i64 = 11_000;

/// One stored series: labels (with `__name__`) and samples sorted by time.
#[derive(Debug, Clone)]
struct Stored {
    labels: Labels,
    samples: Vec<(i64, f64)>,
}

/// Series held in memory, answering PromQL like a Prometheus server would.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    series: Vec<Stored>,
    /// The time an instant query without a time is evaluated at.
    now: i64,
}

/// A value during evaluation.
#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

impl MemorySource {
    /// A source holding `series` (labels including `__name__`; samples in
    /// any order, repeated timestamps keep the last). `now` is the time of an
    /// instant query given none.
    pub fn new(series: Vec<(Labels, Vec<(i64, f64)>)>, now: i64) -> Self {
        let series = series
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|s| s.0);
                samples.dedup_by(|later, earlier| {
                    if later.0 == earlier.0 {
                        earlier.1 = later.1;
                        true
                    } else {
                        false
                    }
                });
                Stored { labels, samples }
            })
            .collect();
        Self { series, now }
    }

    /// Evaluates `expr` at every step from `start` to `end`.
    pub fn range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<RangeSeries>, PromError> {
        if step <= 0 || end < start {
            return Err(PromError::InvalidArgument(format!(
                "a range from {start} to {end} every {step}s"
            )));
        }
        if (end - start) / step >= MAX_STEPS {
            return Err(PromError::InvalidArgument(format!(
                "more than {MAX_STEPS} steps: query a shorter range or a longer step"
            )));
        }
        let parsed = parse(expr)?;
        let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            match self.eval(&parsed, t)? {
                Value::Scalar(v) => out.entry(Labels::new()).or_default().push((t, v)),
                Value::Vector(v) => {
                    for (labels, value) in v {
                        out.entry(labels).or_default().push((t, value));
                    }
                }
            }
            t += step;
        }
        Ok(out
            .into_iter()
            .map(|(labels, samples)| RangeSeries { labels, samples })
            .collect())
    }

    /// Evaluates `expr` at `time`.
    pub fn instant(&self, expr: &str, time: i64) -> Result<Vec<InstantSample>, PromError> {
        let parsed = parse(expr)?;
        Ok(match self.eval(&parsed, time)? {
            Value::Scalar(value) => vec![InstantSample {
                labels: Labels::new(),
                timestamp: time,
                value,
            }],
            Value::Vector(v) => v
                .into_iter()
                .map(|(labels, value)| InstantSample {
                    labels,
                    timestamp: time,
                    value,
                })
                .collect(),
        })
    }

    fn eval(&self, e: &Expr, t: i64) -> Result<Value, PromError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => Ok(match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(v) => {
                    Value::Vector(v.into_iter().map(|(l, x)| (without_name(l), -x)).collect())
                }
            }),
            Expr::VectorSelector(vs) => {
                reject_modifiers(vs.offset.is_some() || vs.at.is_some())?;
                Ok(Value::Vector(
                    self.select(vs.name.as_deref(), &vs.matchers)
                        .filter_map(|s| {
                            let i = s.samples.partition_point(|p| p.0 <= t);
                            let (ts, v) = *s.samples.get(i.checked_sub(1)?)?;
                            (ts > t - LOOKBACK_SECS).then(|| (s.labels.clone(), v))
                        })
                        .collect(),
                ))
            }
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Call(c) => self.call(c, t),
            other => Err(unsupported(&other.to_string())),
        }
    }

    fn select<'a>(
        &'a self,
        name: Option<&'a str>,
        matchers: &'a Matchers,
    ) -> impl Iterator<Item = &'a Stored> + 'a {
        self.series.iter().filter(move |s| {
            let get = |k: &str| s.labels.get(k).map_or("", String::as_str);
            name.is_none_or(|n| get(METRIC_NAME) == n)
                && matchers.matchers.iter().all(|m| m.is_match(get(&m.name)))
                && (matchers.or_matchers.is_empty()
                    || matchers
                        .or_matchers
                        .iter()
                        .any(|group| group.iter().all(|m| m.is_match(get(&m.name)))))
        })
    }

    fn call(&self, c: &Call, t: i64) -> Result<Value, PromError> {
        let name = c.func.name;
        let arg = |i: usize| -> Result<&Expr, PromError> {
            c.args
                .args
                .get(i)
                .map(|b| b.as_ref())
                .ok_or_else(|| unsupported(name))
        };
        match name {
            "time" => Ok(Value::Scalar(t as f64)),
            "vector" => match self.eval(arg(0)?, t)? {
                Value::Scalar(v) => Ok(Value::Vector(vec![(Labels::new(), v)])),
                v @ Value::Vector(_) => Ok(v),
            },
            "abs" | "clamp_min" | "clamp_max" => {
                let bound = match name {
                    "abs" => 0.0,
                    _ => scalar(self.eval(arg(1)?, t)?, name)?,
                };
                let f = |x: f64| match name {
                    "abs" => x.abs(),
                    "clamp_min" => x.max(bound),
                    _ => x.min(bound),
                };
                Ok(match self.eval(arg(0)?, t)? {
                    Value::Scalar(v) => Value::Scalar(f(v)),
                    Value::Vector(v) => Value::Vector(
                        v.into_iter()
                            .map(|(l, x)| (without_name(l), f(x)))
                            .collect(),
                    ),
                })
            }
            "rate" | "increase" | "irate" | "delta" | "avg_over_time" | "min_over_time"
            | "max_over_time" | "sum_over_time" | "count_over_time" => {
                let Expr::MatrixSelector(ms) = arg(0)? else {
                    return Err(unsupported(&format!("{name} of a subquery")));
                };
                reject_modifiers(ms.vs.offset.is_some() || ms.vs.at.is_some())?;
                let range = ms.range.as_secs() as i64;
                let mut out = Vec::new();
                for s in self.select(ms.vs.name.as_deref(), &ms.vs.matchers) {
                    let lo = s.samples.partition_point(|p| p.0 <= t - range);
                    let hi = s.samples.partition_point(|p| p.0 <= t);
                    let window = &s.samples[lo..hi];
                    if let Some(v) = over_window(name, window, t - range, t) {
                        out.push((without_name(s.labels.clone()), v));
                    }
                }
                Ok(Value::Vector(out))
            }
            other => Err(unsupported(other)),
        }
    }

    fn aggregate(&self, a: &AggregateExpr, t: i64) -> Result<Value, PromError> {
        let op = a.op.to_string();
        if a.param.is_some() {
            return Err(unsupported(&op));
        }
        let Value::Vector(input) = self.eval(&a.expr, t)? else {
            return Err(PromError::InvalidArgument(format!(
                "{op} expects an instant vector"
            )));
        };
        let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
        for (labels, v) in input {
            let key: Labels = match &a.modifier {
                None => Labels::new(),
                Some(LabelModifier::Include(keep)) => labels
                    .into_iter()
                    .filter(|(k, _)| keep.labels.iter().any(|n| n == k))
                    .collect(),
                Some(LabelModifier::Exclude(drop)) => labels
                    .into_iter()
                    .filter(|(k, _)| k != METRIC_NAME && !drop.labels.iter().any(|n| n == k))
                    .collect(),
            };
            groups.entry(key).or_default().push(v);
        }
        let f = |v: &[f64]| -> Result<f64, PromError> {
            Ok(match op.as_str() {
                "sum" => v.iter().sum(),
                "avg" => v.iter().sum::<f64>() / v.len() as f64,
                "min" => v.iter().copied().fold(f64::INFINITY, f64::min),
                "max" => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "count" => v.len() as f64,
                other => return Err(unsupported(other)),
            })
        };
        let mut out = Vec::with_capacity(groups.len());
        for (labels, v) in groups {
            out.push((labels, f(&v)?));
        }
        Ok(Value::Vector(out))
    }

    fn binary(&self, b: &BinaryExpr, t: i64) -> Result<Value, PromError> {
        let op = b.op.to_string();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        // Applies the operator; None drops the element (a false comparison).
        let apply = |x: f64, y: f64| -> Result<Option<f64>, PromError> {
            let truth = |c: bool| {
                if return_bool {
                    Some(if c { 1.0 } else { 0.0 })
                } else {
                    c.then_some(x)
                }
            };
            Ok(match op.as_str() {
                "+" => Some(x + y),
                "-" => Some(x - y),
                "*" => Some(x * y),
                "/" => Some(x / y),
                "%" => Some(x % y),
                "^" => Some(x.powf(y)),
                "==" => truth(x == y),
                "!=" => truth(x != y),
                ">" => truth(x > y),
                "<" => truth(x < y),
                ">=" => truth(x >= y),
                "<=" => truth(x <= y),
                other => return Err(unsupported(other)),
            })
        };
        // Arithmetic (and `bool`) results lose the metric name.
        let name_kept = comparison && !return_bool;
        let relabel = |l: Labels| if name_kept { l } else { without_name(l) };
        match (lhs, rhs) {
            (Value::Scalar(x), Value::Scalar(y)) => {
                let v = apply(x, y)?.unwrap_or(f64::NAN);
                Ok(Value::Scalar(if comparison && !return_bool {
                    x
                } else {
                    v
                }))
            }
            (Value::Vector(v), Value::Scalar(y)) => {
                let mut out = Vec::new();
                for (l, x) in v {
                    if let Some(r) = apply(x, y)? {
                        out.push((relabel(l), r));
                    }
                }
                Ok(Value::Vector(out))
            }
            (Value::Scalar(x), Value::Vector(v)) => {
                let mut out = Vec::new();
                for (l, y) in v {
                    // A comparison keeps the vector's value, as Prometheus does.
                    let r = if comparison && !return_bool {
                        apply(x, y)?.map(|_| y)
                    } else {
                        apply(x, y)?
                    };
                    if let Some(r) = r {
                        out.push((relabel(l), r));
                    }
                }
                Ok(Value::Vector(out))
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let key = |labels: &Labels| -> Labels {
                    match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                        Some(LabelModifier::Include(on)) => labels
                            .iter()
                            .filter(|(k, _)| on.labels.iter().any(|n| n == *k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        Some(LabelModifier::Exclude(ign)) => labels
                            .iter()
                            .filter(|(k, _)| {
                                k.as_str() != METRIC_NAME && !ign.labels.iter().any(|n| n == *k)
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        None => without_name(labels.clone()),
                    }
                };
                if b.modifier.as_ref().is_some_and(|m| {
                    !matches!(
                        m.card,
                        promql_parser::parser::VectorMatchCardinality::OneToOne
                            | promql_parser::parser::VectorMatchCardinality::ManyToMany
                    )
                }) {
                    return Err(unsupported("group_left / group_right"));
                }
                let mut right: BTreeMap<Labels, f64> = BTreeMap::new();
                for (labels, v) in &r {
                    right.insert(key(labels), *v);
                }
                let mut out = Vec::new();
                match op.as_str() {
                    "and" => out.extend(l.into_iter().filter(|(k, _)| right.contains_key(&key(k)))),
                    "unless" => {
                        out.extend(l.into_iter().filter(|(k, _)| !right.contains_key(&key(k))))
                    }
                    "or" => {
                        let left: std::collections::BTreeSet<Labels> =
                            l.iter().map(|(k, _)| key(k)).collect();
                        out.extend(l);
                        out.extend(r.into_iter().filter(|(k, _)| !left.contains(&key(k))));
                    }
                    _ => {
                        for (labels, x) in l {
                            if let Some(&y) = right.get(&key(&labels))
                                && let Some(v) = apply(x, y)?
                            {
                                let labels =
                                    match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                                        Some(LabelModifier::Include(_)) if !name_kept => {
                                            key(&labels)
                                        }
                                        _ => relabel(labels),
                                    };
                                out.push((labels, v));
                            }
                        }
                    }
                }
                Ok(Value::Vector(out))
            }
        }
    }
}

/// A range function over the samples of one series in `(from, to]`.
fn over_window(name: &str, w: &[(i64, f64)], from: i64, to: i64) -> Option<f64> {
    let values = || w.iter().map(|p| p.1);
    match name {
        "avg_over_time" => (!w.is_empty()).then(|| values().sum::<f64>() / w.len() as f64),
        "min_over_time" => (!w.is_empty()).then(|| values().fold(f64::INFINITY, f64::min)),
        "max_over_time" => (!w.is_empty()).then(|| values().fold(f64::NEG_INFINITY, f64::max)),
        "sum_over_time" => (!w.is_empty()).then(|| values().sum()),
        "count_over_time" => (!w.is_empty()).then_some(w.len() as f64),
        "irate" => {
            let [.., (t0, a), (t1, b)] = w else {
                return None;
            };
            let diff = if b < a { *b } else { b - a };
            Some(diff / (t1 - t0) as f64)
        }
        "rate" | "increase" | "delta" => extrapolated(w, from, to, name != "delta", name == "rate"),
        _ => None,
    }
}

/// Prometheus's `extrapolatedRate`: the change over the samples, corrected
/// for counter resets, extrapolated towards the window's edges (at most half
/// a sample interval past the samples, and never below zero for a counter).
fn extrapolated(
    w: &[(i64, f64)],
    from: i64,
    to: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first_t, first_v) = w[0];
    let (last_t, last_v) = w[w.len() - 1];
    let mut result = last_v - first_v;
    if counter {
        let mut prev = first_v;
        for &(_, v) in &w[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let sampled = (last_t - first_t) as f64;
    let average = sampled / (w.len() - 1) as f64;
    let threshold = average * 1.1;
    let mut to_start = (first_t - from) as f64;
    let mut to_end = (to - last_t) as f64;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if per_second {
        factor /= (to - from) as f64;
    }
    Some(result * factor)
}

fn parse(expr: &str) -> Result<Expr, PromError> {
    parser::parse(expr).map_err(|e| PromError::InvalidArgument(format!("bad PromQL: {e}")))
}

fn scalar(v: Value, what: &str) -> Result<f64, PromError> {
    match v {
        Value::Scalar(x) => Ok(x),
        Value::Vector(_) => Err(PromError::InvalidArgument(format!(
            "{what} expects a scalar parameter"
        ))),
    }
}

fn without_name(mut l: Labels) -> Labels {
    l.remove(METRIC_NAME);
    l
}

fn reject_modifiers(present: bool) -> Result<(), PromError> {
    if present {
        Err(unsupported("offset and @ modifiers"))
    } else {
        Ok(())
    }
}

fn unsupported(what: &str) -> PromError {
    PromError::InvalidArgument(format!(
        "{} is not supported by the in-memory source (it answers the PromQL subset prognos's rules use)",
        prognos_notifiers::secret::excerpt(what, 80)
    ))
}

impl Source for MemorySource {
    fn query_range<'a>(
        &'a self,
        expr: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> SourceFuture<'a, QueryResult<Vec<RangeSeries>>> {
        Box::pin(async move { self.range(expr, start, end, step).map(done) })
    }

    fn query<'a>(
        &'a self,
        expr: &'a str,
        time: Option<i64>,
    ) -> SourceFuture<'a, QueryResult<Vec<InstantSample>>> {
        Box::pin(async move { self.instant(expr, time.unwrap_or(self.now)).map(done) })
    }
}

fn done<T>(data: T) -> QueryResult<T> {
    QueryResult {
        data,
        warnings: Vec::new(),
        warnings_left_out: 0,
        partial: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Two counters scraped every 15 s: 2/s and 4/s, the second reset at 600 s.
    fn source() -> MemorySource {
        let a: Vec<(i64, f64)> = (0..200).map(|i| (i * 15, 30.0 * i as f64)).collect();
        let b: Vec<(i64, f64)> = (0..200)
            .map(|i| {
                let t = i * 15;
                (
                    t,
                    if t < 600 {
                        60.0 * i as f64
                    } else {
                        60.0 * (i - 39) as f64
                    },
                )
            })
            .collect();
        let g: Vec<(i64, f64)> = (0..200).map(|i| (i * 15, 7.0)).collect();
        MemorySource::new(
            vec![
                (
                    labels(&[("__name__", "req_total"), ("job", "a"), ("code", "200")]),
                    a,
                ),
                (
                    labels(&[("__name__", "req_total"), ("job", "b"), ("code", "500")]),
                    b,
                ),
                (labels(&[("__name__", "depth"), ("queue", "mes.work")]), g),
            ],
            1500,
        )
    }

    fn one(s: &MemorySource, expr: &str, t: i64) -> Vec<(Labels, f64)> {
        s.instant(expr, t)
            .unwrap()
            .into_iter()
            .map(|x| (x.labels, x.value))
            .collect()
    }

    #[test]
    fn rate_matches_prometheus_including_resets() {
        let s = source();
        let r = one(&s, r#"rate(req_total{job="a"}[5m])"#, 1500);
        assert_eq!(r.len(), 1);
        assert!((r[0].1 - 2.0).abs() < 1e-9, "{r:?}");
        assert!(!r[0].0.contains_key("__name__"));
        // Across the reset the rate is still 4/s.
        let r = one(&s, r#"rate(req_total{job="b"}[5m])"#, 690);
        assert!((r[0].1 - 4.0).abs() < 1e-9, "{r:?}");
        let inc = one(&s, r#"increase(req_total{job="a"}[5m])"#, 1500);
        assert!((inc[0].1 - 600.0).abs() < 1e-9, "{inc:?}");
    }

    #[test]
    fn aggregations_arithmetic_and_matchers() {
        let s = source();
        let r = one(&s, "100 * sum by (job) (rate(req_total[5m]))", 1500);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0, labels(&[("job", "a")]));
        assert!((r[0].1 - 200.0).abs() < 1e-9 && (r[1].1 - 400.0).abs() < 1e-9);
        let r = one(&s, r#"sum(rate(req_total{code=~"5.."}[5m]))"#, 1500);
        assert!(r.len() == 1 && (r[0].1 - 4.0).abs() < 1e-9, "{r:?}");
        let r = one(&s, "1 - avg(rate(req_total[5m])) / 10", 1500);
        assert!((r[0].1 - 0.7).abs() < 1e-9, "{r:?}");
        let r = one(&s, r#"sum by (queue) (depth{queue=~"mes.*"})"#, 1500);
        assert_eq!(r, vec![(labels(&[("queue", "mes.work")]), 7.0)]);
        assert_eq!(one(&s, "count(req_total)", 1500)[0].1, 2.0);
        // A comparison filters and keeps the name; `bool` gives 0 or 1.
        assert_eq!(one(&s, "depth > 5", 1500).len(), 1);
        assert!(one(&s, "depth > 9", 1500).is_empty());
        assert_eq!(one(&s, "depth > bool 9", 1500)[0].1, 0.0);
        assert_eq!(one(&s, "depth or vector(1)", 1500).len(), 2);
    }

    #[test]
    fn the_look_back_ends_a_series_five_minutes_after_its_last_sample() {
        let s = source();
        let last = 199 * 15;
        assert_eq!(one(&s, "depth", last + 299).len(), 1);
        assert!(one(&s, "depth", last + 300).is_empty());
        let r = s.range("depth", 0, 600, 60).unwrap();
        assert_eq!(r[0].samples.len(), 11);
    }

    #[test]
    fn what_it_cannot_answer_is_refused_not_guessed() {
        let s = source();
        for q in [
            "topk(1, depth)",
            "depth offset 5m",
            "histogram_quantile(0.9, depth)",
            "depth[5m:1m]",
        ] {
            let e = s.instant(q, 1500).unwrap_err().to_string();
            assert!(e.contains("not supported"), "{q}: {e}");
        }
        assert!(s.range("depth", 0, 10_000_000, 1).is_err());
    }
}
