//! Alertmanager webhook (`version: "4"`) payloads turned into [`Alert`]s.
//!
//! Alertmanager retries a delivery on failure, so the same alert arrives many times; its
//! identity is the fingerprint plus `startsAt` ([`Alert::uid_for`]). Which service an alert
//! fired on comes from its labels through an [`AlertMapping`].

use crate::alert::{Alert, AlertStatus};
use crate::error::{Error, Result};
use crate::newtypes::{Environment, ServiceName, parse_time};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Which labels name an alert's service, namespace and environment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertMapping {
    /// Labels tried in order for the service name.
    pub service_labels: Vec<String>,
    /// The namespace label.
    pub namespace_label: String,
    /// The environment label.
    pub environment_label: String,
    /// The environment of alerts without the environment label.
    pub default_environment: Option<Environment>,
    /// The cluster label (Prometheus' external label in multi-cluster setups).
    pub cluster_label: String,
    /// The cluster of alerts without the cluster label (none: the alert matches its services in
    /// any cluster).
    pub default_cluster: Option<crate::Cluster>,
}

impl Default for AlertMapping {
    fn default() -> Self {
        Self {
            service_labels: vec![
                "service".to_owned(),
                "app".to_owned(),
                "app_kubernetes_io_name".to_owned(),
            ],
            namespace_label: "namespace".to_owned(),
            environment_label: "environment".to_owned(),
            default_environment: None,
            cluster_label: "cluster".to_owned(),
            default_cluster: None,
        }
    }
}

/// An Alertmanager webhook notification (`version: "4"`).
///
/// Every field Alertmanager sends is declared with its type, and a value of the wrong type is
/// refused naming the field. Fields it may add in later versions are accepted and ignored:
/// Alertmanager does not retry a 4xx, so refusing an unknown field would drop alerts after an
/// upgrade of Alertmanager.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AlertmanagerWebhook)]
pub struct Notification {
    /// The payload version; deploygraph reads version 4.
    #[schema(value_type = WebhookVersion, required = true)]
    pub version: Option<String>,
    /// The group's key.
    pub group_key: Option<String>,
    /// How many alerts Alertmanager left out (`max_alerts`).
    #[schema(value_type = Option<u64>, maximum = 4294967295_u64)]
    pub truncated_alerts: Option<u32>,
    /// `firing` or `resolved`, for the group.
    pub status: Option<String>,
    /// The receiver's name.
    pub receiver: Option<String>,
    /// The group's labels.
    pub group_labels: Option<BTreeMap<String, String>>,
    /// Labels all alerts share.
    pub common_labels: Option<BTreeMap<String, String>>,
    /// Annotations all alerts share.
    pub common_annotations: Option<BTreeMap<String, String>>,
    /// Alertmanager's own URL.
    #[serde(rename = "externalURL")]
    pub external_url: Option<String>,
    /// The alerts.
    #[schema(required = true, nullable = false)]
    pub alerts: Option<Vec<Entry>>,
}

/// The webhook payload versions deploygraph reads.
#[derive(utoipa::ToSchema)]
pub enum WebhookVersion {
    /// Alertmanager 0.x's version 4.
    #[schema(rename = "4")]
    V4,
}

/// One alert of a [`Notification`].
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AlertmanagerAlert)]
pub struct Entry {
    /// `firing` or `resolved`.
    #[schema(value_type = crate::alert::AlertStatus, required = true)]
    pub status: Option<String>,
    /// Labels; `alertname` is required.
    #[serde(default)]
    #[schema(schema_with = crate::schema::alert_labels, required = true)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing.
    #[schema(value_type = crate::schema::InputTime, required = true)]
    pub starts_at: Option<String>,
    /// When it resolved (Go's zero time while firing).
    #[schema(value_type = Option<crate::schema::AlertEndTime>)]
    pub ends_at: Option<String>,
    /// The link to the expression that fired.
    #[serde(rename = "generatorURL")]
    pub generator_url: Option<String>,
    /// Alertmanager's fingerprint of the label set.
    #[schema(value_type = crate::schema::Fingerprint, required = true)]
    pub fingerprint: Option<String>,
}

/// A label value that is not a valid name is ignored rather than refusing the delivery:
/// Alertmanager does not retry a 4xx, and the alert itself is still worth keeping.
fn mapped<T>(
    labels: &BTreeMap<String, String>,
    names: &[String],
    parse: impl Fn(&str) -> Result<T>,
) -> Option<T> {
    names
        .iter()
        .filter_map(|name| labels.get(name))
        .find_map(|value| parse(value).ok())
}

/// `endsAt` of a firing alert is Go's zero time `0001-01-01T00:00:00Z`; any other time is an
/// input time.
fn ends_at(value: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => {
            if v == crate::schema::ZERO_TIME {
                return Ok(None);
            }
            let t = parse_time(v).map_err(|e| Error::new(field, e.message))?;
            crate::schema::check_time(t, Utc::now())
                .map(Some)
                .map_err(|e| Error::new(field, e.message))
        }
    }
}

fn entry_to_alert(entry: Entry, mapping: &AlertMapping) -> Result<Alert> {
    let fingerprint = entry
        .fingerprint
        .ok_or_else(|| Error::new("fingerprint", "is required"))?;
    if !crate::schema::is_fingerprint(&fingerprint) {
        return Err(Error::new(
            "fingerprint",
            format!(
                "{fingerprint:?} is not a fingerprint (1 to {} letters, digits or . _ ~ : -)",
                crate::schema::FINGERPRINT_MAX_LEN
            ),
        ));
    }
    let starts_at = crate::schema::parse_input_time(
        "startsAt",
        entry
            .starts_at
            .as_deref()
            .ok_or_else(|| Error::new("startsAt", "is required"))?,
    )?;
    let status = match entry.status.as_deref() {
        Some("firing") => AlertStatus::Firing,
        Some("resolved") => AlertStatus::Resolved,
        Some(other) => {
            return Err(Error::new(
                "status",
                format!("{other:?} is not one of firing, resolved"),
            ));
        }
        None => return Err(Error::new("status", "is required")),
    };
    let ends_at = ends_at(entry.ends_at.as_deref(), "endsAt")?;
    let name = entry
        .labels
        .get("alertname")
        .filter(|n| !n.is_empty())
        .cloned()
        .ok_or_else(|| Error::new("labels.alertname", "is required"))?;
    let alert_type = entry
        .labels
        .get("type")
        .filter(|t| !t.is_empty())
        .cloned()
        .unwrap_or_else(|| name.clone());
    let service = mapped(&entry.labels, &mapping.service_labels, ServiceName::parse);
    let namespace = entry
        .labels
        .get(&mapping.namespace_label)
        .filter(|n| !n.is_empty())
        .cloned();
    let environment = mapped(
        &entry.labels,
        std::slice::from_ref(&mapping.environment_label),
        Environment::parse,
    )
    .or_else(|| mapping.default_environment.clone());
    let cluster = mapped(
        &entry.labels,
        std::slice::from_ref(&mapping.cluster_label),
        crate::Cluster::parse,
    )
    .or_else(|| mapping.default_cluster.clone());
    let summary = entry
        .annotations
        .get("summary")
        .or_else(|| entry.annotations.get("description"))
        .cloned();
    Ok(Alert {
        uid: Alert::uid_for(&fingerprint, &starts_at),
        fingerprint,
        severity: entry.labels.get("severity").cloned(),
        name,
        alert_type,
        status,
        starts_at,
        ends_at: if status == AlertStatus::Firing {
            None
        } else {
            ends_at
        },
        labels: entry.labels,
        summary,
        generator_url: entry.generator_url.filter(|u| !u.is_empty()),
        service,
        namespace,
        environment,
        cluster,
        onset: None,
        service_metrics: None,
    })
}

/// Parses a webhook notification body into its alerts.
///
/// # Errors
/// An error naming the field (`alerts[2].startsAt`) for JSON that is not a version 4
/// notification or an alert without a fingerprint, start time, status or alert name.
pub fn parse_webhook(body: &[u8], mapping: &AlertMapping) -> Result<Vec<Alert>> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::new("", format!("not an Alertmanager notification: {e}")))?;
    parse_notification(value, mapping)
}

/// As [`parse_webhook`], for a body already parsed as JSON.
///
/// # Errors
/// As [`parse_webhook`].
pub fn parse_notification(body: serde_json::Value, mapping: &AlertMapping) -> Result<Vec<Alert>> {
    let notification: Notification = serde_json::from_value(body)
        .map_err(|e| Error::new("", format!("not an Alertmanager notification: {e}")))?;
    notification.into_alerts(mapping)
}

impl Notification {
    /// The notification's alerts.
    ///
    /// # Errors
    /// As [`parse_webhook`].
    pub fn into_alerts(self, mapping: &AlertMapping) -> Result<Vec<Alert>> {
        notification_alerts(self, mapping)
    }
}

fn notification_alerts(notification: Notification, mapping: &AlertMapping) -> Result<Vec<Alert>> {
    match notification.version.as_deref() {
        Some("4") => {}
        Some(other) => {
            return Err(Error::new(
                "version",
                format!("{other:?} is not supported; Alertmanager sends version \"4\""),
            ));
        }
        None => return Err(Error::new("version", "is required")),
    }
    let entries = notification
        .alerts
        .ok_or_else(|| Error::new("alerts", "is required"))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            entry_to_alert(entry, mapping).map_err(|e| e.within(&format!("alerts[{i}]")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(alerts: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts
        }))
        .unwrap_or_default()
    }

    fn firing(labels: serde_json::Value) -> serde_json::Value {
        json!({"status": "firing", "labels": labels, "annotations": {"summary": "errors up"},
               "startsAt": "2026-11-20T10:15:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prom/graph", "fingerprint": "a1b2c3"})
    }

    #[test]
    fn a_firing_alert_maps_labels_onto_the_model() {
        let alerts = parse_webhook(
            &body(json!([firing(
                json!({"alertname": "HighErrors", "app": "payments",
                "namespace": "prod", "environment": "production", "severity": "critical"})
            )])),
            &AlertMapping::default(),
        )
        .unwrap_or_default();
        let [a] = alerts.as_slice() else {
            panic!("{alerts:?}")
        };
        assert_eq!(a.name, "HighErrors");
        assert_eq!(a.alert_type, "HighErrors");
        assert_eq!(
            a.service.as_ref().map(ServiceName::as_str),
            Some("payments")
        );
        assert_eq!(a.namespace.as_deref(), Some("prod"));
        assert_eq!(
            a.environment.as_ref().map(Environment::as_str),
            Some("production")
        );
        assert_eq!(a.severity.as_deref(), Some("critical"));
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.ends_at, None);
        assert_eq!(a.summary.as_deref(), Some("errors up"));
        assert_eq!(a.uid, Alert::uid_for("a1b2c3", &a.starts_at));
    }

    #[test]
    fn label_precedence_type_and_default_environment() {
        let mapping = AlertMapping {
            default_environment: Environment::parse("staging").ok(),
            ..AlertMapping::default()
        };
        let alerts = parse_webhook(
            &body(json!([firing(json!({"alertname": "X", "type": "latency",
                "service": "checkout", "app": "other", "app_kubernetes_io_name": "third"}))])),
            &mapping,
        )
        .unwrap_or_default();
        assert_eq!(
            alerts[0].service.as_ref().map(ServiceName::as_str),
            Some("checkout")
        );
        assert_eq!(alerts[0].alert_type, "latency");
        assert_eq!(
            alerts[0].environment.as_ref().map(Environment::as_str),
            Some("staging")
        );
        // An invalid service label falls through to the next one.
        let alerts = parse_webhook(
            &body(json!([firing(
                json!({"alertname": "X", "service": "Not A Name",
                "app_kubernetes_io_name": "third"})
            )])),
            &AlertMapping::default(),
        )
        .unwrap_or_default();
        assert_eq!(
            alerts[0].service.as_ref().map(ServiceName::as_str),
            Some("third")
        );
    }

    #[test]
    fn resolved_alerts_carry_their_end() {
        let mut a = firing(json!({"alertname": "X"}));
        a["status"] = json!("resolved");
        a["endsAt"] = json!("2026-11-20T10:45:00Z");
        let alerts = parse_webhook(&body(json!([a])), &AlertMapping::default()).unwrap_or_default();
        assert_eq!(alerts[0].status, AlertStatus::Resolved);
        assert!(alerts[0].ends_at.is_some());
    }

    #[test]
    fn bad_notifications_name_the_field() {
        let mapping = AlertMapping::default();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), ""),
            (
                serde_json::to_vec(&json!({"alerts": []})).unwrap_or_default(),
                "version",
            ),
            (
                serde_json::to_vec(&json!({"version": "3", "alerts": []})).unwrap_or_default(),
                "version",
            ),
            (
                serde_json::to_vec(&json!({"version": "4"})).unwrap_or_default(),
                "alerts",
            ),
            (
                body(
                    json!([firing(json!({"alertname": "X"})), {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2026-11-20T10:15:00Z"}]),
                ),
                "alerts[1].fingerprint",
            ),
            (
                body(
                    json!([{"status": "firing", "labels": {"alertname": "X"}, "fingerprint": "f"}]),
                ),
                "alerts[0].startsAt",
            ),
            (
                body(
                    json!([{"status": "firing", "labels": {"alertname": "X"}, "fingerprint": "f", "startsAt": "yesterday"}]),
                ),
                "alerts[0].startsAt",
            ),
            (
                body(
                    json!([{"status": "pending", "labels": {"alertname": "X"}, "fingerprint": "f", "startsAt": "2026-11-20T10:15:00Z"}]),
                ),
                "alerts[0].status",
            ),
            (
                body(
                    json!([{"status": "firing", "labels": {}, "fingerprint": "f", "startsAt": "2026-11-20T10:15:00Z"}]),
                ),
                "alerts[0].labels.alertname",
            ),
        ];
        for (input, field) in cases {
            match parse_webhook(&input, &mapping) {
                Err(e) => assert_eq!(e.field, field, "{e}"),
                Ok(a) => panic!("accepted {a:?} for {field}"),
            }
        }
    }
}
