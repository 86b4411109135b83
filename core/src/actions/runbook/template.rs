//! A runbook step's arguments as written, with `{{ ns.name }}` placeholders that each entity
//! fills in: `transferFunds(amount: "{{ funds.amount }}", reference: "RB-{{ entity.id }}")`.
//!
//! Deliberately small: no expressions, filters, defaults or escapes, so that a reviewer reads
//! exactly what will be sent. Values go only into the call's GraphQL variables (the document
//! never changes), so no value can change what the call asks for. Every `{{` must open a
//! placeholder Runboard knows; anything else is refused when the runbook is read, not when
//! it runs.

use std::collections::BTreeMap;
use std::fmt;

use runboard_model::ActionSpec;
use serde_json::{Map, Number, Value};

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Namespace {
    /// The entity itself: `entity.id`.
    Entity,
    /// Its supervisor row: `saga.type`, `saga.step`, `saga.status`, `saga.error`.
    Saga,
    /// The money it holds (`withheld_funds`): `funds.amount`, `funds.currency`.
    Funds,
    /// A batch item's row: `item.batch`, `item.status`, `item.error`.
    Item,
    /// What the service keeps about it (`entity_facts`), any name.
    Facts,
    /// A value the operator gives when starting the runbook, any name.
    Param,
}

impl Namespace {
    const ALL: [(&'static str, Namespace, &'static [&'static str]); 6] = [
        ("entity", Namespace::Entity, &["id"]),
        (
            "saga",
            Namespace::Saga,
            &["type", "step", "status", "error"],
        ),
        ("funds", Namespace::Funds, &["amount", "currency"]),
        ("item", Namespace::Item, &["batch", "status", "error"]),
        ("facts", Namespace::Facts, &[]),
        ("param", Namespace::Param, &[]),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, ns, _)| *ns == self)
            .map_or("", |(name, _, _)| name)
    }

    /// Why an entity may have no value here, for the refusal that names it.
    fn missing(self, field: &str) -> String {
        match self {
            Namespace::Entity => "it has no id".to_owned(),
            Namespace::Saga => "the service has no saga with this id".to_owned(),
            Namespace::Funds => "it holds no money".to_owned(),
            Namespace::Item => "it is not a batch item".to_owned(),
            Namespace::Facts => format!("the service keeps no fact {field:?} about it"),
            Namespace::Param => format!("the runbook's parameter {field:?} was not given"),
        }
    }
}

/// One `{{ ns.name }}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placeholder {
    pub namespace: Namespace,
    pub field: String,
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace.name(), self.field)
    }
}

/// A piece of a templated string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// A JSON value whose strings may hold placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Plain(Value),
    Text(Vec<Part>),
    List(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A step's arguments, read: each argument's value with its placeholders found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    arguments: Vec<(String, Node)>,
}

/// What is wrong with a template or with filling it in, naming the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {argument:?}: {problem}")]
pub struct TemplateError {
    pub argument: String,
    pub problem: String,
}

/// The values one entity fills a template with, by placeholder.
pub type Values = BTreeMap<Placeholder, String>;

impl Template {
    /// Reads a step's arguments (a JSON object), refusing any `{{` that does not open a
    /// placeholder Runboard knows.
    pub fn parse(arguments: &Map<String, Value>) -> Result<Template, TemplateError> {
        let arguments = arguments
            .iter()
            .map(|(name, value)| {
                node(value)
                    .map(|n| (name.clone(), n))
                    .map_err(|problem| TemplateError {
                        argument: name.clone(),
                        problem,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Template { arguments })
    }

    /// Every placeholder, once each, in order: what must be read for each entity.
    pub fn placeholders(&self) -> Vec<&Placeholder> {
        let mut found = Vec::new();
        for (_, node) in &self.arguments {
            collect(node, &mut found);
        }
        found.sort();
        found.dedup();
        found
    }

    /// Whether any argument depends on the entity, so each entity needs its own call. Only
    /// operator parameters are the same for every entity.
    pub fn per_entity(&self) -> bool {
        self.placeholders()
            .iter()
            .any(|p| p.namespace != Namespace::Param)
    }

    /// The arguments' names, as written.
    pub fn argument_names(&self) -> impl Iterator<Item = &str> {
        self.arguments.iter().map(|(name, _)| name.as_str())
    }

    /// Checks the arguments against the mutation: each one it takes, every required one
    /// given, the list of entities left to Runboard (it fills it with each call's entities),
    /// and a step that names no entity at all refused, since it would do the same thing once
    /// per entity.
    pub fn check(&self, spec: &ActionSpec) -> Result<(), TemplateError> {
        let refuse = |argument: &str, problem: String| TemplateError {
            argument: argument.to_owned(),
            problem,
        };
        let entity_argument = spec.entity_argument().map(|a| a.name.as_str());
        for (name, _) in &self.arguments {
            if Some(name.as_str()) == entity_argument {
                return Err(refuse(
                    name,
                    "is the list of entities, which Runboard fills with the runbook's \
                     entities; leave it out"
                        .to_owned(),
                ));
            }
            if !spec.arguments.iter().any(|a| a.name == *name) {
                let takes: Vec<&str> = spec.arguments.iter().map(|a| a.name.as_str()).collect();
                return Err(refuse(
                    name,
                    format!(
                        "{} takes no such argument; it takes {}",
                        spec.mutation,
                        takes.join(", ")
                    ),
                ));
            }
        }
        if let Some(missing) = spec.arguments.iter().find(|a| {
            a.required
                && Some(a.name.as_str()) != entity_argument
                && !self.arguments.iter().any(|(name, _)| *name == a.name)
        }) {
            return Err(refuse(
                &missing.name,
                format!("{} requires it", spec.mutation),
            ));
        }
        if entity_argument.is_none() && !self.per_entity() {
            return Err(TemplateError {
                argument: spec.mutation.clone(),
                problem: "takes no list of entities and no argument names the entity \
                          (such as {{ entity.id }}), so every entity's call would be the same"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// The call's variables for one entity. An argument that is exactly one placeholder takes
    /// the type the mutation gives it (`Int`, `Float`, `Boolean`), parsed or refused; any
    /// other templated string stays a string. A value the entity lacks refuses the call,
    /// saying which value and why: a blank is never sent in its place.
    pub fn render(
        &self,
        spec: &ActionSpec,
        values: &Values,
    ) -> Result<Map<String, Value>, TemplateError> {
        self.arguments
            .iter()
            .map(|(name, node)| {
                let scalar = spec
                    .arguments
                    .iter()
                    .find(|a| a.name == *name && !a.list)
                    .map(|a| a.type_name.as_str());
                fill(node, scalar, values)
                    .map(|v| (name.clone(), v))
                    .map_err(|problem| TemplateError {
                        argument: name.clone(),
                        problem,
                    })
            })
            .collect()
    }
}

fn node(value: &Value) -> Result<Node, String> {
    Ok(match value {
        Value::String(text) => {
            let parts = parts(text)?;
            if parts.iter().all(|p| matches!(p, Part::Text(_))) {
                Node::Plain(value.clone())
            } else {
                Node::Text(parts)
            }
        }
        Value::Array(items) => {
            let items = items.iter().map(node).collect::<Result<Vec<_>, _>>()?;
            if items.iter().all(|n| matches!(n, Node::Plain(_))) {
                Node::Plain(value.clone())
            } else {
                Node::List(items)
            }
        }
        Value::Object(fields) => {
            let fields = fields
                .iter()
                .map(|(k, v)| node(v).map(|n| (k.clone(), n)))
                .collect::<Result<Vec<_>, _>>()?;
            if fields.iter().all(|(_, n)| matches!(n, Node::Plain(_))) {
                Node::Plain(value.clone())
            } else {
                Node::Object(fields)
            }
        }
        other => Node::Plain(other.clone()),
    })
}

/// Splits `RB-{{ entity.id }}` into its text and its placeholders.
fn parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            format!("{{{{ without }}}} in {text:?}: write a placeholder as {{{{ funds.amount }}}}")
        })?;
        parts.push(Part::Value(placeholder(after[..close].trim())?));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

fn placeholder(inner: &str) -> Result<Placeholder, String> {
    let known = || {
        Namespace::ALL
            .iter()
            .map(|(name, _, fields)| {
                if fields.is_empty() {
                    format!("{name}.<name>")
                } else {
                    fields
                        .iter()
                        .map(|f| format!("{name}.{f}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unknown = || {
        format!(
            "{{{{ {inner} }}}} is not a value Runboard knows; it knows {}",
            known()
        )
    };
    let (ns, field) = inner.split_once('.').ok_or_else(unknown)?;
    let (_, namespace, fields) = Namespace::ALL
        .iter()
        .find(|(name, _, _)| *name == ns)
        .ok_or_else(unknown)?;
    let well_formed =
        !field.is_empty() && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed || (!fields.is_empty() && !fields.contains(&field)) {
        return Err(unknown());
    }
    Ok(Placeholder {
        namespace: *namespace,
        field: field.to_owned(),
    })
}

fn collect<'a>(node: &'a Node, found: &mut Vec<&'a Placeholder>) {
    match node {
        Node::Plain(_) => {}
        Node::Text(parts) => found.extend(parts.iter().filter_map(|p| match p {
            Part::Value(placeholder) => Some(placeholder),
            Part::Text(_) => None,
        })),
        Node::List(items) => items.iter().for_each(|n| collect(n, found)),
        Node::Object(fields) => fields.iter().for_each(|(_, n)| collect(n, found)),
    }
}

/// `node` filled in; `scalar` is the argument's GraphQL type where it is a top-level scalar.
fn fill(node: &Node, scalar: Option<&str>, values: &Values) -> Result<Value, String> {
    let value_of = |p: &Placeholder| {
        values
            .get(p)
            .ok_or_else(|| format!("no value for {p}: {}", p.namespace.missing(&p.field)))
    };
    Ok(match node {
        Node::Plain(value) => value.clone(),
        Node::Text(parts) => match (parts.as_slice(), scalar) {
            ([Part::Value(p)], Some(type_name)) => {
                let value = value_of(p)?;
                typed(value, type_name)
                    .ok_or_else(|| format!("{p} is {value:?}, not of type {type_name}"))?
            }
            _ => {
                let mut text = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => text.push_str(t),
                        Part::Value(p) => text.push_str(value_of(p)?),
                    }
                }
                Value::String(text)
            }
        },
        Node::List(items) => Value::Array(
            items
                .iter()
                .map(|n| fill(n, None, values))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, n)| fill(n, None, values).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A value as the argument's GraphQL scalar; text for any type but the three below.
fn typed(value: &str, type_name: &str) -> Option<Value> {
    match type_name {
        "Int" => value.parse::<i64>().ok().map(Value::from),
        "Float" => value
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        "Boolean" => value.parse::<bool>().ok().map(Value::Bool),
        _ => Some(Value::String(value.to_owned())),
    }
}

#[cfg(test)]
mod tests;
