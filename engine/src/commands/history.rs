//! `prognos history`: weeks of realistic history of the seed's metrics as
//! OpenMetrics text, for `promtool tsdb create-blocks-from openmetrics`, so
//! forecasts work from a demo's first minute. Deterministic: the same
//! `--end` gives the same file.
//!
//! The scenario: the shop database grows ~3 GB a day toward its 100 GB
//! limit (full in about three days at the end); the MES work queue starts
//! backing up in the last hours; the MES API leaks memory slowly; an HTTP 500
//! storm hits the CRM API three days before the end. Everything else follows
//! daily and weekly rhythms.

use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context, Result, bail};
use prognos_models::synthetic::Rng;

use super::history_anchor::{Anchor, Wanted, anchors, counter_path};
use crate::cli::HistoryArgs;

/// A series' value (gauges) or rate per second (counters) given its age in
/// seconds before the end, the absolute time and a noise source.
type Shape = Box<dyn Fn(f64, i64, &mut Rng) -> f64>;

/// One generated series: name, labels, kind and shape.
struct Spec {
    name: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    counter: bool,
    /// Value (gauges) or rate per second (counters) at `age` seconds before the end.
    f: Shape,
}

/// Daily rhythm in [0, 1]: low at night, peak in the afternoon (UTC).
fn daily(t: i64) -> f64 {
    let phase = t.rem_euclid(86_400) as f64 / 86_400.0;
    0.5 + 0.5 * (TAU * (phase - 0.375)).sin()
}

/// 1 on weekdays, `weekend` on Saturday and Sunday.
fn weekly(t: i64, weekend: f64) -> f64 {
    if (t.div_euclid(86_400) + 4).rem_euclid(7) >= 5 {
        weekend
    } else {
        1.0
    }
}

fn specs() -> Vec<Spec> {
    let day = 86_400.0;
    let mut v: Vec<Spec> = vec![
        Spec {
            name: "pg_database_size_bytes",
            labels: vec![("datname", "shop")],
            counter: false,
            // 100 GB limit, reached about three days after the end.
            f: Box::new(move |age, t, r| {
                91e9 - 3e9 * age / day + 0.05e9 * daily(t) + 2e6 * r.normal()
            }),
        },
        Spec {
            name: "pg_database_size_bytes",
            labels: vec![("datname", "mes")],
            counter: false,
            f: Box::new(move |age, t, r| {
                120e9 - 0.5e9 * age / day + 0.02e9 * daily(t) + 1e6 * r.normal()
            }),
        },
        Spec {
            name: "s3_bucket_size_bytes",
            labels: vec![("bucket", "shop-images")],
            counter: false,
            f: Box::new(move |age, _t, _r| 400e9 - 2e9 * (age / day).floor()),
        },
        Spec {
            name: "process_resident_memory_bytes",
            labels: vec![("job", "crm-api")],
            counter: false,
            f: Box::new(|_age, t, r| 300e6 + 80e6 * daily(t) + 5e6 * r.normal()),
        },
        Spec {
            name: "process_resident_memory_bytes",
            labels: vec![("job", "mes-api")],
            counter: false,
            f: Box::new(move |age, t, r| {
                500e6 - 20e6 * age / day + 50e6 * daily(t) + 5e6 * r.normal()
            }),
        },
        Spec {
            name: "rabbitmq_queue_messages_ready",
            labels: vec![("queue", "mes.work")],
            counter: false,
            f: Box::new(|age, t, r| {
                let base = 40.0 * daily(t) * weekly(t, 0.3) + 5.0 * r.normal().abs();
                let backlog = if age < 4.0 * 3600.0 {
                    600.0 * (4.0 - age / 3600.0)
                } else {
                    0.0
                };
                (base + backlog).round()
            }),
        },
        Spec {
            name: "rabbitmq_queue_messages_unacked",
            labels: vec![("queue", "mes.work")],
            counter: false,
            f: Box::new(|_age, t, r| (10.0 * daily(t) + 2.0 * r.normal().abs()).round()),
        },
        Spec {
            name: "rabbitmq_global_messages_dead_lettered_rejected_total",
            labels: vec![],
            counter: true,
            f: Box::new(|age, _t, _r| {
                if (age - 2.0 * 86_400.0).abs() < 1800.0 {
                    2.0
                } else {
                    0.01
                }
            }),
        },
    ];
    for (instance, load) in [("shop-db", 0.35), ("mes-db", 0.25)] {
        v.push(Spec {
            name: "node_cpu_seconds_total",
            labels: vec![
                ("instance", instance),
                ("job", "node-db"),
                ("mode", "idle"),
                ("cpu", "0"),
            ],
            counter: true,
            f: Box::new(move |_age, t, r| {
                (1.0 - load - 0.3 * daily(t) * weekly(t, 0.5) - 0.02 * r.uniform()).clamp(0.0, 1.0)
            }),
        });
    }
    for (job, load) in [("crm-api", 0.15), ("mes-api", 0.25)] {
        v.push(Spec {
            name: "process_cpu_seconds_total",
            labels: vec![("job", job)],
            counter: true,
            f: Box::new(move |_age, t, r| {
                load + 0.2 * daily(t) * weekly(t, 0.4) + 0.01 * r.uniform()
            }),
        });
    }
    for service in ["shop-api", "crm-api", "mes-api"] {
        let storm = service == "crm-api";
        v.push(Spec {
            name: "http_requests_total",
            labels: vec![("service", service), ("code", "200"), ("caller", "user")],
            counter: true,
            f: Box::new(|_age, t, r| {
                20.0 * (0.2 + daily(t)) * weekly(t, 0.5) * (1.0 + 0.05 * r.normal())
            }),
        });
        v.push(Spec {
            name: "http_requests_total",
            labels: vec![("service", service), ("code", "200"), ("caller", "system")],
            counter: true,
            f: Box::new(|_age, _t, r| 5.0 * (1.0 + 0.05 * r.normal())),
        });
        v.push(Spec {
            name: "http_requests_total",
            labels: vec![("service", service), ("code", "500"), ("caller", "user")],
            counter: true,
            f: Box::new(move |age, t, r| {
                let normal = 0.02 * (0.2 + daily(t)) * (1.0 + 0.3 * r.normal()).max(0.0);
                if storm && (age - 3.0 * 86_400.0).abs() < 900.0 {
                    8.0
                } else {
                    normal
                }
            }),
        });
    }
    // Every series carries the `job` a scrape (or the Pushgateway group of
    // `--follow`) would give it, so live samples continue the backfilled series.
    for spec in &mut v {
        if spec.labels.iter().any(|(k, _)| *k == "job") {
            continue;
        }
        let job = match spec.name {
            n if n.starts_with("pg_") => "postgres",
            n if n.starts_with("s3_") => "s3",
            n if n.starts_with("rabbitmq_") => "rabbitmq",
            _ => spec
                .labels
                .iter()
                .find(|(k, _)| *k == "service")
                .map_or("demo", |(_, v)| *v),
        };
        spec.labels.push(("job", job));
    }
    v
}

/// The value of `spec` at `t` (`age` seconds before the history's end):
/// gauges directly, counters by adding `rate · dt` to `total`.
fn sample(spec: &Spec, age: f64, t: i64, dt: f64, rng: &mut Rng, total: &mut f64) -> f64 {
    let v = (spec.f)(age, t, rng);
    if spec.counter {
        *total += v.max(0.0) * dt;
        *total
    } else {
        v
    }
}

/// Writes the history; returns the number of samples.
pub fn history(args: &HistoryArgs) -> Result<usize> {
    // Written so that NaN fails too.
    if !(args.days > 0.0 && args.days <= 90.0) {
        bail!("--days must be in (0, 90], got {}", args.days);
    }
    if args.step < 1 {
        bail!("--step must be at least 1 second");
    }
    if args.step > crate::cli::MAX_HISTORY_STEP_SECS {
        bail!(
            "--step {} is too large, at most {}",
            args.step,
            crate::cli::MAX_HISTORY_STEP_SECS
        );
    }
    let end = match &args.end {
        Some(s) => {
            crate::timestamp::parse(s)
                .map_err(anyhow::Error::msg)
                .context("--end")?
                .0
        }
        None => crate::timestamp::unix_now(),
    };
    let end = end - end.rem_euclid(args.step);
    let start = end - (args.days * 86_400.0) as i64;
    let specs = specs();
    let mut rngs: Vec<Rng> = (0..specs.len()).map(|i| Rng::new(i as u64 + 1)).collect();
    let mut totals = vec![0.0; specs.len()];
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdout().lock()),
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::sink()),
    };
    // Without --anchor every series is written once under its own labels;
    // with it, once per live series it matches, scaled to its level.
    let copies: Vec<Vec<Anchor>> = match &args.anchor {
        None => specs
            .iter()
            .map(|spec| vec![Anchor::own(&spec.labels)])
            .collect(),
        Some(url) => {
            let wanted: Vec<Wanted> = specs
                .iter()
                .enumerate()
                .map(|(i, spec)| Wanted {
                    name: spec.name,
                    labels: spec.labels.clone(),
                    counter: spec.counter,
                    end_value: (spec.f)(0.0, end, &mut Rng::new(i as u64 + 1)),
                })
                .collect();
            anchors(url, &wanted, end)?
        }
    };
    let mut samples = 0;
    let mut last_family = "";
    let mut values = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if copies[i].is_empty() {
            continue;
        }
        if spec.name != last_family {
            let kind = if spec.counter { "counter" } else { "gauge" };
            let family = spec.name.trim_end_matches("_total");
            writeln!(out, "# TYPE {family} {kind}")?;
            last_family = spec.name;
        }
        // Counters are generated as rates, scaled, then summed per copy.
        values.clear();
        let mut t = start;
        while t <= end {
            values.push((t, (spec.f)((end - t) as f64, t, &mut rngs[i])));
            t += args.step;
        }
        for copy in &copies[i] {
            let labels: Vec<(&str, &str)> = copy
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let labels = label_text(&labels, None);
            // A counter ends where the live one stood at the history's end.
            let path = if spec.counter {
                let incs: Vec<f64> = values
                    .iter()
                    .map(|(_, v)| (v * copy.scale).max(0.0) * args.step as f64)
                    .collect();
                counter_path(&incs, copy.counter_at_end)
            } else {
                values.iter().map(|(_, v)| v * copy.scale).collect()
            };
            let mut line = String::new();
            for (&(t, _), value) in values.iter().zip(path) {
                line.clear();
                let _ = write!(line, "{}{{{labels}}} {value} {t}", spec.name);
                writeln!(out, "{line}")?;
                samples += 1;
            }
        }
        // `--follow` continues the unscaled scenario from its end.
        totals[i] = values
            .iter()
            .map(|(_, v)| v.max(0.0) * args.step as f64)
            .sum();
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    drop(out);
    if let Some(url) = &args.follow {
        follow(url, &specs, &mut rngs, &mut totals, end)?;
    }
    Ok(samples)
}

fn label_text(labels: &[(&str, &str)], skip: Option<&str>) -> String {
    labels
        .iter()
        .filter(|(k, _)| Some(*k) != skip)
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// Interval between live samples pushed by `--follow`, seconds.
pub const FOLLOW_EVERY_SECS: i64 = 15;

/// Keeps the scenario going after the history's end: every 15 s, the
/// current value of every series is pushed to a Pushgateway, one group per
/// `job`, until interrupted. Counters continue from their backfilled totals.
fn follow(url: &str, specs: &[Spec], rngs: &mut [Rng], totals: &mut [f64], end: i64) -> Result<()> {
    let url = url.trim_end_matches('/').to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    tracing::info!(pushgateway = %url, every_secs = FOLLOW_EVERY_SECS, "Following: pushing live samples.");
    let mut last = end;
    runtime.block_on(async {
        loop {
            let now = crate::timestamp::unix_now();
            let dt = (now - last).max(0) as f64;
            last = now;
            let mut groups: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
            for (i, spec) in specs.iter().enumerate() {
                // Past the history's end the age is negative: trends go on.
                let value = sample(spec, (end - now) as f64, now, dt, &mut rngs[i], &mut totals[i]);
                let job = spec.labels.iter().find(|(k, _)| *k == "job").map_or("demo", |(_, v)| *v);
                let body = groups.entry(job).or_default();
                let kind = if spec.counter { "counter" } else { "gauge" };
                let _ = writeln!(body, "# TYPE {} {kind}", spec.name);
                let _ = writeln!(body, "{}{{{}}} {value}", spec.name, label_text(&spec.labels, Some("job")));
            }
            for (job, body) in groups {
                let r = http.put(format!("{url}/metrics/job/{job}")).body(body).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(job, status = %r.status(), "Pushgateway refused the push."),
                    Err(e) => tracing::warn!(job, error = %e, "Push failed; will retry."),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(FOLLOW_EVERY_SECS as u64)) => {}
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    });
    Ok(())
}
