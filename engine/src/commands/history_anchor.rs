//! `prognos history --anchor URL`: the generated history continues the live
//! series of a running stack. For each generated series, the live series
//! matching its labels are looked up in Prometheus; each gets its own copy of
//! the history under its own label set (job, instance, route, …), scaled so
//! that it ends at the live level — gauges at the live value, counters at the
//! live rate. A counter's history starts at zero and ends above the live
//! counter: `rate()` reads the step down as the restart it is.

use anyhow::{Context, Result};

use crate::prom::{ClientSettings, InstantSample, Labels, PromClient};

/// One live series a generated series is copied to.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    /// The live series' labels, without `__name__`.
    pub labels: Vec<(String, String)>,
    /// Factor applied to the generated values (gauges) or rates (counters).
    pub scale: f64,
    /// Counters: the live counter's value at the history's end (its value
    /// now less its rate times the time since), so the history can end
    /// there instead of stepping up or down into the live series.
    pub counter_at_end: Option<f64>,
}

impl Anchor {
    /// The generated series itself: its own labels, unscaled.
    pub fn own(labels: &[(&str, &str)]) -> Anchor {
        Anchor {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            scale: 1.0,
            counter_at_end: None,
        }
    }
}

/// What the history generator tells the anchoring about one series.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: &'static str,
    pub labels: Vec<(&'static str, &'static str)>,
    pub counter: bool,
    /// The generated value (gauge) or rate (counter) at the end.
    pub end_value: f64,
}

/// Labels left out of the lookup: the live machine's CPUs are not the
/// generated one's.
const NOT_MATCHED: &[&str] = &["cpu"];

/// The PromQL selector of a generated series.
pub fn selector(name: &str, labels: &[(&str, &str)]) -> String {
    let matchers: Vec<String> = labels
        .iter()
        .filter(|(k, _)| !NOT_MATCHED.contains(k))
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", matchers.join(","))
}

/// The scale that makes a generated end value `generated` land on `live`.
/// A zero or non-finite generated value leaves the live level to the noise:
/// the scale is 0 when the live value is 0, otherwise 1.
pub fn scale(live: f64, generated: f64) -> f64 {
    if !live.is_finite() || live <= 0.0 {
        return 0.0;
    }
    if !generated.is_finite() || generated.abs() < f64::EPSILON {
        return 1.0;
    }
    live / generated
}

/// Looks up the live series of every wanted one. A wanted series with no
/// live match (HTTP 500s of a service that has not failed yet) is written
/// under its own labels, unscaled: aggregations such as `sum by (service)`
/// then find its history. `end` is the history's end (Unix seconds).
pub fn anchors(url: &str, wanted: &[Wanted], end: i64) -> Result<Vec<Vec<Anchor>>> {
    let client = PromClient::new(ClientSettings {
        url: url.to_string(),
        ..ClientSettings::default()
    })
    .with_context(|| format!("--anchor {url}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut all = Vec::with_capacity(wanted.len());
        for w in wanted {
            let sel = selector(w.name, &w.labels);
            // Counters are anchored on their rate; a counter too young for a
            // rate (one scrape) shares the generated rate among its series.
            let expr = if w.counter {
                format!("rate({sel}[2m])")
            } else {
                sel.clone()
            };
            let mut live = client
                .query(&expr, None)
                .await
                .with_context(|| format!("querying {expr} at {url}"))?
                .data;
            let mut fallback = false;
            let mut values: Vec<InstantSample> = Vec::new();
            if w.counter {
                values = client
                    .query(&sel, None)
                    .await
                    .with_context(|| format!("querying {sel} at {url}"))?
                    .data;
                if live.is_empty() {
                    live = values.clone();
                    fallback = true;
                }
            }
            let n = live.len().max(1) as f64;
            let anchors = live
                .into_iter()
                .map(|s| {
                    let labels = without_name(s.labels);
                    let scale = if fallback {
                        1.0 / n
                    } else {
                        scale(s.value, w.end_value)
                    };
                    let counter_at_end = values
                        .iter()
                        .find(|v| without_name(v.labels.clone()) == labels)
                        .map(|v| {
                            let rate = if fallback { 0.0 } else { s.value.max(0.0) };
                            (v.value - rate * (v.timestamp - end).max(0) as f64).max(0.0)
                        });
                    Anchor {
                        labels,
                        scale,
                        counter_at_end,
                    }
                })
                .collect::<Vec<_>>();
            tracing::info!(series = %sel, live = anchors.len(), "Anchored.");
            if anchors.is_empty() {
                all.push(vec![Anchor::own(&w.labels)]);
            } else {
                all.push(anchors);
            }
        }
        Ok(all)
    })
}

/// A counter's values from its increments. Without `at_end` the counter
/// starts at zero. With it, the counter ends at `at_end` (where the live
/// counter stood), so the live series continues it with no step. When the
/// increments add up to more than that, the counter restarts from zero once,
/// as far back as possible: a restart costs `rate()` nothing, a step would
/// show as a spike.
pub fn counter_path(increments: &[f64], at_end: Option<f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(increments.len());
    let Some(at_end) = at_end else {
        let mut total = 0.0;
        for inc in increments {
            total += inc;
            out.push(total);
        }
        return out;
    };
    // Walk back from the end; where the remaining room runs out, the run
    // that ends at `at_end` begins (the previous run started from zero).
    let mut value = at_end;
    let mut restart = 0;
    for (k, inc) in increments.iter().enumerate().rev() {
        out.push(value);
        if value - inc < 0.0 {
            restart = k;
            break;
        }
        value -= inc;
    }
    out.reverse();
    let mut head = Vec::with_capacity(increments.len());
    let mut total = 0.0;
    for inc in &increments[..restart] {
        total += inc;
        head.push(total);
    }
    head.extend(out);
    head
}

fn without_name(labels: Labels) -> Vec<(String, String)> {
    labels
        .into_iter()
        .filter(|(k, _)| k != "__name__")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_matches_every_label_but_the_cpu() {
        assert_eq!(
            selector(
                "node_cpu_seconds_total",
                &[("instance", "shop-db"), ("cpu", "0"), ("mode", "idle")]
            ),
            r#"node_cpu_seconds_total{instance="shop-db",mode="idle"}"#
        );
        assert_eq!(selector("up", &[]), "up{}");
    }

    #[test]
    fn a_counter_ends_where_the_live_one_stands() {
        let incs = [1.0; 10];
        assert_eq!(
            counter_path(&incs, None),
            (1..=10).map(f64::from).collect::<Vec<_>>()
        );
        // Room for all of it: one run ending at 100, no restart.
        let p = counter_path(&incs, Some(100.0));
        assert_eq!(p.len(), 10);
        assert_eq!(p[9], 100.0);
        assert_eq!(p[0], 91.0);
        assert!(p.windows(2).all(|w| w[1] - w[0] == 1.0));
        // Room for 3.5 steps: earlier values run from zero, then one restart.
        let p = counter_path(&incs, Some(3.5));
        assert_eq!(p.len(), 10);
        assert_eq!(p[9], 3.5);
        let drops = p.windows(2).filter(|w| w[1] < w[0]).count();
        assert_eq!(drops, 1, "{p:?}");
        let reset = p.windows(2).position(|w| w[1] < w[0]).unwrap() + 1;
        // After the restart the counter is small: no spike in rate().
        assert!(p[reset] <= 2.0, "{p:?}");
        assert!(p.iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn scales_land_on_the_live_level() {
        assert_eq!(scale(8e6, 91e9) * 91e9, 8e6);
        assert_eq!(scale(0.0, 40.0), 0.0);
        assert_eq!(scale(f64::NAN, 40.0), 0.0);
        assert_eq!(scale(3.0, 0.0), 1.0);
    }
}
