//! What the judge is given: per-metric data of the canary and of the baseline (the old version
//! side by side, or summaries of earlier releases).

use crate::distribution::Distribution;
use crate::template::Window;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of a `ratio` metric over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Events (errors).
    pub numerator: u64,
    /// Trials (requests).
    pub denominator: u64,
}

/// What was measured for one metric on one side: `{"kind": "ratio", "data": {"numerator",
/// "denominator"}}` or `{"kind": "distribution", "data": {"samples"|"weighted"|"histogram": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(
    rename_all = "snake_case",
    tag = "kind",
    content = "data",
    deny_unknown_fields
)]
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

    /// Whether the data is consistent enough to keep: a ratio's numerator at most its
    /// denominator, a distribution as [`Distribution::check`].
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Ratio(c) if c.numerator > c.denominator => Err(format!(
                "numerator {} is above its denominator {}",
                c.numerator, c.denominator
            )),
            Self::Ratio(_) => Ok(()),
            Self::Distribution(d) => d.check(),
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

/// A metric's data per unit (pod) on each side, when its template names a `unit_label`
/// ([`crate::units`]): one entry per value of the label, of the metric's kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Units {
    /// The canary's units.
    pub canary: Vec<MetricData>,
    /// The side-by-side baseline's units.
    pub baseline: Vec<MetricData>,
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
    /// Per metric name, its data per unit, for metrics whose template names a `unit_label`
    /// (empty otherwise).
    pub units: BTreeMap<String, Units>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::{Bucket, Histogram, MAX_BUCKETS};

    fn histogram(bounds: &[f64]) -> MetricData {
        MetricData::Distribution(Distribution::Histogram(Histogram {
            buckets: bounds.iter().map(|&le| Bucket { le, count: 1 }).collect(),
            count: 1,
        }))
    }

    #[test]
    fn data_the_judge_cannot_read_is_refused_with_a_reason() {
        let ratio = |numerator, denominator| {
            MetricData::Ratio(Counts {
                numerator,
                denominator,
            })
        };
        assert_eq!(ratio(3, 10).check(), Ok(()));
        assert_eq!(ratio(0, 0).check(), Ok(()));
        let e = ratio(11, 10).check().expect_err("more events than trials");
        assert!(e.contains("above its denominator"), "{e}");
        assert_eq!(histogram(&[0.1, 0.5]).check(), Ok(()));
        let e = histogram(&[0.5, 0.1]).check().expect_err("unordered");
        assert!(e.contains("bucket bounds are not increasing"), "{e}");
        let many: Vec<f64> = (0..=MAX_BUCKETS).map(|i| i as f64).collect();
        let e = histogram(&many).check().expect_err("too many");
        assert!(e.contains("at most 512"), "{e}");
        let samples = MetricData::Distribution(Distribution::Samples(vec![1.0, f64::NAN]));
        assert_eq!(samples.check(), Ok(()));
    }

    #[test]
    fn summaries_read_back_as_the_judge_wrote_them() {
        let data = MetricData::Distribution(Distribution::Samples(
            (0..2000).map(|i| f64::from(i) / 7.0).collect(),
        ));
        let kept = data.summary();
        let json = serde_json::to_value(&kept).expect("json");
        assert_eq!(json["kind"], "distribution");
        let back: MetricData = serde_json::from_value(json).expect("read");
        assert_eq!(back, kept);
        let unknown = serde_json::json!({"kind": "ratio", "data": {"numerator": 1, "denominator": 2, "x": 0}});
        assert!(serde_json::from_value::<MetricData>(unknown).is_err());
    }
}
