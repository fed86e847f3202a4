//! Release summaries: `(ReleaseSummary)-[:SUMMARIZES]->(DeploymentEvent)`.
//!
//! A release summary is what a deployment measured on the metrics of one analysis template once
//! it had settled (`deploygraph canary summarize`): per metric the bounded form of its data
//! (`MetricData::summary` of `deploygraph-canary`, kept as JSON), the window it covers and when
//! the window ended. A later canary of the same service with no old version running beside it
//! is judged against the summaries of the service's earlier releases (a *history* baseline).
//!
//! There is one summary per deployment and template: its uid is derived from both, and a later
//! record replaces the earlier one. The service, version and start time are the deployment's,
//! filled in by the store when it records the summary ([`NewReleaseSummary::of`]).

use crate::alert::ServiceRef;
use crate::deployment::Deployment;
use crate::uid::Uid;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The prefix of release summary uids.
pub const RELEASE_SUMMARY_PREFIX: &str = "release-summary";

/// The window of a summary: a PromQL duration that is not zero, of up to seven `NUMBER UNIT`
/// parts of at most six digits each (`10m`, `1h30m`).
pub const WINDOW_PATTERN: &str = "^([0-9]{1,6}(ms|s|m|h|d|w|y)){0,3}0{0,5}[1-9][0-9]{0,5}(ms|s|m|h|d|w|y)([0-9]{1,6}(ms|s|m|h|d|w|y)){0,3}$";

static WINDOW: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(WINDOW_PATTERN).ok());

/// Upper bounds of a summary.
pub mod limits {
    /// The template's and each metric's name.
    pub const NAME: usize = 256;
    /// The window, as a PromQL duration.
    pub const WINDOW: usize = 32;
    /// Metrics per summary.
    pub const METRICS: usize = 64;
    /// Summaries a history read returns at most.
    pub const HISTORY: usize = 50;
    /// Summaries a history read returns when not told.
    pub const HISTORY_DEFAULT: usize = 10;
}

/// A release summary as a client records it: everything but the deployment's service, version
/// and start, which the store reads from the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReleaseSummary {
    /// Derived from `deployment` and `template` ([`ReleaseSummary::uid_for`]).
    pub uid: Uid,
    /// The deployment summarized.
    pub deployment: Uid,
    /// The analysis template's name.
    pub template: String,
    /// The window the metrics cover, a PromQL duration (`10m`).
    pub window: String,
    /// When the window ended.
    pub settled_at: DateTime<Utc>,
    /// Per metric name, its bounded data (a `MetricData` of `deploygraph-canary` as JSON).
    pub metrics: Map<String, Value>,
}

impl NewReleaseSummary {
    /// Validates a summary of `deployment` (a deployment uid).
    ///
    /// # Errors
    /// The first invalid field: `template`, `window`, `settled_at`, `metrics` or
    /// `metrics.NAME`. A malformed `deployment` names `deployment`.
    pub fn validate(
        deployment: &str,
        template: String,
        window: String,
        settled_at: &str,
        metrics: Map<String, Value>,
    ) -> crate::Result<Self> {
        let deployment = Uid::parse_deployment(deployment)
            .map_err(|e| crate::Error::new("deployment", e.message))?;
        required_text("template", &template, limits::NAME)?;
        required_text("window", &window, limits::WINDOW)?;
        if !WINDOW.as_ref().is_some_and(|re| re.is_match(&window)) {
            return Err(crate::Error::new(
                "window",
                format!(
                    "{window:?} is not a PromQL duration like 30s, 10m or 1h30m that is not zero"
                ),
            ));
        }
        let settled_at = crate::schema::parse_input_time("settled_at", settled_at)?;
        if metrics.is_empty() {
            return Err(crate::Error::new("metrics", "at least one metric"));
        }
        if metrics.len() > limits::METRICS {
            return Err(crate::Error::new(
                "metrics",
                format!("at most {} metrics", limits::METRICS),
            ));
        }
        for (name, value) in &metrics {
            if name.is_empty() {
                return Err(crate::Error::new("metrics", "a metric's name is empty"));
            }
            if name.chars().count() > limits::NAME {
                return Err(crate::Error::new(
                    format!("metrics.{name}"),
                    format!("the name is longer than {} characters", limits::NAME),
                ));
            }
            if !value.is_object() {
                return Err(crate::Error::new(
                    format!("metrics.{name}"),
                    "must be a JSON object",
                ));
            }
        }
        Ok(Self {
            uid: ReleaseSummary::uid_for(&deployment, &template),
            deployment,
            template,
            window,
            settled_at,
            metrics,
        })
    }

    /// The stored summary, with what the store knows of its deployment.
    pub fn of(self, deployment: &Deployment) -> ReleaseSummary {
        ReleaseSummary {
            uid: self.uid,
            deployment: self.deployment,
            service: deployment.service_ref(),
            version: deployment.version.clone(),
            deployed_at: deployment.started_at,
            template: self.template,
            window: self.window,
            settled_at: self.settled_at,
            metrics: self.metrics,
        }
    }
}

fn required_text(field: &str, value: &str, max: usize) -> crate::Result<()> {
    if value.is_empty() {
        return Err(crate::Error::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(crate::Error::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// What a deployment measured on one template's metrics once it had settled, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    /// Derived from `deployment` and `template`.
    pub uid: Uid,
    /// The deployment summarized (`SUMMARIZES`).
    pub deployment: Uid,
    /// The deployment's service (name, namespace, environment).
    pub service: ServiceRef,
    /// The deployment's version, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When the deployment started.
    pub deployed_at: DateTime<Utc>,
    /// The analysis template's name.
    pub template: String,
    /// The window the metrics cover (`10m`).
    pub window: String,
    /// When the window ended.
    pub settled_at: DateTime<Utc>,
    /// Per metric name, its bounded data (`{"kind": "ratio", "data": {...}}`).
    pub metrics: Map<String, Value>,
}

impl ReleaseSummary {
    /// The uid of the summary of `deployment` on `template`.
    pub fn uid_for(deployment: &Uid, template: &str) -> Uid {
        Uid::derive(RELEASE_SUMMARY_PREFIX, &[deployment.as_str(), template])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metrics() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "http-error-ratio".into(),
            json!({"kind": "ratio", "data": {"numerator": 3, "denominator": 1000}}),
        );
        m
    }

    fn deployment() -> String {
        Uid::derive(crate::uid::DEPLOYMENT_PREFIX, &["x"]).to_string()
    }

    #[test]
    fn the_uid_is_derived_from_the_deployment_and_the_template() {
        let at = "2026-11-20T10:00:00Z";
        let a = NewReleaseSummary::validate(&deployment(), "t".into(), "10m".into(), at, metrics())
            .expect("valid");
        let again = NewReleaseSummary::validate(
            &deployment(),
            "t".into(),
            "5m".into(),
            "2026-11-20T11:00:00Z",
            metrics(),
        )
        .expect("valid");
        assert_eq!(a.uid, again.uid);
        let other =
            NewReleaseSummary::validate(&deployment(), "u".into(), "10m".into(), at, metrics())
                .expect("valid");
        assert_ne!(a.uid, other.uid);
        assert!(a.uid.as_str().starts_with("release-summary-"));
    }

    #[test]
    fn invalid_fields_are_named() {
        let at = "2026-11-20T10:00:00Z";
        let many: Map<String, Value> = (0..65)
            .map(|i| (format!("m{i}"), json!({"kind": "ratio"})))
            .collect();
        let mut long = Map::new();
        long.insert("x".repeat(300), json!({}));
        let mut scalar = Map::new();
        scalar.insert("m".into(), json!(3));
        /// Deployment (empty: a valid one), template, window, settled_at, metrics, field.
        type Case<'a> = (
            &'a str,
            String,
            String,
            &'a str,
            Map<String, Value>,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "change-event-00",
                "t".into(),
                "1m".into(),
                at,
                metrics(),
                "deployment",
            ),
            ("", String::new(), "1m".into(), at, metrics(), "template"),
            ("", "t".into(), String::new(), at, metrics(), "window"),
            ("", "t".into(), "0s".into(), at, metrics(), "window"),
            ("", "t".into(), " 5m".into(), at, metrics(), "window"),
            (
                "",
                "t".into(),
                "1s1s1s1s1s1s1s1s".into(),
                at,
                metrics(),
                "window",
            ),
            ("", "t".into(), "1234567s".into(), at, metrics(), "window"),
            (
                "",
                "t".into(),
                "1m".into(),
                "yesterday",
                metrics(),
                "settled_at",
            ),
            ("", "t".into(), "1m".into(), at, Map::new(), "metrics"),
            ("", "t".into(), "1m".into(), at, many, "metrics"),
            ("", "t".into(), "1m".into(), at, scalar, "metrics.m"),
        ];
        for (d, template, window, settled, metrics, field) in cases {
            let d = if d.is_empty() {
                deployment()
            } else {
                d.to_owned()
            };
            let e = NewReleaseSummary::validate(&d, template, window, settled, metrics)
                .expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
        let e = NewReleaseSummary::validate(&deployment(), "t".into(), "1m".into(), at, long)
            .expect_err("long name");
        assert!(e.field.starts_with("metrics.x"), "{e}");
    }
}
