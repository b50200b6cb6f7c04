//! Errors found while loading configuration and rule files: each names the
//! file, line, column, group, rule and field, Prometheus `rulefmt` style.

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration or rule file.
///
/// Displays as
/// `rules/shop.yml:12:5: group "storage", rule "shop_db_full": field 'for': must be ≥ 0s, got "-5m"`.
/// Parts that do not apply (no line for an unreadable file, no rule for a
/// global setting) are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in, as the user named it (or as the glob
    /// found it, joined to the config file's directory).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no place in the file.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// Where in the file, for a reader: `group "storage", rule "ShopDbFullSoon"`.
    pub context: String,
    /// The field, as a path below the context: `condition.forecast.within`.
    pub field: String,
    /// What is wrong, showing the bad value and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        f.write_str(": ")?;
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        if !self.field.is_empty() {
            write!(f, "field '{}': ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, in file order. Never empty when
/// returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_rulefmt() {
        let e = ConfigError {
            file: "rules/shop.yml".into(),
            line: 12,
            column: 5,
            context: r#"group "storage", rule "shop_db_full""#.into(),
            field: "for".into(),
            message: r#"must be ≥ 0s, got "-5m""#.into(),
        };
        assert_eq!(
            e.to_string(),
            r#"rules/shop.yml:12:5: group "storage", rule "shop_db_full": field 'for': must be ≥ 0s, got "-5m""#
        );
    }

    #[test]
    fn leaves_out_missing_parts() {
        let e = ConfigError {
            file: "prognos.yml".into(),
            line: 0,
            column: 0,
            context: String::new(),
            field: String::new(),
            message: "cannot read: gone".into(),
        };
        assert_eq!(e.to_string(), "prognos.yml: cannot read: gone");
        let all = ConfigErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
