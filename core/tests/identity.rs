//! Browser sessions and API tokens in the store, on SQLite and on PostgreSQL alike.

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, TimeZone, Utc};
use runboard_core::identity::SessionStore;
use runboard_model::{Role, User};
use runboard_testkit::{Backend, TestStore, test_on_both_stores};
use tower_sessions::SessionStore as _;
use tower_sessions::session::{Id, Record};

test_on_both_stores!(
    a_session_ended_while_a_request_of_it_is_in_flight_stays_ended,
    a_token_whose_holder_the_provider_has_not_shown_for_a_while_acts_as_a_viewer,
);

fn person(subject: &str, roles: &[Role]) -> User {
    User {
        subject: subject.into(),
        name: subject.into(),
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
    }
}

/// An admin revokes Alice's access while a request of her session is in flight; that
/// request then writes its session back (as tower-sessions does with a session it touched),
/// and she must stay signed out rather than be signed in again, unseen by the admin.
async fn a_session_ended_while_a_request_of_it_is_in_flight_stays_ended(backend: Backend) {
    let test = TestStore::new(backend).await;
    let sessions = SessionStore::new(&test.store);
    let mut record = Record {
        id: Id::default(),
        data: HashMap::from([("user".to_owned(), serde_json::json!("alice"))]),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    sessions.create(&mut record).await.unwrap();
    let alice = person("alice", &[Role::Operator]);
    test.store
        .record_session_owner(&record.id.to_string(), &alice, Utc::now())
        .await
        .unwrap();

    // A session that lives on is written back as usual.
    let mut touched = sessions.load(&record.id).await.unwrap().expect("signed in");
    touched.data.insert("csrf".into(), serde_json::json!("t-1"));
    sessions.save(&touched).await.unwrap();
    let again = sessions
        .load(&record.id)
        .await
        .unwrap()
        .expect("still signed in");
    assert_eq!(again.data["csrf"], "t-1");

    // The request in flight read it before the revocation and writes it back after.
    let in_flight = sessions.load(&record.id).await.unwrap().unwrap();
    let revoked = test
        .store
        .revoke_access(
            &person("ada", &[Role::Admin]),
            "alice",
            "laptop stolen",
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(revoked.sessions_ended, 1);
    sessions.save(&in_flight).await.unwrap();
    assert!(
        sessions.load(&record.id).await.unwrap().is_none(),
        "the revoked session came back"
    );
}

/// Someone taken out of the approvers' group who never signs in again keeps approving
/// through scripts no longer than `token_roles_ttl`: after it, their token reads only, until
/// the provider shows them again. The clock is the test's.
async fn a_token_whose_holder_the_provider_has_not_shown_for_a_while_acts_as_a_viewer(
    backend: Backend,
) {
    let test = TestStore::new(backend).await;
    let monday = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap();
    let ttl = std::time::Duration::from_secs(7 * 24 * 3600);
    let alice = person("alice", &[Role::Viewer, Role::Operator, Role::Approver]);
    test.store.saw_person(&alice, monday).await.unwrap();
    let issued = test
        .store
        .issue_api_token(&alice, "deploy script", ttl * 12, monday)
        .await
        .unwrap();
    let roles_at = |at| {
        let (store, secret) = (&test.store, issued.secret.clone());
        async move {
            store
                .authenticate_api_token(&secret, at, ttl)
                .await
                .unwrap()
                .roles
                .into_iter()
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        roles_at(monday + Duration::days(7)).await,
        [Role::Viewer, Role::Operator, Role::Approver]
    );
    let later = monday + Duration::days(7) + Duration::minutes(1);
    assert_eq!(roles_at(later).await, [Role::Viewer]);

    // Seen again (signed in, still an operator), the token has what it was issued with and
    // the provider says.
    test.store
        .saw_person(&person("alice", &[Role::Viewer, Role::Operator]), later)
        .await
        .unwrap();
    assert_eq!(roles_at(later).await, [Role::Viewer, Role::Operator]);
}
