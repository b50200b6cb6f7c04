//! Body templates: parsing `{{ … }}` placeholders, rendering them for an
//! alert ([`render_body`]) and checking them at configuration load
//! ([`check_template`]).
//!
//! A body template is escaped for its content type ([`BodyType`]), taken
//! from the action's `Content-Type` header or, without one, inferred from
//! the template: JSON values are JSON-escaped, form values percent-encoded,
//! and placeholders are refused in any other type.

use crate::alert::{AlertInfo, KeyValues, Status};
use crate::secret::{EXCERPT_CHARS, excerpt};

/// A body template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{ … }}` the renderer does not know.
    #[error(
        "unknown placeholder '{{{{ {placeholder} }}}}': expected $labels.NAME, $annotations.NAME, $value, $alertname, $fingerprint or $status"
    )]
    UnknownPlaceholder {
        /// What was written between the braces (trimmed).
        placeholder: String,
    },
    /// A `{{` without its `}}`.
    #[error("placeholder opened at byte {at} is not closed with '}}}}'")]
    Unclosed {
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// A JSON template that does not render to valid JSON.
    #[error("the JSON body template does not render to valid JSON: {message}")]
    InvalidJson {
        /// The parser's complaint.
        message: String,
    },
    /// Placeholders in a body whose content type prognos cannot escape
    /// values for, so a label value could change its structure.
    #[error(
        "placeholders are not allowed in a '{content_type}' body (values cannot be escaped for it): set the Content-Type header to application/json or application/x-www-form-urlencoded, or use a body without placeholders"
    )]
    UnescapableContentType {
        /// The configured content type (cut to a bounded length).
        content_type: String,
    },
    /// Placeholders in a body that is not JSON, without a `Content-Type`
    /// header saying how to escape them.
    #[error(
        "a body with placeholders that is not JSON needs a Content-Type header, application/json or application/x-www-form-urlencoded, so values are escaped for it"
    )]
    NoContentType,
}

/// How values are inserted into a body template: escaped for the body's
/// content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `application/json` or any `…+json`: values are JSON-escaped inside
    /// string literals and quoted outside them (`$value` as a number).
    Json,
    /// `application/x-www-form-urlencoded`: each value is percent-encoded
    /// (form style), so it cannot add a parameter (`&`) or a value (`=`).
    Form,
    /// Any other type: sent as written, placeholders refused — prognos
    /// cannot know what a value would mean to the receiver (a `text/plain`
    /// body may well be parsed as a form), so it inserts none.
    Verbatim,
}

impl BodyType {
    /// The body type for a `Content-Type` header value (parameters such as
    /// `charset` ignored), or, without one, for the template: JSON if it
    /// looks like JSON (starts with `{` or `[`), verbatim if it has no
    /// placeholders, otherwise [`TemplateError::NoContentType`]. A content
    /// type other than JSON or form with placeholders is
    /// [`TemplateError::UnescapableContentType`].
    pub fn resolve(content_type: Option<&str>, template: &str) -> Result<Self, TemplateError> {
        let placeholders = template.contains("{{");
        let Some(ct) = content_type else {
            return if is_json(template) {
                Ok(BodyType::Json)
            } else if placeholders {
                Err(TemplateError::NoContentType)
            } else {
                Ok(BodyType::Verbatim)
            };
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
        {
            Ok(BodyType::Json)
        } else if essence == "application/x-www-form-urlencoded" {
            Ok(BodyType::Form)
        } else if placeholders {
            Err(TemplateError::UnescapableContentType {
                content_type: excerpt(ct, EXCERPT_CHARS),
            })
        } else {
            Ok(BodyType::Verbatim)
        }
    }

    /// The `Content-Type` sent when the action configures none.
    pub fn default_content_type(self) -> &'static str {
        match self {
            BodyType::Json => "application/json",
            BodyType::Form => "application/x-www-form-urlencoded",
            BodyType::Verbatim => "text/plain; charset=utf-8",
        }
    }
}

/// One piece of a parsed template.
enum Piece<'a> {
    /// Literal text.
    Text(&'a str),
    /// A placeholder; `in_string` says whether it sits inside a JSON string literal.
    Var { var: Var<'a>, in_string: bool },
}

/// A known placeholder.
enum Var<'a> {
    Label(&'a str),
    Annotation(&'a str),
    Value,
    AlertName,
    Fingerprint,
    Status,
}

pub(super) fn is_json(template: &str) -> bool {
    let t = template.trim_start();
    // `{{` opens a placeholder, never a JSON object.
    (t.starts_with('{') && !t.starts_with("{{")) || t.starts_with('[')
}

fn parse_var(inner: &str) -> Result<Var<'_>, TemplateError> {
    let name_ok =
        |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let var = if let Some(n) = inner.strip_prefix("$labels.") {
        name_ok(n).then_some(Var::Label(n))
    } else if let Some(n) = inner.strip_prefix("$annotations.") {
        name_ok(n).then_some(Var::Annotation(n))
    } else {
        match inner {
            "$value" => Some(Var::Value),
            "$alertname" => Some(Var::AlertName),
            "$fingerprint" => Some(Var::Fingerprint),
            "$status" => Some(Var::Status),
            _ => None,
        }
    };
    var.ok_or_else(|| TemplateError::UnknownPlaceholder {
        placeholder: excerpt(inner, EXCERPT_CHARS),
    })
}

/// Splits a template into text and placeholders, tracking (for JSON
/// templates) whether each placeholder lies inside a string literal.
fn parse(template: &str, json: bool) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    let mut offset = 0;
    loop {
        let (text, tail) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(i)),
            None => (rest, None),
        };
        if json {
            for c in text.chars() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if in_string => escaped = true,
                    '"' => in_string = !in_string,
                    _ => {}
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let Some(i) = tail else { break };
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unclosed { at: offset + i })?;
        let var = parse_var(after[..end].trim())?;
        pieces.push(Piece::Var {
            var,
            in_string: json && in_string,
        });
        let consumed = i + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok(pieces)
}

/// The characters of `s` escaped for the inside of a JSON string.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    // Serialising a string always gives `"…"`.
    quoted[1..quoted.len() - 1].to_string()
}

/// Renders a body template with `{{ $labels.NAME }}`, `{{ $annotations.NAME }}`,
/// `{{ $value }}`, `{{ $alertname }}`, `{{ $fingerprint }}`, `{{ $status }}`
/// (a missing label or annotation renders empty), each value escaped for
/// `body_type`:
///
/// - [`BodyType::Json`]: values are JSON-escaped so untrusted label values
///   cannot break out of a string or inject fields: inside a string literal
///   the escaped characters are inserted; outside one, a quoted JSON string
///   (and `$value` as a number, `null` if not finite);
/// - [`BodyType::Form`]: values are percent-encoded (`&` → `%26`, `=` →
///   `%3D`, space → `+`), so they cannot add parameters;
/// - [`BodyType::Verbatim`]: any placeholder is
///   [`TemplateError::UnescapableContentType`].
pub fn render_body(
    template: &str,
    body_type: BodyType,
    alert: &AlertInfo,
) -> Result<String, TemplateError> {
    let json = body_type == BodyType::Json;
    let mut out = String::with_capacity(template.len() + 64);
    for piece in parse(template, json)? {
        let (var, in_string) = match piece {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Var { var, in_string } => (var, in_string),
        };
        let text = match var {
            Var::Label(n) => alert.labels.get(n).cloned().unwrap_or_default(),
            Var::Annotation(n) => alert.annotations.get(n).cloned().unwrap_or_default(),
            Var::Value => {
                if json && !in_string {
                    // A bare number in JSON; NaN and infinities are not JSON.
                    if alert.value.is_finite() {
                        out.push_str(&alert.value.to_string());
                    } else {
                        out.push_str("null");
                    }
                    continue;
                }
                alert.value.to_string()
            }
            Var::AlertName => alert.name().to_string(),
            Var::Fingerprint => alert.fingerprint(),
            Var::Status => match alert.status {
                Status::Firing => "firing".to_string(),
                Status::Resolved => "resolved".to_string(),
            },
        };
        match (body_type, in_string) {
            (BodyType::Json, true) => out.push_str(&json_escape(&text)),
            (BodyType::Json, false) => {
                out.push_str(&serde_json::Value::String(text).to_string());
            }
            (BodyType::Form, _) => {
                out.extend(url::form_urlencoded::byte_serialize(text.as_bytes()))
            }
            (BodyType::Verbatim, _) => {
                return Err(TemplateError::UnescapableContentType {
                    content_type: BodyType::Verbatim.default_content_type().to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Checks a body template at configuration load and returns how it will be
/// escaped: its body type ([`BodyType::resolve`] from the `Content-Type`
/// header, if configured), known placeholders, closed braces, and (for a
/// JSON body) that it renders to valid JSON, also with hostile label values.
pub fn check_template(
    template: &str,
    content_type: Option<&str>,
) -> Result<BodyType, TemplateError> {
    let body_type = BodyType::resolve(content_type, template)?;
    let pieces = parse(template, body_type == BodyType::Json)?;
    if body_type == BodyType::Json {
        let hostile = "\"},\\\n{\"x\":1";
        let labels: KeyValues = [("alertname".to_string(), "Check".to_string())].into();
        let mut probe = AlertInfo {
            rule: "check/Check".to_string(),
            labels,
            annotations: KeyValues::new(),
            status: Status::Firing,
            starts_at: 0,
            ends_at: None,
            value: 1.5,
            generator_url: String::new(),
            explanation: None,
        };
        // Every label and annotation the template names gets the hostile value.
        for piece in pieces {
            match piece {
                Piece::Var {
                    var: Var::Label(n), ..
                } => {
                    probe.labels.insert(n.to_string(), hostile.to_string());
                }
                Piece::Var {
                    var: Var::Annotation(n),
                    ..
                } => {
                    probe.annotations.insert(n.to_string(), hostile.to_string());
                }
                _ => {}
            }
        }
        let body = render_body(template, body_type, &probe)?;
        serde_json::from_str::<serde_json::Value>(&body).map_err(|e| {
            TemplateError::InvalidJson {
                message: e.to_string(),
            }
        })?;
    }
    Ok(body_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::testing::{action, firing};
    use crate::remediation::{Governor, plan};
    use crate::store::Delivery;

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn templates_render_every_placeholder() {
        let a = firing();
        let t = "\"{{ $alertname }} on {{$labels.instance}} is {{ $status }} ({{ $value }}), {{ $annotations.summary }} [{{ $fingerprint }}] {{ $labels.missing }}.\"";
        let out = render_body(t, BodyType::Json, &a).unwrap();
        assert_eq!(
            out,
            format!(
                "\"MesQueueBacklogSoon on node-1 is firing (3600.5), Queue <fills> soon [{}] .\"",
                a.fingerprint()
            )
        );
    }

    #[test]
    fn hostile_values_cannot_break_out_of_json() {
        let mut a = firing();
        for hostile in [
            "a\"b",
            "back\\slash",
            "new\nline",
            r#"x","admin":true,"y":""#,
        ] {
            a.labels.insert("instance".to_string(), hostile.to_string());
            a.annotations
                .insert("summary".to_string(), hostile.to_string());
            let t = r#"{"host":"{{ $labels.instance }}","bare":{{ $annotations.summary }},"v":{{ $value }}}"#;
            let body = render_body(t, BodyType::Json, &a).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 3, "no injected fields: {body}");
            assert_eq!(v["host"], hostile);
            assert_eq!(v["bare"], hostile);
            assert_eq!(v["v"], 3600.5);
        }
        // Verbatim (e.g. text/plain) bodies take no values at all.
        a.labels.insert("instance".to_string(), "a\"b".to_string());
        assert!(matches!(
            render_body("host={{ $labels.instance }}", BodyType::Verbatim, &a),
            Err(TemplateError::UnescapableContentType { .. })
        ));
    }

    #[test]
    fn non_finite_values_are_null_outside_strings() {
        let mut a = firing();
        a.value = f64::NAN;
        let body = render_body(
            r#"{"v":{{ $value }},"s":"{{ $value }}"}"#,
            BodyType::Json,
            &a,
        )
        .unwrap();
        assert_eq!(body, r#"{"v":null,"s":"NaN"}"#);
    }

    #[test]
    fn unknown_placeholders_and_bad_json_are_named() {
        let e = render_body(
            "x {{ $labels.a }} {{ .Labels.b }}",
            BodyType::Form,
            &firing(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownPlaceholder {
                placeholder: ".Labels.b".to_string()
            }
        );
        assert!(e.to_string().contains(".Labels.b"), "{e}");
        let e = check_template("{{ $valu }}", Some(FORM)).unwrap_err();
        assert!(e.to_string().contains("$valu"), "{e}");
        assert_eq!(
            check_template("a {{ $value", Some(FORM)).unwrap_err(),
            TemplateError::Unclosed { at: 2 }
        );
        assert!(matches!(
            check_template(r#"{"a": {{ $value }}"#, None),
            Err(TemplateError::InvalidJson { .. })
        ));
        assert_eq!(
            check_template(r#"{"a":"{{ $labels.x }}","b":{{ $labels.y }}}"#, None),
            Ok(BodyType::Json)
        );
        assert_eq!(
            check_template("plain {{ $status }}", None),
            Err(TemplateError::NoContentType)
        );
        assert_eq!(
            check_template("plain {{ $status }}", Some(FORM)),
            Ok(BodyType::Form)
        );
    }

    #[test]
    fn form_bodies_percent_encode_so_a_label_cannot_add_a_parameter() {
        let mut a = firing();
        a.labels
            .insert("service".to_string(), "shop&action=drop".to_string());
        let t = "service={{ $labels.service }}&action=scale";
        assert_eq!(check_template(t, Some(FORM)), Ok(BodyType::Form));
        let body = render_body(t, BodyType::Form, &a).unwrap();
        assert_eq!(body, "service=shop%26action%3Ddrop&action=scale");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            [
                ("service".to_string(), "shop&action=drop".to_string()),
                ("action".to_string(), "scale".to_string()),
            ]
        );
        // Through a plan, with the header as configured (any case).
        let mut act = action("scale");
        act.body_template = t.to_string();
        act.headers = vec![("content-type".to_string(), FORM.to_string())];
        act.matchers = crate::matcher::parse_matchers(r#"service=~".+""#).unwrap();
        let p = plan(&[act], &mut Governor::default(), &a, 0).unwrap();
        let Some(Delivery::Remediate(call)) = &p[0].enqueue else {
            panic!("expected a call")
        };
        assert_eq!(call.body, body);
        assert_eq!(
            call.headers,
            [("content-type".to_string(), FORM.to_string())]
        );
    }

    #[test]
    fn content_types_decide_the_escaping_and_unknown_ones_take_no_placeholders() {
        let with = "service={{ $labels.service }}";
        let cases: &[(Option<&str>, &str, Result<BodyType, ()>)] = &[
            (
                Some("application/json; charset=utf-8"),
                "{{ $value }}",
                Ok(BodyType::Json),
            ),
            (
                Some("Application/Merge-Patch+JSON"),
                "[]",
                Ok(BodyType::Json),
            ),
            (
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                with,
                Ok(BodyType::Form),
            ),
            (Some("text/plain"), with, Err(())),
            (Some("application/xml"), "<a>{{ $value }}</a>", Err(())),
            (
                Some("application/xml"),
                "<restart/>",
                Ok(BodyType::Verbatim),
            ),
            (Some("text/plain"), "restart", Ok(BodyType::Verbatim)),
            (None, with, Err(())),
            (None, "", Ok(BodyType::Verbatim)),
            (None, r#"{"a":{{ $value }}}"#, Ok(BodyType::Json)),
        ];
        for (ct, template, want) in cases {
            let got = check_template(template, *ct);
            assert_eq!(
                got.clone().map_err(|_| ()),
                *want,
                "{ct:?} {template:?}: {got:?}"
            );
        }
        let e = check_template(with, Some("text/plain")).unwrap_err();
        assert!(
            e.to_string().contains("'text/plain'")
                && e.to_string().contains("application/x-www-form-urlencoded"),
            "{e}"
        );
        // Without a configured Content-Type, the call gets the one of its type.
        let p = plan(&[action("restart")], &mut Governor::default(), &firing(), 0).unwrap();
        let Some(Delivery::Remediate(call)) = &p[0].enqueue else {
            panic!("expected a call")
        };
        assert_eq!(
            call.headers,
            [("Content-Type".to_string(), "application/json".to_string())]
        );
    }
}
