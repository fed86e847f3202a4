//! Canary analyses: `(CanaryAnalysis)-[:ANALYZED]->(DeploymentEvent)`,
//! `(CanaryAnalysis)-[:MEASURED]->(MetricVerdict)`.
//!
//! An analysis is the judge's decision on one rollout of a deployment (`deploygraph canary
//! analyze`): its verdict, the baseline it compared with, and per metric the outcome with the
//! judge's evidence (`MetricEvidence` of `deploygraph-canary`, kept as JSON, bounded). Its uid
//! is derived from the deployment and the start of the analysis, so a running analysis recorded
//! on each decision keeps its uid and the later record replaces the earlier one.
//!
//! The analysis names its deployment; the service, namespace and environment are the
//! deployment's, filled in by the store when it records the analysis ([`NewCanaryAnalysis`]).

use crate::alert::ServiceRef;
use crate::uid::{CANARY_ANALYSIS_PREFIX, Uid};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Upper bounds on an analysis' text and lists.
pub mod limits {
    /// The template's and each metric's name.
    pub const NAME: usize = 256;
    /// A rule sentence (the verdict's, a metric's).
    pub const RULE: usize = 4096;
    /// Metrics per analysis.
    pub const METRICS: usize = 64;
    /// One metric's evidence, serialised as JSON.
    pub const EVIDENCE_BYTES: usize = 16 * 1024;
    /// Analysis rounds counted in one analysis.
    pub const ANALYSES: u32 = 1_000_000;
}

/// A verdict, the analysis' or a metric's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanaryVerdict {
    /// No significant change in the bad direction beyond the tolerance.
    Pass,
    /// A significant change in the bad direction beyond the tolerance.
    Fail,
    /// Data, but not enough to judge.
    Inconclusive,
    /// No series or no observations.
    NoData,
}

impl CanaryVerdict {
    /// The wire name (`no_data`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Inconclusive => "inconclusive",
            Self::NoData => "no_data",
        }
    }

    /// Parses the wire name; `field` names the value in errors.
    ///
    /// # Errors
    /// An invalid-field error naming `field`.
    pub fn parse(field: &str, value: &str) -> crate::Result<Self> {
        Ok(match value {
            "pass" => Self::Pass,
            "fail" => Self::Fail,
            "inconclusive" => Self::Inconclusive,
            "no_data" => Self::NoData,
            other => {
                return Err(crate::Error::new(
                    field,
                    format!("{other:?} is not one of pass, fail, inconclusive, no_data"),
                ));
            }
        })
    }
}

/// What the canary was compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanaryBaselineKind {
    /// The old version's pods running beside the canary.
    SideBySide,
    /// The same service's earlier releases.
    History,
}

impl CanaryBaselineKind {
    /// The wire name (`side_by_side`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SideBySide => "side_by_side",
            Self::History => "history",
        }
    }

    /// Parses the wire name.
    ///
    /// # Errors
    /// An invalid-field error naming `baseline_kind`.
    pub fn parse(value: &str) -> crate::Result<Self> {
        match value {
            "side_by_side" => Ok(Self::SideBySide),
            "history" => Ok(Self::History),
            other => Err(crate::Error::new(
                "baseline_kind",
                format!("{other:?} is not one of side_by_side, history"),
            )),
        }
    }
}

/// How a metric is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanaryMetricKind {
    /// Event counts over request counts (errors over requests).
    Ratio,
    /// Samples or histogram buckets (latency).
    Distribution,
}

impl CanaryMetricKind {
    /// The wire name (`ratio`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ratio => "ratio",
            Self::Distribution => "distribution",
        }
    }

    /// Parses the wire name; `field` names the value in errors.
    ///
    /// # Errors
    /// An invalid-field error naming `field`.
    pub fn parse(field: &str, value: &str) -> crate::Result<Self> {
        match value {
            "ratio" => Ok(Self::Ratio),
            "distribution" => Ok(Self::Distribution),
            other => Err(crate::Error::new(
                field,
                format!("{other:?} is not one of ratio, distribution"),
            )),
        }
    }
}

/// One metric's outcome in an analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    /// The metric's name in the template (unique in the analysis).
    pub name: String,
    /// How it is measured.
    pub kind: CanaryMetricKind,
    /// Its outcome.
    pub outcome: CanaryVerdict,
    /// Whether it fails the verdict on its own.
    pub critical: bool,
    /// The rule that fired, as a sentence.
    pub rule: String,
    /// The judge's evidence (`MetricEvidence`), at most [`limits::EVIDENCE_BYTES`] as JSON.
    pub evidence: serde_json::Value,
}

impl MetricVerdict {
    /// The uid of the `MetricVerdict` node of the metric `name` in `analysis`.
    pub fn uid_in(analysis: &Uid, name: &str) -> Uid {
        Uid::derive("metric-verdict", &[analysis.as_str(), name])
    }
}

/// An analysis as a client records it: everything but the deployment's service, which the
/// store reads from the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCanaryAnalysis {
    /// Derived from `deployment` and `started_at` ([`CanaryAnalysis::uid_for`]).
    pub uid: Uid,
    /// The deployment under analysis.
    pub deployment: Uid,
    /// The analysis template's name.
    pub template: String,
    /// The verdict so far (or the final one).
    pub verdict: CanaryVerdict,
    /// What the canary was compared with.
    pub baseline_kind: CanaryBaselineKind,
    /// When the analysis started.
    pub started_at: DateTime<Utc>,
    /// When this verdict was decided.
    pub decided_at: DateTime<Utc>,
    /// Analysis rounds so far.
    pub analyses: u32,
    /// Why the verdict is what it is.
    pub rule: String,
    /// Per metric, in template order.
    pub metrics: Vec<MetricVerdict>,
    /// This round ended the analysis (its verdict is the command's).
    pub final_round: bool,
}

impl NewCanaryAnalysis {
    /// The stored analysis, with the service of its deployment.
    pub fn of(self, service: ServiceRef) -> CanaryAnalysis {
        CanaryAnalysis {
            uid: self.uid,
            deployment: self.deployment,
            service,
            template: self.template,
            verdict: self.verdict,
            baseline_kind: self.baseline_kind,
            started_at: self.started_at,
            decided_at: self.decided_at,
            analyses: self.analyses,
            rule: self.rule,
            metrics: self.metrics,
            final_round: self.final_round,
        }
    }
}

/// A canary analysis of a deployment, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryAnalysis {
    /// Derived from `deployment` and `started_at`.
    pub uid: Uid,
    /// The deployment analysed (`ANALYZED`).
    pub deployment: Uid,
    /// The deployment's service (name, namespace, environment).
    pub service: ServiceRef,
    /// The analysis template's name.
    pub template: String,
    /// The verdict.
    pub verdict: CanaryVerdict,
    /// What the canary was compared with.
    pub baseline_kind: CanaryBaselineKind,
    /// When the analysis started.
    pub started_at: DateTime<Utc>,
    /// When this verdict was decided.
    pub decided_at: DateTime<Utc>,
    /// Analysis rounds it took.
    pub analyses: u32,
    /// Why the verdict is what it is.
    pub rule: String,
    /// Per metric, in template order (`MEASURED`).
    pub metrics: Vec<MetricVerdict>,
    /// This round ended the analysis (its verdict is the command's); `false` in analyses
    /// stored before the flag existed.
    #[serde(default, rename = "final")]
    pub final_round: bool,
}

impl CanaryAnalysis {
    /// The uid of the analysis of `deployment` that started at `started_at`.
    pub fn uid_for(deployment: &Uid, started_at: &DateTime<Utc>) -> Uid {
        Uid::derive(
            CANARY_ANALYSIS_PREFIX,
            &[
                deployment.as_str(),
                &crate::newtypes::format_time(started_at),
            ],
        )
    }

    /// The metrics that failed, in template order.
    pub fn failing_metrics(&self) -> impl Iterator<Item = &MetricVerdict> {
        self.metrics
            .iter()
            .filter(|m| m.outcome == CanaryVerdict::Fail)
    }
}

/// One metric's outcome, as a request gives it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricVerdictInput {
    /// The metric's name in the template (unique in the analysis).
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// How it is measured.
    pub kind: CanaryMetricKind,
    /// Its outcome.
    pub outcome: CanaryVerdict,
    /// Whether it fails the verdict on its own.
    #[serde(default)]
    pub critical: bool,
    /// The rule that fired, as a sentence.
    #[schema(min_length = 1, max_length = 4096)]
    pub rule: String,
    /// The judge's evidence for the metric (its `MetricEvidence`): a JSON object of at most
    /// 16 KiB once serialised.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// The body of `POST /v1/canary/analyses`: a canary analysis of a deployment, recorded on each
/// decision of a running analysis and at its end. Unknown fields are rejected. Its uid is
/// derived from `deployment` and `started_at`, so a later record of the same analysis
/// replaces the earlier one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryAnalysisInput {
    /// The deployment under analysis.
    #[schema(value_type = crate::schema::DeploymentUid)]
    pub deployment: String,
    /// The analysis template's name.
    #[schema(min_length = 1, max_length = 256)]
    pub template: String,
    /// The verdict so far, or the final one.
    pub verdict: CanaryVerdict,
    /// What the canary was compared with.
    pub baseline_kind: CanaryBaselineKind,
    /// When the analysis started.
    #[schema(value_type = crate::schema::InputTime)]
    pub started_at: String,
    /// When this verdict was decided (not before `started_at`).
    #[schema(value_type = crate::schema::InputTime)]
    pub decided_at: String,
    /// Analysis rounds so far.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub analyses: u32,
    /// Why the verdict is what it is.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub rule: String,
    /// Per metric, in template order; names are unique.
    #[serde(default)]
    #[schema(max_items = 64, nullable = false)]
    pub metrics: Vec<MetricVerdictInput>,
    /// This round ended the analysis: its verdict is the command's final one.
    #[serde(default, rename = "final")]
    pub final_round: bool,
}

fn bounded_text(field: &str, value: &str, max: usize) -> crate::Result<()> {
    if value.chars().count() > max {
        return Err(crate::Error::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(())
}

fn required_text(field: &str, value: &str, max: usize) -> crate::Result<()> {
    if value.is_empty() {
        return Err(crate::Error::new(field, "is required"));
    }
    bounded_text(field, value, max)
}

impl CanaryAnalysisInput {
    /// Validates the request into an analysis to record.
    ///
    /// # Errors
    /// The first invalid field, by its path in the input (`metrics[2].evidence`).
    pub fn validate(self) -> crate::Result<NewCanaryAnalysis> {
        use crate::schema::parse_input_time;
        let deployment = Uid::parse_deployment(&self.deployment)
            .map_err(|e| crate::Error::new("deployment", e.message))?;
        required_text("template", &self.template, limits::NAME)?;
        bounded_text("rule", &self.rule, limits::RULE)?;
        let started_at = parse_input_time("started_at", &self.started_at)?;
        let decided_at = parse_input_time("decided_at", &self.decided_at)?;
        if decided_at < started_at {
            return Err(crate::Error::new("decided_at", "is before started_at"));
        }
        if !(1..=limits::ANALYSES).contains(&self.analyses) {
            return Err(crate::Error::new(
                "analyses",
                format!("must be between 1 and {}", limits::ANALYSES),
            ));
        }
        if self.metrics.len() > limits::METRICS {
            return Err(crate::Error::new(
                "metrics",
                format!("at most {} metrics", limits::METRICS),
            ));
        }
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for (i, m) in self.metrics.into_iter().enumerate() {
            let field = |name: &str| format!("metrics[{i}].{name}");
            required_text(&field("name"), &m.name, limits::NAME)?;
            if metrics
                .iter()
                .any(|seen: &MetricVerdict| seen.name == m.name)
            {
                return Err(crate::Error::new(
                    field("name"),
                    format!("{:?} is listed twice", m.name),
                ));
            }
            required_text(&field("rule"), &m.rule, limits::RULE)?;
            if !m.evidence.is_object() {
                return Err(crate::Error::new(
                    field("evidence"),
                    "must be a JSON object",
                ));
            }
            let size = serde_json::to_vec(&m.evidence)
                .map_err(|e| crate::Error::new(field("evidence"), e.to_string()))?
                .len();
            if size > limits::EVIDENCE_BYTES {
                return Err(crate::Error::new(
                    field("evidence"),
                    format!(
                        "is {size} bytes as JSON; at most {} bytes",
                        limits::EVIDENCE_BYTES
                    ),
                ));
            }
            metrics.push(MetricVerdict {
                name: m.name,
                kind: m.kind,
                outcome: m.outcome,
                critical: m.critical,
                rule: m.rule,
                evidence: m.evidence,
            });
        }
        Ok(NewCanaryAnalysis {
            uid: CanaryAnalysis::uid_for(&deployment, &started_at),
            deployment,
            template: self.template,
            verdict: self.verdict,
            baseline_kind: self.baseline_kind,
            started_at,
            decided_at,
            analyses: self.analyses,
            rule: self.rule,
            metrics,
            final_round: self.final_round,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> CanaryAnalysisInput {
        CanaryAnalysisInput {
            deployment: Uid::derive(crate::uid::DEPLOYMENT_PREFIX, &["x"]).to_string(),
            template: "http-error-ratio".into(),
            verdict: CanaryVerdict::Fail,
            baseline_kind: CanaryBaselineKind::SideBySide,
            started_at: "2026-11-20T10:00:00Z".into(),
            decided_at: "2026-11-20T10:05:00Z".into(),
            analyses: 3,
            rule: "http-error-ratio failed".into(),
            metrics: vec![MetricVerdictInput {
                name: "http-error-ratio".into(),
                kind: CanaryMetricKind::Ratio,
                outcome: CanaryVerdict::Fail,
                critical: true,
                rule: "the canary's error ratio is higher".into(),
                evidence: json!({"metric": "http-error-ratio", "p_value": 1e-9}),
            }],
            final_round: true,
        }
    }

    #[test]
    fn the_uid_is_derived_from_the_deployment_and_the_start() {
        let a = input().validate().expect("valid");
        let mut later = input();
        later.decided_at = "2026-11-20T10:09:00Z".into();
        later.verdict = CanaryVerdict::Pass;
        assert_eq!(later.validate().expect("valid").uid, a.uid);
        let mut other = input();
        other.started_at = "2026-11-20T10:01:00Z".into();
        assert_ne!(other.validate().expect("valid").uid, a.uid);
        assert!(a.uid.as_str().starts_with("canary-analysis-"));
    }

    #[test]
    fn invalid_fields_are_named() {
        type Edit = fn(&mut CanaryAnalysisInput);
        let cases: Vec<(Edit, &str)> = vec![
            (|i| i.deployment = "change-event-00".into(), "deployment"),
            (|i| i.template = String::new(), "template"),
            (|i| i.started_at = "yesterday".into(), "started_at"),
            (
                |i| i.decided_at = "2026-11-20T09:00:00Z".into(),
                "decided_at",
            ),
            (|i| i.analyses = 0, "analyses"),
            (|i| i.rule = "x".repeat(5000), "rule"),
            (|i| i.metrics[0].name = String::new(), "metrics[0].name"),
            (|i| i.metrics[0].rule = String::new(), "metrics[0].rule"),
            (
                |i| i.metrics[0].evidence = json!([1, 2]),
                "metrics[0].evidence",
            ),
            (
                |i| i.metrics[0].evidence = json!({"big": "x".repeat(20_000)}),
                "metrics[0].evidence",
            ),
            (
                |i| {
                    let again = i.metrics[0].clone();
                    i.metrics.push(again);
                },
                "metrics[1].name",
            ),
            (|i| i.metrics = vec![i.metrics[0].clone(); 65], "metrics"),
        ];
        for (change, field) in cases {
            let mut i = input();
            change(&mut i);
            let e = i.validate().expect_err(field);
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for v in [
            CanaryVerdict::Pass,
            CanaryVerdict::Fail,
            CanaryVerdict::Inconclusive,
            CanaryVerdict::NoData,
        ] {
            assert_eq!(CanaryVerdict::parse("verdict", v.as_str()), Ok(v));
            assert_eq!(json!(v), json!(v.as_str()));
        }
        for b in [CanaryBaselineKind::SideBySide, CanaryBaselineKind::History] {
            assert_eq!(CanaryBaselineKind::parse(b.as_str()), Ok(b));
            assert_eq!(json!(b), json!(b.as_str()));
        }
        for k in [CanaryMetricKind::Ratio, CanaryMetricKind::Distribution] {
            assert_eq!(CanaryMetricKind::parse("kind", k.as_str()), Ok(k));
        }
    }
}
