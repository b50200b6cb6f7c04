//! Reading a YAML value into a serde struct while reporting every serde
//! error in it, not only the first: each bad node (an unknown key, a value
//! of the wrong type) is reported at its place in the file, removed, and
//! the rest read again.
//!
//! Removed paths are remembered in the [`Report`], which then keeps quiet
//! about them (a bad `within:` is not also reported as missing).

use serde::de::DeserializeOwned;
use serde_norway::Value;

use super::locate::{Seg, parse_path};
use super::validate::{Report, serde_error, split_path, strip_location, unknown_field};

/// Most serde errors reported for one value before giving up on it.
const MAX_ERRORS: usize = 32;

/// Reads `value`, found at `path` in the report's document (`""` for the
/// whole document), as a `T`, recording every serde error located in the
/// file with `context`. `document` says what the value should be when it
/// is not even a mapping ("a mapping with `alert:`").
///
/// `None` when no `T` could be read: the value is of the wrong kind, a
/// required field is missing or bad, or an error could not be peeled.
pub(crate) fn read<T: DeserializeOwned>(
    report: &mut Report<'_>,
    mut value: Value,
    path: &str,
    context: &str,
    document: &str,
) -> Option<T> {
    let base = parse_path(path);
    for _ in 0..MAX_ERRORS {
        let err = match serde_norway::to_string(&value).and_then(|s| serde_norway::from_str(&s)) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let text = strip_location(&err.to_string());
        let (at, message) = split_path(&text);
        let mut segs: Vec<Seg<'_>> = base.clone();
        segs.extend(at.map(parse_path).unwrap_or_default());
        let missing = message.strip_prefix("missing field `").and_then(|m| {
            m.strip_suffix('`')
                .filter(|name| !name.contains('`'))
                .map(|name| join(path, at, Some(name)))
        });
        let unknown = unknown_field(message).map(|(name, _)| name);
        if let Some(missing) = &missing
            && report.is_peeled(missing)
        {
            // Missing because its bad value was removed: already reported.
            return None;
        }
        let (mut error, _) = serde_error(report.file, &err, context, document);
        let mut place = segs.clone();
        place.extend(unknown.map(Seg::Key));
        let pos = report.doc.locate(&place);
        (error.line, error.column) = (pos.line, pos.column);
        report.errors.push(error);
        if missing.is_some() {
            return None;
        }
        // The bad node: the unknown key, or the bad value's key (a whole
        // list rather than one item, so later items keep their indices).
        let mut target: Vec<Seg<'_>> = segs[base.len()..].to_vec();
        match unknown {
            Some(name) => target.push(Seg::Key(name)),
            None => {
                while matches!(target.last(), Some(Seg::Index(_))) {
                    target.pop();
                }
            }
        }
        if target.is_empty() || !remove(&mut value, &target) {
            return None;
        }
        report
            .peeled
            .push(join(path, Some(&to_path(&target)), None));
    }
    None
}

/// `path`, then `more` and `key` below it, as a dotted path.
fn join(path: &str, more: Option<&str>, key: Option<&str>) -> String {
    let mut out = path.to_string();
    for part in [more, key].into_iter().flatten() {
        let part = part.trim_start_matches('.');
        if !out.is_empty() && !part.starts_with('[') {
            out.push('.');
        }
        out.push_str(part);
    }
    out
}

/// `segs` written as a path: `a.b[2].c`.
fn to_path(segs: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Removes the node at `path` (ending with a key); whether it was there.
fn remove(value: &mut Value, path: &[Seg<'_>]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        let next = match *seg {
            Seg::Key(k) => node.get_mut(k),
            Seg::Index(i) => node.get_mut(i),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (*last, node) {
        // `shift_remove` keeps the order of the keys, and so of the errors.
        (Seg::Key(k), Value::Mapping(m)) => m.shift_remove(k).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::locate::Doc;
    use super::super::raw::RawRule;
    use super::*;

    fn read_rule(text: &str) -> (Option<RawRule>, Vec<String>, Vec<String>) {
        let mut errors = Vec::new();
        let value: Value = serde_norway::from_str(text).unwrap();
        let mut report = Report::new(Path::new("r.yml"), Doc::new(text), &mut errors);
        let rule = read::<RawRule>(&mut report, value, "", "rule", "a mapping with `alert:`");
        let peeled = std::mem::take(&mut report.peeled);
        (
            rule,
            errors.iter().map(ToString::to_string).collect(),
            peeled,
        )
    }

    #[test]
    fn every_unknown_key_and_bad_value_is_reported_and_the_rest_read() {
        let text = "\
alert: A
histroy: 7d
expr: up
condition:
  forecast: {threshold: abc, within: 1h}
horizons: [1h, {a: 1}, [2]]
lables: {a: b}
";
        let (rule, errors, peeled) = read_rule(text);
        let want = [
            "r.yml:2:1: rule: field 'histroy': unknown field `histroy`",
            "r.yml:5:14: rule: field 'condition.forecast.threshold': invalid type: string \"abc\", expected f64",
            "r.yml:6:16: rule: field 'horizons[1]': invalid type: map",
            "r.yml:7:1: rule: field 'lables': unknown field `lables`",
        ];
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
        for (got, want) in errors.iter().zip(want) {
            assert!(got.starts_with(want), "got  {got}\nwant {want}");
        }
        let rule = rule.expect("the rest is read");
        assert_eq!(rule.expr.as_deref(), Some("up"));
        assert!(rule.horizons.is_none());
        assert_eq!(
            rule.condition
                .and_then(|c| c.forecast)
                .and_then(|f| f.within)
                .map(|w| w.0),
            Some("1h".to_string())
        );
        assert_eq!(
            peeled,
            [
                "histroy",
                "condition.forecast.threshold",
                "horizons",
                "lables"
            ]
        );
    }

    #[test]
    fn a_value_that_is_not_a_mapping_gives_one_error() {
        let (rule, errors, _) = read_rule("- a\n- b\n");
        assert!(rule.is_none());
        assert_eq!(
            errors,
            ["r.yml:1:1: rule: expected a mapping with `alert:`, got a sequence"]
        );
    }

    #[test]
    fn joins_paths() {
        assert_eq!(join("groups[0]", Some("rules"), None), "groups[0].rules");
        assert_eq!(join("", Some("a.b"), Some("c")), "a.b.c");
        assert_eq!(join("g", Some("[2]"), None), "g[2]");
    }
}
