//! The tracing subscriber, installed once by `main`. Logs go to stderr so
//! that stdout stays clean for tables; `RUST_LOG` sets the level (default info).

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; a second call is ignored.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
