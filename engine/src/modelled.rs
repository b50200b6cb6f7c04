//! One modelled series: its fitted forecaster, its streaming detector, and
//! its latest outputs. Fitted from history, then advanced point by point as
//! new samples arrive; it asks for a refit when the model cannot update
//! online or the series drifts out of its band.

use std::collections::{BTreeMap, VecDeque};

use prognos_models::detector::{Detector, DetectorConfig};
use prognos_models::forecast::linear::recent_trend;
use prognos_models::forecast::mstl::Mstl;
use prognos_models::forecast::{
    Bounds, Calibrated, FittedModel, Forecast, Level, ModelKind, fit_model,
};
use prognos_models::seasonality::confirmed_periods;
use prognos_models::series::Series;

/// Consecutive points outside the band after which a series is refitted.
pub const DRIFT_POINTS: u32 = 6;

/// Consecutive points far outside the band (beyond it by more than its
/// half-width) after which a series is refitted at once: a queue that starts
/// filling at 1,000 a minute must get a model of its new trend in minutes,
/// before it reaches the threshold its forecast rule watches.
pub const FAST_DRIFT_POINTS: u32 = 3;

/// Fewest points since a change for the model of the new regime to be fitted
/// on them alone (a line needs two, and one more tells noise from trend);
/// until then the refit uses the whole history.
pub const MIN_REGIME_POINTS: usize = 3;

/// How long a model of a new regime keeps being refitted on the points since
/// the change rather than the whole history: as long as the scheduler's
/// periodic refit, after which the history holds enough of the new regime.
pub const REGIME_KEEP_SECS: i64 = 6 * 3600;

/// Points of recent history whose volatility floors the band.
pub const RECENT_POINTS: usize = 60;

/// Share of the recent standard deviation of changes that a band's
/// half-width never goes below: enough that a band cannot collapse on a
/// quiet stretch, small enough to leave calibrated bands alone.
pub const VOLATILITY_FLOOR: f64 = 0.5;

/// A constant history has no resolution to floor the band with: its
/// half-width is this share of the value's magnitude (at least 1).
pub const CONSTANT_FLOOR: f64 = 1e-3;

/// Largest resolution floor, as a share of the history's mean magnitude:
/// on a series that sat at zero and jumped once, the jump is its smallest
/// change but no resolution, and a band that wide would hide what follows.
pub const RESOLUTION_SHARE: f64 = 0.01;

/// Small-sample widening of the band, `1 + SMALL_SAMPLE / ν` with ν the
/// points fitted minus two: about Student's t over the normal quantile at
/// 95 % (×2.2 at ν = 2, ×1.2 at ν = 10), and 1.0006 on three days of minutes.
pub const SMALL_SAMPLE: f64 = 2.5;

/// Points of a series' trail: its recent values, bands and scores, for the
/// web UI's charts. The charts of notifications show as many
/// ([`crate::explain::CHART_POINTS`]): 12 hours at a 5-minute step, at
/// about 3.4 KiB a series.
pub const TRAIL_POINTS: usize = 144;

/// One point of a series' trail, in single precision (a chart's
/// resolution): what arrived, the band it was expected in (NaN for points
/// the model was fitted on) and its anomaly score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrailPoint {
    /// Unix seconds.
    pub t: i64,
    /// The value (reset-corrected for a raw counter).
    pub value: f32,
    /// Lower end of the band expected for it.
    pub lower: f32,
    /// Upper end.
    pub upper: f32,
    /// Its anomaly score.
    pub score: f32,
}

/// A series' labels.
pub type Labels = BTreeMap<String, String>;

/// How to fit a series: what its rule asks for, and where its current
/// regime begins. Built with [`FitSpec::new`] and the setters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitSpec {
    /// Seconds between points.
    pub step: i64,
    /// The rule's model.
    pub kind: ModelKind,
    /// Longest forecast the band is calibrated for, in steps.
    pub max_horizon: usize,
    /// The rule's bounds; a lower bound of 0 is inferred when they have none
    /// and the whole history is non-negative.
    pub bounds: Bounds,
    /// Start of the current regime (Unix seconds): when set, the model is
    /// fitted on the points from it on (see [`ModelledSeries::refit_since`]).
    pub since: Option<i64>,
    /// The run of points outside the band that a refit interrupts, carried
    /// over so that a model refitted at every point still sees it:
    /// (first point, points, of which far).
    carry: Option<(i64, u32, u32)>,
}

impl FitSpec {
    /// A whole-history fit without bounds.
    pub fn new(step: i64, kind: ModelKind, max_horizon: usize) -> Self {
        Self {
            step,
            kind,
            max_horizon,
            bounds: Bounds::NONE,
            since: None,
            carry: None,
        }
    }

    /// With the rule's bounds.
    pub fn bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Fitted on the points from `since` on, when there are enough.
    pub fn since(mut self, since: Option<i64>) -> Self {
        self.since = since;
        self
    }
}

/// Makes a raw counter monotonic again: a drop is a reset (the process
/// restarted), so the value before it is carried as an offset, as PromQL's
/// `rate()` does. Without it a restart looks like a collapse of the series.
#[derive(Debug, Clone, Default)]
pub struct ResetCorrection {
    last_raw: Option<f64>,
    offset: f64,
}

impl ResetCorrection {
    /// The corrected value of the next raw sample.
    pub fn apply(&mut self, raw: f64) -> f64 {
        if let Some(last) = self.last_raw
            && raw < last
        {
            self.offset += last;
        }
        self.last_raw = Some(raw);
        raw + self.offset
    }
}

/// Whether a series is a raw counter by Prometheus naming (`*_total`); a
/// PromQL function such as `rate()` drops `__name__`, so rates are not.
pub fn is_raw_counter(labels: &Labels) -> bool {
    labels
        .get("__name__")
        .is_some_and(|n| n.ends_with("_total"))
}

/// A series under watch.
#[derive(Debug)]
pub struct ModelledSeries {
    /// The series' labels as Prometheus returned them.
    pub labels: Labels,
    model: Calibrated<Box<dyn FittedModel>>,
    detector: Detector,
    step: i64,
    /// Timestamp of the latest point absorbed.
    pub last_ts: i64,
    /// Latest value.
    pub last_value: f64,
    /// Anomaly score of the latest point.
    pub score: f64,
    /// Highest anomaly score among the points of the latest absorb.
    pub peak_score: f64,
    /// What the model expected for the latest point: (central, lower, upper).
    pub expected: Option<(f64, f64, f64)>,
    /// When the model was fitted (Unix seconds).
    pub fitted_at: i64,
    /// Last evaluation that returned this series.
    pub last_seen: i64,
    drift: u32,
    /// Consecutive points far outside the band.
    far: u32,
    /// Timestamp of the first point of the current run outside the band.
    drift_since: Option<i64>,
    /// Whether the calibrated band had no width (a constant history): any
    /// point outside it asks for a refit.
    degenerate: bool,
    /// Start of the window the model was fitted on, when not the whole history.
    regime_start: Option<i64>,
    /// The new regime's points showed no significant trend yet, so it is
    /// modelled as a level and refitted at every point until they do (or
    /// the regime is old enough for a whole-history fit).
    provisional: bool,
    /// The new regime's points show a significant trend: its window is kept
    /// past [`REGIME_KEEP_SECS`] while they do, since a whole-history fit
    /// would average a leak or a growth spurt of hours into days of the old
    /// behaviour and lose its pace.
    trending: bool,
    /// Least half-width of the band: the series' resolution and recent volatility.
    floor: f64,
    /// Small-sample widening of the band (≥ 1).
    widen: f64,
    /// The values the series can take: the rule's, or non-negative when
    /// its whole history was.
    bounds: Bounds,
    resets: Option<ResetCorrection>,
    /// Steps the model's own origin lags behind the latest point: a model
    /// that cannot update online (a line) keeps its state, so its forecast
    /// for the next point is this many steps further along its path.
    behind: usize,
    /// The latest [`TRAIL_POINTS`] points with their bands and scores.
    trail: VecDeque<TrailPoint>,
}

/// The detector as the live engine runs it: the one configuration, the same as
/// `prognos detect` and `prognos eval nab` use.
pub fn live_detector_config() -> DetectorConfig {
    DetectorConfig::default()
}

/// The least half-width of a band on `y`: its resolution (the smallest
/// non-zero change), or for a constant series a small share of its level,
/// and a share of the standard deviation of its recent changes.
fn band_floor(y: &[f64]) -> f64 {
    let resolution = y
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    let resolution = if resolution.is_finite() {
        let mean = y.iter().map(|v| v.abs()).sum::<f64>() / y.len().max(1) as f64;
        resolution.min(RESOLUTION_SHARE * mean)
    } else {
        CONSTANT_FLOOR * y.last().map_or(1.0, |v| v.abs().max(1.0))
    };
    let recent = &y[y.len().saturating_sub(RECENT_POINTS + 1)..];
    let diffs: Vec<f64> = recent.windows(2).map(|w| w[1] - w[0]).collect();
    let vol = if diffs.len() < 2 {
        0.0
    } else {
        let m = diffs.iter().sum::<f64>() / diffs.len() as f64;
        (diffs.iter().map(|d| (d - m).powi(2)).sum::<f64>() / (diffs.len() - 1) as f64).sqrt()
    };
    resolution.max(VOLATILITY_FLOOR * vol)
}

/// The rule's bounds, with a lower bound of 0 when they have none and the
/// history never went below it: sizes, counts, rates, queue depths and CPU
/// are never negative, and neither should their forecasts be.
fn effective_bounds(rule: Bounds, history: &[(i64, f64)]) -> Bounds {
    let lower = rule
        .lower
        .or_else(|| history.iter().all(|s| s.1 >= 0.0).then_some(0.0));
    Bounds {
        lower,
        upper: rule.upper,
    }
}

/// A line on the last `fit_on.len()` points of `y`, deseasonalised by the
/// calendar rhythm `y` shows before its last `regime` points (see
/// [`Mstl::fit_with_recent_line`]); `None` without a confirmed rhythm or
/// two of its periods before the regime.
fn seasonal_line(
    y: &[f64],
    regime: usize,
    fit_on: &[f64],
    step: i64,
    max_horizon: usize,
) -> Option<Calibrated<Box<dyn FittedModel>>> {
    let before = &y[..y.len().saturating_sub(regime)];
    let periods = confirmed_periods(before, step);
    let model = Mstl::new(periods)
        .ok()?
        .fit_with_recent_line(y, regime, fit_on.len())
        .ok()?;
    Some(Calibrated::new(Box::new(model), fit_on, max_horizon))
}

impl ModelledSeries {
    /// Fits on `samples` (Unix seconds, value; NaN and ±Inf are gaps) as
    /// `spec` says; the detector learns the whole history. With `spec.since`
    /// and enough points after it, the model sees only those (the series
    /// changed regime there) and its band is widened for the few points.
    pub fn fit(
        labels: Labels,
        samples: &[(i64, f64)],
        spec: &FitSpec,
        now: i64,
    ) -> Result<Self, prognos_models::Error> {
        let step = spec.step;
        let finite: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|s| s.1.is_finite())
            .collect();
        if finite.len() < 3 {
            return Err(prognos_models::Error::TooShort {
                model: "series history",
                needed: 3,
                got: finite.len(),
            });
        }
        let mut sorted = finite;
        sorted.sort_by_key(|s| s.0);
        sorted.dedup_by_key(|s| s.0);
        let mut resets = is_raw_counter(&labels).then(ResetCorrection::default);
        if let Some(r) = &mut resets {
            for s in &mut sorted {
                s.1 = r.apply(s.1);
            }
        }
        let bounds = effective_bounds(spec.bounds, &sorted);
        // The last point is held out and absorbed after fitting, so a new
        // series has an expectation (and band) for its latest point at once.
        let (last_ts, last_value) = sorted[sorted.len() - 1];
        let history = &sorted[..sorted.len() - 1];
        let (series, _) = Series::from_points(history, Some(step))?;
        let y = series.interpolated();
        // A new regime: the points since the change (counting the held-out one).
        // A trend that does not stand out of the noise, or that its latest
        // points no longer follow (a plateau after a ramp, a spike or a
        // level shift), is not extrapolated. A regime older than
        // [`REGIME_KEEP_SECS`] keeps its own window only while it trends.
        let regime = spec.since.and_then(|t| {
            let from = history.partition_point(|s| s.0 < t);
            if sorted.len() - from < MIN_REGIME_POINTS {
                return None;
            }
            let points: Vec<f64> = sorted[from..].iter().map(|s| s.1).collect();
            let trend = recent_trend(&points);
            (now - t < REGIME_KEEP_SECS || trend.is_some()).then_some((t, from, trend))
        });
        let mut provisional = false;
        let trending = regime.is_some_and(|r| r.2.is_some());
        let (model, fitted_points, regime_start) = match regime {
            Some((t, from, trend)) => {
                let (window, _) = Series::from_points(&history[from..], Some(step))?;
                let w = window.interpolated();
                // A new regime has few points: its own trend, unless the rule
                // names a model that can fit them.
                // A trend is fitted on the latest points that show it (the
                // held-out point among them), so a ramp that slows to a creep
                // is extrapolated at the creep's pace.
                let (kind, fit_on) = match spec.kind {
                    ModelKind::Auto => match trend {
                        Some(k) => (
                            ModelKind::Linear,
                            &w[w.len().saturating_sub(k.saturating_sub(1).max(2))..],
                        ),
                        None => {
                            provisional = true;
                            (ModelKind::Naive, &w[..])
                        }
                    },
                    k => (k, &w[..]),
                };
                // On a series with a calendar rhythm, the trend is fitted on
                // the deseasonalised points, so half a day of a daily wave
                // does not bend a leak's slope.
                let seasonal = (spec.kind == ModelKind::Auto && kind == ModelKind::Linear)
                    .then(|| seasonal_line(&y, w.len(), fit_on, step, spec.max_horizon))
                    .flatten();
                let model = match seasonal {
                    Some(m) => m,
                    None => fit_model(kind, fit_on, step, spec.max_horizon)
                        .or_else(|_| fit_model(ModelKind::Linear, &w, step, spec.max_horizon))?,
                };
                (model, fit_on.len(), Some(t))
            }
            None => (
                fit_model(spec.kind, &y, step, spec.max_horizon)?,
                y.len(),
                None,
            ),
        };
        let level = Level::try_from(0.95).expect("a constant level in (0, 1)");
        let first = model.forecast(1, level);
        let degenerate = regime_start.is_none() && first.upper.first() == first.lower.first();
        // A run that the window could not use yet goes on in the new series.
        let (drift_since, drift, far) = match spec.carry {
            Some((t, d, f)) if regime_start.is_none() => (Some(t), d, f),
            _ => (None, 0, 0),
        };
        let mut detector = Detector::new(live_detector_config());
        let mut score = 0.0;
        let mut trail = VecDeque::with_capacity(TRAIL_POINTS);
        let trail_from = history.len().saturating_sub(TRAIL_POINTS);
        for (i, &(t, v)) in history.iter().enumerate() {
            score = detector.update(t, v);
            if i >= trail_from {
                push_trail(&mut trail, t, v, None, score);
            }
        }
        let mut modelled = Self {
            labels,
            model,
            detector,
            step,
            last_ts: series.end(),
            last_value: history[history.len() - 1].1,
            score,
            peak_score: score,
            expected: None,
            fitted_at: now,
            last_seen: now,
            drift,
            far,
            drift_since,
            degenerate,
            regime_start,
            provisional,
            trending,
            floor: band_floor(&y),
            widen: 1.0 + SMALL_SAMPLE / fitted_points.saturating_sub(2).max(1) as f64,
            bounds,
            resets: None,
            behind: 0,
            trail,
        };
        // Already corrected: the correction starts with the next samples.
        modelled.absorb(&[(last_ts, last_value)], level);
        modelled.resets = resets;
        Ok(modelled)
    }

    /// Where the next refit should start its model's window: where the
    /// series left its band when it drifted (the start of a provisional
    /// regime's window when it left that), else the start of the current
    /// regime while it is recent or trends; `None` for the whole history.
    pub fn refit_since(&self, now: i64) -> Option<i64> {
        let drifted = self.drift >= DRIFT_POINTS || self.far >= FAST_DRIFT_POINTS;
        match (self.drift_since, self.regime_start) {
            // A provisional level stands in for a regime whose trend is not
            // known yet: leaving its band is that regime showing its trend,
            // so its window grows rather than restarting at every run.
            (Some(_), Some(r)) if drifted && self.provisional => Some(r),
            (Some(t), _) if drifted => Some(t),
            (_, Some(t)) if now - t < REGIME_KEEP_SECS || self.trending => Some(t),
            _ => None,
        }
    }

    /// How to refit this series: `spec` from where its regime begins (see
    /// [`ModelledSeries::refit_since`]), carrying its run of points outside
    /// the band but for the latest point, which the refit absorbs again.
    pub fn refit_spec(&self, spec: FitSpec, now: i64) -> FitSpec {
        let mut spec = spec.since(self.refit_since(now));
        spec.carry = self
            .drift_since
            .filter(|_| self.drift > 1)
            .map(|t| (t, self.drift - 1, self.far.saturating_sub(1)));
        spec
    }

    /// Start of the window the model was fitted on, when it was fitted on a
    /// new regime rather than the whole history.
    pub fn regime_start(&self) -> Option<i64> {
        self.regime_start
    }

    /// The values the series' forecasts are kept within.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The model's forecast with its band floored, widened for a fit on
    /// few points, and kept within the bounds.
    fn band(&self, horizon: usize, level: Level) -> Forecast {
        let mut f = self.model.forecast(horizon + self.behind, level);
        if self.behind > 0 {
            for v in [&mut f.point, &mut f.lower, &mut f.upper] {
                v.drain(..self.behind);
            }
        }
        for ((p, lo), hi) in f.point.iter().zip(&mut f.lower).zip(&mut f.upper) {
            *lo = p - ((*p - *lo) * self.widen).max(self.floor);
            *hi = p + ((*hi - *p) * self.widen).max(self.floor);
        }
        self.bounds.apply(f)
    }

    /// Absorbs the samples newer than the latest one: scores each, advances
    /// the model, records what was expected. Returns true when the series
    /// should be refitted: the model cannot update, the series drifted out of
    /// its band for [`DRIFT_POINTS`] points, or far out of it for
    /// [`FAST_DRIFT_POINTS`] (see [`ModelledSeries::refit_since`]), or it left
    /// the band of a constant history.
    pub fn absorb(&mut self, samples: &[(i64, f64)], level: Level) -> bool {
        let mut fresh: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|s| s.0 > self.last_ts && s.1.is_finite())
            .collect();
        fresh.sort_by_key(|s| s.0);
        fresh.dedup_by_key(|s| s.0);
        let mut refit = false;
        let mut path = Vec::new();
        self.peak_score = 0.0;
        for (t, raw) in fresh {
            let v = match &mut self.resets {
                Some(r) => r.apply(raw),
                None => raw,
            };
            let steps = ((t - self.last_ts) as f64 / self.step as f64)
                .round()
                .max(1.0) as usize;
            let f = self.band(steps, level);
            let (p, lo, hi) = (f.point[steps - 1], f.lower[steps - 1], f.upper[steps - 1]);
            self.expected = Some((p, lo, hi));
            let excess = (lo - v).max(v - hi);
            if excess > 0.0 {
                self.drift += 1;
                self.drift_since.get_or_insert(t);
                self.far = if excess > (hi - lo) / 2.0 {
                    self.far + 1
                } else {
                    0
                };
                refit |= self.degenerate;
            } else {
                self.drift = 0;
                self.far = 0;
                self.drift_since = None;
            }
            refit |= self.drift >= DRIFT_POINTS || self.far >= FAST_DRIFT_POINTS;
            // Fill skipped steps linearly so the model's clock stays on the grid.
            path.clear();
            for k in 1..steps {
                path.push(self.last_value + (v - self.last_value) * k as f64 / steps as f64);
            }
            path.push(v);
            if !self.model.update(&path) {
                self.behind += path.len();
                refit = true;
            }
            refit |= self.provisional;
            self.score = self.detector.update(t, v);
            self.peak_score = self.peak_score.max(self.score);
            push_trail(&mut self.trail, t, v, Some((lo, hi)), self.score);
            self.last_ts = t;
            self.last_value = v;
        }
        refit
    }

    /// The forecast for the `horizon` steps after the latest point, its band
    /// floored and widened as [`ModelledSeries::fit`] says, within the bounds.
    pub fn forecast(&self, horizon: usize, level: Level) -> Forecast {
        self.band(horizon, level)
    }

    /// The latest points with their bands and scores, oldest first.
    pub fn trail(&self) -> impl ExactSizeIterator<Item = &TrailPoint> {
        self.trail.iter()
    }

    /// Keeps the trail of `old`, the model this one replaces, where it has
    /// points: their bands are the ones they were scored against live,
    /// which a refit's replay of the history cannot give back.
    pub fn inherit_trail(&mut self, old: &ModelledSeries) {
        let Some(last_old) = old.trail.back().map(|p| p.t) else {
            return;
        };
        let mut trail = old.trail.clone();
        trail.extend(self.trail.iter().filter(|p| p.t > last_old));
        let excess = trail.len().saturating_sub(TRAIL_POINTS);
        trail.drain(..excess);
        self.trail = trail;
    }

    /// The model's name.
    pub fn model_name(&self) -> &'static str {
        self.model.model.name()
    }

    /// Seconds between points.
    pub fn step(&self) -> i64 {
        self.step
    }

    /// Approximate memory of the model, calibration and labels, in bytes. It
    /// leaves out the detector's heap (its daily and weekly profiles, ~7 KiB)
    /// and the exported metric families: the live bench measures the whole
    /// cost by RSS (16 KiB per series).
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.model.size_bytes()
            + self.trail.capacity() * std::mem::size_of::<TrailPoint>()
            + self
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
    }
}

/// Appends a point to a trail of at most [`TRAIL_POINTS`].
fn push_trail(
    trail: &mut VecDeque<TrailPoint>,
    t: i64,
    v: f64,
    band: Option<(f64, f64)>,
    score: f64,
) {
    if trail.len() == TRAIL_POINTS {
        trail.pop_front();
    }
    let (lower, upper) = band.unwrap_or((f64::NAN, f64::NAN));
    trail.push_back(TrailPoint {
        t,
        value: v as f32,
        lower: lower as f32,
        upper: upper as f32,
        score: score as f32,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use prognos_models::synthetic::{Shape, series};

    fn samples(n: usize, from: usize) -> Vec<(i64, f64)> {
        let y = series(&Shape::default(), 1_700_000_000, n, 3);
        (from..n)
            .map(|i| (1_700_000_000 + 300 * i as i64, y[i]))
            .collect()
    }

    #[test]
    fn the_trail_keeps_the_latest_points_with_their_bands_and_survives_a_refit() {
        let level = Level::try_from(0.95).unwrap();
        let spec = FitSpec::new(300, ModelKind::Auto, 12);
        let all = samples(400, 0);
        let mut s = ModelledSeries::fit(Labels::new(), &all[..300], &spec, 0).unwrap();
        // Fitted: the history's scores, no band; the held-out point has one.
        assert_eq!(s.trail().len(), TRAIL_POINTS);
        let first: Vec<_> = s.trail().copied().collect();
        assert!(first[0].lower.is_nan());
        let last = first[TRAIL_POINTS - 1];
        assert_eq!(last.t, all[299].0);
        assert!(last.lower <= last.upper && last.lower.is_finite());
        s.absorb(&all[300..310], level);
        let trail: Vec<_> = s.trail().copied().collect();
        assert_eq!(trail.len(), TRAIL_POINTS);
        assert_eq!(trail[TRAIL_POINTS - 1].t, all[309].0);
        assert!(
            trail[TRAIL_POINTS - 10..]
                .iter()
                .all(|p| p.upper.is_finite())
        );
        // A refit replays the history without bands; the live ones are kept.
        let mut refit = ModelledSeries::fit(Labels::new(), &all[..320], &spec, 0).unwrap();
        refit.inherit_trail(&s);
        let kept: Vec<_> = refit.trail().copied().collect();
        assert_eq!(kept.len(), TRAIL_POINTS);
        assert_eq!(kept[TRAIL_POINTS - 1].t, all[319].0);
        assert!(kept.windows(2).all(|w| w[0].t < w[1].t));
        // Points the old model scored live keep their bands; those only the
        // refit replayed (310–318 here, never absorbed live) have none; the
        // refit's held-out last point has its own.
        let live_until = all[309].0;
        assert!(
            kept[TRAIL_POINTS - 20..]
                .iter()
                .filter(|p| p.t <= live_until)
                .all(|p| p.upper.is_finite())
        );
        assert!(
            kept.iter()
                .filter(|p| p.t > live_until && p.t < all[319].0)
                .all(|p| p.upper.is_nan())
        );
        assert!(kept[TRAIL_POINTS - 1].upper.is_finite());
    }

    #[test]
    fn a_line_that_cannot_update_online_forecasts_from_the_latest_point() {
        let level = Level::try_from(0.95).unwrap();
        let line: Vec<(i64, f64)> = (0..10).map(|i| (60 * i, 100.0 + 5.0 * i as f64)).collect();
        let mut s = ModelledSeries::fit(
            Labels::new(),
            &line,
            &FitSpec::new(60, ModelKind::Linear, 5),
            0,
        )
        .unwrap();
        // The held-out point (145 at t = 540) was expected, and the forecast
        // starts one step after it, not at it.
        let (expected, _, _) = s.expected.unwrap();
        assert!((expected - 145.0).abs() < 1e-9, "{expected}");
        assert!((s.forecast(2, level).point[0] - 150.0).abs() < 1e-9);
        // Two more points, the second after a missed scrape.
        s.absorb(&[(600, 150.0), (720, 160.0)], level);
        let (expected, _, _) = s.expected.unwrap();
        assert!((expected - 160.0).abs() < 1e-9, "{expected}");
        let f = s.forecast(2, level);
        assert!((f.point[0] - 165.0).abs() < 1e-9, "{:?}", f.point);
        assert!((f.point[1] - 170.0).abs() < 1e-9, "{:?}", f.point);
    }

    #[test]
    fn fits_then_absorbs_new_points_with_expectations() {
        let level = Level::try_from(0.95).unwrap();
        let all = samples(2100, 0);
        let mut s = ModelledSeries::fit(
            Labels::new(),
            &all[..2016],
            &FitSpec::new(300, ModelKind::Auto, 24),
            0,
        )
        .unwrap();
        assert_eq!(s.last_ts, all[2015].0);
        assert!(
            s.expected.is_some(),
            "the held-out last point has an expectation"
        );
        let refit = s.absorb(&all[2000..2030], level);
        assert_eq!(s.last_ts, all[2029].0);
        assert!(!refit, "a steady series needs no refit");
        let (p, lo, hi) = s.expected.unwrap();
        assert!(lo <= p && p <= hi && (p - all[2029].1).abs() < 30.0);
        assert!(s.size_bytes() < 64 * 1024);
    }

    #[test]
    fn a_level_shift_asks_for_a_refit() {
        let level = Level::try_from(0.95).unwrap();
        let mut all = samples(2100, 0);
        for s in &mut all[2020..] {
            s.1 += 1000.0;
        }
        let mut s = ModelledSeries::fit(
            Labels::new(),
            &all[..2016],
            &FitSpec::new(300, ModelKind::Mstl, 24),
            0,
        )
        .unwrap();
        assert!(s.absorb(&all[2016..2040], level));
        assert!(s.peak_score > 0.5, "the shift scores {}", s.peak_score);
    }

    #[test]
    fn counter_resets_are_corrected_not_taken_for_a_collapse() {
        let level = Level::try_from(0.95).unwrap();
        let labels: Labels = [("__name__".to_string(), "http_requests_total".to_string())].into();
        // About 10 requests a step, with restarts at steps 500 and 1030.
        let inc = |i: i64| 10.0 + ((i * 7919) % 7) as f64;
        let raw = |i: i64| {
            let from = if i >= 1030 {
                1030
            } else if i >= 500 {
                500
            } else {
                0
            };
            (i * 300, (from..=i).map(inc).sum::<f64>() - inc(from))
        };
        let truth = |i: i64| (1..=i).map(inc).sum::<f64>();
        let history: Vec<(i64, f64)> = (0..1000).map(raw).collect();
        let mut s =
            ModelledSeries::fit(labels, &history, &FitSpec::new(300, ModelKind::Ets, 12), 0)
                .unwrap();
        // Like rate(), a reset loses that one step's increase.
        assert!(
            (s.last_value - (truth(999) - inc(500))).abs() < 1e-6,
            "{}",
            s.last_value
        );
        let next: Vec<(i64, f64)> = (1000..1060).map(raw).collect();
        assert!(!s.absorb(&next, level), "a reset is no drift");
        let want = truth(1059) - inc(500) - inc(1030);
        assert!(
            (s.last_value - want).abs() < 1e-6,
            "{} vs {want}",
            s.last_value
        );
        assert!(s.forecast(12, level).point[11] > s.last_value);
        assert!(
            s.peak_score < 0.5,
            "a reset is no anomaly: {}",
            s.peak_score
        );
        assert!(!is_raw_counter(
            &[("job".to_string(), "x".to_string())].into()
        ));
    }

    #[test]
    fn gaps_and_nan_do_not_break_it() {
        let level = Level::try_from(0.95).unwrap();
        let all = samples(2100, 0);
        let mut s = ModelledSeries::fit(
            Labels::new(),
            &all[..2016],
            &FitSpec::new(300, ModelKind::Ets, 12),
            0,
        )
        .unwrap();
        let mut next = vec![all[2050], (all[2051].0, f64::NAN), all[2060]];
        next.push((all[2060].0, 1.0)); // a repeated timestamp is ignored
        s.absorb(&next, level);
        assert_eq!(s.last_ts, all[2060].0);
        assert!(
            ModelledSeries::fit(
                Labels::new(),
                &[(0, f64::NAN)],
                &FitSpec::new(300, ModelKind::Auto, 12),
                0
            )
            .is_err()
        );
    }

    /// A deterministic noise stream in [-1, 1] (xorshift).
    fn noise(n: usize, mut seed: u64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    /// A series run the way the scheduler runs it: fitted on its history,
    /// then each new point absorbed; a refit it asks for (or the periodic
    /// one) fits again on the rule's history up to that point, from where
    /// the series says its regime begins.
    struct Live {
        spec: FitSpec,
        history_secs: i64,
        all: Vec<(i64, f64)>,
        series: ModelledSeries,
        refits: usize,
    }

    impl Live {
        fn start(spec: FitSpec, history_secs: i64, all: Vec<(i64, f64)>) -> Self {
            let now = all[all.len() - 1].0;
            let series = ModelledSeries::fit(Labels::new(), &all, &spec, now).unwrap();
            Self {
                spec,
                history_secs,
                all,
                series,
                refits: 0,
            }
        }

        fn push(&mut self, point: (i64, f64)) {
            let level = Level::try_from(0.95).unwrap();
            self.all.push(point);
            let now = point.0;
            let drifted = self.series.absorb(&[point], level);
            if drifted || now - self.series.fitted_at >= crate::scheduler::REFIT_EVERY_SECS {
                let from = self.all.partition_point(|s| s.0 < now - self.history_secs);
                let spec = self.series.refit_spec(self.spec, now);
                self.series =
                    ModelledSeries::fit(Labels::new(), &self.all[from..], &spec, now).unwrap();
                self.refits += 1;
            }
        }

        /// Whether the point forecast crosses `threshold` within `steps`.
        fn crosses(&self, threshold: f64, steps: usize) -> bool {
            let f = self.series.forecast(steps, Level::try_from(0.95).unwrap());
            f.point.iter().any(|&v| v >= threshold)
        }
    }

    #[test]
    fn a_stalled_consumer_is_forecast_over_its_threshold_before_it_gets_there() {
        // rules/queues.yml MesQueueBacklogSoon: history 3d, step 1m, auto,
        // horizons [15m, 1h], forecast {threshold: 10000, within: 1h}, for: 5m.
        let (step, t0) = (60, 1_700_000_000);
        let spec = FitSpec::new(step, ModelKind::Auto, 60);
        let history: Vec<(i64, f64)> = (0..3 * 1440).map(|i| (t0 + i * step, 0.0)).collect();
        let onset = t0 + 3 * 1440 * step;
        let mut live = Live::start(spec, 3 * 86_400, history);
        assert!(!live.crosses(10_000.0, 60), "no alarm on an idle queue");
        let f = live.series.forecast(60, Level::try_from(0.95).unwrap());
        assert!(f.upper[0] > f.lower[0], "the band of zeros has a width");
        let jitter = noise(20, 7);
        let mut holds_from = None;
        for k in 1..=20 {
            let v = 1000.0 * k as f64 + 40.0 * jitter[k as usize - 1];
            if v >= 10_000.0 {
                break;
            }
            live.push((onset + (k - 1) * step, v));
            let holds = live.crosses(10_000.0, 60);
            match holds_from {
                None if holds => holds_from = Some(k),
                Some(from) => assert!(holds, "pending since minute {from}, dropped at {k}"),
                None => {}
            }
            let f = live.series.forecast(60, Level::try_from(0.95).unwrap());
            assert!(
                f.lower.iter().all(|&v| v >= 0.0),
                "a queue is never negative"
            );
        }
        let from = holds_from.expect("the forecast crosses 10000 before the queue does");
        // Pending at minute `from`, firing 5 minutes later: before 10,000.
        assert!(from + 5 < 10, "pending only at minute {from}");
        assert_eq!(live.series.model_name(), "linear");
        assert!(live.series.regime_start().is_some_and(|t| t >= onset));
    }

    #[test]
    fn a_memory_leak_gets_a_rising_forecast_within_hours() {
        // rules/compute.yml ApiMemoryHighSoon: history 7d, step 5m, horizons
        // up to 1d, time_to_threshold less_than 1d.
        let (step, t0) = (300, 1_700_000_000);
        let spec = FitSpec::new(step, ModelKind::Auto, 288);
        let n = 7 * 288;
        let jitter = noise(n + 288, 11);
        let value = |i: usize| {
            let leak = i.saturating_sub(n) as f64 * 2e6; // 2 MB per 5 minutes
            800e6 + 20e6 * jitter[i] + leak
        };
        let history: Vec<(i64, f64)> = (0..n).map(|i| (t0 + i as i64 * step, value(i))).collect();
        let mut live = Live::start(spec, 7 * 86_400, history);
        // Six hours into the leak (+144 MB, several times the noise).
        for i in n..n + 72 {
            live.push((t0 + i as i64 * step, value(i)));
        }
        let f = live.series.forecast(288, Level::try_from(0.95).unwrap());
        let growth = f.point[287] - live.series.last_value;
        assert!(
            growth > 0.5 * 288.0 * 2e6,
            "a day ahead it expects +{:.0} MB ({}), the leak makes +576 MB",
            growth / 1e6,
            live.series.model_name()
        );
        assert!(live.refits > 0);
    }

    #[test]
    fn a_leak_on_a_daily_rhythm_keeps_its_slope_for_a_day() {
        // ApiMemoryHighSoon again, on memory with a daily wave of ±30 MB:
        // the leak's trend outlives the 6 h after which a quiet regime is
        // refitted on the whole history, and the wave does not bend it.
        let (step, t0) = (300, 1_700_006_400);
        let spec = FitSpec::new(step, ModelKind::Auto, 288);
        let n = 7 * 288;
        let jitter = noise(n + 288, 13);
        let value = |i: usize| {
            let wave = 30e6 * (std::f64::consts::TAU * i as f64 / 288.0).sin();
            let leak = i.saturating_sub(n) as f64 * 3.3e6; // 40 MB an hour
            600e6 + wave + 3e6 * jitter[i] + leak
        };
        let history: Vec<(i64, f64)> = (0..n).map(|i| (t0 + i as i64 * step, value(i))).collect();
        let mut live = Live::start(spec, 7 * 86_400, history);
        let level = Level::try_from(0.95).unwrap();
        for i in n..n + 16 * 12 {
            live.push((t0 + i as i64 * step, value(i)));
            if i >= n + 8 * 12 {
                // From 8 hours on: a day ahead, the leak's 950 MB ± 15 %.
                let f = live.series.forecast(288, level);
                let growth = f.point[287] - live.series.last_value;
                assert!(
                    (0.85 * 950e6..1.15 * 950e6).contains(&growth),
                    "{:.1} h into the leak, a day ahead expects +{:.0} MB ({})",
                    (i - n) as f64 / 12.0,
                    growth / 1e6,
                    live.series.model_name()
                );
            }
        }
        assert!(
            live.series
                .regime_start()
                .is_some_and(|t| t >= t0 + n as i64 * step - 3600)
        );
    }

    #[test]
    fn a_database_growth_spurt_gets_its_new_slope() {
        // rules/storage.yml ShopDbFullSoon: history 7d, step 5m, auto,
        // time_to_threshold less_than 3d (looks 6d ahead).
        let (step, t0) = (300, 1_700_000_000);
        let spec = FitSpec::new(step, ModelKind::Auto, 1728);
        let n = 7 * 288;
        let jitter = noise(n + 288, 5);
        // 1 MB per step, then 50 MB per step (a bulk import).
        let value = |i: usize| {
            let base = 40e9 + 1e6 * i as f64 + 2e6 * jitter[i];
            base + i.saturating_sub(n) as f64 * 49e6
        };
        let history: Vec<(i64, f64)> = (0..n).map(|i| (t0 + i as i64 * step, value(i))).collect();
        let mut live = Live::start(spec, 7 * 86_400, history);
        for i in n..n + 12 {
            live.push((t0 + i as i64 * step, value(i)));
        }
        let f = live.series.forecast(12, Level::try_from(0.95).unwrap());
        let slope = (f.point[11] - live.series.last_value) / 12.0;
        assert!(
            (35e6..65e6).contains(&slope),
            "an hour into the spurt it expects {:.1} MB a step ({})",
            slope / 1e6,
            live.series.model_name()
        );
    }

    #[test]
    fn a_constant_series_keeps_a_band_and_is_refitted_when_it_moves() {
        let level = Level::try_from(0.95).unwrap();
        let (step, t0) = (60, 0);
        let zeros: Vec<(i64, f64)> = (0..500).map(|i| (t0 + i * step, 0.0)).collect();
        let spec = FitSpec::new(step, ModelKind::Auto, 15);
        let mut s = ModelledSeries::fit(Labels::new(), &zeros, &spec, t0).unwrap();
        let f = s.forecast(15, level);
        assert!(f.upper.iter().zip(&f.lower).all(|(hi, lo)| hi > lo));
        let mut refit_at = None;
        for k in 0..FAST_DRIFT_POINTS as i64 {
            if s.absorb(&[(t0 + (500 + k) * step, 5.0)], level) {
                refit_at.get_or_insert(k + 1);
            }
            let (_, lo, hi) = s.expected.unwrap();
            assert!(hi > lo, "the band around the forecast has a width");
        }
        assert_eq!(refit_at, Some(1), "a constant history asks at once");
        // Refitted after the first 5, as the scheduler does: 5 is now expected.
        let mut all = zeros;
        all.push((t0 + 500 * step, 5.0));
        let mut s = ModelledSeries::fit(Labels::new(), &all, &spec, t0 + 500 * step).unwrap();
        assert!(
            !s.absorb(&[(t0 + 501 * step, 5.0)], level),
            "5 again is no drift"
        );
        let (p, lo, hi) = s.expected.unwrap();
        assert!(
            (p - 5.0).abs() < 1e-6 && lo < 5.0 && hi > 5.0,
            "{p} [{lo}, {hi}]"
        );
    }

    #[test]
    fn forecasts_of_a_non_negative_series_never_go_below_zero() {
        let level = Level::try_from(0.95).unwrap();
        // CPU % falling steeply toward the end of a week: a trend model
        // extrapolates it a day ahead far below zero.
        let jitter = noise(2016, 3);
        let cpu: Vec<(i64, f64)> = (0..2016)
            .map(|i| {
                let fall = (i as f64 - 1900.0).max(0.0) * 0.3;
                (i * 300, (40.0 - fall + 2.0 * jitter[i as usize]).max(0.0))
            })
            .collect();
        for kind in [ModelKind::Linear, ModelKind::Ets, ModelKind::Auto] {
            let spec = FitSpec::new(300, kind, 288);
            let s = ModelledSeries::fit(Labels::new(), &cpu, &spec, 0).unwrap();
            assert_eq!(s.bounds(), Bounds::NON_NEGATIVE);
            let f = s.forecast(288, level);
            assert!(
                f.point.iter().chain(&f.lower).all(|&v| v >= 0.0),
                "{kind}: {:?}",
                &f.point[280..]
            );
            assert!(s.expected.is_some_and(|(p, lo, _)| p >= 0.0 && lo >= 0.0));
        }
        // A series that has been negative keeps its negative forecasts.
        let falling: Vec<(i64, f64)> = (0..300).map(|i| (i * 300, 10.0 - i as f64)).collect();
        let spec = FitSpec::new(300, ModelKind::Linear, 24);
        let s = ModelledSeries::fit(Labels::new(), &falling, &spec, 0).unwrap();
        assert_eq!(s.bounds(), Bounds::NONE);
        assert!(s.forecast(24, level).point[23] < -300.0);
    }

    #[test]
    fn the_rules_bounds_cap_forecasts_and_expectations() {
        let level = Level::try_from(0.95).unwrap();
        let rising: Vec<(i64, f64)> = (0..300).map(|i| (i * 300, 50.0 + 0.1 * i as f64)).collect();
        let bounds = Bounds {
            lower: Some(0.0),
            upper: Some(100.0),
        };
        let spec = FitSpec::new(300, ModelKind::Linear, 288).bounds(bounds);
        let s = ModelledSeries::fit(Labels::new(), &rising, &spec, 0).unwrap();
        let f = s.forecast(288, level);
        assert!(f.point.iter().chain(&f.upper).all(|&v| v <= 100.0));
        assert_eq!(f.point[287], 100.0);
        assert!(
            s.expected
                .is_some_and(|(p, _, hi)| p <= 100.0 && hi <= 100.0)
        );
    }
}
