//! CRM API: customers and notes on them, in database `shop` (the shop's
//! customers are the CRM's), read-mostly.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /customers?segment=&limit=&offset=` | customers by id |
//! | `GET /customers/{id}` | a customer with its 5 latest notes; 404 if none |
//! | `POST /customers/{id}/notes` `{"body": "...", "author": "..."}` | 201, the note |

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use crate::api::{ApiError, AppState, Page, parse_json};
use crate::cli::ServiceKind;
use crate::db::{self, Db, DbError};

/// Advisory lock serialising schema setup in database `shop` (Shop and CRM).
pub const SHOP_SCHEMA_LOCK: i64 = 0x5052_4F47_0001;

/// Customers (1000 seeded) and their notes.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS customers (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    segment     TEXT NOT NULL,
    country     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS customer_notes (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS customer_notes_by_customer ON customer_notes (customer_id, id DESC);
INSERT INTO customers (id, name, email, segment, country)
SELECT g,
       (ARRAY['Ada','Bruno','Chiara','Dmitri','Elif','Farid','Greta','Hiro','Ines','Jonas'])[1 + g % 10]
         || ' ' ||
       (ARRAY['Keller','Lopez','Moreau','Novak','Okafor','Petrov','Quinn','Rossi','Sato','Weber'])[1 + (g / 10) % 10],
       'customer' || g || '@example.com',
       (ARRAY['retail','business','enterprise'])[1 + g % 3],
       (ARRAY['DE','FR','IT','ES','NL','PL','SE'])[1 + g % 7]
FROM generate_series(1, 1000) AS g
ON CONFLICT (id) DO NOTHING;
"#;

/// Seeded customers have ids 1..=SEEDED_CUSTOMERS.
pub const SEEDED_CUSTOMERS: i64 = 1000;

/// Opens database `shop` and sets up the CRM tables.
pub async fn init(state: &AppState, postgres: &str, deadline: Instant) -> Result<(), DbError> {
    let db = Db::open(postgres, ServiceKind::Crm.database(), deadline).await?;
    db::setup_schema(&*db.client().await?, SHOP_SCHEMA_LOCK, SCHEMA).await?;
    state.db.set(db);
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list_customers))
        .route("/customers/{id}", get(get_customer))
        .route("/customers/{id}/notes", post(add_note))
}

#[derive(Debug, Serialize)]
struct Customer {
    id: i64,
    name: String,
    email: String,
    segment: String,
    country: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<Vec<Note>>,
}

#[derive(Debug, Serialize)]
struct Note {
    id: i64,
    customer_id: i64,
    author: String,
    body: String,
    created_at: String,
}

const CUSTOMER_COLUMNS: &str = "id, name, email, segment, country";
const NOTE_COLUMNS: &str = "id, customer_id, author, body, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

fn customer(row: &Row) -> Customer {
    Customer {
        id: row.get(0),
        name: row.get(1),
        email: row.get(2),
        segment: row.get(3),
        country: row.get(4),
        notes: None,
    }
}

fn note(row: &Row) -> Note {
    Note {
        id: row.get(0),
        customer_id: row.get(1),
        author: row.get(2),
        body: row.get(3),
        created_at: row.get(4),
    }
}

#[derive(Debug, Deserialize)]
struct CustomerQuery {
    segment: Option<String>,
}

async fn list_customers(
    State(state): State<AppState>,
    Query(query): Query<CustomerQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Customer>>, ApiError> {
    let (limit, offset) = page.bounds();
    let client = state.db()?.client().await?;
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers \
         WHERE ($1::text IS NULL OR segment = $1) ORDER BY id LIMIT $2 OFFSET $3"
    );
    let rows = client
        .query(&sql, &[&query.segment, &limit, &offset])
        .await?;
    Ok(Json(rows.iter().map(customer).collect()))
}

async fn get_customer(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Customer>, ApiError> {
    let client = state.db()?.client().await?;
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1");
    let row = client
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no customer {id}")))?;
    let mut found = customer(&row);
    let sql = format!(
        "SELECT {NOTE_COLUMNS} FROM customer_notes WHERE customer_id = $1 ORDER BY id DESC LIMIT 5"
    );
    let notes = client.query(&sql, &[&id]).await?;
    found.notes = Some(notes.iter().map(note).collect());
    Ok(Json(found))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    body: String,
    author: Option<String>,
}

const NOTE_EXPECTED: &str = r#"{"body": "<1..4000 characters>", "author": "<optional>"}"#;

async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let new: NewNote = parse_json(&body, NOTE_EXPECTED)?;
    let text = new.body.trim();
    if text.is_empty() || text.chars().count() > 4000 {
        return Err(ApiError::BadRequest(format!(
            "note body must have 1 to 4000 characters; expected {NOTE_EXPECTED}"
        )));
    }
    let author = new.author.as_deref().unwrap_or("agent").trim();
    let author = if author.is_empty() { "agent" } else { author };
    let client = state.db()?.client().await?;
    let sql = format!(
        "INSERT INTO customer_notes (customer_id, author, body) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM customers WHERE id = $1) \
         RETURNING {NOTE_COLUMNS}"
    );
    let row = client
        .query_opt(&sql, &[&id, &author, &text])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no customer {id}")))?;
    Ok((StatusCode::CREATED, Json(note(&row))))
}
