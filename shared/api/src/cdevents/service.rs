//! `service.deployed|upgraded|rolledback|removed` → a deployment (see the module table).

use super::purl::Purl;
use super::{Context, custom_str, last_segment, typed};
use crate::error::ApiError;
use deploygraph_model::deployment::{CommitInput, DeploymentInput, ImageInput, Origin};
use deploygraph_model::{Deployment, ServiceName, Source, Uid};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct ServiceEvent {
    subject: Subject,
    #[serde(rename = "customData", default)]
    custom_data: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Subject {
    id: String,
    content: Content,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    environment: Option<Reference>,
    #[serde(rename = "artifactId", default)]
    artifact_id: Option<String>,
}

/// A reference to another subject (`{"id": …, "source": …}`).
#[derive(Debug, Deserialize)]
pub(super) struct Reference {
    pub id: String,
}

/// The service a producer names, normalized, and the producer's spelling.
pub(super) fn service_name(field: &str, raw: &str) -> Result<(ServiceName, String), ApiError> {
    if raw.chars().count() > super::MAX_SOURCE {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {} characters", super::MAX_SOURCE),
        ));
    }
    // As the schema says: letters, digits, `-`, `_`, `.` and `/` (nothing is dropped silently).
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        return Err(ApiError::invalid(
            field,
            format!(
                "{raw:?} holds {c:?}: only letters, digits, '-', '_', '.' and '/' name a service"
            ),
        ));
    }
    let name = ServiceName::normalize(last_segment(raw)).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{raw:?} names no service (no letter or digit in its last segment)"),
        )
    })?;
    Ok((name, raw.to_owned()))
}

/// The uid of the deployment a CDEvent records: its CloudEvents key and its kind.
pub(super) fn uid(context: &Context, kind: &str) -> Uid {
    Uid::derive(
        "deployment",
        &["cdevents", &context.source, &context.id, kind],
    )
}

fn commit(custom: Option<&Value>, purl: Option<&Purl>) -> Result<Option<CommitInput>, ApiError> {
    match custom.and_then(|c| c.get("commit")) {
        Some(Value::String(sha)) => Ok(Some(CommitInput {
            sha: Some(sha.clone()),
            ..CommitInput::default()
        })),
        Some(value @ Value::Object(_)) => typed(value.clone(), "customData.commit").map(Some),
        Some(Value::Null) | None => {
            Ok(purl
                .and_then(Purl::vcs_commit)
                .map(|(repo, sha)| CommitInput {
                    sha: Some(sha),
                    repo: Some(repo),
                    ..CommitInput::default()
                }))
        }
        Some(_) => Err(ApiError::invalid(
            "customData.commit",
            "must be a commit SHA or {sha, repo, author, message, committed_at}",
        )),
    }
}

/// The deployment a service event reports.
pub(super) fn from_event(
    cdevent: Value,
    context: Context,
    kind: &str,
) -> Result<Deployment, ApiError> {
    let event: ServiceEvent = typed(cdevent, "")?;
    let custom = super::custom_data(event.custom_data.as_ref())?;
    let removed = kind == "service.removed";
    let status = match kind {
        "service.deployed" | "service.upgraded" => "succeeded",
        "service.rolledback" => "rolled_back",
        _ => "removed",
    };
    let environment = event
        .subject
        .content
        .environment
        .map(|e| e.id)
        .ok_or_else(|| {
            ApiError::invalid(
                "subject.content.environment.id",
                "is required: the environment the service runs in",
            )
        })?;
    let purl = match event.subject.content.artifact_id.as_deref() {
        Some(artifact) => Some(Purl::parse(artifact).ok_or_else(|| {
            ApiError::invalid(
                "subject.content.artifactId",
                format!("{artifact:?} is not a package URL (pkg:TYPE/NAME@VERSION)"),
            )
        })?),
        None if removed => None,
        None => {
            return Err(ApiError::invalid(
                "subject.content.artifactId",
                "is required: the package URL of what was deployed",
            ));
        }
    };
    let (service_field, raw) = match custom_str(custom, "service") {
        Some(named) => ("customData.service", named),
        None => ("subject.id", event.subject.id.clone()),
    };
    let (service, raw_service) = service_name(service_field, &raw)?;
    let image = purl.as_ref().and_then(Purl::image);
    let version = custom_str(custom, "version")
        .or_else(|| image.as_ref().and_then(|i| i.tag.clone()))
        .or_else(|| {
            purl.as_ref()
                .filter(|_| image.is_none())
                .and_then(|p| p.version.clone())
        });
    let input = DeploymentInput {
        id: None,
        service: Some(service.as_str().to_owned()),
        namespace: custom_str(custom, "namespace"),
        environment: Some(environment),
        cluster: custom_str(custom, "cluster"),
        version,
        commit: commit(custom, purl.as_ref())?,
        images: Some(
            image
                .into_iter()
                .map(|i| ImageInput {
                    repository: Some(i.repository),
                    tag: i.tag,
                    digest: i.digest,
                })
                .collect(),
        ),
        status: Some(status.to_owned()),
        started_at: Some(context.timestamp.clone()),
        finished_at: None,
        actor: custom_str(custom, "actor"),
        changes: None,
        validation: None,
    };
    let mut deployment = input.validate(Source::Cdevents).map_err(|e| {
        let field = match e.field.as_str() {
            "environment" => "subject.content.environment.id".to_owned(),
            "started_at" => "context.timestamp".to_owned(),
            "namespace" | "version" | "actor" | "cluster" => format!("customData.{}", e.field),
            f if f.starts_with("images") => "subject.content.artifactId".to_owned(),
            f if f.starts_with("commit") => match custom.and_then(|c| c.get("commit")) {
                Some(_) => format!("customData.{f}"),
                None => "subject.content.artifactId".to_owned(),
            },
            f => f.to_owned(),
        };
        ApiError::invalid(field, e.message)
    })?;
    deployment.uid = uid(&context, kind);
    deployment.id = Some(context.id);
    deployment.origin = Some(Origin {
        source: context.source,
        event_type: context.event_type,
        subject: event.subject.id,
        source_name: raw_service,
    });
    Ok(deployment)
}
