//! Email over SMTP (lettre): a plain-text part and an HTML part with the
//! chart inline, one message per notification. The Message-ID derives from
//! the notification key, so a resend after a crash is recognisable.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::alert::Notification;
use crate::delivery::{Rendered, SendError};
use crate::secret::Secret;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain text (a local relay only).
    None,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
}

/// One SMTP server and the recipients.
#[derive(Clone)]
pub struct EmailConfig {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: Tls,
    /// Login, if the server requires AUTH.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<Secret>,
    /// Sender, e.g. `prognos <prognos@example.com>`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// An extra trusted root certificate (PEM) for self-signed test or enterprise servers.
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of each SMTP step (the whole conversation is bounded by 4×).
    pub timeout: Duration,
    /// Name given in EHLO (default: this host's name).
    pub hello_name: Option<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("timeout", &self.timeout)
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

/// Mails notifications through one SMTP server.
pub struct EmailChannel {
    config: EmailConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const X_PROGNOS_KEY: HeaderName = HeaderName::new_from_ascii_str("X-Prognos-Key");

/// `key` restricted to the characters a Message-ID's left part may hold.
fn message_id_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> SendError {
    let message = format!("smtp: {e}");
    if e.is_permanent() {
        SendError::permanent(message)
    } else if e.is_client() {
        // Our own message or configuration was refused before sending.
        SendError::permanent(message)
    } else {
        // Transient (4xx), connection, network, TLS handshake, timeout,
        // unparsable answers: the server may be back later.
        SendError::retry(message)
    }
}

impl EmailChannel {
    /// A channel for `c`; fails (not retryable) on bad addresses or a bad CA certificate.
    pub fn new(c: EmailConfig) -> Result<Self, SendError> {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| SendError::permanent(format!("email: invalid from {:?}: {e}", c.from)))?;
        if c.to.is_empty() {
            return Err(SendError::permanent("email: no recipients"));
        }
        let to =
            c.to.iter()
                .map(|a| {
                    a.parse::<Mailbox>()
                        .map_err(|e| SendError::permanent(format!("email: invalid to {a:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
        let tls_params = || -> Result<TlsParameters, SendError> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(pem) = &c.ca_pem {
                // lettre takes a PEM without certificates as an empty list.
                const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
                if !pem.windows(BEGIN.len()).any(|w| w == BEGIN) {
                    return Err(SendError::permanent("email: ca_pem holds no certificate"));
                }
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| SendError::permanent(format!("email: bad ca_pem: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| SendError::permanent(format!("email: TLS setup: {e}")))
        };
        let tls = match c.tls {
            Tls::None => SmtpTls::None,
            Tls::Starttls => SmtpTls::Required(tls_params()?),
            Tls::Tls => SmtpTls::Wrapper(tls_params()?),
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(c.port)
            .tls(tls)
            .timeout(Some(c.timeout));
        if let Some(user) = &c.username {
            b = b.credentials(Credentials::new(
                user.clone(),
                c.password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            ));
        }
        if let Some(name) = &c.hello_name {
            b = b.hello_name(ClientId::Domain(name.clone()));
        }
        Ok(Self {
            transport: b.build(),
            from,
            to,
            config: c,
        })
    }

    /// The message for `n` rendered as `r`.
    fn message(&self, n: &Notification, r: &Rendered) -> Result<Message, SendError> {
        let key: String = n.key.chars().filter(|c| !c.is_control()).collect();
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(r.email_subject.clone())
            .message_id(Some(format!("<{}@prognos>", message_id_part(&n.key))))
            .date_now()
            .raw_header(HeaderValue::new(X_PROGNOS_KEY, key));
        for to in &self.to {
            b = b.to(to.clone());
        }
        let mut related = MultiPart::related().singlepart(SinglePart::html(r.email_html.clone()));
        if let Some(png) = &r.chart_png {
            let png_type = ContentType::parse("image/png")
                .map_err(|e| SendError::permanent(format!("email: {e}")))?;
            related = related.singlepart(
                Attachment::new_inline_with_name("chart".to_string(), "chart.png".to_string())
                    .body(png.clone(), png_type),
            );
        }
        let body = MultiPart::alternative()
            .singlepart(SinglePart::plain(r.email_text.clone()))
            .multipart(related);
        b.multipart(body)
            .map_err(|e| SendError::permanent(format!("email: cannot build message: {e}")))
    }

    /// Mails `n` to every recipient. One part: skipped when `*progress >= 1`.
    pub async fn send(
        &self,
        n: &Notification,
        r: &Rendered,
        progress: &mut u32,
    ) -> Result<(), SendError> {
        if *progress >= 1 {
            return Ok(());
        }
        let msg = self.message(n, r)?;
        // lettre's timeout is per step; bound the whole conversation too.
        let limit = self.config.timeout.saturating_mul(4);
        match tokio::time::timeout(limit, self.transport.send(msg)).await {
            Ok(Ok(_)) => {
                *progress = 1;
                Ok(())
            }
            Ok(Err(e)) => Err(smtp_error(&e)),
            Err(_) => Err(SendError::retry("smtp: timed out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryAction;

    fn config() -> EmailConfig {
        EmailConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: Tls::None,
            username: None,
            password: Some(Secret::new("pw-secret")),
            from: "prognos <prognos@example.com>".into(),
            to: vec!["ops@example.com".into()],
            ca_pem: None,
            timeout: Duration::from_secs(5),
            hello_name: None,
        }
    }

    #[test]
    fn bad_addresses_are_permanent_errors() {
        let mut c = config();
        c.from = "not an address".into();
        assert_eq!(
            EmailChannel::new(c).unwrap_err().action,
            RetryAction::DontRetry
        );
        let mut c = config();
        c.to = vec!["ops@example.com".into(), "@@".into()];
        assert_eq!(
            EmailChannel::new(c).unwrap_err().action,
            RetryAction::DontRetry
        );
        let mut c = config();
        c.to.clear();
        assert_eq!(
            EmailChannel::new(c).unwrap_err().action,
            RetryAction::DontRetry
        );
        let mut c = config();
        c.tls = Tls::Starttls;
        c.ca_pem = Some(b"not pem".to_vec());
        assert_eq!(
            EmailChannel::new(c).unwrap_err().action,
            RetryAction::DontRetry
        );
    }

    #[test]
    fn message_ids_keep_to_safe_characters() {
        assert_eq!(message_id_part("ab-12.x"), "ab-12.x");
        assert_eq!(message_id_part("a b<c>@d"), "a_b_c__d");
    }

    #[test]
    fn debug_hides_the_password() {
        let s = format!("{:?}", EmailChannel::new(config()).unwrap());
        assert!(!s.contains("pw-secret"));
    }

    #[test]
    fn config_debug_hides_the_password() {
        let s = format!("{:?}", config());
        assert!(!s.contains("pw-secret"), "{s}");
        assert!(s.contains("<secret>"), "{s}");
    }

    #[test]
    fn tls_names_deserialize_lowercase() {
        let t: Vec<Tls> = serde_json::from_str(r#"["none","starttls","tls"]"#).unwrap();
        assert_eq!(t, vec![Tls::None, Tls::Starttls, Tls::Tls]);
    }
}
