//! The wall clock, read at the edges: the notifier's loops and the channels
//! pass the time they read into the pure code (grouping, retry, silences).

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
