//! The frame every page shares — head, navigation, footer — and the
//! headers every UI response carries: a strict Content-Security-Policy (no
//! script at all, styles only from `/ui/style.css`), no sniffing, no
//! referrer, no caching of live data.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// The stylesheet, served at [`STYLE_PATH`].
pub const STYLE: &str = include_str!("style.css");

/// Where the stylesheet is served.
pub const STYLE_PATH: &str = "/ui/style.css";

/// The policy of every page: nothing but its own stylesheet and forms
/// posting back to it; no script, no frame, no plugin.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages in the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Overview,
    /// `/alerts`.
    Alerts,
    /// `/deliveries`.
    Deliveries,
    /// A page that is none of them.
    Other,
}

/// A whole page: `title` in the tab and the heading's place, `body` in `<main>`.
pub fn layout(title: &str, nav: Nav, body: Markup) -> Markup {
    let item = |href: &str, label: &str, this: Nav| {
        html! {
            @if nav == this {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · prognos" }
                link rel="stylesheet" href=(STYLE_PATH);
                // No favicon request (it would be a 404 in the console).
                link rel="icon" href="data:,";
            }
            body {
                header.top {
                    a.brand href="/" { "prognos" }
                    nav {
                        (item("/", "Overview", Nav::Overview))
                        (item("/alerts", "Alerts & silences", Nav::Alerts))
                        (item("/deliveries", "Deliveries", Nav::Deliveries))
                    }
                }
                main { (body) }
                footer {
                    "prognos " (env!("CARGO_PKG_VERSION")) " · "
                    a href="/api/v1/rules" { "API" } " · "
                    a href="/metrics" { "metrics" }
                }
            }
        }
    }
}

/// An HTML response with the UI's headers.
pub fn respond(status: StatusCode, page: Markup) -> Response {
    let mut r = (status, page.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(h);
    r
}

/// The headers every UI response carries.
pub fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The stylesheet's response.
pub async fn style() -> Response {
    let mut r = STYLE.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    secure(h);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// A page saying what went wrong, with `status`.
pub fn problem(status: StatusCode, title: &str, body: Markup) -> Response {
    respond(
        status,
        layout(
            title,
            Nav::Other,
            html! {
                h1 { (title) }
                (body)
            },
        ),
    )
}
