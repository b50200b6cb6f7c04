//! The Prometheus HTTP API client (being written).
