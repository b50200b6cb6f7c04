//! Small streaming statistics the detector is built from: a robust scale, a fixed-size ring of
//! recent values, the inferred sampling step, and the normal tail probability.

/// Exponentially weighted mean absolute deviation of residuals, updated with residuals clipped at
/// `clip` times the current scale so one spike does not inflate it.
#[derive(Debug, Clone)]
pub(crate) struct RobustScale {
    mad: f64,
    n: usize,
    alpha: f64,
    clip: f64,
}

impl RobustScale {
    pub(crate) fn new(alpha: f64, clip: f64) -> Self {
        Self {
            mad: 0.0,
            n: 0,
            alpha,
            clip,
        }
    }

    /// Current scale (mean absolute residual); 0 before any update.
    pub(crate) fn get(&self) -> f64 {
        self.mad
    }

    pub(crate) fn update(&mut self, residual: f64) {
        let r = residual.abs();
        self.n += 1;
        // Average plainly while young so the first residuals are not under-weighted.
        let a = self.alpha.max(1.0 / self.n as f64);
        let r = if self.n > 8 && self.mad > 0.0 {
            r.min(self.clip * self.mad)
        } else {
            r
        };
        self.mad += a * (r - self.mad);
    }
}

/// The last `N` values, oldest overwritten first.
#[derive(Debug, Clone)]
pub(crate) struct Ring<const N: usize> {
    buf: [f64; N],
    next: usize,
    len: usize,
    sum: f64,
}

impl<const N: usize> Ring<N> {
    pub(crate) fn new() -> Self {
        Self {
            buf: [0.0; N],
            next: 0,
            len: 0,
            sum: 0.0,
        }
    }

    pub(crate) fn push(&mut self, x: f64) {
        if self.len == N {
            self.sum -= self.buf[self.next];
        } else {
            self.len += 1;
        }
        self.buf[self.next] = x;
        self.sum += x;
        self.next = (self.next + 1) % N;
        // Refresh the running sum now and then so rounding cannot drift.
        if self.next == 0 {
            self.sum = self.buf[..self.len].iter().sum();
        }
    }

    /// Mean of the last `k ≤ N` values (of all if fewer were pushed).
    pub(crate) fn mean_last(&self, k: usize) -> f64 {
        let k = k.min(self.len);
        if k == 0 {
            return 0.0;
        }
        if k == self.len {
            return self.sum / k as f64;
        }
        let mut s = 0.0;
        for j in 1..=k {
            s += self.buf[(self.next + N - j) % N];
        }
        s / k as f64
    }

    /// The value pushed `lag` pushes ago (1 = the last), if there is one.
    pub(crate) fn lag(&self, lag: usize) -> Option<f64> {
        (lag >= 1 && lag <= self.len).then(|| self.buf[(self.next + N - lag) % N])
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Infers the sampling step as the median of the first few positive timestamp deltas, then keeps
/// it: gaps later on do not change it.
#[derive(Debug, Clone)]
pub(crate) struct StepEstimator {
    deltas: [i64; Self::SAMPLES],
    len: usize,
    step: Option<i64>,
}

impl StepEstimator {
    const SAMPLES: usize = 15;

    pub(crate) fn new() -> Self {
        Self {
            deltas: [0; Self::SAMPLES],
            len: 0,
            step: None,
        }
    }

    pub(crate) fn step(&self) -> Option<i64> {
        self.step
    }

    pub(crate) fn observe(&mut self, delta: i64) {
        if self.step.is_some() || delta <= 0 {
            return;
        }
        self.deltas[self.len] = delta;
        self.len += 1;
        if self.len == Self::SAMPLES {
            let mut d = self.deltas;
            d.sort_unstable();
            self.step = Some(d[Self::SAMPLES / 2]);
        }
    }
}

/// Upper tail probability of the standard normal, `Q(z) = P(Z > z)`, with relative error below
/// 1.2e-7 (Numerical Recipes' Chebyshev fit of erfc).
pub(crate) fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_tail(1.96) - 0.024_997_9).abs() < 1e-6);
        assert!((normal_tail(-1.96) - 0.975_002_1).abs() < 1e-6);
        assert!((normal_tail(5.0) / 2.866_515_7e-7 - 1.0).abs() < 1e-5);
    }

    #[test]
    fn ring_keeps_the_last_values() {
        let mut r = Ring::<4>::new();
        for x in 1..=6 {
            r.push(x as f64);
        }
        assert_eq!(r.len(), 4);
        assert_eq!(r.lag(1), Some(6.0));
        assert_eq!(r.lag(4), Some(3.0));
        assert_eq!(r.lag(5), None);
        assert!((r.mean_last(2) - 5.5).abs() < 1e-12);
        assert!((r.mean_last(10) - 4.5).abs() < 1e-12);
    }

    #[test]
    fn step_is_the_median_delta_despite_gaps() {
        let mut s = StepEstimator::new();
        for i in 0..20 {
            s.observe(if i % 5 == 0 { 3600 } else { 300 });
        }
        assert_eq!(s.step(), Some(300));
    }
}
