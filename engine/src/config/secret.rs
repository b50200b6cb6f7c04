//! Secrets (tokens, passwords): read from a file or an environment
//! variable at load, held in a type that never prints them.

use std::path::Path;

pub use prognos_notifiers::secret::Secret;

/// Reads a secret file, trimming surrounding whitespace. The error names
/// the file, never its content.
pub(crate) fn from_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read secret file {:?}: {e}",
            path.display().to_string()
        )
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(format!(
            "secret file {:?} is empty",
            path.display().to_string()
        ));
    }
    Ok(Secret::new(value))
}

/// Reads a secret from the environment variable `name`.
pub(crate) fn from_env(name: &str) -> Result<Secret, String> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Err(format!("environment variable {name} is empty")),
        Ok(v) => Ok(Secret::new(v.trim())),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable {name} is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable {name} is not valid UTF-8"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_trims_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(from_file(&p).unwrap().expose(), "abc");
        std::fs::write(&p, " \n").unwrap();
        assert!(from_file(&p).unwrap_err().contains("is empty"));
        let e = from_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.contains("cannot read secret file"), "{e}");
    }

    #[test]
    fn missing_env_var_is_named() {
        let e = from_env("PROGNOS_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert_eq!(
            e,
            "environment variable PROGNOS_TEST_SURELY_UNSET_VARIABLE is not set"
        );
    }
}
