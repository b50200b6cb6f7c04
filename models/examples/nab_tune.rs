//! Tuning harness: runs a fresh [`Detector`] over every file of a NAB data directory and prints
//! the NAB scores of all three profiles, per-category scores and per-file TP/FP/FN.
//!
//! Usage: `cargo run --release -p prognos-models --example nab_tune -- DIR [--quiet]`, where DIR
//! holds `data/<category>/<file>.csv` and `labels/combined_windows.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use prognos_models::detector::{Detector, DetectorConfig};
use prognos_models::nab::{NabFile, PROFILES, score_corpus, score_file};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) to unix seconds.
fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let days = days_from_civil(num(0, 4)?, num(5, 7)?, num(8, 10)?);
    Some(days * 86_400 + num(11, 13)? * 3600 + num(14, 16)? * 60 + num(17, 19)?)
}

/// Reads a `timestamp,value` CSV.
fn read_csv(path: &Path) -> Vec<(i64, f64)> {
    let text = std::fs::read_to_string(path).expect("read csv");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (t, v) = line.split_once(',')?;
            Some((parse_ts(t)?, v.trim().parse().ok()?))
        })
        .collect()
}

/// Parses NAB's `combined_windows.json`: every quoted string in order; one ending in `.csv` opens
/// a file, the timestamps after it pair up into windows.
fn read_windows(path: &Path) -> BTreeMap<String, Vec<(i64, i64)>> {
    let text = std::fs::read_to_string(path).expect("read labels");
    let mut out: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    let mut key = String::new();
    let mut pending: Option<i64> = None;
    for (i, part) in text.split('"').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        if part.ends_with(".csv") {
            key = part.to_string();
            out.entry(key.clone()).or_default();
            pending = None;
        } else if let Some(t) = parse_ts(part) {
            match pending.take() {
                None => pending = Some(t),
                Some(start) => out.entry(key.clone()).or_default().push((start, t)),
            }
        }
    }
    out
}

/// Overrides one config field from a `name=value` argument.
fn set_field(c: &mut DetectorConfig, kv: &str) {
    let (k, v) = kv
        .split_once('=')
        .unwrap_or_else(|| panic!("expected name=value, got {kv}"));
    let f: f64 = v.parse().unwrap_or_else(|_| panic!("bad number in {kv}"));
    let u = f as usize;
    match k {
        "warmup_points" => c.warmup_points = u,
        "level_alpha" => c.level_alpha = f,
        "season_alpha" => c.season_alpha = f,
        "scale_alpha" => c.scale_alpha = f,
        "clip" => c.clip = f,
        "daily_bins" => c.daily_bins = u,
        "weekly_bins" => c.weekly_bins = u,
        "raw_half" => c.raw_half = f,
        "short_window" => c.short_window = u,
        "history_block" => c.history_block = u,
        "history_blocks" => c.history_blocks = u,
        "likelihood_std_floor" => c.likelihood_std_floor = f,
        "extreme_margin" => c.extreme_margin = f,
        "surprise_extreme_factor" => c.surprise_extreme_factor = f,
        "surprise_extreme_score" => c.surprise_extreme_score = f,
        "surprise_max_decay" => c.surprise_max_decay = f,
        "pattern_samples" => c.pattern_samples = u,
        "pattern_clusters" => c.pattern_clusters = u,
        "pattern_phase_weight" => c.pattern_phase_weight = f,
        "pattern_weight" => c.pattern_weight = f,
        "pattern_half" => c.pattern_half = f,
        "alert_level" => c.alert_level = f,
        "rest_points" => c.rest_points = u,
        _ => panic!("unknown config field {k}"),
    }
}

/// Prints a file's windows (as rows) and its detections at `threshold`.
fn print_detail(f: &NabFile, threshold: f64) {
    let probation = prognos_models::nab::probation_rows(f.timestamps.len());
    let rows: Vec<String> = f
        .windows
        .iter()
        .map(|&(a, b)| {
            let l = f.timestamps.partition_point(|&t| t < a);
            let r = f.timestamps.partition_point(|&t| t <= b);
            format!("[{l},{r})")
        })
        .collect();
    let hits: Vec<String> = f
        .scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| i >= probation && s >= threshold)
        .map(|(i, s)| format!("{i}:{s:.2}"))
        .collect();
    println!(
        "      n {} probation {probation} windows {} hits {}",
        f.timestamps.len(),
        rows.join(" "),
        hits.join(" ")
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "/work/shared/data/nab".into());
    let mut config = DetectorConfig::default();
    let (mut quiet, mut detail, mut dump) = (false, false, None);
    for arg in args {
        match arg.as_str() {
            a if a.starts_with("--dump=") => dump = Some(a["--dump=".len()..].to_string()),
            "--quiet" => quiet = true,
            "--detail" => detail = true,
            kv => set_field(&mut config, kv),
        }
    }
    let dir = Path::new(&dir);
    let windows = read_windows(&dir.join("labels/combined_windows.json"));

    let mut files = Vec::new();
    let mut points = 0usize;
    let mut elapsed = 0.0f64;
    for (name, wins) in &windows {
        let rows = read_csv(&dir.join("data").join(name));
        let start = Instant::now();
        let mut det = Detector::new(config.clone());
        let scores: Vec<f64> = rows.iter().map(|&(t, v)| det.update(t, v)).collect();
        elapsed += start.elapsed().as_secs_f64();
        points += rows.len();
        files.push(NabFile {
            name: name.clone(),
            timestamps: rows.iter().map(|r| r.0).collect(),
            scores,
            windows: wins.clone(),
        });
    }

    if let Some(out) = &dump {
        // One `scores` file per series, for plotting next to the data.
        for f in &files {
            let path = Path::new(out).join(f.name.replace('/', "__"));
            let text: String = f.scores.iter().map(|s| format!("{s}\n")).collect();
            std::fs::write(path, text).expect("write dump");
        }
    }

    let start = Instant::now();
    let results = score_corpus(&files);
    let scoring = start.elapsed().as_secs_f64();
    for r in &results {
        println!(
            "{:<20} score {:6.2}  threshold {:.4}  raw {:8.3}  tp {:3} fp {:4} fn {:3}",
            r.profile, r.normalized, r.threshold, r.raw_score, r.tp, r.fp, r.fn_
        );
    }

    let standard = &PROFILES[0];
    let threshold = results[0].threshold;
    let mut categories: BTreeMap<&str, (f64, usize, usize, usize, usize)> = BTreeMap::new();
    for f in &files {
        let (raw, tp, fp, fn_) = score_file(f, standard, threshold);
        let cat = f.name.split('/').next().unwrap_or("");
        let c = categories.entry(cat).or_default();
        c.0 += raw;
        c.1 += tp;
        c.2 += fp;
        c.3 += fn_;
        c.4 += tp + fn_;
        if !quiet {
            println!("  {:<58} tp {tp} fp {fp:3} fn {fn_}  raw {raw:7.3}", f.name);
        }
        if detail {
            print_detail(f, threshold);
        }
    }
    println!("per category (standard profile, corpus threshold):");
    for (cat, (raw, tp, fp, fn_, nw)) in &categories {
        let nw = *nw as f64;
        let norm = if nw > 0.0 {
            format!("{:6.1}", 100.0 * (raw + nw) / (2.0 * nw))
        } else {
            "     -".into()
        };
        println!("  {cat:<24} {norm}  tp {tp:2} fp {fp:3} fn {fn_:2}  raw {raw:7.3}");
    }
    println!(
        "{points} points in {elapsed:.3} s: {:.0} points/s; corpus scoring {scoring:.3} s",
        points as f64 / elapsed
    );
}
