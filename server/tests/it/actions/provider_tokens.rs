//! Calls to a service that takes tokens from an OpenID provider carry Runboard's own,
//! renewed when it expires.

use super::*;

/// Seconds the provider's client-credentials tokens live in the test below.
const ENGINE_TOKEN_LIFETIME: u32 = 3;

fn engine_client() -> MachineClient<'static> {
    MachineClient {
        client_id: "runboard-engine",
        client_secret: "engine-s3cret",
        token_lifetime_secs: ENGINE_TOKEN_LIFETIME,
    }
}

/// The OpenID provider with Runboard's machine client, on `port` (0: any).
fn token_provider(port: u16) -> OidcProvider {
    OidcProvider::start(
        port,
        "runboard-web",
        "unused",
        "http://127.0.0.1:1/cb",
        &[],
        Some(&engine_client()),
    )
}

#[tokio::test]
async fn calls_to_a_service_that_takes_provider_tokens_carry_runboards_own_and_a_new_one_after_expiry()
 {
    let provider = token_provider(0);
    let issuer: url::Url = provider.issuer.parse().unwrap();
    let audience = "urn:demo-fleet:mission-control";
    let fleet = start_fleet_checking(
        Backend::Sqlite,
        runboard_fleet::CallerCheck::ProviderTokens {
            issuer: issuer.clone(),
            audience: audience.to_owned(),
        },
    )
    .await;
    // The service takes no call without the provider's token.
    let refused = reqwest::Client::new()
        .post(&fleet.service("onboarding").graphql_url)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    let s = setup_with(fleet, Backend::Sqlite, |config| {
        config.mission_control_tokens = Some(runboard_core::config::MissionControlTokens {
            token_url: issuer.join("/token").unwrap(),
            client_id: engine_client().client_id.to_owned(),
            client_secret: Some(engine_client().client_secret.into()),
        });
        for service in &mut config.services {
            service.token_audience = Some(audience.to_owned());
        }
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 9).await;
    let (first, second, third) = (&ids[0..3], &ids[3..6], &ids[6..9]);
    let ran = |id: String| {
        let s = &s;
        async move {
            run_engine(&s.app).await;
            let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
            (
                detail["action"]["state"].as_str().unwrap().to_owned(),
                detail,
            )
        }
    };

    // Previewed, approved and run: every call, dry run and real, names Runboard's client.
    let action = submitted_retry(&s, first).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "succeeded", "{detail}");
    let calls = s.fleet.keyed_calls("onboarding", &id).await;
    assert_eq!(applied_entities(&calls), first);
    assert!(
        calls
            .iter()
            .all(|c| c.caller.as_deref() == Some("runboard-engine")),
        "{:?}",
        calls.iter().map(|c| &c.caller).collect::<Vec<_>>()
    );

    // Past the token's expiry (the service refuses an expired token at once): the next
    // action gets a new one before its first call.
    tokio::time::sleep(Duration::from_secs(u64::from(ENGINE_TOKEN_LIFETIME) + 1)).await;
    let action = submitted_retry(&s, second).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "succeeded", "{detail}");
    assert_eq!(
        applied_entities(&s.fleet.keyed_calls("onboarding", &id).await),
        second
    );

    // Approved, then the provider goes down and the token expires: the action pauses
    // saying why, and nothing reaches the service.
    let action = submitted_retry(&s, third).await;
    let id = action["id"].as_str().unwrap().to_owned();
    approved_by_bob(&s, &action).await;
    let port = provider.port();
    drop(provider);
    tokio::time::sleep(Duration::from_secs(u64::from(ENGINE_TOKEN_LIFETIME) + 1)).await;
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "paused", "{detail}");
    let reason = detail["action"]["state_detail"].as_str().unwrap();
    assert!(
        reason.contains("could not get its token for urn:demo-fleet:mission-control"),
        "{reason}"
    );
    assert!(s.fleet.keyed_calls("onboarding", &id).await.is_empty());

    // Back (with new signing keys), and resumed: each saga applied once.
    let _provider = token_provider(port);
    let (status, body) = lifecycle_step(&s.alice, &id, "resume").await;
    assert_eq!(status, 200, "{body}");
    let (state, detail) = ran(id.clone()).await;
    assert_eq!(state, "succeeded", "{detail}");
    assert_eq!(
        applied_entities(&s.fleet.keyed_calls("onboarding", &id).await),
        third
    );
}
