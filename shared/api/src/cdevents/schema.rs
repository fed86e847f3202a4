//! The schema `/v1/openapi.json` declares for `POST /v1/events`, from the rules the readers of
//! this module apply. A CDEvent is a third-party format with many more fields; those are
//! accepted and ignored. The document declares, of each kind:
//!
//! - a recorded service event (`service.deployed`, `.upgraded`, `.rolledback`) with an OCI
//!   artifact, the fields that become the deployment;
//! - any other CDEvent type (acknowledged, `202`), its context only.
//!
//! Incident events and `service.removed` are read as the module documentation says; the schema
//! does not spell out their subject.

use serde_json::{Value, json};
use std::borrow::Cow;
use utoipa::openapi::{RefOr, Schema};

/// The `POST /v1/events` request body in the OpenAPI document.
pub struct CdEventSchema;

impl utoipa::PartialSchema for CdEventSchema {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(cdevent_schema()).unwrap_or_else(|e| {
            tracing::error!(error.message = %e, "the CDEvent schema does not read as a schema");
            RefOr::T(Schema::Object(
                utoipa::openapi::ObjectBuilder::new().build(),
            ))
        })
    }
}

impl utoipa::ToSchema for CdEventSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CdEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use deploygraph_model::deployment::CommitInput;
        use utoipa::PartialSchema;
        schemas.push(("CommitInput".into(), CommitInput::schema()));
        <CommitInput as utoipa::ToSchema>::schemas(schemas);
    }
}

/// A string of the given schema, or any value that is not a string (which `customData`'s
/// readers ignore).
fn custom_string(string: Value) -> Value {
    json!({"anyOf": [
        string,
        {"type": ["null", "boolean", "number", "array", "object"]}
    ]})
}

/// The context every CDEvent carries: id and source non-blank, at most 256 and 1024
/// characters, a type, and a time in range.
fn context(event_type: &Value, extra_required: &[&str], extra: &Value) -> Value {
    use utoipa::PartialSchema;
    let time = serde_json::to_value(deploygraph_model::schema::InputTime::schema())
        .unwrap_or_else(|_| json!({"type": "string"}));
    let mut required = vec!["id", "source", "type", "timestamp"];
    required.extend_from_slice(extra_required);
    let mut properties = json!({
        "id": {"type": "string", "maxLength": super::MAX_ID, "pattern": "\\S"},
        "source": {"type": "string", "maxLength": super::MAX_SOURCE, "pattern": "\\S"},
        "type": event_type,
        "timestamp": time,
        "version": {"type": ["string", "null"]},
        "specversion": {"type": ["string", "null"]},
    });
    if let (Some(p), Some(e)) = (properties.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "required": required, "properties": properties})
}

/// The `POST /v1/events` request body in structured mode (`application/cloudevents+json`):
/// a CloudEvent 1.0 whose `data` is the CDEvent.
pub struct CloudEventSchema;

impl utoipa::PartialSchema for CloudEventSchema {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(cloudevent_schema()).unwrap_or_else(|e| {
            tracing::error!(error.message = %e, "the CloudEvent schema does not read as a schema");
            RefOr::T(Schema::Object(
                utoipa::openapi::ObjectBuilder::new().build(),
            ))
        })
    }
}

impl utoipa::ToSchema for CloudEventSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CloudEvent")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push(("CdEvent".into(), CdEventSchema::schema()));
        <CdEventSchema as utoipa::ToSchema>::schemas(schemas);
    }
}

fn cloudevent_schema() -> Value {
    json!({
        "type": "object",
        "description": "A CloudEvent 1.0 in structured mode: `data` is the CDEvent, and `id`, \
                        `source` and `type` are the CDEvent's `context.id`, `context.source` \
                        and `context.type` (422 naming the attribute when they differ).",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"type": "string", "enum": ["1.0"]},
            "id": {"type": "string"},
            "source": {"type": "string"},
            "type": {"type": "string"},
            "data": {"$ref": "#/components/schemas/CdEvent"}
        }
    })
}

fn cdevent_schema() -> Value {
    use deploygraph_model::newtypes::{
        COMMIT_SHA_PATTERN, ENVIRONMENT_MAX_LEN, ENVIRONMENT_PATTERN, NAME_MAX_LEN,
        NAMESPACE_PATTERN,
    };
    let hex = "[0-9a-f]{64}";
    let service = json!({
        "type": "object",
        "description": "A service.deployed, .upgraded or .rolledback event (types 0.1 to 0.3, \
                        spec 0.1 to 0.5 and 0.6.0-draft) with an OCI artifact. The service is \
                        customData.service, else the last segment of subject.id, made a DNS \
                        label; the environment is subject.content.environment.id, whole.",
        "required": ["context", "subject"],
        "properties": {
            "context": context(
                &json!({
                    "type": "string",
                    "pattern": "^dev\\.cdevents\\.service\\.(deployed|upgraded|rolledback)\\.0\\.[1-3]\\.[0-9]+$"
                }),
                &["specversion"],
                &json!({"specversion": {
                    "type": "string",
                    "pattern": "^(0\\.[1-5]\\.[0-9]+|0\\.6\\.0-draft)$"
                }}),
            ),
            "subject": {
                "type": "object",
                "required": ["id", "content"],
                "properties": {
                    "id": {
                        "type": "string",
                        "maxLength": super::MAX_SOURCE,
                        "pattern": "^[-_.A-Za-z0-9/]*[A-Za-z0-9][-_.A-Za-z0-9]*/*$"
                    },
                    "content": {
                        "type": "object",
                        "required": ["environment", "artifactId"],
                        "properties": {
                            "environment": {
                                "type": "object",
                                "required": ["id"],
                                "properties": {"id": {
                                    "type": "string",
                                    "maxLength": ENVIRONMENT_MAX_LEN,
                                    "pattern": ENVIRONMENT_PATTERN,
                                }}
                            },
                            "artifactId": {
                                "type": "string",
                                "description": "An OCI package URL with a digest",
                                "pattern": format!("^pkg:oci/[a-z0-9][-_.a-z0-9]{{0,62}}@sha256(%3[Aa]|:){hex}$")
                            }
                        }
                    }
                }
            },
            "customData": {
                "type": ["object", "null"],
                "properties": {
                    "commit": {"oneOf": [
                        {"type": "null"},
                        {"type": "string", "pattern": COMMIT_SHA_PATTERN},
                        {"$ref": "#/components/schemas/CommitInput"}
                    ]},
                    "service": custom_string(json!({
                        "type": "string", "maxLength": super::MAX_SOURCE,
                        "pattern": "^$|^[-_.A-Za-z0-9/]*[A-Za-z0-9][-_.A-Za-z0-9]*/*$"
                    })),
                    "namespace": custom_string(json!({
                        "type": "string", "maxLength": NAME_MAX_LEN, "pattern": NAMESPACE_PATTERN
                    })),
                    "version": custom_string(json!({"type": "string", "maxLength": 256})),
                    "actor": custom_string(json!({"type": "string", "maxLength": 256})),
                }
            }
        }
    });
    // Every type but those recorded (a negative lookahead: `not` has no place in the
    // document's schema model).
    let recorded =
        "(service\\.(deployed|upgraded|rolledback|removed)|incident\\.(detected|resolved))";
    let ignored = json!({
        "type": "object",
        "description": "Any other CDEvent type (dev.cdevents.<subject>.<predicate>.<version>, \
                        or a custom dev.cdeventsx.* type): acknowledged with 202 and not \
                        recorded.",
        "required": ["context"],
        "properties": {
            "context": context(
                &json!({"anyOf": [
                    {"type": "string", "pattern": "^dev\\.cdeventsx\\."},
                    {
                        "type": "string",
                        "pattern": format!(
                            "^dev\\.cdevents\\.(?!{recorded}\\.)[^.]+\\.[^.]+\\.[\\s\\S]+$"
                        )
                    }
                ]}),
                &[],
                &json!({}),
            )
        }
    });
    json!({"anyOf": [service, ignored]})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_cdevent_schema_reads_as_a_schema() {
        let schema: RefOr<Schema> = serde_json::from_value(cdevent_schema())
            .map_err(|e| e.to_string())
            .unwrap();
        let back = serde_json::to_value(&schema).unwrap();
        assert_eq!(back["anyOf"][0]["required"][0], "context", "{back}");
        assert_eq!(back["anyOf"].as_array().map(Vec::len), Some(2), "{back}");
        let envelope: RefOr<Schema> = serde_json::from_value(cloudevent_schema())
            .map_err(|e| e.to_string())
            .unwrap();
        let back = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            back["properties"]["data"]["$ref"],
            "#/components/schemas/CdEvent"
        );
    }
}
