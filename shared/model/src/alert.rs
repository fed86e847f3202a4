//! Alerts and the attribution relationship `(DeploymentEvent)-[:TRIGGERS]->(Alert)`.

use crate::newtypes::ServiceName;
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether an alert is still firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The `summary` annotation.
    pub summary: Option<String>,
    /// The service it fired on, when its labels name one.
    pub service: Option<ServiceName>,
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

/// `(DeploymentEvent)-[:TRIGGERS {confidence_score, reasons, computed_at}]->(Alert)`: an
/// explainable attribution of an alert to a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// The deployment suspected of causing the alert.
    pub deployment_uid: Uid,
    /// The alert.
    pub alert_uid: Uid,
    /// Confidence in `0.0..=1.0`.
    pub confidence_score: f64,
    /// Human-readable reasons, one per scoring component that contributed.
    pub reasons: Vec<String>,
    /// When the score was computed.
    pub computed_at: DateTime<Utc>,
}
