//! Two people at once: their interleaved requests never get each other's identity, and one
//! person known by two subjects cannot approve their own action.

use super::*;

test_on_both_stores!(two_people_interleaved_never_get_each_others_identity);

async fn two_people_interleaved_never_get_each_others_identity(backend: Backend) {
    let _alone = NOT_BESIDE_A_FLEET.lock().await;
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    let alice = signed_in_browser(&app, "alice").await;
    let carol = signed_in_browser(&app, "carol").await;
    let alice_csrf = me(&app, &alice).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol_csrf = me(&app, &carol).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(alice_csrf, carol_csrf);
    let people = [
        (
            &alice,
            "Alice Ops",
            alice_csrf.as_str(),
            "Carol Business",
            carol_csrf.as_str(),
        ),
        (
            &carol,
            "Carol Business",
            carol_csrf.as_str(),
            "Alice Ops",
            alice_csrf.as_str(),
        ),
    ];
    // 190 each: within the per-person burst (200, a few spent signing in), so however fast
    // the machine, no answer is a 429 from the rate limit, which is not what is tested here.
    let requests = (0..380).map(|i| {
        let (client, name, csrf, other, other_csrf) = people[i % 2];
        let app = &app;
        async move {
            match i % 5 {
                // The JSON API, the server function the screens use, a shared screen and the
                // personal account page.
                0 | 1 => {
                    let (status, body) = me(app, client).await;
                    assert_eq!(status, 200);
                    assert_eq!(body["name"], name, "request {i}");
                    assert_eq!(body["csrf_token"], csrf, "request {i}");
                }
                2 => {
                    let body: Value = client
                        .post(app.url("/rpc/me"))
                        .header("origin", &app.address)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert_eq!(body["user"]["name"], name, "request {i}");
                    assert_eq!(body["csrf_token"], csrf, "request {i}");
                }
                3 => {
                    let html = text_at(client, app.url("/")).await;
                    assert!(html.contains("Services"), "request {i}");
                    assert!(
                        !html.contains(other) && !html.contains(other_csrf),
                        "request {i}"
                    );
                }
                _ => {
                    let html = text_at(client, app.url("/account")).await;
                    assert!(html.contains(name) && !html.contains(other), "request {i}");
                    assert!(
                        html.contains(csrf) && !html.contains(other_csrf),
                        "request {i}"
                    );
                }
            }
        }
    });
    futures_util::stream::iter(requests)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
}

/// Held by the interleaving test and the one that starts a demo fleet, so that the two never
/// run at once in this process: beside the fleet's start-up, a page of the interleaving
/// test's server (another tokio runtime in the same process) now and then stalled until the
/// 30 s body timeout cut it. One server per process, as in production, never showed it.
static NOT_BESIDE_A_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Providers such as Okta and Azure AD give one person one `sub` in the ID token and
/// another in the access token: with `person_claim` naming a claim they share, Runboard
/// knows them as one person, and the two-person rule holds across the two.
#[tokio::test]
async fn one_person_signed_in_and_with_an_access_token_of_another_sub_cannot_approve_their_own_action()
 {
    let _alone = NOT_BESIDE_A_FLEET.lock().await;
    let fleet = common::start_fleet(Backend::Sqlite).await;
    let services: Vec<_> = fleet
        .fleet
        .services()
        .iter()
        .map(common::registered)
        .collect();
    let Setup { app, provider } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.services = services;
        config.identity.oidc.as_mut().unwrap().person_claim = "preferred_username".into();
    })
    .await;

    // Alice, signed in through the provider (ID token: sub "alice"), asks for an action.
    let browser = signed_in_browser(&app, "alice").await;
    let csrf = me(&app, &browser).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let write = |path: &str, body: Value| {
        browser
            .post(app.url(path))
            .header("origin", &app.address)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let sagas: Value = browser
        .get(app.url("/api/v1/services/onboarding/sagas?status=failed&limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = sagas["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap())
        .collect();
    let created = write(
        "/api/v1/actions",
        serde_json::json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let action: Value = created.json().await.unwrap();
    let id = action["id"].as_str().unwrap();
    let submitted = write(
        &format!("/api/v1/actions/{id}/submit"),
        serde_json::json!({ "reason": "INC-9: stuck KYC" }),
    )
    .await
    .unwrap();
    assert_eq!(submitted.status(), 200);

    // Her access token names her by another subject, as Okta's do.
    let access = |subject: &str, username: &str| {
        bearer_client(&forge(Forge {
            issuer: &provider.issuer,
            subject,
            username,
            audience: API_AUDIENCE,
            expires_in: 300,
            kid: &provider.kid,
            key_pem: &provider.key_pem,
            nonce: None,
            groups: &["sre"],
        }))
    };
    let approve = |client: reqwest::Client| {
        let url = app.url(&format!("/api/v1/actions/{id}/approve"));
        let digest = action["digest"].clone();
        async move {
            let response = client
                .post(url)
                .json(&serde_json::json!({ "digest": digest }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = approve(access("00u1a2b3c4-alice", "alice")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("you asked for this action"),
        "{body}"
    );
    // Another person, by the same claim, may.
    let (status, body) = approve(access("00u9z8y7x6-bob", "bob")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
}
