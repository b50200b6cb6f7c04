//! Server-side SVG time-series chart for the web UI.
//!
//! [`TimeChart`] draws one time axis (Unix seconds, UTC tick labels) and one
//! value axis: shaded [`Span`]s (alert intervals) behind everything, then
//! filled [`Band`]s (expected band, forecast fan), [`HLine`]s (thresholds),
//! [`Line`]s (history, forecast, anomaly score) and vertical [`Marker`]s
//! ("now", ETA), with a legend row above the plot. The series page stacks a
//! value chart over an anomaly-score chart with the same `x_range`; the
//! margins are constant, so the two time axes line up exactly.
//!
//! The SVG is built by hand with maud rather than by a plotting crate:
//! - every piece of text (title, labels, tick labels) goes through maud's
//!   escaping, because labels come from rules and annotations (untrusted);
//! - nothing uses `style` attributes, `<style>` or script, so the chart works
//!   under a strict Content-Security-Policy (`style-src 'self'`); the page's
//!   stylesheet colours every element by its CSS class, and only structural
//!   presentation attributes (`fill="none"`, `text-anchor`, a default
//!   `font-size`) are emitted;
//! - the fixed 960-unit-wide `viewBox` scales uniformly to the container
//!   (phone or desktop) with no client-side layout code.

use std::fmt;
use std::fmt::Write as _;

use maud::{Markup, html};

/// Width of the `viewBox`, in user units.
const WIDTH: f64 = 960.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_BOTTOM: f64 = 22.0;
const LEGEND_ROW: f64 = 16.0;
const LEGEND_MAX_ROWS: usize = 3;
const LEGEND_MAX_CHARS: usize = 40;
/// Estimated glyph width at the default font size (12).
const GLYPH_W: f64 = 6.6;
/// Values are clamped to ±LIM so ranges and paddings never overflow.
const LIM: f64 = 1e300;
/// Nice x tick intervals, in seconds.
const X_STEPS: [i64; 11] = [
    60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172_800, 604_800,
];

/// How value-axis tick labels and tooltips format numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unit {
    /// Plain number with SI suffixes: `1.23k`, `3.4M`, `5G`, `2T`.
    #[default]
    Plain,
    /// Bytes, decimal (1000-based) like Prometheus' `humanize`: `1.5 GB`.
    Bytes,
    /// Durations in seconds: `ms`, `s`, `min`, `h`, `d`.
    Seconds,
    /// A ratio (usually 0–1), shown as-is with two decimals: `0.46`.
    Ratio,
}

/// A time-series chart: one time axis and one value axis, rendered as SVG.
#[derive(Clone, Debug, Default)]
pub struct TimeChart {
    /// Accessible name: the `aria-label` and `<title>` of the `<svg>`.
    pub title: String,
    /// Unix seconds at the left and right edges of the plot. A reversed or
    /// zero-width range is treated as one second starting at the first.
    pub x_range: (i64, i64),
    /// Fixed value range (the score chart uses `Some((0.0, 1.0))`); values
    /// outside it are clamped. `None` fits the data and the hlines with ~5%
    /// padding.
    pub y_fixed: Option<(f64, f64)>,
    /// Height of the `viewBox` (the width is always 960).
    pub height: u32,
    /// Lines, drawn in order, on top of bands and hlines.
    pub lines: Vec<Line>,
    /// Filled bands, drawn before the lines.
    pub bands: Vec<Band>,
    /// Horizontal lines at fixed values (thresholds).
    pub hlines: Vec<HLine>,
    /// Shaded time intervals, drawn first, behind everything.
    pub spans: Vec<Span>,
    /// Vertical lines at instants ("now", ETA), drawn on top.
    pub markers: Vec<Marker>,
    /// How value tick labels are formatted.
    pub unit: Unit,
}

/// A polyline; non-finite values break it into separate segments.
#[derive(Clone, Debug, Default)]
pub struct Line {
    /// CSS class, added after `line` (e.g. `history` → `class="line history"`).
    pub class: &'static str,
    /// Legend text and tooltip.
    pub label: String,
    /// `(unix seconds, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// A filled area between two curves; non-finite values break it apart.
#[derive(Clone, Debug, Default)]
pub struct Band {
    /// CSS class, added after `band` (e.g. `fan-95` → `class="band fan-95"`).
    pub class: &'static str,
    /// Legend text and tooltip.
    pub label: String,
    /// `(unix seconds, lower, upper)` in time order.
    pub points: Vec<(i64, f64, f64)>,
}

/// A horizontal line across the plot at a value.
#[derive(Clone, Debug, Default)]
pub struct HLine {
    /// CSS class, added after `hline`.
    pub class: &'static str,
    /// Legend text and tooltip.
    pub label: String,
    /// The value; not drawn if non-finite.
    pub value: f64,
}

/// A shaded time interval (e.g. an alert firing), clipped to the x range.
#[derive(Clone, Debug, Default)]
pub struct Span {
    /// CSS class, added after `span`; the legend lists one entry per class.
    pub class: &'static str,
    /// Tooltip (and legend text of the first span of its class).
    pub label: String,
    /// Start, Unix seconds.
    pub from: i64,
    /// End, Unix seconds.
    pub to: i64,
}

/// A vertical line at an instant; not drawn outside the x range.
#[derive(Clone, Debug, Default)]
pub struct Marker {
    /// CSS class, added after `marker` (e.g. `now` → `class="marker now"`).
    pub class: &'static str,
    /// Tooltip.
    pub label: String,
    /// Unix seconds.
    pub at: i64,
}

/// A coordinate rounded to one decimal, without a trailing `.0` (never NaN).
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = (self.0 * 10.0).round();
        let r = if r.abs() < 1e15 { r as i64 } else { 0 };
        let (int, tenth) = (r / 10, (r % 10).abs());
        let sign = if r < 0 && int == 0 { "-" } else { "" };
        match tenth {
            0 => write!(f, "{int}"),
            _ => write!(f, "{sign}{int}.{tenth}"),
        }
    }
}

const PLOT_W: f64 = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
const RIGHT: f64 = WIDTH - MARGIN_RIGHT;

type Piece<const K: usize> = Vec<(f64, [f64; K])>;

/// Splits points into runs of finite values and clips them to `[a, b]`,
/// interpolating where a segment crosses an edge. Values are clamped to ±LIM.
fn clip_pieces<const K: usize>(
    pts: impl Iterator<Item = (i64, [f64; K])>,
    a: f64,
    b: f64,
) -> Vec<Piece<K>> {
    let (mut out, mut cur) = (Vec::new(), Vec::new());
    let mut prev: Option<(f64, [f64; K])> = None;
    let flush = |cur: &mut Piece<K>, out: &mut Vec<Piece<K>>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    for (t, v) in pts {
        if v.iter().any(|x| !x.is_finite()) {
            flush(&mut cur, &mut out);
            prev = None;
            continue;
        }
        let (t, v) = (t as f64, v.map(|x| x.clamp(-LIM, LIM)));
        let Some((pt, pv)) = prev.replace((t, v)) else {
            if (a..=b).contains(&t) {
                cur.push((t, v));
            }
            continue;
        };
        let d = t - pt;
        let (s0, s1) = match d == 0.0 {
            true if (a..=b).contains(&t) => (0.0, 1.0),
            true => (1.0, 0.0),
            false => {
                let (sa, sb) = ((a - pt) / d, (b - pt) / d);
                (sa.min(sb).max(0.0), sa.max(sb).min(1.0))
            }
        };
        if s0 > s1 {
            flush(&mut cur, &mut out);
            continue;
        }
        let at = |s: f64| {
            let w = std::array::from_fn(|i| pv[i] + s * (v[i] - pv[i]));
            (pt + s * d, w)
        };
        if s0 > 0.0 || cur.is_empty() {
            flush(&mut cur, &mut out);
            cur.push(at(s0));
        }
        cur.push(at(s1));
        if s1 < 1.0 {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Keeps the min and max (in their original order) of each pixel column.
fn decimate(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < pts.len() {
        let (col, mut j, mut lo, mut hi) = (pts[i].0.floor(), i, i, i);
        while j < pts.len() && pts[j].0.floor() == col {
            lo = if pts[j].1 < pts[lo].1 { j } else { lo };
            hi = if pts[j].1 > pts[hi].1 { j } else { hi };
            j += 1;
        }
        out.push(pts[lo.min(hi)]);
        if lo != hi {
            out.push(pts[lo.max(hi)]);
        }
        i = j;
    }
    out
}

/// Envelope per pixel column of a band `(x, y_upper, y_lower)` in pixels.
fn decimate_band(pts: &[(f64, f64, f64)]) -> Vec<(f64, f64, f64)> {
    let mut out: Vec<(f64, f64, f64)> = Vec::new();
    for &(x, up, lo) in pts {
        match out.last_mut() {
            Some(last) if last.0.floor() == x.floor() => {
                (last.1, last.2) = (last.1.min(up), last.2.max(lo));
            }
            _ => out.push((x, up, lo)),
        }
    }
    out
}

/// Appends `M x,y L x,y x,y …` for one subpath.
fn subpath(d: &mut String, pts: impl Iterator<Item = (f64, f64)>) {
    for (i, (x, y)) in pts.enumerate() {
        let sep = ["M", "L", " "][i.min(2)];
        let _ = write!(d, "{sep}{},{}", N(x), N(y));
    }
}

fn line_path(pieces: &[Piece<1>], px: impl Fn(f64) -> f64, py: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    for piece in pieces {
        let mut px: Vec<_> = piece.iter().map(|&(t, [v])| (px(t), py(v))).collect();
        if px.len() as f64 > 2.0 * PLOT_W {
            px = decimate(&px);
        }
        if let [(x, y)] = px[..] {
            px = vec![(x - 1.0, y), (x + 1.0, y)];
        }
        subpath(&mut d, px.into_iter());
    }
    d
}

fn band_path(pieces: &[Piece<2>], px: impl Fn(f64) -> f64, py: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    for piece in pieces {
        let to_px = |&(t, [a, b]): &(f64, [f64; 2])| (px(t), py(a).min(py(b)), py(a).max(py(b)));
        let mut px: Vec<_> = piece.iter().map(to_px).collect();
        if px.len() as f64 > 2.0 * PLOT_W {
            px = decimate_band(&px);
        }
        if let [(x, up, lo)] = px[..] {
            px = vec![(x - 1.0, up, lo), (x + 1.0, up, lo)];
        }
        let back = px.iter().rev().map(|&(x, _, lo)| (x, lo));
        subpath(&mut d, px.iter().map(|&(x, up, _)| (x, up)).chain(back));
        d.push('Z');
    }
    d
}

/// The value range: the fixed one if usable, else the data's with 5% padding;
/// always finite with `hi > lo`.
fn y_range(fixed: Option<(f64, f64)>, data: &[f64]) -> (f64, f64) {
    let (lo, hi, pad) = match fixed {
        Some((a, b)) if a.is_finite() && b.is_finite() => (a.min(b), a.max(b), 0.0),
        _ => {
            let lo = data.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo > hi {
                return (0.0, 1.0);
            }
            (lo, hi, 0.05)
        }
    };
    let (lo, hi) = (lo.clamp(-LIM, LIM), hi.clamp(-LIM, LIM));
    let pad = match hi > lo {
        true => (hi - lo) * pad,
        false => (lo.abs() * 0.1).max(1.0),
    };
    (lo - pad, hi + pad)
}

/// "Nice" value ticks (1/2/5 × 10^k steps), about `target` intervals.
fn y_ticks(lo: f64, hi: f64, target: f64) -> Vec<f64> {
    let raw = (hi - lo) / target;
    if !(raw.is_finite() && raw > 0.0) {
        return Vec::new();
    }
    let mag = 10f64.powf(raw.log10().floor());
    let mult = [(1.5, 1.0), (3.0, 2.0), (7.0, 5.0)]
        .into_iter()
        .find(|&(limit, _)| raw / mag < limit)
        .map_or(10.0, |(_, m)| m);
    let (step, k0) = (mult * mag, (lo / (mult * mag)).ceil());
    (0..16)
        .map(|i| (k0 + f64::from(i)) * step)
        .take_while(|&v| v <= hi + step * 1e-9)
        .collect()
}

/// The x range as `(left, right)` with `right > left`.
fn norm_x((a, b): (i64, i64)) -> (i64, i64) {
    match a.checked_add(1) {
        _ if b > a => (a, b),
        Some(next) => (a, next),
        None => (a - 1, a),
    }
}

/// Time ticks aligned to nice intervals (UTC), about six of them.
fn x_ticks(x0: i64, x1: i64) -> Vec<(i64, String)> {
    let span = (i128::from(x1) - i128::from(x0)).max(1);
    let step = (X_STEPS.iter().map(|&s| i128::from(s)))
        .find(|&s| span / s <= 6)
        .unwrap_or((span / (6 * 604_800) + 1) * 604_800);
    let mut t = (i128::from(x0) + step - 1).div_euclid(step) * step;
    let mut out = Vec::new();
    while t <= i128::from(x1) && out.len() < 16 {
        if let Ok(ti) = i64::try_from(t) {
            out.push((ti, fmt_time(ti, span > 2 * 86400, step >= 86400)));
        }
        t += step;
    }
    out
}

/// `HH:MM`, or `MM-DD HH:MM` / `MM-DD` for long ranges, in UTC.
fn fmt_time(t: i64, long: bool, day_only: bool) -> String {
    let secs = t.rem_euclid(86400);
    let (hh, mm) = (secs / 3600, secs % 3600 / 60);
    if !long {
        return format!("{hh:02}:{mm:02}");
    }
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let doe = (t.div_euclid(86400) + 719_468).rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    match day_only {
        true => format!("{month:02}-{day:02}"),
        false => format!("{month:02}-{day:02} {hh:02}:{mm:02}"),
    }
}

/// Drops the sign of a negative zero (`-0`, `-0.00`).
fn no_neg_zero(s: &str) -> String {
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|c| c == b'0' || c == b'.') => rest.to_owned(),
        _ => s.to_owned(),
    }
}

/// Three significant digits, exponent notation outside 1e-3..1e6.
fn sig3(v: f64) -> String {
    let trim = |s: &str| no_neg_zero(s.trim_end_matches('0').trim_end_matches('.'));
    let a = v.abs();
    if a == 0.0 {
        return "0".to_owned();
    } else if !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{e}", trim(m));
    }
    let d = match a {
        100.0.. => return no_neg_zero(&format!("{v:.0}")),
        10.0.. => 1,
        1.0.. => 2,
        _ => (2.0 - a.log10().floor()) as usize,
    };
    trim(&format!("{v:.d$}"))
}

fn scaled(v: f64, suffixes: &[&str], sep: &str) -> String {
    let (mut s, mut i) = (v, 0);
    while s.abs() >= 999.5 && i + 1 < suffixes.len() {
        (s, i) = (s / 1000.0, i + 1);
    }
    format!("{}{sep}{}", sig3(s), suffixes[i])
}

/// Formats a value for tick labels and tooltips; NaN is `—`, ±Inf `+Inf`/`-Inf`.
pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        _ if v.is_nan() => "—".to_owned(),
        _ if v.is_infinite() => (if v > 0.0 { "+Inf" } else { "-Inf" }).to_owned(),
        Unit::Ratio if v.abs() < 1e6 => no_neg_zero(&format!("{v:.2}")),
        Unit::Ratio => sig3(v),
        Unit::Plain => scaled(v, &["", "k", "M", "G", "T", "P", "E"], ""),
        Unit::Bytes => scaled(v, &["B", "kB", "MB", "GB", "TB", "PB", "EB"], " "),
        Unit::Seconds => {
            let divs = [86400.0, 3600.0, 60.0, 1.0, 1e-3];
            let units = divs.into_iter().zip(["d", "h", "min", "s", "ms"]);
            let found = units.into_iter().find(|&(d, _)| v.abs() >= d);
            let (div, suffix) = found.unwrap_or((1.0, "s"));
            format!("{} {suffix}", sig3(v / div))
        }
    }
}

fn cls(kind: &str, class: &str) -> String {
    match class {
        "" => kind.to_owned(),
        _ => format!("{kind} {class}"),
    }
}

/// Lays legend entries `(swatch class, label)` out right-aligned in rows
/// above the plot; returns `(class, x, y, text)` per entry and the row count.
fn legend_layout(entries: Vec<(String, &str)>) -> (Vec<(String, f64, f64, String)>, usize) {
    let mut rows: Vec<Vec<(String, String, f64)>> = Vec::new();
    for (class, label) in entries {
        let mut text: String = label.chars().take(LEGEND_MAX_CHARS).collect();
        if label.chars().nth(LEGEND_MAX_CHARS).is_some() {
            text.push('…');
        }
        let w = 28.0 + text.chars().count() as f64 * GLYPH_W;
        let n = rows.len();
        match rows.last_mut() {
            Some(row) if row.iter().map(|e| e.2).sum::<f64>() + w <= PLOT_W => {
                row.push((class, text, w));
            }
            _ if n < LEGEND_MAX_ROWS => rows.push(vec![(class, text, w)]),
            _ => break,
        }
    }
    let mut items = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let mut x = (RIGHT + 14.0 - row.iter().map(|e| e.2).sum::<f64>()).max(0.0);
        for (class, text, w) in row {
            items.push((class.clone(), x, (r + 1) as f64 * LEGEND_ROW, text.clone()));
            x += w;
        }
    }
    (items, rows.len())
}

impl TimeChart {
    /// Renders the chart as an `<svg class="chart">` element.
    pub fn render(&self) -> Markup {
        let (x0, x1) = norm_x(self.x_range);
        let (xa, xb) = (x0 as f64, x1 as f64);
        let (mut values, mut legend) = (Vec::new(), Vec::new());
        let mut lines = Vec::new();
        for l in &self.lines {
            let pieces = clip_pieces(l.points.iter().map(|&(t, v)| (t, [v])), xa, xb);
            values.extend(pieces.iter().flatten().map(|(_, [v])| *v));
            if !pieces.is_empty() {
                legend.push((cls("swatch line", l.class), l.label.as_str()));
                lines.push((l, pieces));
            }
        }
        let mut bands = Vec::new();
        for b in &self.bands {
            let pieces = clip_pieces(b.points.iter().map(|&(t, l, u)| (t, [l, u])), xa, xb);
            values.extend(pieces.iter().flatten().flat_map(|(_, v)| *v));
            if !pieces.is_empty() {
                legend.push((cls("swatch band", b.class), b.label.as_str()));
                bands.push((b, pieces));
            }
        }
        let has_data = !values.is_empty();
        let mut hlines = Vec::new();
        let finite = |h: &&HLine| has_data && h.value.is_finite();
        for h in self.hlines.iter().filter(finite) {
            values.push(h.value.clamp(-LIM, LIM));
            legend.push((cls("swatch hline", h.class), h.label.as_str()));
            hlines.push(h);
        }
        let mut spans = Vec::new();
        for s in self.spans.iter().filter(|_| has_data) {
            let (a, b) = (s.from.min(s.to).max(x0), s.from.max(s.to).min(x1));
            let swatch = cls("swatch span", s.class);
            if a >= b {
                continue;
            } else if !legend.iter().any(|e| e.0 == swatch) {
                legend.push((swatch, s.label.as_str()));
            }
            spans.push((s, a as f64, b as f64));
        }
        let shown = |m: &&Marker| has_data && (x0..=x1).contains(&m.at);
        let markers = self.markers.iter().filter(shown);

        let (ylo, yhi) = y_range(self.y_fixed, &values);
        let (legend, rows) = legend_layout(legend);
        let top = 10.0 + rows as f64 * LEGEND_ROW;
        let height = f64::from(self.height.min(10_000)).max(top + MARGIN_BOTTOM + 20.0);
        let h = height - top - MARGIN_BOTTOM;
        let xspan = (xb - xa).max(1.0);
        let px = |t: f64| (MARGIN_LEFT + (t - xa) / xspan * PLOT_W).clamp(MARGIN_LEFT, RIGHT);
        let py = |v: f64| top + (yhi - v.clamp(ylo, yhi)) / (yhi - ylo) * h;
        let (bottom, mid_x) = (top + h, MARGIN_LEFT + PLOT_W / 2.0);
        let target = (h / 40.0).clamp(2.0, 5.0);
        let yt: Vec<(f64, String)> = (y_ticks(ylo, yhi, target).into_iter())
            .filter(|_| has_data)
            .map(|v| (py(v), format_value(v, self.unit)))
            .collect();
        let xt: Vec<(f64, String, &str)> = (x_ticks(x0, x1).into_iter())
            .map(|(t, s)| {
                let x = px(t as f64);
                let end = x + s.chars().count() as f64 * GLYPH_W / 2.0 > WIDTH;
                (x, s, if end { "end" } else { "middle" })
            })
            .collect();
        let view_box = format!("0 0 {WIDTH} {}", N(height));
        html! {
            svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img"
                aria-label=(self.title) font-size="12" {
                title { (self.title) }
                @for (s, a, b) in &spans {
                    rect class=(cls("span", s.class)) x=(N(px(*a))) y=(N(top))
                        width=(N(px(*b) - px(*a))) height=(N(h)) { title { (s.label) } }
                }
                @for (y, _) in &yt {
                    line class="grid" x1=(MARGIN_LEFT) x2=(RIGHT) y1=(N(*y)) y2=(N(*y)) {}
                }
                @for (x, _, _) in &xt {
                    line class="grid" x1=(N(*x)) x2=(N(*x)) y1=(N(top)) y2=(N(bottom)) {}
                }
                @for (b, pieces) in &bands {
                    path class=(cls("band", b.class)) d=(band_path(pieces, px, py)) { title { (b.label) } }
                }
                @for l in &hlines {
                    @let y = N(py(l.value));
                    line class=(cls("hline", l.class)) x1=(MARGIN_LEFT) x2=(RIGHT) y1=(y) y2=(y) {
                        title { (l.label) }
                    }
                }
                @for (l, pieces) in &lines {
                    path class=(cls("line", l.class)) fill="none" d=(line_path(pieces, px, py)) {
                        title { (l.label) }
                    }
                }
                @for m in markers {
                    @let x = N(px(m.at as f64));
                    line class=(cls("marker", m.class)) x1=(x) x2=(x) y1=(N(top)) y2=(N(bottom)) {
                        title { (m.label) }
                    }
                }
                rect class="axis" fill="none" x=(MARGIN_LEFT) y=(N(top)) width=(PLOT_W) height=(N(h)) {}
                @for (y, label) in &yt {
                    text class="tick y" x=(MARGIN_LEFT - 6.0) y=(N(y + 4.0)) text-anchor="end" { (label) }
                }
                @for (x, label, anchor) in &xt {
                    text class="tick x" x=(N(*x)) y=(N(bottom + 15.0)) text-anchor=(anchor) { (label) }
                }
                @if has_data {
                    g class="legend" {
                        @for (class, x, y, text) in &legend {
                            rect class=(class) x=(N(*x)) y=(N(y - 9.0)) width="10" height="10" {}
                            text class="label" x=(N(x + 14.0)) y=(N(*y)) { (text) }
                        }
                    }
                } @else {
                    text class="empty" x=(N(mid_x)) y=(N(top + h / 2.0 + 4.0)) text-anchor="middle" {
                        "no data"
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(lines: Vec<Line>) -> TimeChart {
        let mut c = TimeChart::default();
        (c.title, c.x_range, c.height, c.lines) = ("t".into(), (0, 3600), 300, lines);
        c
    }
    fn line(class: &'static str, points: Vec<(i64, f64)>) -> Line {
        let mut l = Line::default();
        (l.class, l.label, l.points) = (class, class.into(), points);
        l
    }
    fn span(class: &'static str, label: &str, from: i64, to: i64) -> Span {
        let mut s = Span::default();
        (s.class, s.label, s.from, s.to) = (class, label.into(), from, to);
        s
    }
    fn render(c: &TimeChart) -> String {
        c.render().into_string()
    }

    /// The value of `attr` in each element whose class attribute is `class`.
    fn attrs(out: &str, class: &str, attr: &str) -> Vec<String> {
        let needle = format!("class=\"{class}\"");
        let value = |(i, _)| {
            let tag = &out[i..i + out[i..].find('>')?];
            let start = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
            Some(tag[start..start + tag[start..].find('"')?].to_owned())
        };
        out.match_indices(&needle).filter_map(value).collect()
    }
    fn num(out: &str, class: &str, attr: &str) -> f64 {
        let first = attrs(out, class, attr).into_iter().next();
        first.and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
    }
    /// The y coordinates in a path's `d`.
    fn path_ys(d: &str) -> Vec<f64> {
        let nums = d.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'));
        let nums: Vec<f64> = nums.filter_map(|s| s.parse().ok()).collect();
        nums.into_iter().skip(1).step_by(2).collect()
    }

    #[test]
    fn text_is_escaped() {
        let evil = "<script>alert(1)</script>\"&'";
        let mut c = chart(vec![line("history", vec![(0, 1.0), (60, 2.0)])]);
        (c.title, c.lines[0].label) = (evil.into(), evil.into());
        (c.hlines, c.markers) = (vec![HLine::default()], vec![Marker::default()]);
        (c.hlines[0].label, c.hlines[0].value) = (evil.into(), 1.5);
        (c.markers[0].label, c.markers[0].at) = (evil.into(), 30);
        c.spans.push(span("firing", evil, 0, 60));
        let out = render(&c);
        assert!(!out.contains("<script>") && !out.contains("style"), "{out}");
        let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;'";
        assert_eq!(out.matches(escaped).count(), 9);
    }

    #[test]
    fn non_finite_breaks_line() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let pts = vec![(0, 1.0), (600, 2.0), (1200, bad), (1800, 3.0)];
            let out = render(&chart(vec![line("history", pts)]));
            let d = &attrs(&out, "line history", "d")[0];
            assert_eq!(d.matches('M').count(), 2, "{d}");
            assert!(!out.contains("NaN") && !out.contains("inf"));
        }
        let mut c = chart(vec![]);
        c.bands.push(Band::default());
        c.bands[0].class = "fan-95";
        let (nan, ok) = ((120, f64::NAN, 1.0), (180, 0.0, 2.0));
        c.bands[0].points = vec![(0, 0.0, 1.0), (60, 0.0, 1.0), nan, ok];
        let d = &attrs(&render(&c), "band fan-95", "d")[0];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('Z').count(), 2, "{d}");
    }

    #[test]
    fn empty_chart_says_no_data() {
        let nan = line("history", vec![(0, f64::NAN), (60, f64::INFINITY)]);
        let outside = line("forecast", vec![(-100, 1.0), (-50, 2.0)]);
        for c in [chart(vec![]), chart(vec![nan, outside])] {
            let out = render(&c);
            assert!(out.contains("<text class=\"empty\""));
            assert!(out.contains(">no data</text>"));
            assert!(out.contains("class=\"axis\""));
        }
        let out = render(&chart(vec![line("history", vec![(10, 1.0)])]));
        assert!(!out.contains("no data"));
    }

    #[test]
    fn fixed_y_range_clamps() {
        let pts = vec![(0, -3.0), (600, 0.5), (1200, 5.0), (1800, 1e300)];
        let mut c = chart(vec![line("score", pts)]);
        (c.y_fixed, c.height, c.unit) = (Some((0.0, 1.0)), 120, Unit::Ratio);
        let out = render(&c);
        let (top, h) = (num(&out, "axis", "y"), num(&out, "axis", "height"));
        let ys = path_ys(&attrs(&out, "line score", "d")[0]);
        assert_eq!(ys, [top + h, top + h / 2.0, top, top]);
        assert_eq!(attrs(&out, "tick y", "y").len(), 3);
        assert!(out.contains(">0.50</text>") && out.contains(">1.00</text>"));
    }

    #[test]
    fn x_ticks_inside_and_formatted() {
        let (day, t0) = (86400, 1_700_000_000);
        let hm = [(6 * 3600, "HH:MM"), (2 * day, "HH:MM")];
        let md = [(30 * day, "MM-DD"), (400 * day, "MM-DD")];
        for (span, pat) in hm.into_iter().chain(md).chain([(3 * day, "MM-DD HH:MM")]) {
            let ticks = x_ticks(t0, t0 + span);
            assert!((3..=8).contains(&ticks.len()), "{span}: {ticks:?}");
            for (t, s) in &ticks {
                assert!((t0..=t0 + span).contains(t));
                assert_eq!(s.len(), pat.len(), "{s} vs {pat}");
            }
        }
        assert_eq!(x_ticks(1_700_006_400, 1_700_028_000)[0].1, "00:00");
        assert_eq!(fmt_time(1_700_006_400, true, false), "11-15 00:00");
        assert_eq!(fmt_time(951_782_400, true, true), "02-29");
        let mut c = chart(vec![line("h", vec![(t0, 1.0)])]);
        c.x_range = (t0, t0 + 6 * 3600);
        let xs = attrs(&render(&c), "tick x", "x");
        let inside = |x: &String| x.parse().is_ok_and(|x| (MARGIN_LEFT..=RIGHT).contains(&x));
        assert!(xs.len() >= 3 && xs.iter().all(inside), "{xs:?}");
    }

    #[test]
    fn format_value_units() {
        use Unit::*;
        let f = format_value;
        assert_eq!(f(1.5e9, Bytes), "1.5 GB");
        assert_eq!(f(500.0, Bytes), "500 B");
        assert_eq!(f(90.0, Seconds), "1.5 min");
        assert_eq!(f(3.0 * 86400.0, Seconds), "3 d");
        assert_eq!(f(0.25, Seconds), "250 ms");
        assert_eq!(f(0.0, Seconds), "0 s");
        assert_eq!(f(1234.0, Plain), "1.23k");
        assert_eq!(f(3.4e6, Plain), "3.4M");
        assert_eq!(f(-1200.0, Plain), "-1.2k");
        assert_eq!(f(999.9, Plain), "1k");
        assert_eq!(f(0.1 + 0.2, Plain), "0.3");
        assert_eq!(f(0.456, Ratio), "0.46");
        assert_eq!(f(-0.001, Ratio), "0.00");
        assert_eq!(f(f64::NAN, Plain), "—");
        assert_eq!(f(f64::INFINITY, Bytes), "+Inf");
        assert_eq!(f(1e300, Plain), "1e282E");
        assert_eq!(f(1e300, Seconds), "1.16e295 d");
        assert_eq!(f(1e-9, Plain), "1e-9");
    }

    #[test]
    fn decimation_keeps_spike() {
        let pts = (0..20_000).map(|i| (i, if i == 12_345 { 100.0 } else { (i % 7) as f64 }));
        let mut c = chart(vec![line("h", pts.collect())]);
        c.x_range = (0, 20_000);
        let out = render(&c);
        let ys = path_ys(&attrs(&out, "line h", "d")[0]);
        assert!(ys.len() <= 2 * 880, "{}", ys.len());
        let peak = ys.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(peak < num(&out, "axis", "y") + 20.0, "spike lost: {peak}");
    }

    #[test]
    fn spans_are_clipped() {
        let mut c = chart(vec![line("h", vec![(0, 1.0), (3600, 2.0)])]);
        c.spans = vec![
            span("firing", "a", -1000, 1800),
            span("firing", "b", 9000, 1800),
            span("pending", "c", 5000, 6000),
        ];
        let out = render(&c);
        let xs = attrs(&out, "span firing", "x");
        let ws = attrs(&out, "span firing", "width");
        let (left, mid) = (N(MARGIN_LEFT).to_string(), N(MARGIN_LEFT + PLOT_W / 2.0));
        assert_eq!(xs, [left, mid.to_string()]);
        let half = N(PLOT_W / 2.0).to_string();
        assert_eq!(ws, [half.clone(), half]);
        assert!(!out.contains("span pending"));
        assert_eq!(out.matches("class=\"swatch span firing\"").count(), 1);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let weird = vec![(0, 1e300), (1, -1e300), (1, f64::MAX), (i64::MAX, 5.0)];
        let (max, min) = (i64::MAX, i64::MIN);
        let xs = [(100, 100), (100, 0), (max, min), (min, max), (max, 0)];
        let ys = [None, Some((1.0, 1.0)), Some((2.0, -2.0))];
        let ys = ys.into_iter().chain([Some((f64::NAN, 1.0))]);
        for (x_range, y_fixed) in ys.flat_map(|y| xs.map(|x| (x, y))) {
            for height in [0, 1, 120, u32::MAX] {
                let mut c = chart(vec![line("a", weird.clone()), line("b", vec![(100, 7.0)])]);
                (c.x_range, c.y_fixed, c.height) = (x_range, y_fixed, height);
                c.lines.push(line("c", vec![(min, 1.0)]));
                c.bands = vec![Band::default()];
                c.bands[0].points = vec![(100, 1.0, 1.0)];
                c.hlines = vec![HLine::default()];
                c.hlines[0].value = f64::NEG_INFINITY;
                c.markers = vec![Marker::default()];
                c.markers[0].at = 100;
                c.spans.push(span("s", "s", min, max));
                let out = render(&c);
                assert!(!out.contains("NaN") && !out.contains("inf"), "{out}");
            }
        }
        let (a, b) = y_range(None, &[5.0, 5.0]);
        assert!(a < 5.0 && b > 5.0);
        assert_eq!(y_range(Some((2.0, -2.0)), &[9.0]), (-2.0, 2.0));
        assert_eq!(norm_x((10, 3)), (10, 11));
        assert_eq!(norm_x((max, 0)), (max - 1, max));
    }
}
