//! A remediation receiver that verifies prognos's signed calls (scheme `v1`,
//! see `prognos_notifiers::signature`), prints each verified one and rejects
//! the rest (forged, altered, stale, replayed, without an idempotency key).
//! `verify_remediation.py` beside it does the same check in Python.
//!
//! ```text
//! cargo run -p prognos-notifiers --example remediation_receiver -- \
//!     --listen 127.0.0.1:9100 --secret-file /etc/prognos/remediation.secret [--tolerance 300]
//! ```

use std::process::ExitCode;

use prognos_notifiers::receiver::{Verified, router};
use prognos_notifiers::signature::DEFAULT_TOLERANCE_SECS;

const USAGE: &str =
    "usage: remediation_receiver --listen ADDR:PORT --secret-file FILE [--tolerance SECONDS]";

struct Args {
    listen: String,
    secret_file: String,
    tolerance: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut secret_file = None;
    let mut tolerance = DEFAULT_TOLERANCE_SECS;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} expects a value"));
        match a.as_str() {
            "--listen" => listen = Some(value("--listen")?),
            "--secret-file" => secret_file = Some(value("--secret-file")?),
            "--tolerance" => {
                let v = value("--tolerance")?;
                tolerance = v
                    .parse()
                    .map_err(|_| format!("--tolerance expects seconds, got '{v}'"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unexpected argument '{other}'\n{USAGE}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?,
        secret_file: secret_file.ok_or_else(|| format!("--secret-file is required\n{USAGE}"))?,
        tolerance,
    })
}

fn print_call(v: Verified) -> serde_json::Value {
    println!(
        "verified call: {} {} idempotency-key={} timestamp={} body={}",
        v.method,
        v.path,
        v.idempotency_key,
        v.timestamp,
        String::from_utf8_lossy(&v.body)
    );
    serde_json::json!({ "accepted": true, "idempotency_key": v.idempotency_key })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let secret = match std::fs::read_to_string(&args.secret_file) {
        // A trailing newline from `echo` is not part of the secret.
        Ok(s) if !s.trim().is_empty() => s.trim().as_bytes().to_vec(),
        Ok(_) => {
            eprintln!("secret file {}: empty", args.secret_file);
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("secret file {}: {e}", args.secret_file);
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "remediation receiver on http://{} (tolerance {} s)",
        listener
            .local_addr()
            .map_or(args.listen.clone(), |a| a.to_string()),
        args.tolerance
    );
    let app = router(secret, args.tolerance, print_call);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("serve: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
