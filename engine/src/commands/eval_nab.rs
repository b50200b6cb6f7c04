//! `prognos eval nab`: the detector over a NAB-layout corpus, scored by NAB's
//! published rules with the threshold NAB would choose for each profile.
//!
//! The detector runs with its one configuration, [`DetectorConfig::default`], as
//! the live engine and `prognos detect` run it. NAB counts one detection per
//! labelled window and charges every further detection outside windows, while
//! the deployed score stays up as long as an anomaly lasts. So what is scored is
//! what a user receives: the firing transitions (notifications) of an alert on
//! the score with NAB's threshold, which once fired keeps firing for
//! `--keep-firing-for` rows after the score falls back.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use prognos_models::detector::{Detector, DetectorConfig};
use prognos_models::nab::{self, NabFile, ProfileResult};

use crate::cli::EvalNabArgs;
use crate::{nab_corpus, progress, table};

pub use crate::cli::NAB_KEEP_FIRING_ROWS;

/// The outcome of a NAB run.
#[derive(Debug)]
pub struct NabRun {
    /// Scored files.
    pub files: Vec<NabFile>,
    /// One result per profile.
    pub results: Vec<ProfileResult>,
    /// Rows scored.
    pub rows: usize,
    /// Rows the scored alert keeps firing (see the module docs).
    pub keep_firing_for: usize,
}

/// Runs the detector over every labelled file and scores the corpus.
pub fn eval_nab(args: &EvalNabArgs) -> Result<NabRun> {
    let (corpus, unlabelled) = nab_corpus::load(&args.data, &args.labels)?;
    let corpus = nab_corpus::select(corpus, args.split);
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
    let results = nab::score_corpus_alerting(&files, args.keep_firing_for);
    Ok(NabRun {
        files,
        results,
        rows,
        keep_firing_for: args.keep_firing_for,
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
            "NAB: {} files, {} rows, {} anomaly windows; detections = firing transitions of an alert that keeps firing for {} rows\n\n{:<20} {:>9} {:>10} {:>5} {:>5} {:>5}\n",
            self.files.len(),
            self.rows,
            windows,
            self.keep_firing_for,
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
                let fired =
                    nab::firing_transitions(&f.scores, self.keep_firing_for, standard.threshold);
                let notified = NabFile {
                    scores: fired.iter().map(|&t| f64::from(u8::from(t))).collect(),
                    ..f.clone()
                };
                let (raw, tp, fp, fn_) = nab::score_file(&notified, &nab::PROFILES[0], 0.5);
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
