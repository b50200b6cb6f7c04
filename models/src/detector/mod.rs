//! The streaming anomaly detector: one [`Detector`] per series, fed point by point, scoring each
//! point in [0, 1] from the points before it only.
//!
//! Per point it
//! 1. forecasts the value with a few competing models — the last value, a level, a level plus a
//!    time-of-day profile, a level plus a time-of-week profile (phases come from the timestamp,
//!    so gaps do not shift them) — and takes the residual of the model that has been most
//!    accurate lately, in units of that model's robust residual scale;
//! 2. turns that surprise into a raw score and reports its Numenta-style anomaly likelihood:
//!    how improbable the mean of the last few raw scores is against their long history;
//! 3. scores 1 for a value beyond the running minimum/maximum by more than a margin of the
//!    range seen so far ("new extreme"). Steps 1–3 make the NAB-tuned score, which marks
//!    onsets: it is reported on the point where it reaches [`DetectorConfig::onset_level`] and
//!    not again until it has fallen below;
//! 4. scores a *sustained* deviation: the signed residual against that same expectation (a level,
//!    or the time-of-day / time-of-week profile), in robust scales, taken as the smallest of the
//!    last [`DetectorConfig::sustain_points`] points so a lone spike does not count. While it is
//!    large the models stop learning, so the score stays up as long as the series stays outside
//!    what is normal for that time, and comes down when it returns. A deviation that lasts longer
//!    than [`DetectorConfig::sustain_accept_secs`] is accepted as the new normal: the models are
//!    re-anchored on it.
//!
//! The score is the larger of the NAB-tuned score (steps 1–3, which favour one early detection)
//! and the sustained score (step 4, which an alert with `for:` needs). There is one configuration,
//! [`DetectorConfig::default`], used by the live engine, `prognos detect` and `prognos eval nab`.
//!
//! [`Detector::update_explained`] returns the same score with its parts (the expectation and the
//! model it came from, the surprise, raw score, likelihood, new-extreme, onset and sustained
//! scores): see [`Explained`]. `prognos detect --explain` writes them.

mod likelihood;
mod pattern;
mod seasonal;
mod stats;

use likelihood::Likelihood;
use pattern::{Features, Pattern, WINDOW};
use seasonal::{DAY, Profile, WEEK};
use stats::{Ring, RobustScale, StepEstimator};

/// Settings of a [`Detector`]. The defaults are the deployed configuration (the live engine,
/// `prognos detect` and `prognos eval nab` all use them). The NAB-tuned parts were tuned on the
/// whole public NAB sample before it was split; since, only its `tune` half is used.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Points learned before any score is reported; earlier points score 0. Default 150.
    pub warmup_points: usize,
    /// Learning rate of the level models, per point. Default 0.05.
    pub level_alpha: f64,
    /// Learning rate of the seasonal profiles, per update of a bin. Default 0.1.
    pub season_alpha: f64,
    /// Learning rate of the residual scales (which also rank the models). Default 0.003.
    pub scale_alpha: f64,
    /// Residuals are clipped at this many scales when learning, so spikes are not learned.
    /// Default 4.
    pub clip: f64,
    /// Bins of the time-of-day profile (fewer if the step is coarser). Default 48.
    pub daily_bins: usize,
    /// Bins of the time-of-week profile (fewer if the step is coarser). Default 168.
    pub weekly_bins: usize,
    /// Surprise (residual in scales) at which the raw score is one half. Default 3.
    pub raw_half: f64,
    /// Raw scores averaged for the likelihood's short mean (at most 32). Default 10.
    pub short_window: usize,
    /// Points per block of the likelihood's history. Default 100.
    pub history_block: usize,
    /// Blocks of the likelihood's history. Default 86 (about 8600 points).
    pub history_blocks: usize,
    /// Floor of the standard deviation of short means in the likelihood. Default 0.01.
    pub likelihood_std_floor: f64,
    /// A value beyond the running min/max by more than this fraction of the range scores 1.
    /// Default 0.05.
    pub extreme_margin: f64,
    /// A surprise above the largest recent surprise by this factor scores
    /// [`Self::surprise_extreme_score`]. Default 1.2.
    pub surprise_extreme_factor: f64,
    /// Score of a surprise beyond the largest recent one. Default 0.9; 0 disables.
    pub surprise_extreme_score: f64,
    /// The largest recent surprise decays by this factor per point. Default 0.9999.
    pub surprise_max_decay: f64,
    /// Windows collected for the k-means pattern model before it is fitted; 0 disables it.
    /// Default 300.
    pub pattern_samples: usize,
    /// Clusters of the pattern model. Default 8.
    pub pattern_clusters: usize,
    /// Weight of the time of day among the pattern features. Default 1.
    pub pattern_phase_weight: f64,
    /// Share of the pattern distance in the raw score (the rest is the forecast surprise); 0
    /// switches the pattern model off. Default 0: on the NAB sample every share tried (0.15 to 1,
    /// blended or as a maximum) lowered the score by 0.4 to 5 points.
    pub pattern_weight: f64,
    /// Pattern distance (in typical distances) at which its raw score is one half. Default 3.
    pub pattern_half: f64,
    /// The NAB-tuned score marks onsets: once it reaches this level it is reported on that
    /// point only, and counts again after it has fallen below. Persistence is the sustained
    /// score's job. Default 0.5.
    pub onset_level: f64,
    /// Consecutive points that must all deviate (same sign) for the sustained score; it takes
    /// the smallest of their deviations. Default 3.
    pub sustain_points: usize,
    /// Sustained deviation (in robust scales) at which the sustained score is one half; from
    /// there on the models stop learning. Default 4.
    pub sustain_half: f64,
    /// A deviation sustained for longer than this (seconds) becomes the new normal: the models
    /// are re-anchored on the current value. Default 6 hours.
    pub sustain_accept_secs: i64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            warmup_points: 150,
            level_alpha: 0.05,
            season_alpha: 0.1,
            scale_alpha: 0.003,
            clip: 4.0,
            daily_bins: 48,
            weekly_bins: 168,
            raw_half: 3.0,
            short_window: 10,
            history_block: 100,
            history_blocks: 86,
            likelihood_std_floor: 0.01,
            extreme_margin: 0.05,
            surprise_extreme_factor: 1.2,
            surprise_extreme_score: 0.9,
            surprise_max_decay: 0.9999,
            pattern_samples: 300,
            pattern_clusters: 8,
            pattern_phase_weight: 1.0,
            pattern_weight: 0.0,
            pattern_half: 3.0,
            onset_level: 0.5,
            sustain_points: 3,
            sustain_half: 4.0,
            sustain_accept_secs: 6 * 3600,
        }
    }
}

/// Index of each forecasting model in [`Detector::models`].
const NAIVE: usize = 0;
const LEVEL: usize = 1;
const DAILY: usize = 2;
const WEEKLY: usize = 3;
const MODELS: usize = 4;

/// Most points [`DetectorConfig::sustain_points`] can span: the deviations kept.
const SUSTAIN_MAX: usize = 16;
/// Steepness of the sustained score `d^p / (d^p + half^p)`: with 6, the score passes 0.95 at
/// 1.63 × `sustain_half` and is below 0.05 under 0.61 × `sustain_half`, so it separates ordinary
/// wobble from a real departure sharply.
const SUSTAIN_POWER: i32 = 6;

/// Name of each forecasting model, by its index in [`Detector::forecasts`].
const MODEL_NAMES: [&str; MODELS] = ["last", "level", "daily", "weekly"];

/// One score of [`Detector::update_explained`] with the parts it was made from.
///
/// For a point after warm-up, `score` is `onset.max(sustained)` (clamped to [0, 1], 0 if not
/// finite); during warm-up (the first [`DetectorConfig::warmup_points`] points) `score` is 0
/// while the parts are still reported as computed. A NaN or infinite value is not scored: every
/// part is 0 and `expected` / `model` are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Explained {
    /// The score, exactly what [`Detector::update`] returns for the same point.
    pub score: f64,
    /// Forecast of the model the surprise is measured against (`None` before the first point).
    pub expected: Option<f64>,
    /// Which model that is: the one with the smallest robust residual scale among `"level"`,
    /// `"daily"` (level + time-of-day profile) and `"weekly"` (level + time-of-week profile).
    /// The last-value model is tracked but never picked, so `"last"` does not occur today.
    pub model: Option<&'static str>,
    /// `|value - expected|` in robust residual scales of that model (step 1 of the module docs).
    pub surprise: f64,
    /// Raw score `surprise / (surprise + raw_half)` in [0, 1) (step 2).
    pub raw: f64,
    /// Numenta-style anomaly likelihood of the mean of the last raw scores against their
    /// history (step 2); 0 until half the warm-up has been seen.
    pub likelihood: f64,
    /// "New extreme" score (step 3): 1 when the value lies beyond the running min/max by more
    /// than [`DetectorConfig::extreme_margin`] of the range,
    /// [`DetectorConfig::surprise_extreme_score`] when the surprise exceeds the largest recent
    /// one by [`DetectorConfig::surprise_extreme_factor`], else 0. The NAB-tuned score is the
    /// larger of `likelihood` and `extreme`.
    pub extreme: f64,
    /// The NAB-tuned score after the rising-edge rule: the NAB-tuned score itself while it is
    /// below [`DetectorConfig::onset_level`], on the point where it reaches that level, and 0 on
    /// the following points until it has fallen below again.
    pub onset: f64,
    /// The sustained score (step 4) in [0, 1]: the smallest same-sign deviation of the last
    /// [`DetectorConfig::sustain_points`] points against the least unusual expectation (or, just
    /// after an onset, of the points since it), mapped through a steep curve that is one half at
    /// [`DetectorConfig::sustain_half`] scales.
    pub sustained: f64,
}

/// What [`Detector::score`] finds about a new point.
#[derive(Debug, Clone, Copy)]
struct Scored {
    /// The NAB-tuned score (steps 1–3).
    nab: f64,
    /// Signed residual against the least unusual expectation, in robust scales (step 4's input).
    deviation: f64,
    /// Index and forecast of the model the surprise is measured against.
    winner: Option<(usize, f64)>,
    surprise: f64,
    raw: f64,
    likelihood: f64,
    extreme: f64,
}

/// A level plus a calendar profile: `forecast = level + profile(ts)`.
#[derive(Debug, Clone)]
struct SeasonalModel {
    level: f64,
    profile: Profile,
}

impl SeasonalModel {
    /// The forecast at `ts`, if every bin behind it has been seen.
    fn forecast(&self, ts: i64) -> Option<f64> {
        let (s, w) = self.profile.at(ts);
        (w >= 0.99).then_some(self.level + s)
    }

    fn learn(&mut self, ts: i64, x: f64, level_alpha: f64) {
        let (s, _) = self.profile.at(ts);
        self.level += level_alpha * (x - s - self.level);
        self.profile.update(ts, x - self.level);
    }
}

/// Streaming anomaly detector for one series; see the module docs.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    seen: usize,
    last_ts: Option<i64>,
    step: StepEstimator,
    min: f64,
    max: f64,
    last_value: f64,
    level: f64,
    daily: Option<SeasonalModel>,
    weekly: Option<SeasonalModel>,
    scales: [RobustScale; MODELS],
    likelihood: Likelihood,
    surprise_max: f64,
    recent: Ring<{ WINDOW - 1 }>,
    pattern: Pattern,
    /// Features of the point being scored, learned after scoring.
    features: Option<Features>,
    /// Signed deviations (residual of the best model in its scales) of the latest points.
    deviations: Ring<SUSTAIN_MAX>,
    /// When the current sustained deviation started, while there is one.
    deviating_since: Option<i64>,
    /// Whether the NAB-tuned score was at or above `onset_level` on the previous point.
    in_onset: bool,
    /// Points seen (counting it) when the NAB-tuned score last marked an onset.
    onset_at: Option<usize>,
}

impl Detector {
    /// A detector that has seen nothing yet.
    pub fn new(config: DetectorConfig) -> Self {
        let scale = RobustScale::new(config.scale_alpha, config.clip);
        let likelihood = Likelihood::new(
            config.short_window,
            config.history_block,
            config.history_blocks,
            config.likelihood_std_floor,
        );
        Self {
            seen: 0,
            last_ts: None,
            step: StepEstimator::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last_value: 0.0,
            level: 0.0,
            daily: None,
            weekly: None,
            scales: std::array::from_fn(|_| scale.clone()),
            likelihood,
            surprise_max: 0.0,
            recent: Ring::new(),
            pattern: if config.pattern_weight > 0.0 {
                Pattern::new(config.pattern_samples, config.pattern_clusters)
            } else {
                Pattern::Off
            },
            features: None,
            deviations: Ring::new(),
            deviating_since: None,
            in_onset: false,
            onset_at: None,
            config,
        }
    }

    /// Points learned so far (non-finite values are not learned).
    pub fn points_seen(&self) -> usize {
        self.seen
    }

    /// Scores one new point (unix seconds, value) in [0, 1], using only the points seen so far,
    /// then learns it. A NaN or infinite value scores 0 and is not learned. A timestamp at or
    /// before the last one is scored and its value learned, but the calendar models skip it.
    pub fn update(&mut self, timestamp: i64, value: f64) -> f64 {
        self.step(timestamp, value).score
    }

    /// Like [`Self::update`] (same score, same learning), and returns the parts the score was
    /// made from; see [`Explained`].
    pub fn update_explained(&mut self, timestamp: i64, value: f64) -> Explained {
        self.step(timestamp, value)
    }

    /// Scores and learns one point: the one path behind [`Self::update`] and
    /// [`Self::update_explained`]. Inlined into both, so `update` drops the parts it does not
    /// return.
    #[inline(always)]
    fn step(&mut self, timestamp: i64, value: f64) -> Explained {
        if !value.is_finite() {
            return Explained::default();
        }
        let forward = self.last_ts.is_none_or(|last| timestamp > last);
        if forward {
            if let Some(last) = self.last_ts {
                self.step.observe(timestamp.saturating_sub(last));
            }
            self.last_ts = Some(timestamp);
        }
        if self.daily.is_none()
            && let Some(step) = self.step.step()
        {
            self.start_seasonal(step);
        }

        let scored = self.score(timestamp, value);
        let score = scored.nab;
        self.deviations.push(scored.deviation);
        let k = self.config.sustain_points.clamp(1, SUSTAIN_MAX);
        let sustained = self.sustained(k);
        // Before warm-up the scales are still settling: nothing counts as a sustained deviation.
        let deviating =
            self.seen >= self.config.warmup_points && sustained >= self.config.sustain_half;
        let accept = if deviating {
            let since = *self.deviating_since.get_or_insert(timestamp);
            timestamp.saturating_sub(since) >= self.config.sustain_accept_secs
        } else {
            self.deviating_since = None;
            false
        };
        if accept {
            self.reanchor(timestamp, value);
        } else {
            self.learn(timestamp, value, forward, deviating);
        }
        self.seen += 1;

        // Only the rising edge of the NAB-tuned score counts (see `onset_level`).
        let onset = if score >= self.config.onset_level {
            let first = !self.in_onset;
            self.in_onset = true;
            if first {
                self.onset_at = Some(self.seen);
                score
            } else {
                0.0
            }
        } else {
            self.in_onset = false;
            score
        };
        // Until `sustain_points` points have passed since an onset, a
        // deviation held on every point since it counts as sustained: the
        // score of a storm stays up from its onset on rather than dipping
        // until the sustained score has enough points.
        let since_onset = self
            .onset_at
            .map(|at| self.seen + 1 - at)
            .filter(|&n| n < k)
            .map_or(0.0, |n| self.sustained(n));
        let sustained = self.sustained_score(sustained.max(since_onset));
        let score = if self.seen <= self.config.warmup_points {
            0.0
        } else {
            onset.max(sustained)
        };
        let score = if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Explained {
            score,
            expected: scored.winner.map(|(_, f)| f),
            model: scored.winner.map(|(k, _)| MODEL_NAMES[k]),
            surprise: scored.surprise,
            raw: scored.raw,
            likelihood: scored.likelihood,
            extreme: scored.extreme,
            onset,
            sustained,
        }
    }

    /// Creates the calendar models once the sampling step is known.
    fn start_seasonal(&mut self, step: i64) {
        let bins = |period: i64, max: usize| ((period / step.max(1)) as usize).clamp(1, max);
        let model = |period, max| SeasonalModel {
            level: self.level,
            profile: Profile::new(period, bins(period, max), self.config.season_alpha),
        };
        self.daily = Some(model(DAY, self.config.daily_bins));
        self.weekly = Some(model(WEEK, self.config.weekly_bins));
    }

    /// Forecasts of every model that can forecast at `ts`.
    fn forecasts(&self, ts: i64) -> [Option<f64>; MODELS] {
        let mut f = [None; MODELS];
        if self.seen > 0 {
            f[NAIVE] = Some(self.last_value);
            f[LEVEL] = Some(self.level);
        }
        f[DAILY] = self.daily.as_ref().and_then(|m| m.forecast(ts));
        f[WEEKLY] = self.weekly.as_ref().and_then(|m| m.forecast(ts));
        f
    }

    /// The sustained deviation over the latest `k` points: the smallest magnitude among their
    /// deviations if they all have one sign, else 0.
    fn sustained(&self, k: usize) -> f64 {
        let mut smallest = f64::INFINITY;
        let Some(sign) = self.deviations.lag(1).map(f64::signum) else {
            return 0.0;
        };
        for lag in 1..=k {
            match self.deviations.lag(lag) {
                Some(d) if d != 0.0 && d.signum() == sign => smallest = smallest.min(d.abs()),
                _ => return 0.0,
            }
        }
        smallest
    }

    /// Score in [0, 1] of a sustained deviation.
    fn sustained_score(&self, sustained: f64) -> f64 {
        let half = self.config.sustain_half;
        if !(sustained > 0.0 && half > 0.0) {
            return 0.0;
        }
        let r = (sustained / half).powi(SUSTAIN_POWER);
        if r.is_finite() { r / (1.0 + r) } else { 1.0 }
    }

    /// Accepts a long deviation as the new normal: every model's level moves so that it
    /// forecasts `x` at `ts`, and the deviation history starts afresh.
    fn reanchor(&mut self, ts: i64, x: f64) {
        let forecasts = self.forecasts(ts);
        if let Some(f) = forecasts[LEVEL] {
            self.level += x - f;
        }
        if let (Some(f), Some(m)) = (forecasts[DAILY], self.daily.as_mut()) {
            m.level += x - f;
        }
        if let (Some(f), Some(m)) = (forecasts[WEEKLY], self.weekly.as_mut()) {
            m.level += x - f;
        }
        self.deviations = Ring::new();
        self.deviating_since = None;
        self.observe(x);
    }

    /// The NAB-tuned score of a new point, its signed deviation (residual of the least unusual
    /// model in its robust scales) and the parts of the score.
    fn score(&mut self, ts: i64, x: f64) -> Scored {
        let range = self.max - self.min;
        let extreme = self.seen > 0
            && (x > self.max + self.config.extreme_margin * range
                || x < self.min - self.config.extreme_margin * range);

        let deviation = self.least_deviation(ts, x);
        let (signed, winner) = self.deviation(ts, x);
        let surprise = signed.abs();
        let mut raw = surprise / (surprise + self.config.raw_half);
        self.features = self.pattern_features(ts, x);
        if let Some(d) = self
            .features
            .as_ref()
            .and_then(|f| self.pattern.distance(f))
        {
            let w = self.config.pattern_weight;
            raw = (1.0 - w) * raw + w * d / (d + self.config.pattern_half);
        }
        let likelihood = if self.seen * 2 >= self.config.warmup_points {
            self.likelihood.update(raw)
        } else {
            0.0
        };
        let c = &self.config;
        let surprising = self.seen >= c.warmup_points
            && surprise > self.surprise_max * c.surprise_extreme_factor;
        if self.seen * 2 >= c.warmup_points {
            self.surprise_max = (self.surprise_max * c.surprise_max_decay).max(surprise);
        }
        let score = if extreme {
            1.0
        } else if surprising {
            likelihood.max(c.surprise_extreme_score)
        } else {
            likelihood
        };
        Scored {
            nab: score,
            deviation,
            winner,
            surprise,
            raw,
            likelihood,
            extreme: if extreme {
                1.0
            } else if surprising {
                c.surprise_extreme_score
            } else {
                0.0
            },
        }
    }

    /// Pattern features of the window ending with `x`, once enough points were seen.
    fn pattern_features(&self, ts: i64, x: f64) -> Option<Features> {
        if self.config.pattern_weight == 0.0
            || self.config.pattern_samples == 0
            || self.recent.len() < WINDOW - 1
            || self.seen * 2 < self.config.warmup_points
        {
            return None;
        }
        let floor = 1e-3 * (self.max - self.min) + 1e-9 * x.abs() + 1e-12;
        let scale = self.scales[LEVEL].get().max(floor);
        let mut values = [0.0; WINDOW];
        for (j, v) in values.iter_mut().enumerate() {
            let raw = if j == WINDOW - 1 {
                x
            } else {
                self.recent.lag(WINDOW - 1 - j)?
            };
            *v = (raw - self.level) / scale;
        }
        let phase = ts.rem_euclid(DAY) as f64 / DAY as f64;
        Some(pattern::features(
            &values,
            phase,
            self.config.pattern_phase_weight,
        ))
    }

    /// Signed residual, in robust scales, of the model that finds `x` least unusual: a sustained
    /// deviation must be unusual against every expectation (the level, the time of day, the
    /// time of week) that can be formed.
    fn least_deviation(&self, ts: i64, x: f64) -> f64 {
        let forecasts = self.forecasts(ts);
        let floor = 1e-3 * (self.max - self.min) + 1e-9 * x.abs() + 1e-12;
        let mut least: Option<f64> = None;
        for (k, f) in forecasts.iter().enumerate().skip(LEVEL) {
            let Some(f) = f else { continue };
            let z = (x - f) / self.scales[k].get().max(floor);
            if z.is_finite() && least.is_none_or(|l: f64| z.abs() < l.abs()) {
                least = Some(z);
            }
        }
        least.unwrap_or(0.0)
    }

    /// Signed residual of the currently most accurate model, in units of its robust scale, and
    /// that model (index, forecast) if any can forecast.
    fn deviation(&self, ts: i64, x: f64) -> (f64, Option<(usize, f64)>) {
        let forecasts = self.forecasts(ts);
        let mut best: Option<(f64, usize, f64)> = None; // (scale, model, forecast)
        for (k, f) in forecasts.iter().enumerate().skip(LEVEL) {
            let Some(f) = *f else { continue };
            let scale = self.scales[k].get();
            if best.is_none_or(|(s, _, _)| scale < s) {
                best = Some((scale, k, f));
            }
        }
        let Some((scale, k, f)) = best else {
            return (0.0, None);
        };
        let floor = 1e-3 * (self.max - self.min) + 1e-9 * x.abs() + 1e-12;
        let s = (x - f) / scale.max(floor);
        (if s.is_finite() { s } else { 0.0 }, Some((k, f)))
    }

    /// Learns a point. While a sustained deviation lasts (`deviating`), the forecasting models
    /// and their scales learn nothing, so the deviation is not learned as normal.
    fn learn(&mut self, ts: i64, x: f64, forward: bool, deviating: bool) {
        if deviating && self.seen > 0 {
            if let Some(f) = self.features.take() {
                self.pattern.learn(f);
            }
            self.observe(x);
            return;
        }
        let clip = self.config.clip;
        let forecasts = self.forecasts(ts);
        for (k, f) in forecasts.iter().enumerate() {
            if let Some(f) = f {
                self.scales[k].update(x - f);
            }
        }
        // Learn a clipped value so a spike does not drag the models along.
        let clipped = |f: Option<f64>, scale: f64| match f {
            Some(f) if scale > 0.0 => f + (x - f).clamp(-clip * scale, clip * scale),
            _ => x,
        };
        let alpha = self.config.level_alpha;
        if self.seen == 0 {
            self.level = x;
        } else {
            let xl = clipped(forecasts[LEVEL], self.scales[LEVEL].get());
            self.level += alpha * (xl - self.level);
        }
        if forward {
            let xd = clipped(forecasts[DAILY], self.scales[DAILY].get());
            if let Some(m) = self.daily.as_mut() {
                m.learn(ts, xd, alpha);
            }
            let xw = clipped(forecasts[WEEKLY], self.scales[WEEKLY].get());
            if let Some(m) = self.weekly.as_mut() {
                m.learn(ts, xw, alpha);
            }
        }
        if let Some(f) = self.features.take() {
            self.pattern.learn(f);
        }
        self.observe(x);
    }

    /// Updates what is kept about every point whatever the models learn: the recent values, the
    /// last value and the running extremes.
    fn observe(&mut self, x: f64) {
        self.recent.push(x);
        self.last_value = x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(series: impl Iterator<Item = (i64, f64)>) -> Vec<f64> {
        let mut d = Detector::new(DetectorConfig::default());
        series.map(|(t, v)| d.update(t, v)).collect()
    }

    #[test]
    fn constant_series_scores_zero() {
        let scores = run((0..5000).map(|i| (i * 300, 42.0)));
        assert!(scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn spike_after_regular_seasonal_series_scores_high() {
        let f =
            |i: i64| 50.0 + 20.0 * ((i * 300) as f64 / DAY as f64 * std::f64::consts::TAU).sin();
        let noise = |i: i64| ((i * 7919 % 101) as f64 / 101.0 - 0.5) * 2.0;
        let mut d = Detector::new(DetectorConfig::default());
        let mut max_normal: f64 = 0.0;
        for i in 0..4000 {
            let s = d.update(i * 300, f(i) + noise(i));
            if i > 1000 {
                max_normal = max_normal.max(s);
            }
        }
        let spike = d.update(4000 * 300, f(4000) + 15.0);
        assert!(spike >= 0.5, "spike {spike}");
        assert!(max_normal < 0.5, "normal {max_normal}");
    }

    #[test]
    fn scores_are_causal() {
        let series: Vec<(i64, f64)> = (0..3000)
            .map(|i| {
                (
                    i * 600,
                    ((i * 31 % 97) as f64).sin() * 10.0 + (i / 700) as f64,
                )
            })
            .collect();
        let whole = run(series.iter().copied());
        let prefix = run(series[..1234].iter().copied());
        assert_eq!(prefix, whole[..1234]);
    }

    #[test]
    fn non_finite_values_score_zero_and_are_not_learned() {
        let mut d = Detector::new(DetectorConfig::default());
        for i in 0..10 {
            d.update(i, 1.0);
        }
        assert_eq!(d.update(10, f64::NAN), 0.0);
        assert_eq!(d.update(11, f64::INFINITY), 0.0);
        assert_eq!(d.points_seen(), 10);
    }

    #[test]
    fn level_shift_is_detected_then_forgotten() {
        let noise = |i: i64| ((i * 7919 % 101) as f64 / 101.0 - 0.5) * 2.0;
        let scores =
            run((0..6000).map(|i| (i * 300, if i < 3000 { 10.0 } else { 30.0 } + noise(i))));
        assert!(scores[3000..3050].iter().any(|&s| s >= 0.5));
        assert!(scores[4000..].iter().all(|&s| s < 0.5));
    }

    /// Minutes in a day and a week.
    const DAY_MIN: i64 = 24 * 60;
    const WEEK_MIN: i64 = 7 * DAY_MIN;
    /// The score the shipped anomaly rules alert above (`anomaly: {score_above: 0.95}`).
    const RULE_THRESHOLD: f64 = 0.95;

    /// Deterministic noise, roughly normal with standard deviation 1.
    fn gauss(i: i64, seed: u64) -> f64 {
        let mut h = (i as u64).wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut sum = 0.0;
        for _ in 0..4 {
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 33;
            h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            h ^= h >> 33;
            sum += (h >> 11) as f64 / (1u64 << 53) as f64;
        }
        (sum - 2.0) * 3f64.sqrt()
    }

    /// CPU % at minute `i` (minute 0 is a Monday, 00:00): low at night, a daytime hump, a
    /// Monday morning peak, quieter weekends, a nightly batch from 03:00 to 03:15, noise.
    fn cpu(i: i64) -> f64 {
        let minute = i.rem_euclid(DAY_MIN) as f64;
        let day = i.rem_euclid(WEEK_MIN) / DAY_MIN;
        let hump = (-(minute - 14.0 * 60.0).powi(2) / (2.0 * 180.0f64.powi(2))).exp();
        let weekday = if day >= 5 { 0.5 } else { 1.0 };
        // Monday mornings ramp up to an extra 8 points between 08:00 and 11:00.
        let monday = if day == 0 && (8 * 60..11 * 60).contains(&(minute as i64)) {
            8.0 * ((minute - 480.0) / 180.0 * std::f64::consts::PI).sin()
        } else {
            0.0
        };
        let batch = if (3 * 60..3 * 60 + 15).contains(&(minute as i64)) {
            6.0
        } else {
            0.0
        };
        8.0 + 40.0 * weekday * hump + monday + batch + gauss(i, 1)
    }

    /// Scores `series` minute by minute from Monday 00:00 (timestamps in seconds).
    fn run_minutes(n: i64, series: impl Fn(i64) -> f64) -> Vec<f64> {
        // 2024-01-01 was a Monday.
        let monday = 1_704_067_200;
        run((0..n).map(|i| (monday + i * 60, series(i))))
    }

    #[test]
    fn normal_weeks_with_rhythms_and_a_nightly_batch_stay_below_the_rule_threshold() {
        // A week learned as the engine learns a rule's history (7d), then two weeks scored.
        let scores = run_minutes(3 * WEEK_MIN, cpu);
        let alerting: Vec<usize> = scores[WEEK_MIN as usize..]
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s >= RULE_THRESHOLD)
            .map(|(i, _)| i)
            .collect();
        assert!(
            alerting.is_empty(),
            "minutes of the two weeks at or above {RULE_THRESHOLD}: {alerting:?}"
        );
    }

    #[test]
    fn two_hours_at_four_times_the_night_level_stay_up_then_come_down() {
        // Two weeks of history, then Tuesday 01:00–03:00 of the third week at 4× its usual level.
        let onset = 2 * WEEK_MIN + DAY_MIN + 60;
        let end = onset + 120;
        let series = |i: i64| {
            if (onset..end).contains(&i) {
                4.0 * cpu(i)
            } else {
                cpu(i)
            }
        };
        let scores = run_minutes(end + 12 * 60, series);
        let during = &scores[(onset + 5) as usize..end as usize];
        let low: Vec<(usize, f64)> = during
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s < RULE_THRESHOLD)
            .map(|(i, &s)| (i + 5, s))
            .collect();
        // Nearly every point: at most 3 of the 115 minutes may dip, and never below 0.9 (the
        // residual is in the scales of quiet nights, and the anomaly quadruples the noise too).
        assert!(
            low.len() <= 3 && low.iter().all(|&(_, s)| s >= 0.9),
            "(minutes after onset, score) below {RULE_THRESHOLD}: {low:?}"
        );
        let after = &scores[(end + 15) as usize..];
        let high = after.iter().cloned().fold(0.0, f64::max);
        assert!(high < 0.5, "score {high} after the series returned");
    }

    #[test]
    fn a_thirty_minute_error_storm_stays_above_the_rule_threshold_throughout() {
        // HTTP 500 rate: about 0.2/s by day, less at night, with Poisson-like noise.
        let rate = |i: i64| {
            let minute = i.rem_euclid(DAY_MIN) as f64;
            let base = 0.05 + 0.15 * (-(minute - 840.0).powi(2) / (2.0 * 200.0f64.powi(2))).exp();
            (base + 0.3 * base.sqrt() * gauss(i, 7) / 8.0).max(0.0)
        };
        let onset = 2 * WEEK_MIN + 2 * DAY_MIN + 10 * 60;
        let end = onset + 30;
        let series = |i: i64| {
            if (onset..end).contains(&i) {
                20.0 * rate(i)
            } else {
                rate(i)
            }
        };
        let scores = run_minutes(end + 60, series);
        let during = &scores[onset as usize..end as usize];
        let lowest = during.iter().cloned().fold(1.0, f64::min);
        assert!(
            lowest >= RULE_THRESHOLD,
            "score fell to {lowest} during the storm"
        );
        // The same storm sampled every 5 minutes, as a rule with `step: 5m`
        // sees it: up from its first point, with no dip while the sustained
        // score gathers its three points.
        let monday = 1_704_067_200;
        let coarse = run((0..end + 60)
            .step_by(5)
            .map(|i| (monday + i * 60, series(i))));
        let during: Vec<f64> = coarse[(onset / 5) as usize..(end / 5) as usize].to_vec();
        assert!(
            during.iter().all(|&s| s >= RULE_THRESHOLD),
            "scores every 5 minutes during the storm: {during:?}"
        );
    }

    #[test]
    fn a_lasting_change_becomes_normal_after_the_accept_time() {
        let onset = 2 * WEEK_MIN;
        let series = |i: i64| if i >= onset { cpu(i) + 30.0 } else { cpu(i) };
        let scores = run_minutes(onset + 2 * DAY_MIN, series);
        assert!(scores[onset as usize + 5] >= RULE_THRESHOLD);
        let accept = DetectorConfig::default().sustain_accept_secs / 60;
        let later = &scores[(onset + accept + 60) as usize..];
        let high = later.iter().cloned().fold(0.0, f64::max);
        for (i, s) in later.iter().enumerate() {
            if *s > 0.5 {
                eprintln!("minute {} score {s}", i as i64 + accept + 60);
            }
        }
        assert!(high < RULE_THRESHOLD, "score {high} long after the change");
    }

    #[test]
    fn explained_scores_are_the_scores() {
        use crate::synthetic::{Shape, series};
        // Three weeks at 5 minutes with daily and weekly seasons, a level shift of +60 in the
        // third week, a spike, and NaN rows here and there.
        let n = 3 * 2016;
        let start = 1_704_067_200;
        let mut values = series(&Shape::default(), start, n, 11);
        for (i, v) in values.iter_mut().enumerate() {
            if i >= 2 * 2016 + 300 {
                *v += 60.0;
            }
            if i == 2016 + 500 {
                *v += 200.0;
            }
            if i % 397 == 0 || (3000..3010).contains(&i) {
                *v = f64::NAN;
            }
        }
        let config = DetectorConfig::default();
        let mut plain = Detector::new(config.clone());
        let mut explained = Detector::new(config.clone());
        let mut models = std::collections::BTreeSet::new();
        let mut high = 0;
        for (i, &v) in values.iter().enumerate() {
            let ts = start + i as i64 * 300;
            let s = plain.update(ts, v);
            let e = explained.update_explained(ts, v);
            assert_eq!(e.score.to_bits(), s.to_bits(), "point {i}: {e:?} vs {s}");
            if v.is_nan() {
                assert_eq!(e, Explained::default());
                continue;
            }
            if let Some(m) = e.model {
                models.insert(m);
            }
            if explained.points_seen() > config.warmup_points {
                assert_eq!(
                    e.score,
                    e.onset.max(e.sustained).clamp(0.0, 1.0),
                    "point {i}"
                );
            } else {
                assert_eq!(e.score, 0.0);
            }
            for part in [e.raw, e.likelihood, e.extreme, e.onset, e.sustained] {
                assert!((0.0..=1.0).contains(&part), "point {i}: {e:?}");
            }
            if e.score >= 0.5 {
                high += 1;
            }
        }
        assert_eq!(explained.points_seen(), plain.points_seen());
        // The spike and the shift were scored high, and the seasonal models took part.
        assert!(high >= 2, "{high} high scores");
        assert!(
            models.contains("daily") || models.contains("weekly"),
            "{models:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn scores_stay_in_unit_interval(
            points in proptest::collection::vec(
                (proptest::prelude::any::<i64>(), proptest::prelude::any::<f64>()), 0..400),
            repeat in 0usize..4,
        ) {
            let mut d = Detector::new(DetectorConfig { warmup_points: 10, ..DetectorConfig::default() });
            for &(t, v) in &points {
                for _ in 0..=repeat {
                    let s = d.update(t, v);
                    proptest::prop_assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{s}");
                }
            }
        }

        #[test]
        fn scores_stay_in_unit_interval_on_regular_time(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<f64>(),
                    -1e300f64..1e300,
                    -10.0f64..10.0,
                ], 0..600),
            step in 1i64..100_000,
        ) {
            let mut d = Detector::new(DetectorConfig { warmup_points: 10, ..DetectorConfig::default() });
            for (i, &v) in values.iter().enumerate() {
                let s = d.update(i as i64 * step, v);
                proptest::prop_assert!(s.is_finite() && (0.0..=1.0).contains(&s), "{s}");
            }
        }
    }
}
