//! Whether a state directory can hold the engine's database, for
//! `prognos check`: it is a directory (or can be created) and a file can be
//! created in it. The probe leaves nothing behind: its file is removed, and
//! so are the directories it had to create.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Probes `dir` by creating and removing a file in it, creating `dir` (and
/// its missing parents) for the time of the probe when it does not exist.
/// The error says why it cannot hold a database, naming the path.
pub(crate) fn probe(dir: &Path) -> Result<(), String> {
    // A concurrent probe of the same new directory may remove it under
    // this one: try again once.
    match probe_once(dir) {
        Err(Failure::Vanished) => probe_once(dir),
        other => other,
    }
    .map_err(|f| match f {
        Failure::Vanished => format!("{} vanished while it was probed", dir.display()),
        Failure::Other(m) => m,
    })
}

enum Failure {
    /// The directory disappeared between its creation and the probe.
    Vanished,
    Other(String),
}

fn probe_once(dir: &Path) -> Result<(), Failure> {
    let other = |m: String| Failure::Other(m);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => probe_file(dir),
        Ok(_) => Err(other(format!("{} is not a directory", dir.display()))),
        // Not there, or below a file: creating it says which.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            let created = create(dir).map_err(other)?;
            let probed = probe_file(dir);
            let removed = remove_created(&created);
            probed?;
            removed.map_err(other)
        }
        Err(e) => Err(other(format!("cannot inspect {}: {e}", dir.display()))),
    }
}

/// Creates `dir` and its missing parents; returns those created, the
/// outermost first. On failure removes them again.
fn create(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| std::fs::symlink_metadata(a).is_err())
        .collect();
    let mut created = Vec::new();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => created.push(d.to_path_buf()),
            // Created meanwhile by someone else: theirs to keep.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                let _ = remove_created(&created);
                return Err(format!(
                    "{} does not exist and cannot be created: {e}",
                    dir.display()
                ));
            }
        }
    }
    Ok(created)
}

/// Removes the directories `created` (outermost first), innermost first.
/// One that is no longer empty holds someone else's files: it is left.
fn remove_created(created: &[PathBuf]) -> Result<(), String> {
    for d in created.iter().rev() {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => {
                return Ok(());
            }
            Err(e) => {
                return Err(format!(
                    "could not remove {}, created for the probe: {e}",
                    d.display()
                ));
            }
        }
    }
    Ok(())
}

/// Creates a new file in `dir` and removes it.
fn probe_file(dir: &Path) -> Result<(), Failure> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".prognos-check-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    let file = dir.join(name);
    match OpenOptions::new().write(true).create_new(true).open(&file) {
        Ok(f) => drop(f),
        Err(e) if e.kind() == ErrorKind::NotFound && !dir.exists() => {
            return Err(Failure::Vanished);
        }
        Err(e) => {
            return Err(Failure::Other(format!(
                "cannot create a file in {}: {e}",
                dir.display()
            )));
        }
    }
    std::fs::remove_file(&file).map_err(|e| {
        Failure::Other(format!(
            "could not remove the probe file {}: {e}",
            file.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The entries of `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_existing_directory_passes_and_keeps_only_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("state.redb"), "x").unwrap();
        probe(tmp.path()).unwrap();
        assert_eq!(entries(tmp.path()), ["state.redb"]);
    }

    #[test]
    fn a_missing_directory_is_created_for_the_probe_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        probe(&tmp.path().join("a/b/state")).unwrap();
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("state");
        std::fs::write(&file, "").unwrap();
        let e = probe(&file).unwrap_err();
        assert_eq!(e, format!("{} is not a directory", file.display()));
        // Below a file, a directory cannot be created.
        let e = probe(&file.join("sub")).unwrap_err();
        assert!(e.contains("does not exist and cannot be created"), "{e}");
        assert_eq!(entries(tmp.path()), ["state"]);
    }

    #[test]
    fn a_read_only_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ro");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        // root writes anyway; /proc refuses new files even to root.
        let dir = if std::fs::write(dir.join("w"), "").is_ok() {
            PathBuf::from("/proc")
        } else {
            dir
        };
        let e = probe(&dir).unwrap_err();
        assert!(
            e.starts_with(&format!("cannot create a file in {}: ", dir.display())),
            "{e}"
        );
        let e = probe(&dir.join("new")).unwrap_err();
        assert!(e.contains("does not exist and cannot be created"), "{e}");
    }
}
