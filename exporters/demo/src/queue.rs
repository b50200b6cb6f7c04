//! RabbitMQ (MES): connecting with retries, the work topology with its
//! dead-letter exchange, and the publishing link shared by the handlers.
//!
//! Topology (declared idempotently at every (re)connect):
//!
//! | name | type | notes |
//! | --- | --- | --- |
//! | `mes` | direct exchange, durable | work orders are published here with routing key `work` |
//! | `mes.work` | queue, durable | bound to `mes`/`work`; `x-dead-letter-exchange: mes.dlx` |
//! | `mes.dlx` | fanout exchange, durable | receives rejected work messages |
//! | `mes.dead` | queue, durable | bound to `mes.dlx`: the dead letters |

use std::sync::RwLock;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::db::backoff;
use crate::errors::chain;

pub const EXCHANGE: &str = "mes";
pub const ROUTING_KEY: &str = "work";
pub const WORK_QUEUE: &str = "mes.work";
pub const DEAD_LETTER_EXCHANGE: &str = "mes.dlx";
pub const DEAD_QUEUE: &str = "mes.dead";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ not reachable after {waited:?}: {last}")]
    GaveUp { waited: Duration, last: String },
    #[error("RabbitMQ refused the message (publisher confirm nack)")]
    Nacked,
    #[error("RabbitMQ not connected")]
    NotConnected,
}

/// Connects, retrying with backoff (and logging each retry) until `deadline`.
pub async fn connect_with_retry(url: &str, deadline: Instant) -> Result<Connection, QueueError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let props = ConnectionProperties::default().with_connection_name("mes-api".into());
        match Connection::connect(url, props).await {
            Ok(connection) => return Ok(connection),
            Err(e) => {
                let delay = backoff(attempt);
                if Instant::now() + delay > deadline {
                    return Err(QueueError::GaveUp {
                        waited: started.elapsed(),
                        last: chain(&e),
                    });
                }
                tracing::warn!(
                    attempt = attempt + 1,
                    retry_in = ?delay,
                    error = %chain(&e),
                    "RabbitMQ not reachable yet, retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// Declares the exchanges, queues and bindings (idempotent).
pub async fn declare_topology(channel: &Channel) -> Result<(), QueueError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut work_args = FieldTable::default();
    work_args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
    );
    channel
        .queue_declare(WORK_QUEUE.into(), QueueDeclareOptions::durable(), work_args)
        .await?;
    channel
        .queue_declare(
            DEAD_QUEUE.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            WORK_QUEUE.into(),
            EXCHANGE.into(),
            ROUTING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            DEAD_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// The current connection and its publishing channel (with publisher
/// confirms); empty while reconnecting.
#[derive(Debug, Default)]
pub struct Link {
    current: RwLock<Option<(Connection, Channel)>>,
}

impl Link {
    /// Opens a confirming publish channel on `connection` and makes it current.
    pub async fn attach(&self, connection: Connection) -> Result<(), QueueError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((connection, channel));
        Ok(())
    }

    /// Forgets the current connection (it failed).
    pub fn detach(&self) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn channel(&self) -> Option<Channel> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|(_, ch)| ch.clone())
    }

    /// `Ok` when connected, otherwise why not.
    pub fn status(&self) -> Result<(), String> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        match current.as_ref() {
            None => Err("reconnecting".into()),
            Some((conn, ch)) if conn.status().connected() && ch.status().connected() => Ok(()),
            Some(_) => Err("connection lost".into()),
        }
    }

    /// Publishes a persistent JSON message to `mes`/`work` and waits for
    /// the broker's confirm.
    pub async fn publish(&self, payload: &[u8]) -> Result<(), QueueError> {
        let channel = self.channel().ok_or(QueueError::NotConnected)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let confirm = channel
            .basic_publish(
                EXCHANGE.into(),
                ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(QueueError::Nacked);
        }
        Ok(())
    }
}
