//! Analysis templates: which metrics to compare, how to query them, which change is bad and how
//! much of it is tolerated.
//!
//! A template is YAML (unknown fields are refused, every error names its field path):
//!
//! ```yaml
//! name: http-errors
//! description: 5xx responses over all responses   # optional
//! metrics:
//!   - name: error-ratio
//!     kind: ratio                 # ratio | distribution
//!     numerator: sum(increase(http_requests_total{code=~"5..",{{selector}}}[{{window}}]))
//!     denominator: sum(increase(http_requests_total{{{selector}}}[{{window}}]))
//!     direction: increase         # increase | decrease | either: which change is bad
//!     max_increase: 0.01          # ratio: allowed move in the bad direction, in ratio units
//!     critical: true              # optional, default false
//!     min_samples: 500            # ratio: denominator count needed on each side
//!   - name: latency
//!     kind: distribution
//!     input: histogram            # histogram (default) | samples
//!     query: sum by (le) (increase(http_request_duration_seconds_bucket{{{selector}}}[{{window}}]))
//!     direction: increase
//!     allowed_change: 0.1         # distribution: allowed relative shift (0.1 = 10 %)
//!     quantile: 0.99              # optional: judge the size by this quantile, not the median shift
//!     min_samples: 200            # distribution: observations needed on each side
//!     unit_label: pod             # optional: the queries return one series per pod
//! ```
//!
//! **Queries.** PromQL with two placeholders, `{{selector}}` (required in every query: it is what
//! tells canary from baseline) and `{{window}}` (optional); any other `{{name}}` is an error. A
//! selector is the *body* of a label-matcher list, so it goes inside braces:
//! `metric{code="500",{{selector}}}` or `metric{{{selector}}}`.
//!
//! **What the queries return** (the collector that runs them is not in this crate):
//! - `ratio`: each of `numerator` and `denominator` is an instant query whose value is one count
//!   over the window (several series are summed), e.g. `sum(increase(…[{{window}}]))`.
//! - `distribution`, `input: histogram`: an instant query returning one series per `le` label
//!   whose values are the *cumulative* bucket counts over the window, as Prometheus histograms
//!   expose them (`sum by (le) (increase(…_bucket{…}[{{window}}]))`); see
//!   [`crate::Distribution::Histogram`].
//! - `distribution`, `input: samples`: a range query over the window; every point of every
//!   returned series is one observation ([`crate::Distribution::Samples`]).
//!
//! **Units.** With `unit_label: pod` (any label name but `le`), the ratio's and the histogram's
//! queries return one series per pod (`sum by (pod) (…)`, `sum by (le, pod) (…)`; each query
//! must mention the label): the judge sums them as before and also measures how much the pods
//! of each side differ beyond chance, and allows for it ([`crate::units`]). Not for
//! `input: samples`.
//!
//! **Selectors** ([`Selector::parse`]) are checked so that they cannot inject PromQL: a
//! comma-separated list of `label op "value"` where `label` matches `[A-Za-z_][A-Za-z0-9_]*` and
//! does not start with `__` (reserved labels such as `__name__` would change the metric), `op`
//! is one of `=`, `!=`, `=~`, `!~`, and `value` is double-quoted and contains no `"`, no `\` and
//! no control character. Nothing outside the quotes but names, operators, commas and spaces is
//! accepted, so a selector cannot close the brace, add an operator or start another expression.
//! It is rendered in canonical form (`app="web",pod_template_hash="5d9f"`).

use crate::error::{Error, Result, invalid};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

/// A validated analysis template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// What it checks, for people.
    pub description: Option<String>,
    /// Its metrics, in file order; names are unique.
    pub metrics: Vec<Metric>,
}

/// One metric of a template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// Unique within its template.
    pub name: String,
    /// Which change is bad.
    pub direction: Direction,
    /// A failing critical metric fails the verdict on its own.
    pub critical: bool,
    /// Minimum count on each side: the denominator for ratios, observations for distributions.
    pub min_samples: u64,
    /// The label whose values are the units (pods) the queries return one series each for
    /// (`sum by (pod) (…)`); the judge then allows for units that differ beyond chance
    /// ([`crate::units`]). `None`: the series are only summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_label: Option<String>,
    /// What is measured and how much change is tolerated.
    pub spec: MetricSpec,
}

/// The kind-specific part of a [`Metric`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricSpec {
    /// A ratio of two counts (errors over requests).
    Ratio {
        /// Query for the count of events (errors).
        numerator: Query,
        /// Query for the count of trials (requests).
        denominator: Query,
        /// Allowed move of the ratio in the bad direction, as an absolute difference of
        /// ratios (0.01 = one percentage point).
        max_increase: f64,
    },
    /// A distribution of values (latencies).
    Distribution {
        /// Query for the observations.
        query: Query,
        /// How the query's result is to be read.
        input: DistributionInput,
        /// Allowed relative shift in the bad direction (0.1 = 10 %).
        allowed_change: f64,
        /// When set, the practical size of a change is the relative change of this quantile
        /// (0.99 = p99) instead of the Hodges-Lehmann shift relative to the baseline median.
        quantile: Option<f64>,
    },
}

/// The two kinds of metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Numerator and denominator counts.
    Ratio,
    /// Observations or histogram buckets.
    Distribution,
}

/// Which change of a metric is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is worse (errors, latency).
    Increase,
    /// Lower is worse (throughput, success ratio).
    Decrease,
    /// Any change beyond the tolerance is bad.
    Either,
}

/// How a distribution query's result is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistributionInput {
    /// Cumulative Prometheus buckets, one series per `le`.
    #[default]
    Histogram,
    /// Every point of every series of a range query is one observation.
    Samples,
}

impl Metric {
    /// Ratio or distribution.
    #[must_use]
    pub fn kind(&self) -> MetricKind {
        match self.spec {
            MetricSpec::Ratio { .. } => MetricKind::Ratio,
            MetricSpec::Distribution { .. } => MetricKind::Distribution,
        }
    }

    /// The metric's queries with the selector and window filled in, as (role, PromQL) pairs:
    /// `numerator` and `denominator` for ratios, `query` for distributions.
    #[must_use]
    pub fn render(&self, selector: &Selector, window: Window) -> Vec<(&'static str, String)> {
        match &self.spec {
            MetricSpec::Ratio {
                numerator,
                denominator,
                ..
            } => vec![
                ("numerator", numerator.render(selector, window)),
                ("denominator", denominator.render(selector, window)),
            ],
            MetricSpec::Distribution { query, .. } => {
                vec![("query", query.render(selector, window))]
            }
        }
    }
}

/// A PromQL query template whose placeholders have been checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Query(String);

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    // `[^{}]` keeps `{{{selector}}}` (a brace, then the placeholder) from matching at the
    // first brace.
    #[allow(clippy::unwrap_used)] // a constant pattern, exercised by every test
    Regex::new(r"\{\{\s*([^{}]*?)\s*\}\}").unwrap()
});

impl Query {
    /// Checks a query template: not empty, only `{{selector}}` and `{{window}}` placeholders,
    /// `{{selector}}` present.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Err(invalid(field, "the query is empty"));
        }
        let mut has_selector = false;
        for cap in PLACEHOLDER.captures_iter(text) {
            match cap.get(1).map_or("", |m| m.as_str()) {
                "selector" => has_selector = true,
                "window" => {}
                other => {
                    return Err(invalid(
                        field,
                        format!(
                            "unknown placeholder `{{{{{other}}}}}` (known: `{{{{selector}}}}`, `{{{{window}}}}`)"
                        ),
                    ));
                }
            }
        }
        if !has_selector {
            return Err(invalid(
                field,
                "the query does not use `{{selector}}`, so it cannot tell canary from baseline",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The template text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the query has a `{{window}}` placeholder, so that its span can be chosen.
    #[must_use]
    pub fn uses_window(&self) -> bool {
        PLACEHOLDER
            .captures_iter(&self.0)
            .any(|cap| cap.get(1).is_some_and(|m| m.as_str() == "window"))
    }

    /// The query with the selector and window filled in.
    #[must_use]
    pub fn render(&self, selector: &Selector, window: Window) -> String {
        PLACEHOLDER
            .replace_all(&self.0, |cap: &regex::Captures<'_>| {
                match cap.get(1).map_or("", |m| m.as_str()) {
                    "selector" => selector.to_string(),
                    // Only the two known placeholders survive `parse`.
                    _ => window.to_string(),
                }
            })
            .into_owned()
    }
}

/// One `label op "value"` of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    label: String,
    op: &'static str,
    value: String,
}

/// The body of a PromQL label-matcher list, checked so that it cannot inject PromQL (the rule is
/// in the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<Matcher>);

/// Longest selector accepted, in bytes.
const MAX_SELECTOR_LEN: usize = 4096;

impl Selector {
    /// Parses `app="web",pod_template_hash=~"5d9f.*"`.
    ///
    /// # Errors
    /// [`Error::Selector`] saying what is wrong.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| Error::Selector { reason };
        if text.len() > MAX_SELECTOR_LEN {
            return Err(bad(format!("longer than {MAX_SELECTOR_LEN} bytes")));
        }
        let mut rest = text.trim_start();
        let mut matchers = Vec::new();
        loop {
            let label_len = rest
                .char_indices()
                .take_while(|&(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                })
                .count();
            if label_len == 0 {
                return Err(bad(format!("expected a label name at `{}`", preview(rest))));
            }
            let label = &rest[..label_len];
            if label.starts_with("__") {
                return Err(bad(format!(
                    "label `{label}` is reserved (names starting with `__`)"
                )));
            }
            rest = rest[label_len..].trim_start();
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .ok_or_else(|| {
                    bad(format!(
                        "expected `=`, `!=`, `=~` or `!~` after `{label}` at `{}`",
                        preview(rest)
                    ))
                })?;
            rest = rest[op.len()..].trim_start();
            let Some(quoted) = rest.strip_prefix('"') else {
                return Err(bad(format!(
                    "the value of `{label}` must be double-quoted, at `{}`",
                    preview(rest)
                )));
            };
            let Some(end) = quoted.find('"') else {
                return Err(bad(format!("the value of `{label}` has no closing quote")));
            };
            let value = &quoted[..end];
            if let Some(c) = value.chars().find(|&c| c == '\\' || c.is_control()) {
                return Err(bad(format!(
                    "the value of `{label}` contains {c:?}; backslashes and control characters are not accepted"
                )));
            }
            matchers.push(Matcher {
                label: label.to_owned(),
                op,
                value: value.to_owned(),
            });
            rest = quoted[end + 1..].trim_start();
            if rest.is_empty() {
                return Ok(Self(matchers));
            }
            let Some(after_comma) = rest.strip_prefix(',') else {
                return Err(bad(format!(
                    "expected `,` between matchers at `{}`",
                    preview(rest)
                )));
            };
            rest = after_comma.trim_start();
        }
    }
}

fn preview(s: &str) -> String {
    s.chars().take(20).collect()
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}{}\"{}\"", m.label, m.op, m.value)?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// An analysis window, written as a PromQL duration (`30s`, `5m`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window(Duration);

impl Window {
    /// A window of whole milliseconds, at least one.
    ///
    /// # Errors
    /// [`Error::Window`] when it is zero or not whole milliseconds.
    pub fn new(duration: Duration) -> Result<Self> {
        if duration.as_millis() == 0 {
            return Err(Error::Window {
                reason: "the window must be at least 1ms".into(),
            });
        }
        if !duration.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(Error::Window {
                reason: "the window must be whole milliseconds".into(),
            });
        }
        Ok(Self(duration))
    }

    /// The duration.
    #[must_use]
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units: [(u128, &str); 4] = [(3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")];
        for (size, unit) in units {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl FromStr for Window {
    type Err = Error;
    /// Reads a PromQL duration: `1h30m`, `90s`, `500ms` (units `ms s m h d w y`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Window {
            reason: format!("`{s}` is not a PromQL duration like `30s`, `5m` or `1h30m`"),
        };
        let mut total: u64 = 0;
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit_ms, len) = [
                ("ms", 1, 2),
                ("s", 1_000, 1),
                ("m", 60_000, 1),
                ("h", 3_600_000, 1),
                ("d", 86_400_000, 1),
                ("w", 604_800_000, 1),
                ("y", 31_536_000_000, 1),
            ]
            .into_iter()
            .find(|(unit, _, _)| rest.starts_with(unit))
            .map(|(_, ms, len)| (ms, len))
            .ok_or_else(bad)?;
            rest = &rest[len..];
            total = n
                .checked_mul(unit_ms)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(bad)?;
        }
        Self::new(Duration::from_millis(total))
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

// --- the file format -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    metrics: Vec<MetricFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricFile {
    name: String,
    kind: MetricKind,
    direction: Direction,
    #[serde(default)]
    critical: bool,
    min_samples: u64,
    #[serde(default)]
    numerator: Option<String>,
    #[serde(default)]
    denominator: Option<String>,
    #[serde(default)]
    max_increase: Option<f64>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    input: Option<DistributionInput>,
    #[serde(default)]
    allowed_change: Option<f64>,
    #[serde(default)]
    quantile: Option<f64>,
    #[serde(default)]
    unit_label: Option<String>,
}

static LABEL_NAME: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, exercised by every test
    Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").unwrap()
});

/// Checks a metric's `unit_label` against its kind and queries.
fn unit_label(field: &str, label: &str, spec: &MetricSpec) -> Result<()> {
    if !LABEL_NAME.is_match(label) || label.starts_with("__") {
        return Err(invalid(
            field,
            "a Prometheus label name (`[A-Za-z_][A-Za-z0-9_]*`, not starting with `__`), such as `pod`",
        ));
    }
    if label == "le" {
        return Err(invalid(
            field,
            "`le` names a histogram's buckets, not its units",
        ));
    }
    let queries: Vec<&Query> = match spec {
        MetricSpec::Ratio {
            numerator,
            denominator,
            ..
        } => vec![numerator, denominator],
        MetricSpec::Distribution {
            input: DistributionInput::Samples,
            ..
        } => {
            return Err(invalid(
                field,
                "units need counts per unit: a ratio or a histogram, not `input: samples`",
            ));
        }
        MetricSpec::Distribution { query, .. } => vec![query],
    };
    let word = Regex::new(&format!(r"\b{label}\b")).map_err(|e| invalid(field, e.to_string()))?;
    if queries.iter().any(|q| !word.is_match(q.as_str())) {
        return Err(invalid(
            field,
            format!(
                "every query of the metric must return one series per `{label}`: group by it, \
                 e.g. `sum by ({label}) (…)` (`sum by (le, {label}) (…)` for a histogram)"
            ),
        ));
    }
    Ok(())
}

impl Template {
    /// Reads and validates a template from YAML.
    ///
    /// # Errors
    /// [`Error::Parse`] when the YAML does not have the template's shape (with the field path),
    /// [`Error::Invalid`] when a value is not acceptable (naming the field): an empty or unknown
    /// name, an empty query, an unknown placeholder, a query without `{{selector}}`, a field of
    /// the other kind, a negative or non-finite tolerance, `min_samples: 0`, a duplicate metric.
    pub fn parse(yaml: &str) -> Result<Self> {
        let de = serde_norway::Deserializer::from_str(yaml);
        let file: TemplateFile =
            serde_path_to_error::deserialize(de).map_err(|e| Error::Parse {
                path: e.path().to_string(),
                source: e.into_inner(),
            })?;
        if file.name.trim().is_empty() {
            return Err(invalid("name", "the template name is empty"));
        }
        if file.metrics.is_empty() {
            return Err(invalid("metrics", "a template needs at least one metric"));
        }
        let mut seen = BTreeSet::new();
        let mut metrics = Vec::with_capacity(file.metrics.len());
        for (i, m) in file.metrics.into_iter().enumerate() {
            let at = |field: &str| format!("metrics[{i}].{field}");
            let name_ok = !m.name.is_empty()
                && m.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !name_ok {
                return Err(invalid(
                    at("name"),
                    "a metric name is one or more of `A-Z a-z 0-9 _ - .`",
                ));
            }
            if !seen.insert(m.name.clone()) {
                return Err(invalid(
                    at("name"),
                    format!("metric `{}` is defined twice", m.name),
                ));
            }
            if m.min_samples == 0 {
                return Err(invalid(at("min_samples"), "must be at least 1"));
            }
            let spec = match m.kind {
                MetricKind::Ratio => {
                    for (field, set) in [
                        ("query", m.query.is_some()),
                        ("input", m.input.is_some()),
                        ("allowed_change", m.allowed_change.is_some()),
                        ("quantile", m.quantile.is_some()),
                    ] {
                        if set {
                            return Err(invalid(at(field), "not a field of `kind: ratio` metrics"));
                        }
                    }
                    let numerator = required(&at("numerator"), m.numerator.as_deref())?;
                    let denominator = required(&at("denominator"), m.denominator.as_deref())?;
                    let max_increase = tolerance(&at("max_increase"), m.max_increase)?;
                    if max_increase >= 1.0 {
                        return Err(invalid(
                            at("max_increase"),
                            "a difference of ratios below 1 (0.01 = one percentage point)",
                        ));
                    }
                    MetricSpec::Ratio {
                        numerator,
                        denominator,
                        max_increase,
                    }
                }
                MetricKind::Distribution => {
                    for (field, set) in [
                        ("numerator", m.numerator.is_some()),
                        ("denominator", m.denominator.is_some()),
                        ("max_increase", m.max_increase.is_some()),
                    ] {
                        if set {
                            return Err(invalid(
                                at(field),
                                "not a field of `kind: distribution` metrics",
                            ));
                        }
                    }
                    let query = required(&at("query"), m.query.as_deref())?;
                    let allowed_change = tolerance(&at("allowed_change"), m.allowed_change)?;
                    if let Some(q) = m.quantile
                        && !(q > 0.0 && q < 1.0)
                    {
                        return Err(invalid(
                            at("quantile"),
                            "a quantile strictly between 0 and 1 (0.99 = p99)",
                        ));
                    }
                    MetricSpec::Distribution {
                        query,
                        input: m.input.unwrap_or_default(),
                        allowed_change,
                        quantile: m.quantile,
                    }
                }
            };
            if let Some(label) = &m.unit_label {
                unit_label(&at("unit_label"), label, &spec)?;
            }
            metrics.push(Metric {
                name: m.name,
                direction: m.direction,
                critical: m.critical,
                min_samples: m.min_samples,
                unit_label: m.unit_label,
                spec,
            });
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            metrics,
        })
    }

    /// Every metric's queries with the selector and window filled in, as (metric, role, PromQL).
    #[must_use]
    pub fn render(&self, selector: &Selector, window: Window) -> Vec<(&str, &'static str, String)> {
        self.metrics
            .iter()
            .flat_map(|m| {
                m.render(selector, window)
                    .into_iter()
                    .map(move |(role, q)| (m.name.as_str(), role, q))
            })
            .collect()
    }
}

fn required(field: &str, text: Option<&str>) -> Result<Query> {
    match text {
        Some(text) => Query::parse(field, text),
        None => Err(invalid(field, "required for this kind of metric")),
    }
}

fn tolerance(field: &str, value: Option<f64>) -> Result<f64> {
    match value {
        None => Err(invalid(field, "required for this kind of metric")),
        Some(v) if !v.is_finite() => Err(invalid(field, "must be a finite number")),
        Some(v) if v < 0.0 => Err(invalid(field, "must not be negative")),
        Some(v) => Ok(v),
    }
}

/// The templates shipped with deploygraph, as (file name, YAML).
pub const SHIPPED: [(&str, &str); 3] = [
    (
        "http-error-ratio.yaml",
        include_str!("../templates/http-error-ratio.yaml"),
    ),
    (
        "http-latency-p99.yaml",
        include_str!("../templates/http-latency-p99.yaml"),
    ),
    (
        "connection-pool-errors.yaml",
        include_str!("../templates/connection-pool-errors.yaml"),
    ),
];
