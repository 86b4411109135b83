//! What the connector reads from a service's rows: counts by the status derivation, pages
//! of failed sagas, filters, error groups, batches, withheld funds, a saga's facts and a
//! runbook step filled in from them.

use super::*;

test_on_both_stores!(
    counts_follow_the_status_derivation,
    pages_walk_every_failed_saga_once_in_order,
    filters_narrow_by_type_step_error_and_age,
    errors_are_grouped_by_message,
    batches_count_their_items,
    withheld_funds_sum_exactly_per_currency,
    facts_about_a_saga_come_from_its_own_rows,
    a_runbook_step_is_filled_in_from_each_sagas_own_data
);

async fn counts_follow_the_status_derivation(backend: Backend) {
    let db = service_db(backend).await;
    let counts = connector(&db).await.saga_counts(now()).await.unwrap();
    let of = |status| (0..SAGAS).filter(|&i| expected_status(i) == status).count() as u64;
    assert_eq!(counts.failed, of(SagaStatus::Failed));
    assert_eq!(counts.stuck, of(SagaStatus::Stuck));
    assert_eq!(counts.completed, of(SagaStatus::Completed));
    assert_eq!(counts.running, of(SagaStatus::Running));
    assert_eq!(counts.failed, 12);
    assert!(counts.stuck > 0 && counts.running > 0);
}

async fn pages_walk_every_failed_saga_once_in_order(backend: Backend) {
    let db = service_db(backend).await;
    let connector = connector(&db).await;
    for oldest_first in [false, true] {
        let mut filter = SagaFilter {
            status: Some(SagaStatus::Failed),
            oldest_first,
            limit: 5,
            ..SagaFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = connector.sagas(&filter, now()).await.unwrap();
            assert!(page.sagas.len() <= 5);
            assert!(page.sagas.iter().all(|s| s.status == SagaStatus::Failed));
            seen.extend(page.sagas.into_iter().map(|s| s.saga_id));
            match page.next {
                Some(next) => filter.after = Some(next.parse().unwrap()),
                None => break,
            }
        }
        let mut expected: Vec<_> = (0..SAGAS)
            .filter(|i| i % 10 == 0)
            .map(|i| format!("saga-{i:04}"))
            .collect();
        // Newest first means the smallest index first: saga i was created i minutes ago.
        if oldest_first {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
}

async fn filters_narrow_by_type_step_error_and_age(backend: Backend) {
    let db = service_db(backend).await;
    let connector = connector(&db).await;
    let filter = SagaFilter {
        saga_type: Some("payout".into()),
        error_message: Some(ERRORS[2].into()),
        step: Some("reserve_funds".into()),
        older_than: Some(Duration::from_secs(30 * 60)),
        limit: 100,
        ..SagaFilter::default()
    };
    let page = connector.sagas(&filter, now()).await.unwrap();
    let ids: Vec<_> = page.sagas.iter().map(|s| s.saga_id.as_str()).collect();
    // ERRORS[2] fails sagas 20, 50, 80 and 110 (all payouts); saga 20 is only 21 minutes old.
    assert_eq!(ids, ["saga-0050", "saga-0080", "saga-0110"]);

    let newer = SagaFilter {
        newer_than: Some(Duration::from_secs(5 * 60 + 30)),
        limit: 100,
        ..SagaFilter::default()
    };
    let ids: Vec<_> = connector
        .sagas(&newer, now())
        .await
        .unwrap()
        .sagas
        .into_iter()
        .map(|s| s.saga_id)
        .collect();
    assert_eq!(
        ids,
        [
            "saga-0000",
            "saga-0001",
            "saga-0002",
            "saga-0003",
            "saga-0004"
        ]
    );
}

async fn errors_are_grouped_by_message(backend: Backend) {
    let db = service_db(backend).await;
    let groups = connector(&db).await.error_groups().await.unwrap();
    let summary: Vec<_> = groups
        .iter()
        .map(|g| (g.error_message.as_str(), g.count))
        .collect();
    // 12 failed sagas, errors in turn: 4 each; ties are ordered by message.
    assert_eq!(summary, [(ERRORS[2], 4), (ERRORS[0], 4), (ERRORS[1], 4)]);
    let npe = groups
        .iter()
        .find(|g| g.error_message == ERRORS[0])
        .unwrap();
    assert_eq!(
        npe.last_seen,
        now() - chrono::Duration::minutes(1),
        "saga 0 failed last"
    );
    assert_eq!(
        npe.first_seen,
        now() - chrono::Duration::minutes(91),
        "saga 90 failed first"
    );
}

async fn batches_count_their_items(backend: Backend) {
    let db = service_db(backend).await;
    let connector = connector(&db).await;
    let batches = connector.batches(None).await.unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!((batch.done, batch.failed, batch.pending), (20, 10, 20));
    assert_eq!(batch.name, "Friday payout");
    assert_eq!(batch.finished_at, None);
    assert_eq!(connector.failed_batches().await.unwrap(), 1);
    assert!(
        connector
            .batches(Some("no-such-batch"))
            .await
            .unwrap()
            .is_empty()
    );

    let mut after = None;
    let mut failed = Vec::new();
    loop {
        let page = connector
            .batch_items(
                "friday-payout",
                Some(BatchItemStatus::Failed),
                after.as_deref(),
                4,
            )
            .await
            .unwrap();
        assert!(
            page.items
                .iter()
                .all(|i| i.error.as_deref() == Some("IBAN checksum mismatch"))
        );
        failed.extend(page.items.into_iter().map(|i| i.item_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = (0..50).step_by(5).map(|i| format!("item-{i:03}")).collect();
    assert_eq!(failed, expected);
}

async fn withheld_funds_sum_exactly_per_currency(backend: Backend) {
    let db = service_db(backend).await;
    let funds = connector(&db).await.withheld_funds().await.unwrap();
    let held: Vec<usize> = (0..SAGAS)
        .filter(|&i| matches!(expected_status(i), SagaStatus::Failed | SagaStatus::Stuck))
        .collect();
    let usd = held.iter().filter(|&&i| i % 20 == 0).count();
    let eur = held.len() - usd;
    let text: Vec<_> = funds.iter().map(|m| m.to_string()).collect();
    // 0.10 added n times stays exact: no float anywhere on the way.
    assert_eq!(
        text,
        [
            format!("{}.{:02} EUR", eur / 10, (eur % 10) * 10),
            format!("{}.{:02} USD", usd * 10 + usd / 10, (usd % 10) * 10)
        ]
    );
}

/// A saga's facts come by name from the service's `entity_facts` query, only that saga's; a
/// service without the query says it offers none rather than "no facts".
async fn facts_about_a_saga_come_from_its_own_rows(backend: Backend) {
    let db = service_db(backend).await;
    let facts = "SELECT saga_id, 'reference' AS name, saga_type AS value FROM saga \
                 UNION ALL SELECT saga_id, 'currency', currency FROM held";
    let config = service_config(
        &db.url,
        &format!("[services.queries]\nentity_facts = \"{facts}\"\n"),
    );
    let with_facts = Connector::new(&config, Duration::from_secs(60))
        .await
        .unwrap();
    // Saga 10: failed, a payout, holding 0.10 EUR (see `saga` and `fill!`).
    let saga = saga(10).0;
    let read = with_facts.saga_facts(&saga).await.unwrap().unwrap();
    let named: Vec<(&str, &str)> = read
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_str()))
        .collect();
    assert_eq!(named, [("currency", "EUR"), ("reference", "payout")]);
    assert!(
        connector(&db)
            .await
            .saga_facts(&saga)
            .await
            .unwrap()
            .is_none(),
        "no entity_facts query: none offered"
    );
    let bad = Config::parse(
        &format!(
            "[[services]]\nname = \"payments\"\nteam = \"payments\"\ndatabase_url = \"{}\"\n\
             graphql_url = \"http://127.0.0.1:1/graphql\"\n\
             [services.queries]\nentity_facts = \"DELETE FROM saga\"\n",
            db.url
        ),
        Path::new("test.toml"),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("queries.entity_facts"), "{bad}");
}

/// A runbook step's arguments, filled in for each saga from the service's own rows: its
/// supervisor row, the money it holds and its facts, read once for all of them; a saga
/// lacking a value (a completed one holds no money) is refused by name, never sent a blank.
async fn a_runbook_step_is_filled_in_from_each_sagas_own_data(backend: Backend) {
    let db = service_db(backend).await;
    let config = service_config(
        &db.url,
        "[services.queries]\nwithheld_funds = \"SELECT saga_id, amount, currency FROM held\"\n\
         entity_facts = \"SELECT saga_id, 'account' AS name, 'acct-' || saga_type AS value FROM saga\"\n",
    );
    let connector = Connector::new(&config, Duration::from_secs(60))
        .await
        .unwrap();
    let spec = ActionSpec {
        mutation: "transferFunds".into(),
        description: None,
        arguments: ["fromAccount", "amount", "currency", "reference", "note"]
            .map(|name| ArgumentSpec {
                name: name.into(),
                description: None,
                type_name: "String".into(),
                list: false,
                required: true,
            })
            .into(),
        dry_run: true,
    };
    let step = Template::parse(
        serde_json::json!({
            "fromAccount": "{{ facts.account }}",
            "amount": "{{ funds.amount }}",
            "currency": "{{ funds.currency }}",
            "reference": "RB-{{ entity.id }}",
            "note": "{{ saga.status }} at {{ saga.step }}: {{ param.ticket }}",
        })
        .as_object()
        .unwrap(),
    )
    .unwrap();
    step.check(&spec).unwrap();

    // Saga 10: failed, a payout, holding 0.10 EUR; saga 3: completed, holding nothing.
    let (failed, completed) = (saga(10).0, saga(3).0);
    let params = [("ticket".to_owned(), "INC-7".to_owned())].into();
    let values = entity_values(
        &connector,
        &[failed.clone(), completed.clone()],
        &step.placeholders(),
        &params,
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(step.render(&spec, &values[&failed]).unwrap()),
        serde_json::json!({
            "fromAccount": "acct-payout",
            "amount": "0.10",
            "currency": "EUR",
            "reference": "RB-saga-0010",
            "note": "failed at reserve_funds: INC-7",
        })
    );
    assert_eq!(
        step.render(&spec, &values[&completed])
            .unwrap_err()
            .to_string(),
        "argument \"amount\": no value for funds.amount: it holds no money"
    );
}
