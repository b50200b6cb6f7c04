//! Incidents: their kinds, the validation of start requests, and the
//! registry of active incidents with their expiry (the clock is a parameter,
//! so expiry is testable). What an incident *does* is in
//! [`faults`](crate::faults).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as MetricsRegistry;
use serde::{Deserialize, Serialize};

use crate::cli::ServiceKind;

/// Longest incident accepted, seconds (a day).
pub const MAX_DURATION_SECONDS: f64 = 86_400.0;
/// Duration when the request gives none, seconds.
pub const DEFAULT_DURATION_SECONDS: f64 = 600.0;
/// Strongest intensity accepted.
pub const MAX_INTENSITY: f64 = 10.0;

/// The kinds of incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Retained memory grows by ~intensity × 2 MiB/s.
    MemoryLeak,
    /// Burns ~intensity cores (capped by `--max-cpu-cores`).
    CpuSaturation,
    /// A fraction min(1, 0.5 × intensity) of API requests answer 500.
    #[serde(rename = "http_500_storm")]
    Http500Storm,
    /// The MES consumer stops acking; `mes.work` backs up, dead letters flow.
    StalledConsumer,
    /// Padding rows grow the service's database by ~intensity × 1 MiB/s.
    DbGrowth,
    /// Objects grow the S3 bucket by ~intensity × 1 MiB/s.
    S3Growth,
}

impl IncidentKind {
    /// Every kind, in documentation order.
    pub const ALL: [Self; 6] = [
        Self::MemoryLeak,
        Self::CpuSaturation,
        Self::Http500Storm,
        Self::StalledConsumer,
        Self::DbGrowth,
        Self::S3Growth,
    ];

    /// The wire name (`memory_leak`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::MemoryLeak => "memory_leak",
            Self::CpuSaturation => "cpu_saturation",
            Self::Http500Storm => "http_500_storm",
            Self::StalledConsumer => "stalled_consumer",
            Self::DbGrowth => "db_growth",
            Self::S3Growth => "s3_growth",
        }
    }

    /// The kind with wire name `name`.
    pub fn from_name(name: &str) -> Result<Self, IncidentError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| IncidentError::UnknownKind(name.to_owned()))
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn all_kind_names() -> String {
    IncidentKind::ALL.map(IncidentKind::name).join(", ")
}

/// What a running service can simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub service: ServiceKind,
    /// Whether S3 is configured (Shop with `--s3-*`).
    pub s3: bool,
}

impl Capabilities {
    /// `Ok` when `kind` can run on this service, otherwise why not.
    pub fn check(&self, kind: IncidentKind) -> Result<(), IncidentError> {
        use IncidentKind as K;
        use ServiceKind as S;
        let reason = match (kind, self.service) {
            (K::MemoryLeak | K::CpuSaturation | K::Http500Storm, _) => None,
            (K::StalledConsumer, S::Mes) => None,
            (K::StalledConsumer, _) => Some("only the MES API has a queue consumer"),
            (K::DbGrowth, S::Shop | S::Mes) => None,
            (K::DbGrowth, S::Crm) => Some("db_growth runs on shop-api and mes-api"),
            (K::S3Growth, S::Shop) if self.s3 => None,
            (K::S3Growth, S::Shop) => Some("start it with --s3-endpoint and --s3-bucket"),
            (K::S3Growth, _) => Some("only shop-api (with --s3-*) writes to S3"),
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(IncidentError::NotAvailable {
                kind,
                service: self.service.name(),
                reason,
            }),
        }
    }

    /// The kinds available here.
    pub fn kinds(&self) -> Vec<IncidentKind> {
        IncidentKind::ALL
            .into_iter()
            .filter(|k| self.check(*k).is_ok())
            .collect()
    }
}

/// Why an incident request was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IncidentError {
    #[error(
        "invalid request body: {0}; expected JSON like {{\"kind\": \"memory_leak\", \"duration_seconds\": 600, \"intensity\": 1.0}} (duration_seconds and intensity optional)"
    )]
    BadJson(String),
    #[error("unknown incident kind {0:?}; expected one of: {kinds}", kinds = all_kind_names())]
    UnknownKind(String),
    #[error("kind {kind} is not available on service {service} ({reason})")]
    NotAvailable {
        kind: IncidentKind,
        service: &'static str,
        reason: &'static str,
    },
    #[error("duration_seconds must be a number > 0 and at most {MAX_DURATION_SECONDS}, got {0}")]
    BadDuration(f64),
    #[error("intensity must be a number > 0 and at most {MAX_INTENSITY}, got {0}")]
    BadIntensity(f64),
    #[error("no active incident of kind {0}")]
    NotActive(IncidentKind),
}

/// The JSON body of `POST /admin/incidents`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentBody {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<f64>,
}

/// A validated request to start an incident.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IncidentRequest {
    pub kind: IncidentKind,
    pub duration: Duration,
    pub intensity: f64,
}

/// Parses and validates the body of `POST /admin/incidents` for a service
/// with `caps`.
pub fn parse_request(body: &[u8], caps: &Capabilities) -> Result<IncidentRequest, IncidentError> {
    let body: IncidentBody =
        serde_json::from_slice(body).map_err(|e| IncidentError::BadJson(e.to_string()))?;
    let kind = IncidentKind::from_name(body.kind.trim())?;
    caps.check(kind)?;
    let secs = body.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
    if !(secs.is_finite() && secs > 0.0 && secs <= MAX_DURATION_SECONDS) {
        return Err(IncidentError::BadDuration(secs));
    }
    let intensity = body.intensity.unwrap_or(1.0);
    if !(intensity.is_finite() && intensity > 0.0 && intensity <= MAX_INTENSITY) {
        return Err(IncidentError::BadIntensity(intensity));
    }
    Ok(IncidentRequest {
        kind,
        duration: Duration::from_secs_f64(secs),
        intensity,
    })
}

/// Share of API requests that answer 500 during an `http_500_storm` of
/// `intensity`: min(1, 0.5 × intensity).
pub fn storm_fraction(intensity: f64) -> f64 {
    (0.5 * intensity).clamp(0.0, 1.0)
}

/// Tells a running incident effect to stop: set when the incident is
/// stopped, replaced or expires. Effects also stop by themselves at `ends`.
#[derive(Clone, Debug)]
pub struct Lease {
    stopped: Arc<AtomicBool>,
    ends: Instant,
}

impl Lease {
    fn new(ends: Instant) -> Self {
        Self {
            stopped: Arc::new(AtomicBool::new(false)),
            ends,
        }
    }

    /// Whether the effect should keep going at `now`.
    pub fn live_at(&self, now: Instant) -> bool {
        !self.stopped.load(Ordering::Relaxed) && now < self.ends
    }

    /// Whether the effect should keep going now.
    pub fn live(&self) -> bool {
        self.live_at(Instant::now())
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// An active incident as answered by the admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub kind: IncidentKind,
    pub intensity: f64,
    pub duration_seconds: f64,
    pub remaining_seconds: f64,
    /// Start, seconds since the Unix epoch.
    pub started_at_unix: f64,
}

#[derive(Debug)]
struct Active {
    request: IncidentRequest,
    started: Instant,
    started_unix: f64,
    lease: Lease,
}

impl Active {
    fn ends(&self) -> Instant {
        self.started + self.request.duration
    }

    fn view(&self, now: Instant) -> IncidentView {
        IncidentView {
            kind: self.request.kind,
            intensity: self.request.intensity,
            duration_seconds: self.request.duration.as_secs_f64(),
            remaining_seconds: self.ends().saturating_duration_since(now).as_secs_f64(),
            started_at_unix: self.started_unix,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The active incidents of a service. Every method takes the current time,
/// so tests can drive expiry with a made-up clock.
#[derive(Debug, Default)]
pub struct Incidents {
    active: Mutex<HashMap<IncidentKind, Active>>,
    gauge: Family<KindLabel, Gauge>,
}

impl Incidents {
    /// A registry exporting `demo_incident_active{kind}` (1 while active).
    pub fn new(metrics: &mut MetricsRegistry) -> Self {
        let this = Self::default();
        metrics.register(
            "demo_incident_active",
            "Whether an injected demo incident of this kind is active (1) or not (0)",
            this.gauge.clone(),
        );
        for kind in IncidentKind::ALL {
            this.set_gauge(kind, false);
        }
        this
    }

    fn set_gauge(&self, kind: IncidentKind, on: bool) {
        let label = KindLabel {
            kind: kind.name().to_owned(),
        };
        self.gauge.get_or_create(&label).set(i64::from(on));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IncidentKind, Active>> {
        // A panic while holding the lock leaves a consistent map: keep going.
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `request` at `now`, replacing (and stopping) an active
    /// incident of the same kind. Returns its view and the lease its effect
    /// must watch.
    pub fn start(&self, request: IncidentRequest, now: Instant) -> (IncidentView, Lease) {
        let started_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let active = Active {
            request,
            started: now,
            started_unix,
            lease: Lease::new(now + request.duration),
        };
        let view = active.view(now);
        let lease = active.lease.clone();
        if let Some(old) = self.lock().insert(request.kind, active) {
            old.lease.stop();
        }
        self.set_gauge(request.kind, true);
        (view, lease)
    }

    /// Stops the active incident of `kind`.
    pub fn stop(&self, kind: IncidentKind, now: Instant) -> Result<IncidentView, IncidentError> {
        let mut active = self.lock();
        match active.remove(&kind) {
            Some(a) if now < a.ends() => {
                a.lease.stop();
                drop(active);
                self.set_gauge(kind, false);
                Ok(a.view(now))
            }
            Some(a) => {
                a.lease.stop();
                drop(active);
                self.set_gauge(kind, false);
                Err(IncidentError::NotActive(kind))
            }
            None => Err(IncidentError::NotActive(kind)),
        }
    }

    /// The incidents active at `now`, by kind.
    pub fn list(&self, now: Instant) -> Vec<IncidentView> {
        let mut views: Vec<_> = self
            .lock()
            .values()
            .filter(|a| now < a.ends())
            .map(|a| a.view(now))
            .collect();
        views.sort_by_key(|v| IncidentKind::ALL.iter().position(|k| *k == v.kind));
        views
    }

    /// Removes the incidents whose time is up at `now`, stopping their
    /// effects; returns their kinds.
    pub fn expire(&self, now: Instant) -> Vec<IncidentKind> {
        let mut expired = Vec::new();
        self.lock().retain(|kind, a| {
            let live = now < a.ends();
            if !live {
                a.lease.stop();
                expired.push(*kind);
            }
            live
        });
        for kind in &expired {
            self.set_gauge(*kind, false);
        }
        expired
    }

    /// The intensity of `kind` if it is active at `now`.
    pub fn intensity(&self, kind: IncidentKind, now: Instant) -> Option<f64> {
        self.lock()
            .get(&kind)
            .filter(|a| now < a.ends())
            .map(|a| a.request.intensity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: Capabilities = Capabilities {
        service: ServiceKind::Shop,
        s3: false,
    };
    const MES: Capabilities = Capabilities {
        service: ServiceKind::Mes,
        s3: false,
    };

    #[test]
    fn valid_request_with_defaults() {
        let r = parse_request(br#"{"kind": "memory_leak"}"#, &SHOP).unwrap();
        assert_eq!(r.kind, IncidentKind::MemoryLeak);
        assert_eq!(r.duration, Duration::from_secs(600));
        assert_eq!(r.intensity, 1.0);
        let r = parse_request(
            br#"{"kind":"stalled_consumer","duration_seconds":30,"intensity":2.5}"#,
            &MES,
        )
        .unwrap();
        assert_eq!(r.duration, Duration::from_secs(30));
        assert_eq!(r.intensity, 2.5);
    }

    #[test]
    fn invalid_requests_are_refused_with_reasons() {
        let e = parse_request(br#"{"kind": "meteor_strike"}"#, &SHOP).unwrap_err();
        assert_eq!(e, IncidentError::UnknownKind("meteor_strike".into()));
        assert!(e.to_string().contains("memory_leak, cpu_saturation"), "{e}");

        let e = parse_request(br#"{"kind": "stalled_consumer"}"#, &SHOP).unwrap_err();
        assert!(matches!(e, IncidentError::NotAvailable { .. }));
        assert!(
            e.to_string()
                .starts_with("kind stalled_consumer is not available on service shop-api"),
            "{e}"
        );
        // S3 only with S3 configured, only on the shop.
        assert!(parse_request(br#"{"kind": "s3_growth"}"#, &SHOP).is_err());
        let shop_s3 = Capabilities { s3: true, ..SHOP };
        assert!(parse_request(br#"{"kind": "s3_growth"}"#, &shop_s3).is_ok());
        let crm = Capabilities {
            service: ServiceKind::Crm,
            s3: true,
        };
        assert!(parse_request(br#"{"kind": "db_growth"}"#, &crm).is_err());

        let e =
            parse_request(br#"{"kind": "db_growth", "duration_seconds": -5}"#, &MES).unwrap_err();
        assert_eq!(e, IncidentError::BadDuration(-5.0));
        assert!(matches!(
            parse_request(br#"{"kind": "db_growth", "duration_seconds": 0}"#, &MES),
            Err(IncidentError::BadDuration(_))
        ));
        assert!(matches!(
            parse_request(br#"{"kind": "db_growth", "intensity": 0}"#, &MES),
            Err(IncidentError::BadIntensity(_))
        ));
        assert!(matches!(
            parse_request(br#"{"kind": "db_growth", "intensity": 1000}"#, &MES),
            Err(IncidentError::BadIntensity(_))
        ));
        for bad in [
            &b"not json"[..],
            br#"{"kind": 3}"#,
            br#"{"duration_seconds": 3}"#,
            br#"{"kind": "db_growth", "colour": "red"}"#,
            br#"{"kind": "db_growth", "duration_seconds": "10m"}"#,
        ] {
            let e = parse_request(bad, &MES).unwrap_err();
            assert!(matches!(e, IncidentError::BadJson(_)), "{e:?}");
            assert!(e.to_string().contains("expected JSON like"), "{e}");
        }
    }

    #[test]
    fn json_names_are_the_wire_names() {
        for kind in IncidentKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(IncidentKind::from_name(kind.name()), Ok(kind));
        }
    }

    #[test]
    fn availability_matrix() {
        let crm = Capabilities {
            service: ServiceKind::Crm,
            s3: false,
        };
        assert_eq!(
            crm.kinds(),
            [
                IncidentKind::MemoryLeak,
                IncidentKind::CpuSaturation,
                IncidentKind::Http500Storm
            ]
        );
        assert!(MES.kinds().contains(&IncidentKind::StalledConsumer));
        assert!(MES.kinds().contains(&IncidentKind::DbGrowth));
        assert!(!MES.kinds().contains(&IncidentKind::S3Growth));
    }

    #[test]
    fn storm_fraction_scales_and_caps() {
        assert_eq!(storm_fraction(0.2), 0.1);
        assert_eq!(storm_fraction(1.0), 0.5);
        assert_eq!(storm_fraction(2.0), 1.0);
        assert_eq!(storm_fraction(7.0), 1.0);
    }

    fn request(kind: IncidentKind, secs: u64, intensity: f64) -> IncidentRequest {
        IncidentRequest {
            kind,
            duration: Duration::from_secs(secs),
            intensity,
        }
    }

    #[test]
    fn incidents_expire_on_the_injected_clock() {
        let incidents = Incidents::default();
        let t0 = Instant::now();
        let (view, lease) = incidents.start(request(IncidentKind::DbGrowth, 60, 2.0), t0);
        assert_eq!(view.remaining_seconds, 60.0);
        let (_, cpu) = incidents.start(request(IncidentKind::CpuSaturation, 10, 1.0), t0);

        let t30 = t0 + Duration::from_secs(30);
        assert_eq!(incidents.intensity(IncidentKind::DbGrowth, t30), Some(2.0));
        assert_eq!(incidents.intensity(IncidentKind::CpuSaturation, t30), None);
        assert!(lease.live_at(t30));
        assert!(!cpu.live_at(t30), "past its end the effect stops by itself");
        let listed = incidents.list(t30);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].remaining_seconds, 30.0);

        assert_eq!(incidents.expire(t30), [IncidentKind::CpuSaturation]);
        assert!(incidents.expire(t30).is_empty());
        let t60 = t0 + Duration::from_secs(60);
        assert_eq!(incidents.expire(t60), [IncidentKind::DbGrowth]);
        assert!(incidents.list(t60).is_empty());
        assert!(!lease.live_at(t0), "expired lease is stopped");
    }

    #[test]
    fn stop_and_replace() {
        let incidents = Incidents::default();
        let t0 = Instant::now();
        let (_, first) = incidents.start(request(IncidentKind::MemoryLeak, 60, 1.0), t0);
        let (_, second) = incidents.start(request(IncidentKind::MemoryLeak, 60, 3.0), t0);
        assert!(!first.live_at(t0), "replaced incident is stopped");
        assert!(second.live_at(t0));
        assert_eq!(incidents.intensity(IncidentKind::MemoryLeak, t0), Some(3.0));
        let view = incidents.stop(IncidentKind::MemoryLeak, t0).unwrap();
        assert_eq!(view.intensity, 3.0);
        assert!(!second.live_at(t0));
        assert_eq!(
            incidents.stop(IncidentKind::MemoryLeak, t0),
            Err(IncidentError::NotActive(IncidentKind::MemoryLeak))
        );
    }
}
