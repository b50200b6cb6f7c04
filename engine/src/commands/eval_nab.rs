//! `prognos eval nab`: the detector over a NAB-layout corpus, scored by NAB's
//! published rules with the threshold NAB would choose for each profile.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use prognos_models::detector::{Detector, DetectorConfig};
use prognos_models::nab::{self, NabFile, ProfileResult};

use crate::cli::EvalNabArgs;
use crate::{nab_corpus, progress, table};

/// The outcome of a NAB run.
#[derive(Debug)]
pub struct NabRun {
    /// Scored files.
    pub files: Vec<NabFile>,
    /// One result per profile.
    pub results: Vec<ProfileResult>,
    /// Rows scored.
    pub rows: usize,
}

/// Runs the detector over every labelled file and scores the corpus.
pub fn eval_nab(args: &EvalNabArgs) -> Result<NabRun> {
    let (corpus, unlabelled) = nab_corpus::load(&args.data, &args.labels)?;
    for p in &unlabelled {
        tracing::warn!(file = %p.display(), "No labels for this file; skipped.");
    }
    let bar = progress::bar(corpus.len() as u64, "scoring");
    let mut files = Vec::with_capacity(corpus.len());
    let mut rows = 0;
    for f in corpus {
        bar.set_message(f.name.clone());
        let mut detector = Detector::new(DetectorConfig::default());
        let scores: Vec<f64> = f
            .table
            .rows
            .iter()
            .map(|r| detector.update(r.timestamp, r.value))
            .collect();
        if let Some(dir) = &args.scores_dir {
            write_scores(dir, &f, &scores)?;
        }
        rows += scores.len();
        files.push(NabFile {
            name: f.name,
            timestamps: f.table.rows.iter().map(|r| r.timestamp).collect(),
            scores,
            windows: f.windows,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let results = nab::score_corpus(&files);
    Ok(NabRun {
        files,
        results,
        rows,
    })
}

fn write_scores(dir: &std::path::Path, f: &nab_corpus::LabelledFile, scores: &[f64]) -> Result<()> {
    let path = dir.join(&f.name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut out = table::writer(&path)?;
    let werr = |e| table::write_error(&path, e);
    out.write_record(["timestamp", "value", "anomaly_score"])
        .map_err(werr)?;
    for (r, s) in f.table.rows.iter().zip(scores) {
        out.write_record([
            r.raw_timestamp.as_str(),
            r.raw_value.as_str(),
            &format!("{s:.6}"),
        ])
        .map_err(werr)?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl NabRun {
    /// The report printed by `prognos eval nab`.
    pub fn report(&self, verbose: bool) -> String {
        let windows: usize = self.files.iter().map(|f| f.windows.len()).sum();
        let mut s = format!(
            "NAB: {} files, {} rows, {} anomaly windows\n\n{:<20} {:>9} {:>10} {:>5} {:>5} {:>5}\n",
            self.files.len(),
            self.rows,
            windows,
            "profile",
            "score",
            "threshold",
            "TP",
            "FP",
            "FN"
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "{:<20} {:>9.1} {:>10.4} {:>5} {:>5} {:>5}",
                r.profile, r.normalized, r.threshold, r.tp, r.fp, r.fn_
            );
        }
        if verbose && let Some(standard) = self.results.first() {
            let _ = writeln!(
                s,
                "\nper file (standard profile, threshold {:.4}):",
                standard.threshold
            );
            for f in &self.files {
                let (raw, tp, fp, fn_) = nab::score_file(f, &nab::PROFILES[0], standard.threshold);
                let _ = writeln!(
                    s,
                    "{:<60} {:>7.2} TP {tp:>2} FP {fp:>3} FN {fn_:>2}",
                    f.name, raw
                );
            }
        }
        s
    }
}
