//! MES API: work orders stored in database `mes` and processed through
//! RabbitMQ by a consumer in the same process.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /work-orders` `{"product_code": "GEAR-12", "quantity": 40, "line": "L2"}` | 201, the work order (`status` `queued`): row inserted, message published to `mes` → `mes.work` |
//! | `GET /work-orders?status=&limit=&offset=` | latest work orders first |
//! | `GET /work-orders/{id}` | a work order; `status` `queued` → `done` (processed), `failed` (went to `mes.dead`), `dead_lettered` (rejected during a stall) |
//!
//! The consumer takes `mes.work` with a prefetch of `--prefetch` (50),
//! simulates a few milliseconds of work per message, marks the row `done`
//! and acks; a share `--failure-rate` (0.5%) fails and is rejected without
//! requeue, so it goes through `mes.dlx` to `mes.dead`. During a
//! `stalled_consumer` incident it stops processing: it holds what it has
//! been given (at most the prefetch) unacked, so `mes.work` backs up, and
//! every [`STALL_TICK`] rejects a share [`STALL_REJECT_SHARE`] of the held
//! messages to the dead-letter exchange. The connection is re-established
//! (with backoff, forever) if it drops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use crate::api::{ApiError, AppState, Page, parse_json};
use crate::cli::ServiceKind;
use crate::db::{self, Db, DbError, backoff};
use crate::errors::chain;
use crate::faults;
use crate::incident::IncidentKind;
use crate::queue::{self, Link, QueueError};
use prognos_exporters::http::Caller;

/// Advisory lock serialising schema setup in database `mes`.
const MES_SCHEMA_LOCK: i64 = 0x5052_4F47_0002;

/// Work orders.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS work_orders (
    id           BIGSERIAL PRIMARY KEY,
    product_code TEXT NOT NULL,
    quantity     INTEGER NOT NULL,
    line         TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at TIMESTAMPTZ
);
"#;

/// How often a stalled consumer dead-letters part of what it holds.
pub const STALL_TICK: Duration = Duration::from_secs(2);
/// Share of the held messages rejected to the DLX at each [`STALL_TICK`].
pub const STALL_REJECT_SHARE: f64 = 0.2;

/// Consumer tag on `mes.work`.
const CONSUMER_TAG: &str = "mes-api-worker";

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// `demo_mes_messages_total{outcome}` and `demo_mes_held_messages`.
#[derive(Debug, Default)]
pub struct MesMetrics {
    messages: Family<OutcomeLabel, Counter>,
    held: Gauge,
}

impl MesMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "demo_mes_messages",
            "Work messages finished by the MES consumer: done (acked), failed (rejected to the DLX), stalled_rejected (rejected to the DLX during a stall)",
            self.messages.clone(),
        );
        registry.register(
            "demo_mes_held_messages",
            "Work messages held unacked by a stalled MES consumer",
            self.held.clone(),
        );
    }

    fn count(&self, outcome: &'static str) {
        self.messages.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

/// Opens database `mes` and RabbitMQ (retrying until `deadline`), declares
/// the topology, starts the consumer and its reconnecting supervisor.
pub async fn init(
    state: &AppState,
    postgres: &str,
    amqp: &str,
    deadline: Instant,
) -> Result<(), InitError> {
    let db = Db::open(postgres, ServiceKind::Mes.database(), deadline).await?;
    let schema = format!("{SCHEMA}{}", faults::BULK_AUDIT_SCHEMA);
    db::setup_schema(&*db.client().await?, MES_SCHEMA_LOCK, &schema).await?;
    state.db.set(db);
    let connection = queue::connect_with_retry(amqp, deadline).await?;
    let link = Arc::new(Link::default());
    let consumer = open_session(state, &link, connection).await?;
    state.queue.set(Arc::clone(&link));
    tokio::spawn(supervise(state.clone(), link, amqp.to_owned(), consumer));
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Declares the topology, attaches the publisher and starts consuming.
async fn open_session(
    state: &AppState,
    link: &Link,
    connection: Connection,
) -> Result<Consumer, QueueError> {
    let channel = connection.create_channel().await?;
    queue::declare_topology(&channel).await?;
    channel
        .basic_qos(state.mes.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue::WORK_QUEUE.into(),
            CONSUMER_TAG.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    link.attach(connection).await?;
    tracing::info!(
        queue = queue::WORK_QUEUE,
        prefetch = state.mes.prefetch,
        "consuming"
    );
    Ok(consumer)
}

/// Runs the consumer; when the connection drops, reconnects forever.
async fn supervise(state: AppState, link: Arc<Link>, url: String, mut consumer: Consumer) {
    loop {
        match consume(&state, consumer).await {
            Ok(()) => tracing::warn!("RabbitMQ consumer cancelled; reconnecting"),
            Err(e) => tracing::warn!(error = %chain(&e), "RabbitMQ connection lost; reconnecting"),
        }
        link.detach();
        let mut attempt = 0;
        consumer = loop {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            let deadline = Instant::now() + Duration::from_secs(30);
            let session = match queue::connect_with_retry(&url, deadline).await {
                Ok(connection) => open_session(&state, &link, connection).await,
                Err(e) => Err(e),
            };
            match session {
                Ok(consumer) => break consumer,
                Err(e) => tracing::warn!(attempt, error = %chain(&e), "RabbitMQ reconnect failed"),
            }
        };
    }
}

fn stalled(state: &AppState) -> bool {
    state
        .incidents
        .intensity(IncidentKind::StalledConsumer, Instant::now())
        .is_some()
}

/// How many of `held` messages a stalled consumer rejects at one tick.
pub fn stall_rejects(held: usize) -> usize {
    ((held as f64) * STALL_REJECT_SHARE).ceil() as usize
}

/// The consume loop; returns when the stream ends (cancelled) or fails.
async fn consume(state: &AppState, mut consumer: Consumer) -> Result<(), QueueError> {
    let mut held: VecDeque<Delivery> = VecDeque::new();
    let mut tick = tokio::time::interval(STALL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let metrics = &state.mes_metrics;
    let result = loop {
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    if stalled(state) {
                        held.push_back(delivery);
                    } else {
                        tokio::spawn(process(state.clone(), delivery));
                    }
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
            _ = tick.tick() => {
                if stalled(state) {
                    let n = stall_rejects(held.len());
                    for delivery in held.drain(..n) {
                        tokio::spawn(dead_letter_stalled(state.clone(), delivery));
                    }
                } else {
                    for delivery in held.drain(..) {
                        tokio::spawn(process(state.clone(), delivery));
                    }
                }
            }
        }
        metrics.held.set(held.len() as i64);
    };
    // Unacked deliveries go back to the queue with the connection.
    metrics.held.set(0);
    result
}

/// The message published for a work order.
#[derive(Debug, Serialize, Deserialize)]
struct WorkMessage {
    work_order_id: i64,
    product_code: String,
    quantity: i32,
}

async fn set_status(state: &AppState, id: i64, status: &str) -> Result<(), ApiError> {
    let client = state.db()?.client().await?;
    client
        .execute(
            "UPDATE work_orders SET status = $2, processed_at = now() WHERE id = $1",
            &[&id, &status],
        )
        .await?;
    Ok(())
}

async fn dead_letter_stalled(state: AppState, delivery: Delivery) {
    let reject = BasicRejectOptions { requeue: false };
    if let Err(e) = delivery.reject(reject).await {
        tracing::warn!(error = %e, "reject failed");
        return;
    }
    state.mes_metrics.count("stalled_rejected");
    if let Ok(message) = serde_json::from_slice::<WorkMessage>(&delivery.data)
        && let Err(e) = set_status(&state, message.work_order_id, "dead_lettered").await
    {
        tracing::debug!(error = e.message(), "cannot mark work order dead-lettered");
    }
}

/// Simulates the work, records the outcome, acks (or rejects to the DLX).
async fn process(state: AppState, delivery: Delivery) {
    let (work_ms, fails) = {
        let mut rng = rand::rng();
        (
            rng.random_range(2..=8),
            rng.random::<f64>() < state.mes.failure_rate,
        )
    };
    tokio::time::sleep(Duration::from_millis(work_ms)).await;
    let message = serde_json::from_slice::<WorkMessage>(&delivery.data);
    let fails = fails || message.is_err();
    if let Ok(message) = &message {
        let status = if fails { "failed" } else { "done" };
        if let Err(e) = set_status(&state, message.work_order_id, status).await {
            // Try once more later; a second failure goes to the dead letters.
            tracing::warn!(
                error = e.message(),
                id = message.work_order_id,
                "cannot record work order outcome"
            );
            let requeue = !delivery.redelivered;
            let nack = BasicNackOptions {
                multiple: false,
                requeue,
            };
            if let Err(e) = delivery.nack(nack).await {
                tracing::warn!(error = %e, "nack failed");
            }
            return;
        }
    }
    let result = if fails {
        state.mes_metrics.count("failed");
        delivery.reject(BasicRejectOptions { requeue: false }).await
    } else {
        state.mes_metrics.count("done");
        delivery.ack(BasicAckOptions::default()).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "ack/reject failed");
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/work-orders", get(list_work_orders).post(post_work_order))
        .route("/work-orders/{id}", get(get_work_order))
}

/// A request for a work order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    pub product_code: String,
    pub quantity: i32,
    pub line: Option<String>,
}

const WORK_ORDER_EXPECTED: &str = r#"{"product_code": "<1..32 of A-Z a-z 0-9 - _>", "quantity": <1..10000>, "line": "<optional, up to 16 characters>"}"#;

fn validate(new: &NewWorkOrder) -> Result<(), ApiError> {
    let code_ok = (1..=32).contains(&new.product_code.len())
        && new
            .product_code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !code_ok {
        return Err(ApiError::BadRequest(format!(
            "bad product_code {:?}; expected {WORK_ORDER_EXPECTED}",
            new.product_code
        )));
    }
    if !(1..=10_000).contains(&new.quantity) {
        return Err(ApiError::BadRequest(format!(
            "quantity must be 1 to 10000, got {}",
            new.quantity
        )));
    }
    if new
        .line
        .as_ref()
        .is_some_and(|l| l.is_empty() || l.len() > 16)
    {
        return Err(ApiError::BadRequest(format!(
            "line must have 1 to 16 characters; expected {WORK_ORDER_EXPECTED}"
        )));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct WorkOrder {
    pub id: i64,
    pub product_code: String,
    pub quantity: i32,
    pub line: String,
    pub source: String,
    pub status: String,
    pub created_at: String,
    pub processed_at: Option<String>,
}

const WORK_ORDER_COLUMNS: &str = "id, product_code, quantity, line, source, status, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
     to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

fn work_order(row: &Row) -> WorkOrder {
    WorkOrder {
        id: row.get(0),
        product_code: row.get(1),
        quantity: row.get(2),
        line: row.get(3),
        source: row.get(4),
        status: row.get(5),
        created_at: row.get(6),
        processed_at: row.get(7),
    }
}

/// Inserts the work order and publishes its message; `source` is `user`
/// or `system`.
pub async fn create_work_order(
    state: &AppState,
    new: &NewWorkOrder,
    source: &str,
) -> Result<WorkOrder, ApiError> {
    validate(new)?;
    let link = state.queue()?;
    let client = state.db()?.client().await?;
    let line = new.line.as_deref().unwrap_or("L1");
    let sql = format!(
        "INSERT INTO work_orders (product_code, quantity, line, source) \
         VALUES ($1, $2, $3, $4) RETURNING {WORK_ORDER_COLUMNS}"
    );
    let row = client
        .query_one(&sql, &[&new.product_code, &new.quantity, &line, &source])
        .await?;
    let order = work_order(&row);
    let message = WorkMessage {
        work_order_id: order.id,
        product_code: order.product_code.clone(),
        quantity: order.quantity,
    };
    let payload = serde_json::to_vec(&message)
        .map_err(|e| ApiError::Internal(format!("encoding the message: {e}")))?;
    if let Err(e) = link.publish(&payload).await {
        let _ = client
            .execute(
                "UPDATE work_orders SET status = 'publish_failed' WHERE id = $1",
                &[&order.id],
            )
            .await;
        return Err(ApiError::Unavailable(format!(
            "work order {} stored but not queued: {e}",
            order.id
        )));
    }
    Ok(order)
}

async fn post_work_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WorkOrder>), ApiError> {
    let new: NewWorkOrder = parse_json(&body, WORK_ORDER_EXPECTED)?;
    let source = Caller::from_headers(&headers).as_str();
    let order = create_work_order(&state, &new, source).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn get_work_order(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<WorkOrder>, ApiError> {
    let client = state.db()?.client().await?;
    let sql = format!("SELECT {WORK_ORDER_COLUMNS} FROM work_orders WHERE id = $1");
    client
        .query_opt(&sql, &[&id])
        .await?
        .map(|row| Json(work_order(&row)))
        .ok_or_else(|| ApiError::NotFound(format!("no work order {id}")))
}

#[derive(Debug, Deserialize)]
struct WorkOrderQuery {
    status: Option<String>,
}

async fn list_work_orders(
    State(state): State<AppState>,
    Query(query): Query<WorkOrderQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<WorkOrder>>, ApiError> {
    let (limit, offset) = page.bounds();
    let client = state.db()?.client().await?;
    let sql = format!(
        "SELECT {WORK_ORDER_COLUMNS} FROM work_orders \
         WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2 OFFSET $3"
    );
    let rows = client
        .query(&sql, &[&query.status, &limit, &offset])
        .await?;
    Ok(Json(rows.iter().map(work_order).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(code: &str, quantity: i32, line: Option<&str>) -> NewWorkOrder {
        NewWorkOrder {
            product_code: code.into(),
            quantity,
            line: line.map(str::to_owned),
        }
    }

    #[test]
    fn work_order_validation() {
        assert!(validate(&new("GEAR-12", 40, Some("L2"))).is_ok());
        assert!(validate(&new("", 40, None)).is_err());
        assert!(validate(&new("GEAR 12", 40, None)).is_err());
        assert!(validate(&new("GEAR", 0, None)).is_err());
        assert!(validate(&new("GEAR", 10_001, None)).is_err());
        assert!(validate(&new("GEAR", 1, Some(""))).is_err());
    }

    #[test]
    fn stalled_consumer_rejects_a_share_of_what_it_holds() {
        assert_eq!(stall_rejects(0), 0);
        assert_eq!(stall_rejects(1), 1);
        assert_eq!(stall_rejects(50), 10);
        assert_eq!(stall_rejects(49), 10);
    }
}
