//! PostgreSQL: connecting with retries, creating the service's database, a
//! small round-robin pool of `tokio_postgres` clients that reconnect when
//! their connection drops, and schema setup under an advisory lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use crate::errors::chain;
use tokio_postgres::{Client, Config, NoTls};

/// Clients in a service's pool: `tokio_postgres` pipelines concurrent
/// queries on one connection, so a few are enough.
pub const POOL_SIZE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("bad PostgreSQL URL: {0}")]
    BadUrl(#[source] tokio_postgres::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL not reachable after {waited:?}: {last}")]
    GaveUp { waited: Duration, last: String },
}

impl DbError {
    /// Whether the error means the database is unreachable (rather than a
    /// query problem).
    pub fn is_connection(&self) -> bool {
        match self {
            Self::BadUrl(_) | Self::GaveUp { .. } => true,
            Self::Postgres(e) => e.is_closed() || e.code().is_none(),
        }
    }
}

/// Retry delays: 0.5 s doubling to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4))).min(Duration::from_secs(5))
}

async fn connect_once(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %chain(&e), "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Connects, retrying with backoff (and logging each retry) until `deadline`.
pub async fn connect_with_retry(config: &Config, deadline: Instant) -> Result<Client, DbError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match connect_once(config).await {
            Ok(client) => return Ok(client),
            Err(e) => {
                let delay = backoff(attempt);
                if Instant::now() + delay > deadline {
                    return Err(DbError::GaveUp {
                        waited: started.elapsed(),
                        last: chain(&e),
                    });
                }
                tracing::warn!(
                    attempt = attempt + 1,
                    retry_in = ?delay,
                    db = config.get_dbname().unwrap_or("?"),
                    error = %chain(&e),
                    "PostgreSQL not reachable yet, retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// Parses the server URL given on the command line.
pub fn parse_url(url: &str) -> Result<Config, DbError> {
    let mut config: Config = url.parse().map_err(DbError::BadUrl)?;
    config.connect_timeout(Duration::from_secs(5));
    Ok(config)
}

/// Creates database `name` if it does not exist (concurrent creators are fine).
pub async fn ensure_database(server: &Client, name: &str) -> Result<(), DbError> {
    let exists = server
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    // Names are ours (`shop`, `mes`), never user input; quote anyway.
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match server.batch_execute(&sql).await {
        Ok(()) => {
            tracing::info!(database = name, "created database");
            Ok(())
        }
        // Another service created it meanwhile.
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `sql` (idempotent DDL and seeding) while holding advisory lock
/// `lock_key`, so services starting together do not race on `CREATE TABLE`.
pub async fn setup_schema(client: &Client, lock_key: i64, sql: &str) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock_key])
        .await?;
    // Without the "relation already exists, skipping" notices.
    let sql = format!("SET client_min_messages = warning;\n{sql}");
    let result = client.batch_execute(&sql).await;
    // Released with the session anyway if this fails.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock_key])
        .await;
    result?;
    unlock?;
    Ok(())
}

/// A few clients on one database, handed out round-robin; a client whose
/// connection closed is replaced on next use.
#[derive(Debug)]
pub struct Db {
    config: Config,
    slots: Vec<Mutex<Arc<Client>>>,
    next: AtomicUsize,
}

impl Db {
    /// Connects to the server (retrying until `deadline`), creates database
    /// `name` if needed, then opens the pool on it.
    pub async fn open(server_url: &str, name: &str, deadline: Instant) -> Result<Self, DbError> {
        let server_config = parse_url(server_url)?;
        let server = connect_with_retry(&server_config, deadline).await?;
        ensure_database(&server, name).await?;
        drop(server);
        let mut config = server_config;
        config.dbname(name);
        config.application_name("prognos-demo");
        let mut slots = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let client = connect_with_retry(&config, deadline).await?;
            slots.push(Mutex::new(Arc::new(client)));
        }
        Ok(Self {
            config,
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// A connected client (reconnecting its slot if needed).
    pub async fn client(&self) -> Result<Arc<Client>, DbError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[i];
        let current = Arc::clone(&slot.lock().unwrap_or_else(|e| e.into_inner()));
        if !current.is_closed() {
            return Ok(current);
        }
        tracing::info!(slot = i, "reconnecting to PostgreSQL");
        let fresh = Arc::new(connect_once(&self.config).await?);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// `SELECT 1` within `timeout`: whether the database answers.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let check = async {
            let client = self.client().await.map_err(|e| chain(&e))?;
            client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| chain(&e))
        };
        match tokio::time::timeout(timeout, check).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(4), Duration::from_secs(5));
        assert_eq!(backoff(40), Duration::from_secs(5));
    }

    #[test]
    fn urls() {
        let c = parse_url("postgresql://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(c.get_user(), Some("postgres"));
        assert!(parse_url("not a url at all ::").is_err());
    }
}
