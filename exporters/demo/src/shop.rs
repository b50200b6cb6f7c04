//! Shop API: products and orders in database `shop` (300 products seeded;
//! customers come from the CRM schema, set up here too).
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `GET /products?category=&limit=&offset=` | products by id |
//! | `GET /products/{id}` | a product; 404 if none |
//! | `POST /orders` `{"customer_id": 7, "items": [{"product_id": 3, "quantity": 2}]}` | 201, the order with its items |
//! | `GET /orders/{id}` | an order with its items; 404 if none |
//! | `POST /products/{id}/image` (raw image bytes) | 201, the S3 key; 501 without `--s3-*` |

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Row};

use crate::api::{ApiError, AppState, Page, parse_json};
use crate::cli::ServiceKind;
use crate::crm::SHOP_SCHEMA_LOCK;
use crate::db::{self, Db, DbError};
use crate::{crm, faults};

/// Products (300 seeded), orders and their items, product images.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS products (
    id          BIGINT PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    stock       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id          BIGSERIAL PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers(id),
    status      TEXT NOT NULL DEFAULT 'placed',
    total_cents BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id);
CREATE TABLE IF NOT EXISTS order_items (
    order_id    BIGINT NOT NULL REFERENCES orders(id),
    product_id  BIGINT NOT NULL REFERENCES products(id),
    quantity    INTEGER NOT NULL,
    price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE IF NOT EXISTS product_images (
    id          BIGSERIAL PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES products(id),
    object_key  TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO products (id, sku, name, category, price_cents, stock)
SELECT g,
       'SKU-' || lpad(g::text, 5, '0'),
       (ARRAY['Compact','Deluxe','Classic','Smart','Rugged','Slim','Nordic','Urban',
              'Vintage','Eco','Pro','Mini'])[1 + g % 12]
         || ' ' ||
       (ARRAY['Chair','Lamp','Desk','Kettle','Shelf','Rug','Clock','Mirror','Stool',
              'Blender','Vase','Bench','Fan','Heater','Pan','Mug','Planter','Hose',
              'Grill','Sofa','Table','Cabinet','Toaster','Pillow','Basket'])[1 + (g / 12) % 25],
       (ARRAY['furniture','lighting','kitchen','garden','office'])[1 + g % 5],
       499 + (g * 7919) % 49500,
       10 + (g * 31) % 500
FROM generate_series(1, 300) AS g
ON CONFLICT (id) DO NOTHING;
"#;

/// Seeded products have ids 1..=SEEDED_PRODUCTS.
pub const SEEDED_PRODUCTS: i64 = 300;

/// Most line items per order.
const MAX_ITEMS: usize = 20;
/// Most units per line item.
const MAX_QUANTITY: i32 = 100;

/// Opens database `shop`, sets up its tables (CRM's too), creates the S3
/// bucket if S3 is configured.
pub async fn init(state: &AppState, postgres: &str, deadline: Instant) -> Result<(), DbError> {
    let db = Db::open(postgres, ServiceKind::Shop.database(), deadline).await?;
    let sql = format!("{}{}{}", crm::SCHEMA, SCHEMA, faults::BULK_AUDIT_SCHEMA);
    db::setup_schema(&*db.client().await?, SHOP_SCHEMA_LOCK, &sql).await?;
    state.db.set(db);
    if let Some(s3) = &state.s3 {
        match s3.ensure_bucket().await {
            Ok(()) => tracing::info!(bucket = s3.bucket_name(), "S3 bucket ready"),
            Err(e) => tracing::warn!(
                bucket = s3.bucket_name(),
                error = %e,
                "cannot create the S3 bucket; uploads fail until it exists"
            ),
        }
    }
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{id}", get(get_product))
        .route("/products/{id}/image", post(upload_image))
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
}

#[derive(Debug, Serialize)]
struct Product {
    id: i64,
    sku: String,
    name: String,
    category: String,
    price_cents: i64,
    stock: i32,
}

const PRODUCT_COLUMNS: &str = "id, sku, name, category, price_cents, stock";

fn product(row: &Row) -> Product {
    Product {
        id: row.get(0),
        sku: row.get(1),
        name: row.get(2),
        category: row.get(3),
        price_cents: row.get(4),
        stock: row.get(5),
    }
}

#[derive(Debug, Deserialize)]
struct ProductQuery {
    category: Option<String>,
}

async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ProductQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Product>>, ApiError> {
    let (limit, offset) = page.bounds();
    let client = state.db()?.client().await?;
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS} FROM products \
         WHERE ($1::text IS NULL OR category = $1) ORDER BY id LIMIT $2 OFFSET $3"
    );
    let rows = client
        .query(&sql, &[&query.category, &limit, &offset])
        .await?;
    Ok(Json(rows.iter().map(product).collect()))
}

async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Product>, ApiError> {
    let client = state.db()?.client().await?;
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1");
    let row = client
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    Ok(Json(product(&row)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    customer_id: i64,
    items: Vec<NewItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    product_id: i64,
    quantity: i32,
}

const ORDER_EXPECTED: &str = r#"{"customer_id": <id>, "items": [{"product_id": <id>, "quantity": <1..100>}, ...] (1..20 items)}"#;

/// Merges repeated products and checks the counts: `(product ids, quantities)`.
fn order_lines(items: &[NewItem]) -> Result<(Vec<i64>, Vec<i32>), ApiError> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "an order has 1 to {MAX_ITEMS} items, got {}; expected {ORDER_EXPECTED}",
            items.len()
        )));
    }
    let mut merged: BTreeMap<i64, i32> = BTreeMap::new();
    for item in items {
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(ApiError::BadRequest(format!(
                "quantity must be 1 to {MAX_QUANTITY}, got {} for product {}",
                item.quantity, item.product_id
            )));
        }
        let q = merged.entry(item.product_id).or_insert(0);
        *q = q.saturating_add(item.quantity);
    }
    Ok(merged.into_iter().unzip())
}

#[derive(Debug, Serialize)]
struct Order {
    id: i64,
    customer_id: i64,
    status: String,
    total_cents: i64,
    created_at: String,
    items: Vec<OrderItem>,
}

#[derive(Debug, Serialize)]
struct OrderItem {
    product_id: i64,
    quantity: i32,
    price_cents: i64,
}

async fn create_order(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let order: NewOrder = parse_json(&body, ORDER_EXPECTED)?;
    let (product_ids, quantities) = order_lines(&order.items)?;
    let client = state.db()?.client().await?;
    let check = client
        .query_one(
            "SELECT (SELECT count(*) FROM products WHERE id = ANY($1)), \
                    EXISTS (SELECT 1 FROM customers WHERE id = $2)",
            &[&product_ids, &order.customer_id],
        )
        .await?;
    let known: i64 = check.get(0);
    if known != product_ids.len() as i64 {
        return Err(ApiError::BadRequest(format!(
            "unknown product id among {product_ids:?}"
        )));
    }
    if !check.get::<_, bool>(1) {
        return Err(ApiError::BadRequest(format!(
            "unknown customer {}",
            order.customer_id
        )));
    }
    // One statement: the order and its items are inserted together or not at all.
    let row = client
        .query_one(
            "WITH items AS (
                 SELECT * FROM unnest($2::bigint[], $3::int[]) AS t(product_id, quantity)
             ), priced AS (
                 SELECT i.product_id, i.quantity, p.price_cents
                 FROM items i JOIN products p ON p.id = i.product_id
             ), o AS (
                 INSERT INTO orders (customer_id, total_cents)
                 SELECT $1, sum(quantity * price_cents)::bigint FROM priced
                 RETURNING id
             ), lines AS (
                 INSERT INTO order_items (order_id, product_id, quantity, price_cents)
                 SELECT o.id, priced.product_id, priced.quantity, priced.price_cents
                 FROM o CROSS JOIN priced
             )
             SELECT id FROM o",
            &[&order.customer_id, &product_ids, &quantities],
        )
        .await?;
    let id: i64 = row.get(0);
    let created = load_order(&client, id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("order {id} vanished after insert")))?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn load_order(client: &Client, id: i64) -> Result<Option<Order>, ApiError> {
    let Some(row) = client
        .query_opt(
            "SELECT id, customer_id, status, total_cents, \
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             FROM orders WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let items = client
        .query(
            "SELECT product_id, quantity, price_cents FROM order_items \
             WHERE order_id = $1 ORDER BY product_id",
            &[&id],
        )
        .await?;
    Ok(Some(Order {
        id: row.get(0),
        customer_id: row.get(1),
        status: row.get(2),
        total_cents: row.get(3),
        created_at: row.get(4),
        items: items
            .iter()
            .map(|r| OrderItem {
                product_id: r.get(0),
                quantity: r.get(1),
                price_cents: r.get(2),
            })
            .collect(),
    }))
}

async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Order>, ApiError> {
    let client = state.db()?.client().await?;
    load_order(&client, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}

#[derive(Debug, Serialize)]
struct Uploaded {
    product_id: i64,
    key: String,
    bytes: usize,
}

/// Largest image accepted (axum's default body limit is 2 MB).
const MAX_IMAGE_BYTES: usize = 1 << 20;

async fn upload_image(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let Some(s3) = &state.s3 else {
        return Err(ApiError::NotImplemented(
            "no S3 configured: start the shop with --s3-endpoint and --s3-bucket".into(),
        ));
    };
    if body.is_empty() || body.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "expected the image bytes as the body (1 byte to {MAX_IMAGE_BYTES} bytes), got {}",
            body.len()
        )));
    }
    let client = state.db()?.client().await?;
    if client
        .query_opt("SELECT 1 FROM products WHERE id = $1", &[&id])
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no product {id}")));
    }
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let key = format!(
        "images/products/{id}/{millis}-{:08x}.jpg",
        rand::random::<u32>()
    );
    let bytes = body.len();
    s3.put(&key, body.to_vec(), "image/jpeg")
        .await
        .map_err(|e| ApiError::Unavailable(format!("image upload failed: {e}")))?;
    client
        .execute(
            "INSERT INTO product_images (product_id, object_key, bytes) VALUES ($1, $2, $3)",
            &[&id, &key, &(bytes as i64)],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            product_id: id,
            key,
            bytes,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(product_id: i64, quantity: i32) -> NewItem {
        NewItem {
            product_id,
            quantity,
        }
    }

    #[test]
    fn order_lines_merge_and_validate() {
        let (ids, qs) = order_lines(&[item(5, 1), item(2, 3), item(5, 2)]).unwrap();
        assert_eq!(ids, [2, 5]);
        assert_eq!(qs, [3, 3]);
        assert!(order_lines(&[]).is_err());
        assert!(order_lines(&[item(1, 0)]).is_err());
        assert!(order_lines(&[item(1, 101)]).is_err());
        let many: Vec<_> = (0..21).map(|i| item(i, 1)).collect();
        assert!(order_lines(&many).is_err());
    }
}
