//! The seeded generator: from a [`ScenarioSpec`] to raw samples as the
//! stack's exporters expose them, and the truth of every incident.
//!
//! The stack is the demo's (`deploy/compose`): the shop, CRM and MES APIs
//! (`process_*`, `http_requests_total`), node_exporter on the DB hosts
//! (`node_cpu_seconds_total`, `node_filesystem_*`), postgres_exporter
//! (`pg_database_size_bytes`), RabbitMQ (`rabbitmq_queue_messages_*`, dead
//! letters) and the S3 size exporter. Each of those is driven by a *signal*
//! in the unit the rules read (CPU %, bytes, requests/s, messages, error
//! ratio): a level with trend, daily and weekly rhythm, Monday peak, nightly
//! windows, planned changes, autocorrelated noise, then incidents. Counters
//! integrate their signal (with Poisson counts for requests and dead
//! letters) and start again from 0 at a restart.
//!
//! Each signal and each raw series draws from its own generator, seeded
//! from the scenario's seed and its name, so overriding one signal leaves
//! every other series' samples unchanged.

use std::collections::BTreeMap;
use std::f64::consts::{PI, TAU};

use prognos_models::synthetic::Rng;

use super::spec::{IncidentKind, IncidentSpec, ScenarioSpec, SignalOverride};
use super::{RawSeries, Scenario, Truth};
use crate::config::parse_duration;

/// Jobs of the stack's APIs, as in their scrape configs.
pub(crate) const JOBS: [&str; 3] = ["shop-api", "crm-api", "mes-api"];

/// Time constant of the noise's autocorrelation, in seconds: the noise of
/// real load wanders over minutes rather than jumping sample to sample.
const NOISE_MEMORY_SECS: f64 = 300.0;

/// Time a saturation takes to reach its level, in seconds.
const SATURATION_RAMP_SECS: f64 = 300.0;

/// How much faster than it filled a stalled queue drains once consumers
/// are back.
const DRAIN_SPEED: f64 = 3.0;

/// CPUs of each DB host.
const HOST_CPUS: usize = 4;

/// A daily window: batch job or backup.
#[derive(Debug, Clone)]
struct Window {
    what: String,
    at: i64,
    lasts: i64,
    factor: f64,
    add: f64,
}

/// How one signal behaves when nothing goes wrong.
#[derive(Debug, Clone)]
struct Signal {
    level: f64,
    trend: f64,
    daily: f64,
    peak_hour: f64,
    weekend: f64,
    monday: f64,
    noise: f64,
    nightly: Vec<Window>,
    capacity: f64,
}

impl Signal {
    fn flat(level: f64, noise: f64) -> Self {
        Signal {
            level,
            trend: 0.0,
            daily: 0.0,
            peak_hour: 14.0,
            weekend: 1.0,
            monday: 0.0,
            noise,
            nightly: Vec::new(),
            capacity: 0.0,
        }
    }

    fn rhythm(mut self, daily: f64, weekend: f64, monday: f64) -> Self {
        self.daily = daily;
        self.weekend = weekend;
        self.monday = monday;
        self
    }

    fn trend(mut self, per_day: f64) -> Self {
        self.trend = per_day;
        self
    }

    fn nightly(mut self, what: &str, at_min: i64, lasts_min: i64, factor: f64, add: f64) -> Self {
        self.nightly.push(Window {
            what: what.to_string(),
            at: at_min * 60,
            lasts: lasts_min * 60,
            factor,
            add,
        });
        self
    }

    fn apply(&mut self, o: &SignalOverride) {
        let set = |field: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut self.level, o.level);
        set(&mut self.trend, o.trend);
        set(&mut self.daily, o.daily);
        set(&mut self.peak_hour, o.peak_hour);
        set(&mut self.weekend, o.weekend);
        set(&mut self.monday, o.monday);
        set(&mut self.noise, o.noise);
        set(&mut self.capacity, o.capacity);
        if let Some(n) = &o.nightly {
            self.nightly = n
                .iter()
                .map(|w| Window {
                    what: w.what.clone(),
                    at: secs(&w.at),
                    lasts: secs(&w.lasts),
                    factor: w.factor,
                    add: w.add,
                })
                .collect();
        }
    }
}

/// The stack's signals and their normal behaviour, sized against the
/// shipped rules' thresholds: far from them when nothing goes wrong.
fn stack() -> Vec<(&'static str, Signal)> {
    let mut disk_shop = Signal::flat(180e9, 0.0005)
        .trend(0.2e9)
        .nightly("backup", 60, 120, 1.0, 30e9);
    disk_shop.capacity = 500e9;
    let mut disk_mes = Signal::flat(250e9, 0.0005)
        .trend(0.3e9)
        .nightly("backup", 90, 120, 1.0, 40e9);
    disk_mes.capacity = 500e9;
    vec![
        // CPU % of one core.
        (
            "cpu:crm-api",
            Signal::flat(25.0, 0.05).rhythm(0.5, 0.6, 0.3),
        ),
        (
            "cpu:mes-api",
            Signal::flat(30.0, 0.05)
                .rhythm(0.5, 0.6, 0.3)
                .nightly("batch", 120, 30, 2.0, 0.0),
        ),
        // Resident memory, bytes.
        (
            "memory:crm-api",
            Signal::flat(450e6, 0.005).rhythm(0.04, 1.0, 0.0),
        ),
        (
            "memory:mes-api",
            Signal::flat(600e6, 0.005).rhythm(0.05, 1.0, 0.0),
        ),
        // User requests/s.
        (
            "requests:shop-api",
            Signal::flat(40.0, 0.05).rhythm(0.6, 0.8, 0.25),
        ),
        (
            "requests:crm-api",
            Signal::flat(15.0, 0.05).rhythm(0.6, 0.4, 0.35),
        ),
        (
            "requests:mes-api",
            Signal::flat(25.0, 0.05).rhythm(0.5, 0.5, 0.2),
        ),
        // System (batch, health check) requests/s.
        ("system:shop-api", Signal::flat(2.0, 0.05)),
        ("system:crm-api", Signal::flat(1.5, 0.05)),
        (
            "system:mes-api",
            Signal::flat(3.0, 0.05).nightly("batch", 120, 30, 6.0, 0.0),
        ),
        // Fraction of requests answered 500.
        ("errors:shop-api", Signal::flat(0.0003, 0.2)),
        ("errors:crm-api", Signal::flat(0.001, 0.2)),
        ("errors:mes-api", Signal::flat(0.001, 0.2)),
        // DB host CPU busy %.
        (
            "host_cpu:shop-db",
            Signal::flat(20.0, 0.05)
                .rhythm(0.4, 0.7, 0.2)
                .nightly("backup", 60, 45, 2.2, 0.0),
        ),
        (
            "host_cpu:mes-db",
            Signal::flat(25.0, 0.05)
                .rhythm(0.4, 0.7, 0.2)
                .nightly("backup", 90, 45, 2.0, 0.0),
        ),
        // Bytes used on the DB hosts' root filesystem.
        ("disk:shop-db", disk_shop),
        ("disk:mes-db", disk_mes),
        // Database sizes, bytes.
        ("db:shop", Signal::flat(60e9, 0.0002).trend(0.25e9)),
        ("db:mes", Signal::flat(120e9, 0.0002).trend(0.4e9)),
        ("db:crm", Signal::flat(25e9, 0.0002).trend(0.05e9)),
        // Bucket sizes, bytes.
        ("bucket:shop-images", Signal::flat(300e9, 0.0001).trend(2e9)),
        (
            "bucket:mes-archive",
            Signal::flat(450e9, 0.0001).trend(1.5e9),
        ),
        // Queue depths, messages.
        (
            "ready:mes.work",
            Signal::flat(20.0, 0.3).rhythm(0.8, 0.5, 0.0),
        ),
        ("ready:mes.dead", Signal::flat(5.0, 0.2)),
        (
            "ready:crm.sync",
            Signal::flat(10.0, 0.3).rhythm(0.5, 0.5, 0.0),
        ),
        ("unacked:mes.work", Signal::flat(8.0, 0.3)),
        ("unacked:mes.dead", Signal::flat(0.0, 0.0)),
        ("unacked:crm.sync", Signal::flat(4.0, 0.3)),
        // Messages/s dead-lettered after a reject.
        ("dead_letters:rabbitmq", Signal::flat(0.01, 0.3)),
    ]
}

/// Names of every signal a scenario can change.
pub(crate) fn signal_names() -> Vec<String> {
    stack().into_iter().map(|(n, _)| n.to_string()).collect()
}

/// Seconds of a duration already checked by [`ScenarioSpec::check`].
fn secs(text: &str) -> i64 {
    parse_duration(text).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A 64-bit FNV-1a hash: a stable seed per name.
fn hash(seed: u64, name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A Poisson draw (normal approximation above 30).
fn poisson(rng: &mut Rng, lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0.0;
    }
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * rng.normal()).round().max(0.0);
    }
    let limit = (-lambda).exp();
    let mut k = 0.0;
    let mut p = rng.uniform();
    while p > limit && k < 1000.0 {
        k += 1.0;
        p *= rng.uniform();
    }
    k
}

/// An incident with its times in Unix seconds.
struct Active<'a> {
    spec: &'a IncidentSpec,
    onset: i64,
    duration: i64,
}

/// A signal of a scenario: its behaviour, changes and incidents.
struct Driven<'a> {
    name: &'static str,
    /// The scenario's start: the trend counts from it.
    start: i64,
    signal: Signal,
    changes: Vec<(i64, f64, f64)>,
    incidents: Vec<Active<'a>>,
}

impl Driven<'_> {
    /// The value at `t`, `noise` being a standard normal draw (0: the
    /// noise-free value).
    fn value(&self, t: i64, noise: f64) -> f64 {
        let s = &self.signal;
        let tod = t.rem_euclid(86_400);
        let hour = tod as f64 / 3600.0;
        // 0 = Monday (1970-01-01 was a Thursday).
        let dow = (t.div_euclid(86_400) + 3).rem_euclid(7);
        let mut rhythm = 1.0 + s.daily * (TAU * (hour - s.peak_hour) / 24.0).cos();
        if dow >= 5 {
            rhythm *= s.weekend;
        }
        if dow == 0 && (8.0..12.0).contains(&hour) {
            rhythm *= 1.0 + s.monday * (PI * (hour - 8.0) / 4.0).sin();
        }
        let mut v = (s.level + s.trend * (t - self.start) as f64 / 86_400.0) * rhythm;
        for w in &s.nightly {
            if (tod - w.at).rem_euclid(86_400) < w.lasts {
                v = v * w.factor + w.add;
            }
        }
        for &(at, factor, add) in &self.changes {
            if t >= at {
                v = v * factor + add;
            }
        }
        v *= 1.0 + s.noise * noise;
        for a in &self.incidents {
            v = incident(a, t, v, noise);
        }
        let v = v.max(0.0);
        if self.name.starts_with("host_cpu:") {
            v.min(100.0)
        } else {
            v
        }
    }
}

/// `v` changed by incident `a` at `t`.
fn incident(a: &Active<'_>, t: i64, v: f64, noise: f64) -> f64 {
    let tau = (t - a.onset) as f64;
    let d = a.duration as f64;
    let m = a.spec.magnitude;
    if tau < 0.0 {
        return v;
    }
    let during = tau < d;
    match a.spec.kind {
        IncidentKind::Growth => v + m * tau.min(d) / 3600.0,
        IncidentKind::Stall => {
            let peak = m * d / 60.0;
            let extra = if during {
                m * tau / 60.0
            } else {
                (peak - DRAIN_SPEED * m * (tau - d) / 60.0).max(0.0)
            };
            v + extra
        }
        IncidentKind::Leak if during => v + m * tau / 3600.0,
        IncidentKind::Saturation if during => {
            let w = (tau / SATURATION_RAMP_SECS).min(1.0);
            let target = m * (1.0 + 0.01 * noise);
            v + (target - v) * w
        }
        IncidentKind::Storm if during => m,
        IncidentKind::Spike if during => v * m,
        IncidentKind::Shift => v * m,
        _ => v,
    }
}

/// Labels of a raw series.
fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A counter's samples: `inc(i)` added at each sample, from `initial`,
/// starting again from 0 when `reset(i)`.
fn counter(
    times: &[i64],
    initial: f64,
    resets: &[bool],
    mut inc: impl FnMut(usize) -> f64,
) -> Vec<(i64, f64)> {
    let mut c = initial;
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if resets.get(i).copied().unwrap_or(false) {
                c = 0.0;
            }
            c += inc(i);
            (t, c)
        })
        .collect()
}

impl ScenarioSpec {
    /// The scenario's raw samples and truth, the same for the same file.
    pub fn generate(&self) -> Scenario {
        let tm = &self.times;
        let start = tm.start;
        let step = tm.step.max(1);
        let n = usize::try_from(tm.length / step + 1).unwrap_or(0);
        let times: Vec<i64> = (0..n).map(|i| start + i as i64 * step).collect();
        let at = |text: &str| start + secs(text);

        let mut driven: Vec<Driven<'_>> = stack()
            .into_iter()
            .map(|(name, mut signal)| {
                if let Some(o) = self.signals.get(name) {
                    signal.apply(o);
                }
                Driven {
                    name,
                    start,
                    signal,
                    changes: self
                        .changes
                        .iter()
                        .filter(|c| c.target == name)
                        .map(|c| (at(&c.at), c.factor, c.add))
                        .collect(),
                    incidents: self
                        .incidents
                        .iter()
                        .filter(|i| i.target == name)
                        .map(|i| Active {
                            spec: i,
                            onset: at(&i.onset),
                            duration: secs(&i.duration),
                        })
                        .collect(),
                }
            })
            .collect();
        driven.sort_by_key(|d| d.name);

        // Restarts: the file's, and the one ending each leak.
        let mut restarts: Vec<(String, i64)> = self
            .restarts
            .iter()
            .map(|r| (r.job.clone(), at(&r.at)))
            .collect();
        for i in &self.incidents {
            if i.kind == IncidentKind::Leak
                && let Some(job) = i.target.strip_prefix("memory:")
            {
                restarts.push((job.to_string(), at(&i.onset) + secs(&i.duration)));
            }
        }
        let resets = |job: &str| -> Vec<bool> {
            times
                .iter()
                .map(|&t| {
                    restarts
                        .iter()
                        .any(|(j, r)| j == job && *r > t - step && *r <= t)
                })
                .collect()
        };

        // Every signal's values with noise.
        let phi = (-(step as f64) / NOISE_MEMORY_SECS).exp();
        let innovation = (1.0 - phi * phi).sqrt();
        let values: BTreeMap<&str, Vec<f64>> = driven
            .iter()
            .map(|d| {
                let mut rng = Rng::new(hash(self.seed, d.name));
                let mut e = rng.normal();
                let v = times
                    .iter()
                    .map(|&t| {
                        e = phi * e + innovation * rng.normal();
                        d.value(t, e)
                    })
                    .collect();
                (d.name, v)
            })
            .collect();
        let empty = vec![0.0; n];
        let sig = |name: &str| values.get(name).unwrap_or(&empty);
        let rng_for = |key: &str| Rng::new(hash(self.seed, &format!("raw {key}")));
        let dt = step as f64;

        let mut series: Vec<RawSeries> = Vec::new();
        for job in ["crm-api", "mes-api"] {
            let instance = format!("{job}:8080");
            let base = [
                ("job", job),
                ("instance", instance.as_str()),
                ("service", job),
            ];
            let cpu = sig(&format!("cpu:{job}"));
            let mut l = labels(&base);
            l.insert("__name__".into(), "process_cpu_seconds_total".into());
            series.push((
                l,
                counter(&times, 1000.0, &resets(job), |i| cpu[i] / 100.0 * dt),
            ));
            let mem = sig(&format!("memory:{job}"));
            let mut l = labels(&base);
            l.insert("__name__".into(), "process_resident_memory_bytes".into());
            series.push((
                l,
                times
                    .iter()
                    .zip(mem)
                    .map(|(&t, &v)| (t, v.round()))
                    .collect(),
            ));
        }
        let routes = [
            (
                "shop-api",
                [("/orders", "POST", 0.3), ("/products/{id}", "GET", 0.7)],
            ),
            (
                "crm-api",
                [("/customers", "POST", 0.2), ("/customers/{id}", "GET", 0.8)],
            ),
            (
                "mes-api",
                [("/jobs", "POST", 0.4), ("/jobs/{id}", "GET", 0.6)],
            ),
        ];
        for (job, job_routes) in routes {
            let instance = format!("{job}:8080");
            let user = sig(&format!("requests:{job}"));
            let system = sig(&format!("system:{job}"));
            let ratio = sig(&format!("errors:{job}"));
            let reset = resets(job);
            for (caller, k) in [("user", 0usize), ("user", 1), ("system", 0)] {
                let (route, method, share) = job_routes[k];
                let rate = if caller == "user" { user } else { system };
                let share = if caller == "user" { share } else { 1.0 };
                for code in ["200", "500"] {
                    let key = format!("{job} {route} {code} {caller}");
                    let mut rng = rng_for(&key);
                    let mut l = labels(&[
                        ("__name__", "http_requests_total"),
                        ("job", job),
                        ("instance", instance.as_str()),
                        ("service", job),
                        ("route", route),
                        ("method", method),
                        ("code", code),
                        ("caller", caller),
                    ]);
                    l.retain(|_, v| !v.is_empty());
                    let samples = counter(&times, 0.0, &reset, |i| {
                        let r = ratio[i].clamp(0.0, 1.0);
                        let part = if code == "500" { r } else { 1.0 - r };
                        poisson(&mut rng, rate[i] * share * part * dt)
                    });
                    series.push((l, samples));
                }
            }
        }
        for host in ["shop-db", "mes-db"] {
            let busy = sig(&format!("host_cpu:{host}"));
            for cpu in 0..HOST_CPUS {
                let cpu_name = cpu.to_string();
                let mut rng = rng_for(&format!("{host} cpu {cpu}"));
                let shares: Vec<f64> = busy
                    .iter()
                    .map(|b| (b / 100.0 * (1.0 + 0.05 * rng.normal())).clamp(0.0, 1.0))
                    .collect();
                for (mode, part) in [
                    ("idle", -1.0),
                    ("user", 0.7),
                    ("system", 0.2),
                    ("iowait", 0.1),
                ] {
                    let l = labels(&[
                        ("__name__", "node_cpu_seconds_total"),
                        ("job", "node-db"),
                        ("instance", host),
                        ("cpu", cpu_name.as_str()),
                        ("mode", mode),
                    ]);
                    let initial = 1e6 * if part < 0.0 { 0.7 } else { 0.3 * part };
                    let samples = counter(&times, initial, &[], |i| {
                        let b = shares[i];
                        dt * if part < 0.0 { 1.0 - b } else { b * part }
                    });
                    series.push((l, samples));
                }
            }
            let used = sig(&format!("disk:{host}"));
            let capacity = driven
                .iter()
                .find(|d| d.name == format!("disk:{host}"))
                .map_or(0.0, |d| d.signal.capacity);
            let fs = [
                ("job", "node-db"),
                ("instance", host),
                ("device", "/dev/nvme0n1p2"),
                ("fstype", "ext4"),
                ("mountpoint", "/"),
            ];
            let mut l = labels(&fs);
            l.insert("__name__".into(), "node_filesystem_avail_bytes".into());
            series.push((
                l,
                times
                    .iter()
                    .zip(used)
                    .map(|(&t, &u)| (t, (capacity - u).clamp(0.0, capacity).round()))
                    .collect(),
            ));
            let mut l = labels(&fs);
            l.insert("__name__".into(), "node_filesystem_size_bytes".into());
            series.push((l, times.iter().map(|&t| (t, capacity)).collect()));
        }
        let gauge = |name: &str, pairs: &[(&str, &str)], v: &[f64]| {
            let mut l = labels(pairs);
            l.insert("__name__".into(), name.into());
            (
                l,
                times
                    .iter()
                    .zip(v)
                    .map(|(&t, &x)| (t, x.round()))
                    .collect::<Vec<_>>(),
            )
        };
        for d in ["shop", "mes", "crm"] {
            series.push(gauge(
                "pg_database_size_bytes",
                &[
                    ("job", "postgres"),
                    ("instance", "postgres-exporter:9187"),
                    ("datname", d),
                ],
                sig(&format!("db:{d}")),
            ));
        }
        for b in ["shop-images", "mes-archive"] {
            series.push(gauge(
                "s3_bucket_size_bytes",
                &[
                    ("job", "s3-size"),
                    ("instance", "s3-size:9101"),
                    ("bucket", b),
                ],
                sig(&format!("bucket:{b}")),
            ));
        }
        let rabbit = [("job", "rabbitmq"), ("instance", "rabbitmq:15692")];
        for q in ["mes.work", "mes.dead", "crm.sync"] {
            for (metric, kind) in [
                ("rabbitmq_queue_messages_ready", "ready"),
                ("rabbitmq_queue_messages_unacked", "unacked"),
            ] {
                series.push(gauge(
                    metric,
                    &[rabbit[0], rabbit[1], ("vhost", "/"), ("queue", q)],
                    sig(&format!("{kind}:{q}")),
                ));
            }
        }
        let dead = sig("dead_letters:rabbitmq");
        let mut rng = rng_for("dead letters");
        let mut l = labels(&rabbit);
        l.insert(
            "__name__".into(),
            "rabbitmq_global_messages_dead_lettered_rejected_total".into(),
        );
        series.push((
            l,
            counter(&times, 0.0, &[], |i| poisson(&mut rng, dead[i] * dt)),
        ));

        // Scrape gaps.
        for g in &self.gaps {
            let from = at(&g.at);
            let to = from + secs(&g.lasts);
            for (l, samples) in &mut series {
                if g.matching.iter().all(|(k, v)| l.get(k) == Some(v)) {
                    samples.retain(|(t, _)| *t < from || *t >= to);
                }
            }
        }

        let incidents = self
            .incidents
            .iter()
            .flat_map(|i| {
                let onset = at(&i.onset);
                let end = onset + secs(&i.duration);
                let target = driven.iter().find(|d| d.name == i.target);
                i.truth.iter().map(move |t| Truth {
                    kind: i.kind.as_str().to_string(),
                    alert: t.alert.clone(),
                    labels: t.labels.clone(),
                    onset,
                    end,
                    static_expr: t.static_alert.as_ref().map(|s| s.expr.clone()),
                    static_for: t.static_alert.as_ref().map_or(0, |s| secs(&s.lasts)),
                    holds_from: t.holds.as_ref().and_then(|h| {
                        let within = secs(&h.within);
                        let d = target?;
                        let last = start + tm.length + within;
                        let mut tc = onset;
                        while tc <= last {
                            if d.value(tc, 0.0) >= h.threshold {
                                return Some((tc - within).max(onset));
                            }
                            tc += step;
                        }
                        None
                    }),
                    abrupt: t.abrupt.unwrap_or_else(|| i.kind.abrupt()),
                })
            })
            .collect();

        Scenario {
            name: self.name.clone(),
            description: self.description.clone(),
            start,
            evaluate_from: start + tm.evaluate_from,
            end: start + tm.length,
            series,
            incidents,
            traps: self.traps(&driven),
        }
    }

    /// What normal-but-tricky patterns the scenario holds, for the report.
    fn traps(&self, driven: &[Driven<'_>]) -> Vec<String> {
        let mut out = Vec::new();
        let with = |f: &dyn Fn(&Signal) -> bool| -> Vec<&'static str> {
            driven
                .iter()
                .filter(|d| f(&d.signal))
                .map(|d| d.name)
                .collect()
        };
        let daily = with(&|s| s.daily > 0.0);
        if !daily.is_empty() {
            out.push(format!("daily rhythm: {}", daily.join(", ")));
        }
        let weekend = with(&|s| s.weekend != 1.0);
        if !weekend.is_empty() {
            out.push(format!("weekend level: {}", weekend.join(", ")));
        }
        let monday = with(&|s| s.monday > 0.0);
        if !monday.is_empty() {
            out.push(format!("Monday peak: {}", monday.join(", ")));
        }
        for d in driven {
            for w in &d.signal.nightly {
                out.push(format!(
                    "nightly {} at {:02}:{:02} for {} min: {}",
                    w.what,
                    w.at / 3600,
                    w.at % 3600 / 60,
                    w.lasts / 60,
                    d.name
                ));
            }
        }
        for r in &self.restarts {
            out.push(format!("restart (counter reset) of {} at +{}", r.job, r.at));
        }
        for g in &self.gaps {
            let which = if g.matching.is_empty() {
                "every series".to_string()
            } else {
                g.matching
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            out.push(format!("scrape gap of {} at +{}: {which}", g.lasts, g.at));
        }
        for c in &self.changes {
            out.push(format!(
                "planned {} at +{}: {} ×{} {:+}",
                c.what, c.at, c.target, c.factor, c.add
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SPEC: &str = "\
name: t
seed: 5
start: 1741000000
length: 2d
step: 1m
evaluate_from: 1d
restarts:
  - {job: mes-api, at: 1d2h}
gaps:
  - {at: 1d5h, for: 10m, match: {job: rabbitmq}}
incidents:
  - kind: leak
    target: memory:mes-api
    onset: 1d6h
    duration: 10h
    magnitude: 100e6
    truth:
      - alert: ApiMemoryHighSoon
        labels: {job: mes-api}
        holds: {threshold: 1.5e9, within: 6h}
";

    fn spec(text: &str) -> ScenarioSpec {
        crate::suite::parse(Path::new("t.yml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn samples<'a>(s: &'a Scenario, name: &str, key: &str, value: &str) -> &'a [(i64, f64)] {
        &s.series
            .iter()
            .find(|(l, _)| l["__name__"] == name && l.get(key).is_some_and(|v| v == value))
            .unwrap_or_else(|| panic!("no {name}"))
            .1
    }

    #[test]
    fn the_same_seed_gives_the_same_samples() {
        let a = spec(SPEC).generate();
        let b = spec(SPEC).generate();
        assert_eq!(a.series, b.series);
        assert_eq!(a.incidents, b.incidents);
        let c = spec(&SPEC.replace("seed: 5", "seed: 6")).generate();
        assert_ne!(a.series, c.series);
    }

    #[test]
    fn overriding_one_signal_leaves_every_other_series_unchanged() {
        let a = spec(SPEC).generate();
        let b = spec(&format!("{SPEC}signals:\n  db:shop: {{level: 70e9}}\n")).generate();
        let mut changed = 0;
        for ((la, sa), (lb, sb)) in a.series.iter().zip(&b.series) {
            assert_eq!(la, lb);
            if sa != sb {
                changed += 1;
                assert_eq!(la["__name__"], "pg_database_size_bytes");
            }
        }
        assert_eq!(changed, 1);
    }

    #[test]
    fn restarts_reset_counters_and_gaps_drop_samples() {
        let s = spec(SPEC).generate();
        let restart = s.start + 86_400 + 7200;
        let cpu = samples(&s, "process_cpu_seconds_total", "job", "mes-api");
        let at = cpu
            .iter()
            .position(|p| p.0 == restart)
            .expect("a sample at the restart");
        assert!(
            cpu[at].1 < cpu[at - 1].1 && cpu[at].1 < 100.0,
            "{:?}",
            &cpu[at - 1..=at]
        );
        // The leak ends with a restart too.
        let leak_end = s.start + 86_400 + 16 * 3600;
        let at = cpu.iter().position(|p| p.0 == leak_end).expect("a sample");
        assert!(cpu[at].1 < cpu[at - 1].1);
        let gap = s.start + 86_400 + 5 * 3600;
        let ready = samples(&s, "rabbitmq_queue_messages_ready", "queue", "mes.work");
        assert!(!ready.iter().any(|p| p.0 >= gap && p.0 < gap + 600));
        assert!(ready.iter().any(|p| p.0 == gap + 600));
        let db = samples(&s, "pg_database_size_bytes", "datname", "shop");
        assert!(
            db.iter().any(|p| p.0 == gap + 300),
            "a gap for rabbitmq only"
        );
    }

    #[test]
    fn holds_from_is_when_the_noise_free_leak_is_within_reach_of_the_threshold() {
        let s = spec(SPEC).generate();
        let t = &s.incidents[0];
        let onset = s.start + 86_400 + 6 * 3600;
        assert_eq!((t.onset, t.end), (onset, onset + 36_000));
        // About 600 MB at onset (daily rhythm ±5%), +100 MB/h: 1.5 GB after ~9 h,
        // so within 6 h from ~3 h after onset.
        let h = t.holds_from.expect("holds_from") - onset;
        assert!((2 * 3600..5 * 3600).contains(&h), "{h}");
        let mem = samples(&s, "process_resident_memory_bytes", "job", "mes-api");
        let peak = mem
            .iter()
            .filter(|p| p.0 < t.end)
            .map(|p| p.1)
            .fold(0.0, f64::max);
        let after = mem.iter().find(|p| p.0 >= t.end).expect("after").1;
        assert!(peak > 1.5e9 && after < 0.7e9, "{peak} then {after}");
    }

    #[test]
    fn requests_split_by_code_follow_the_error_ratio() {
        let text = SPEC.replace(
            "incidents:",
            "incidents:\n  - kind: storm\n    target: errors:shop-api\n    onset: 1d12h\n    duration: 1h\n    magnitude: 0.5\n    truth: [{alert: Http500Anomalous}]",
        );
        let s = spec(&text).generate();
        let src = crate::source::memory::MemorySource::new(s.series.clone(), s.end);
        let ratio = |t: i64| {
            let v = src
                .instant(
                    r#"sum(rate(http_requests_total{service="shop-api", code="500"}[5m])) / sum(rate(http_requests_total{service="shop-api"}[5m]))"#,
                    t,
                )
                .expect("query");
            v[0].value
        };
        let storm = s.start + 86_400 + 12 * 3600 + 1800;
        assert!((ratio(storm) - 0.5).abs() < 0.05, "{}", ratio(storm));
        assert!(ratio(storm - 7200) < 0.01, "{}", ratio(storm - 7200));
    }
}
