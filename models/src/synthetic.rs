//! Deterministic synthetic metric series for tests, benchmarks and demos:
//! daily and weekly seasons, trend, noise and injected incidents, all from a
//! seed so every run sees the same numbers.

/// A small deterministic generator (xorshift64*), enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a fixed non-zero seed).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The shape of a synthetic series.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Seconds between points.
    pub step_secs: i64,
    /// Mean level.
    pub level: f64,
    /// Amplitude of the daily cycle (peak in the afternoon).
    pub daily: f64,
    /// Weekend dip as a fraction of the daily amplitude.
    pub weekend: f64,
    /// Change per day.
    pub trend_per_day: f64,
    /// Standard deviation of the noise.
    pub noise: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            step_secs: 300,
            level: 100.0,
            daily: 30.0,
            weekend: 0.5,
            trend_per_day: 1.0,
            noise: 3.0,
        }
    }
}

/// `n` values of `shape` starting at Unix time `start`, with noise from `seed`.
pub fn series(shape: &Shape, start: i64, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let t = start + i as i64 * shape.step_secs;
            let day_phase = (t.rem_euclid(86_400)) as f64 / 86_400.0;
            let weekday = (t.div_euclid(86_400) + 4).rem_euclid(7); // 1970-01-01 was a Thursday
            let daily = shape.daily * (std::f64::consts::TAU * (day_phase - 0.375)).sin();
            let weekend = if weekday >= 5 {
                -shape.weekend * shape.daily
            } else {
                0.0
            };
            let trend = shape.trend_per_day * (t - start) as f64 / 86_400.0;
            shape.level + daily + weekend + trend + shape.noise * rng.normal()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_series() {
        let s = Shape::default();
        assert_eq!(series(&s, 0, 100, 7), series(&s, 0, 100, 7));
        assert_ne!(series(&s, 0, 100, 7), series(&s, 0, 100, 8));
    }

    #[test]
    fn uniform_stays_in_unit_interval() {
        let mut r = Rng::new(0);
        assert!(
            (0..10_000)
                .map(|_| r.uniform())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
