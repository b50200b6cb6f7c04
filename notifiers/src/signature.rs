//! Signed remediation calls. prognos sends `X-Prognos-Timestamp` (Unix
//! seconds) and `X-Prognos-Signature: sha256=<hex HMAC-SHA256 of
//! "<timestamp>.<body>">`. A receiver recomputes the HMAC with the shared
//! secret, compares in constant time, and rejects timestamps outside its
//! tolerance; with the idempotency key it also rejects replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Prognos-Signature";
/// Header carrying the timestamp the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Prognos-Timestamp";
/// Default tolerance of a receiver for the timestamp, seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a call was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is not `sha256=<hex>`.
    #[error("malformed signature header: expected 'sha256=<hex>'")]
    Malformed,
    /// The timestamp is too old or in the future: a replay or a wrong clock.
    #[error("timestamp {timestamp} is {skew} s away from now, more than the {tolerance} s allowed")]
    Stale {
        /// The timestamp sent.
        timestamp: i64,
        /// Its distance from now.
        skew: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// The signature does not match: a forgery or an altered body.
    #[error("signature does not match the body")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The value of the signature header for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Verifies a call received at `now`: the signature header, the timestamp
/// header's value and the raw body.
pub fn verify(
    secret: &[u8],
    signature: &str,
    timestamp: i64,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let hex_sig = signature
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed)?;
    let given = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed)?;
    let skew = (now - timestamp).abs();
    if skew > tolerance_secs {
        return Err(VerifyError::Stale {
            timestamp,
            skew,
            tolerance: tolerance_secs,
        });
    }
    // verify_slice compares in constant time.
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"shared secret";

    #[test]
    fn a_signed_call_verifies() {
        let body = br#"{"action":"restart","alert":"MesQueueBacklogSoon"}"#;
        let sig = sign(SECRET, 1_700_000_000, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(
            verify(SECRET, &sig, 1_700_000_000, body, 1_700_000_010, 300),
            Ok(())
        );
    }

    #[test]
    fn forged_altered_and_replayed_calls_are_rejected() {
        let body = b"{\"action\":\"restart\"}";
        let sig = sign(SECRET, 1_700_000_000, body);
        // Forged: another secret.
        let forged = sign(b"guess", 1_700_000_000, body);
        assert_eq!(
            verify(SECRET, &forged, 1_700_000_000, body, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        // Altered body.
        assert_eq!(
            verify(
                SECRET,
                &sig,
                1_700_000_000,
                b"{\"action\":\"drop_db\"}",
                1_700_000_000,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        // Altered timestamp to pass the window.
        assert_eq!(
            verify(SECRET, &sig, 1_700_000_900, body, 1_700_000_900, 300),
            Err(VerifyError::Mismatch)
        );
        // Replayed later than the tolerance.
        assert!(matches!(
            verify(SECRET, &sig, 1_700_000_000, body, 1_700_001_000, 300),
            Err(VerifyError::Stale { skew: 1000, .. })
        ));
        // Garbage header.
        assert_eq!(
            verify(SECRET, "md5=abc", 1, body, 1, 300),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify(SECRET, "sha256=zz", 1, body, 1, 300),
            Err(VerifyError::Malformed)
        );
    }
}
