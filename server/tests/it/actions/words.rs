//! What people and services wrote, shown as written and harmless: a reason in the webhook
//! and the Markdown record, an endpoint without its key.

use super::*;

/// Alice asks to retry one failed saga and submits it with `reason`; returns the action.
async fn submitted_with_reason(s: &Setup, reason: &str) -> Value {
    let ids = failed_sagas(s, "onboarding", 1).await;
    let (status, action) =
        ask_and_submit(&s.alice, "onboarding", &ids, json!({ "reason": reason })).await;
    assert_eq!(status, 200, "{action}");
    action
}

/// A reason is read by everyone in the channel, in a trusted bot's message: it must not
/// ping the channel, carry a link dressed as a button, or forge a line of its own.
#[tokio::test]
async fn a_reason_cannot_ping_the_channel_or_forge_a_link_or_a_line_in_the_webhook() {
    let (hook, messages) = webhook().await;
    let s = setup(Backend::Sqlite, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
    })
    .await;
    submitted_with_reason(
        &s,
        "<!channel> <https://evil.example|Approve in Runboard>\n:white_check_mark: approved by the CFO",
    )
    .await;
    let message = wait_for_message(&messages, "asks for approval").await;
    assert!(!message.contains("<!channel>"), "{message}");
    assert!(!message.contains("<https://"), "{message}");
    assert!(
        message.contains("&lt;!channel&gt; &lt;https://evil.example|Approve in Runboard&gt;"),
        "the reason is there, as text: {message}"
    );
    assert!(
        !message
            .lines()
            .any(|line| line.starts_with(":white_check_mark:")),
        "no line of the message is the reason's: {message}"
    );
}

/// The Markdown record is reviewed on a code host: what a requester or a service wrote must
/// show as typed there, not as HTML, an image, a link, a code block or extra table cells.
#[tokio::test]
async fn a_reason_shows_as_typed_in_the_markdown_record() {
    let s = setup(Backend::Sqlite, |_| ()).await;
    let reason = "<img src=x onerror=alert(1)> [approved](https://evil.example) ![](https://evil.example/t.png) `code` | forged cell |\n## Forged heading";
    let action = submitted_with_reason(&s, reason).await;
    let record = s
        .alice
        .get_text(&format!(
            "/api/v1/actions/{}/record.md",
            action["id"].as_str().unwrap()
        ))
        .await;
    let line = record
        .lines()
        .find(|line| line.starts_with("| Reason |"))
        .unwrap_or_else(|| panic!("a reason row:\n{record}"));
    assert_eq!(
        line,
        r"| Reason | \<img src=x onerror=alert(1)\> \[approved\](https://evil.example) !\[\](https://evil.example/t.png) \`code\` \| forged cell \| ## Forged heading |",
    );
    assert!(!record.contains("\n## Forged heading"), "{record}");
}

/// Every viewer sees an action's preview: a key in the endpoint's query stays on the
/// server, while the calls still go to the endpoint as configured.
#[tokio::test]
async fn the_preview_shows_the_endpoint_without_the_key_in_its_query() {
    let s = setup(Backend::Sqlite, |config| {
        let onboarding = config
            .services
            .iter_mut()
            .find(|s| s.name.as_str() == "onboarding")
            .unwrap();
        onboarding.graphql_url.set_query(Some("api_key=s3cret"));
    })
    .await;
    let action = submitted_with_reason(&s, "INC-4713").await;
    let id = action["id"].as_str().unwrap();
    let seen = s.vera.get(&format!("/api/v1/actions/{id}")).await;
    let endpoint = seen["action"]["preview"]["endpoint"].as_str().unwrap();
    assert!(endpoint.ends_with("/graphql?…"), "{endpoint}");
    assert!(!seen.to_string().contains("s3cret"), "{seen}");
    assert_eq!(
        seen["action"]["preview"]["dry_run"]["kind"], "done",
        "the dry run went through the configured URL: {seen}"
    );
}

/// A service's endpoint with a key in its query, unreachable: the preview's error, the
/// pause reason, the Slack message and the registry each say where it failed, never the key.
#[tokio::test]
async fn an_unreachable_endpoints_key_is_in_no_error_pause_reason_or_slack_message() {
    let (hook, messages) = webhook().await;
    let s = setup(Backend::Sqlite, |config| {
        config.actions.webhook_url = Some(hook.parse().unwrap());
        let onboarding = config
            .services
            .iter_mut()
            .find(|s| s.name.as_str() == "onboarding")
            .unwrap();
        onboarding.graphql_url.set_query(Some("key=s3cret-key"));
    })
    .await;
    let ids = failed_sagas(&s, "onboarding", 2).await;
    let action = submitted_retry(&s, &ids).await;
    let id = action["id"].as_str().unwrap();
    approved_by_bob(&s, &action).await;

    s.proxy().cut();
    run_engine(&s.app).await;
    let detail = s.alice.get(&format!("/api/v1/actions/{id}")).await;
    assert_eq!(detail["action"]["state"], "paused", "{detail}");
    let reason = detail["action"]["state_detail"].as_str().unwrap();
    assert!(
        reason.contains("/graphql?…"),
        "the reason says where: {reason}"
    );
    assert!(!detail.to_string().contains("s3cret"), "{detail}");
    let paused = wait_for_message(&messages, "paused").await;
    assert!(paused.contains("/graphql?…"), "{paused}");

    // A preview asked for while it is down fails, saying where, not with what key.
    let (_, refused) = s.alice.post("/api/v1/actions",
        json!({ "service": "onboarding", "mutation": "retrySagas", "arguments": { "ids": ids } }),
    )
    .await;
    assert!(
        refused.to_string().contains("/graphql?… cannot be reached"),
        "{refused}"
    );

    let services = s.vera.get("/api/v1/services").await;
    for seen in [refused.to_string(), services.to_string()]
        .into_iter()
        .chain(messages.lock().unwrap().iter().cloned())
    {
        assert!(!seen.contains("s3cret"), "{seen}");
    }
}
