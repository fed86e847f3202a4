//! CDEvents on `POST /v1/events`, as producers send them: a CDEvent in a CloudEvent, in
//! binary mode (the CDEvent is the body, `ce-*` headers carry the CloudEvent attributes) or in
//! structured mode (`Content-Type: application/cloudevents+json`, the CDEvent is `data`), or a
//! bare CDEvent. CDEvents spec 0.1 to 0.5 (`context.version`, `context.specversion` from 0.5)
//! and 0.6.0-draft are read.
//!
//! | CDEvent | recorded as |
//! |---|---|
//! | `service.deployed`, `service.upgraded` | a deployment, status `succeeded` |
//! | `service.rolledback` | a deployment, status `rolled_back` (its artifact is the release rolled back to) |
//! | `service.removed` | a deployment, status `removed`, without images: the service stopped running there |
//! | `incident.detected` | a firing alert, attributed like an Alertmanager alert |
//! | `incident.resolved` | the same alert, resolved (resolution is final) |
//! | any other CDEvent (`pipelinerun.finished`, `artifact.published`, custom `dev.cdeventsx.*`) | nothing: `202 {"status":"ignored","type":…}`, counted in `deploygraph_cdevents_ignored_total{type}` |
//!
//! A service event becomes a deployment field by field:
//!
//! | deployment field | CDEvent field |
//! |---|---|
//! | uid | `Uid::derive("deployment", ["cdevents", context.source, context.id, <subject>.<predicate>])` |
//! | id | `context.id` |
//! | service | `customData.service`, else the last `/` segment of `subject.id`, made a DNS label (`myApp` → `myapp`) |
//! | origin | `{source: context.source, type: context.type, subject: subject.id, source_name: <the name before normalizing>}` |
//! | environment | `subject.content.environment.id`, whole (`prod/eu/cluster-a`) |
//! | images | `subject.content.artifactId` when its package URL is an image: `pkg:oci/NAME@sha256%3A…?repository_url=…&tag=…` or `pkg:docker/…@TAG`; none for other package types and for `service.removed` without an artifact |
//! | commit | `customData.commit` (a SHA, or `{sha, repo, author, message, committed_at}`), else the artifact's `vcs_url` qualifier when it pins a commit (`git+https://github.com/acme/app@9fceb02`), else none |
//! | version | `customData.version`, else the image tag, else the package version of a non-image artifact |
//! | namespace, actor | `customData.namespace`, `customData.actor` |
//! | cluster | `customData.cluster`, else `default` |
//! | started_at | `context.timestamp` |
//!
//! Idempotency follows CloudEvents: `context.source` + `context.id` name one event. The event
//! type without its version is part of the key too, because producers (the spec's own examples
//! among them) reuse one id for the different events of a subject; a retry has the same type,
//! so it is still answered `200` with the stored record, while the same id from another source
//! is another event. Up to this version the uid was derived from `context.id` alone; an event
//! recorded then and sent again now is recorded once more under its new uid (there were few:
//! `customData.commit` was required).
//!
//! Incidents: the alert's fingerprint is `Uid::derive("incident", [context.source, subject.id])`
//! (`incident-<32 hex>`), its uid `Uid::derive("alert", [fingerprint])`: one incident is one
//! alert occurrence whatever the order its events arrive in.

mod incident;
mod purl;
mod schema;
mod service;

pub(crate) use incident::Incident;
pub use schema::{CdEventSchema, CloudEventSchema};

use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use deploygraph_model::Deployment;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a request to `/v1/events` asks for.
#[derive(Debug)]
pub(crate) enum Event {
    /// A service event: record this deployment.
    Deployment(Box<Deployment>),
    /// An incident event: record this alert.
    Incident(Box<Incident>),
    /// A CDEvent deploygraph does not record.
    Ignored {
        /// `context.type` as sent.
        event_type: String,
        /// The metrics label: `<subject>.<predicate>` of the spec, `custom`, or `other`.
        kind: &'static str,
    },
}

/// Reads the request: the CloudEvent envelope (structured or binary), then the CDEvent.
///
/// # Errors
/// 415 for batch mode; 422 naming the field for a malformed envelope, headers that
/// contradict the CDEvent, an unsupported spec version, and invalid or missing fields of the
/// event types that are recorded.
pub(crate) fn read(headers: &HeaderMap, body: Value) -> Result<Event, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let cdevent = match media.as_str() {
        "application/cloudevents-batch+json" => {
            return Err(ApiError {
                message: "CloudEvents batch mode is not supported: send one event per request"
                    .into(),
                ..ApiError::unsupported_media_type()
            });
        }
        "application/cloudevents+json" => structured(body)?,
        _ => binary(headers, body)?,
    };
    classify(cdevent)
}

/// The CloudEvent attributes the envelope or the `ce-*` headers carry.
struct Attributes {
    id: String,
    source: String,
    event_type: String,
}

#[derive(Deserialize)]
struct Envelope {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    datacontenttype: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    data_base64: Option<Value>,
}

fn cloudevents_version(field: &str, value: &str) -> Result<(), ApiError> {
    if value == "1.0" {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("CloudEvents {value:?} is not supported: send specversion 1.0"),
        ))
    }
}

/// Structured mode: the CDEvent is the envelope's `data`.
fn structured(body: Value) -> Result<Value, ApiError> {
    let envelope: Envelope = typed(body, "")?;
    cloudevents_version("specversion", &envelope.specversion)?;
    if let Some(media) = &envelope.datacontenttype {
        let media = media.split(';').next().unwrap_or_default().trim();
        if !(media.eq_ignore_ascii_case("application/json") || media.ends_with("+json")) {
            return Err(ApiError::invalid(
                "datacontenttype",
                format!("{media:?} is not JSON: the data must be the CDEvent as JSON"),
            ));
        }
    }
    if envelope.data_base64.is_some() {
        return Err(ApiError::invalid(
            "data_base64",
            "is not supported: send the CDEvent as JSON in data",
        ));
    }
    let data = match envelope.data {
        // Some SDKs send JSON data as a string; a CDEvent is never a JSON string, so its text
        // is read as the event.
        Some(Value::String(text)) => serde_json::from_str(&text).map_err(|e| {
            ApiError::invalid("data", format!("is a string that is not a CDEvent: {e}"))
        })?,
        Some(data) => data,
        None => return Err(ApiError::invalid("data", "is required: the CDEvent")),
    };
    let attributes = Attributes {
        id: envelope.id,
        source: envelope.source,
        event_type: envelope.event_type,
    };
    agree(&attributes, &data, ["id", "source", "type"])?;
    Ok(data)
}

/// Binary mode (the `ce-*` headers with the CDEvent as the body), or a bare CDEvent.
fn binary(headers: &HeaderMap, body: Value) -> Result<Value, ApiError> {
    let header_value = |name: &str| -> Result<Option<String>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::invalid(name, "is not visible ASCII"))
            })
            .transpose()
    };
    let Some(specversion) = header_value("ce-specversion")? else {
        return Ok(body);
    };
    cloudevents_version("ce-specversion", &specversion)?;
    let required = |name: &str| -> Result<String, ApiError> {
        header_value(name)?
            .ok_or_else(|| ApiError::invalid(name, "is required in CloudEvents binary mode"))
    };
    let attributes = Attributes {
        id: required("ce-id")?,
        source: required("ce-source")?,
        event_type: required("ce-type")?,
    };
    agree(&attributes, &body, ["ce-id", "ce-source", "ce-type"])?;
    Ok(body)
}

/// The CloudEvent attributes must be the CDEvent's own (the CDEvents CloudEvents binding).
fn agree(attributes: &Attributes, cdevent: &Value, fields: [&str; 3]) -> Result<(), ApiError> {
    let context = cdevent.get("context");
    let pairs = [
        (fields[0], "id", &attributes.id),
        (fields[1], "source", &attributes.source),
        (fields[2], "type", &attributes.event_type),
    ];
    for (field, key, value) in pairs {
        let own = context.and_then(|c| c.get(key)).and_then(Value::as_str);
        if let Some(own) = own
            && own != value
        {
            return Err(ApiError::invalid(
                field,
                format!("{value:?} differs from the CDEvent's context.{key} {own:?}"),
            ));
        }
    }
    Ok(())
}

/// Deserializes `value`, naming the field at fault by its path under `prefix`.
pub(super) fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let mut field = match (prefix, path.as_str()) {
            (p, ".") => p.to_owned(),
            ("", path) => path.to_owned(),
            (p, path) => format!("{p}.{path}"),
        };
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(missing);
        }
        ApiError::invalid(field, message)
    })
}

/// The CloudEvents context every CDEvent carries.
#[derive(Debug, Deserialize)]
pub(super) struct Context {
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    /// The spec version up to 0.4.
    #[serde(default)]
    pub version: Option<String>,
    /// The spec version from 0.5.
    #[serde(default)]
    pub specversion: Option<String>,
}

/// Upper bounds of the context's strings, in characters.
const MAX_ID: usize = 256;
const MAX_SOURCE: usize = 1024;

impl Context {
    fn check(&self) -> Result<(), ApiError> {
        for (field, value, max) in [
            ("context.id", &self.id, MAX_ID),
            ("context.source", &self.source, MAX_SOURCE),
        ] {
            if value.trim().is_empty() {
                return Err(ApiError::invalid(field, "must not be empty"));
            }
            if value.chars().count() > max {
                return Err(ApiError::invalid(
                    field,
                    format!("is longer than {max} characters"),
                ));
            }
        }
        deploygraph_model::schema::parse_input_time("context.timestamp", &self.timestamp)
            .map_err(ApiError::from)?;
        Ok(())
    }

    /// The spec version is one this server reads: 0.1.x to 0.5.x, or 0.6.0-draft.
    fn check_spec_version(&self) -> Result<(), ApiError> {
        let (field, version) = match (&self.specversion, &self.version) {
            (Some(v), _) => ("context.specversion", v),
            (None, Some(v)) => ("context.version", v),
            (None, None) => {
                return Err(ApiError::invalid(
                    "context.specversion",
                    "is required (context.version before CDEvents 0.5)",
                ));
            }
        };
        let supported = version == "0.6.0-draft" || semver_in(version, 1..=5);
        if supported {
            Ok(())
        } else {
            Err(ApiError::invalid(
                field,
                format!(
                    "CDEvents spec version {version:?} is not supported: this server reads 0.1 to 0.5 and 0.6.0-draft"
                ),
            ))
        }
    }
}

/// Whether `version` is `0.MINOR.PATCH` with `MINOR` in `minors`.
fn semver_in(version: &str, minors: std::ops::RangeInclusive<u32>) -> bool {
    let mut parts = version.split('.');
    let (Some("0"), Some(minor), Some(patch), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    minor.parse().is_ok_and(|m| minors.contains(&m))
        && !patch.is_empty()
        && patch.bytes().all(|b| b.is_ascii_digit())
}

/// The subjects and predicates of the CDEvents spec (0.1 to the draft), so that the ignored
/// counter's label stays a fixed set whatever a client sends.
const KNOWN_TYPES: [&str; 54] = [
    "approval.closed",
    "approval.created",
    "approval.updated",
    "artifact.deleted",
    "artifact.downloaded",
    "artifact.packaged",
    "artifact.published",
    "artifact.signed",
    "branch.created",
    "branch.deleted",
    "build.finished",
    "build.queued",
    "build.started",
    "change.abandoned",
    "change.created",
    "change.merged",
    "change.reviewed",
    "change.updated",
    "environment.created",
    "environment.deleted",
    "environment.modified",
    "incident.detected",
    "incident.reported",
    "incident.resolved",
    "pipelinerun.finished",
    "pipelinerun.queued",
    "pipelinerun.started",
    "repository.created",
    "repository.deleted",
    "repository.modified",
    "service.deployed",
    "service.published",
    "service.removed",
    "service.rolledback",
    "service.upgraded",
    "taskrun.finished",
    "taskrun.started",
    "testcase.finished",
    "testcase.queued",
    "testcase.started",
    "testcaserun.finished",
    "testcaserun.queued",
    "testcaserun.skipped",
    "testcaserun.started",
    "testoutput.published",
    "testsuite.finished",
    "testsuite.queued",
    "testsuite.started",
    "testsuiterun.finished",
    "testsuiterun.queued",
    "testsuiterun.started",
    "ticket.closed",
    "ticket.created",
    "ticket.updated",
];

/// The type's `<subject>.<predicate>` and version: `dev.cdevents.service.deployed.0.3.0` →
/// `("service.deployed", "0.3.0")`.
fn split_type(event_type: &str) -> Option<(&str, &str)> {
    let rest = event_type.strip_prefix("dev.cdevents.")?;
    let (subject, after) = rest.split_once('.')?;
    let (predicate, version) = after.split_once('.')?;
    if subject.is_empty() || predicate.is_empty() || version.is_empty() {
        return None;
    }
    Some((&rest[..subject.len() + 1 + predicate.len()], version))
}

/// What the CDEvent is, and for recorded types, what it becomes.
fn classify(cdevent: Value) -> Result<Event, ApiError> {
    if !cdevent.is_object() {
        return Err(ApiError::invalid(
            "",
            "the body must be a CDEvent (a JSON object)",
        ));
    }
    let context_value = cdevent
        .get("context")
        .cloned()
        .ok_or_else(|| ApiError::invalid("context", "is required"))?;
    let context: Context = typed(context_value, "context")?;
    context.check()?;
    if context.event_type.starts_with("dev.cdeventsx.") {
        return Ok(Event::Ignored {
            event_type: context.event_type,
            kind: "custom",
        });
    }
    let Some((kind, type_version)) = split_type(&context.event_type) else {
        return Err(ApiError::invalid(
            "context.type",
            format!(
                "{:?} is not a CDEvents type (dev.cdevents.<subject>.<predicate>.<version>)",
                context.event_type
            ),
        ));
    };
    let recorded = matches!(
        kind,
        "service.deployed"
            | "service.upgraded"
            | "service.rolledback"
            | "service.removed"
            | "incident.detected"
            | "incident.resolved"
    );
    if !recorded {
        let kind = KNOWN_TYPES
            .iter()
            .find(|k| **k == kind)
            .copied()
            .unwrap_or("other");
        return Ok(Event::Ignored {
            event_type: context.event_type,
            kind,
        });
    }
    context.check_spec_version()?;
    if !semver_in(type_version, 1..=3) {
        return Err(ApiError::invalid(
            "context.type",
            format!(
                "version {type_version:?} of {kind} is not supported: this server reads 0.1 to 0.3"
            ),
        ));
    }
    let kind = kind.to_owned();
    match kind.as_str() {
        "incident.detected" | "incident.resolved" => Ok(Event::Incident(Box::new(
            incident::from_event(cdevent, context, &kind)?,
        ))),
        _ => Ok(Event::Deployment(Box::new(service::from_event(
            cdevent, context, &kind,
        )?))),
    }
}

/// `customData` of a recorded event: an object, or none (absent or null).
///
/// # Errors
/// 422 naming `customData` for any other JSON value.
pub(super) fn custom_data(custom: Option<&Value>) -> Result<Option<&Value>, ApiError> {
    match custom {
        None | Some(Value::Null) => Ok(None),
        Some(object @ Value::Object(_)) => Ok(Some(object)),
        Some(_) => Err(ApiError::invalid(
            "customData",
            "must be an object (or null)",
        )),
    }
}

/// A string member of `customData`, when it has one.
pub(super) fn custom_str(custom: Option<&Value>, key: &str) -> Option<String> {
    custom?
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The last `/` segment of an id (`default/payments` → `payments`).
pub(super) fn last_segment(value: &str) -> &str {
    value
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(value)
}

#[cfg(test)]
mod tests;
