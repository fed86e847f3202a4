//! What the judge is given: per-metric data of the canary and of the baseline (the old version
//! side by side, or summaries of earlier releases).

use crate::distribution::Distribution;
use crate::template::Window;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of a `ratio` metric over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events (errors).
    pub numerator: u64,
    /// Trials (requests).
    pub denominator: u64,
}

/// What was measured for one metric on one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "data")]
pub enum MetricData {
    /// For `ratio` metrics.
    Ratio(Counts),
    /// For `distribution` metrics.
    Distribution(Distribution),
}

impl MetricData {
    /// A bounded form of this data to keep with a release for history baselines: counts as they
    /// are, distributions as [`Distribution::bounded`].
    #[must_use]
    pub fn summary(&self) -> Self {
        match self {
            Self::Ratio(c) => Self::Ratio(*c),
            Self::Distribution(d) => Self::Distribution(d.bounded()),
        }
    }
}

/// What one earlier release of the service measured once it had settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSummary {
    /// Which release (a deployment uid or version), for the evidence.
    pub release: String,
    /// Per metric name, its [`MetricData::summary`].
    pub metrics: BTreeMap<String, MetricData>,
}

/// What the canary is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The previous version's pods over the same window, per metric name.
    SideBySide(BTreeMap<String, MetricData>),
    /// The service's earlier releases, most recent first.
    History(Vec<ReleaseSummary>),
}

/// Which kind of baseline a verdict used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// The previous version running beside the canary.
    SideBySide,
    /// The service's own earlier releases.
    History,
}

/// Everything the judge looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The analysis window the data covers.
    pub window: Window,
    /// The canary's data per metric name; a metric without an entry has no series.
    pub canary: BTreeMap<String, MetricData>,
    /// The baseline.
    pub baseline: Baseline,
}
