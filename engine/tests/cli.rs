//! The offline CLI end to end: the real `prognos` binary on real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prognos_models::synthetic::{Shape, series};

fn prognos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs prognos")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write input");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A week of 5-minute data with a daily season and a spike near the end.
fn week_csv(n: usize) -> String {
    let mut y = series(&Shape::default(), 1_700_000_000, n, 5);
    if n > 1900 {
        y[1900] += 400.0;
    }
    let mut text = String::from("timestamp,value\n");
    for (i, v) in y.iter().enumerate() {
        text.push_str(&format!("{},{v}\n", 1_700_000_000 + 300 * i as i64));
    }
    text
}

fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn detect_keeps_rows_and_order_and_scores_in_unit_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.csv", &week_csv(2016));
    let out = dir.path().join("out.csv");
    let o = prognos(&["detect", "--input", s(&input), "--output", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rows(&std::fs::read_to_string(&out).expect("output"));
    let want = rows(&std::fs::read_to_string(&input).expect("input"));
    assert_eq!(got[0], ["timestamp", "value", "anomaly_score"]);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want).skip(1) {
        assert_eq!(g[..2], w[..2]);
        let score: f64 = g[2].parse().expect("a number");
        assert!((0.0..=1.0).contains(&score));
    }
    let spike: f64 = got[1901][2].parse().expect("a number");
    assert!(spike >= 0.5, "the injected spike scores {spike}");
}

#[test]
fn detect_is_causal_cutting_the_input_keeps_earlier_scores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = week_csv(2016);
    let cut: String = full.lines().take(1201).map(|l| format!("{l}\n")).collect();
    let (a, b) = (
        write(dir.path(), "full.csv", &full),
        write(dir.path(), "cut.csv", &cut),
    );
    let (oa, ob) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    assert!(
        prognos(&["detect", "-i", s(&a), "-o", s(&oa)])
            .status
            .success()
    );
    assert!(
        prognos(&["detect", "-i", s(&b), "-o", s(&ob)])
            .status
            .success()
    );
    let (ra, rb) = (
        std::fs::read_to_string(&oa).expect("a"),
        std::fs::read_to_string(&ob).expect("b"),
    );
    let ra: Vec<&str> = ra.lines().collect();
    let rb: Vec<&str> = rb.lines().collect();
    assert_eq!(rb.len(), 1201);
    assert_eq!(ra[..1201], rb[..]);
}

#[test]
fn detect_header_only_gives_header_only_and_bad_rows_name_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "h.csv", "timestamp,value\n");
    let out = dir.path().join("o.csv");
    assert!(
        prognos(&["detect", "-i", s(&input), "-o", s(&out)])
            .status
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "timestamp,value,anomaly_score\n"
    );

    let bad = write(
        dir.path(),
        "bad.csv",
        "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,twelve\n",
    );
    let o = prognos(&["detect", "-i", s(&bad), "-o", s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.csv:3:2: field 'value': expected a number, got 'twelve'"),
        "{err}"
    );

    let empty = write(dir.path(), "empty.csv", "");
    let o = prognos(&["detect", "-i", s(&empty), "-o", s(&out)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty file"));
}

#[test]
fn detect_constant_series_is_not_anomalous_and_nan_rows_score_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("timestamp,value\n");
    for i in 0..3000 {
        let v = if i % 500 == 7 {
            "NaN".to_string()
        } else {
            "42".to_string()
        };
        text.push_str(&format!("{},{v}\n", i * 60));
    }
    let input = write(dir.path(), "flat.csv", &text);
    let out = dir.path().join("o.csv");
    assert!(
        prognos(&["detect", "-i", s(&input), "-o", s(&out)])
            .status
            .success()
    );
    let got = std::fs::read_to_string(&out).expect("out");
    assert!(
        got.lines().skip(1).all(|l| l.ends_with(",0.000000")),
        "a constant series scored"
    );
}

#[test]
fn detect_explain_adds_the_parts_and_keeps_the_scores() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A week with a spike at row 1900, and two rows without a value.
    let mut text = week_csv(2016);
    for i in [700, 1500] {
        let ts = 1_700_000_000 + 300 * i as i64;
        let row = text
            .lines()
            .position(|l| l.starts_with(&format!("{ts},")))
            .expect("row");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[row] = format!("{ts},");
        text = lines.join("\n") + "\n";
    }
    let input = write(dir.path(), "in.csv", &text);
    let (plain, explained) = (dir.path().join("plain.csv"), dir.path().join("ex.csv"));
    let o = prognos(&["detect", "-i", s(&input), "-o", s(&plain)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = prognos(&["detect", "-i", s(&input), "-o", s(&explained), "--explain"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = rows(&std::fs::read_to_string(&plain).expect("plain"));
    let got = rows(&std::fs::read_to_string(&explained).expect("explained"));
    assert_eq!(plain[0], ["timestamp", "value", "anomaly_score"]);
    assert_eq!(
        got[0],
        [
            "timestamp",
            "value",
            "anomaly_score",
            "expected",
            "model",
            "surprise",
            "raw_score",
            "likelihood",
            "extreme",
            "onset_score",
            "sustained_score"
        ]
    );
    assert_eq!(got.len(), plain.len());
    assert!(got.iter().all(|r| r.len() == 11));
    for (i, (g, p)) in got.iter().zip(&plain).enumerate().skip(1) {
        // The same rows and the same scores as without --explain.
        assert_eq!(g[..3], p[..], "row {i}");
        if g[1].is_empty() || i == 1 {
            // Not scored (no value) or nothing seen before: no expectation.
            assert_eq!(g[3..5], ["", ""], "row {i}");
            continue;
        }
        let expected: f64 = g[3].parse().expect("expected is a number");
        assert!(expected.is_finite());
        assert!(
            ["level", "daily", "weekly"].contains(&g[4].as_str()),
            "{g:?}"
        );
        for part in &g[5..] {
            let x: f64 = part.parse().expect("a number");
            assert!(x >= 0.0 && (part == &g[5] || x <= 1.0), "row {i}: {g:?}");
        }
    }
    for i in [701, 1501] {
        assert_eq!(
            got[i][1..],
            [
                "", "0.000000", "", "", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000",
                "0.000000"
            ]
        );
    }
    // The spike is a new extreme, reported as an onset.
    let spike = &got[1901];
    assert_eq!(
        (spike[8].as_str(), spike[9].as_str()),
        ("1.000000", "1.000000"),
        "{spike:?}"
    );
}

#[test]
fn forecast_writes_the_horizon_after_the_last_row_with_ordered_bands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.csv", &week_csv(2016));
    let out = dir.path().join("f.csv");
    let o = prognos(&[
        "forecast",
        "-i",
        s(&input),
        "--horizon",
        "24",
        "--level",
        "0.9",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rows(&std::fs::read_to_string(&out).expect("out"));
    assert_eq!(got[0], ["timestamp", "yhat", "yhat_lower", "yhat_upper"]);
    assert_eq!(got.len(), 25);
    let last = 1_700_000_000 + 300 * 2015;
    for (k, r) in got.iter().skip(1).enumerate() {
        assert_eq!(r[0], (last + 300 * (k as i64 + 1)).to_string());
        let v: Vec<f64> = r[1..].iter().map(|x| x.parse().expect("number")).collect();
        assert!(v[1] <= v[0] && v[0] <= v[2], "row {k}: {v:?}");
    }
}

#[test]
fn forecast_follows_the_input_timestamp_style_and_handles_unsorted_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "timestamp,value\n2014-04-01 00:10:00,3\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n2014-04-01 00:05:00,2\n2014-04-01 00:15:00,4\n";
    let input = write(dir.path(), "u.csv", text);
    let out = dir.path().join("f.csv");
    let o = prognos(&[
        "forecast",
        "-i",
        s(&input),
        "--horizon",
        "2",
        "--model",
        "linear",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rows(&std::fs::read_to_string(&out).expect("out"));
    assert_eq!(got[1][0], "2014-04-01 00:20:00");
    assert!((got[1][1].parse::<f64>().expect("number") - 5.0).abs() < 1e-9);
    assert!((got[2][1].parse::<f64>().expect("number") - 6.0).abs() < 1e-9);
}

#[test]
fn forecast_reports_time_to_threshold_of_a_filling_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A disk filling by 1 GB an hour from 100 GB, with a little noise: 500 GB in about 16 days.
    let mut text = String::from("timestamp,value\n");
    for i in 0..(24 * 14) {
        let v = 100e9 + 1e9 * i as f64 + ((i * 7919) % 13) as f64 * 1e7;
        text.push_str(&format!("{},{v}\n", i * 3600));
    }
    let input = write(dir.path(), "disk.csv", &text);
    let out = dir.path().join("f.csv");
    let o = prognos(&[
        "forecast",
        "-i",
        s(&input),
        "--horizon",
        "720",
        "--threshold",
        "500e9",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    // The last point is hour 335 at 435 GB; 500 GB comes at hour 400, 65 hours later (2d 17h):
    // accept 2d 10h to 2d 19h.
    assert!(err.contains("rises to 500000000000 in ~2d 1"), "{err}");
    let o = prognos(&[
        "forecast",
        "-i",
        s(&input),
        "--horizon",
        "24",
        "--threshold",
        "500e9",
        "-o",
        s(&out),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not within the horizon"));
}

#[test]
fn forecast_bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.csv");
    let one = write(dir.path(), "one.csv", "timestamp,value\n1,5\n");
    let o = prognos(&["forecast", "-i", s(&one), "--horizon", "3", "-o", s(&out)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("need at least 3 rows with values"));

    let ok = write(dir.path(), "ok.csv", "timestamp,value\n1,5\n2,6\n3,7\n");
    let o = prognos(&[
        "forecast",
        "-i",
        s(&ok),
        "--horizon",
        "3",
        "--level",
        "1.5",
        "-o",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("strictly between 0 and 1"));

    let o = prognos(&[
        "forecast",
        "-i",
        s(&ok),
        "--horizon",
        "3",
        "--model",
        "prophet",
        "-o",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be one of"));

    let o = prognos(&["forecast", "-i", s(&ok), "--horizon", "0", "-o", s(&out)]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "timestamp,yhat,yhat_lower,yhat_upper\n"
    );

    let o = prognos(&[
        "forecast",
        "-i",
        s(&ok),
        "--horizon",
        "3",
        "--model",
        "mstl",
        "-o",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("mstl needs at least"));
}

#[test]
fn forecast_constant_series_is_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("timestamp,value\n");
    for i in 0..600 {
        text.push_str(&format!("{},9.5\n", i * 300));
    }
    let input = write(dir.path(), "c.csv", &text);
    let out = dir.path().join("f.csv");
    assert!(
        prognos(&[
            "forecast",
            "-i",
            s(&input),
            "--horizon",
            "12",
            "-o",
            s(&out)
        ])
        .status
        .success()
    );
    for r in rows(&std::fs::read_to_string(&out).expect("out"))
        .iter()
        .skip(1)
    {
        assert!(
            (r[1].parse::<f64>().expect("number") - 9.5).abs() < 1e-9,
            "{r:?}"
        );
    }
}

#[test]
fn eval_nab_scores_a_small_corpus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // A daily series with a level shift inside the labelled window.
    let mut y = series(
        &Shape {
            step_secs: 300,
            ..Shape::default()
        },
        1_400_000_000,
        4000,
        9,
    );
    for v in &mut y[3000..] {
        *v += 300.0;
    }
    let mut text = String::from("timestamp,value\n");
    let ts = |i: i64| {
        chrono::DateTime::from_timestamp(1_400_000_000 + 300 * i, 0)
            .expect("valid")
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    for (i, v) in y.iter().enumerate() {
        text.push_str(&format!("{},{v}\n", ts(i as i64)));
    }
    write(&data, "cat/shift.csv", &text);
    let labels = write(
        dir.path(),
        "windows.json",
        &format!(
            "{{\"cat/shift.csv\": [[\"{}.000000\", \"{}.000000\"]]}}",
            ts(2800),
            ts(3200)
        ),
    );
    let o = prognos(&[
        "eval",
        "nab",
        "--data",
        s(&data),
        "--labels",
        s(&labels),
        "--verbose",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("NAB: 1 files, 4000 rows, 1 anomaly windows"),
        "{out}"
    );
    let standard: f64 = out
        .lines()
        .find(|l| l.starts_with("standard"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("a standard score");
    assert!(standard > 50.0, "{out}");
    assert!(out.contains("reward_low_FP_rate") && out.contains("reward_low_FN_rate"));
}

#[test]
fn eval_nab_names_a_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels = write(dir.path(), "w.json", "{\"cat/nope.csv\": []}");
    let o = prognos(&[
        "eval",
        "nab",
        "--data",
        s(dir.path()),
        "--labels",
        s(&labels),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.csv"));
}

#[test]
fn eval_forecast_compares_with_baselines() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a/week.csv", &week_csv(2016 * 2));
    let o = prognos(&[
        "eval",
        "forecast",
        "--data",
        s(dir.path()),
        "--horizons",
        "12,288",
        "--origins",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let mase = |model: &str| -> f64 {
        out.lines()
            .find(|l| l.starts_with(model))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {model} row in {out}"))
    };
    assert!(mase("auto") < mase("linear"), "{out}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["detect", "--help"],
        &["forecast", "--help"],
        &["eval", "--help"],
        &["eval", "nab", "--help"],
        &["eval", "forecast", "--help"],
    ] {
        let o = prognos(args);
        assert!(o.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

/// Runs prognos expecting a clear refusal: a non-zero exit that is not a
/// panic (101) or an abort (a signal), a short stderr holding `expected`.
fn refused(args: &[&str], expected: &str) -> String {
    let o = prognos(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let code = o.status.code();
    assert!(
        matches!(code, Some(1 | 2)),
        "{args:.3?}: exit {code:?} (101 is a panic, none a signal): {stderr:.500}"
    );
    assert!(!stderr.contains("panicked"), "{args:.3?}: {stderr:.500}");
    assert!(
        stderr.contains(expected),
        "{args:.3?}: wanted {expected:?} in {stderr:.500}"
    );
    assert!(
        stderr.len() < 2_000,
        "{args:.3?}: {} bytes of stderr",
        stderr.len()
    );
    stderr
}

#[test]
fn huge_horizons_are_refused_not_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.csv", &week_csv(300));
    let out = dir.path().join("f.csv");
    for horizon in ["18446744073709551615", "4294967296000", "8641"] {
        refused(
            &[
                "forecast",
                "-i",
                s(&input),
                "--horizon",
                horizon,
                "-o",
                s(&out),
            ],
            "too large, at most 8640",
        );
    }
    refused(
        &[
            "eval",
            "forecast",
            "--data",
            s(dir.path()),
            "--horizons",
            "12,18446744073709551615",
        ],
        "too large, at most 8640",
    );
    // The limit itself is allowed.
    let o = prognos(&[
        "forecast",
        "-i",
        s(&input),
        "--horizon",
        "8640",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = std::fs::read_to_string(&out).expect("out");
    assert_eq!(written.lines().count(), 8641, "header and 8640 steps");
}

#[test]
fn nan_and_infinity_are_refused_where_a_number_is_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "in.csv", &week_csv(300));
    let out = dir.path().join("f.csv");
    for flag in [
        "--threshold=NaN",
        "--threshold=inf",
        "--threshold=-Infinity",
        "--level=NaN",
    ] {
        let stderr = refused(
            &[
                "forecast",
                "-i",
                s(&input),
                "--horizon",
                "3",
                flag,
                "-o",
                s(&out),
            ],
            "expected a finite number",
        );
        assert!(!stderr.contains("rises to NaN"), "{stderr}");
    }
    refused(
        &[
            "eval",
            "forecast",
            "--data",
            s(dir.path()),
            "--level",
            "nan",
        ],
        "expected a finite number",
    );
    refused(
        &["history", "--days", "NaN", "-o", s(&out)],
        "expected a finite number",
    );
}

#[test]
fn timestamps_near_i64_max_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.csv");
    let near_max = write(
        dir.path(),
        "max.csv",
        "timestamp,value\n9223372036854775000,1\n9223372036854775100,2\n9223372036854775200,3\n",
    );
    for command in ["forecast", "detect"] {
        let mut args = vec![command, "-i", s(&near_max), "-o", s(&out)];
        if command == "forecast" {
            args.extend(["--horizon", "3"]);
        }
        let stderr = refused(&args, "too large, at most 253402300799");
        assert!(stderr.contains("max.csv:2:1"), "{stderr}");
    }
    refused(
        &[
            "backtest",
            "--from",
            "0",
            "--to",
            "9223372036854775807",
            "-c",
            s(&dir.path().join("absent.yml")),
        ],
        "too large, at most 253402300799",
    );
    refused(
        &["history", "--end", "99999999999999999999", "-o", s(&out)],
        "too large, at most 253402300799",
    );
    refused(
        &["history", "--step", "9223372036854775807", "-o", s(&out)],
        "too large, at most 86400",
    );
}

#[test]
fn a_huge_csv_field_gets_a_short_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.csv");
    // Past the row limit: reading stops, the error names the line.
    let huge = write(
        dir.path(),
        "huge.csv",
        &format!("timestamp,value\n1,2\n2,{}\n", "7".repeat(8 << 20)),
    );
    refused(
        &["detect", "-i", s(&huge), "-o", s(&out)],
        "huge.csv:3: row longer than 1048576 bytes",
    );
    // Within it: the field is quoted only in part, with line and column.
    let long = write(
        dir.path(),
        "long.csv",
        &format!("timestamp,value\n1,{}\n", "v".repeat(500_000)),
    );
    let stderr = refused(
        &["forecast", "-i", s(&long), "--horizon", "3", "-o", s(&out)],
        "long.csv:2:2: field 'value': expected a number, got 'vvv",
    );
    assert!(stderr.contains("more bytes"), "{stderr}");
}
