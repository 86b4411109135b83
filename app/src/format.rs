//! How numbers and times read on screen.

use chrono::{DateTime, Utc};

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
    fn ages_use_the_largest_unit() {
        let now = "2026-11-24T12:00:00Z".parse().unwrap();
        let at = |s: i64| now - chrono::Duration::seconds(s);
        assert_eq!(ago(at(12), now), "12 s ago");
        assert_eq!(ago(at(300), now), "5 min ago");
        assert_eq!(ago(at(7200), now), "2 h ago");
        assert_eq!(ago(at(-5), now), "0 s ago");
    }
}
