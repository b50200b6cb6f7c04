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
