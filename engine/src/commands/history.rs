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
            labels: vec![("bucket", "shop-media")],
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
            labels: vec![("instance", "rabbitmq")],
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
    v
}

/// Writes the history; returns the number of samples.
pub fn history(args: &HistoryArgs) -> Result<usize> {
    if args.days <= 0.0 || args.days > 90.0 {
        bail!("--days must be in (0, 90], got {}", args.days);
    }
    if args.step < 1 {
        bail!("--step must be at least 1 second");
    }
    let end = match &args.end {
        Some(s) => {
            crate::timestamp::parse(s)
                .map_err(anyhow::Error::msg)
                .context("--end")?
                .0
        }
        None => crate::commands::run::unix_now(),
    };
    let end = end - end.rem_euclid(args.step);
    let start = end - (args.days * 86_400.0) as i64;
    let mut out: Box<dyn std::io::Write> = if args.output.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(&args.output)
                .with_context(|| format!("creating {}", args.output.display()))?,
        ))
    };
    let mut samples = 0;
    let mut last_family = "";
    for (i, spec) in specs().iter().enumerate() {
        if spec.name != last_family {
            let kind = if spec.counter { "counter" } else { "gauge" };
            let family = spec.name.trim_end_matches("_total");
            writeln!(out, "# TYPE {family} {kind}")?;
            last_family = spec.name;
        }
        let labels: String = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        let mut rng = Rng::new(i as u64 + 1);
        let mut total = 0.0;
        let mut line = String::new();
        let mut t = start;
        while t <= end {
            let age = (end - t) as f64;
            let v = (spec.f)(age, t, &mut rng);
            let value = if spec.counter {
                total += v.max(0.0) * args.step as f64;
                total
            } else {
                v
            };
            line.clear();
            let _ = write!(line, "{}{{{labels}}} {value} {t}", spec.name);
            writeln!(out, "{line}")?;
            samples += 1;
            t += args.step;
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()?;
    Ok(samples)
}
