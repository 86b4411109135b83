//! Runboard's page addresses as links are written: percent-encoded values and query strings,
//! the same in the browser and in the messages the server sends.

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub fn url_encode(value: &str) -> String {
    use std::fmt::Write;
    let mut encoded = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(b));
            }
            _ => {
                let _ = write!(encoded, "%{b:02X}");
            }
        }
    }
    encoded
}

/// `?a=1&b=2` from the pairs whose value is not empty; `""` when none is.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let parts: Vec<String> = pairs
        .into_iter()
        .filter_map(|(key, value)| {
            value
                .filter(|v| !v.is_empty())
                .map(|v| format!("{key}={}", url_encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_survive_the_url() {
        assert_eq!(url_encode("pay ments&x=1"), "pay%20ments%26x%3D1");
        assert_eq!(url_encode("café"), "caf%C3%A9");
        assert_eq!(
            query_string([
                ("status", Some("failed")),
                ("type", None),
                ("error", Some("a b"))
            ]),
            "?status=failed&error=a%20b"
        );
        assert_eq!(query_string([("q", Some(""))]), "");
    }
}
