//! `prognos-demo load`: requests to the three services following the daily
//! and weekly rhythm of [`rhythm`](crate::rhythm).
//!
//! Requests arrive as a Poisson process thinned by the rhythm: candidates
//! come at `--rps` (the weekday-afternoon peak) and each is sent with
//! probability [`rhythm::factor`] of the simulated time. About 80% are user
//! traffic and 20% system traffic (`X-Caller-Kind: system`: health probes,
//! batch reads, batch work orders). Failures never stop the generator: they
//! are counted and summarised in the log at most once per 10 s.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;
use url::Url;

use crate::cli::LoadArgs;
use crate::crm::SEEDED_CUSTOMERS;
use crate::rhythm::{self, SimClock};
use crate::shop::SEEDED_PRODUCTS;

/// Share of requests sent as system traffic.
pub const SYSTEM_SHARE: f64 = 0.2;
/// Ids of created orders / work orders remembered for later reads.
const KNOWN_IDS: usize = 1000;
/// How often errors are summarised in the log at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);

const CATEGORIES: [&str; 5] = ["furniture", "lighting", "kitchen", "garden", "office"];
const SEGMENTS: [&str; 3] = ["retail", "business", "enterprise"];

/// Which service a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Shop,
    Crm,
    Mes,
}

/// What a request creates, to remember its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creates {
    Nothing,
    Order,
    WorkOrder,
    Image,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    None,
    Json(serde_json::Value),
    Bytes(usize),
}

/// One request to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub target: Target,
    pub method: Method,
    pub path: String,
    pub body: Body,
    pub system: bool,
    pub creates: Creates,
}

impl Planned {
    fn get(target: Target, path: String, system: bool) -> Self {
        Self {
            target,
            method: Method::GET,
            path,
            body: Body::None,
            system,
            creates: Creates::Nothing,
        }
    }

    fn post(target: Target, path: String, body: Body, system: bool, creates: Creates) -> Self {
        Self {
            target,
            method: Method::POST,
            path,
            body,
            system,
            creates,
        }
    }
}

/// Ids learnt from responses.
#[derive(Debug, Default)]
pub struct Known {
    orders: VecDeque<i64>,
    work_orders: VecDeque<i64>,
}

impl Known {
    fn remember(list: &mut VecDeque<i64>, id: i64) {
        if list.len() == KNOWN_IDS {
            list.pop_front();
        }
        list.push_back(id);
    }

    fn pick(list: &VecDeque<i64>, rng: &mut impl Rng) -> Option<i64> {
        (!list.is_empty()).then(|| list[rng.random_range(0..list.len())])
    }
}

fn work_order_body(rng: &mut impl Rng, batch: bool) -> serde_json::Value {
    let (prefix, quantity) = if batch {
        ("BATCH", rng.random_range(50..=500))
    } else {
        ("PART", rng.random_range(1..=40))
    };
    json!({
        "product_code": format!("{prefix}-{}", rng.random_range(100..200)),
        "quantity": quantity,
        "line": format!("L{}", rng.random_range(1..=4)),
    })
}

fn plan_system(rng: &mut impl Rng) -> Planned {
    let r: f64 = rng.random();
    if r < 0.35 {
        let target = [Target::Shop, Target::Crm, Target::Mes][rng.random_range(0..3)];
        Planned::get(target, "/healthz".into(), true)
    } else if r < 0.55 {
        let offset = 100 * rng.random_range(0..3);
        Planned::get(
            Target::Shop,
            format!("/products?limit=100&offset={offset}"),
            true,
        )
    } else if r < 0.70 {
        let offset = 100 * rng.random_range(0..10);
        Planned::get(
            Target::Crm,
            format!("/customers?limit=100&offset={offset}"),
            true,
        )
    } else if r < 0.90 {
        let body = Body::Json(work_order_body(rng, true));
        Planned::post(
            Target::Mes,
            "/work-orders".into(),
            body,
            true,
            Creates::WorkOrder,
        )
    } else {
        Planned::get(
            Target::Mes,
            "/work-orders?status=queued&limit=50".into(),
            true,
        )
    }
}

fn plan_shop(rng: &mut impl Rng, known: &Known, images: bool) -> Planned {
    let r: f64 = rng.random();
    let product = rng.random_range(1..=SEEDED_PRODUCTS);
    if r < 0.30 {
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        Planned::get(
            Target::Shop,
            format!("/products?category={category}"),
            false,
        )
    } else if r < 0.70 {
        Planned::get(Target::Shop, format!("/products/{product}"), false)
    } else if r < 0.85 {
        let items: Vec<_> = (0..rng.random_range(1..=4))
            .map(|_| {
                json!({
                    "product_id": rng.random_range(1..=SEEDED_PRODUCTS),
                    "quantity": rng.random_range(1..=3),
                })
            })
            .collect();
        let body = json!({
            "customer_id": rng.random_range(1..=SEEDED_CUSTOMERS),
            "items": items,
        });
        Planned::post(
            Target::Shop,
            "/orders".into(),
            Body::Json(body),
            false,
            Creates::Order,
        )
    } else if r < 0.95 {
        match Known::pick(&known.orders, rng) {
            Some(id) => Planned::get(Target::Shop, format!("/orders/{id}"), false),
            None => Planned::get(Target::Shop, format!("/products/{product}"), false),
        }
    } else if images {
        let size = rng.random_range(20_000..200_000);
        Planned::post(
            Target::Shop,
            format!("/products/{product}/image"),
            Body::Bytes(size),
            false,
            Creates::Image,
        )
    } else {
        Planned::get(Target::Shop, format!("/products/{product}"), false)
    }
}

fn plan_crm(rng: &mut impl Rng) -> Planned {
    let r: f64 = rng.random();
    let customer = rng.random_range(1..=SEEDED_CUSTOMERS);
    if r < 0.20 {
        let segment = SEGMENTS[rng.random_range(0..SEGMENTS.len())];
        Planned::get(Target::Crm, format!("/customers?segment={segment}"), false)
    } else if r < 0.80 {
        Planned::get(Target::Crm, format!("/customers/{customer}"), false)
    } else {
        let topics = [
            "called about delivery",
            "asked for an invoice copy",
            "interested in the garden range",
            "complained about a late order",
            "renewal discussed",
        ];
        let body = json!({
            "body": topics[rng.random_range(0..topics.len())],
            "author": format!("agent-{}", rng.random_range(1..=12)),
        });
        Planned::post(
            Target::Crm,
            format!("/customers/{customer}/notes"),
            Body::Json(body),
            false,
            Creates::Nothing,
        )
    }
}

fn plan_mes(rng: &mut impl Rng, known: &Known) -> Planned {
    let r: f64 = rng.random();
    if r < 0.45 {
        let body = Body::Json(work_order_body(rng, false));
        Planned::post(
            Target::Mes,
            "/work-orders".into(),
            body,
            false,
            Creates::WorkOrder,
        )
    } else if r < 0.85 {
        match Known::pick(&known.work_orders, rng) {
            Some(id) => Planned::get(Target::Mes, format!("/work-orders/{id}"), false),
            None => Planned::get(Target::Mes, "/work-orders?limit=20".into(), false),
        }
    } else {
        Planned::get(Target::Mes, "/work-orders?limit=20".into(), false)
    }
}

/// Draws the next request: 20% system, else user traffic split Shop 50%,
/// CRM 25%, MES 25%, mostly reads.
pub fn plan(rng: &mut impl Rng, known: &Known, images: bool) -> Planned {
    if rng.random_bool(SYSTEM_SHARE) {
        return plan_system(rng);
    }
    let r: f64 = rng.random();
    if r < 0.5 {
        plan_shop(rng, known, images)
    } else if r < 0.75 {
        plan_crm(rng)
    } else {
        plan_mes(rng, known)
    }
}

#[derive(Debug, Default)]
struct Stats {
    sent: AtomicU64,
    ok: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    skipped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn error(&self, counter: &AtomicU64, message: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    fn failures(&self) -> u64 {
        self.server_errors.load(Ordering::Relaxed) + self.transport_errors.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    shop: String,
    crm: String,
    mes: String,
    known: Mutex<Known>,
    images: AtomicBool,
    stats: Stats,
}

impl Shared {
    fn base(&self, target: Target) -> &str {
        match target {
            Target::Shop => &self.shop,
            Target::Crm => &self.crm,
            Target::Mes => &self.mes,
        }
    }
}

async fn send(shared: Arc<Shared>, planned: Planned) {
    let url = format!("{}{}", shared.base(planned.target), planned.path);
    let mut request = shared.client.request(planned.method.clone(), &url);
    if planned.system {
        request = request.header(prognos_exporters::http::CALLER_HEADER, "system");
    }
    request = match planned.body {
        Body::None => request,
        Body::Json(ref body) => request.json(body),
        Body::Bytes(size) => {
            let mut bytes = vec![0u8; size];
            rand::rng().fill(&mut bytes[..]);
            request
                .header(reqwest::header::CONTENT_TYPE, "image/jpeg")
                .body(bytes)
        }
    };
    let stats = &shared.stats;
    stats.sent.fetch_add(1, Ordering::Relaxed);
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            stats.error(
                &stats.transport_errors,
                format!("{} {url}: {e}", planned.method),
            );
            return;
        }
    };
    let status = response.status();
    if status.is_success() {
        stats.ok.fetch_add(1, Ordering::Relaxed);
        let id = match planned.creates {
            Creates::Order | Creates::WorkOrder => response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v.get("id").and_then(serde_json::Value::as_i64)),
            Creates::Nothing | Creates::Image => None,
        };
        if let Some(id) = id {
            let mut known = shared.known.lock().unwrap_or_else(|e| e.into_inner());
            match planned.creates {
                Creates::Order => Known::remember(&mut known.orders, id),
                _ => Known::remember(&mut known.work_orders, id),
            }
        }
    } else if planned.creates == Creates::Image && status == reqwest::StatusCode::NOT_IMPLEMENTED {
        // The shop runs without S3: stop trying.
        if shared.images.swap(false, Ordering::Relaxed) {
            tracing::info!("shop has no S3 configured; no more image uploads");
        }
    } else if status.is_server_error() {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(200).collect();
        stats.error(
            &stats.server_errors,
            format!("{} {url}: {status} {body}", planned.method),
        );
    } else {
        stats.client_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Logs a summary every [`REPORT_EVERY`], with the errors of the period.
async fn report(shared: Arc<Shared>, clock: SimClock) {
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    let (mut last_sent, mut last_failures) = (0, 0);
    loop {
        tick.tick().await;
        let stats = &shared.stats;
        let sent = stats.sent.load(Ordering::Relaxed);
        let failures = stats.failures();
        let sim = clock.at(Instant::now());
        tracing::info!(
            sent_per_s = (sent - last_sent) as f64 / REPORT_EVERY.as_secs_f64(),
            sent,
            ok = stats.ok.load(Ordering::Relaxed),
            client_errors = stats.client_errors.load(Ordering::Relaxed),
            skipped = stats.skipped.load(Ordering::Relaxed),
            simulated = %sim.format("%a %H:%M"),
            rhythm = format!("{:.2}", rhythm::factor(sim)),
            "load"
        );
        if failures > last_failures {
            let last = stats
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            tracing::warn!(
                errors = failures - last_failures,
                server_errors = stats.server_errors.load(Ordering::Relaxed),
                transport_errors = stats.transport_errors.load(Ordering::Relaxed),
                last_error = %last,
                "requests failed in the last {REPORT_EVERY:?}"
            );
        }
        (last_sent, last_failures) = (sent, failures);
    }
}

fn base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Runs `prognos-demo load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    ensure!(
        args.rps.is_finite() && args.rps > 0.0,
        "--rps must be a number > 0"
    );
    ensure!(
        args.time_scale.is_finite() && args.time_scale > 0.0,
        "--time-scale must be a number > 0"
    );
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let sim_start = args.sim_start.unwrap_or_else(Utc::now);
    let clock = SimClock::new(sim_start, args.time_scale, Instant::now());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let shared = Arc::new(Shared {
        client,
        shop: base(&args.shop),
        crm: base(&args.crm),
        mes: base(&args.mes),
        known: Mutex::default(),
        images: AtomicBool::new(true),
        stats: Stats::default(),
    });
    tracing::info!(
        seed,
        peak_rps = args.rps,
        time_scale = args.time_scale,
        "load generator started"
    );
    let reporter = tokio::spawn(report(Arc::clone(&shared), clock));
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let end = (!args.duration.is_zero()).then(|| tokio::time::Instant::now() + args.duration);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut next = tokio::time::Instant::now();
    loop {
        let u: f64 = rng.random();
        next += Duration::from_secs_f64(-(1.0 - u).ln() / args.rps);
        // After a stall (suspended machine, overload) do not send a burst.
        let now = tokio::time::Instant::now();
        if next + Duration::from_secs(1) < now {
            next = now;
        }
        if end.is_some_and(|end| next >= end) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = &mut ctrl_c => break,
        }
        let factor = rhythm::factor(clock.at(Instant::now()));
        if rng.random::<f64>() >= factor {
            continue;
        }
        let planned = {
            let known = shared.known.lock().unwrap_or_else(|e| e.into_inner());
            plan(&mut rng, &known, shared.images.load(Ordering::Relaxed))
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    send(shared, planned).await;
                    drop(permit);
                });
            }
            Err(_) => {
                shared.stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    reporter.abort();
    // Let requests in flight finish (bounded by the client timeout).
    let _ = permits.acquire_many(args.concurrency as u32).await;
    let stats = &shared.stats;
    tracing::info!(
        seed,
        sent = stats.sent.load(Ordering::Relaxed),
        ok = stats.ok.load(Ordering::Relaxed),
        client_errors = stats.client_errors.load(Ordering::Relaxed),
        server_errors = stats.server_errors.load(Ordering::Relaxed),
        transport_errors = stats.transport_errors.load(Ordering::Relaxed),
        skipped = stats.skipped.load(Ordering::Relaxed),
        "load generator stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn mix_is_mostly_user_reads_over_all_services() {
        let mut rng = StdRng::seed_from_u64(7);
        let known = Known::default();
        let n = 20_000;
        let plans: Vec<_> = (0..n).map(|_| plan(&mut rng, &known, false)).collect();
        let system = plans.iter().filter(|p| p.system).count() as f64 / n as f64;
        assert!((0.18..0.22).contains(&system), "system share {system}");
        let writes = plans.iter().filter(|p| p.method == Method::POST).count() as f64 / n as f64;
        assert!((0.1..0.35).contains(&writes), "write share {writes}");
        let mut by_target: HashMap<Target, usize> = HashMap::new();
        for p in &plans {
            *by_target.entry(p.target).or_default() += 1;
        }
        for t in [Target::Shop, Target::Crm, Target::Mes] {
            assert!(by_target[&t] > n / 10, "{t:?}: {by_target:?}");
        }
        assert!(plans.iter().any(|p| p.creates == Creates::Order));
        assert!(plans.iter().any(|p| p.creates == Creates::WorkOrder));
        assert!(plans.iter().any(|p| p.path == "/healthz" && p.system));
        // No image uploads when the shop has no S3.
        assert!(!plans.iter().any(|p| p.creates == Creates::Image));
        // Reads of orders need known ids.
        assert!(!plans.iter().any(|p| p.path.starts_with("/orders/")));
    }

    #[test]
    fn same_seed_same_requests() {
        let known = Known::default();
        let a: Vec<_> = {
            let mut rng = StdRng::seed_from_u64(42);
            (0..100).map(|_| plan(&mut rng, &known, true)).collect()
        };
        let b: Vec<_> = {
            let mut rng = StdRng::seed_from_u64(42);
            (0..100).map(|_| plan(&mut rng, &known, true)).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn known_ids_are_used_and_bounded() {
        let mut known = Known::default();
        for id in 0..(KNOWN_IDS as i64 + 5) {
            Known::remember(&mut known.orders, id);
        }
        assert_eq!(known.orders.len(), KNOWN_IDS);
        assert_eq!(known.orders.front(), Some(&5));
        let mut rng = StdRng::seed_from_u64(1);
        let reads_orders = (0..5000)
            .map(|_| plan(&mut rng, &known, false))
            .filter(|p| p.path.starts_with("/orders/"))
            .count();
        assert!(reads_orders > 0);
    }
}
