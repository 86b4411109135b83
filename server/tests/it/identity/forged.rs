//! Tokens forged by the test with the provider's own key, differing in one claim, and a
//! rotated provider key.

use super::*;

/// The same token with one claim changed and the signature kept.
fn altered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let changed = payload.replace("\"sre\"", "\"platform\"");
    assert_ne!(payload, changed);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(changed),
        parts[2]
    )
}

/// The valid token and each of its forgeries, by what was wrong with it.
fn forgeries(
    provider: &OidcProvider,
    audience: &str,
    nonce: Option<&str>,
) -> (String, Vec<(&'static str, String)>) {
    let base = Forge {
        issuer: &provider.issuer,
        subject: "alice",
        username: "alice",
        audience,
        expires_in: 300,
        kid: &provider.kid,
        key_pem: &provider.key_pem,
        nonce,
        groups: &["sre"],
    };
    let valid = forge(Forge { ..base });
    let bad = vec![
        (
            "expired",
            forge(Forge {
                expires_in: -120,
                ..base
            }),
        ),
        (
            "for another audience",
            forge(Forge {
                audience: "someone-else",
                ..base
            }),
        ),
        (
            "from another issuer",
            forge(Forge {
                issuer: "http://127.0.0.1:1/other",
                ..base
            }),
        ),
        (
            "signed with an unknown key",
            forge(Forge {
                kid: &provider.stranger_kid,
                key_pem: &provider.stranger_pem,
                ..base
            }),
        ),
        (
            "signed with an unknown key under a known key id",
            forge(Forge {
                key_pem: &provider.stranger_pem,
                ..base
            }),
        ),
        ("altered after signing", altered(&valid)),
    ];
    (valid, bad)
}

#[tokio::test]
async fn forged_or_stale_id_tokens_are_refused() {
    let Setup { app, provider } = spawn_with_provider(Backend::Sqlite).await;
    let oidc = app.app.identity.oidc.as_ref().unwrap();
    let nonce = Nonce::new("the-nonce-of-this-sign-in".into());
    let (valid, bad) = forgeries(&provider, CLIENT_ID, Some(nonce.secret()));
    let person = oidc
        .verify_id_token(&valid, &nonce)
        .await
        .expect("the genuine token passes");
    assert_eq!(
        person.subject.as_str(),
        format!("{}#alice", provider.issuer),
        "the person's key: issuer and sub"
    );
    assert_eq!(person.groups, ["sre"]);
    for (what, token) in bad {
        let refused = oidc.verify_id_token(&token, &nonce).await;
        assert!(refused.is_err(), "an ID token {what} was accepted");
    }
    let other_nonce = Nonce::new("another-sign-in".into());
    assert!(
        oidc.verify_id_token(&valid, &other_nonce).await.is_err(),
        "an ID token for another sign-in (nonce) was accepted"
    );
}

#[tokio::test]
async fn forged_or_stale_access_tokens_are_refused_by_the_api() {
    let Setup { app, provider } = spawn_with_provider(Backend::Sqlite).await;
    let (valid, bad) = forgeries(&provider, API_AUDIENCE, None);
    let (status, body) = me(&app, &bearer_client(&valid)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"], serde_json::json!(["operator", "approver"]));
    for (what, token) in bad {
        let (status, body) = me(&app, &bearer_client(&token)).await;
        assert_eq!(status, 401, "an access token {what} got {status}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rejected"),
            "{what}: {body}"
        );
    }
    // An ID token is not an access token: its audience is Runboard's client, not the API.
    let (id_token, _) = forgeries(&provider, CLIENT_ID, None);
    assert_eq!(me(&app, &bearer_client(&id_token)).await.0, 401);
}

#[tokio::test]
async fn a_rotated_provider_key_is_fetched_and_the_old_one_dropped() {
    let Setup { app, provider } = spawn_with_provider(Backend::Sqlite).await;
    let (before, _) = forgeries(&provider, API_AUDIENCE, None);
    assert_eq!(me(&app, &bearer_client(&before)).await.0, 200);
    // The provider restarts on the same address with a new signing key.
    let port = provider.port();
    drop(provider);
    let rotated = OidcProvider::start(
        port,
        CLIENT_ID,
        CLIENT_SECRET,
        "http://127.0.0.1:1/cb",
        PEOPLE,
        None,
    );
    // Runboard fetches keys at most every 2 s of its clock, however many unknown keys it is
    // shown; the test moves that clock rather than waiting.
    app.app.clock.advance(Duration::from_secs(3));
    let (after, _) = forgeries(&rotated, API_AUDIENCE, None);
    assert_eq!(
        me(&app, &bearer_client(&after)).await.0,
        200,
        "the new key is fetched"
    );
    app.app.clock.advance(Duration::from_secs(3));
    assert_eq!(
        me(&app, &bearer_client(&before)).await.0,
        401,
        "the retired key no longer signs"
    );
}
