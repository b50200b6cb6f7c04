//! The demo services against a real PostgreSQL and RabbitMQ (started by
//! `deploy/baremetal/stack up postgres rabbitmq` on PORT_BASE 24000).
//!
//! One test starts the stack and the three services once, then runs the
//! scenarios in order; every scenario runs even if an earlier one failed,
//! and the test fails listing the failed ones with the services' logs.

mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{PORT_BASE, Service, Stack, demo_bin, metric_sum, wait_until};

const TOKEN: &str = "demo-admin-token";

/// Fields drop in order: the services stop before the stack.
struct Ctx {
    http: reqwest::Client,
    shop: Service,
    crm: Service,
    mes: Service,
    token_file: String,
    amqp: Connection,
    mes_db: tokio_postgres::Client,
    server_db: tokio_postgres::Client,
    stack: Stack,
}

async fn pg(url: &str, dbname: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url.parse().expect("postgres url");
    config.dbname(dbname);
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("test connects to PostgreSQL");
    tokio::spawn(connection);
    client
}

impl Ctx {
    async fn get(&self, url: String) -> anyhow::Result<(StatusCode, Value)> {
        let r = self.http.get(&url).send().await.context(url)?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn post(&self, url: String, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        let r = self.http.post(&url).json(&body).send().await.context(url)?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// POST /admin/incidents on `service` (with the token for the shop).
    async fn incident(
        &self,
        service: &Service,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let r = self
            .http
            .post(format!("{}/admin/incidents", service.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn stop_incident(&self, service: &Service, kind: &str) -> anyhow::Result<StatusCode> {
        let r = self
            .http
            .delete(format!("{}/admin/incidents/{kind}", service.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        Ok(r.status())
    }

    async fn metrics(&self, service: &Service) -> Result<String, String> {
        let r = self
            .http
            .get(format!("{}/metrics", service.url))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        r.text().await.map_err(|e| e.to_string())
    }

    /// Messages ready in `queue` (AMQP passive declare: no stats delay).
    async fn ready(&self, queue: &str) -> Result<u32, String> {
        let channel = self
            .amqp
            .create_channel()
            .await
            .map_err(|e| e.to_string())?;
        let q = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default().passive(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let _ = channel.close(200, "done".into()).await;
        Ok(q.message_count())
    }

    async fn database_size(&self, name: &str) -> Result<i64, String> {
        self.server_db
            .query_one("SELECT pg_database_size($1)", &[&name])
            .await
            .map(|row| row.get(0))
            .map_err(|e| e.to_string())
    }
}

async fn healthy(http: &reqwest::Client, service: &mut Service) -> anyhow::Result<()> {
    let url = format!("{}/healthz", service.url);
    let name = service.name.clone();
    let result = wait_until(&format!("{name} healthy"), Duration::from_secs(60), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            match http.get(&url).send().await {
                Ok(r) if r.status() == StatusCode::OK => Ok(()),
                Ok(r) => Err(format!(
                    "{} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    ensure!(
        service.running(),
        "{name} exited:\n{}",
        service.log_tail(4000)
    );
    result
}

async fn healthz_and_crud(ctx: &Ctx) -> anyhow::Result<()> {
    let (status, products) = ctx
        .get(format!("{}/products?limit=100", ctx.shop.url))
        .await?;
    ensure!(status == StatusCode::OK, "GET /products: {status}");
    ensure!(products.as_array().map(Vec::len) == Some(100), "{products}");
    let (status, _) = ctx.get(format!("{}/products/999999", ctx.shop.url)).await?;
    ensure!(status == StatusCode::NOT_FOUND, "unknown product: {status}");

    let order = json!({"customer_id": 12, "items": [
        {"product_id": 3, "quantity": 2}, {"product_id": 7, "quantity": 1}]});
    let (status, created) = ctx.post(format!("{}/orders", ctx.shop.url), order).await?;
    ensure!(
        status == StatusCode::CREATED,
        "POST /orders: {status} {created}"
    );
    let id = created["id"].as_i64().context("order id")?;
    let (status, fetched) = ctx.get(format!("{}/orders/{id}", ctx.shop.url)).await?;
    ensure!(status == StatusCode::OK, "GET /orders/{id}: {status}");
    ensure!(
        fetched["items"].as_array().map(Vec::len) == Some(2),
        "{fetched}"
    );
    ensure!(
        fetched["total_cents"].as_i64().unwrap_or(0) > 0,
        "{fetched}"
    );
    let bad = json!({"customer_id": 12, "items": [{"product_id": 999999, "quantity": 1}]});
    let (status, _) = ctx.post(format!("{}/orders", ctx.shop.url), bad).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST,
        "order of unknown product: {status}"
    );

    let (status, customer) = ctx.get(format!("{}/customers/12", ctx.crm.url)).await?;
    ensure!(
        status == StatusCode::OK && customer["id"] == 12,
        "{status} {customer}"
    );
    let note = json!({"body": "asked about order", "author": "test"});
    let (status, _) = ctx
        .post(format!("{}/customers/12/notes", ctx.crm.url), note)
        .await?;
    ensure!(status == StatusCode::CREATED, "POST note: {status}");
    let (_, customer) = ctx.get(format!("{}/customers/12", ctx.crm.url)).await?;
    ensure!(
        customer["notes"][0]["body"] == "asked about order",
        "note not listed: {customer}"
    );
    Ok(())
}

async fn work_orders_are_consumed(ctx: &Ctx) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for i in 0..20 {
        let body = json!({"product_code": format!("GEAR-{i}"), "quantity": 5 + i, "line": "L2"});
        let (status, created) = ctx
            .post(format!("{}/work-orders", ctx.mes.url), body)
            .await?;
        ensure!(
            status == StatusCode::CREATED,
            "POST /work-orders: {status} {created}"
        );
        ensure!(created["status"] == "queued", "{created}");
        ids.push(created["id"].as_i64().context("work order id")?);
    }
    wait_until(
        "20 work orders done in database mes",
        Duration::from_secs(20),
        || async {
            let row = ctx
                .mes_db
                .query_one(
                    "SELECT count(*) FROM work_orders WHERE id = ANY($1) AND status = 'done'",
                    &[&ids],
                )
                .await
                .map_err(|e| e.to_string())?;
            let done: i64 = row.get(0);
            if done == 20 {
                Ok(())
            } else {
                Err(format!("{done} done"))
            }
        },
    )
    .await?;
    let (status, fetched) = ctx
        .get(format!("{}/work-orders/{}", ctx.mes.url, ids[0]))
        .await?;
    ensure!(
        status == StatusCode::OK && fetched["status"] == "done",
        "{status} {fetched}"
    );
    wait_until("mes.work drained", Duration::from_secs(10), || async {
        match ctx.ready("mes.work").await? {
            0 => Ok(()),
            n => Err(format!("{n} ready")),
        }
    })
    .await?;
    Ok(())
}

async fn stalled_consumer_backs_up_and_dead_letters(ctx: &Ctx) -> anyhow::Result<()> {
    let dead_before = ctx.ready("mes.dead").await.map_err(anyhow::Error::msg)?;
    let (status, answer) = ctx
        .incident(
            &ctx.mes,
            json!({"kind": "stalled_consumer", "duration_seconds": 120, "intensity": 1.0}),
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "start stalled_consumer: {status} {answer}"
    );
    ensure!(answer["kind"] == "stalled_consumer", "{answer}");
    wait_until(
        "mes.work backing up and dead letters arriving",
        Duration::from_secs(30),
        || async {
            let ready = ctx.ready("mes.work").await?;
            let dead = ctx.ready("mes.dead").await?;
            if ready >= 40 && dead > dead_before {
                Ok(())
            } else {
                Err(format!(
                    "mes.work ready {ready}, mes.dead {dead} (before {dead_before})"
                ))
            }
        },
    )
    .await?;
    let metrics = ctx.metrics(&ctx.mes).await.map_err(anyhow::Error::msg)?;
    let held = metric_sum(&metrics, "demo_mes_held_messages", &[]);
    ensure!(held > 0.0, "consumer holds nothing during the stall");
    ensure!(
        metric_sum(
            &metrics,
            "demo_incident_active",
            &[("kind", "stalled_consumer")]
        ) == 1.0,
        "demo_incident_active not set"
    );

    let status = ctx.stop_incident(&ctx.mes, "stalled_consumer").await?;
    ensure!(status == StatusCode::OK, "stop stalled_consumer: {status}");
    wait_until(
        "mes.work drained after the stall",
        Duration::from_secs(30),
        || async {
            match ctx.ready("mes.work").await? {
                0 => Ok(()),
                n => Err(format!("{n} ready")),
            }
        },
    )
    .await?;
    let (_, listing) = ctx.get(format!("{}/admin/incidents", ctx.mes.url)).await?;
    ensure!(listing["active"] == json!([]), "still active: {listing}");
    Ok(())
}

async fn db_growth_grows_the_shop_database(ctx: &Ctx) -> anyhow::Result<()> {
    let before = ctx
        .database_size("shop")
        .await
        .map_err(anyhow::Error::msg)?;
    let (status, answer) = ctx
        .incident(
            &ctx.shop,
            json!({"kind": "db_growth", "duration_seconds": 60, "intensity": 3.0}),
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "start db_growth: {status} {answer}"
    );
    let grown = wait_until("shop database +4 MiB", Duration::from_secs(30), || async {
        let size = ctx.database_size("shop").await?;
        if size >= before + (4 << 20) {
            Ok(size)
        } else {
            Err(format!("{} KiB more", (size - before) / 1024))
        }
    })
    .await;
    let status = ctx.stop_incident(&ctx.shop, "db_growth").await?;
    grown?;
    ensure!(status == StatusCode::OK, "stop db_growth: {status}");
    Ok(())
}

async fn http_500_storm_shows_in_metrics(ctx: &Ctx) -> anyhow::Result<()> {
    let labels = [("route", "/customers/{id}"), ("code", "500")];
    let before = metric_sum(
        &ctx.metrics(&ctx.crm).await.map_err(anyhow::Error::msg)?,
        "http_requests_total",
        &labels,
    );
    let (status, answer) = ctx
        .incident(
            &ctx.crm,
            json!({"kind": "http_500_storm", "duration_seconds": 60, "intensity": 2.0}),
        )
        .await?;
    ensure!(status == StatusCode::OK, "start storm: {status} {answer}");
    for _ in 0..10 {
        let (status, body) = ctx.get(format!("{}/customers/1", ctx.crm.url)).await?;
        ensure!(
            status == StatusCode::INTERNAL_SERVER_ERROR,
            "{status} {body}"
        );
    }
    let (status, _) = ctx.get(format!("{}/healthz", ctx.crm.url)).await?;
    ensure!(
        status == StatusCode::OK,
        "healthz during the storm: {status}"
    );
    let after = metric_sum(
        &ctx.metrics(&ctx.crm).await.map_err(anyhow::Error::msg)?,
        "http_requests_total",
        &labels,
    );
    ensure!(after >= before + 10.0, "500s counted: {before} -> {after}");
    ensure!(ctx.stop_incident(&ctx.crm, "http_500_storm").await? == StatusCode::OK);
    let (status, _) = ctx.get(format!("{}/customers/1", ctx.crm.url)).await?;
    ensure!(status == StatusCode::OK, "after the storm: {status}");
    Ok(())
}

async fn admin_token_and_validation(ctx: &Ctx) -> anyhow::Result<()> {
    let url = format!("{}/admin/incidents", ctx.shop.url);
    let r = ctx.http.get(&url).send().await?;
    ensure!(
        r.status() == StatusCode::UNAUTHORIZED,
        "no token: {}",
        r.status()
    );
    let r = ctx.http.get(&url).bearer_auth("wrong").send().await?;
    ensure!(
        r.status() == StatusCode::UNAUTHORIZED,
        "wrong token: {}",
        r.status()
    );
    let r = ctx
        .http
        .post(&url)
        .json(&json!({"kind": "memory_leak"}))
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::UNAUTHORIZED,
        "POST without token: {}",
        r.status()
    );
    let r = ctx.http.get(&url).bearer_auth(TOKEN).send().await?;
    ensure!(r.status() == StatusCode::OK, "right token: {}", r.status());

    let r = ctx
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await?;
    ensure!(
        r.status() == StatusCode::BAD_REQUEST,
        "bad JSON: {}",
        r.status()
    );
    let body: Value = r.json().await?;
    let message = body["error"].as_str().unwrap_or_default();
    ensure!(message.contains("expected JSON like"), "{body}");

    let cases = [
        (json!({"kind": "meteor"}), "unknown incident kind"),
        (
            json!({"kind": "stalled_consumer"}),
            "kind stalled_consumer is not available on service shop-api",
        ),
        (
            json!({"kind": "s3_growth"}),
            "not available on service shop-api",
        ),
        (
            json!({"kind": "memory_leak", "duration_seconds": -5}),
            "duration_seconds must be",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = ctx.incident(&ctx.shop, body.clone()).await?;
        ensure!(status == StatusCode::BAD_REQUEST, "{body}: {status}");
        let message = answer["error"].as_str().unwrap_or_default();
        ensure!(message.contains(expected), "{body}: {answer}");
    }
    Ok(())
}

async fn memory_and_cpu_show_in_process_metrics(ctx: &Ctx) -> anyhow::Result<()> {
    let rss = |text: &str| metric_sum(text, "process_resident_memory_bytes", &[]);
    let cpu = |text: &str| metric_sum(text, "process_cpu_seconds_total", &[]);
    let start = ctx.metrics(&ctx.crm).await.map_err(anyhow::Error::msg)?;
    let (rss0, cpu0) = (rss(&start), cpu(&start));

    let (status, _) = ctx
        .incident(
            &ctx.crm,
            json!({"kind": "memory_leak", "duration_seconds": 60, "intensity": 5.0}),
        )
        .await?;
    ensure!(status == StatusCode::OK);
    let peak = wait_until("RSS +24 MiB", Duration::from_secs(20), || async {
        let now = rss(&ctx.metrics(&ctx.crm).await?);
        if now >= rss0 + 24.0 * 1048576.0 {
            Ok(now)
        } else {
            Err(format!("{:.1} MiB more", (now - rss0) / 1048576.0))
        }
    })
    .await?;
    ensure!(ctx.stop_incident(&ctx.crm, "memory_leak").await? == StatusCode::OK);
    wait_until("RSS released", Duration::from_secs(10), || async {
        let now = rss(&ctx.metrics(&ctx.crm).await?);
        if now <= peak - 16.0 * 1048576.0 {
            Ok(())
        } else {
            Err(format!("{:.1} MiB above start", (now - rss0) / 1048576.0))
        }
    })
    .await?;

    let (status, _) = ctx
        .incident(
            &ctx.crm,
            json!({"kind": "cpu_saturation", "duration_seconds": 60, "intensity": 1.0}),
        )
        .await?;
    ensure!(status == StatusCode::OK);
    let burnt = wait_until("1.5 CPU seconds burnt", Duration::from_secs(15), || async {
        let now = cpu(&ctx.metrics(&ctx.crm).await?);
        if now >= cpu0 + 1.5 {
            Ok(())
        } else {
            Err(format!("{:.2} s", now - cpu0))
        }
    })
    .await;
    ensure!(ctx.stop_incident(&ctx.crm, "cpu_saturation").await? == StatusCode::OK);
    burnt
}

/// Runs the binary; returns (success, stdout).
async fn run_demo(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(demo_bin())
            .args(&args)
            .env("RUST_BACKTRACE", "0")
            .output()
    })
    .await??;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

async fn incident_command(ctx: &Ctx) -> anyhow::Result<()> {
    let mes = ctx.mes.url.as_str();
    let (ok, out) = run_demo(&[
        "incident",
        "memory_leak",
        "--target",
        mes,
        "--duration",
        "30s",
        "--intensity",
        "0.5",
    ])
    .await?;
    ensure!(ok, "incident memory_leak failed: {out}");
    let started: Value = serde_json::from_str(&out).context("JSON answer")?;
    ensure!(
        started["kind"] == "memory_leak" && started["duration_seconds"] == 30.0,
        "{out}"
    );
    let (ok, out) = run_demo(&["incident", "--list", "--target", mes]).await?;
    let listing: Value = serde_json::from_str(&out).context("JSON listing")?;
    ensure!(ok && listing["active"][0]["kind"] == "memory_leak", "{out}");
    let remaining = listing["active"][0]["remaining_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    ensure!(remaining > 0.0 && remaining <= 30.0, "{out}");
    let (ok, out) = run_demo(&["incident", "--stop", "memory_leak", "--target", mes]).await?;
    ensure!(ok, "stop failed: {out}");
    let (ok, out) = run_demo(&["incident", "--stop", "memory_leak", "--target", mes]).await?;
    ensure!(
        !ok && out.contains("no active incident"),
        "second stop: {ok} {out}"
    );
    let (ok, out) = run_demo(&["incident", "bogus", "--target", mes]).await?;
    ensure!(
        !ok && out.contains("unknown incident kind"),
        "bogus kind: {ok} {out}"
    );

    let shop = ctx.shop.url.as_str();
    let (ok, _) = run_demo(&["incident", "--list", "--target", shop]).await?;
    ensure!(!ok, "listing the shop without its token succeeded");
    let (ok, out) = run_demo(&[
        "incident",
        "--list",
        "--target",
        shop,
        "--admin-token-file",
        &ctx.token_file,
    ])
    .await?;
    ensure!(ok && out.contains("shop-api"), "with token: {ok} {out}");
    Ok(())
}

async fn load_sends_user_and_system_traffic(ctx: &Ctx) -> anyhow::Result<()> {
    let before: Vec<String> = {
        let mut v = Vec::new();
        for s in [&ctx.shop, &ctx.crm, &ctx.mes] {
            v.push(ctx.metrics(s).await.map_err(anyhow::Error::msg)?);
        }
        v
    };
    // A Wednesday afternoon: the rhythm is near its peak.
    let (ok, _) = run_demo(&[
        "load",
        "--shop",
        &ctx.shop.url,
        "--crm",
        &ctx.crm.url,
        "--mes",
        &ctx.mes.url,
        "--rps",
        "60",
        "--seed",
        "11",
        "--duration",
        "4s",
        "--sim-start",
        "2024-06-05T15:00:00Z",
    ])
    .await?;
    ensure!(ok, "load exited with an error");
    for (service, before) in [&ctx.shop, &ctx.crm, &ctx.mes].into_iter().zip(before) {
        let after = ctx.metrics(service).await.map_err(anyhow::Error::msg)?;
        for caller in ["user", "system"] {
            let label = [("caller", caller)];
            let sent = metric_sum(&after, "http_requests_total", &label)
                - metric_sum(&before, "http_requests_total", &label);
            ensure!(
                sent >= 3.0,
                "{}: {sent} {caller} requests from the load",
                service.name
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_services_on_real_postgres_and_rabbitmq() {
    let stack = tokio::task::spawn_blocking(|| Stack::up(PORT_BASE))
        .await
        .expect("stack up");
    let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-services-{PORT_BASE}"));
    std::fs::create_dir_all(&logs).expect("log dir");
    let token_file = logs.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    let token_file = token_file.display().to_string();

    let pg_url = stack.postgres_url.clone();
    let mut shop = Service::spawn(
        "shop",
        &[
            "--service",
            "shop",
            "--postgres",
            &pg_url,
            "--admin-token-file",
            &token_file,
        ],
        &logs,
    );
    let mut crm = Service::spawn("crm", &["--service", "crm", "--postgres", &pg_url], &logs);
    let mut mes = Service::spawn(
        "mes",
        &[
            "--service",
            "mes",
            "--postgres",
            &pg_url,
            "--amqp",
            &stack.amqp_url,
            "--failure-rate",
            "0",
        ],
        &logs,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for service in [&mut shop, &mut crm, &mut mes] {
        if let Err(e) = healthy(&http, service).await {
            panic!(
                "{e:#}\n--- {} log:\n{}",
                service.name,
                service.log_tail(4000)
            );
        }
    }
    let amqp = Connection::connect(&stack.amqp_url, ConnectionProperties::default())
        .await
        .expect("test connects to RabbitMQ");
    let mes_db = pg(&stack.postgres_url, "mes").await;
    let server_db = pg(&stack.postgres_url, "postgres").await;
    let ctx = Ctx {
        http,
        shop,
        crm,
        mes,
        token_file,
        amqp,
        mes_db,
        server_db,
        stack,
    };

    let mut failures = Vec::new();
    macro_rules! scenario {
        ($name:ident) => {
            let started = std::time::Instant::now();
            let result = $name(&ctx).await;
            eprintln!(
                "scenario {} {} in {:.1?}",
                stringify!($name),
                if result.is_ok() { "passed" } else { "FAILED" },
                started.elapsed()
            );
            if let Err(e) = result {
                failures.push(format!("{}: {e:#}", stringify!($name)));
            }
        };
    }
    scenario!(healthz_and_crud);
    scenario!(work_orders_are_consumed);
    scenario!(stalled_consumer_backs_up_and_dead_letters);
    scenario!(db_growth_grows_the_shop_database);
    scenario!(http_500_storm_shows_in_metrics);
    scenario!(admin_token_and_validation);
    scenario!(memory_and_cpu_show_in_process_metrics);
    scenario!(incident_command);
    scenario!(load_sends_user_and_system_traffic);

    if !failures.is_empty() {
        let logs: Vec<String> = [&ctx.shop, &ctx.crm, &ctx.mes]
            .iter()
            .map(|s| format!("--- {} log (tail):\n{}", s.name, s.log_tail(3000)))
            .collect();
        panic!(
            "{} scenario(s) failed (stack data kept in {}):\n{}\n{}",
            failures.len(),
            ctx.stack.dir.display(),
            failures.join("\n"),
            logs.join("\n")
        );
    }
}
