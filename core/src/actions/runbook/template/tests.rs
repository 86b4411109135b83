//! A runbook step's arguments, filled in per entity: what is sent, and what is refused
//! before anything is.

use serde_json::json;

use super::*;
use crate::actions::preview::tests::argument;

/// Payments' `transferFunds`, with a made-up `priority: Int` and `urgent: Boolean` to try types.
fn transfer_funds() -> ActionSpec {
    ActionSpec {
        mutation: "transferFunds".into(),
        description: None,
        arguments: vec![
            argument("fromAccount", "String", false, true),
            argument("toAccount", "String", false, true),
            argument("amount", "String", false, true),
            argument("currency", "String", false, true),
            argument("reference", "String", false, true),
            argument("priority", "Int", false, false),
            argument("urgent", "Boolean", false, false),
        ],
        dry_run: true,
    }
}

fn force_complete() -> ActionSpec {
    ActionSpec {
        mutation: "forceCompleteSagas".into(),
        description: None,
        arguments: vec![
            argument("ids", "ID", true, true),
            argument("reason", "String", false, true),
        ],
        dry_run: true,
    }
}

fn template(arguments: Value) -> Result<Template, TemplateError> {
    Template::parse(arguments.as_object().expect("an object"))
}

fn values(pairs: &[(&str, &str)]) -> Values {
    pairs
        .iter()
        .map(|(key, value)| {
            let (ns, field) = key.split_once('.').unwrap();
            let placeholder = super::placeholder(&format!("{ns}.{field}")).unwrap();
            (placeholder, (*value).to_owned())
        })
        .collect()
}

fn the_transfer() -> Template {
    template(json!({
        "fromAccount": "{{ facts.from_account }}",
        "toAccount": "{{facts.to_account}}",
        "amount": "{{ funds.amount }}",
        "currency": "{{ funds.currency }}",
        "reference": "RB-{{ entity.id }}",
    }))
    .unwrap()
}

fn saga_42() -> Values {
    values(&[
        ("entity.id", "42"),
        ("facts.from_account", "acct-10001"),
        ("facts.to_account", "acct-20002"),
        ("funds.amount", "1250.00"),
        ("funds.currency", "EUR"),
    ])
}

#[test]
fn each_entity_fills_in_its_own_values() {
    let step = the_transfer();
    step.check(&transfer_funds()).unwrap();
    assert!(step.per_entity());
    let names: Vec<String> = step.placeholders().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        names,
        [
            "entity.id",
            "funds.amount",
            "funds.currency",
            "facts.from_account",
            "facts.to_account"
        ],
        "what must be read for each entity, once each"
    );
    assert_eq!(
        Value::Object(step.render(&transfer_funds(), &saga_42()).unwrap()),
        json!({
            "fromAccount": "acct-10001",
            "toAccount": "acct-20002",
            "amount": "1250.00",
            "currency": "EUR",
            "reference": "RB-42",
        })
    );
}

#[test]
fn a_value_the_entity_lacks_refuses_its_call_and_says_why() {
    let step = the_transfer();
    let mut no_money = saga_42();
    no_money.retain(|p, _| p.namespace != Namespace::Funds);
    let refused = step
        .render(&transfer_funds(), &no_money)
        .unwrap_err()
        .to_string();
    assert_eq!(
        refused,
        "argument \"amount\": no value for funds.amount: it holds no money"
    );

    let mut no_account = saga_42();
    no_account.retain(|p, _| p.field != "to_account");
    let refused = step
        .render(&transfer_funds(), &no_account)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("the service keeps no fact \"to_account\" about it"),
        "{refused}"
    );
}

#[test]
fn a_whole_placeholder_takes_the_arguments_type_and_anything_else_stays_text() {
    let step = template(json!({
        "fromAccount": "x", "toAccount": "y", "amount": "{{ funds.amount }}", "currency": "EUR",
        "reference": "RB-{{ entity.id }}",
        "priority": "{{ param.priority }}",
        "urgent": "{{ param.urgent }}",
    }))
    .unwrap();
    let mut given = saga_42();
    given.extend(values(&[("param.priority", "3"), ("param.urgent", "true")]));
    let sent = step.render(&transfer_funds(), &given).unwrap();
    assert_eq!(sent["priority"], json!(3));
    assert_eq!(sent["urgent"], json!(true));
    assert_eq!(
        sent["amount"],
        json!("1250.00"),
        "a String argument keeps the exact decimal text"
    );

    given.extend(values(&[("param.priority", "soon")]));
    let refused = step
        .render(&transfer_funds(), &given)
        .unwrap_err()
        .to_string();
    assert_eq!(
        refused,
        "argument \"priority\": param.priority is \"soon\", not of type Int"
    );
}

#[test]
fn placeholders_inside_lists_and_objects_are_filled_as_text() {
    let step = template(json!({
        "reason": "INC-7",
        "note": { "saga": "{{ entity.id }}", "tags": ["held {{ funds.currency }}", 3] },
    }))
    .unwrap();
    let sent = step.render(&force_complete(), &saga_42()).unwrap();
    assert_eq!(
        Value::Object(sent),
        json!({ "reason": "INC-7", "note": { "saga": "42", "tags": ["held EUR", 3] } })
    );
}

#[test]
fn only_placeholders_runboard_knows_are_accepted() {
    for (written, expected) in [
        (
            "{{ funds.amout }}",
            "{{ funds.amout }} is not a value Runboard knows",
        ),
        ("{{ amount }}", "{{ amount }} is not a value Runboard knows"),
        (
            "{{ accounts.from }}",
            "{{ accounts.from }} is not a value Runboard knows",
        ),
        ("{{ facts. }}", "{{ facts. }} is not a value Runboard knows"),
        ("{{ facts.from account }}", "is not a value Runboard knows"),
        ("RB-{{ entity.id", "{{ without }}"),
        ("{{ entity.id | upper }}", "is not a value Runboard knows"),
    ] {
        let refused = template(json!({ "reference": written }))
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("argument \"reference\": ") && refused.contains(expected),
            "{written}: {refused}"
        );
    }
    let refused = template(json!({ "reference": "{{ funds.amout }}" }))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("funds.amount, funds.currency") && refused.contains("facts.<name>"),
        "the refusal lists what is known: {refused}"
    );
    assert!(
        template(json!({ "reference": "a }} b" })).is_ok(),
        "a lone }} is text"
    );
}

#[test]
fn the_arguments_are_checked_against_the_mutation() {
    let check = |arguments: Value, spec: &ActionSpec| {
        template(arguments)
            .unwrap()
            .check(spec)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        check(json!({ "ids": ["a"], "reason": "x" }), &force_complete()),
        Err(
            "argument \"ids\": is the list of entities, which Runboard fills with the \
             runbook's entities; leave it out"
                .to_owned()
        )
    );
    assert_eq!(
        check(json!({ "reson": "x" }), &force_complete()),
        Err(
            "argument \"reson\": forceCompleteSagas takes no such argument; it takes ids, reason"
                .to_owned()
        )
    );
    assert_eq!(
        check(json!({}), &force_complete()),
        Err("argument \"reason\": forceCompleteSagas requires it".to_owned())
    );
    assert_eq!(
        check(json!({ "reason": "{{ param.reason }}" }), &force_complete()),
        Ok(()),
        "the list of entities is Runboard's to fill"
    );

    let same_for_everyone = json!({
        "fromAccount": "acct-1", "toAccount": "acct-2", "amount": "{{ param.amount }}",
        "currency": "EUR", "reference": "INC-7",
    });
    let refused = check(same_for_everyone, &transfer_funds()).unwrap_err();
    assert!(
        refused.contains("every entity's call would be the same"),
        "{refused}"
    );
}

#[test]
fn operator_parameters_alone_leave_a_step_chunked() {
    let step = template(json!({ "reason": "{{ param.reason }}" })).unwrap();
    assert!(
        !step.per_entity(),
        "the same for every entity: chunks of the entity list"
    );
    assert!(the_transfer().per_entity());
}
