//! Personal API tokens: shown once, kept hashed, revocable, acting with no more than their
//! holder's roles, and ended with the person's sessions by an admin.

use super::*;

test_on_both_stores!(personal_api_tokens_are_shown_once_kept_hashed_and_revocable);

async fn personal_api_tokens_are_shown_once_kept_hashed_and_revocable(backend: Backend) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    let browser = signed_in_browser(&app, "alice").await;
    let csrf = me(&app, &browser).await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let create = |csrf: Option<&str>, origin: &str| {
        let mut request = browser
            .post(app.url("/api/v1/tokens"))
            .header("origin", origin)
            .json(&serde_json::json!({ "label": "nightly report", "expires_in": "7d" }));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    // Cookie-authenticated writes need the CSRF token and Runboard's own origin.
    assert_eq!(create(None, &app.address).await.unwrap().status(), 403);
    assert_eq!(
        create(Some(&csrf), "http://evil.example")
            .await
            .unwrap()
            .status(),
        403
    );
    let created = create(Some(&csrf), &app.address).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rbt_") && secret.len() > 40, "{secret}");

    // Only a hash is stored, and the list never shows the secret again.
    let listed = text_at(&browser, app.url("/api/v1/tokens")).await;
    assert!(listed.contains("nightly report") && !listed.contains(&secret));
    let stored = stored_token_columns(&app).await;
    assert!(
        !stored.contains(&secret[4..]),
        "the secret is not in the store"
    );

    let script = bearer_client(&secret);
    let (status, body) = me(&app, &script).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Alice Ops");
    assert_eq!(body["signed_in_with"], "bearer");
    assert!(body.get("csrf_token").is_none());
    // A token cannot mint more tokens.
    let minted = script
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({ "label": "more" }))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 403);

    let revoked = browser
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .header("origin", &app.address)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let (status, body) = me(&app, &script).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );

    // An expired token says so.
    let user = runboard_model::User {
        subject: "test:old".into(),
        name: "Old Script".into(),
        roles: [Role::Viewer].into(),
    };
    let old = app
        .app
        .store
        .issue_api_token(
            &user,
            "old",
            Duration::from_secs(60),
            Utc::now() - chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    let (status, body) = me(&app, &bearer_client(&old.secret)).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

/// Every stored column of every API token, as text, to look for a secret in.
async fn stored_token_columns(app: &TestApp) -> String {
    let rows = sql_strings(
        &app.app.config.store.effective_url(),
        "SELECT id || secret_sha256 || subject || name || roles || label FROM api_token",
    )
    .await;
    assert!(!rows.is_empty());
    rows.join("\n")
}

test_on_both_stores!(an_admin_ends_a_persons_sessions_and_tokens_and_their_next_request_is_refused);

async fn an_admin_ends_a_persons_sessions_and_tokens_and_their_next_request_is_refused(
    backend: Backend,
) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    // Alice in two browsers and with a script's token; Carol beside her.
    let laptop = signed_in_browser(&app, "alice").await;
    let phone = signed_in_browser(&app, "alice").await;
    let carol = signed_in_browser(&app, "carol").await;
    let subject = me(&app, &laptop).await.1["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = runboard_model::User {
        subject: subject.as_str().into(),
        name: "Alice Ops".into(),
        roles: [Role::Operator].into(),
    };
    let script = bearer_client(
        &app.app
            .store
            .issue_api_token(&alice, "nightly", Duration::from_secs(3600), Utc::now())
            .await
            .unwrap()
            .secret,
    );
    assert_eq!(
        script
            .get(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let revoke = |client: reqwest::Client, reason: &'static str| {
        let url = app.url("/api/v1/access/revoke");
        let subject = subject.clone();
        async move {
            let response = client
                .post(url)
                .json(&serde_json::json!({ "subject": subject, "reason": reason }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let operator = bearer_client(
        &app.token_for("oscar", &[Role::Operator, Role::Approver])
            .await,
    );
    assert_eq!(revoke(operator, "not mine to end").await.0, 403);

    let admin = bearer_client(&app.token_for("ada", &[Role::Admin]).await);
    let mut listing = reqwest::Url::parse(&app.url("/api/v1/access")).unwrap();
    listing.query_pairs_mut().append_pair("subject", &subject);
    let access: Value = admin
        .get(listing.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(access["sessions"].as_array().unwrap().len(), 2, "{access}");
    assert_eq!(access["sessions"][0]["name"], "Alice Ops");
    assert_eq!(access["tokens"].as_array().unwrap().len(), 1, "{access}");
    let people = |admin: reqwest::Client| {
        let url = app.url("/api/v1/people");
        async move {
            let people: Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            people["people"].as_array().unwrap().clone()
        }
    };
    let listed = people(admin.clone()).await;
    let alice_listed = listed
        .iter()
        .find(|p| p["subject"] == subject.as_str())
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(
        (&alice_listed["sessions"], &alice_listed["live_tokens"]),
        (&serde_json::json!(2), &serde_json::json!(1))
    );

    let (status, body) = revoke(admin.clone(), " ").await;
    assert_eq!(status, 400, "a reason is asked for: {body}");
    let (status, revoked) = revoke(admin.clone(), "laptop stolen").await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["sessions_ended"], 2);
    assert_eq!(revoked["tokens_revoked"], 1);

    // Her next request, page or API, in any browser or script, is refused.
    assert_eq!(me(&app, &laptop).await.0, 401);
    let page = phone.get(app.url("/funds")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert!(location(&page).starts_with("/login"), "{}", location(&page));
    let api = script
        .get(app.url("/api/v1/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(api.text().await.unwrap().contains("revoked"));
    // Carol is still signed in.
    assert_eq!(me(&app, &carol).await.0, 200);
    let listed = people(admin.clone()).await;
    assert!(
        listed.iter().all(|p| p["subject"] != subject.as_str())
            && listed.iter().any(|p| p["name"] == "Carol Business"),
        "{listed:?}"
    );

    let after: Value = admin
        .get(listing)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["sessions"], serde_json::json!([]), "{after}");
    let audit = sql_strings(
        &app.app.config.store.effective_url(),
        "SELECT detail FROM audit_entry WHERE kind = 'access.revoked'",
    )
    .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].contains("laptop stolen"), "{audit:?}");
}

/// Someone taken out of the approvers' group at the provider loses the role in the API
/// tokens they hold too, as soon as Runboard sees them again; back in the group, their
/// tokens have it again, never more than they were issued with.
#[tokio::test]
async fn a_token_acts_with_no_more_than_the_roles_its_holder_was_last_seen_with() {
    let Setup { app, provider } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.identity.roles.approver = vec!["approvers".into()];
    })
    .await;
    let access = |groups: &'static [&'static str]| {
        bearer_client(&forge(Forge {
            issuer: &provider.issuer,
            subject: "alice",
            username: "alice",
            audience: API_AUDIENCE,
            expires_in: 300,
            kid: &provider.kid,
            key_pem: &provider.key_pem,
            nonce: None,
            groups,
        }))
    };
    let roles = |body: (u16, Value)| (body.0, body.1["roles"].clone());
    let (status, seen) = me(&app, &access(&["sre", "approvers"])).await;
    assert_eq!(status, 200, "{seen}");
    let alice = runboard_model::User {
        subject: seen["subject"].as_str().unwrap().into(),
        name: "Alice Ops".into(),
        roles: [Role::Operator, Role::Approver].into(),
    };
    let script = bearer_client(
        &app.app
            .store
            .issue_api_token(&alice, "nightly", Duration::from_secs(3600), Utc::now())
            .await
            .unwrap()
            .secret,
    );
    assert_eq!(
        roles(me(&app, &script).await),
        (200, serde_json::json!(["operator", "approver"]))
    );

    // The provider takes her out of the approvers.
    assert_eq!(me(&app, &access(&["sre"])).await.0, 200);
    assert_eq!(
        roles(me(&app, &script).await),
        (200, serde_json::json!(["operator"])),
        "her token lost the role her groups no longer give"
    );

    // Out of every group that counts: her token opens nothing, and says why.
    assert_eq!(me(&app, &access(&["marketing"])).await.0, 403);
    let (status, body) = me(&app, &script).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer holds any of the roles"),
        "{body}"
    );

    // Back among approvers, and an admin besides: the token's own roles again, no more.
    assert_eq!(
        me(&app, &access(&["sre", "approvers", "platform"])).await.0,
        200
    );
    assert_eq!(
        roles(me(&app, &script).await),
        (200, serde_json::json!(["operator", "approver"]))
    );
}
