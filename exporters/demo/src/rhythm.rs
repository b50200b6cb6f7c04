//! The traffic rhythm of the load generator: a daily curve (quiet at night,
//! peak in the afternoon) times a weekly one (weekends quieter), on a
//! simulated clock that can run faster than real time.

use std::f64::consts::TAU;
use std::time::Instant;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

/// Share of the peak rate left in the quietest hour of the night.
pub const NIGHT_FLOOR: f64 = 0.12;
/// Hour of the day (UTC of the simulated clock) with the least traffic.
pub const QUIETEST_HOUR: f64 = 3.0;
/// Weekend traffic relative to a weekday at the same hour (~40% lower).
pub const WEEKEND_FACTOR: f64 = 0.6;

/// Daily factor in `[NIGHT_FLOOR, 1]` for `hour` in `[0, 24)`: lowest at
/// [`QUIETEST_HOUR`], highest 12 hours later (15:00), smooth in between.
pub fn daily(hour: f64) -> f64 {
    let phase = (hour - QUIETEST_HOUR) / 24.0 * TAU;
    // 0 at the quietest hour, 1 at the peak; the power keeps the night long
    // and the afternoon peak pronounced.
    let s = ((1.0 - phase.cos()) / 2.0).clamp(0.0, 1.0).powf(1.5);
    NIGHT_FLOOR + (1.0 - NIGHT_FLOOR) * s
}

/// Weekly factor: [`WEEKEND_FACTOR`] on Saturday and Sunday, 1 otherwise.
pub fn weekly(day: Weekday) -> f64 {
    match day {
        Weekday::Sat | Weekday::Sun => WEEKEND_FACTOR,
        _ => 1.0,
    }
}

/// Traffic at simulated moment `at`, as a share of the peak rate, in `(0, 1]`.
pub fn factor(at: DateTime<Utc>) -> f64 {
    let hour =
        f64::from(at.hour()) + f64::from(at.minute()) / 60.0 + f64::from(at.second()) / 3600.0;
    daily(hour) * weekly(at.weekday())
}

/// A clock on which a simulated day passes `scale` times faster than a real one.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    real_start: Instant,
    sim_start: DateTime<Utc>,
    scale: f64,
}

impl SimClock {
    /// Starts the simulated clock at `sim_start` now.
    pub fn new(sim_start: DateTime<Utc>, scale: f64, real_start: Instant) -> Self {
        Self {
            real_start,
            sim_start,
            scale,
        }
    }

    /// The simulated time at real instant `real`.
    pub fn at(&self, real: Instant) -> DateTime<Utc> {
        let elapsed = real
            .saturating_duration_since(self.real_start)
            .as_secs_f64()
            * self.scale;
        let ms = (elapsed * 1000.0).min(i64::MAX as f64 / 2.0) as i64;
        self.sim_start + chrono::Duration::milliseconds(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        // 2024-06-03 is a Monday.
        Utc.with_ymd_and_hms(2024, 6, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn night_is_quieter_than_afternoon() {
        assert!(daily(3.0) < 0.2, "{}", daily(3.0));
        assert!((daily(15.0) - 1.0).abs() < 1e-9);
        assert!(daily(2.0) < daily(10.0));
        assert!(daily(23.0) < daily(16.0));
        for h in 0..24 {
            let d = daily(f64::from(h));
            assert!((NIGHT_FLOOR - 1e-9..=1.0 + 1e-9).contains(&d), "{h}: {d}");
            assert!(d <= daily(15.0) + 1e-12);
        }
        assert!(factor(at(3, 3)) * 4.0 < factor(at(3, 15)));
    }

    #[test]
    fn weekend_is_quieter_than_weekday() {
        // Monday 2024-06-03 vs Saturday 2024-06-08 and Sunday 2024-06-09.
        assert_eq!(at(3, 0).weekday(), Weekday::Mon);
        for hour in [3, 9, 15, 21] {
            let weekday = factor(at(5, hour));
            for weekend in [factor(at(8, hour)), factor(at(9, hour))] {
                assert!((weekend / weekday - WEEKEND_FACTOR).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn sim_clock_runs_scaled() {
        let real = Instant::now();
        let clock = SimClock::new(at(3, 0), 1440.0, real);
        // One real minute is a simulated day at scale 1440.
        let later = clock.at(real + Duration::from_secs(60));
        assert_eq!(later, at(4, 0));
        assert_eq!(clock.at(real), at(3, 0));
    }
}
