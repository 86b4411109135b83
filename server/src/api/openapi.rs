//! The API's OpenAPI 3.1 document, built from the one route table: each route's method, path
//! and who may call it come from the table itself, what it takes and answers from the
//! model's own types, so the document cannot drift from what the server does.

use axum::Json;
use http::Method;
use runboard_core::identity::Access;
use runboard_model::{ApiOperation, ApiParameter, ApiReference, ApiSchema};
use serde_json::Value;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder, ResponsesBuilder, Schema, Tag,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::extract::BodyExample;
use crate::error::ErrorBody;
use crate::http::RouteRule;

/// What a route takes and answers, beside what the route table says of it.
pub(crate) struct Doc {
    tag: &'static str,
    summary: &'static str,
    /// The schema name of its JSON body, and an example of one.
    body: Option<(String, &'static str)>,
    answer: Answer,
    query: Vec<utoipa::openapi::path::Parameter>,
    /// A list that answers CSV too (`?format=csv` or `Accept: text/csv`).
    csv: bool,
    /// Every schema the body and answer name, for the document's components.
    schemas: Vec<(String, RefOr<Schema>)>,
}

enum Answer {
    /// JSON of the named schema.
    Json {
        status: u16,
        schema: String,
    },
    /// A document to read or keep, not JSON: its media type.
    File(&'static str),
    NoContent,
}

impl Doc {
    /// A route of the API's `tag` part, doing what `summary` says.
    pub(crate) fn new(tag: &'static str, summary: &'static str) -> Self {
        Self {
            tag,
            summary,
            body: None,
            answer: Answer::NoContent,
            query: Vec::new(),
            csv: false,
            schemas: Vec::new(),
        }
    }

    /// Answers the whole list as a CSV file too, with `?format=csv` or an `Accept` header
    /// that prefers `text/csv`.
    pub(crate) fn csv(mut self) -> Self {
        self.csv = true;
        self
    }

    /// Takes a JSON body of `T`.
    pub(crate) fn takes<T: ToSchema + BodyExample>(mut self) -> Self {
        self.body = Some((self.schema_of::<T>(), T::EXAMPLE));
        self
    }

    /// Answers 200 with a JSON `T`.
    pub(crate) fn answers<T: ToSchema>(self) -> Self {
        self.answers_with::<T>(200)
    }

    /// Answers `status` with a JSON `T`.
    pub(crate) fn answers_with<T: ToSchema>(mut self, status: u16) -> Self {
        let schema = self.schema_of::<T>();
        self.answer = Answer::Json { status, schema };
        self
    }

    /// Answers 200 with a document of `media_type`.
    pub(crate) fn file(mut self, media_type: &'static str) -> Self {
        self.answer = Answer::File(media_type);
        self
    }

    /// Reads the query parameters of `Q`.
    pub(crate) fn query<Q: IntoParams>(mut self) -> Self {
        self.query = Q::into_params(|| Some(ParameterIn::Query));
        self
    }

    fn schema_of<T: ToSchema>(&mut self) -> String {
        collect::<T>(&mut self.schemas);
        T::name().into_owned()
    }
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// Who may call a route, in words, and as a stable name for machines.
fn who(access: Access) -> (&'static str, &'static str) {
    match access {
        Access::Public => ("anyone, signed in or not", "public"),
        Access::Read => ("anyone signed in, whatever their role", "read"),
        Access::BrowserSession => (
            "a person signed in through a browser session; an API token may not",
            "browser_session",
        ),
        Access::Operate => ("a person with the operator role", "operator"),
        Access::Approve => ("a person with the approver role", "approver"),
        Access::Admin => ("a person with the admin role", "admin"),
    }
}

/// Which ways of signing in a route takes: a token, or a session cookie (with its CSRF
/// token on a write).
fn security(method: &Method, access: Access) -> Vec<SecurityRequirement> {
    let session = if method == Method::GET {
        SecurityRequirement::new::<_, [&str; 0], &str>("session", [])
    } else {
        SecurityRequirement::new::<_, [&str; 0], &str>("session", [])
            .add::<_, [&str; 0], &str>("csrf", [])
    };
    match access {
        Access::Public => Vec::new(),
        Access::BrowserSession => vec![session],
        _ => vec![
            SecurityRequirement::new::<_, [&str; 0], &str>("token", []),
            session,
        ],
    }
}

/// `format`, of the lists that answer CSV too.
fn format_parameter() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("format")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "`json` (the default) or `csv`: the whole list (not a page) as a CSV file, as `Accept: text/csv` asks too",
        ))
        .schema(Some(String::schema()))
        .build()
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

/// The `{name}` parameters of a route's path.
fn path_parameters(path: &str) -> Vec<utoipa::openapi::path::Parameter> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let what = match name {
                "service" => "the service's name, as the overview lists it",
                "batch" => "the batch's id at the service",
                "id" => "the id the list of these gives",
                _ => "as the matching list gives it",
            };
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(what))
                .schema(Some(String::schema()))
                .build()
        })
        .collect()
}

/// The document of every documented route in `routes`.
pub(crate) fn document(routes: &[(RouteRule, Doc)]) -> OpenApi {
    let mut schemas = Vec::new();
    collect::<ErrorBody<'static>>(&mut schemas);
    let mut paths = PathsBuilder::new();
    let mut tags: Vec<&str> = Vec::new();
    for (rule, doc) in routes {
        let method = rule.method.clone().unwrap_or(Method::GET);
        let (who_words, who_name) = who(rule.access);
        let answer = match &doc.answer {
            Answer::Json { status, schema } => {
                let mut response = ResponseBuilder::new()
                    .description(doc.summary)
                    .content("application/json", Content::new(Some(reference(schema))));
                if doc.csv {
                    response = response.content("text/csv", Content::new(Some(String::schema())));
                }
                (status.to_string(), response.build())
            }
            Answer::File(media_type) => (
                "200".to_owned(),
                ResponseBuilder::new()
                    .description(doc.summary)
                    .content(*media_type, Content::new(Some(String::schema())))
                    .build(),
            ),
            Answer::NoContent => (
                "204".to_owned(),
                ResponseBuilder::new().description(doc.summary).build(),
            ),
        };
        let refused = ResponseBuilder::new()
            .description(
                "Refused or failed: `error.code` says what kind (bad_request, unauthorized, forbidden, not_found, conflict, too_many_requests, service_unavailable, …), `error.message` what was wrong and what to do",
            )
            .content(
                "application/json",
                Content::new(Some(reference(&ErrorBody::<'static>::name()))),
            )
            .build();
        let mut operation = OperationBuilder::new()
            .tag(doc.tag)
            .summary(Some(doc.summary))
            .description(Some(format!("Who may call it: {who_words}.")))
            .operation_id(Some(format!(
                "{}{}",
                method.as_str().to_lowercase(),
                rule.path
                    .trim_start_matches("/api/v1")
                    .replace(['/', '{', '}', '.'], "_")
            )))
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add("x-runboard-access", who_name)
                    .build(),
            ))
            .responses(
                ResponsesBuilder::new()
                    .response(answer.0, answer.1)
                    .response("default", refused)
                    .build(),
            );
        for parameter in path_parameters(&rule.path)
            .into_iter()
            .chain(doc.query.iter().cloned())
            .chain(doc.csv.then(format_parameter))
        {
            operation = operation.parameter(parameter);
        }
        if let Some((body, example)) = &doc.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some(described_example(example)))
                    .required(Some(Required::True))
                    .content("application/json", Content::new(Some(reference(body))))
                    .build(),
            ));
        }
        for requirement in security(&method, rule.access) {
            operation = operation.security(requirement);
        }
        paths = paths.path(
            &rule.path,
            PathItem::new(http_method(&method), operation.build()),
        );
        schemas.extend(doc.schemas.iter().cloned());
        if !tags.contains(&doc.tag) {
            tags.push(doc.tag);
        }
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "token",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A personal API token (`Authorization: Bearer rbt_…`), made on the Account page; it acts with its maker's roles",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::http::SESSION_COOKIE,
                "The browser session of a person signed in at /login",
            ))),
        )
        .security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::identity::CSRF_HEADER,
                "A write with the session cookie carries the session's CSRF token, which GET /api/v1/me gives",
            ))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Runboard API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Everything a screen of Runboard can do: the fleet's sagas, batches and funds, corrective actions with their dry run and approvals, alerts and the audit log. Errors are always `{\"error\": {\"code\", \"message\"}}`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .tags(Some(tags.into_iter().map(Tag::new)))
        .build()
}

/// The document, for scripts and the API reference page.
pub async fn openapi_json() -> Json<&'static OpenApi> {
    Json(crate::http::api_document())
}

/// A body's example as the document describes the body; the reference page reads it back.
fn described_example(example: &str) -> String {
    format!("For example: `{example}`")
}

/// The example a body's description gives, as [`described_example`] wrote it.
fn example_described(description: &str) -> Option<&str> {
    description
        .strip_prefix("For example: `")?
        .strip_suffix('`')
}

/// The document as the API reference page shows it.
pub(crate) fn reference_page(document: &OpenApi) -> ApiReference {
    let document = serde_json::to_value(document).expect("the document serializes");
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    // A `$ref` names its schema; anything else is shown by its media type.
    let answer_of = |content: &Value| {
        content
            .as_object()?
            .iter()
            .next()
            .map(|(media_type, body)| {
                body["schema"]["$ref"]
                    .as_str()
                    .map_or(media_type.clone(), |r| {
                        r.trim_start_matches("#/components/schemas/").to_owned()
                    })
            })
    };
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let (status, success) = operation["responses"]
                .as_object()
                .and_then(|responses| responses.iter().find(|(status, _)| *status != "default"))
                .map_or(("200".to_owned(), &Value::Null), |(status, response)| {
                    (status.clone(), response)
                });
            operations.push(ApiOperation {
                tag: text(&operation["tags"][0]),
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(&operation["summary"]),
                who: text(&operation["description"]),
                parameters: operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|parameter| ApiParameter {
                        name: text(&parameter["name"]),
                        place: text(&parameter["in"]),
                        required: parameter["required"].as_bool().unwrap_or(false),
                        description: text(&parameter["description"]),
                    })
                    .collect(),
                body: answer_of(&operation["requestBody"]["content"]),
                body_example: operation["requestBody"]["description"]
                    .as_str()
                    .and_then(example_described)
                    .map(str::to_owned),
                status,
                answer: answer_of(&success["content"]),
            });
        }
    }
    // Parts in the order the route table brings them up.
    let tags: Vec<String> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tag| text(&tag["name"]))
        .collect();
    operations.sort_by_key(|operation| tags.iter().position(|tag| *tag == operation.tag));
    ApiReference {
        title: text(&document["info"]["title"]),
        version: text(&document["info"]["version"]),
        description: text(&document["info"]["description"]),
        operations,
        schemas: document["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, schema)| ApiSchema {
                name: name.clone(),
                json: serde_json::to_string_pretty(schema).expect("a schema serializes"),
            })
            .collect(),
    }
}
