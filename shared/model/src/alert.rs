//! Alerts and the attribution relationship `(DeploymentEvent|Change)-[:TRIGGERS]->(Alert)`.

use crate::deployment::service_uid;
use crate::newtypes::{Cluster, Environment, ServiceName};
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether an alert is still firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Firing now.
    Firing,
    /// Resolved at `ends_at`.
    Resolved,
}

/// One alert occurrence: an Alertmanager fingerprint that started at `starts_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `Uid::derive("alert", [fingerprint, starts_at])`: retried deliveries are the same alert.
    pub uid: Uid,
    /// Alertmanager's fingerprint of the label set.
    pub fingerprint: String,
    /// The `alertname` label.
    pub name: String,
    /// The `type` label, else the alert name.
    #[serde(rename = "type")]
    pub alert_type: String,
    /// The `severity` label, when present.
    pub severity: Option<String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved.
    pub ends_at: Option<DateTime<Utc>>,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// The `summary` annotation (else `description`).
    pub summary: Option<String>,
    /// Alertmanager's link to the expression that fired.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// The service it fired on, when its labels name one.
    pub service: Option<ServiceName>,
    /// The namespace label, when present.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The environment label, when present.
    #[serde(default)]
    pub environment: Option<Environment>,
    /// The cluster label, when present (none: the alert matches its services in any cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// When the alert's metric began to move, read from Prometheus after the alert arrived
    /// (absent until it was read; kept across redeliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onset: Option<MetricOnset>,
    /// What the health metric of each service around the alert (its own and its dependencies,
    /// by name) did before it, read from Prometheus with the alert's onset when a service health
    /// query is configured (absent until read; kept across redeliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_metrics: Option<BTreeMap<String, ServiceMetric>>,
}

/// What one service's health metric (the configured query, whose rise means harm: an error
/// ratio, a latency) did over the attribution window before an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ServiceMetric {
    /// It rose from its earlier level at `at` and stayed up until the alert.
    Moved {
        /// When it began to rise.
        at: DateTime<Utc>,
        /// Its mean level before `at`.
        before: f64,
        /// Its level when the alert started.
        at_alert: f64,
    },
    /// It was read and showed no rise that stands out from its noise.
    Steady,
    /// Prometheus has no series of it (the service is not instrumented, or under other labels).
    NoSeries,
}

impl ServiceMetric {
    /// When it began to rise, when it did.
    pub fn moved_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Moved { at, .. } => Some(*at),
            Self::Steady | Self::NoSeries => None,
        }
    }
}

/// What the alerting rule's metric did before the alert: read once from Prometheus by running
/// the rule's expression without its comparison (`rate(errors[5m]) / rate(requests[5m])` of
/// `… > 0.05`) over the attribution window before the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum MetricOnset {
    /// The metric left its earlier level at `at` and stayed away from it until the alert.
    Found {
        /// When the episode that ended in the alert began.
        #[schema(value_type = String, format = DateTime)]
        at: DateTime<Utc>,
        /// The PromQL that was read.
        query: String,
        /// Its mean level before `at`.
        before: f64,
        /// Its level when the alert started.
        at_alert: f64,
    },
    /// The metric was read but showed no episode start that stands out from its noise, or it
    /// could not be read for a lasting reason (no expression, one Prometheus cannot run, no
    /// series of the alert's labels); attribution goes by the alert's start alone.
    NotFound {
        /// Why, in words.
        reason: String,
    },
}

impl MetricOnset {
    /// When the metric began to move, when that was found.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Found { at, .. } => Some(*at),
            Self::NotFound { .. } => None,
        }
    }
}

impl Alert {
    /// The uid of the alert with `fingerprint` that started at `starts_at`.
    pub fn uid_for(fingerprint: &str, starts_at: &DateTime<Utc>) -> Uid {
        Uid::derive(
            "alert",
            &[fingerprint, &crate::newtypes::format_time(starts_at)],
        )
    }
}

/// What recording `incoming` over the occurrence already stored under its uid gives.
///
/// Resolution is final: a late retry of the firing notification does not reopen a resolved
/// alert. Labels and annotations take the newest delivery's values.
pub fn merge_alert(stored: Option<&Alert>, incoming: Alert) -> (Alert, AlertOutcome) {
    let Some(stored) = stored else {
        return (incoming, AlertOutcome::Created);
    };
    let mut merged = incoming;
    merged.onset = merged.onset.or_else(|| stored.onset.clone());
    merged.service_metrics = merged
        .service_metrics
        .or_else(|| stored.service_metrics.clone());
    if stored.status == AlertStatus::Resolved {
        merged.status = AlertStatus::Resolved;
        merged.ends_at = stored.ends_at.or(merged.ends_at);
    }
    if merged == *stored {
        (merged, AlertOutcome::Unchanged)
    } else {
        (merged, AlertOutcome::Updated)
    }
}

/// A Service node's identity: name, namespace, environment and cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceRef {
    /// Service name.
    pub name: ServiceName,
    /// Namespace, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Environment.
    pub environment: Environment,
    /// The cluster it runs in (absent in JSON: [`Cluster::DEFAULT`]).
    #[serde(default, skip_serializing_if = "Cluster::is_default")]
    pub cluster: Cluster,
}

impl ServiceRef {
    /// The service as reasons and paths name it: its name, and its cluster unless that is the
    /// default one (`api [eu-west-1]`). Also the key of its reading in
    /// [`Alert::service_metrics`].
    pub fn shown(&self) -> String {
        if self.cluster.is_default() {
            self.name.to_string()
        } else {
            format!("{} [{}]", self.name, self.cluster)
        }
    }

    /// The Service node's uid (the same one its deployments are linked to).
    pub fn uid(&self) -> Uid {
        service_uid(
            &self.name,
            self.namespace.as_deref(),
            &self.environment,
            &self.cluster,
        )
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} ({}", ns, self.name, self.environment)?,
            None => write!(f, "{} ({}", self.name, self.environment)?,
        }
        if self.cluster.is_default() {
            f.write_str(")")
        } else {
            write!(f, ", cluster {})", self.cluster)
        }
    }
}

/// What recording an alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    /// First delivery of this occurrence.
    Created,
    /// A known occurrence changed (it resolved, or its annotations changed).
    Updated,
    /// A repeated delivery: nothing changed.
    Unchanged,
}

/// What a suspect of an alert is: a rollout, or a change that is not one.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A `DeploymentEvent`.
    #[default]
    Deployment,
    /// A `Change` ([`crate::Change`]).
    Change,
}

impl SubjectKind {
    /// The wire name (`deployment`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::Change => "change",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Deployment, Self::Change]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// `(DeploymentEvent|Change)-[:TRIGGERS {confidence_score, reasons, computed_at}]->(Alert)`:
/// an explainable attribution of an alert to a deployment or to another change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// What the suspect is.
    #[serde(default)]
    pub subject: SubjectKind,
    /// The uid of the deployment or change suspected of causing the alert.
    pub subject_uid: Uid,
    /// The alert.
    pub alert_uid: Uid,
    /// Confidence in `0.0..=1.0`.
    pub confidence_score: f64,
    /// Human-readable reasons, one per scoring component that contributed.
    pub reasons: Vec<String>,
    /// When the score was computed.
    pub computed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn alert(status: AlertStatus, ends_minute: Option<u32>) -> Alert {
        let at = |m: u32| {
            Utc.with_ymd_and_hms(2026, 11, 20, 10, m, 0)
                .single()
                .unwrap_or_default()
        };
        Alert {
            uid: Alert::uid_for("f1", &at(0)),
            fingerprint: "f1".into(),
            name: "HighErrors".into(),
            alert_type: "HighErrors".into(),
            severity: None,
            status,
            starts_at: at(0),
            ends_at: ends_minute.map(at),
            labels: BTreeMap::new(),
            summary: None,
            generator_url: None,
            service: None,
            namespace: None,
            environment: None,
            cluster: None,
            onset: None,
            service_metrics: None,
        }
    }

    #[test]
    fn merging_deliveries() {
        let firing = alert(AlertStatus::Firing, None);
        let resolved = alert(AlertStatus::Resolved, Some(30));
        let cases = [
            (
                None,
                firing.clone(),
                AlertOutcome::Created,
                AlertStatus::Firing,
            ),
            (
                Some(&firing),
                firing.clone(),
                AlertOutcome::Unchanged,
                AlertStatus::Firing,
            ),
            (
                Some(&firing),
                resolved.clone(),
                AlertOutcome::Updated,
                AlertStatus::Resolved,
            ),
            (
                Some(&resolved),
                resolved.clone(),
                AlertOutcome::Unchanged,
                AlertStatus::Resolved,
            ),
            // A late firing retry does not reopen it.
            (
                Some(&resolved),
                firing.clone(),
                AlertOutcome::Unchanged,
                AlertStatus::Resolved,
            ),
        ];
        for (stored, incoming, outcome, status) in cases {
            let (merged, got) = merge_alert(stored, incoming);
            assert_eq!((got, merged.status), (outcome, status));
        }
    }
}
