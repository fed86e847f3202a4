//! Canary analysis: analysis templates, the statistical judge of a canary against its
//! baseline, and the collector that runs a template's queries against Prometheus.
//! Templates and the judge are pure (no I/O, no store, no clock); [`prometheus`] is the one
//! module that does I/O, and the CLI that acts on the verdict calls this crate.
//!
//! # Collecting from Prometheus
//!
//! [`prometheus::Prometheus::collect`] renders each metric's queries for the canary and the
//! baseline selectors over one window at one evaluation time and turns the answers into
//! [`Inputs`]; empty answers are missing series (`NoData`), an unreachable or refusing
//! Prometheus is an [`Error::Query`] naming the query. [`prometheus::Collected::judge`] judges
//! them and attaches the rendered queries to each metric's evidence
//! ([`MetricEvidence::queries`]).
//!
//! # When a run of analyses is final
//!
//! [`stop::decide_confirmed`] is the stop rule of `deploygraph canary analyze` (a `Fail` is final
//! when the analysis one window earlier failed too, a pass once every metric passed in an
//! analysis a full window after the start, at the deadline the last verdict decides), shared
//! with the canary benchmark; [`stop::decide`] is the same with a `Fail` final at once.
//! [`sequential`] is the test of each critical ratio metric on everything since the run
//! started (a mixture sequential probability ratio test, valid under repeated looks), run beside
//! each window by [`prometheus::Prometheus::sequential`]; its failure fails the verdict and is
//! final at once.
//!
//! # Templates
//!
//! [`Template::parse`] reads YAML (format in [`template`]); every error names its field path.
//! [`Template::render`] fills `{{selector}}` and `{{window}}` with a [`Selector`] (checked so it
//! cannot inject PromQL) and a [`Window`]. Three templates ship in `templates/`
//! ([`template::SHIPPED`]): HTTP error ratio, p99 latency from a Prometheus histogram, and
//! database/Redis connection-pool timeouts.
//!
//! # The judge
//!
//! [`judge()`] compares each metric of a template, canary against baseline, and combines the
//! outcomes into a [`Verdict`] with per-metric [`MetricEvidence`] (sample sizes, summaries,
//! test, statistic, raw and adjusted p-value, interval, effect size and the rule that fired).
//!
//! **Significance level.** α = 0.02 ([`DEFAULT_ALPHA`], Kayenta's 98 %); every p-value below is
//! one-sided in the metric's bad direction (`increase`: the canary is higher; `decrease`:
//! lower), and for `either` twice the smaller one-sided p-value. Intervals are two-sided 1 − α.
//!
//! **A metric fails only when the change is both significant and larger than tolerated** in the
//! bad direction. A significant change within the tolerance passes, and so does a large change
//! that is not significant.
//!
//! **`ratio` metrics** are compared on the raw counts (canary `x₁/n₁` against baseline `x₂/n₂`),
//! never on ratios alone, so a baseline of zero errors is evidence and not a missing value (this
//! is what makes Kayenta pass 300 errors against 0, kayenta#426: its rank test sees one value
//! per interval, and zeros against small numbers are ties and noise). The test is
//! - **Fisher's exact test** when the conditional (hypergeometric) support has at most
//!   [`stats::EXACT_SUPPORT_LIMIT`] points — that is, whenever events (or non-events) are few,
//!   which is exactly where the normal approximation breaks down (zero-error baselines, rare
//!   errors). It is computed term by term from the ratios of consecutive probabilities, which
//!   stays exact with billions of requests where log-gamma differences would cancel; it is
//!   conservative, which suits a test whose failure rolls a release back.
//! - the **pooled two-proportion z-test** otherwise, that is when every margin of the table
//!   (events, non-events, canary and baseline trials) is above 20,000: there the normal
//!   approximation is accurate to far below α, and the exact sum would cost more than it adds.
//!
//! The size of the change is the difference of ratios `x₁/n₁ − x₂/n₂`, compared with
//! `max_increase` (absolute: 0.01 = one percentage point) in the bad direction; the evidence
//! also carries Newcombe's hybrid score interval for that difference, which, unlike the Wald
//! interval, is not a point when a side has zero events.
//!
//! **`distribution` metrics** use the **Mann-Whitney U** test (normal approximation with the
//! tie correction and a continuity correction) and the **Hodges-Lehmann** shift (weighted
//! median of all pairwise differences canary − baseline) with its 1 − α interval from the
//! inverted rank test. Raw samples, weighted points and Prometheus histograms are all reduced to
//! sorted (value, count) points: a histogram's cumulative `le` counts become per-bucket counts,
//! each bucket one tie group at its midpoint (the `+Inf` bucket at the highest finite bound).
//! U is computed in one merge of the two point lists, O(points); the Hodges-Lehmann pairs are
//! built on at most [`distribution::MAX_POINTS`] points per side (equal-weight groups), so huge
//! counts cost O(buckets²), never O(n·m). The practical effect is relative: the shift over the
//! baseline median, or, when the metric sets `quantile`, the relative change of that quantile
//! (p99 of a latency histogram, interpolated as `histogram_quantile` does); it is compared with
//! `allowed_change` (0.1 = 10 %). Histograms can only be compared with the same buckets.
//!
//! **Quantile metrics also get a tail test.** A release that slows a few per cent of requests
//! moves p99 and hardly the ranks (the median stays where it was), so the rank test alone
//! misses it. When the metric sets `quantile`, the share of observations at or above the
//! baseline's quantile (for histograms: in the bucket holding it and above) is compared between
//! the sides as two proportions (Fisher's exact test or the z-test, as for ratios); the metric's
//! p-value is twice the smaller of the two tests' (Bonferroni), and `test` names the one that
//! gave it ([`TestKind::QuantileTail`] or Mann-Whitney).
//!
//! **Too little data is never a failure.** A metric is
//! - `NoData` when a side has no series, a zero denominator or no observations;
//! - `Inconclusive` when a side is below the metric's `min_samples` (denominator for ratios,
//!   observations for distributions) or, for a metric judged on quantile `q`, below
//!   [`judge::quantile_min_observations`] (`10 / (1 − q)`: 1,000 for p99, so that about ten
//!   observations lie above it — p99 of 300 observations is three requests, and one slow burst
//!   moves it by tens of per cent), when the data are inconsistent (numerator above
//!   denominator, unordered buckets, different bucket layouts, the wrong kind), or when a
//!   history baseline has fewer than [`DEFAULT_MIN_RELEASES`] usable releases.
//!
//! **Pods as units.** A metric whose template names a `unit_label` (the shipped error-ratio and
//! p99 templates: `pod`) comes with each side's data per pod ([`Inputs::units`]). Against a
//! side-by-side baseline, when the pods of the sides differ beyond chance (Pearson's χ² of each
//! pod around its side's ratio, at 5 %), each side's counts are divided by its design effect
//! before the tests above, so a canary of one odd pod is not a regression while a version worse
//! on every pod still is ([`units`]); the metric's evidence carries it
//! ([`MetricEvidence::dispersion`]).
//!
//! **Many metrics.** The non-critical metrics' p-values are adjusted together with
//! Holm-Bonferroni, which keeps the chance of any false failure among them at α. Critical
//! metrics are each tested at α on their own (each is a veto).
//!
//! **The verdict** is `Fail` when any metric fails (a failing critical metric is named as
//! such), `NoData` when no metric has data, `Inconclusive` when a critical metric could not be
//! judged or fewer than half of the metrics passed, and `Pass` otherwise.
//!
//! **Baselines.** [`Baseline::SideBySide`] is the previous version's pods over the same window.
//! [`Baseline::History`] is the same service's earlier releases as [`ReleaseSummary`] values
//! (serde, bounded: counts, or histogram buckets, or at most 512 weighted points — see
//! [`MetricData::summary`]) so the graph can keep one per deployment. Per metric, releases with
//! at least `min_samples` (and the canary's buckets) are usable; with fewer than three the
//! metric is `Inconclusive`. The usable releases are pooled (counts and buckets added) and the
//! canary is tested against the pool as above; because releases also differ from one another
//! more than sampling alone explains (time of day, traffic mix), a change must also take the
//! canary's value (ratio, or the judged quantile/median) beyond every one of those releases'
//! own values to fail. The verdict and each metric say which baseline was used.

pub mod distribution;
pub mod error;
pub mod inputs;
pub mod judge;
pub mod onset;
pub mod prometheus;
pub mod sequential;
pub mod stats;
pub mod stop;
pub mod template;
pub mod units;
pub mod verdict;

pub use distribution::{Bucket, Distribution, Histogram, WeightedValue};
pub use error::{Error, Result};
pub use inputs::{Baseline, BaselineKind, Counts, Inputs, MetricData, ReleaseSummary, Units};
pub use judge::{DEFAULT_ALPHA, DEFAULT_MIN_RELEASES, Judge, judge};
pub use template::{
    Direction, DistributionInput, Metric, MetricKind, MetricSpec, Query, Selector, Template, Window,
};
pub use verdict::{
    Effect, Interval, MetricEvidence, Outcome, RenderedQuery, Side, SideSummary, TestKind, Verdict,
};
