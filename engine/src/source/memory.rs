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

/// A value during evaluation, over the whole grid of evaluation times at
/// once: labels are handled once per series, not once per step. `None` is
/// "no sample at that step".
#[derive(Debug, Clone)]
enum Value {
    Scalar(Vec<f64>),
    Vector(Vec<(Labels, Vec<Option<f64>>)>),
}

/// The evaluation times of one query.
struct Grid {
    start: i64,
    step: i64,
    len: usize,
}

impl Grid {
    fn at(&self, k: usize) -> i64 {
        self.start + k as i64 * self.step
    }
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
        let grid = Grid {
            start,
            step,
            len: ((end - start) / step + 1) as usize,
        };
        let parsed = parse(expr)?;
        let rows = match self.eval(&parsed, &grid)? {
            Value::Scalar(v) => vec![(Labels::new(), v.into_iter().map(Some).collect())],
            Value::Vector(v) => v,
        };
        let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        for (labels, row) in rows {
            let samples: Vec<(i64, f64)> = row
                .into_iter()
                .enumerate()
                .filter_map(|(k, v)| Some((grid.at(k), v?)))
                .collect();
            if !samples.is_empty() {
                out.entry(labels).or_default().extend(samples);
            }
        }
        Ok(out
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|s| s.0);
                RangeSeries { labels, samples }
            })
            .collect())
    }

    /// Evaluates `expr` at `time`.
    pub fn instant(&self, expr: &str, time: i64) -> Result<Vec<InstantSample>, PromError> {
        Ok(self
            .range(expr, time, time, 1)?
            .into_iter()
            .filter_map(|s| {
                let &(timestamp, value) = s.samples.last()?;
                Some(InstantSample {
                    labels: s.labels,
                    timestamp,
                    value,
                })
            })
            .collect())
    }

    fn eval(&self, e: &Expr, g: &Grid) -> Result<Value, PromError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; g.len])),
            Expr::Paren(p) => self.eval(&p.expr, g),
            Expr::Unary(u) => Ok(map_values(self.eval(&u.expr, g)?, |x| -x)),
            Expr::VectorSelector(vs) => {
                reject_modifiers(vs.offset.is_some() || vs.at.is_some())?;
                let mut out = Vec::new();
                for s in self.select(vs.name.as_deref(), &vs.matchers) {
                    let mut row = vec![None; g.len];
                    let mut i = 0;
                    for (k, slot) in row.iter_mut().enumerate() {
                        let t = g.at(k);
                        while i < s.samples.len() && s.samples[i].0 <= t {
                            i += 1;
                        }
                        if let Some(&(ts, v)) = i.checked_sub(1).and_then(|j| s.samples.get(j))
                            && ts > t - LOOKBACK_SECS
                        {
                            *slot = Some(v);
                        }
                    }
                    if row.iter().any(Option::is_some) {
                        out.push((s.labels.clone(), row));
                    }
                }
                Ok(Value::Vector(out))
            }
            Expr::Aggregate(a) => self.aggregate(a, g),
            Expr::Binary(b) => self.binary(b, g),
            Expr::Call(c) => self.call(c, g),
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

    fn call(&self, c: &Call, g: &Grid) -> Result<Value, PromError> {
        let name = c.func.name;
        let arg = |i: usize| -> Result<&Expr, PromError> {
            c.args
                .args
                .get(i)
                .map(|b| b.as_ref())
                .ok_or_else(|| unsupported(name))
        };
        match name {
            "time" => Ok(Value::Scalar((0..g.len).map(|k| g.at(k) as f64).collect())),
            "vector" => match self.eval(arg(0)?, g)? {
                Value::Scalar(v) => Ok(Value::Vector(vec![(
                    Labels::new(),
                    v.into_iter().map(Some).collect(),
                )])),
                v @ Value::Vector(_) => Ok(v),
            },
            "abs" => Ok(map_values(self.eval(arg(0)?, g)?, f64::abs)),
            "clamp_min" | "clamp_max" => {
                let Value::Scalar(bound) = self.eval(arg(1)?, g)? else {
                    return Err(PromError::InvalidArgument(format!(
                        "{name} expects a scalar parameter"
                    )));
                };
                let bound = bound.first().copied().unwrap_or(f64::NAN);
                Ok(if name == "clamp_min" {
                    map_values(self.eval(arg(0)?, g)?, |x| x.max(bound))
                } else {
                    map_values(self.eval(arg(0)?, g)?, |x| x.min(bound))
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
                    let row: Vec<Option<f64>> = (0..g.len)
                        .map(|k| {
                            let t = g.at(k);
                            let lo = s.samples.partition_point(|p| p.0 <= t - range);
                            let hi = s.samples.partition_point(|p| p.0 <= t);
                            over_window(name, &s.samples[lo..hi], t - range, t)
                        })
                        .collect();
                    if row.iter().any(Option::is_some) {
                        out.push((without_name(s.labels.clone()), row));
                    }
                }
                Ok(Value::Vector(out))
            }
            other => Err(unsupported(other)),
        }
    }

    fn aggregate(&self, a: &AggregateExpr, g: &Grid) -> Result<Value, PromError> {
        let op = a.op.to_string();
        if a.param.is_some() || !matches!(op.as_str(), "sum" | "avg" | "min" | "max" | "count") {
            return Err(unsupported(&op));
        }
        let Value::Vector(input) = self.eval(&a.expr, g)? else {
            return Err(PromError::InvalidArgument(format!(
                "{op} expects an instant vector"
            )));
        };
        // Per group and step: (sum, count, min, max) of the present values.
        let mut groups: BTreeMap<Labels, Vec<(f64, usize, f64, f64)>> = BTreeMap::new();
        for (labels, row) in input {
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
            let acc = groups
                .entry(key)
                .or_insert_with(|| vec![(0.0, 0, f64::INFINITY, f64::NEG_INFINITY); g.len]);
            for (slot, v) in acc.iter_mut().zip(row) {
                if let Some(v) = v {
                    slot.0 += v;
                    slot.1 += 1;
                    slot.2 = slot.2.min(v);
                    slot.3 = slot.3.max(v);
                }
            }
        }
        Ok(Value::Vector(
            groups
                .into_iter()
                .map(|(labels, acc)| {
                    let row = acc
                        .into_iter()
                        .map(|(sum, n, min, max)| {
                            (n > 0).then(|| match op.as_str() {
                                "sum" => sum,
                                "avg" => sum / n as f64,
                                "min" => min,
                                "max" => max,
                                _ => n as f64,
                            })
                        })
                        .collect();
                    (labels, row)
                })
                .collect(),
        ))
    }

    fn binary(&self, b: &BinaryExpr, g: &Grid) -> Result<Value, PromError> {
        let op = b.op.to_string();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        if !matches!(
            op.as_str(),
            "+" | "-"
                | "*"
                | "/"
                | "%"
                | "^"
                | "=="
                | "!="
                | ">"
                | "<"
                | ">="
                | "<="
                | "and"
                | "or"
                | "unless"
        ) {
            return Err(unsupported(&op));
        }
        let arith = |x: f64, y: f64| -> f64 {
            match op.as_str() {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                "%" => x % y,
                _ => x.powf(y),
            }
        };
        let holds = |x: f64, y: f64| -> bool {
            match op.as_str() {
                "==" => x == y,
                "!=" => x != y,
                ">" => x > y,
                "<" => x < y,
                ">=" => x >= y,
                _ => x <= y,
            }
        };
        // The result of `x op y` where `keep` is the value a filtering
        // comparison keeps (the vector side's).
        let apply = |x: f64, y: f64, keep: f64| -> Option<f64> {
            if !comparison {
                Some(arith(x, y))
            } else if return_bool {
                Some(if holds(x, y) { 1.0 } else { 0.0 })
            } else {
                holds(x, y).then_some(keep)
            }
        };
        // Arithmetic (and `bool`) results lose the metric name.
        let name_kept = comparison && !return_bool;
        let relabel = |l: Labels| if name_kept { l } else { without_name(l) };
        let lhs = self.eval(&b.lhs, g)?;
        let rhs = self.eval(&b.rhs, g)?;
        match (lhs, rhs) {
            (Value::Scalar(x), Value::Scalar(y)) => Ok(Value::Scalar(
                x.iter()
                    .zip(&y)
                    .map(|(&x, &y)| apply(x, y, x).unwrap_or(x))
                    .collect(),
            )),
            (Value::Vector(v), Value::Scalar(y)) => Ok(Value::Vector(
                v.into_iter()
                    .map(|(l, row)| {
                        let row = row
                            .iter()
                            .zip(&y)
                            .map(|(x, &y)| x.and_then(|x| apply(x, y, x)))
                            .collect();
                        (relabel(l), row)
                    })
                    .collect(),
            )),
            (Value::Scalar(x), Value::Vector(v)) => Ok(Value::Vector(
                v.into_iter()
                    .map(|(l, row)| {
                        let row = row
                            .iter()
                            .zip(&x)
                            .map(|(y, &x)| y.and_then(|y| apply(x, y, y)))
                            .collect();
                        (relabel(l), row)
                    })
                    .collect(),
            )),
            (Value::Vector(l), Value::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                let key = |labels: &Labels| -> Labels {
                    match matching {
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
                // Per matching key and step: whether the other side has a sample.
                let presence = |rows: &[(Labels, Vec<Option<f64>>)]| {
                    let mut m: BTreeMap<Labels, Vec<Option<f64>>> = BTreeMap::new();
                    for (labels, row) in rows {
                        let slot = m.entry(key(labels)).or_insert_with(|| vec![None; g.len]);
                        for (s, v) in slot.iter_mut().zip(row) {
                            if v.is_some() {
                                *s = *v;
                            }
                        }
                    }
                    m
                };
                let right = presence(&r);
                let mut out = Vec::new();
                match op.as_str() {
                    "and" | "unless" => {
                        let want = op == "and";
                        for (labels, row) in l {
                            let other = right.get(&key(&labels));
                            let row = row
                                .into_iter()
                                .enumerate()
                                .map(|(k, v)| {
                                    let there = other.is_some_and(|o| o[k].is_some());
                                    v.filter(|_| there == want)
                                })
                                .collect();
                            out.push((labels, row));
                        }
                    }
                    "or" => {
                        let left = presence(&l);
                        for (labels, row) in r {
                            let other = left.get(&key(&labels));
                            let row = row
                                .into_iter()
                                .enumerate()
                                .map(|(k, v)| v.filter(|_| other.is_none_or(|o| o[k].is_none())))
                                .collect();
                            out.push((labels, row));
                        }
                        out.splice(0..0, l);
                    }
                    _ => {
                        for (labels, row) in l {
                            let Some(other) = right.get(&key(&labels)) else {
                                continue;
                            };
                            let row = row
                                .iter()
                                .zip(other)
                                .map(|(x, y)| match (x, y) {
                                    (Some(x), Some(y)) => apply(*x, *y, *x),
                                    _ => None,
                                })
                                .collect();
                            let labels = match matching {
                                Some(LabelModifier::Include(_)) if !name_kept => key(&labels),
                                _ => relabel(labels),
                            };
                            out.push((labels, row));
                        }
                    }
                }
                Ok(Value::Vector(out))
            }
        }
    }
}

/// `f` applied to every value; vectors lose their metric name.
fn map_values(v: Value, f: impl Fn(f64) -> f64) -> Value {
    match v {
        Value::Scalar(v) => Value::Scalar(v.into_iter().map(&f).collect()),
        Value::Vector(v) => Value::Vector(
            v.into_iter()
                .map(|(l, row)| {
                    (
                        without_name(l),
                        row.into_iter().map(|x| x.map(&f)).collect(),
                    )
                })
                .collect(),
        ),
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
