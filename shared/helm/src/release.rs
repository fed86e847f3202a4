//! The release record Helm stores (`pkg/release`), tolerant of Helm 4's omitted zero fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One revision of a Helm release.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Release {
    /// Release name.
    pub name: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Revision number.
    pub version: u32,
    /// Lifecycle information.
    #[serde(default)]
    pub info: Info,
    /// The chart, with its default values.
    #[serde(default)]
    pub chart: Option<Chart>,
    /// User-supplied values (`-f`/`--set`).
    #[serde(default)]
    pub config: Option<Value>,
    /// Rendered manifests, hooks excluded.
    #[serde(default)]
    pub manifest: String,
}

/// `info` of a release.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Info {
    /// deployed, superseded, failed, pending-upgrade, …
    #[serde(default)]
    pub status: String,
    /// First deployment of the release.
    #[serde(default)]
    pub first_deployed: Option<DateTime<Utc>>,
    /// This revision's deployment.
    #[serde(default)]
    pub last_deployed: Option<DateTime<Utc>>,
    /// Description (`Upgrade complete`, `Rollback to 3`, failure reason).
    #[serde(default)]
    pub description: Option<String>,
}

/// `chart` of a release.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Chart {
    /// `Chart.yaml`.
    #[serde(default)]
    pub metadata: Option<ChartMetadata>,
    /// The chart's default values.
    #[serde(default)]
    pub values: Option<Value>,
}

/// `Chart.yaml` fields deploygraph uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChartMetadata {
    /// Chart name.
    #[serde(default)]
    pub name: String,
    /// Chart version.
    #[serde(default)]
    pub version: String,
    /// Application version.
    #[serde(default, rename = "appVersion")]
    pub app_version: Option<String>,
}

/// What `deploygraph helm decode` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseSummary {
    /// Release name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Revision.
    pub revision: u32,
    /// Status.
    pub status: String,
    /// `name-version` of the chart.
    pub chart: Option<String>,
    /// App version.
    pub app_version: Option<String>,
    /// Deployed at.
    pub deployed_at: Option<DateTime<Utc>>,
    /// Description.
    pub description: Option<String>,
    /// User-supplied values, secret-looking ones redacted.
    pub values: Value,
    /// Number of resources in the manifest.
    pub resources: usize,
}

impl Release {
    /// The chart metadata, when present.
    pub fn chart_metadata(&self) -> Option<&ChartMetadata> {
        self.chart.as_ref().and_then(|c| c.metadata.as_ref())
    }

    /// The values the release was rendered with: chart defaults overlaid with user values.
    pub fn effective_values(&self) -> Value {
        let mut merged = self
            .chart
            .as_ref()
            .and_then(|c| c.values.clone())
            .unwrap_or(Value::Object(serde_json::Map::new()));
        if let Some(config) = &self.config {
            merge(&mut merged, config);
        }
        merged
    }

    /// A summary for humans.
    pub fn summary(&self) -> ReleaseSummary {
        let meta = self.chart_metadata();
        ReleaseSummary {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            revision: self.version,
            status: self.info.status.clone(),
            chart: meta.map(|m| format!("{}-{}", m.name, m.version)),
            app_version: meta.and_then(|m| m.app_version.clone()),
            deployed_at: self.info.last_deployed,
            description: self.info.description.clone(),
            values: crate::diff::redact_values(self.config.clone().unwrap_or(Value::Null)),
            resources: crate::diff::split_manifest(&self.manifest).len(),
        }
    }
}

/// Overlays `overlay` on `base` the way Helm coalesces values: maps merge key by key, anything
/// else replaces; a `null` in the overlay deletes the key.
fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    merge(existing, value);
                } else {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_values_overlay_chart_defaults() {
        let release: Release = serde_json::from_value(json!({
            "name": "web", "version": 2,
            "chart": {"values": {"replicas": 1, "image": {"tag": "1.0", "pull": "IfNotPresent"}, "debug": true}},
            "config": {"image": {"tag": "2.0"}, "debug": null}
        }))
        .expect("release");
        assert_eq!(
            release.effective_values(),
            json!({"replicas": 1, "image": {"tag": "2.0", "pull": "IfNotPresent"}})
        );
    }

    #[test]
    fn helm_4_releases_without_zero_fields_parse() {
        let release: Release = serde_json::from_value(json!({
            "name": "web", "version": 1, "info": {"status": "deployed"}, "apply_method": "ssa"
        }))
        .expect("release");
        assert_eq!(release.namespace, "");
        assert!(release.config.is_none());
    }
}
