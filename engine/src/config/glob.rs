//! `rule_files` globs: `*`, `?` and `[abc]`/`[a-z]`/`[!a]` within one path
//! component, as a shell expands them (a leading `.` must be matched
//! explicitly). No `**`.

use std::path::{Component, Path, PathBuf};

/// The files `pattern` matches, relative to `base` unless absolute, sorted.
/// An unreadable directory matches nothing.
pub(crate) fn expand(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let pattern_path = Path::new(pattern);
    let mut current = vec![if pattern_path.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    }];
    for component in pattern_path.components() {
        let part = match component {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for c in &mut current {
                    c.push(other.as_os_str());
                }
                continue;
            }
        };
        if !part.contains(['*', '?', '[']) {
            for c in &mut current {
                c.push(&part);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &current {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| matches(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    current.retain(|p| p.is_file());
    current
}

/// Whether `name` matches the one-component glob `pattern`.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|skip| match_from(&p[1..], &n[skip..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => match (class(&p[1..]), n.first()) {
            (Some((hit, len)), Some(&c)) => hit(c) && match_from(&p[1 + len..], &n[1..]),
            (None, Some(&c)) => c == '[' && match_from(&p[1..], &n[1..]),
            _ => false,
        },
        Some(&c) => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
    }
}

type ClassFn = Box<dyn Fn(char) -> bool>;

/// A `[...]` class after its `[`: the test and how many chars it took
/// (including the closing `]`). `None` when unclosed.
fn class(p: &[char]) -> Option<(ClassFn, usize)> {
    let negated = matches!(p.first(), Some('!' | '^'));
    let start = usize::from(negated);
    // A `]` right after the opening (or `!`) is a literal.
    let close = (start + 1..p.len()).find(|&i| p[i] == ']')?;
    let body: Vec<char> = p[start..close].to_vec();
    let test = move |c: char| {
        let mut hit = false;
        let mut i = 0;
        while i < body.len() {
            if i + 2 < body.len() && body[i + 1] == '-' {
                hit |= body[i] <= c && c <= body[i + 2];
                i += 3;
            } else {
                hit |= body[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(test), close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_a_shell() {
        assert!(matches("*.yml", "shop.yml"));
        assert!(!matches("*.yml", "shop.yaml"));
        assert!(!matches("*.yml", ".hidden.yml"));
        assert!(matches("s?op.yml", "shop.yml"));
        assert!(matches("[a-s]hop.yml", "shop.yml"));
        assert!(!matches("[!s]hop.yml", "shop.yml"));
        assert!(matches("*", "x"));
    }

    #[test]
    fn expands_relative_to_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        for f in ["b.yml", "a.yml", "c.txt"] {
            std::fs::write(dir.path().join("rules").join(f), "").unwrap();
        }
        let got = expand(dir.path(), "rules/*.yml");
        let names: Vec<_> = got.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["a.yml", "b.yml"]);
        assert_eq!(expand(dir.path(), "rules/c.txt").len(), 1);
        assert!(expand(dir.path(), "nothing/*.yml").is_empty());
        assert!(expand(dir.path(), "rules/missing.yml").is_empty());
    }
}
