//! Scoring by the Numenta Anomaly Benchmark's published rules.
//!
//! A detector's scores for each file are turned into detections with one threshold for the whole
//! corpus; detections inside a labelled window earn a reward that decays from the window's start
//! to its end, windows without a detection cost a miss, detections outside every window cost a
//! false positive weighted by their distance to the previous window. [`score_corpus`] picks, per
//! profile, the threshold that maximises the corpus total, exactly as NAB's sweeper does, by
//! sweeping every distinct score once.

/// Weights of one NAB application profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NabProfile {
    /// Profile name as NAB spells it.
    pub name: &'static str,
    /// Reward for a detected window (at its very start).
    pub a_tp: f64,
    /// Cost of a false positive far from any window.
    pub a_fp: f64,
    /// Cost of a missed window.
    pub a_fn: f64,
}

/// NAB's three application profiles: standard, reward_low_FP_rate, reward_low_FN_rate.
pub const PROFILES: [NabProfile; 3] = [
    NabProfile {
        name: "standard",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 1.0,
    },
    NabProfile {
        name: "reward_low_FP_rate",
        a_tp: 1.0,
        a_fp: 0.22,
        a_fn: 1.0,
    },
    NabProfile {
        name: "reward_low_FN_rate",
        a_tp: 1.0,
        a_fp: 0.11,
        a_fn: 2.0,
    },
];

/// NAB's probation: this fraction of a file's rows, at most [`PROBATION_MAX_ROWS`], is ignored.
pub const PROBATION_FRACTION: f64 = 0.15;
/// Upper bound of the probation period in rows.
pub const PROBATION_MAX_ROWS: usize = 750;

/// One scored file: the detector's score for every row and the file's labelled windows.
#[derive(Debug, Clone, Default)]
pub struct NabFile {
    /// Name used in reports (e.g. `realTweets/Twitter_volume_AAPL.csv`).
    pub name: String,
    /// Row timestamps in unix seconds, in file row order.
    pub timestamps: Vec<i64>,
    /// Anomaly score of every row, in [0, 1].
    pub scores: Vec<f64>,
    /// Labelled anomaly windows in unix seconds, both ends inclusive.
    pub windows: Vec<(i64, i64)>,
}

/// The corpus score of one profile at its best threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileResult {
    /// Profile name.
    pub profile: &'static str,
    /// The threshold that maximises this profile's corpus total (detection = score ≥ threshold).
    pub threshold: f64,
    /// Raw corpus total S.
    pub raw_score: f64,
    /// 100·(S − S_null)/(S_perfect − S_null).
    pub normalized: f64,
    /// Windows with at least one detection.
    pub tp: usize,
    /// Detections outside every window (after probation).
    pub fp: usize,
    /// Windows without a detection.
    pub fn_: usize,
}

/// NAB's scaled sigmoid: `2/(1+e^{5y}) − 1`, and −1 for positions more than 3 windows past.
fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Number of leading rows NAB ignores for a file of `n` rows.
pub fn probation_rows(n: usize) -> usize {
    ((PROBATION_FRACTION * n as f64).floor() as usize).min(PROBATION_MAX_ROWS)
}

/// What one row would be worth if it were a detection, in profile-independent parts.
#[derive(Debug, Clone, Copy)]
enum RowKind {
    /// Inside probation: ignored.
    Probation,
    /// Inside window `window` (index within the file); `sigma` is σ(y)/σ(−1) ∈ (0, 1].
    InWindow { window: usize, sigma: f64 },
    /// Outside every window; `sigma` ∈ [−1, 0] is the false positive's weight.
    Outside { sigma: f64 },
}

/// Row ranges `[l, r]` of each window: first row at or after its start, last row at or before its
/// end. Windows that hold no row are dropped.
fn window_rows(file: &NabFile) -> Vec<(usize, usize)> {
    let ts = &file.timestamps;
    let mut out = Vec::with_capacity(file.windows.len());
    for &(start, end) in &file.windows {
        let l = ts.partition_point(|&t| t < start);
        let r_excl = ts.partition_point(|&t| t <= end);
        if r_excl > l {
            out.push((l, r_excl - 1));
        }
    }
    out.sort_unstable();
    out
}

/// Classifies every row of a file (see [`RowKind`]); also returns the number of windows.
fn classify(file: &NabFile) -> (Vec<RowKind>, usize) {
    let n = file.timestamps.len().min(file.scores.len());
    let probation = probation_rows(n);
    let windows = window_rows(file);
    let max_tp = scaled_sigmoid(-1.0);
    let mut kinds = Vec::with_capacity(n);
    let mut next = 0; // next window not yet passed
    let mut prev: Option<(usize, usize)> = None;
    for i in 0..n {
        while next < windows.len() && windows[next].1 < i {
            prev = Some(windows[next]);
            next += 1;
        }
        let kind = if i < probation {
            RowKind::Probation
        } else if next < windows.len() && windows[next].0 <= i {
            let (l, r) = windows[next];
            let w = (r - l + 1) as f64;
            let y = -((r - i + 1) as f64) / w;
            RowKind::InWindow {
                window: next,
                sigma: scaled_sigmoid(y) / max_tp,
            }
        } else {
            let sigma = match prev {
                None => -1.0,
                Some((l, r)) => {
                    let w = (r - l + 1) as f64;
                    let pos = (i - r) as f64 / (w - 1.0).max(1.0);
                    scaled_sigmoid(pos)
                }
            };
            RowKind::Outside { sigma }
        };
        kinds.push(kind);
    }
    (kinds, windows.len())
}

/// Scores one file under one profile at one threshold: (raw score, tp, fp, fn).
pub fn score_file(
    file: &NabFile,
    profile: &NabProfile,
    threshold: f64,
) -> (f64, usize, usize, usize) {
    let (kinds, n_windows) = classify(file);
    let mut best = vec![-profile.a_fn; n_windows];
    let mut hit = vec![false; n_windows];
    let mut fp_sum = 0.0;
    let mut fp = 0;
    for (kind, &s) in kinds.iter().zip(&file.scores) {
        if s < threshold || s.is_nan() {
            continue;
        }
        match *kind {
            RowKind::Probation => {}
            RowKind::InWindow { window, sigma } => {
                hit[window] = true;
                best[window] = best[window].max(profile.a_tp * sigma);
            }
            RowKind::Outside { sigma } => {
                fp += 1;
                fp_sum += profile.a_fp * sigma;
            }
        }
    }
    let tp = hit.iter().filter(|&&h| h).count();
    let raw = fp_sum + best.iter().sum::<f64>();
    (raw, tp, fp, n_windows - tp)
}

/// One row of the corpus, ready for the threshold sweep.
#[derive(Debug, Clone, Copy)]
struct SweepRow {
    score: f64,
    /// Corpus-wide window index, or `usize::MAX` for a row outside every window.
    window: usize,
    sigma: f64,
}

/// Scores the corpus under every profile in [`PROFILES`], each at the threshold that maximises its
/// total (NAB optimises the threshold per profile over the whole corpus).
pub fn score_corpus(files: &[NabFile]) -> Vec<ProfileResult> {
    let mut rows = Vec::new();
    let mut n_windows = 0;
    for file in files {
        let (kinds, nw) = classify(file);
        for (kind, &s) in kinds.iter().zip(&file.scores) {
            let score = if s.is_nan() { 0.0 } else { s };
            match *kind {
                RowKind::Probation => {}
                RowKind::InWindow { window, sigma } => rows.push(SweepRow {
                    score,
                    window: n_windows + window,
                    sigma,
                }),
                RowKind::Outside { sigma } => rows.push(SweepRow {
                    score,
                    window: usize::MAX,
                    sigma,
                }),
            }
        }
        n_windows += nw;
    }
    rows.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    PROFILES
        .iter()
        .map(|p| sweep(&rows, n_windows, p))
        .collect()
}

/// Sweeps thresholds from above the highest score down through every distinct score, keeping
/// the running total incrementally; returns the best.
fn sweep(rows: &[SweepRow], n_windows: usize, profile: &NabProfile) -> ProfileResult {
    let mut best_window = vec![-profile.a_fn; n_windows];
    let mut window_sum = -profile.a_fn * n_windows as f64;
    let mut fp_sum = 0.0;
    let (mut tp, mut fp) = (0usize, 0usize);
    // No detection at all: the null detector.
    let mut best = (window_sum, f64::INFINITY, 0usize, 0usize);
    let mut i = 0;
    while i < rows.len() {
        let threshold = rows[i].score;
        while i < rows.len() && rows[i].score == threshold {
            let row = rows[i];
            if row.window == usize::MAX {
                fp += 1;
                fp_sum += profile.a_fp * row.sigma;
            } else {
                let value = profile.a_tp * row.sigma;
                let b = &mut best_window[row.window];
                if *b == -profile.a_fn {
                    tp += 1;
                }
                if value > *b {
                    window_sum += value - *b;
                    *b = value;
                }
            }
            i += 1;
        }
        let total = window_sum + fp_sum;
        if total > best.0 {
            best = (total, threshold, tp, fp);
        }
    }
    let (raw, threshold, tp, fp) = best;
    let s_null = -profile.a_fn * n_windows as f64;
    let s_perfect = profile.a_tp * n_windows as f64;
    let normalized = if s_perfect > s_null {
        100.0 * (raw - s_null) / (s_perfect - s_null)
    } else {
        0.0
    };
    ProfileResult {
        profile: profile.name,
        threshold,
        raw_score: raw,
        normalized,
        tp,
        fp,
        fn_: n_windows - tp,
    }
}

/// Most thresholds [`score_corpus_alerting`] tries; with more distinct scores it tries evenly
/// spaced quantiles of them, so a corpus of any size costs at most this many passes over its
/// candidate detections.
pub const MAX_THRESHOLDS: usize = 2000;

/// Rows at which an alert on `scores` starts firing: an alert fires when the score reaches
/// `threshold` and, once firing, keeps firing until `keep_firing_for` rows have passed without
/// the score reaching it again. A firing transition at row i is `scores[i] ≥ threshold` with
/// every score of the `keep_firing_for + 1` rows before it below the threshold (the row just
/// before, because an alert that holds stays firing; then the rows it keeps firing for).
pub fn firing_transitions(scores: &[f64], keep_firing_for: usize, threshold: f64) -> Vec<bool> {
    let mut out = Vec::with_capacity(scores.len());
    let mut last_held: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        let holds = s >= threshold;
        let firing = last_held.is_some_and(|l| i - l <= keep_firing_for + 1);
        out.push(holds && !firing);
        if holds {
            last_held = Some(i);
        }
    }
    out
}

/// The highest of the `keep` scores before each row (−∞ when there are none).
fn previous_max(scores: &[f64], keep: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(scores.len());
    // Monotone deque of indices with decreasing scores over the last `keep` rows.
    let mut deque = std::collections::VecDeque::new();
    for (i, &s) in scores.iter().enumerate() {
        while deque.front().is_some_and(|&j| j + keep < i) {
            deque.pop_front();
        }
        out.push(deque.front().map_or(f64::NEG_INFINITY, |&j| scores[j]));
        while deque.back().is_some_and(|&j| scores[j] <= s) {
            deque.pop_back();
        }
        deque.push_back(i);
    }
    out
}

/// Scores the corpus by NAB's rules with the detections an alert would notify: the firing
/// transitions (see [`firing_transitions`]) of an alert on the scores that keeps firing for
/// `keep_firing_for` rows. As NAB does, each profile gets the threshold that maximises its
/// corpus total, tried over the distinct scores of the possible transitions.
pub fn score_corpus_alerting(files: &[NabFile], keep_firing_for: usize) -> Vec<ProfileResult> {
    // A row can be a transition at threshold T only if prev_max < T ≤ score.
    struct Candidate {
        score: f64,
        prev_max: f64,
        window: usize,
        sigma: f64,
    }
    let mut candidates = Vec::new();
    let mut n_windows = 0;
    for file in files {
        let (kinds, nw) = classify(file);
        let scores: Vec<f64> = file
            .scores
            .iter()
            .map(|&s| if s.is_nan() { 0.0 } else { s })
            .collect();
        let prev = previous_max(&scores, keep_firing_for + 1);
        for ((kind, &score), &prev_max) in kinds.iter().zip(&scores).zip(&prev) {
            if score <= prev_max || score <= 0.0 {
                continue;
            }
            let (window, sigma) = match *kind {
                RowKind::Probation => continue,
                RowKind::InWindow { window, sigma } => (n_windows + window, sigma),
                RowKind::Outside { sigma } => (usize::MAX, sigma),
            };
            candidates.push(Candidate {
                score,
                prev_max,
                window,
                sigma,
            });
        }
        n_windows += nw;
    }
    let mut thresholds: Vec<f64> = candidates.iter().map(|c| c.score).collect();
    thresholds.sort_unstable_by(f64::total_cmp);
    thresholds.dedup();
    if thresholds.len() > MAX_THRESHOLDS {
        let n = thresholds.len();
        thresholds = (0..MAX_THRESHOLDS)
            .map(|k| thresholds[k * (n - 1) / (MAX_THRESHOLDS - 1)])
            .collect();
    }
    PROFILES
        .iter()
        .map(|p| {
            let s_null = -p.a_fn * n_windows as f64;
            let mut best = (s_null, f64::INFINITY, 0, 0);
            let mut best_window = vec![-p.a_fn; n_windows];
            for &t in &thresholds {
                best_window.fill(-p.a_fn);
                let (mut fp, mut fp_sum) = (0, 0.0);
                for c in candidates.iter().filter(|c| c.prev_max < t && t <= c.score) {
                    if c.window == usize::MAX {
                        fp += 1;
                        fp_sum += p.a_fp * c.sigma;
                    } else {
                        let b = &mut best_window[c.window];
                        *b = b.max(p.a_tp * c.sigma);
                    }
                }
                let total = fp_sum + best_window.iter().sum::<f64>();
                if total > best.0 {
                    let tp = best_window.iter().filter(|&&b| b != -p.a_fn).count();
                    best = (total, t, tp, fp);
                }
            }
            let (raw, threshold, tp, fp) = best;
            let s_perfect = p.a_tp * n_windows as f64;
            let normalized = if s_perfect > s_null {
                100.0 * (raw - s_null) / (s_perfect - s_null)
            } else {
                0.0
            };
            ProfileResult {
                profile: p.name,
                threshold,
                raw_score: raw,
                normalized,
                tp,
                fp,
                fn_: n_windows - tp,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000 rows 60 s apart (probation 150 rows) with windows at rows 400..=449 and 700..=749.
    fn file_with(scores: impl Fn(usize) -> f64) -> NabFile {
        let timestamps: Vec<i64> = (0..1000).map(|i| i * 60).collect();
        NabFile {
            name: "test".into(),
            scores: (0..1000).map(scores).collect(),
            windows: vec![(400 * 60, 449 * 60), (700 * 60, 749 * 60)],
            timestamps,
        }
    }

    fn standard() -> &'static NabProfile {
        &PROFILES[0]
    }

    #[test]
    fn perfect_detector_scores_100() {
        let f = file_with(|i| if i == 400 || i == 700 { 1.0 } else { 0.0 });
        for r in score_corpus(&[f]) {
            assert!((r.normalized - 100.0).abs() < 1e-9, "{r:?}");
            assert_eq!((r.tp, r.fp, r.fn_), (2, 0, 0));
        }
    }

    #[test]
    fn null_detector_scores_0() {
        let f = file_with(|_| 0.0);
        for r in score_corpus(&[f]) {
            assert!(r.normalized.abs() < 1e-9, "{r:?}");
        }
        let f = file_with(|_| 0.3);
        let r = &score_corpus(&[f])[0];
        assert!(r.normalized.abs() < 1e-9, "{r:?}");
        assert_eq!(r.tp, 0);
    }

    #[test]
    fn detection_at_window_start_is_worth_a_tp() {
        let f = file_with(|i| if i == 400 { 1.0 } else { 0.0 });
        let (raw, tp, fp, fn_) = score_file(&f, standard(), 0.5);
        assert_eq!((tp, fp, fn_), (1, 0, 1));
        assert!(
            (raw - 0.0).abs() < 1e-9,
            "one hit (+1) and one miss (−1): {raw}"
        );
        // At the window's end a detection is worth little.
        let f = file_with(|i| if i == 449 { 1.0 } else { 0.0 });
        let (raw, ..) = score_file(&f, standard(), 0.5);
        assert!(raw + 1.0 < 0.15 && raw + 1.0 > 0.0, "{raw}");
    }

    #[test]
    fn far_false_positive_costs_a_fp() {
        // Before the first window: full cost.
        let f = file_with(|i| if i == 300 { 1.0 } else { 0.0 });
        let (raw, _, fp, _) = score_file(&f, standard(), 0.5);
        assert_eq!(fp, 1);
        assert!((raw - (-2.0 - 0.11)).abs() < 1e-9, "{raw}");
        // Far after a window: almost the full cost; just after it: almost nothing.
        let f = file_with(|i| if i == 690 { 1.0 } else { 0.0 });
        let (raw, ..) = score_file(&f, standard(), 0.5);
        assert!((raw - (-2.0 - 0.11)).abs() < 1e-3, "{raw}");
        let f = file_with(|i| if i == 450 { 1.0 } else { 0.0 });
        let (raw, ..) = score_file(&f, standard(), 0.5);
        assert!((raw + 2.0).abs() < 0.01, "{raw}");
    }

    #[test]
    fn probation_rows_are_ignored() {
        assert_eq!(probation_rows(1000), 150);
        assert_eq!(probation_rows(100_000), 750);
        let f = file_with(|i| if i < 150 { 1.0 } else { 0.0 });
        let (raw, _, fp, _) = score_file(&f, standard(), 0.5);
        assert_eq!(fp, 0);
        assert!((raw + 2.0).abs() < 1e-9);
    }

    #[test]
    fn sweep_matches_score_file_at_its_threshold() {
        let f = file_with(|i| ((i * 7919) % 1000) as f64 / 1000.0);
        for (p, r) in PROFILES.iter().zip(score_corpus(std::slice::from_ref(&f))) {
            let (raw, tp, fp, fn_) = score_file(&f, p, r.threshold);
            assert!((raw - r.raw_score).abs() < 1e-9);
            assert_eq!((tp, fp, fn_), (r.tp, r.fp, r.fn_));
        }
    }

    #[test]
    fn an_alert_notifies_once_while_the_score_stays_up_and_again_after_keep_firing_for() {
        let scores = [0.0, 0.9, 0.95, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1];
        let fired = |keep| -> Vec<usize> {
            firing_transitions(&scores, keep, 0.5)
                .iter()
                .enumerate()
                .filter(|&(_, &f)| f)
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(fired(0), vec![1, 7]);
        assert_eq!(fired(2), vec![1, 7]);
        assert_eq!(fired(3), vec![1]);
    }

    #[test]
    fn alerting_sweep_matches_scoring_the_transitions_at_its_threshold() {
        // A score that stays up through each window and blips outside them.
        let f = file_with(|i| match i {
            400..=430 | 700..=720 => 0.9,
            300 | 310 | 600 => 0.6,
            _ => ((i * 7919) % 100) as f64 / 1000.0,
        });
        for keep in [0, 5, 50] {
            for (p, r) in PROFILES
                .iter()
                .zip(score_corpus_alerting(std::slice::from_ref(&f), keep))
            {
                let transitions = firing_transitions(&f.scores, keep, r.threshold);
                let g = NabFile {
                    scores: transitions
                        .iter()
                        .map(|&t| f64::from(u8::from(t)))
                        .collect(),
                    ..f.clone()
                };
                let (raw, tp, fp, fn_) = score_file(&g, p, 0.5);
                assert!(
                    (raw - r.raw_score).abs() < 1e-9,
                    "keep {keep}: {r:?} vs {raw}"
                );
                assert_eq!((tp, fp, fn_), (r.tp, r.fp, r.fn_));
            }
        }
        // Held through both windows, the score is worth two early detections and no FP.
        let r = &score_corpus_alerting(std::slice::from_ref(&f), 50)[0];
        assert_eq!((r.tp, r.fn_), (2, 0));
    }

    proptest::proptest! {
        /// The chosen threshold can always be "never fire", so a normalised score is never
        /// below the null detector's 0 and never above the perfect detector's 100.
        #[test]
        fn normalised_scores_lie_between_null_and_perfect(
            seed in proptest::prelude::any::<u64>(),
            density in 0.0f64..1.0,
        ) {
            let f = file_with(|i| {
                let h = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
                let u = h as f64 / (1u64 << 53) as f64;
                if u < density { u } else { 0.0 }
            });
            for r in score_corpus(std::slice::from_ref(&f)) {
                proptest::prop_assert!((0.0..=100.0).contains(&r.normalized), "{r:?}");
            }
        }
    }
}
