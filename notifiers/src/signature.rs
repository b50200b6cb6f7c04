//! Signed remediation calls, scheme `v1`.
//!
//! Every remediation call carries three headers:
//!
//! - `X-Prognos-Timestamp`: the Unix time of signing in seconds, as ASCII
//!   decimal digits without sign or leading zeros (`1700000000`);
//! - `Idempotency-Key`: the audit id of the call (1 to
//!   [`MAX_IDEMPOTENCY_KEY_BYTES`] visible ASCII characters), the same on
//!   every retry of one call;
//! - `X-Prognos-Signature`: `v1=<hex>`, the lowercase hex HMAC-SHA256 of the
//!   canonical string below under the shared secret. During a rotation the
//!   sender may sign with several secrets and send the values separated by
//!   commas (`v1=<hex>,v1=<hex>`); a receiver accepts the call if any `v1`
//!   value matches and ignores elements of other versions.
//!
//! The canonical string is the following bytes, where `\n` is one line feed
//! (0x0A) and nothing else is added or trimmed:
//!
//! ```text
//! v1\n<METHOD>\n<PATH>\n<TIMESTAMP>\n<IDEMPOTENCY-KEY>\n<BODY>
//! ```
//!
//! - `<METHOD>`: the HTTP method as sent (`POST`);
//! - `<PATH>`: the request target as sent on the request line: the path
//!   and, if the URL has one, `?` and the query (`/restart?service=shop`);
//! - `<TIMESTAMP>`, `<IDEMPOTENCY-KEY>`: the header values, byte for byte;
//! - `<BODY>`: the raw body bytes (may be empty).
//!
//! None of the first five fields may contain a line feed, so the string
//! splits only one way. A receiver recomputes the HMAC with the shared
//! secret, compares it in constant time with each `v1` value, rejects
//! timestamps more than its tolerance away from its clock, and remembers the
//! signature and the idempotency key for the tolerance window to reject
//! replays (the `receiver` module does all of this). Because the method, the
//! path and the key are signed, a captured call cannot be sent to another
//! endpoint or with another key.
//!
//! The same check in Python (`examples/verify_remediation.py`, run against
//! real signed calls by the tests):
//!
//! ```python
//! import hashlib, hmac, time
//!
//! def verify(secret, method, path, headers, body, tolerance=300, now=None):
//!     """True if the call is fresh and signed with `secret` (bytes); `path` includes any ?query."""
//!     ts, key = headers.get("X-Prognos-Timestamp", ""), headers.get("Idempotency-Key", "")
//!     now = time.time() if now is None else now
//!     if not (ts.isascii() and ts.isdigit()) or not key or abs(now - int(ts)) > tolerance:
//!         return False
//!     msg = b"\n".join([b"v1", method.encode(), path.encode(), ts.encode(), key.encode(), body])
//!     want = hmac.new(secret, msg, hashlib.sha256).hexdigest().encode()
//!     sigs = [s.strip() for s in headers.get("X-Prognos-Signature", "").split(",")]
//!     return any(s.startswith("v1=") and hmac.compare_digest(want, s[3:].lower().encode()) for s in sigs)
//! ```
//!
//! [`sign`] and [`verify`] are pure: the time is passed in.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature(s).
pub const SIGNATURE_HEADER: &str = "X-Prognos-Signature";
/// Header carrying the timestamp the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Prognos-Timestamp";
/// Header carrying the idempotency key the signature covers (the audit id).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The version tag of the signing scheme, first line of the canonical string
/// and prefix of each signature value.
pub const VERSION: &str = "v1";
/// Default tolerance of a receiver for the timestamp, seconds.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Longest signature header a verifier reads, in bytes: room for
/// [`MAX_SIGNATURES`] values, so parsing an attacker's header is bounded work.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 1024;
/// Most comma-separated elements in a signature header: two secrets cover a
/// rotation; a few more leave room for other versions.
pub const MAX_SIGNATURES: usize = 8;
/// Longest idempotency key, in bytes: audit ids are 32 characters, and a
/// receiver keeps every key of its window in memory.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

/// Length of an HMAC-SHA256 tag, bytes.
const MAC_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// What a signature covers: one HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    /// HTTP method as sent, e.g. `POST`.
    pub method: &'a str,
    /// Path and query as sent on the request line, e.g. `/restart?x=1`.
    pub path: &'a str,
    /// Unix seconds, the value of [`TIMESTAMP_HEADER`].
    pub timestamp: i64,
    /// The value of [`IDEMPOTENCY_HEADER`].
    pub idempotency_key: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// A verified signature: the HMAC tag in canonical (decoded) form. Equal
/// tags mean the same request under the same secret, however the header
/// spelled them, so a receiver keys its replay cache on this.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature([u8; MAC_BYTES]);

impl Signature {
    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8; MAC_BYTES] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Why a call was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is not a list of `v1=<64 hex digits>` values.
    #[error(
        "malformed signature header: expected 'v1=<64 hex digits>' (at most {MAX_SIGNATURES}, comma-separated, {MAX_SIGNATURE_HEADER_BYTES} bytes)"
    )]
    Malformed,
    /// A signed field cannot be part of a canonical string (a line feed in
    /// the method or path, a bad idempotency key, a negative timestamp).
    #[error("invalid {field} for a signed request")]
    InvalidField {
        /// Which field: `method`, `path`, `timestamp` or `idempotency key`.
        field: &'static str,
    },
    /// The timestamp is too old or in the future: a replay or a wrong clock.
    #[error("timestamp {timestamp} is {skew} s away from now, more than the {tolerance} s allowed")]
    Stale {
        /// The timestamp sent.
        timestamp: i64,
        /// Its distance from now, seconds.
        skew: u64,
        /// The tolerance, seconds.
        tolerance: u64,
    },
    /// No signature matches: a forgery, another secret, or an altered
    /// method, path, timestamp, key or body.
    #[error("signature does not match the request")]
    Mismatch,
}

/// Parses a [`TIMESTAMP_HEADER`] value strictly: ASCII digits only, no sign,
/// no leading zeros (so the header is the canonical decimal form that was
/// signed), within `i64`. `None` otherwise.
pub fn parse_timestamp(value: &str) -> Option<i64> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if !canonical {
        return None;
    }
    value.parse::<i64>().ok()
}

/// Whether `key` may be an idempotency key: 1 to
/// [`MAX_IDEMPOTENCY_KEY_BYTES`] visible ASCII characters (no spaces, no
/// control characters), so it fits a header and one line of the canonical string.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_BYTES
        && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks that the fields can form an unambiguous canonical string.
fn check_fields(req: &SignedRequest<'_>) -> Result<(), VerifyError> {
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !token(req.method) {
        return Err(VerifyError::InvalidField { field: "method" });
    }
    if !req.path.starts_with('/') || !token(req.path) {
        return Err(VerifyError::InvalidField { field: "path" });
    }
    if req.timestamp < 0 {
        return Err(VerifyError::InvalidField { field: "timestamp" });
    }
    if !valid_idempotency_key(req.idempotency_key) {
        return Err(VerifyError::InvalidField {
            field: "idempotency key",
        });
    }
    Ok(())
}

/// The canonical string of a request (see the module documentation).
pub fn canonical(req: &SignedRequest<'_>) -> Vec<u8> {
    let head = format!(
        "{VERSION}\n{}\n{}\n{}\n{}\n",
        req.method, req.path, req.timestamp, req.idempotency_key
    );
    let mut out = Vec::with_capacity(head.len() + req.body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(req.body);
    out
}

fn mac(secret: &[u8], req: &SignedRequest<'_>) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this never fails.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(&canonical(req));
    m
}

/// One signature value, `v1=<lowercase hex>`, for `req` under `secret`.
pub fn sign(secret: &[u8], req: &SignedRequest<'_>) -> String {
    format!(
        "{VERSION}={}",
        hex::encode(mac(secret, req).finalize().into_bytes())
    )
}

/// The [`SIGNATURE_HEADER`] value signing `req` with each of `secrets`
/// (old and new during a rotation), comma-separated.
pub fn signature_header(secrets: &[&[u8]], req: &SignedRequest<'_>) -> String {
    secrets
        .iter()
        .map(|s| sign(s, req))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `v1` tags of a signature header, decoded. Hex of either case is
/// accepted (the tag, not its spelling, is what counts); anything else than
/// exactly 64 hex digits after `v1=` is malformed. Elements of other
/// versions are skipped; a header without any `v1` element is malformed.
fn parse_header(header: &str) -> Result<Vec<[u8; MAC_BYTES]>, VerifyError> {
    if header.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(VerifyError::Malformed);
    }
    let mut tags = Vec::new();
    for (i, element) in header.split(',').enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(VerifyError::Malformed);
        }
        let element = element.trim_matches(' ');
        let Some((version, value)) = element.split_once('=') else {
            return Err(VerifyError::Malformed);
        };
        if version != VERSION {
            continue;
        }
        let mut tag = [0u8; MAC_BYTES];
        hex::decode_to_slice(value, &mut tag).map_err(|_| VerifyError::Malformed)?;
        tags.push(tag);
    }
    if tags.is_empty() {
        return Err(VerifyError::Malformed);
    }
    Ok(tags)
}

/// Verifies a call received at `now` (Unix seconds): `header` is the
/// [`SIGNATURE_HEADER`] value, `req` what was received. Accepts if the
/// timestamp is within `tolerance_secs` of `now` and any `v1` value is the
/// HMAC of the canonical string under `secret` (compared in constant time).
/// Returns the matching tag, for the replay cache.
pub fn verify(
    secret: &[u8],
    header: &str,
    req: &SignedRequest<'_>,
    now: i64,
    tolerance_secs: u64,
) -> Result<Signature, VerifyError> {
    let tags = parse_header(header)?;
    check_fields(req)?;
    // abs_diff cannot overflow, whatever the two values.
    let skew = now.abs_diff(req.timestamp);
    if skew > tolerance_secs {
        return Err(VerifyError::Stale {
            timestamp: req.timestamp,
            skew,
            tolerance: tolerance_secs,
        });
    }
    let expected = mac(secret, req);
    for tag in tags {
        // verify_slice compares in constant time.
        if expected.clone().verify_slice(&tag).is_ok() {
            return Ok(Signature(tag));
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"shared secret";
    const BODY: &[u8] = br#"{"action":"restart","alert":"MesQueueBacklogSoon"}"#;

    fn req(timestamp: i64) -> SignedRequest<'static> {
        SignedRequest {
            method: "POST",
            path: "/restart?service=mes",
            timestamp,
            idempotency_key: "a1b2c3",
            body: BODY,
        }
    }

    #[test]
    fn the_canonical_string_is_exactly_as_documented() {
        assert_eq!(
            canonical(&req(1_700_000_000)),
            b"v1\nPOST\n/restart?service=mes\n1700000000\na1b2c3\n{\"action\":\"restart\",\"alert\":\"MesQueueBacklogSoon\"}"
        );
    }

    #[test]
    fn a_signed_call_verifies() {
        let sig = sign(SECRET, &req(1_700_000_000));
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64, "{sig}");
        assert_eq!(sig[3..], sig[3..].to_lowercase());
        let tag = verify(SECRET, &sig, &req(1_700_000_000), 1_700_000_010, 300).unwrap();
        assert_eq!(hex::encode(tag.as_bytes()), sig[3..]);
    }

    #[test]
    fn any_of_several_v1_values_verifies_during_rotation() {
        let r = req(1_700_000_000);
        let header = signature_header(&[b"old secret", SECRET], &r);
        assert_eq!(header.matches("v1=").count(), 2);
        let new = verify(SECRET, &header, &r, 1_700_000_000, 300).unwrap();
        let old = verify(b"old secret", &header, &r, 1_700_000_000, 300).unwrap();
        assert_ne!(new, old);
        // Spaces after commas and elements of unknown versions are tolerated.
        let spaced = format!("v2=zzz, {}", sign(SECRET, &r));
        assert_eq!(verify(SECRET, &spaced, &r, 1_700_000_000, 300), Ok(new));
        assert_eq!(
            verify(b"third", &header, &r, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn the_tag_is_the_same_whatever_the_hex_case() {
        let r = req(1_700_000_000);
        let sig = sign(SECRET, &r);
        let upper = format!("v1={}", sig[3..].to_uppercase());
        assert_eq!(
            verify(SECRET, &upper, &r, 1_700_000_000, 300),
            verify(SECRET, &sig, &r, 1_700_000_000, 300)
        );
    }

    #[test]
    fn every_signed_field_is_covered() {
        let r = req(1_700_000_000);
        let sig = sign(SECRET, &r);
        let altered = [
            SignedRequest { method: "PUT", ..r },
            SignedRequest {
                path: "/drop_database",
                ..r
            },
            SignedRequest {
                path: "/restart?service=shop",
                ..r
            },
            SignedRequest {
                timestamp: 1_700_000_001,
                ..r
            },
            SignedRequest {
                idempotency_key: "other",
                ..r
            },
            SignedRequest {
                body: b"{\"action\":\"drop_db\"}",
                ..r
            },
        ];
        for a in altered {
            assert_eq!(
                verify(SECRET, &sig, &a, 1_700_000_000, 300),
                Err(VerifyError::Mismatch),
                "{a:?}"
            );
        }
        let forged = sign(b"guess", &r);
        assert_eq!(
            verify(SECRET, &forged, &r, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected_without_overflow() {
        let r = req(1_700_000_000);
        let sig = sign(SECRET, &r);
        assert!(matches!(
            verify(SECRET, &sig, &r, 1_700_001_000, 300),
            Err(VerifyError::Stale { skew: 1000, .. })
        ));
        assert!(matches!(
            verify(SECRET, &sig, &r, 1_699_999_000, 300),
            Err(VerifyError::Stale { skew: 1000, .. })
        ));
        let far = req(i64::MAX);
        let sig = sign(SECRET, &far);
        assert!(matches!(
            verify(SECRET, &sig, &far, i64::MIN, 300),
            Err(VerifyError::Stale { skew: u64::MAX, .. })
        ));
    }

    #[test]
    fn malformed_headers_and_fields_are_named() {
        let r = req(1);
        let good = sign(SECRET, &r);
        for bad in [
            "",
            "sha256=abc",
            "v1=zz",
            "v1=abc",
            &format!("{good}00"),
            &format!("v1= {}", &good[3..]),
            "v2=only-other-versions",
            &[good.as_str(); MAX_SIGNATURES + 1].join(","),
            &format!("{good},{}", "x".repeat(MAX_SIGNATURE_HEADER_BYTES)),
        ] {
            assert_eq!(
                verify(SECRET, bad, &r, 1, 300),
                Err(VerifyError::Malformed),
                "{bad:?}"
            );
        }
        let bad_fields = [
            (
                SignedRequest {
                    idempotency_key: "",
                    ..r
                },
                "idempotency key",
            ),
            (
                SignedRequest {
                    idempotency_key: "a\nb",
                    ..r
                },
                "idempotency key",
            ),
            (SignedRequest { path: "/a\nb", ..r }, "path"),
            (SignedRequest { path: "a", ..r }, "path"),
            (
                SignedRequest {
                    method: "PO ST",
                    ..r
                },
                "method",
            ),
            (SignedRequest { timestamp: -1, ..r }, "timestamp"),
        ];
        for (req, field) in bad_fields {
            let sig = sign(SECRET, &req);
            assert_eq!(
                verify(SECRET, &sig, &req, req.timestamp, 300),
                Err(VerifyError::InvalidField { field }),
                "{req:?}"
            );
        }
    }

    #[test]
    fn timestamps_parse_only_in_canonical_form() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp("0"), Some(0));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "01",
            "1e9",
            "١٢",
            "9223372036854775808",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
        assert_eq!(parse_timestamp("9223372036854775807"), Some(i64::MAX));
    }

    #[test]
    fn the_documented_python_verifier_is_the_tested_one() {
        let script = include_str!("../examples/verify_remediation.py");
        let doc = include_str!("signature.rs");
        let start = script.find("def verify(").unwrap();
        let end = script.find("\n\n\nif __name__").unwrap();
        for line in script[start..end].lines() {
            let documented = format!("//! {line}");
            assert!(
                doc.lines().any(|l| l == documented.trim_end()),
                "not in the module doc: {line}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_inputs_never_panic_nor_verify_without_the_secret(
            header in ".{0,300}",
            hexes in proptest::collection::vec("[0-9a-fA-F]{64}", 0..4),
            method in "[A-Z]{1,8}",
            path in "/[ -~]{0,40}",
            key in "[!-~]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            timestamp in any::<i64>(),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            let r = SignedRequest { method: &method, path: &path, timestamp, idempotency_key: &key, body: &body };
            // Free text, and well-formed v1 values not made with the secret.
            let formed = hexes.iter().map(|h| format!("v1={h}")).collect::<Vec<_>>().join(",");
            let forged = sign(b"not the secret", &r);
            for h in [header.as_str(), formed.as_str(), forged.as_str()] {
                prop_assert!(verify(SECRET, h, &r, now, tolerance).is_err(), "{h:?}");
            }
            let _ = parse_timestamp(&header);
        }

        #[test]
        fn a_signature_verifies_for_exactly_its_request(
            method in "[A-Z]{1,8}",
            path in "/[!-~]{0,40}",
            key in "[!-~]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            timestamp in 0..i64::MAX,
            other_body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let r = SignedRequest { method: &method, path: &path, timestamp, idempotency_key: &key, body: &body };
            let sig = sign(SECRET, &r);
            prop_assert!(verify(SECRET, &sig, &r, timestamp, 0).is_ok());
            let altered = SignedRequest { body: &other_body, ..r };
            prop_assert_eq!(verify(SECRET, &sig, &altered, timestamp, 0).is_ok(), other_body == body);
        }
    }
}
