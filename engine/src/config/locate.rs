//! Finds where a field sits in a YAML file's text, for errors found after
//! serde has done its work (serde keeps no positions in its values).
//!
//! A line-based reading of block YAML: good enough for configuration and
//! rule files written by hand. Flow mappings (`{a: 1, b: 2}`) are searched
//! on their line. When a field is not found, the deepest part of its path
//! that was found is reported.

use std::ops::Range;

/// One segment of a field path: a mapping key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug)]
struct Line<'a> {
    /// 1-based line number.
    no: usize,
    /// Column (0-based) of the first character that is not a space or `- `.
    content: usize,
    /// Column (0-based) of the leading `-` when the line starts a list item.
    dash: Option<usize>,
    /// The key when the line holds `key:`.
    key: Option<&'a str>,
    text: &'a str,
}

/// The lines of a YAML text that carry content.
#[derive(Debug)]
pub(crate) struct Doc<'a> {
    lines: Vec<Line<'a>>,
    raw: Vec<&'a str>,
}

/// A place in the document: the line index that introduced it, its column,
/// and the range of line indices its value spans.
#[derive(Debug, Clone)]
struct Node {
    at: usize,
    col: usize,
    range: Range<usize>,
}

impl<'a> Doc<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let rest = &raw[indent..];
            if rest.is_empty() || rest.starts_with('#') || rest == "---" {
                continue;
            }
            let (dash, content) = match rest
                .strip_prefix("- ")
                .or(rest.strip_prefix('-').filter(|r| r.is_empty()))
            {
                Some(after) => {
                    let skipped = after.len() - after.trim_start_matches(' ').len();
                    (Some(indent), indent + 2 + skipped)
                }
                None => (None, indent),
            };
            lines.push(Line {
                no: i + 1,
                content,
                dash,
                key: key_of(&raw[content.min(raw.len())..]),
                text: raw,
            });
        }
        Doc {
            lines,
            raw: text.lines().collect(),
        }
    }

    /// Whether the text holds nothing but blank lines and comments.
    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Where character `offset` of the scalar `value` sits, given the
    /// position of its key. Exact for one-line plain and quoted scalars
    /// and for `|` blocks; otherwise the key's position.
    pub(crate) fn value_pos(&self, key: Pos, value: &str, offset: usize) -> Pos {
        let Some(line) = self.raw.get(key.line.wrapping_sub(1)) else {
            return key;
        };
        let key_byte = line
            .char_indices()
            .nth(key.column.saturating_sub(1))
            .map_or(line.len(), |(b, _)| b);
        let Some(colon) = line[key_byte..].find(':') else {
            return key;
        };
        let after = &line[key_byte + colon + 1..];
        let start = key_byte + colon + 1 + (after.len() - after.trim_start().len());
        let col = line[..start].chars().count();
        let one_line = !value.contains('\n');
        match line[start..].chars().next() {
            Some('"' | '\'') if one_line => Pos {
                line: key.line,
                column: col + 2 + offset,
            },
            Some('|') => {
                let before: String = value.chars().take(offset).collect();
                let k = before.matches('\n').count();
                let in_line = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
                match self.raw.get(key.line + k) {
                    Some(l) => Pos {
                        line: key.line + 1 + k,
                        column: l.len() - l.trim_start().len() + in_line + 1,
                    },
                    None => key,
                }
            }
            Some(_) if one_line && line[start..].starts_with(value.trim_end()) => Pos {
                line: key.line,
                column: col + 1 + offset,
            },
            _ => key,
        }
    }

    /// Where the field at `path` is, or the deepest found part of it.
    pub(crate) fn locate(&self, path: &[Seg<'_>]) -> Pos {
        let mut node = Node {
            at: usize::MAX,
            col: 0,
            range: 0..self.lines.len(),
        };
        let mut found = Pos { line: 1, column: 1 };
        for seg in path {
            let next = match *seg {
                Seg::Key(k) => self.child(&node, k),
                Seg::Index(i) => self.item(&node, i),
            };
            match next {
                Some(n) => {
                    found = Pos {
                        line: self.lines[n.at].no,
                        column: n.col + 1,
                    };
                    node = n;
                }
                None => break,
            }
        }
        found
    }

    /// The value of `key` in the mapping spanning `node`.
    fn child(&self, node: &Node, key: &str) -> Option<Node> {
        let level = node
            .range
            .clone()
            .find(|&i| self.lines[i].key.is_some())
            .map(|i| self.lines[i].content);
        let at = level.and_then(|level| {
            node.range
                .clone()
                .find(|&i| self.lines[i].content == level && self.lines[i].key == Some(key))
                .map(|at| (at, level))
        });
        match at {
            Some((at, level)) => {
                let end = (at + 1..node.range.end)
                    .find(|&i| {
                        let l = &self.lines[i];
                        let indent = l.dash.unwrap_or(l.content);
                        indent < level || (indent == level && l.dash.is_none())
                    })
                    .unwrap_or(node.range.end);
                Some(Node {
                    at,
                    col: level,
                    range: at + 1..end,
                })
            }
            // A flow mapping on the parent's own line: `c: {threshold: 1}`.
            None if node.at != usize::MAX => {
                let text = self.lines[node.at].text;
                let needle = format!("{key}:");
                let col = text.match_indices(&needle).map(|(c, _)| c).find(|&c| {
                    c > node.col
                        && text[..c]
                            .chars()
                            .next_back()
                            .is_some_and(|p| p == '{' || p == ',' || p == ' ')
                })?;
                Some(Node {
                    at: node.at,
                    col,
                    range: node.at..node.at,
                })
            }
            None => None,
        }
    }

    /// The `index`-th item of the list spanning `node`.
    fn item(&self, node: &Node, index: usize) -> Option<Node> {
        let Some(first) = node.range.clone().find(|&i| self.lines[i].dash.is_some()) else {
            return self.flow_item(node, index);
        };
        let level = self.lines[first].dash?;
        let starts: Vec<usize> = node
            .range
            .clone()
            .filter(|&i| self.lines[i].dash == Some(level))
            .collect();
        let at = *starts.get(index)?;
        let end = starts
            .get(index + 1)
            .copied()
            .unwrap_or(node.range.end)
            .min(
                (at + 1..node.range.end)
                    .find(|&i| {
                        let l = &self.lines[i];
                        l.dash.unwrap_or(l.content) < level
                    })
                    .unwrap_or(node.range.end),
            );
        Some(Node {
            at,
            col: self.lines[at].content,
            range: at..end,
        })
    }
}

impl Doc<'_> {
    /// The `index`-th item of a flow sequence on the node's own line:
    /// `key: [a, b]`.
    fn flow_item(&self, node: &Node, index: usize) -> Option<Node> {
        let text = *self.raw.get(self.lines.get(node.at)?.no - 1)?;
        let open = node.col + text.get(node.col..)?.find('[')?;
        let mut starts = vec![open + 1];
        let mut depth = 0usize;
        for (i, c) in text[open + 1..].char_indices() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' if depth == 0 => break,
                ']' | '}' => depth -= 1,
                ',' if depth == 0 => starts.push(open + 2 + i),
                _ => {}
            }
        }
        let start = *starts.get(index)?;
        let skipped = text[start..].len() - text[start..].trim_start().len();
        Some(Node {
            at: node.at,
            col: text[..start + skipped].chars().count(),
            range: node.at..node.at,
        })
    }
}

/// The key of a `key: value` or `key:` text, unquoted.
fn key_of(s: &str) -> Option<&str> {
    let (key, rest) = if let Some(q) = s.strip_prefix('"').or_else(|| s.strip_prefix('\'')) {
        let quote = &s[..1];
        let end = q.find(quote)?;
        (&q[..end], &q[end + 1..])
    } else {
        let end = s.find(':')?;
        let key = &s[..end];
        if key.contains(['{', '[', '#', ' ', '"', '\'']) {
            return None;
        }
        (key, &s[end..])
    };
    let after = rest.strip_prefix(':')?;
    (after.is_empty() || after.starts_with(' ')).then_some(key)
}

/// Parses `a.b[2].c` into segments.
pub(crate) fn parse_path(path: &str) -> Vec<Seg<'_>> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            segs.push(Seg::Key(&rest[..b]));
            rest = &rest[b..];
            while let Some(r) = rest.strip_prefix('[') {
                let Some(e) = r.find(']') else { break };
                if let Ok(i) = r[..e].parse() {
                    segs.push(Seg::Index(i));
                }
                rest = &r[e + 1..];
            }
        } else {
            segs.push(Seg::Key(rest));
        }
    }
    segs
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
groups:
  - name: storage
    interval: 1m
    rules:
      - alert: A
        expr: up
        condition:
          anomaly: {score_above: 2}
      - expr: down
        alert: B
        for: -5m
  - name: other
    rules:
    - alert: C
      for: 1m
";

    fn at(path: &str) -> (usize, usize) {
        let p = Doc::new(TEXT).locate(&parse_path(path));
        (p.line, p.column)
    }

    #[test]
    fn finds_keys_in_nested_lists() {
        assert_eq!(at("groups"), (2, 1));
        assert_eq!(at("groups[0]"), (3, 5));
        assert_eq!(at("groups[0].interval"), (4, 5));
        assert_eq!(at("groups[0].rules[0].expr"), (7, 9));
        assert_eq!(at("groups[0].rules[1]"), (10, 9));
        assert_eq!(at("groups[0].rules[1].for"), (12, 9));
        assert_eq!(at("groups[1].rules[0].for"), (16, 7));
        assert_eq!(at("groups[1].name"), (13, 5));
    }

    #[test]
    fn finds_keys_in_flow_mappings() {
        assert_eq!(
            at("groups[0].rules[0].condition.anomaly.score_above"),
            (9, 21)
        );
    }

    #[test]
    fn value_positions() {
        let text = "a:\n  expr: foo bar\n  q: 'x y'\n  b: |\n    sum(x)\n    oops\n";
        let doc = Doc::new(text);
        let key = doc.locate(&parse_path("a.expr"));
        assert_eq!(
            doc.value_pos(key, "foo bar", 4),
            Pos {
                line: 2,
                column: 13
            }
        );
        let key = doc.locate(&parse_path("a.q"));
        assert_eq!(doc.value_pos(key, "x y", 2), Pos { line: 3, column: 9 });
        let key = doc.locate(&parse_path("a.b"));
        assert_eq!(
            doc.value_pos(key, "sum(x)\noops\n", 7),
            Pos { line: 6, column: 5 }
        );
    }

    #[test]
    fn finds_items_of_flow_sequences() {
        let doc = Doc::new("files: [a.yml, 'b.yml', {c: 1}]\n");
        let at = |p: &str| {
            let p = doc.locate(&parse_path(p));
            (p.line, p.column)
        };
        assert_eq!(at("files[0]"), (1, 9));
        assert_eq!(at("files[1]"), (1, 16));
        assert_eq!(at("files[2]"), (1, 25));
        assert_eq!(at("files[3]"), (1, 1));
    }

    #[test]
    fn falls_back_to_the_deepest_part_found() {
        assert_eq!(at("groups[0].rules[0].missing"), (6, 9));
        assert_eq!(at("groups[5]"), (2, 1));
    }
}
