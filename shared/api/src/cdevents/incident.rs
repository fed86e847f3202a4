//! `incident.detected|resolved` → an alert, recorded and attributed like an Alertmanager
//! alert.
//!
//! | alert field | CDEvent field |
//! |---|---|
//! | fingerprint | `Uid::derive("incident", [context.source, subject.id])` |
//! | uid | `Uid::derive("alert", [fingerprint])`: one incident, one occurrence |
//! | name | `subject.id` |
//! | type | `customData.type`, else `incident` |
//! | severity | `customData.severity` |
//! | status, starts_at, ends_at | detected: firing from `context.timestamp`; resolved: resolved at `context.timestamp` (started when it was detected, else then) |
//! | service | the last `/` segment of `subject.content.service.id`, made a DNS label |
//! | environment | `subject.content.environment.id`, whole |
//! | namespace | `customData.namespace` |
//! | cluster | `customData.cluster` (none: the services of its name in any cluster) |
//! | summary | `subject.content.description` |
//! | labels | `incident`, `cdevents_source`, `environment`, `service` (as sent), `artifact`, and `customData`'s scalar members |

use super::service::{Reference, service_name};
use super::{Context, custom_str, typed};
use crate::error::ApiError;
use deploygraph_model::{Alert, AlertStatus, Environment, Uid, parse_time};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// An incident event, ready to be recorded as an alert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incident {
    /// The alert occurrence.
    pub alert: Alert,
    /// Whether the event resolves it.
    pub resolved: bool,
}

#[derive(Debug, Deserialize)]
struct IncidentEvent {
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
    description: Option<String>,
    #[serde(default)]
    environment: Option<Reference>,
    #[serde(default)]
    service: Option<Reference>,
    #[serde(rename = "artifactId", default)]
    artifact_id: Option<String>,
}

/// Bounds on what one incident may add to the graph.
const MAX_NAME: usize = 256;
const MAX_SUMMARY: usize = 4096;
const MAX_LABEL_VALUE: usize = 1024;
const MAX_CUSTOM_LABELS: usize = 32;

/// The fingerprint of an incident: the CloudEvents source and the incident's id.
pub(crate) fn fingerprint(source: &str, incident: &str) -> String {
    Uid::derive("incident", &[source, incident]).to_string()
}

fn label_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !key.as_bytes()[0].is_ascii_digit()
}

fn bounded(field: &str, value: String, max: usize) -> Result<String, ApiError> {
    if value.len() > max {
        Err(ApiError::invalid(
            field,
            format!("is longer than {max} bytes"),
        ))
    } else {
        Ok(value)
    }
}

/// The alert an incident event reports.
pub(super) fn from_event(
    cdevent: Value,
    context: Context,
    kind: &str,
) -> Result<Incident, ApiError> {
    let event: IncidentEvent = typed(cdevent, "")?;
    let resolved = kind == "incident.resolved";
    let custom = super::custom_data(event.custom_data.as_ref())?;
    let incident = event.subject.id;
    if incident.trim().is_empty() {
        return Err(ApiError::invalid("subject.id", "must not be empty"));
    }
    let incident = bounded("subject.id", incident, MAX_NAME)?;
    let environment_id = event
        .subject
        .content
        .environment
        .map(|e| e.id)
        .ok_or_else(|| {
            ApiError::invalid(
                "subject.content.environment.id",
                "is required: the environment the incident is in",
            )
        })?;
    let environment = Environment::parse(&environment_id)
        .map_err(|e| ApiError::invalid("subject.content.environment.id", e.message))?;
    let service = event
        .subject
        .content
        .service
        .map(|s| service_name("subject.content.service.id", &s.id))
        .transpose()?;
    let namespace = custom_str(custom, "namespace");
    if let Some(ns) = &namespace
        && !deploygraph_model::newtypes::is_dns1123_label(ns)
    {
        return Err(ApiError::invalid(
            "customData.namespace",
            format!("{ns:?} is not a DNS-1123 label"),
        ));
    }
    let cluster = custom_str(custom, "cluster")
        .map(|c| {
            deploygraph_model::Cluster::parse(&c)
                .map_err(|e| ApiError::invalid("customData.cluster", e.message))
        })
        .transpose()?;
    let summary = event
        .subject
        .content
        .description
        .filter(|d| !d.is_empty())
        .map(|d| bounded("subject.content.description", d, MAX_SUMMARY))
        .transpose()?;
    let artifact = event
        .subject
        .content
        .artifact_id
        .map(|a| bounded("subject.content.artifactId", a, MAX_LABEL_VALUE))
        .transpose()?;
    let at = parse_time(&context.timestamp)
        .map_err(|e| ApiError::invalid("context.timestamp", e.message))?;

    let mut labels = BTreeMap::new();
    if let Some(Value::Object(members)) = custom {
        for (key, value) in members.iter().filter(|(k, _)| label_key(k)) {
            if labels.len() == MAX_CUSTOM_LABELS {
                break;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            if text.len() <= MAX_LABEL_VALUE {
                // Secrets are redacted by key name and by value (a password in a URL, a token).
                let text =
                    deploygraph_model::redact::redact_value(key, Some(text)).unwrap_or_default();
                labels.insert(key.clone(), text);
            }
        }
    }
    labels.insert("incident".into(), incident.clone());
    labels.insert(
        "cdevents_source".into(),
        bounded("context.source", context.source.clone(), MAX_LABEL_VALUE)?,
    );
    labels.insert("environment".into(), environment.as_str().to_owned());
    if let Some((_, raw)) = &service {
        labels.insert("service".into(), raw.clone());
    }
    if let Some(artifact) = &artifact {
        labels.insert("artifact".into(), artifact.clone());
    }
    let fingerprint = fingerprint(&context.source, &incident);
    let alert_type = custom_str(custom, "type")
        .map(|t| bounded("customData.type", t, MAX_NAME))
        .transpose()?
        .unwrap_or_else(|| "incident".to_owned());
    let severity = custom_str(custom, "severity")
        .map(|s| bounded("customData.severity", s, MAX_NAME))
        .transpose()?;
    Ok(Incident {
        alert: Alert {
            uid: Uid::derive("alert", &[&fingerprint]),
            fingerprint,
            name: incident,
            alert_type,
            severity,
            status: if resolved {
                AlertStatus::Resolved
            } else {
                AlertStatus::Firing
            },
            starts_at: at,
            ends_at: resolved.then_some(at),
            labels,
            summary,
            generator_url: None,
            service: service.map(|(name, _)| name),
            namespace,
            environment: Some(environment),
            cluster,
            onset: None,
            service_metrics: None,
        },
        resolved,
    })
}

impl Incident {
    /// The alert to record over `stored`, the occurrence already recorded under its uid: it
    /// started at the earliest time either event says.
    pub(crate) fn over(mut self, stored: Option<&Alert>) -> Alert {
        if let Some(stored) = stored
            && stored.starts_at < self.alert.starts_at
        {
            self.alert.starts_at = stored.starts_at;
        }
        self.alert
    }
}
