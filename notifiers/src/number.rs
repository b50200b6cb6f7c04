//! Numbers for people, shared by the message text and the chart's axes:
//! `short_number` ("950k", "1.23M", "0.97", "1.5e-6", "n/a") and its helpers.

/// A number for people: "n/a" when not finite, SI suffixes from a thousand
/// on (`1.23M`, `950k`), at most four significant digits otherwise.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a < 1e-3 {
        return format!("{sign}{}", scientific(a));
    }
    if a < 1000.0 {
        let s = significant(a, 4);
        // Rounding can carry into the thousands (999.96 → "1000"): that is still readable.
        return format!("{sign}{s}");
    }
    const SUFFIXES: [(f64, &str); 5] =
        [(1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")];
    for (i, (scale, suffix)) in SUFFIXES.iter().enumerate() {
        let scaled = a / scale;
        if scaled >= 1000.0 && i + 1 < SUFFIXES.len() {
            continue;
        }
        let s = significant(scaled, 3);
        // 999,950 rounds to "1000k": say "1M" instead.
        if s == "1000"
            && let Some((_, next)) = SUFFIXES.get(i + 1)
        {
            return format!("{sign}1{next}");
        }
        if scaled >= 1000.0 {
            return format!("{sign}{}", scientific(a));
        }
        return format!("{sign}{s}{suffix}");
    }
    format!("{sign}{}", scientific(a))
}

/// `a` (positive, finite) with `digits` significant digits, trailing zeros trimmed.
fn significant(a: f64, digits: i32) -> String {
    let magnitude = a.log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{a:.decimals$}");
    trim_zeros(s)
}

/// `a` in scientific notation with three significant digits, e.g. `1.5e-6`.
fn scientific(a: f64) -> String {
    let s = format!("{a:.2e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa.to_string())),
        None => s,
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_readable() {
        let cases = [
            (0.0, "0"),
            (120.0, "120"),
            (0.97, "0.97"),
            (123.456, "123.5"),
            (1500.0, "1.5k"),
            (950_000.0, "950k"),
            (1_234_567.0, "1.23M"),
            (1.2e9, "1.2G"),
            (999_950.0, "1M"),
            (-12_345.0, "-12.3k"),
            (0.001234, "0.001234"),
            (1.5e-6, "1.5e-6"),
            (3.2e20, "3.2e20"),
            (f64::NAN, "n/a"),
            (f64::INFINITY, "n/a"),
            (f64::NEG_INFINITY, "n/a"),
        ];
        for (v, want) in cases {
            assert_eq!(short_number(v), want, "{v}");
        }
    }
}
