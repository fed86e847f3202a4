//! CDEvents (`dev.cdevents.service.deployed|upgraded|rolledback.0.x`) mapped onto the deployment
//! model.
//!
//! | deployment field | CDEvent field |
//! |---|---|
//! | idempotency key | `context.id` |
//! | service | `customData.service`, else the last segment of `subject.id` |
//! | environment | `subject.content.environment.id` (its last path segment) |
//! | image digest, repository, tag | `subject.content.artifactId`, a `pkg:oci/…@sha256:…` package URL |
//! | commit | `customData.commit`: a SHA string or `{sha, repo, author, message, committed_at}` |
//! | started_at | `context.timestamp` |
//! | status | `succeeded` for deployed and upgraded, `rolled_back` for rolledback |
//! | namespace, version, actor | `customData.namespace`, `customData.version` (else the purl tag), `customData.actor` |
//!
//! CDEvents carry no commit, so `customData.commit` is required.

use crate::error::ApiError;
use deploygraph_model::deployment::{CommitInput, DeploymentInput, ImageInput};
use deploygraph_model::{Deployment, Source};
use serde::Deserialize;
use serde_json::Value;

/// A CDEvent in structured JSON.
#[derive(Debug, Deserialize)]
pub struct CdEvent {
    context: Context,
    subject: Subject,
    #[serde(rename = "customData", default)]
    custom_data: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Context {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
}

#[derive(Debug, Deserialize)]
struct Subject {
    id: String,
    content: Content,
}

#[derive(Debug, Deserialize)]
struct Content {
    environment: Reference,
    #[serde(rename = "artifactId")]
    artifact_id: String,
}

#[derive(Debug, Deserialize)]
struct Reference {
    id: String,
}

/// The image an OCI package URL names.
#[derive(Debug, PartialEq, Eq)]
struct OciArtifact {
    repository: Option<String>,
    tag: Option<String>,
    digest: String,
}

/// Parses `pkg:oci/NAME@sha256%3AHEX?repository_url=REG/NAME&tag=TAG`.
fn parse_oci_purl(purl: &str) -> Option<OciArtifact> {
    let rest = purl.strip_prefix("pkg:oci/")?;
    let (path, qualifiers) = rest.split_once('?').unwrap_or((rest, ""));
    let (name, version) = path.split_once('@')?;
    let digest = version.replace("%3A", ":").replace("%3a", ":");
    let mut repository = None;
    let mut tag = None;
    for pair in qualifiers.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("repository_url", v)) => {
                repository = Some(v.replace("%2F", "/").replace("%2f", "/"))
            }
            Some(("tag", v)) => tag = Some(v.to_owned()),
            _ => {}
        }
    }
    Some(OciArtifact {
        repository: repository.or_else(|| Some(name.to_owned())),
        tag,
        digest,
    })
}

fn last_segment(value: &str) -> &str {
    value
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(value)
}

/// `customData.KEY`: absent or null is none; a value that is not a string is refused.
fn custom_str(custom: Option<&Value>, key: &str) -> Result<Option<String>, ApiError> {
    match custom.and_then(|c| c.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(
            format!("customData.{key}"),
            "must be a string",
        )),
    }
}

/// The schema of the CDEvents this endpoint reads, from the model's patterns. CDEvents is a
/// third-party format with many more fields; those are accepted and ignored.
pub struct CdEventSchema;

impl utoipa::PartialSchema for CdEventSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        serde_json::from_value(cdevent_schema()).unwrap_or_else(|e| {
            tracing::error!(error.message = %e, "the CDEvent schema does not read as a schema");
            utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Object(
                utoipa::openapi::ObjectBuilder::new().build(),
            ))
        })
    }
}

fn cdevent_schema() -> Value {
    use deploygraph_model::newtypes::{COMMIT_SHA_PATTERN, DIGEST_PATTERN};
    use utoipa::PartialSchema;
    let label = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?";
    let hex = DIGEST_PATTERN
        .strip_prefix("^sha256:")
        .and_then(|p| p.strip_suffix('$'))
        .unwrap_or("[0-9a-f]{64}");
    let time = deploygraph_model::schema::InputTime::schema();
    let schema = serde_json::json!({"allOf": [{
        "type": "object",
        "description": "A CDEvent dev.cdevents.service.deployed, .upgraded or .rolledback \
                        (0.x). The service is customData.service, else the last segment of \
                        subject.id; the environment is the last segment of \
                        subject.content.environment.id.",
        "required": ["context", "subject", "customData"],
        "properties": {
            "context": {
                "type": "object",
                "required": ["id", "type", "timestamp"],
                "properties": {
                    "id": {"type": "string", "maxLength": 256},
                    "type": {
                        "type": "string",
                        "pattern": "^dev\\.cdevents\\.service\\.(deployed|upgraded|rolledback)\\.0\\."
                    },
                    "timestamp": time
                }
            },
            "subject": {
                "type": "object",
                "required": ["id", "content"],
                "properties": {
                    "id": {"type": "string"},
                    "content": {
                        "type": "object",
                        "required": ["environment", "artifactId"],
                        "properties": {
                            "environment": {
                                "type": "object",
                                "required": ["id"],
                                "properties": {"id": {
                                    "type": "string",
                                    "pattern": "^([\\s\\S]*/)?[A-Za-z0-9._-]{1,63}/*$"
                                }}
                            },
                            "artifactId": {
                                "type": "string",
                                "description": "An OCI package URL with a digest",
                                "pattern": format!("^pkg:oci/[^@?]{{0,256}}@sha256(%3[Aa]|:){hex}$")
                            }
                        }
                    }
                }
            },
            "customData": {
                "type": "object",
                "required": ["commit"],
                "properties": {
                    "commit": {"oneOf": [
                        {"type": "string", "pattern": COMMIT_SHA_PATTERN},
                        {"$ref": "#/components/schemas/CommitInput"}
                    ]},
                    "service": {"oneOf": [
                        {"type": "null"}, {"$ref": "#/components/schemas/ServiceName"}
                    ]},
                    "namespace": {"oneOf": [
                        {"type": "null"}, {"$ref": "#/components/schemas/Namespace"}
                    ]},
                    "version": {"type": ["string", "null"], "maxLength": 256},
                    "actor": {"type": ["string", "null"], "maxLength": 256}
                }
            }
        }}, {"anyOf": [
            {"type": "object", "properties": {"customData": {
                "type": "object",
                "required": ["service"],
                "properties": {"service": {"type": "string"}}
            }}},
            {"type": "object", "properties": {"subject": {"type": "object", "properties": {"id": {
                "type": "string",
                "pattern": format!("^([\\s\\S]*/)?{label}/*$")
            }}}}}
        ]}]
    });
    schema
}

impl utoipa::ToSchema for CdEventSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("CdEvent")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use deploygraph_model::deployment::CommitInput;
        use utoipa::PartialSchema;
        schemas.push(("CommitInput".into(), CommitInput::schema()));
        <CommitInput as utoipa::ToSchema>::schemas(schemas);
        schemas.push((
            "ServiceName".into(),
            deploygraph_model::ServiceName::schema(),
        ));
        schemas.push((
            "Namespace".into(),
            deploygraph_model::schema::Namespace::schema(),
        ));
    }
}

impl CdEvent {
    /// The deployment this event reports.
    ///
    /// # Errors
    /// 422 naming the field for unsupported event types and missing or invalid fields.
    pub fn into_deployment(self) -> Result<Deployment, ApiError> {
        let kind = self
            .context
            .event_type
            .strip_prefix("dev.cdevents.service.")
            .and_then(|rest| rest.split_once(".0."))
            .map(|(kind, _)| kind);
        let status = match kind {
            Some("deployed" | "upgraded") => "succeeded",
            Some("rolledback") => "rolled_back",
            _ => {
                return Err(ApiError::invalid(
                    "context.type",
                    format!(
                        "{:?} is not supported; send dev.cdevents.service.deployed, .upgraded or .rolledback (0.x)",
                        self.context.event_type
                    ),
                ));
            }
        };
        let custom = self.custom_data.as_ref();
        let artifact = parse_oci_purl(&self.subject.content.artifact_id).ok_or_else(|| {
            ApiError::invalid(
                "subject.content.artifactId",
                "must be an OCI package URL with a digest: pkg:oci/NAME@sha256%3A<64 hex>",
            )
        })?;
        let commit = match custom.and_then(|c| c.get("commit")) {
            Some(Value::String(sha)) => CommitInput {
                sha: Some(sha.clone()),
                ..CommitInput::default()
            },
            Some(value @ Value::Object(_)) => serde_json::from_value(value.clone())
                .map_err(|e| ApiError::invalid("customData.commit", e.to_string()))?,
            _ => {
                return Err(ApiError::invalid(
                    "customData.commit",
                    "is required: CDEvents carry no commit, so send its SHA in customData.commit",
                ));
            }
        };
        let input = DeploymentInput {
            id: Some(self.context.id),
            service: Some(
                custom_str(custom, "service")?
                    .unwrap_or_else(|| last_segment(&self.subject.id).to_owned()),
            ),
            namespace: custom_str(custom, "namespace")?,
            environment: Some(last_segment(&self.subject.content.environment.id).to_owned()),
            version: custom_str(custom, "version")?.or_else(|| artifact.tag.clone()),
            commit: Some(commit),
            images: Some(vec![ImageInput {
                repository: artifact.repository,
                tag: artifact.tag,
                digest: Some(artifact.digest),
            }]),
            status: Some(status.to_owned()),
            started_at: Some(self.context.timestamp),
            finished_at: None,
            actor: custom_str(custom, "actor")?,
            changes: None,
            validation: None,
        };
        input.validate(Source::Cdevents).map_err(|e| {
            let field = match e.field.as_str() {
                "service" => "subject.id",
                "environment" => "subject.content.environment.id",
                "started_at" => "context.timestamp",
                f if f.starts_with("images") => "subject.content.artifactId",
                f if f.starts_with("commit") => "customData.commit",
                f => f,
            };
            ApiError::invalid(field, e.message)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use deploygraph_model::DeploymentStatus;

    #[test]
    fn the_cdevent_schema_reads_as_a_schema() {
        let schema: utoipa::openapi::RefOr<utoipa::openapi::Schema> =
            serde_json::from_value(cdevent_schema()).unwrap();
        let back = serde_json::to_value(&schema).unwrap();
        assert_eq!(back["allOf"][0]["required"][0], "context", "{back}");
        assert!(back["allOf"][1]["anyOf"].is_array(), "{back}");
    }

    fn event(kind: &str, artifact: &str, custom: Value) -> CdEvent {
        serde_json::from_value(serde_json::json!({
            "context": {"version": "0.4.1", "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
                        "source": "/ci/pipeline", "type": format!("dev.cdevents.service.{kind}.0.2.0"),
                        "timestamp": "2026-11-20T14:27:05.315384Z"},
            "subject": {"id": "service/payments", "source": "/ci/pipeline", "type": "service",
                        "content": {"environment": {"id": "production", "source": "/ci"}, "artifactId": artifact}},
            "customData": custom
        }))
        .unwrap()
    }

    const PURL: &str = "pkg:oci/payments@sha256%3A0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427?repository_url=ghcr.io/acme/payments&tag=v2.3.0";

    #[test]
    fn a_deployed_event_becomes_a_succeeded_deployment() {
        let d = event(
            "deployed",
            PURL,
            serde_json::json!({"commit": "9fceb02d0ae598e9"}),
        )
        .into_deployment()
        .unwrap();
        assert_eq!(d.service.as_str(), "payments");
        assert_eq!(d.environment.as_str(), "production");
        assert_eq!(d.status, DeploymentStatus::Succeeded);
        assert_eq!(d.source, Source::Cdevents);
        assert_eq!(
            d.images[0].repository.as_deref(),
            Some("ghcr.io/acme/payments")
        );
        assert_eq!(d.version.as_deref(), Some("v2.3.0"));
        assert_eq!(
            d.id.as_deref(),
            Some("271069a8-fc18-44f1-b38f-9d70a1695819")
        );
    }

    #[test]
    fn a_rolledback_event_is_rolled_back() {
        let d = event(
            "rolledback",
            PURL,
            serde_json::json!({"commit": {"sha": "9fceb02", "repo": "r"}}),
        )
        .into_deployment()
        .unwrap();
        assert_eq!(d.status, DeploymentStatus::RolledBack);
        assert_eq!(d.commit.and_then(|c| c.repo).as_deref(), Some("r"));
    }

    #[test]
    fn errors_name_the_cdevent_field() {
        let cases = [
            (
                event("deployed", PURL, serde_json::json!({})),
                "customData.commit",
            ),
            (
                event(
                    "deployed",
                    "pkg:npm/x@1",
                    serde_json::json!({"commit": "9fceb02"}),
                ),
                "subject.content.artifactId",
            ),
            (
                event("published", PURL, serde_json::json!({"commit": "9fceb02"})),
                "context.type",
            ),
            (
                event(
                    "deployed",
                    "pkg:oci/x@sha256%3Aabc",
                    serde_json::json!({"commit": "9fceb02"}),
                ),
                "subject.content.artifactId",
            ),
        ];
        for (event, field) in cases {
            let err = event.into_deployment().expect_err(field);
            assert_eq!(err.field.as_deref(), Some(field), "{}", err.message);
        }
    }
}
