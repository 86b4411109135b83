//! How numbers and times read on screen.

use chrono::{DateTime, Utc};

/// Links are written as the server writes them in its messages.
pub use runboard_model::{query_string, url_encode};

/// `1234567` → `1,234,567`: counts are compared at a glance, so they are grouped.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A decimal amount with its integer part grouped: `1234567.50` → `1,234,567.50`.
pub fn amount(value: &rust_decimal::Decimal) -> String {
    let text = value.to_string();
    let (sign, unsigned) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |t| ("-", t));
    let (int, frac) = unsigned
        .split_once('.')
        .map_or((unsigned, None), |(i, f)| (i, Some(f)));
    let grouped = thousands(int.parse().unwrap_or(0));
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `2026-11-30 23:42:28 UTC`: the exact time as the server renders it. Written field by
/// field: a page shows a hundred of these, and `format("%Y…")` parses its pattern each time.
pub fn utc_text(at: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The `datetime` attribute of a `<time>`: RFC 3339 to the second.
pub fn machine_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How long ago `at` was, in the largest unit that fits: `12 s ago`, `5 min ago`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// How long until `at`, in the largest unit that fits: `in about 12 min`.
pub fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (at - now).num_seconds().max(0);
    match seconds {
        s if s < 60 => "in less than a minute".to_owned(),
        s if s < 3600 => format!("in about {} min", (s + 59) / 60),
        s if s < 86_400 => format!("in about {} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("in about {} days", s / 86_400),
    }
}

/// A share as a whole percentage, never rounding a non-zero share down to 0 %.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0 %".to_owned();
    }
    let exact = part as f64 * 100.0 / whole as f64;
    let shown = if part > 0 && exact < 1.0 {
        1.0
    } else {
        exact.floor()
    };
    format!("{shown:.0} %")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn amounts_keep_their_decimals() {
        assert_eq!(amount(&"1234567.50".parse().unwrap()), "1,234,567.50");
        assert_eq!(amount(&"-1000".parse().unwrap()), "-1,000");
        assert_eq!(amount(&"0.10".parse().unwrap()), "0.10");
    }

    #[test]
    fn etas_and_shares_read_naturally() {
        let now = "2026-11-24T12:00:00Z".parse().unwrap();
        let later = |s: i64| now + chrono::Duration::seconds(s);
        assert_eq!(until(later(30), now), "in less than a minute");
        assert_eq!(until(later(11 * 60 + 1), now), "in about 12 min");
        assert_eq!(until(later(2 * 3600 + 300), now), "in about 2 h 5 min");
        assert_eq!(percent(0, 5000), "0 %");
        assert_eq!(percent(1, 5000), "1 %");
        assert_eq!(percent(4999, 5000), "99 %");
        assert_eq!(percent(5000, 5000), "100 %");
    }

    #[test]
    fn ages_use_the_largest_unit() {
        let now = "2026-11-24T12:00:00Z".parse().unwrap();
        let at = |s: i64| now - chrono::Duration::seconds(s);
        assert_eq!(ago(at(12), now), "12 s ago");
        assert_eq!(ago(at(300), now), "5 min ago");
        assert_eq!(ago(at(7200), now), "2 h ago");
        assert_eq!(ago(at(-5), now), "0 s ago");
    }
}
