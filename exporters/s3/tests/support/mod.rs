//! Test support: a real moto S3 server, the exporter binary as a child
//! process, an S3 client to fill buckets, and an OpenMetrics text reader.

pub mod exporter;
pub mod exposition;
pub mod moto;
pub mod s3;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0")
}
