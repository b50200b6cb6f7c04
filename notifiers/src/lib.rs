//! prognos notifiers: how alerts reach people and systems. Takes alert events
//! as plain data and depends on nothing else of prognos.
//!
//! - [`payload`]: the Alertmanager webhook payload (version 4), so existing receivers work.
//! - [`telegram`]: Telegram-safe HTML messages within the 4,096-character limit.
//! - [`signature`]: HMAC-SHA256 signing of remediation calls and its verification helper.
//! - [`secret`]: the `Secret` type, URL redaction and bounded excerpts of untrusted text.
//! - [`retry`]: which failures to retry, and exponential backoff with full jitter.
//!
//! The channels (Telegram, email, webhook, Alertmanager), routing and the
//! durable outbox build on these.

pub mod alert;
pub mod channel;
pub mod chart;
pub mod clock;
pub mod command;
pub mod config;
pub mod database;
pub mod delivery;
pub mod dispatcher_store;
pub mod matcher;
pub mod message;
pub mod notifier;
pub mod number;
pub mod payload;
pub mod receiver;
pub mod remediation;
pub mod retry;
pub mod route;
pub mod secret;
pub mod signature;
pub mod silence;
pub mod store;
pub mod telegram;
