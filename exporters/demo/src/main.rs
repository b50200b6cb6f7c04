//! `prognos-demo`: three small demo services — Shop API, CRM API and MES
//! API — on a real PostgreSQL and a real RabbitMQ, a load generator with a
//! daily and weekly rhythm, and incident injection, so that a real
//! Prometheus scrapes real series for prognos to forecast.
//!
//! # Services
//!
//! Every service answers `GET /healthz` (200 once PostgreSQL — and RabbitMQ
//! for the MES — are connected, 503 with the reason otherwise) and
//! `GET /metrics` (OpenMetrics, from `prognos-exporters`:
//! `http_requests_total{route,method,code,caller}`, latency histogram and
//! summary, `http_requests_in_flight`, `process_*`, plus
//! `demo_incident_active{kind}`, and for the MES
//! `demo_mes_messages_total{outcome}` and `demo_mes_held_messages`). The
//! services add no `service`/`job` labels: the Prometheus scrape config does.
//!
//! | service | database | endpoints |
//! | --- | --- | --- |
//! | Shop API (`--service shop`) | `shop` (300 products, 1000 customers seeded) | `GET /products?category=&limit=&offset=`, `GET /products/{id}`, `POST /orders` `{"customer_id": 7, "items": [{"product_id": 3, "quantity": 2}]}`, `GET /orders/{id}`, `POST /products/{id}/image` (raw bytes, with `--s3-*`) |
//! | CRM API (`--service crm`) | `shop` (tables `customers`, `customer_notes`) | `GET /customers?segment=&limit=&offset=`, `GET /customers/{id}`, `POST /customers/{id}/notes` `{"body": "...", "author": "..."}` |
//! | MES API (`--service mes`) | `mes` + RabbitMQ | `POST /work-orders` `{"product_code": "GEAR-12", "quantity": 40, "line": "L2"}`, `GET /work-orders?status=&limit=&offset=`, `GET /work-orders/{id}` |
//!
//! Services create their database if missing (and their tables, idempotently),
//! so they only need a PostgreSQL server URL. At startup they listen at
//! once and retry PostgreSQL/RabbitMQ with backoff for `--connect-timeout`
//! (60 s), logging each retry, then exit with an error if still unreachable.
//!
//! The MES publishes each work order to exchange `mes` (direct) → queue
//! `mes.work` (durable, `x-dead-letter-exchange: mes.dlx`); a consumer in
//! the same process (prefetch 50) works a few ms, marks the row `done` and
//! acks; 0.5% fail (`--failure-rate`) and are rejected without requeue,
//! reaching `mes.dead` through the fanout exchange `mes.dlx`.
//!
//! # Incidents
//!
//! `POST /admin/incidents` `{"kind": "...", "duration_seconds": 600,
//! "intensity": 1.0}` starts one (200 with it as JSON; 400 with what was
//! expected on bad JSON, an unknown kind, or a kind the service lacks);
//! `GET /admin/incidents` lists the active ones with `remaining_seconds`;
//! `DELETE /admin/incidents/{kind}` stops one. Incidents end by themselves.
//! With `--admin-token-file`, `/admin/*` requires `Authorization: Bearer <token>`.
//!
//! | kind | services | effect |
//! | --- | --- | --- |
//! | `memory_leak` | all | retained memory grows ~intensity × 2 MiB/s (pages written, so RSS grows); released at the end; capped by `--max-leak-mib` (4096) |
//! | `cpu_saturation` | all | ~intensity cores busy, at most `--max-cpu-cores` (1) |
//! | `http_500_storm` | all | min(1, 0.5 × intensity) of API requests answer 500 (not `/metrics`, `/healthz`, `/admin`) |
//! | `stalled_consumer` | mes | the consumer holds up to prefetch messages unacked and takes no more, so `mes.work` backs up; every 2 s it rejects 20% of what it holds to `mes.dlx`; a `system` producer adds ~intensity × 20 work orders/s |
//! | `db_growth` | shop, mes | ~intensity × 1 MiB/s of incompressible 8 KiB rows into table `bulk_audit` |
//! | `s3_growth` | shop with `--s3-*` | ~intensity × 1 MiB/s of objects PUT under `images/growth/` |
//!
//! # Command line
//!
//! ```text
//! prognos-demo serve --service shop|crm|mes --listen 127.0.0.1:PORT \
//!     --postgres postgresql://postgres@127.0.0.1:PORT/postgres \
//!     [--amqp amqp://guest:guest@127.0.0.1:PORT/%2f]        (mes: required)
//!     [--s3-endpoint http://127.0.0.1:PORT --s3-bucket NAME [--s3-region us-east-1]]  (shop)
//!     [--admin-token-file PATH] [--connect-timeout 60s]
//!     [--max-cpu-cores 1] [--max-leak-mib 4096] [--failure-rate 0.005] [--prefetch 50]
//! prognos-demo load --shop URL --crm URL --mes URL [--rps 20] [--time-scale 1]
//!     [--seed N] [--duration 0] [--concurrency 64] [--sim-start 2024-06-05T15:00:00Z]
//! prognos-demo incident KIND --target URL [--duration 10m] [--intensity 1] [--admin-token-file PATH]
//! prognos-demo incident --list --target URL
//! prognos-demo incident --stop KIND --target URL
//! ```
//!
//! S3 credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//! (default `test` / `test`). Logs go to stderr; `RUST_LOG` filters them
//! (default `info`).
//!
//! # Load
//!
//! `--rps` is the peak rate (weekday 15:00 of the simulated clock, UTC);
//! traffic falls to 12% of it at 03:00 and weekends carry 40% less.
//! `--time-scale 1440` makes a simulated day last a real minute. 80% user
//! and 20% system traffic (`X-Caller-Kind: system`), mostly reads with
//! orders, notes and work orders as writes. The generator keeps going when
//! services fail and summarises errors at most once per 10 s.

mod admin;
mod api;
mod cli;
mod crm;
mod db;
mod errors;
mod faults;
mod incident;
mod incident_client;
mod load;
mod mes;
mod queue;
mod rhythm;
mod s3;
mod server;
mod shop;
mod throttle;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Serve(args) => server::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Incident(args) => incident_client::run(args).await,
    }
}
