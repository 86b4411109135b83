//! Every list as CSV is its JSON pages walked to the end: rows, counts and money, and text
//! a spreadsheet would run prefixed.

use super::*;

async fn every_list_as_csv_is_its_json_walked_to_the_end(backend: Backend) {
    let s = setup_with_alerts(backend).await;
    let injected = s
        .fleet
        .fleet
        .inject_error("payments", FORMULA_ERROR, 3, None)
        .await
        .unwrap();
    poll_once(&s.app.app).await.unwrap();

    // Sagas, whole and filtered, in every service.
    for service in ["payments", "payouts", "onboarding"] {
        for filter in ["", "?status=failed", "?status=completed&sort=oldest"] {
            let path = format!("/api/v1/services/{service}/sagas{filter}");
            let json = walk(
                &s.vera,
                &format!(
                    "{path}{}limit=500",
                    if filter.is_empty() { '?' } else { '&' }
                ),
                "sagas",
                "next",
            )
            .await;
            let csv = get_csv(&s.vera, &path).await;
            same_rows(&path, &csv, &json, SAGA_COLUMNS);
            assert!(
                csv.file_name.starts_with(&format!("{service}-sagas-"))
                    && csv.file_name.ends_with("Z.csv"),
                "{}",
                csv.file_name
            );
        }
    }
    // A service's error message that a spreadsheet would run comes out prefixed.
    let error_filter = format!(
        "/api/v1/services/payments/sagas?error={}",
        urlencode(FORMULA_ERROR)
    );
    let csv = get_csv(&s.vera, &error_filter).await;
    let mut ids: Vec<&str> = csv.rows.iter().map(|r| r["saga_id"].as_str()).collect();
    ids.sort();
    let mut expected: Vec<&str> = injected.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(ids, expected);
    for row in &csv.rows {
        assert_eq!(row["error_message"], format!("'{FORMULA_ERROR}"));
    }
    let raw = s.vera.get_text(&format!("{error_filter}&format=csv")).await;
    assert!(
        raw.starts_with(
            "saga_id,saga_type,current_step,status,error_message,created_at,updated_at\r\n"
        ),
        "a header row, RFC 4180 line ends: {raw}"
    );
    assert!(
        !raw.contains(",=HYPERLINK"),
        "no cell begins with = : {raw}"
    );

    // Error groups, as read now.
    let path = "/api/v1/services/payments/errors?live=true";
    let json = s.vera.get(path).await["groups"].as_array().unwrap().clone();
    let csv = get_csv(&s.vera, path).await;
    same_rows(
        path,
        &csv,
        &json,
        &[
            ("error_message", "/error_message", Kind::Text),
            ("count", "/count", Kind::Own),
            ("first_seen", "/first_seen", Kind::Time),
            ("last_seen", "/last_seen", Kind::Time),
        ],
    );
    assert!(
        csv.rows
            .iter()
            .any(|r| r["error_message"] == format!("'{FORMULA_ERROR}") && r["count"] == "3")
    );

    // Batches and a batch's items, all and failed.
    let path = "/api/v1/services/payouts/batches";
    let batches = s.vera.get(path).await["batches"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!batches.is_empty(), "payouts has its batch");
    same_rows(
        path,
        &get_csv(&s.vera, path).await,
        &batches,
        &[
            ("batch_id", "/batch_id", Kind::Text),
            ("name", "/name", Kind::Text),
            ("started_at", "/started_at", Kind::Time),
            ("finished_at", "/finished_at", Kind::Time),
            ("done", "/done", Kind::Own),
            ("failed", "/failed", Kind::Own),
            ("pending", "/pending", Kind::Own),
            ("last_finished_at", "/last_finished_at", Kind::Time),
        ],
    );
    for batch in &batches {
        let id = batch["batch_id"].as_str().unwrap();
        for (filter, count) in [("", "done"), ("?status=failed", "failed")] {
            let path = format!("/api/v1/services/payouts/batches/{id}/items{filter}");
            let joiner = if filter.is_empty() { '?' } else { '&' };
            let json = walk(
                &s.vera,
                &format!("{path}{joiner}limit=100"),
                "items",
                "next",
            )
            .await;
            let csv = get_csv(&s.vera, &path).await;
            same_rows(&path, &csv, &json, ITEM_COLUMNS);
            if !filter.is_empty() {
                assert_eq!(json.len() as u64, batch[count].as_u64().unwrap(), "{path}");
            }
        }
    }

    // Funds per service and currency, and per saga, with the money exact.
    let json = s.vera.get("/api/v1/funds").await;
    let mut per_currency = Vec::new();
    for service in json["services"].as_array().unwrap() {
        for money in service["withheld_funds"].as_array().unwrap() {
            per_currency.push(json!({
                "service": service["service"], "polled_at": service["polled_at"],
                "amount": money["amount"], "currency": money["currency"],
            }));
        }
    }
    assert!(!per_currency.is_empty(), "payments holds money");
    let funds = get_csv(&s.vera, "/api/v1/funds").await;
    assert!(
        funds.file_name.starts_with("runboard-funds-"),
        "{}",
        funds.file_name
    );
    same_rows(
        "funds",
        &funds,
        &per_currency,
        &[
            ("service", "/service", Kind::Text),
            ("amount", "/amount", Kind::Own),
            ("currency", "/currency", Kind::Text),
            ("polled_at", "/polled_at", Kind::Time),
        ],
    );
    let path = "/api/v1/services/payments/funds";
    let held = walk(&s.vera, &format!("{path}?limit=7"), "sagas", "next").await;
    let csv = get_csv(&s.vera, path).await;
    same_rows(
        path,
        &csv,
        &held,
        &[
            ("saga_id", "/saga_id", Kind::Text),
            ("amount", "/amount", Kind::Own),
            ("currency", "/currency", Kind::Text),
        ],
    );
    // The sums per currency of the sagas' money are the service's totals, to the cent.
    let mut sums: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
    for row in &csv.rows {
        *sums.entry(row["currency"].clone()).or_default() +=
            row["amount"].parse::<rust_decimal::Decimal>().unwrap();
    }
    let totals: BTreeMap<String, rust_decimal::Decimal> = funds
        .rows
        .iter()
        .filter(|r| r["service"] == "payments")
        .map(|r| (r["currency"].clone(), r["amount"].parse().unwrap()))
        .collect();
    assert_eq!(sums, totals);

    // Lookup, asked with the Accept header.
    let text = format!(
        "{} and {} and 3f1c0000-0000-4000-8000-000000000000",
        injected[0], injected[1]
    );
    let json = s
        .vera
        .post_ok("/api/v1/lookup", json!({ "text": text }))
        .await;
    let response = s
        .vera
        .request(Method::POST, "/api/v1/lookup")
        .header("accept", "text/csv")
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    let csv = csv_of(response).await;
    let sagas: Vec<Value> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["sagas"].as_array().unwrap().clone())
        .collect();
    let found: Vec<&str> = csv
        .rows
        .iter()
        .filter(|r| r["found"] == "saga")
        .map(|r| r["id"].as_str())
        .collect();
    assert_eq!(found.len(), sagas.len());
    assert_eq!(sagas.len(), 2, "{json}");
    let nowhere: Vec<&str> = csv
        .rows
        .iter()
        .filter(|r| r["found"] == "nowhere")
        .map(|r| r["id"].as_str())
        .collect();
    assert_eq!(nowhere, ["3f1c0000-0000-4000-8000-000000000000"]);

    // Alerts, open and resolved.
    let alerts = s.vera.get("/api/v1/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!alerts.is_empty(), "money held raised alerts");
    same_rows(
        "alerts",
        &get_csv(&s.vera, "/api/v1/alerts").await,
        &alerts,
        &[
            ("id", "/id", Kind::Own),
            ("service", "/service", Kind::Text),
            ("watch", "/watch", Kind::Own),
            ("subject", "/subject", Kind::Text),
            ("state", "/state", Kind::Own),
            ("summary", "/summary", Kind::Text),
            ("fired_at", "/fired_at", Kind::Time),
            ("last_seen_at", "/last_seen_at", Kind::Time),
            ("acknowledged_by", "/acknowledged/by", Kind::Text),
            ("acknowledged_at", "/acknowledged/at", Kind::Time),
            ("acknowledgement_note", "/acknowledged/note", Kind::Text),
            ("resolved_at", "/resolved_at", Kind::Time),
            ("link", "/link", Kind::Text),
        ],
    );

    // An action's entities, as found, planned and done; then the audit log it wrote to.
    let action = s
        .oscar
        .post_ok(
            "/api/v1/actions",
            json!({
                "service": "payments", "mutation": "retrySagas", "arguments": {},
                "selection": { "error_group": FORMULA_ERROR }, "reason": "export test",
            }),
        )
        .await;
    let id = action["id"].as_str().unwrap_or_else(|| panic!("{action}"));
    let path = format!("/api/v1/actions/{id}/entities");
    let entities = walk(
        &s.vera,
        &format!("{path}?limit=2"),
        "entities",
        "next_after",
    )
    .await;
    assert_eq!(entities.len(), 3);
    let csv = get_csv(&s.vera, &path).await;
    let mut rows = Vec::new();
    for entity in &entities {
        let mut row = entity.clone();
        row["planned"] = json!(
            entity["planned"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("; ")
        );
        rows.push(row);
    }
    same_rows(
        &path,
        &csv,
        &rows,
        &[
            ("position", "/position", Kind::Own),
            ("entity_id", "/entity_id", Kind::Text),
            ("found", "/found", Kind::Text),
            ("held_amount", "/held/amount", Kind::Own),
            ("held_currency", "/held/currency", Kind::Text),
            ("step", "/step", Kind::Own),
            ("chunk", "/chunk", Kind::Own),
            ("state", "/state", Kind::Own),
            ("attempts", "/attempts", Kind::Own),
            ("planned", "/planned", Kind::Text),
            ("detail", "/detail", Kind::Text),
            ("updated_at", "/updated_at", Kind::Time),
        ],
    );
    assert!(
        csv.file_name
            .starts_with(&format!("payments-action-{id}-entities-")),
        "{}",
        csv.file_name
    );

    let audit = walk(&s.vera, "/api/v1/audit?limit=1", "entries", "next").await;
    assert!(!audit.is_empty(), "the preview is in the audit log");
    same_rows(
        "audit",
        &get_csv(&s.vera, "/api/v1/audit").await,
        &audit,
        &[
            ("seq", "/seq", Kind::Own),
            ("at", "/at", Kind::Time),
            ("actor", "/actor", Kind::Text),
            ("action_id", "/action_id", Kind::Text),
            ("kind", "/kind", Kind::Own),
            ("detail", "/detail", Kind::Text),
            ("prev_hash", "/prev_hash", Kind::Own),
            ("hash", "/hash", Kind::Own),
        ],
    );

    // Accept: text/csv asks for CSV; a browser's Accept, and format=json, for JSON; an
    // unknown format is refused saying which there are.
    let response = s
        .vera
        .request(Method::GET, "/api/v1/services/payments/sagas?status=failed")
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let response = s
        .vera
        .request(Method::GET, "/api/v1/alerts?format=json")
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, body) = s.vera.get_answer("/api/v1/funds?format=xml").await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("format=csv") && message.contains("format=json"),
        "{message}"
    );
    let (status, _) = s
        .vera
        .get_answer("/api/v1/services/payments/sagas?format=csv&colour=red")
        .await;
    assert_eq!(status, 400, "other parameters are still checked");
}

test_on_both_stores!(every_list_as_csv_is_its_json_walked_to_the_end);
