//! Alert label and annotation templates: `{{ $labels.NAME }}`,
//! `{{ $value }}` and `{{ $eta }}`, nothing else. Checked when the rules
//! load, so rendering never fails.

use std::collections::BTreeMap;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Label(&'a str),
    Value,
    Eta,
}

/// What a valid template refers to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Uses {
    /// The template uses `{{ $eta }}`.
    pub eta: bool,
}

/// Splits `template` into text and placeholders; the error names the first
/// placeholder that is not allowed.
fn parse(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed '{{{{' in {template:?}"))?;
        let inner = after[..close].trim();
        let piece = match inner {
            "$value" => Piece::Value,
            "$eta" => Piece::Eta,
            _ => match inner.strip_prefix("$labels.") {
                Some(name) if is_label_name(name) => Piece::Label(name),
                _ => {
                    return Err(format!(
                        "unknown placeholder '{{{{ {inner} }}}}', allowed: \
                         {{{{ $labels.NAME }}}}, {{{{ $value }}}}, {{{{ $eta }}}}"
                    ));
                }
            },
        };
        pieces.push(piece);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Checks a template at load time.
pub(crate) fn check(template: &str) -> Result<Uses, String> {
    let pieces = parse(template)?;
    Ok(Uses {
        eta: pieces.contains(&Piece::Eta),
    })
}

/// Whether `template` uses `{{ $eta }}` (false for one that fails the
/// load-time check).
pub fn uses_eta(template: &str) -> bool {
    check(template).is_ok_and(|u| u.eta)
}

/// Whether `s` is a Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Renders a template checked at load time.
///
/// `{{ $labels.NAME }}` becomes the label's value (empty when the series has
/// no such label), `{{ $value }}` the value in Rust's shortest exact form,
/// `{{ $eta }}` the given text or `unknown`. A template that would fail the
/// load-time check is returned as it is.
pub fn render(
    template: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
    eta: Option<&str>,
) -> String {
    let Ok(pieces) = parse(template) else {
        return template.to_string();
    };
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Label(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
            Piece::Value => out.push_str(&value.to_string()),
            Piece::Eta => out.push_str(eta.unwrap_or("unknown")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        [("datname".to_string(), "shop".to_string())].into()
    }

    #[test]
    fn renders_every_placeholder() {
        let t =
            "Shop DB {{ $labels.datname }} full in {{$eta}}, now {{ $value }}{{ $labels.nope }}.";
        assert_eq!(
            render(t, &labels(), 1.5e9, Some("~3d 4h")),
            "Shop DB shop full in ~3d 4h, now 1500000000."
        );
        assert_eq!(render("{{ $eta }}", &labels(), 0.0, None), "unknown");
    }

    #[test]
    fn check_rejects_unknown_placeholders() {
        for t in [
            "{{ $externalLabels.x }}",
            "{{ .Value }}",
            "{{ $labels.1x }}",
            "a {{ $value",
        ] {
            assert!(check(t).is_err(), "{t}");
        }
        assert_eq!(check("{{ $eta }}"), Ok(Uses { eta: true }));
        assert_eq!(check("plain"), Ok(Uses { eta: false }));
        assert!(uses_eta("in {{$eta}}"));
        assert!(!uses_eta("$eta, {{ $value }}"));
    }

    #[test]
    fn label_names() {
        assert!(is_label_name("team_1"));
        assert!(is_label_name("_x"));
        assert!(!is_label_name("1x"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name(""));
    }
}
