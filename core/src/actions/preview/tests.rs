//! The preview's rules: arguments checked before anything is sent, and the digest an
//! approval binds to.

use runboard_model::ArgumentSpec;

use super::*;

/// An argument of a mutation, as introspection gives it (the runbook tests use it too).
pub(in crate::actions) fn argument(
    name: &str,
    type_name: &str,
    list: bool,
    required: bool,
) -> ArgumentSpec {
    ArgumentSpec {
        name: name.into(),
        description: None,
        type_name: type_name.into(),
        list,
        required,
    }
}

/// `retrySagas(ids: [ID!]!, reason: String!, note: String)`, as a service offers it.
fn retry_sagas() -> ActionSpec {
    ActionSpec {
        mutation: "retrySagas".into(),
        description: None,
        arguments: vec![
            argument("ids", "ID", true, true),
            argument("reason", "String", false, true),
            argument("note", "String", false, false),
        ],
        dry_run: true,
    }
}

fn refusal(result: Result<(Vec<String>, Map<String, Value>), ActionError>) -> String {
    result.expect_err("refused").to_string()
}

#[test]
fn the_list_of_ids_names_the_entities_once_each_and_the_rest_are_the_calls_variables() {
    let (entities, rest) = split_arguments(
        &retry_sagas(),
        &json!({ "ids": [" s-1 ", "s-2", "s-1"], "reason": "INC-7" }),
        false,
    )
    .unwrap();
    assert_eq!(entities, ["s-1", "s-2"], "trimmed, and the repeat dropped");
    assert_eq!(Value::Object(rest), json!({ "reason": "INC-7" }));
}

#[test]
fn a_mistake_in_the_arguments_is_named_before_anything_is_sent() {
    let spec = retry_sagas();
    let unknown = refusal(split_arguments(
        &spec,
        &json!({ "ids": ["a"], "reson": "x" }),
        false,
    ));
    assert!(unknown.contains("takes no argument \"reson\""), "{unknown}");
    assert!(
        unknown.contains("reason: String!"),
        "it lists what it takes: {unknown}"
    );
    let missing = refusal(split_arguments(&spec, &json!({ "ids": ["a"] }), false));
    assert_eq!(missing, "retrySagas needs reason (String!)");
    let empty = refusal(split_arguments(
        &spec,
        &json!({ "ids": [], "reason": "x" }),
        false,
    ));
    assert_eq!(empty, "ids lists no IDs; name at least one");
    let numbers = refusal(split_arguments(
        &spec,
        &json!({ "ids": [7], "reason": "x" }),
        false,
    ));
    assert_eq!(numbers, "ids must hold IDs as strings");
    let not_an_object = refusal(split_arguments(&spec, &json!(["a"]), false));
    assert!(not_an_object.contains("JSON object"), "{not_an_object}");
}

#[test]
fn a_selection_stands_in_for_the_list_but_never_beside_it() {
    let spec = retry_sagas();
    let (entities, rest) = split_arguments(&spec, &json!({ "reason": "x" }), true).unwrap();
    assert!(
        entities.is_empty(),
        "the selection's are read as the calls are cut"
    );
    assert_eq!(Value::Object(rest), json!({ "reason": "x" }));
    let both = refusal(split_arguments(
        &spec,
        &json!({ "ids": ["s-1"], "reason": "x" }),
        true,
    ));
    assert_eq!(both, "give either ids or a selection, not both");
    let single = ActionSpec {
        arguments: vec![argument("reason", "String", false, true)],
        ..retry_sagas()
    };
    let no_list = refusal(split_arguments(&single, &json!({ "reason": "x" }), true));
    assert!(no_list.contains("cannot act on a selection"), "{no_list}");
}

#[test]
fn more_entities_than_one_action_takes_are_refused_with_what_to_do() {
    let ids: Vec<String> = (0..=MAX_ENTITIES).map(|i| format!("s-{i}")).collect();
    let over = refusal(split_arguments(
        &retry_sagas(),
        &json!({ "ids": ids, "reason": "x" }),
        false,
    ));
    assert!(over.contains("split it in several"), "{over}");
}

fn preview() -> Preview {
    Preview {
        endpoint: "http://payments/graphql".into(),
        document: document(&retry_sagas()),
        variables: json!({ "reason": "INC-7" }),
        entity_argument: Some("ids".into()),
        entities: 2,
        chunk_size: 1_000,
        concurrency: 4,
        dry_run: DryRun::NotOffered,
        money: Vec::new(),
        steps: Vec::new(),
        params: Default::default(),
        canary: 0,
    }
}

fn found(id: &str, state: &str, held: Option<&str>) -> Found {
    Found {
        id: id.into(),
        state: Some(state.into()),
        held: held.map(|amount| Money {
            amount: amount.parse().unwrap(),
            currency: "EUR".into(),
        }),
    }
}

fn digest(members: &[Found], planned: Option<&str>, preview: &Preview) -> runboard_model::Digest {
    let mut digester = Digester::new();
    digester.chunk(0, members, planned);
    digester.finish(preview)
}

#[test]
fn the_digest_changes_with_anything_an_approver_saw_and_only_then() {
    let members = [
        found("s-1", "failed", Some("50.00")),
        found("s-2", "failed", None),
    ];
    let planned = Some(r#"[{"entityId":"s-1","description":"retry"}]"#);
    let approved = digest(&members, planned, &preview());
    assert_eq!(
        approved,
        digest(&members, planned, &preview()),
        "the same preview, the same digest"
    );
    assert_eq!(approved.as_str().len(), 64, "SHA-256 in hex");

    let moved_on = [
        found("s-1", "completed", Some("50.00")),
        found("s-2", "failed", None),
    ];
    let more_money = [
        found("s-1", "failed", Some("50.01")),
        found("s-2", "failed", None),
    ];
    let other_effects = Some(r#"[{"entityId":"s-1","description":"refund"}]"#);
    let other_variables = Preview {
        variables: json!({ "reason": "INC-8" }),
        ..preview()
    };
    for (what, changed) in [
        ("an entity's state", digest(&moved_on, planned, &preview())),
        (
            "the money an entity holds",
            digest(&more_money, planned, &preview()),
        ),
        (
            "the dry run's effects",
            digest(&members, other_effects, &preview()),
        ),
        ("no dry run at all", digest(&members, None, &preview())),
        (
            "the call's variables",
            digest(&members, planned, &other_variables),
        ),
    ] {
        assert_ne!(changed, approved, "{what} changed, the digest did not");
    }

    let mut split = Digester::new();
    split.chunk(0, &members[..1], planned);
    split.chunk(1, &members[1..], planned);
    assert_ne!(
        split.finish(&preview()),
        approved,
        "the same entities in other chunks"
    );
}

/// An approval in flight binds to a digest computed by the release that previewed it. A
/// release that hashed the same preview differently would void every such approval on
/// upgrade, so a change to this value must be a deliberate one (a field added to `Preview`
/// stays out of its JSON while empty, for instance).
#[test]
fn the_digest_of_a_preview_is_the_one_earlier_releases_computed() {
    let euros = |amount: &str| Money {
        amount: amount.parse().unwrap(),
        currency: "EUR".into(),
    };
    let previewed = Preview {
        dry_run: DryRun::Done {
            effects: 1,
            groups: vec![EffectGroup {
                example: "retry transfer at settle".into(),
                count: 1,
                money: vec![euros("50.00")],
            }],
        },
        money: vec![euros("50.00")],
        ..preview()
    };
    let mut digester = Digester::new();
    digester.chunk(
        0,
        &[found("s-1", "failed", Some("50.00"))],
        Some(r#"[{"entityId":"s-1","description":"retry transfer at settle"}]"#),
    );
    digester.chunk(1, &[found("s-2", "stuck", None)], None);
    assert_eq!(digester.finish(&previewed), GOLDEN_DIGEST);
}

const GOLDEN_DIGEST: &str = "45b57bfd83b8b15238eeb4d9d96333904c0b95a6a718d1b3fc2c682ff40328a4";

#[test]
fn effects_compare_whatever_order_the_service_lists_them_in() {
    let effect = |entity: &str, description: &str| Effect {
        entity_id: entity.into(),
        description: description.into(),
        amount: None,
        currency: None,
    };
    assert_eq!(
        sorted(vec![effect("b", "x"), effect("a", "y"), effect("a", "x")]),
        vec![effect("a", "x"), effect("a", "y"), effect("b", "x")]
    );
}
