//! A corpus in the Numenta Anomaly Benchmark's layout: `DIR/<category>/<file>.csv`
//! and a labels file `{"<category>/<file>.csv": [[start, end], ...]}`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::table::{self, Table};
use crate::timestamp;

/// One labelled file.
#[derive(Debug)]
pub struct LabelledFile {
    /// Key in the labels file, such as `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Its rows.
    pub table: Table,
    /// Anomaly windows as inclusive Unix-second ranges.
    pub windows: Vec<(i64, i64)>,
}

/// Which half of a NAB corpus to use. Files are split deterministically, per category: within
/// a category, files are ordered by an FNV-1a hash of their name and alternate between the
/// halves (the first, third, … go to `tune`), so each half holds about half of every category
/// and a file's half never depends on which other files are present in other categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NabSplit {
    /// The half the detector's settings may be tuned on.
    Tune,
    /// The held-out half: figures are reported on it and nothing is tuned on it.
    Report,
    /// Every file.
    All,
}

/// FNV-1a, 64 bits: a stable hash (unlike std's, which may change between releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `name` (`<category>/<file>.csv`) falls in `split`, given every name of the corpus.
pub fn in_split(name: &str, names: &[&str], split: NabSplit) -> bool {
    if split == NabSplit::All {
        return true;
    }
    let category = |n: &str| n.rsplit_once('/').map_or("", |(c, _)| c).to_owned();
    let mine = category(name);
    let mut peers: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| category(n) == mine)
        .collect();
    peers.sort_by_key(|n| (fnv1a(n), *n));
    let rank = peers.iter().position(|n| *n == name).unwrap_or(0);
    (rank % 2 == 0) == (split == NabSplit::Tune)
}

/// Keeps the files of `split` (see [`NabSplit`]).
pub fn select(files: Vec<LabelledFile>, split: NabSplit) -> Vec<LabelledFile> {
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    files
        .into_iter()
        .filter(|f| in_split(&f.name, &refs, split))
        .collect()
}

/// Reads the labels file and every file it names under `data`. Files under
/// `data` that the labels do not name are listed in the second value.
pub fn load(data: &Path, labels: &Path) -> Result<(Vec<LabelledFile>, Vec<PathBuf>)> {
    let text =
        std::fs::read_to_string(labels).with_context(|| format!("reading {}", labels.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", labels.display()))?;
    let Some(map) = json.as_object() else {
        bail!(
            "{}: expected an object of \"<category>/<file>.csv\": [[start, end], ...]",
            labels.display()
        );
    };
    let mut files = Vec::new();
    for (name, windows) in map {
        let windows = parse_windows(windows)
            .with_context(|| format!("{}: entry \"{name}\"", labels.display()))?;
        let path = data.join(name);
        let table = table::read(&path)?;
        files.push(LabelledFile {
            name: name.clone(),
            table,
            windows,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut unlabelled = Vec::new();
    collect_csv(data, &mut unlabelled)?;
    unlabelled.retain(|p| {
        let rel = p
            .strip_prefix(data)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/");
        !map.contains_key(&rel)
    });
    Ok((files, unlabelled))
}

fn parse_windows(v: &serde_json::Value) -> Result<Vec<(i64, i64)>> {
    let Some(list) = v.as_array() else {
        bail!("expected a list of [start, end] pairs");
    };
    list.iter()
        .enumerate()
        .map(|(i, w)| {
            let pair = w.as_array().filter(|a| a.len() == 2);
            let Some(pair) = pair else {
                bail!("window {i}: expected [start, end]");
            };
            let ts = |j: usize| -> Result<i64> {
                let s = pair[j]
                    .as_str()
                    .with_context(|| format!("window {i}: expected timestamps as strings"))?;
                timestamp::parse(s).map(|t| t.0).map_err(anyhow::Error::msg)
            };
            Ok((ts(0)?, ts(1)?))
        })
        .collect()
}

/// Every `.csv` file under `dir`, sorted.
pub fn collect_csv(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_csv(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_halves_each_category_and_the_halves_are_disjoint() {
        let names = [
            "a/1.csv", "a/2.csv", "a/3.csv", "a/4.csv", "b/1.csv", "b/2.csv", "c/1.csv",
        ];
        let of = |split| -> Vec<&str> {
            names
                .iter()
                .copied()
                .filter(|n| in_split(n, &names, split))
                .collect()
        };
        let (tune, report) = (of(NabSplit::Tune), of(NabSplit::Report));
        assert_eq!(tune.len() + report.len(), names.len());
        assert!(tune.iter().all(|n| !report.contains(n)));
        for (cat, total) in [("a/", 4), ("b/", 2)] {
            let t = tune.iter().filter(|n| n.starts_with(cat)).count();
            assert_eq!(t, total / 2, "{cat}: {tune:?}");
        }
        assert_eq!(of(NabSplit::All).len(), names.len());
    }
}
