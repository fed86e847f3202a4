//! What the judge answers: the verdict and each metric's evidence (serialisable, for the graph
//! and the API).
//!
//! # Serde form of [`MetricEvidence`]
//!
//! An object with `metric`, `kind` (`ratio` | `distribution`), `direction`, `critical`,
//! `baseline_kind` (`side_by_side` | `history`), `window` (a PromQL duration, `5m`),
//! `outcome` (`pass` | `fail` | `inconclusive` | `no_data`), `canary` and `baseline`
//! ([`SideSummary`]) and `rule` (a sentence); and, only when known: `releases` (history),
//! `test`, `statistic`, `p_value`, `p_adjusted`, `interval` (`{low, high, confidence}`),
//! `shift`, `effect` (`{value, allowed, common_language}`) and `queries` — the PromQL that
//! produced the data, as `[{side, role, promql}]` with `side` `canary` | `baseline` and `role`
//! `numerator` | `denominator` | `query` (absent when the data did not come from queries, as
//! for the judge alone or a history baseline's side; see [`Verdict::attach_queries`]), and
//! `sequential`, the sequential test since the run's start of a critical ratio metric
//! ([`crate::sequential::SequentialEvidence`]: `since`, `outcome`, `canary`, `baseline`,
//! `allowed`, `tau`, `alpha`, `likelihood_ratio`, `threshold`, `rule`, `queries`).

use crate::inputs::BaselineKind;
use crate::template::{Direction, MetricKind, Window};
use serde::{Deserialize, Serialize};

/// A metric's or a verdict's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No significant change in the bad direction beyond the tolerance.
    Pass,
    /// A significant change in the bad direction beyond the tolerance.
    Fail,
    /// Data, but not enough to judge (below `min_samples`, too few releases, inconsistent data).
    Inconclusive,
    /// No series or no observations.
    NoData,
}

/// Which test produced a metric's p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    /// Fisher's exact test on the 2×2 table of counts.
    FisherExact,
    /// The pooled two-proportion z-test.
    TwoProportionZ,
    /// Mann-Whitney U, tie-corrected normal approximation.
    MannWhitneyU,
    /// For a metric judged on a quantile: the share of observations at or above the baseline's
    /// quantile, canary against baseline (Fisher's exact test or the z-test on those counts);
    /// named when it, not the rank test, gave the smaller p-value.
    QuantileTail,
}

/// One side's summary in the evidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideSummary {
    /// Denominator (ratio) or observations (distribution).
    pub samples: u64,
    /// Numerator, for ratios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// Numerator over denominator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Median, for distributions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median: Option<f64>,
    /// 99th percentile, for distributions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// The template's `quantile`, when it sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
}

/// A confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Two-sided confidence, `1 − α`.
    pub confidence: f64,
}

/// The practical size of a change, in the tolerance's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Effect {
    /// Ratio: canary − baseline (absolute). Distribution: relative change (0.1 = +10 %);
    /// `None` when relative to a baseline of zero.
    pub value: Option<f64>,
    /// The tolerance it is compared with (`max_increase` or `allowed_change`).
    pub allowed: f64,
    /// For distributions, the probability that a canary observation exceeds a baseline one
    /// (ties half), `U / nm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_language: Option<f64>,
}

/// Why a metric got its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricEvidence {
    /// The metric's name.
    pub metric: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Which change is bad.
    pub direction: Direction,
    /// Whether it fails the verdict on its own.
    pub critical: bool,
    /// The baseline used.
    pub baseline_kind: BaselineKind,
    /// For a history baseline, the releases pooled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<String>,
    /// The analysis window.
    pub window: Window,
    /// The metric's outcome.
    pub outcome: Outcome,
    /// The canary's side.
    pub canary: SideSummary,
    /// The baseline's side (pooled for history).
    pub baseline: SideSummary,
    /// The test that gave the p-value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestKind>,
    /// The test statistic: z for the z-test, U for Mann-Whitney.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    /// One-sided p-value in the bad direction (two-sided for `either`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// After the Holm-Bonferroni adjustment (equal to `p_value` for critical metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_adjusted: Option<f64>,
    /// Ratio: Newcombe interval of canary − baseline. Distribution: Hodges-Lehmann shift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Distribution: the Hodges-Lehmann shift estimate (canary − baseline, in the metric's unit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    /// The practical size of the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// The rule that fired, as a sentence.
    pub rule: String,
    /// The queries that produced the data, when they came from queries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<RenderedQuery>,
    /// For a critical ratio metric in a run of analyses: the sequential test on everything
    /// since the run's start ([`crate::sequential`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::sequential::SequentialEvidence>,
    /// For a metric whose template names a `unit_label`, against a side-by-side baseline: how
    /// much the pods of each side differ beyond chance, and the design effect applied
    /// ([`crate::units`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<crate::units::Dispersion>,
}

/// Which side a query measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The new version.
    Canary,
    /// What it is compared with.
    Baseline,
}

impl Side {
    /// `canary` or `baseline`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Baseline => "baseline",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One query of a metric as it was run: the template's query with the side's selector and the
/// window filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedQuery {
    /// Whose data it measured.
    pub side: Side,
    /// `numerator` or `denominator` (ratio), `query` (distribution).
    pub role: String,
    /// The PromQL as sent.
    pub promql: String,
}

/// The judge's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Pass, Fail, Inconclusive or NoData.
    pub outcome: Outcome,
    /// The baseline used.
    pub baseline_kind: BaselineKind,
    /// Significance level.
    pub alpha: f64,
    /// The analysis window.
    pub window: Window,
    /// Per metric, in template order.
    pub metrics: Vec<MetricEvidence>,
    /// Why the verdict is what it is.
    pub rule: String,
}

impl Verdict {
    /// Puts each metric's queries (by metric name) into its evidence, replacing what was there.
    pub fn attach_queries(
        &mut self,
        queries: &std::collections::BTreeMap<String, Vec<RenderedQuery>>,
    ) {
        for m in &mut self.metrics {
            if let Some(q) = queries.get(&m.metric) {
                m.queries.clone_from(q);
            }
        }
    }

    /// Whether every metric passed (a `Pass` verdict may also carry inconclusive metrics).
    #[must_use]
    pub fn all_passed(&self) -> bool {
        !self.metrics.is_empty() && self.metrics.iter().all(|m| m.outcome == Outcome::Pass)
    }
}
