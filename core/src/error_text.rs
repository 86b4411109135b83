//! Errors in words for the person who reads them.

use url::Url;

/// An error and its causes on one line: the top level alone often says only "request failed".
/// A URL an HTTP client's error names is shown as [`shown_url`] shows it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = redacted(error);
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&redacted(cause));
        source = cause.source();
    }
    text
}

/// One error's words, the URL of a failed request among them shown without its secrets.
fn redacted(error: &(dyn std::error::Error + 'static)) -> String {
    let text = error.to_string();
    match error
        .downcast_ref::<reqwest::Error>()
        .and_then(reqwest::Error::url)
    {
        Some(url) => text.replace(url.as_str(), &shown_url(url)),
        None => text,
    }
}

/// A URL as errors, logs, records and screens show it: without the userinfo, query and
/// fragment where a key may hide, a query's place kept as `?…` (`https://svc/graphql?…`).
pub(crate) fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Only a URL that cannot have userinfo (no host) refuses; it has none to remove.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    let had_query = shown.query().is_some();
    shown.set_query(None);
    let mut text = String::from(shown);
    if had_query {
        text.push_str("?…");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn a_shown_url_keeps_no_userinfo_query_or_fragment() {
        let url = "https://user:pw@svc.example/graphql?key=s3cret#frag"
            .parse()
            .unwrap();
        assert_eq!(shown_url(&url), "https://svc.example/graphql?…");
        let plain = "http://svc:8080/graphql".parse().unwrap();
        assert_eq!(shown_url(&plain), "http://svc:8080/graphql");
    }
}
