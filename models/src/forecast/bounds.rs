//! What values a series can take: a forecast or band never leaves them (a
//! queue depth is never negative, a CPU percentage never above 100).

use super::Forecast;

/// Inclusive limits on a series' values; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds {
    /// Smallest possible value, such as 0 for sizes, counts and rates.
    pub lower: Option<f64>,
    /// Largest possible value, such as 100 for a percentage.
    pub upper: Option<f64>,
}

impl Bounds {
    /// No limit on either side.
    pub const NONE: Bounds = Bounds {
        lower: None,
        upper: None,
    };

    /// Never below zero.
    pub const NON_NEGATIVE: Bounds = Bounds {
        lower: Some(0.0),
        upper: None,
    };

    /// `v` moved inside the bounds (NaN stays NaN).
    pub fn clamp(&self, v: f64) -> f64 {
        let v = match self.lower {
            Some(lo) if v < lo => lo,
            _ => v,
        };
        match self.upper {
            Some(hi) if v > hi => hi,
            _ => v,
        }
    }

    /// Whether neither side is bounded.
    pub fn is_none(&self) -> bool {
        self.lower.is_none() && self.upper.is_none()
    }

    /// `forecast` with its path and band moved inside the bounds.
    pub fn apply(&self, mut forecast: Forecast) -> Forecast {
        if self.is_none() {
            return forecast;
        }
        for v in forecast
            .point
            .iter_mut()
            .chain(forecast.lower.iter_mut())
            .chain(forecast.upper.iter_mut())
        {
            *v = self.clamp(*v);
        }
        forecast
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_path_and_band_into_the_bounds() {
        let b = Bounds {
            lower: Some(0.0),
            upper: Some(100.0),
        };
        let f = Forecast {
            point: vec![-5.0, 50.0, 120.0],
            lower: vec![-20.0, 40.0, 110.0],
            upper: vec![10.0, 60.0, 130.0],
            level: 0.95,
        };
        let f = b.apply(f);
        assert_eq!(f.point, vec![0.0, 50.0, 100.0]);
        assert_eq!(f.lower, vec![0.0, 40.0, 100.0]);
        assert_eq!(f.upper, vec![10.0, 60.0, 100.0]);
        assert!(b.clamp(f64::NAN).is_nan());
        assert_eq!(Bounds::NONE.clamp(-1e300), -1e300);
    }
}
