//! Listing one bucket with ListObjectsV2 and adding up its object sizes.
//!
//! Each page is a presigned (SigV4, rusty-s3) `GET` sent with reqwest,
//! `max-keys=1000`, following `NextContinuationToken` until the listing is
//! complete. A failure anywhere fails the whole listing: a partial sum is
//! never reported.

use std::time::Duration;

use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

/// Keys asked for per page (the S3 maximum).
pub const MAX_KEYS: usize = 1000;
/// Validity of each presigned page URL. It is used at once; the margin
/// only covers a clock running behind the server's.
const PRESIGN_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// Characters of an error response body quoted in logs.
const BODY_EXCERPT_CHARS: usize = 300;

/// What a complete listing found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketTotals {
    /// Sum of the sizes of the listed objects, in bytes.
    pub bytes: u64,
    /// Number of listed objects.
    pub objects: u64,
    /// Number of ListObjectsV2 requests it took.
    pub pages: u64,
}

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The server answered with an error status.
    #[error("HTTP {status}{}: {detail}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The S3 error code from the XML body (`NoSuchBucket`,
        /// `AccessDenied`, …), if there is one.
        code: Option<String>,
        /// The S3 error message, or else the start of the response body.
        detail: String,
    },
    /// A request or reading its response took longer than `--timeout`.
    #[error("timed out")]
    Timeout(#[source] reqwest::Error),
    /// The server could not be connected to.
    #[error("could not connect")]
    Connect(#[source] reqwest::Error),
    /// Any other transport failure (connection reset, bad TLS, …).
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// The response is not a ListObjectsV2 result we can use.
    #[error("could not parse the ListObjectsV2 response: {0}")]
    Parse(String),
    /// The server sent the same continuation token twice.
    #[error("the server repeated continuation token {0:?}; stopped to avoid looping")]
    RepeatedToken(String),
    /// The bucket URL could not be built.
    #[error("could not build the bucket URL: {0}")]
    Url(String),
}

impl ListError {
    /// The `reason` label of `s3_bucket_list_errors_total`: `http_<status>`,
    /// `timeout`, `connect`, `request`, `parse`, `repeated_token` or `url`.
    pub fn reason(&self) -> String {
        match self {
            ListError::Status { status, .. } => format!("http_{status}"),
            ListError::Timeout(_) => "timeout".to_owned(),
            ListError::Connect(_) => "connect".to_owned(),
            ListError::Request(_) => "request".to_owned(),
            ListError::Parse(_) => "parse".to_owned(),
            ListError::RepeatedToken(_) => "repeated_token".to_owned(),
            ListError::Url(_) => "url".to_owned(),
        }
    }

    fn from_transport(error: reqwest::Error) -> ListError {
        // The presigned URL carries the key id and any session token: keep
        // it out of messages.
        let error = error.without_url();
        // A connect timeout is both: report it as the timeout it is.
        if error.is_timeout() {
            ListError::Timeout(error)
        } else if error.is_connect() {
            ListError::Connect(error)
        } else {
            ListError::Request(error)
        }
    }
}

/// Lists buckets of one endpoint with one HTTP client and set of
/// credentials.
#[derive(Debug, Clone)]
pub struct Lister {
    client: reqwest::Client,
    endpoint: Url,
    url_style: UrlStyle,
    region: String,
    credentials: Option<Credentials>,
    prefix: Option<String>,
}

impl Lister {
    /// A lister whose every page request times out after `timeout`.
    pub fn new(
        endpoint: Url,
        url_style: UrlStyle,
        region: String,
        credentials: Option<Credentials>,
        prefix: Option<String>,
        timeout: Duration,
    ) -> Result<Lister, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("prognos-s3-exporter/", env!("CARGO_PKG_VERSION")))
            // A presigned URL is only valid for its own host and path: a
            // redirect (wrong region, 301/307) is reported, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Lister {
            client,
            endpoint,
            url_style,
            region,
            credentials,
            prefix,
        })
    }

    /// Lists every key of `bucket` (under the prefix, if any) and adds up
    /// their sizes.
    pub async fn list(&self, bucket: &str) -> Result<BucketTotals, ListError> {
        let bucket = Bucket::new(
            self.endpoint.clone(),
            self.url_style,
            bucket.to_owned(),
            self.region.clone(),
        )
        .map_err(|e| ListError::Url(format!("{e:?}")))?;

        let mut totals = BucketTotals::default();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&bucket, self.credentials.as_ref());
            action.with_max_keys(MAX_KEYS);
            if let Some(prefix) = &self.prefix {
                action.with_prefix(prefix.as_str());
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(PRESIGN_VALIDITY);

            let body = self.get(url).await?;
            totals.pages += 1;
            let page = ListObjectsV2::parse_response(&body)
                .map_err(|e| ListError::Parse(e.to_string()))?;
            for object in &page.contents {
                let size = object.size.ok_or_else(|| {
                    ListError::Parse(format!("object {:?} has no Size", object.key))
                })?;
                totals.bytes = totals.bytes.saturating_add(size);
                totals.objects += 1;
            }
            match page.next_continuation_token {
                None => return Ok(totals),
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(ListError::RepeatedToken(next));
                }
                Some(next) => token = Some(next),
            }
        }
    }

    /// Sends one GET and returns the body of a 2xx response.
    async fn get(&self, url: Url) -> Result<String, ListError> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(ListError::from_transport)?;
        let status = response.status();
        let body = response.text().await.map_err(ListError::from_transport)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(ListError::Status {
                status: status.as_u16(),
                code: xml_element(&body, "Code"),
                detail: xml_element(&body, "Message").unwrap_or_else(|| excerpt(&body)),
            })
        }
    }
}

/// `error` and its sources, joined with `: ` (the transport variants of
/// [`ListError`] only say what failed; the causes are their sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The text of the first `<name>` element of an S3 XML error body (`Code`,
/// `Message`), if it is short and not empty.
fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&format!("</{name}>"))?;
    let text = body[start..start + len].trim();
    (!text.is_empty() && text.len() <= BODY_EXCERPT_CHARS).then(|| excerpt(text))
}

fn excerpt(body: &str) -> String {
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT_CHARS)
        .collect();
    if body.chars().count() > BODY_EXCERPT_CHARS {
        format!("{flat}…")
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_and_message_are_read_from_the_xml_body() {
        let body = "<?xml version=\"1.0\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(xml_element("<html>502</html>", "Code"), None);
        assert_eq!(xml_element("<Code></Code>", "Code"), None);
        let error = ListError::Status {
            status: 404,
            code: xml_element(body, "Code"),
            detail: xml_element(body, "Message").unwrap(),
        };
        assert_eq!(error.reason(), "http_404");
        assert_eq!(
            error.to_string(),
            "HTTP 404 NoSuchBucket: The specified bucket does not exist"
        );
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(excerpt(&long).chars().count(), BODY_EXCERPT_CHARS + 1);
        assert_eq!(excerpt("short"), "short");
    }
}
