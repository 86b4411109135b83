//! The audit log's hash chain, on each store: intact as written, broken by any edit by SQL.

use runboard_core::audit::{Actor, ChainCheck, NewAuditEntry};
use runboard_model::{ActionId, PersonKey};
use runboard_testkit::{Backend, TestStore, run_sql, test_on_both_stores};
use serde_json::json;

async fn store_with_five_entries(backend: Backend) -> TestStore {
    let store = TestStore::new(backend).await;
    for (i, kind) in [
        "action.previewed",
        "action.submitted",
        "action.approved",
        "action.executing",
        "action.succeeded",
    ]
    .into_iter()
    .enumerate()
    {
        let actor = PersonKey::from(if i == 2 { "demo:bob" } else { "demo:alice" });
        let seq = store
            .store
            .append_audit(&NewAuditEntry {
                actor: Actor::Person(&actor),
                action_id: Some(&ActionId::from("a-1")),
                kind,
                detail: json!({ "step": i, "amount": "12.50", "currency": "EUR" }),
            })
            .await
            .unwrap();
        assert_eq!(seq, i as i64 + 1, "entries are numbered without gaps");
    }
    store
}

async fn check(store: &TestStore) -> ChainCheck {
    store.store.verify_audit_chain().await.unwrap()
}

test_on_both_stores!(
    the_chain_as_written_is_intact,
    an_edited_entry_breaks_the_chain_there,
    a_deleted_entry_breaks_the_chain,
    entries_cut_off_the_end_are_noticed,
    concurrent_appends_keep_one_chain,
);

async fn the_chain_as_written_is_intact(backend: Backend) {
    let store = store_with_five_entries(backend).await;
    assert_eq!(check(&store).await, ChainCheck::Intact { entries: 5 });
    let entries = store
        .store
        .audit_of_action(&ActionId::from("a-1"))
        .await
        .unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[2].actor, "demo:bob");
    assert_eq!(
        entries[1].prev_hash, entries[0].hash,
        "each entry points at the one before"
    );
}

async fn an_edited_entry_breaks_the_chain_there(backend: Backend) {
    for edit in [
        "UPDATE audit_entry SET detail = REPLACE(detail, '12.50', '1250.00') WHERE seq = 3",
        "UPDATE audit_entry SET actor = 'demo:alice' WHERE seq = 3",
        "UPDATE audit_entry SET kind = 'action.rejected' WHERE seq = 3",
    ] {
        let store = store_with_five_entries(backend).await;
        let url = store.config.effective_url();
        assert_eq!(run_sql(&url, edit).await, 1);
        match check(&store).await {
            ChainCheck::Broken { seq, reason } => {
                assert_eq!(seq, 3, "{edit}");
                assert!(reason.contains("edited"), "{reason}");
            }
            intact => panic!("{edit} went unnoticed: {intact:?}"),
        }
    }
}

async fn a_deleted_entry_breaks_the_chain(backend: Backend) {
    let store = store_with_five_entries(backend).await;
    let url = store.config.effective_url();
    assert_eq!(
        run_sql(&url, "DELETE FROM audit_entry WHERE seq = 2").await,
        1
    );
    assert!(matches!(
        check(&store).await,
        ChainCheck::Broken { seq: 3, .. }
    ));
}

async fn entries_cut_off_the_end_are_noticed(backend: Backend) {
    let store = store_with_five_entries(backend).await;
    let url = store.config.effective_url();
    assert_eq!(
        run_sql(&url, "DELETE FROM audit_entry WHERE seq = 5").await,
        1
    );
    match check(&store).await {
        ChainCheck::Broken { seq, reason } => {
            assert_eq!(seq, 5);
            assert!(reason.contains("cut off"), "{reason}");
        }
        intact => panic!("a deleted last entry went unnoticed: {intact:?}"),
    }
}

async fn concurrent_appends_keep_one_chain(backend: Backend) {
    let store = TestStore::new(backend).await;
    let appends = (0..40).map(|i| {
        let store = &store.store;
        async move {
            store
                .append_audit(&NewAuditEntry {
                    actor: Actor::Runboard,
                    action_id: None,
                    kind: "test.append",
                    detail: json!({ "i": i }),
                })
                .await
                .unwrap()
        }
    });
    let mut seqs = futures_util::future::join_all(appends).await;
    seqs.sort();
    assert_eq!(seqs, (1..=40).collect::<Vec<i64>>());
    assert_eq!(check(&store).await, ChainCheck::Intact { entries: 40 });
}
