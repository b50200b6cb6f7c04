//! The PNG chart sent with a notification: the lead alert's recent history,
//! the forecast with its band, the threshold and a "now" marker. Pure: draws
//! into memory and returns the PNG bytes.
//!
//! plotters draws the lines and areas. Text is drawn here with `ab_glyph` and
//! DejaVu Sans (Bitstream Vera licence, permissive), embedded by the `dejavu`
//! crate: there is no system font library, and plotters' own ab_glyph text
//! drops each glyph's side bearing ("22:13" came out as "221 3").

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::ImageEncoder;
use plotters::prelude::*;

use crate::alert::Explanation;
use crate::number::short_number;

/// Largest width or height accepted: a bigger chart is a configuration error
/// and would allocate a lot.
pub const MAX_SIDE: u32 = 4096;

/// Why no chart could be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Nothing to draw: no finite history or forecast point.
    #[error("nothing to draw")]
    Empty,
    /// Drawing or encoding failed.
    #[error("chart: {0}")]
    Draw(String),
}

const HISTORY: RGBColor = RGBColor(31, 119, 180);
const FORECAST: RGBColor = RGBColor(230, 120, 20);
const THRESHOLD: RGBColor = RGBColor(200, 30, 30);
const NOW: RGBColor = RGBColor(110, 110, 110);
const GRID: RGBColor = RGBColor(234, 234, 234);
const AXIS: RGBColor = RGBColor(170, 170, 170);
const INK: RGBColor = RGBColor(40, 40, 40);
const MUTED: RGBColor = RGBColor(90, 90, 90);
const BAND_ALPHA: f64 = 0.2;

/// Values beyond this are treated as garbage: the axis arithmetic must stay finite.
const MAX_ABS: f64 = 1e300;

/// The finite points of `e`, ready to draw.
struct Series {
    history: Vec<(f64, f64)>,
    mean: Vec<(f64, f64)>,
    /// (t, lower, upper), only where both edges are finite.
    band: Vec<(f64, f64, f64)>,
    level: Option<f64>,
    threshold: Option<f64>,
    now: Option<f64>,
    x: (f64, f64),
    y: (f64, f64),
}

fn sane(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_ABS
}

impl Series {
    fn of(e: &Explanation) -> Result<Self, ChartError> {
        let history: Vec<(f64, f64)> = e
            .history
            .iter()
            .filter(|(_, v)| sane(*v))
            .map(|&(t, v)| (t as f64, v))
            .collect();
        let mean: Vec<(f64, f64)> = e
            .forecast
            .iter()
            .filter(|p| sane(p.mean))
            .map(|p| (p.t as f64, p.mean))
            .collect();
        let band: Vec<(f64, f64, f64)> = e
            .forecast
            .iter()
            .filter(|p| sane(p.lower) && sane(p.upper))
            .map(|p| (p.t as f64, p.lower.min(p.upper), p.lower.max(p.upper)))
            .collect();
        if history.is_empty() && mean.is_empty() && band.is_empty() {
            return Err(ChartError::Empty);
        }
        let threshold = e.threshold.filter(|t| sane(*t));
        // "Now" is where the history ends and the forecast takes over.
        let now = history
            .iter()
            .map(|p| p.0)
            .reduce(f64::max)
            .or_else(|| mean.first().map(|p| p.0))
            .or_else(|| band.first().map(|p| p.0));

        let xs = history
            .iter()
            .map(|p| p.0)
            .chain(mean.iter().map(|p| p.0))
            .chain(band.iter().map(|p| p.0));
        let ys = history
            .iter()
            .map(|p| p.1)
            .chain(mean.iter().map(|p| p.1))
            .chain(band.iter().flat_map(|p| [p.1, p.2]))
            .chain(threshold);
        // One instant: half an hour either side; one value: 10 % or 1 either side.
        let x = pad(min_max(xs), 1800.0, 0.0, false);
        let y = pad(min_max(ys), 1.0, 0.08, true);
        Ok(Self {
            history,
            mean,
            band,
            level: e.level.filter(|l| l.is_finite() && *l > 0.0 && *l <= 1.0),
            threshold,
            now,
            x,
            y,
        })
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Widens a range by `fraction` of its span on each side; a range of one
/// value (a single point, a flat series) gets `min_pad`, or 10 % of the
/// value if `relative` and that is more.
fn pad((lo, hi): (f64, f64), min_pad: f64, fraction: f64, relative: bool) -> (f64, f64) {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        let p = if relative {
            (lo.abs() * 0.1).max(min_pad)
        } else {
            min_pad
        };
        return (lo - p, lo + p);
    }
    (lo - span * fraction, hi + span * fraction)
}

/// Round values inside `lo..=hi` for a value axis: 1, 2 or 5 × 10^k apart,
/// at most `max` of them.
fn value_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    let raw = span / max.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= max as f64)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil();
    (0..=max)
        .map(|i| (first + i as f64) * step)
        .take_while(|v| *v <= hi)
        // -0 prints as "-0": make it 0.
        .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
        .collect()
}

/// Round times inside `lo..=hi` (Unix seconds) for the time axis, at most
/// `max` of them, and their label format.
fn time_ticks(lo: f64, hi: f64, max: usize) -> (Vec<f64>, &'static str) {
    const STEPS: [f64; 16] = [
        60.0,
        120.0,
        300.0,
        600.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        10800.0,
        21600.0,
        43200.0,
        86400.0,
        172800.0,
        345600.0,
        604800.0,
        2_592_000.0,
    ];
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (Vec::new(), "%H:%M");
    }
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max as f64)
        .unwrap_or_else(|| (span / max.max(1) as f64 / 86400.0).ceil() * 86400.0);
    let format = if step >= 28.0 * 86400.0 {
        "%Y-%m-%d"
    } else if step >= 86400.0 {
        "%b %d"
    } else if span > 36.0 * 3600.0 {
        "%b %d %H:%M"
    } else {
        "%H:%M"
    };
    let first = (lo / step).ceil();
    let ticks = (0..=max)
        .map(|i| (first + i as f64) * step)
        .take_while(|t| *t <= hi)
        .collect();
    (ticks, format)
}

fn time_label(t: f64, format: &str) -> String {
    chrono::DateTime::from_timestamp(t.round() as i64, 0)
        .map(|dt| dt.format(format).to_string())
        .unwrap_or_default()
}

/// Where a text goes: its anchor point and which side of the text it is.
#[derive(Clone, Copy)]
enum Anchor {
    /// The point is the text's left end, vertically centred.
    Left,
    /// The point is the text's top centre.
    TopCentre,
    /// The point is the text's right end, vertically centred.
    Right,
}

/// A text to draw once plotters is done with the buffer.
struct Label {
    text: String,
    at: (i32, i32),
    anchor: Anchor,
    px: f32,
    colour: RGBColor,
}

/// Text drawing with the embedded font.
struct Typeface {
    font: FontRef<'static>,
}

impl Typeface {
    fn load() -> Option<Self> {
        FontRef::try_from_slice(dejavu::sans::regular())
            .ok()
            .map(|font| Self { font })
    }

    fn width(&self, px: f32, text: &str) -> f32 {
        let sf = self.font.as_scaled(PxScale::from(px));
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                w += sf.kern(p, id);
            }
            w += sf.h_advance(id);
            prev = Some(id);
        }
        w
    }

    /// `text` cut with "…" to at most `max` pixels wide, measured in one pass.
    fn fit(&self, px: f32, text: &str, max: f32) -> String {
        if self.width(px, text) <= max {
            return text.to_string();
        }
        let room = max - self.width(px, "…");
        let sf = self.font.as_scaled(PxScale::from(px));
        let (mut w, mut prev, mut end) = (0.0, None, 0);
        for (i, c) in text.char_indices() {
            let id = sf.glyph_id(c);
            w += prev.map_or(0.0, |p| sf.kern(p, id)) + sf.h_advance(id);
            if w > room {
                break;
            }
            prev = Some(id);
            end = i + c.len_utf8();
        }
        format!("{}…", text[..end].trim_end())
    }

    /// Draws a label into an RGB buffer, blending by glyph coverage.
    fn draw(&self, buf: &mut [u8], (w, h): (u32, u32), l: &Label) {
        let scale = PxScale::from(l.px);
        let sf = self.font.as_scaled(scale);
        let width = self.width(l.px, &l.text);
        // Cap height of DejaVu is about 0.73 em: centre on it, not on the em box.
        let cap = 0.73 * l.px;
        let (x, baseline) = match l.anchor {
            Anchor::Left => (l.at.0 as f32, l.at.1 as f32 + cap / 2.0),
            Anchor::Right => (l.at.0 as f32 - width, l.at.1 as f32 + cap / 2.0),
            Anchor::TopCentre => (l.at.0 as f32 - width / 2.0, l.at.1 as f32 + sf.ascent()),
        };
        let RGBColor(r, g, b) = l.colour;
        let mut caret = x;
        let mut prev = None;
        for c in l.text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                caret += sf.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scale, point(caret.round(), baseline.round()));
            caret += sf.h_advance(id);
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + i64::from(gx);
                let py = bounds.min.y as i64 + i64::from(gy);
                if px < 0 || py < 0 || px >= i64::from(w) || py >= i64::from(h) {
                    return;
                }
                let i = (py as usize * w as usize + px as usize) * 3;
                let a = coverage.clamp(0.0, 1.0);
                for (k, ink) in [r, g, b].into_iter().enumerate() {
                    if let Some(d) = buf.get_mut(i + k) {
                        *d = (f32::from(*d) * (1.0 - a) + f32::from(ink) * a).round() as u8;
                    }
                }
            });
        }
    }
}

/// A PNG of `e`'s history (line), forecast mean (line) and band (shaded
/// area), the threshold (horizontal line) if any, and a vertical "now" marker
/// between history and forecast. `width` x `height` pixels (callers use 800x400).
pub fn render_png(
    e: &Explanation,
    title: &str,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, ChartError> {
    if width < 50 || height < 50 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ChartError::Draw(format!(
            "size {width}x{height} outside 50..={MAX_SIDE}"
        )));
    }
    let series = Series::of(e)?;
    let face = Typeface::load();
    // White from the start: no separate fill pass.
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    // plotters is not ours: a panic deep inside it must not take the
    // delivery worker down, it only costs the chart.
    let labels = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        draw(&series, title, face.as_ref(), &mut buf, width, height)
    }))
    .map_err(|_| ChartError::Draw("plotters panicked".to_string()))??;
    if let Some(face) = &face {
        for l in &labels {
            face.draw(&mut buf, (width, height), l);
        }
    }
    encode(&buf, width, height)
}

/// Draws the lines and areas with plotters onto `buf` (already white);
/// returns the texts to draw on top.
fn draw(
    s: &Series,
    title: &str,
    face: Option<&Typeface>,
    buf: &mut [u8],
    width: u32,
    height: u32,
) -> Result<Vec<Label>, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError::Draw(e.to_string());
    let mut labels = Vec::new();
    // Text sizes follow the chart's size (800x400 → 17 px title, 12 px labels).
    let unit = (height.min(width / 2) as f32 / 400.0).clamp(0.75, 3.0);
    let (title_px, label_px) = (17.0 * unit, 12.0 * unit);
    let (x0, x1) = s.x;
    let (y0, y1) = s.y;
    let (x_ticks, time_format) = time_ticks(x0, x1, ((width / 130).max(2)) as usize);
    let y_ticks = value_ticks(y0, y1, ((height / 70).max(4)) as usize);
    let y_texts: Vec<String> = y_ticks.iter().map(|v| short_number(*v)).collect();

    let text = face.is_some();
    let y_area = match face {
        Some(f) => {
            let widest = y_texts
                .iter()
                .map(|t| f.width(label_px, t))
                .fold(0.0, f32::max);
            (widest + 12.0 * unit).ceil() as u32
        }
        None => 0,
    };
    let top = if text { (56.0 * unit) as u32 } else { 12 };
    let bottom = if text { (22.0 * unit) as u32 } else { 0 };

    let root = BitMapBackend::with_buffer(buf, (width, height)).into_drawing_area();
    let mut chart = ChartBuilder::on(&root)
        .margin_top(top)
        .margin_left(10)
        .margin_right(18)
        .margin_bottom(8)
        .x_label_area_size(bottom)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(&e))?;

    // Grid, then the axes' lines, under the data.
    let grid = GRID.stroke_width(1);
    chart
        .draw_series(
            y_ticks
                .iter()
                .map(|&v| PathElement::new(vec![(x0, v), (x1, v)], grid)),
        )
        .map_err(|e| err(&e))?;
    chart
        .draw_series(
            x_ticks
                .iter()
                .map(|&t| PathElement::new(vec![(t, y0), (t, y1)], grid)),
        )
        .map_err(|e| err(&e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(x0, y1), (x0, y0), (x1, y0)],
            AXIS.stroke_width(1),
        )))
        .map_err(|e| err(&e))?;

    if s.band.len() >= 2 {
        // The band as one polygon: the upper edge forwards, the lower back.
        let outline: Vec<(f64, f64)> = s
            .band
            .iter()
            .map(|p| (p.0, p.2))
            .chain(s.band.iter().rev().map(|p| (p.0, p.1)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                FORECAST.mix(BAND_ALPHA).filled(),
            )))
            .map_err(|e| err(&e))?;
    } else if let Some(&(t, lo, hi)) = s.band.first() {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t, lo), (t, hi)],
                FORECAST.mix(0.5).stroke_width(4),
            )))
            .map_err(|e| err(&e))?;
    }

    if let Some(th) = s.threshold {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, th), (x1, th)],
                8,
                5,
                THRESHOLD.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
    }

    if let Some(now) = s.now {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(now, y0), (now, y1)],
                4,
                4,
                NOW.stroke_width(1),
            ))
            .map_err(|e| err(&e))?;
        let (px, py) = chart.backend_coord(&(now, y1));
        let right_end = chart.backend_coord(&(x1, y1)).0;
        let room = face.map_or(0.0, |f| f.width(label_px * 0.9, "now")) as i32 + 6;
        // Right of the marker, unless that runs off the plot.
        let (at_x, anchor) = if px + room <= right_end {
            (px + 4, Anchor::Left)
        } else {
            (px - 4, Anchor::Right)
        };
        labels.push(Label {
            text: "now".to_string(),
            at: (at_x, py + (label_px * 0.7) as i32),
            anchor,
            px: label_px * 0.9,
            colour: NOW,
        });
    }

    for (points, colour) in [(&s.history, HISTORY), (&s.mean, FORECAST)] {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
        if points.len() == 1 {
            // A line of one point is invisible: mark it.
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| err(&e))?;
        }
    }

    let Some(face) = face else {
        return Ok(labels);
    };

    // Axis texts.
    for (v, t) in y_ticks.iter().zip(y_texts) {
        let (px, py) = chart.backend_coord(&(x0, *v));
        labels.push(Label {
            text: t,
            at: (px - (6.0 * unit) as i32, py),
            anchor: Anchor::Right,
            px: label_px,
            colour: MUTED,
        });
    }
    for t in &x_ticks {
        let (px, py) = chart.backend_coord(&(*t, y0));
        labels.push(Label {
            text: time_label(*t, time_format),
            at: (px, py + (5.0 * unit) as i32),
            anchor: Anchor::TopCentre,
            px: label_px,
            colour: MUTED,
        });
    }

    // Title, then a legend row under it: never over the data.
    let left = chart.backend_coord(&(x0, y1)).0;
    // Clamped first: fitting costs a measure per dropped character.
    let clean: String = title
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    labels.push(Label {
        text: face.fit(title_px, &clean, (width as i32 - left - 10).max(0) as f32),
        at: (left, (16.0 * unit) as i32),
        anchor: Anchor::Left,
        px: title_px,
        colour: INK,
    });
    let mut legend: Vec<(Swatch, String)> = Vec::new();
    if !s.history.is_empty() {
        legend.push((Swatch::Line(HISTORY), "history".to_string()));
    }
    if !s.mean.is_empty() {
        legend.push((Swatch::Line(FORECAST), "forecast".to_string()));
    }
    if !s.band.is_empty() {
        let band = match s.level {
            Some(l) => format!("{}% band", short_number(l * 100.0)),
            None => "band".to_string(),
        };
        legend.push((Swatch::Area(FORECAST), band));
    }
    if let Some(th) = s.threshold {
        legend.push((
            Swatch::Dashed(THRESHOLD),
            format!("threshold {}", short_number(th)),
        ));
    }
    let row = (40.0 * unit) as i32;
    let swatch = (18.0 * unit) as i32;
    let mut x = left;
    for (sw, text) in legend {
        let style = |c: RGBColor| c.stroke_width(2);
        let (a, b) = ((x, row), (x + swatch, row));
        let drawn = match sw {
            Swatch::Line(c) => root.draw(&PathElement::new(vec![a, b], style(c))),
            Swatch::Dashed(c) => {
                let third = swatch / 3;
                root.draw(&PathElement::new(vec![a, (x + third, row)], style(c)))
                    .and_then(|_| {
                        root.draw(&PathElement::new(vec![(x + 2 * third, row), b], style(c)))
                    })
            }
            Swatch::Area(c) => root.draw(&Rectangle::new(
                [(x, row - swatch / 3), (x + swatch, row + swatch / 3)],
                c.mix(BAND_ALPHA).filled(),
            )),
        };
        drawn.map_err(|e| err(&e))?;
        let tx = x + swatch + (5.0 * unit) as i32;
        x = tx + face.width(label_px, &text).ceil() as i32 + (16.0 * unit) as i32;
        labels.push(Label {
            text,
            at: (tx, row),
            anchor: Anchor::Left,
            px: label_px,
            colour: INK,
        });
    }
    labels.push(Label {
        text: "UTC".to_string(),
        at: (chart.backend_coord(&(x1, y1)).0, row),
        anchor: Anchor::Right,
        px: label_px,
        colour: MUTED,
    });
    drop(chart);
    root.present().map_err(|e| err(&e))?;
    Ok(labels)
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
enum Swatch {
    Line(RGBColor),
    Dashed(RGBColor),
    Area(RGBColor),
}

/// RGB buffer → PNG bytes. Fast compression with the Sub filter: about a
/// third of the default's time for 30–40 kB instead of 7–16 kB at 800x400,
/// which matters more here (a chart per notification) than the bytes.
fn encode(buf: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut png = Vec::with_capacity(64 * 1024);
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Sub)
        .write_image(buf, width, height, image::ColorType::Rgb8)
        .map_err(|e| ChartError::Draw(e.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::ForecastPoint;

    const T0: i64 = 1_795_000_000;

    fn sample() -> Explanation {
        let history: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                let t = T0 + i * 300;
                let v = 400.0 + 3.0 * i as f64 + 40.0 * ((i as f64) / 8.0).sin();
                (t, v)
            })
            .collect();
        let last = T0 + 119 * 300;
        let forecast: Vec<ForecastPoint> = (1..=60)
            .map(|i| {
                let mean = 760.0 + 3.0 * i as f64;
                let w = 20.0 + 2.0 * i as f64;
                ForecastPoint {
                    t: last + i * 300,
                    mean,
                    lower: mean - w,
                    upper: mean + w,
                }
            })
            .collect();
        Explanation {
            condition: "time_to_threshold".into(),
            threshold: Some(1000.0),
            history,
            forecast,
            ..Default::default()
        }
    }

    fn decode(png: &[u8]) -> image::RgbImage {
        assert!(png.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]));
        image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .unwrap()
            .to_rgb8()
    }

    #[test]
    fn draws_a_png_of_the_requested_size() {
        let png = render_png(&sample(), "MesQueueBacklog — service=mes-api", 800, 400).unwrap();
        let img = decode(&png);
        assert_eq!(img.dimensions(), (800, 400));
        // Something beyond the white background was drawn, in the series' colours.
        let has = |c: RGBColor| img.pixels().any(|p| p.0 == [c.0, c.1, c.2]);
        assert!(has(HISTORY), "history line");
        assert!(has(FORECAST), "forecast line");
        assert!(has(THRESHOLD), "threshold line");
        std::fs::write("/tmp/prognos-chart.png", &png).unwrap();
    }

    #[test]
    fn different_inputs_give_different_images() {
        let a = render_png(&sample(), "a", 400, 200).unwrap();
        let mut other = sample();
        other.threshold = None;
        for p in &mut other.history {
            p.1 *= 2.0;
        }
        let b = render_png(&other, "a", 400, 200).unwrap();
        assert_ne!(decode(&a), decode(&b));
    }

    #[test]
    fn degenerate_inputs_still_draw() {
        let one = Explanation {
            history: vec![(T0, 5.0)],
            ..Default::default()
        };
        let flat = Explanation {
            history: (0..10).map(|i| (T0 + i * 60, 7.0)).collect(),
            threshold: Some(7.0),
            ..Default::default()
        };
        let nan = Explanation {
            history: vec![(T0, f64::NAN), (T0 + 60, 1.0), (T0 + 120, f64::INFINITY)],
            forecast: vec![ForecastPoint {
                t: T0 + 180,
                mean: f64::NAN,
                lower: f64::NEG_INFINITY,
                upper: 3.0,
            }],
            threshold: Some(f64::NAN),
            ..Default::default()
        };
        let forecast_only = Explanation {
            forecast: vec![ForecastPoint {
                t: T0,
                mean: 0.0,
                lower: -1.0,
                upper: 1.0,
            }],
            ..Default::default()
        };
        let huge = Explanation {
            history: vec![(T0, -1e300), (T0 + 60, 1e300)],
            ..Default::default()
        };
        for (name, e) in [
            ("one", one),
            ("flat", flat),
            ("nan", nan),
            ("forecast_only", forecast_only),
            ("huge", huge),
        ] {
            let png = render_png(&e, name, 300, 150).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(decode(&png).dimensions(), (300, 150), "{name}");
        }
    }

    #[test]
    fn nothing_to_draw_is_empty() {
        assert!(matches!(
            render_png(&Explanation::default(), "x", 800, 400),
            Err(ChartError::Empty)
        ));
        let all_nan = Explanation {
            history: vec![(T0, f64::NAN)],
            ..Default::default()
        };
        assert!(matches!(
            render_png(&all_nan, "x", 800, 400),
            Err(ChartError::Empty)
        ));
    }

    #[test]
    fn absurd_sizes_are_refused() {
        assert!(matches!(
            render_png(&sample(), "x", 0, 400),
            Err(ChartError::Draw(_))
        ));
        assert!(matches!(
            render_png(&sample(), "x", 100_000, 100_000),
            Err(ChartError::Draw(_))
        ));
    }

    #[test]
    fn axis_ticks_are_round_and_inside_the_range() {
        assert_eq!(
            value_ticks(370.0, 1130.0, 5),
            vec![400.0, 600.0, 800.0, 1000.0]
        );
        assert_eq!(value_ticks(-0.3, 0.9, 4), vec![0.0, 0.5]);
        assert!(value_ticks(1.0, 1.0, 5).is_empty());
        assert!(value_ticks(-1e300, 1e300, 5).len() <= 6);
        let (ticks, format) = time_ticks(T0 as f64, T0 as f64 + 6.0 * 3600.0, 6);
        assert_eq!(format, "%H:%M");
        assert!(ticks.iter().all(|t| t % 3600.0 == 0.0), "{ticks:?}");
        let (_, format) = time_ticks(T0 as f64, T0 as f64 + 10.0 * 86400.0, 6);
        assert_eq!(format, "%b %d");
    }

    #[test]
    fn long_titles_are_cut_to_the_width() {
        let face = Typeface::load().unwrap();
        let long = "MesQueueBacklog — ".repeat(20);
        let cut = face.fit(17.0, &long, 300.0);
        assert!(cut.ends_with('…'));
        assert!(face.width(17.0, &cut) <= 300.0);
        assert_eq!(face.fit(17.0, "short", 300.0), "short");
        assert!(render_png(&sample(), &"<&>\n".repeat(10_000), 800, 400).is_ok());
    }
}
