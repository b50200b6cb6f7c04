//! The prognos engine: the command line and everything behind it. `main.rs`
//! only dispatches here, so integration tests use the same code.
//!
//! - [`cli`]: the command-line interface (clap).
//! - [`table`]: reading and writing `timestamp,value` CSV with errors that
//!   name file, line and column.
//! - [`timestamp`]: the timestamp formats prognos reads and writes.
//! - [`commands`]: `detect`, `forecast`, `eval nab`, `eval forecast`.
//! - [`nab_corpus`]: loading a NAB-layout folder and its label windows.
//! - [`suite`]: the labelled incident suite (scenarios and their truth).

pub mod alert;
pub mod cli;
pub mod commands;
pub mod config;
pub mod evaluate;
pub mod explain;
pub mod exposition;
pub mod http_state;
pub mod logging;
pub mod modelled;
pub mod nab_corpus;
pub mod notify;
pub mod progress;
pub mod prom;
pub mod rule_state;
pub mod scheduler;
pub mod server;
pub mod source;
pub mod suite;
pub mod table;
pub mod timestamp;
pub mod ui;
