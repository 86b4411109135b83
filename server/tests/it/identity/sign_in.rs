//! Signing in through the provider: the roles of one's groups, sign-out, a refused
//! callback, sessions that end when idle or too old, roles that follow the groups, and no
//! session row before a sign-in completes.

use super::*;

test_on_both_stores!(
    signing_in_through_the_provider_gives_the_roles_of_ones_groups_and_sign_out_ends_it,
    a_callback_with_a_wrong_state_or_a_replayed_code_is_refused
);

async fn signing_in_through_the_provider_gives_the_roles_of_ones_groups_and_sign_out_ends_it(
    backend: Backend,
) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;
    let browser = browser();
    let callback = sign_in_at_provider(&app, &browser, "alice").await;
    assert!(
        callback.contains("code=") && callback.contains("state="),
        "{callback}"
    );
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 303, "{}", done.text().await.unwrap());
    assert_eq!(location(&done), "/funds", "lands where the sign-in started");
    let cookie = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("runboard_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "served over http here: {cookie}"
    );

    let (status, body) = me(&app, &browser).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Alice Ops");
    assert_eq!(body["roles"], serde_json::json!(["operator", "approver"]));
    assert_eq!(body["signed_in_with"], "session");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    // Her account page names her (the shared screens name nobody: the top bar asks in the
    // browser); a stranger is sent to sign in.
    let page = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Alice Ops"));
    let stranger = browser_get_status(&app, "/").await;
    assert_eq!(stranger, 303);

    // Someone whose groups give no role is turned away, and told why.
    let mallory = browser_for_refused(&app, "mallory").await;
    assert!(mallory.contains("none of your groups"), "{mallory}");

    // Signing out needs the session's CSRF token and ends the session in the store.
    let forged = browser
        .post(app.url("/auth/logout"))
        .header("origin", &app.address)
        .form(&[("csrf_token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let out = browser
        .post(app.url("/auth/logout"))
        .header("origin", &app.address)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(me(&app, &browser).await.0, 401);
    // The old cookie, sent again by hand, no longer works either.
    let session_id = cookie.split(';').next().unwrap().to_owned();
    let replayed = reqwest::Client::new()
        .get(app.url("/api/v1/me"))
        .header("cookie", session_id)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
}

async fn a_callback_with_a_wrong_state_or_a_replayed_code_is_refused(backend: Backend) {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(backend).await;

    // A state that is not the one this browser's sign-in started with.
    let browser = browser();
    let callback = sign_in_at_provider(&app, &browser, "alice").await;
    let mut url = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let wrong_state = browser.get(url).send().await.unwrap();
    assert_eq!(wrong_state.status(), 400);
    assert!(wrong_state.text().await.unwrap().contains("state differs"));
    assert_eq!(me(&app, &browser).await.0, 401);
    // That sign-in is spent: its real callback no longer works either.
    let spent = browser.get(&callback).send().await.unwrap();
    assert_eq!(spent.status(), 400);

    // A code that worked once, replayed by the same browser and by another one.
    let browser = self::browser();
    let callback = sign_in_at_provider(&app, &browser, "alice").await;
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 303);
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already used"));

    let thief = self::browser();
    let started = thief.get(app.url("/auth/login")).send().await.unwrap();
    let thief_state = reqwest::Url::parse(&location(&started))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let code = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let stolen = thief
        .get(app.url("/auth/callback"))
        .query(&[("code", code.as_str()), ("state", thief_state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        stolen.status(),
        401,
        "the provider refuses a code used before"
    );
    assert!(stolen.text().await.unwrap().contains("would not exchange"));
    assert_eq!(me(&app, &thief).await.0, 401);
}

#[tokio::test]
async fn a_session_ends_when_idle_and_when_too_old_however_busy() {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.identity.sessions.idle_timeout = Duration::from_secs(30 * 60);
        config.identity.sessions.absolute_timeout = Duration::from_secs(2 * 3600);
    })
    .await;
    // Time is the test's: it passes only when moved.
    let clock = &app.app.clock;
    clock.stop();
    let minutes = |n: u64| Duration::from_secs(n * 60);

    // Busy: a request every 20 minutes keeps it alive past the idle timeout, not past the
    // absolute one.
    let busy = signed_in_browser(&app, "alice").await;
    for after in (20..120).step_by(20) {
        clock.advance(minutes(20));
        assert_eq!(me(&app, &busy).await.0, 200, "{after} min after sign-in");
    }
    clock.advance(minutes(20));
    assert_eq!(
        me(&app, &busy).await.0,
        200,
        "2 h after sign-in, to the second"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(me(&app, &busy).await.0, 401, "ended 2 h after sign-in");

    // Idle: nothing for longer than the idle timeout.
    let idle = signed_in_browser(&app, "alice").await;
    assert_eq!(me(&app, &idle).await.0, 200);
    clock.advance(minutes(30));
    let still = signed_in_browser(&app, "alice").await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(me(&app, &idle).await.0, 401, "ended after 30 min unused");
    assert_eq!(me(&app, &still).await.0, 200, "one used a second ago is on");
}

#[tokio::test]
async fn a_sessions_roles_follow_the_persons_groups_at_the_provider_within_roles_ttl() {
    const ROLES_TTL: Duration = Duration::from_secs(2);
    let Setup { app, provider } = spawn_with_provider_and(Backend::Sqlite, |config| {
        config.identity.roles_ttl = Some(ROLES_TTL);
    })
    .await;
    let alice = signed_in_browser(&app, "alice").await;
    let carol = signed_in_browser(&app, "carol").await;
    let roles = |client: reqwest::Client| {
        let app = &app;
        async move {
            let (status, body) = me(app, &client).await;
            assert_eq!(status, 200, "{body}");
            body["roles"].clone()
        }
    };
    assert_eq!(
        roles(alice.clone()).await,
        serde_json::json!(["operator", "approver"])
    );

    // Moved out of the SRE group at the provider: her session holds only what her
    // groups give now once roles_ttl has passed (by Runboard's clock, which the test moves),
    // without signing in again.
    provider.set_groups("alice", &["business"]).await;
    app.app.clock.advance(ROLES_TTL + Duration::from_secs(1));
    assert_eq!(roles(alice.clone()).await, serde_json::json!(["viewer"]));

    // Out of every group that gives a role: her session ends at the next renewal; Carol,
    // whose groups did not change, stays signed in with hers.
    provider.set_groups("alice", &["marketing"]).await;
    app.app.clock.advance(ROLES_TTL + Duration::from_secs(1));
    assert_eq!(me(&app, &alice).await.0, 401);
    assert_eq!(roles(carol).await, serde_json::json!(["viewer"]));
}

#[tokio::test]
async fn starting_a_sign_in_writes_no_session_row_until_it_completes() {
    let Setup {
        app,
        provider: _provider,
    } = spawn_with_provider(Backend::Sqlite).await;
    let sessions = || {
        let url = app.app.config.store.effective_url();
        async move { sql_strings(&url, "SELECT id FROM session").await.len() }
    };
    // Anyone may open the sign-in link many times: it costs the store nothing.
    for _ in 0..20 {
        let start = browser()
            .get(app.url("/auth/login?next=/funds"))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 303);
        let cookie = start
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.starts_with("runboard_sign_in=")
                && cookie.contains("HttpOnly")
                && cookie.contains("Path=/auth/callback"),
            "{cookie}"
        );
    }
    assert_eq!(sessions().await, 0);
    // A sign-in that completes writes its one session.
    let alice = signed_in_browser(&app, "alice").await;
    assert_eq!(me(&app, &alice).await.0, 200);
    assert_eq!(sessions().await, 1);
}
