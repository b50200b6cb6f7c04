//! A strict reader of the OpenMetrics text format, enough to check that a
//! `/metrics` body is well formed and to look samples up.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The body as served.
    pub text: String,
    pub samples: Vec<Sample>,
    /// Family name → type (`gauge`, `counter`, …).
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// The value for `bucket` of the per-bucket metric `name`.
    pub fn bucket(&self, name: &str, bucket: &str) -> Option<f64> {
        self.value(name, &[("bucket", bucket)])
    }

    /// `s3_bucket_list_errors_total{bucket, reason}`, 0 when absent.
    pub fn errors(&self, bucket: &str, reason: &str) -> f64 {
        self.value(
            "s3_bucket_list_errors_total",
            &[("bucket", bucket), ("reason", reason)],
        )
        .unwrap_or(0.0)
    }

    /// Whether any sample of `name` has `bucket="<bucket>"`.
    pub fn has_bucket_series(&self, name: &str, bucket: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.name == name && s.labels.get("bucket").map(String::as_str) == Some(bucket))
    }
}

/// Parses `text`, failing on the first malformed line.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut samples = Vec::new();
    let mut types = HashMap::new();
    let mut saw_eof = false;
    for (index, line) in text.lines().enumerate() {
        let at = |message: &str| format!("line {}: {message}: {line:?}", index + 1);
        if saw_eof {
            return Err(at("content after # EOF"));
        }
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let name = parts.next().ok_or_else(|| at("metadata without a name"))?;
            if !is_metric_name(name) {
                return Err(at("bad metric name"));
            }
            let value = parts.next().ok_or_else(|| at("metadata without a value"))?;
            match keyword {
                "HELP" | "UNIT" => {}
                "TYPE" => {
                    if !matches!(
                        value,
                        "gauge"
                            | "counter"
                            | "histogram"
                            | "summary"
                            | "info"
                            | "stateset"
                            | "gaugehistogram"
                            | "unknown"
                    ) {
                        return Err(at("unknown type"));
                    }
                    types.insert(name.to_owned(), value.to_owned());
                }
                _ => return Err(at("unknown metadata keyword")),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| at(&e))?;
        let family_known = types.keys().any(|family| {
            sample.name == *family
                || sample
                    .name
                    .strip_prefix(family.as_str())
                    .is_some_and(|suffix| {
                        matches!(
                            suffix,
                            "_total" | "_created" | "_bucket" | "_count" | "_sum" | "_info"
                        )
                    })
        });
        if !family_known {
            return Err(at("sample without a # TYPE before it"));
        }
        samples.push(sample);
    }
    if !saw_eof {
        return Err("no # EOF line at the end".to_owned());
    }
    Ok(Exposition {
        text: text.to_owned(),
        samples,
        types,
    })
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("bad metric name".to_owned());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("label without '='")?;
            let label = &rest[..eq];
            if !is_metric_name(label) || label.contains(':') {
                return Err(format!("bad label name {label:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('"' | '\\') => value.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            rest = &rest[close + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err("expected ',' or '}' after a label".to_owned());
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    // A timestamp may follow the value; none is expected here.
    let mut fields = rest.split(' ');
    let value_text = fields.next().unwrap_or_default();
    if fields.next().is_some() {
        return Err("unexpected text after the value".to_owned());
    }
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        text => text
            .parse::<f64>()
            .map_err(|_| format!("value {text:?} is not a number"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn the_reader_rejects_malformed_lines() {
    let good = "# TYPE a gauge\na{bucket=\"x\\\"y\"} 1.5\n# TYPE c counter\nc_total 3\n# EOF\n";
    let parsed = parse(good).unwrap();
    assert_eq!(parsed.value("a", &[("bucket", "x\"y")]), Some(1.5));
    assert_eq!(parsed.value("c_total", &[]), Some(3.0));
    for bad in [
        "a 1\n# EOF\n",
        "# TYPE a gauge\na{bucket=x} 1\n# EOF\n",
        "# TYPE a gauge\na{bucket=\"x\"}1\n# EOF\n",
        "# TYPE a gauge\na one\n# EOF\n",
        "# TYPE a gauge\na 1\n",
        "# TYPE a gauge\n# EOF\na 1\n",
        "# TYPE a sometype\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
}
