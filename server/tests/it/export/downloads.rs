//! A download that breaks says so: a service read that fails half-way breaks it rather than
//! end the file short, and a compressed one arrives whole, even when empty.

use super::*;

const OUTAGE: u64 = 100_000;

/// The service's database goes away after the file began: the download fails, rather than
/// end as a file that looks whole.
#[tokio::test]
async fn an_export_cut_off_half_way_breaks_the_download() {
    let fleet = common::start_fleet(Backend::Postgres).await;
    runboard_fleet::seed_outage(
        &fleet.service("onboarding").database_url,
        "onboarding",
        OUTAGE,
    )
    .await
    .unwrap();
    let mut onboarding = registered(fleet.service("onboarding"));
    let proxy = database_behind_proxy(&mut onboarding).await;
    let s = setup_with(fleet, Backend::Postgres)
        .configure(|config| config.services = vec![onboarding])
        .await;
    let mut response = s
        .vera
        .request(Method::GET, "/api/v1/services/onboarding/sagas?format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the first page was read");
    proxy.cut();
    let mut received = 0;
    let broke = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        broke,
        "the download ended as if whole after {received} bytes"
    );
}

/// Browsers ask for compressed answers: an export compressed on its way out arrives whole,
/// an empty one too (the stream of pages was polled past its end and the connection died).
#[tokio::test]
async fn a_compressed_export_arrives_whole_even_when_empty() {
    let s = setup_with_alerts(Backend::Sqlite).await;
    for query in ["status=failed", "error=no%20such%20error"] {
        let response = s
            .vera
            .request(
                Method::GET,
                &format!("/api/v1/services/payments/sagas?{query}&format=csv"),
            )
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "{query}");
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{query}: the download broke off: {e}"));
        assert!(!body.is_empty(), "{query}");
    }
}
