//! Calendar-phase profiles: a value per time-of-day (or time-of-week) bin, indexed by the
//! timestamp itself so gaps in the data never shift the phase. Bins are linearly interpolated, so
//! a smooth daily curve needs only a few dozen bins.

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;
/// Seconds in a week.
pub(crate) const WEEK: i64 = 7 * DAY;

/// An additive seasonal profile over a period of `period` seconds in `bins` bins.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    period: i64,
    values: Vec<f64>,
    weights: Vec<f64>,
    alpha: f64,
}

impl Profile {
    /// A profile of `bins` (≥ 1) bins over `period` seconds, learning at rate `alpha`.
    pub(crate) fn new(period: i64, bins: usize, alpha: f64) -> Self {
        let bins = bins.max(1);
        Self {
            period,
            values: vec![0.0; bins],
            weights: vec![0.0; bins],
            alpha,
        }
    }

    /// The two bins around `ts` and the weight of the second.
    fn locate(&self, ts: i64) -> (usize, usize, f64) {
        let n = self.values.len();
        let phase = ts.rem_euclid(self.period) as f64 / self.period as f64;
        let pos = phase * n as f64 - 0.5;
        let floor = pos.floor();
        let frac = pos - floor;
        let i0 = (floor as i64).rem_euclid(n as i64) as usize;
        (i0, (i0 + 1) % n, frac)
    }

    /// The profile's value at `ts`, and how much data stands behind it (bin updates).
    pub(crate) fn at(&self, ts: i64) -> (f64, f64) {
        let (i0, i1, f) = self.locate(ts);
        let v = (1.0 - f) * self.values[i0] + f * self.values[i1];
        let w = self.weights[i0].min(self.weights[i1]);
        (v, w)
    }

    /// Moves the profile at `ts` towards `target`.
    pub(crate) fn update(&mut self, ts: i64, target: f64) {
        let (i0, i1, f) = self.locate(ts);
        let pred = (1.0 - f) * self.values[i0] + f * self.values[i1];
        let err = target - pred;
        for (i, share) in [(i0, 1.0 - f), (i1, f)] {
            self.weights[i] += share;
            let a = self.alpha.max(1.0 / self.weights[i].max(1.0));
            self.values[i] += share * a * err;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_daily_curve_across_gaps() {
        let mut p = Profile::new(DAY, 48, 0.2);
        let f = |t: i64| (t as f64 / DAY as f64 * std::f64::consts::TAU).sin();
        // Three days at 5 minutes with a 7-hour gap each day.
        for t in (0..3 * DAY).step_by(300).filter(|t| t % DAY < 17 * 3600) {
            p.update(t, f(t));
        }
        for t in (3 * DAY..4 * DAY - 7 * 3600).step_by(900) {
            let (v, w) = p.at(t);
            assert!(
                w > 0.5 && (v - f(t)).abs() < 0.1,
                "t={t} v={v} want {}",
                f(t)
            );
        }
    }
}
