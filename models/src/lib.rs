//! prognos models: pure, synchronous time-series code with no I/O and no clock.
//!
//! - [`series`]: a regular-step series with gaps, built from irregular input.
//! - [`forecast`]: forecasters behind one trait, with calibrated intervals.
//! - [`seasonality`]: seasonal periods from the calendar, confirmed on the data.
//! - [`detector`]: the streaming anomaly detector.
//! - [`threshold`]: when a forecast crosses a level, with its uncertainty.
//! - [`accuracy`]: MASE and interval coverage by rolling origin.
//! - [`nab`]: scoring by the Numenta Anomaly Benchmark's published rules.

pub mod accuracy;
pub mod detector;
pub mod error;
pub mod forecast;
pub mod nab;
pub mod seasonality;
pub mod series;
pub mod synthetic;
pub mod threshold;

pub use error::{Error, Result};
