//! Secrets and what may be shown of text that could hold one: [`Secret`]
//! never prints its value, [`redact_url`] strips user info and sensitive
//! query parameters from a URL before it is logged, shown in the API or
//! put in an error, and [`excerpt`] cuts untrusted text to a bounded length.

use std::fmt;

/// A secret value (token, password, HMAC key). `Debug` and `Display` print
/// `<secret>` and it implements no `Serialize`; only [`Secret::expose`]
/// gives the value, for the code that must send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: pass it to the client that needs it, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// What replaces a redacted password or query value.
pub const REDACTED: &str = "REDACTED";

/// Whether a query parameter's name says its value is a credential
/// (`api_key`, `token`, `access_token`, `password`, `X-Amz-Signature`, …).
pub fn is_sensitive_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &["key", "sig", "code", "pass", "pwd", "session"];
    const PARTS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "signature",
        "credential",
        "private",
        "access_key",
        "auth",
    ];
    EXACT.contains(&n.as_str()) || PARTS.iter().any(|p| n.contains(p))
}

/// The URL with its user info and the values of sensitive query parameters
/// replaced by `REDACTED` (names and other parameters stay, so the URL is
/// still recognisable): `http://u:pw@h/p?api_key=k&x=1` →
/// `http://REDACTED@h/p?api_key=REDACTED&x=1`.
pub fn redact_url(url: &url::Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        // Both fail only for URLs that cannot have user info at all.
        let _ = u.set_password(None);
        let _ = u.set_username(REDACTED);
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive_param(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if u.fragment().is_some() {
        u.set_fragment(None);
    }
    u.to_string()
}

/// [`redact_url`] for text that should be a URL but may not parse: an
/// unparsable string is shown only as its scheme and host-looking prefix
/// up to any `@`, `?` or `#`, cut to [`EXCERPT_CHARS`].
pub fn redact_url_str(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(u) => redact_url(&u),
        Err(_) => {
            // Drop everything from the first character that may start a
            // credential: user info ends at '@', and the query may hold keys.
            let (scheme, rest) = match text.split_once("://") {
                Some((s, r)) => (Some(s), r),
                None => (None, text),
            };
            let rest = match rest.rfind('@') {
                Some(i) => &rest[i + 1..],
                None => rest,
            };
            let rest = rest.split(['?', '#']).next().unwrap_or("");
            let shown = match scheme {
                Some(s) => format!("{s}://{rest}"),
                None => rest.to_string(),
            };
            excerpt(&shown, EXCERPT_CHARS)
        }
    }
}

/// Default length to which untrusted text is cut in errors and logs, in
/// characters: enough for a token or a line, never a whole file.
pub const EXCERPT_CHARS: usize = 120;

/// `text` cut to at most `max_chars` characters (on a character boundary),
/// with `…` and the number of bytes left out when cut.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} more bytes)", &text[..cut], text.len() - cut),
    }
}

/// Compares two byte strings in time that depends on neither their content
/// nor their lengths' relation (both are hashed first, so the comparison
/// always runs over 32 bytes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn user_info_and_sensitive_parameters_are_redacted() {
        let u = url::Url::parse(
            "http://user:PASS@host:8080/hook?api_key=K1&x=1&Token=T2&X-Amz-Signature=S3#frag",
        )
        .unwrap();
        let r = redact_url(&u);
        for secret in ["user", "PASS", "K1", "T2", "S3", "frag"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.starts_with("http://REDACTED@host:8080/hook?"), "{r}");
        assert!(r.contains("x=1") && r.contains("api_key=REDACTED"), "{r}");
        // A URL with nothing to hide is unchanged.
        let plain = url::Url::parse("https://h/p?service=shop").unwrap();
        assert_eq!(redact_url(&plain), "https://h/p?service=shop");
    }

    #[test]
    fn an_unparsable_url_loses_its_credentials() {
        let r = redact_url_str("http://admin:PW@127.0.0.1:99999/x?token=abc");
        assert!(
            !r.contains("PW") && !r.contains("admin") && !r.contains("abc"),
            "{r}"
        );
        assert!(r.starts_with("http://127.0.0.1:99999"), "{r}");
    }

    #[test]
    fn excerpts_are_bounded_and_cut_on_characters() {
        assert_eq!(excerpt("short", 10), "short");
        let long = "é".repeat(1000);
        let e = excerpt(&long, 5);
        assert!(e.starts_with("ééééé…"), "{e}");
        assert!(e.ends_with("(1990 more bytes)"), "{e}");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
