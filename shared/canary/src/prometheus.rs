//! Collecting the judge's [`Inputs`] from Prometheus' HTTP API.
//!
//! For each metric of a template, the metric's queries are rendered twice — with the canary's
//! selector and with the baseline's, over the same window — and run at one evaluation time, so
//! both sides cover the same seconds:
//!
//! - `ratio`: `numerator` and `denominator` as instant queries (`/api/v1/query`); each answer's
//!   values are summed and rounded to a whole count (`increase()` extrapolates, so counts come
//!   back fractional). A side **without a denominator series has no data**; a side with a
//!   denominator but no numerator series has **zero events** — Prometheus returns nothing for
//!   `sum(increase(http_requests_total{code=~"5.."}[5m]))` when no 5xx was ever counted, and that
//!   is the zero-error baseline the judge must see.
//! - `distribution`, `input: histogram`: an instant query; one series per `le` label holding the
//!   cumulative count (series of the same `le` are added, `le="+Inf"` is the total; without a
//!   `+Inf` series the total is the highest bucket).
//! - `distribution`, `input: samples`: a range query (`/api/v1/query_range`) over the window
//!   ending at the evaluation time, with a step of a sixtieth of the window (at least one
//!   second); every point of every series is one observation.
//!
//! **Empty answers are missing series**, which the judge reports as `NoData`; they are never an
//! error. A Prometheus that cannot be reached, that refuses a query, or whose answer is not
//! usable (over the size limit, not JSON, a count that is negative or not a number, a histogram
//! series without `le`) is an [`Error::Query`] naming the metric, the query's role, the side and
//! the PromQL. Every request is bounded by [`PrometheusConfig::timeout`] and every answer by
//! [`PrometheusConfig::max_response_bytes`].

use crate::distribution::{Bucket, Distribution, Histogram};
use crate::error::{Error, Result};
use crate::inputs::{Baseline, Counts, Inputs, MetricData, ReleaseSummary, Units};
use crate::judge::judge;
use crate::sequential::{self, SequentialEvidence};
use crate::template::{DistributionInput, Metric, MetricSpec, Selector, Template, Window};
use crate::verdict::{RenderedQuery, Side, Verdict};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default time limit of one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default size limit of one answer: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Where Prometheus is and how it is asked.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Base URL (`http://prometheus:9090`; a path prefix is kept).
    pub url: url::Url,
    /// Time limit of one query (connecting included).
    pub timeout: Duration,
    /// Size limit of one answer.
    pub max_response_bytes: usize,
}

impl PrometheusConfig {
    /// A configuration with the default timeout and size limit.
    ///
    /// # Errors
    /// [`Error::PrometheusUrl`] when `url` is not an http(s) URL with a host.
    pub fn new(url: &str) -> Result<Self> {
        let bad = |reason: String| Error::PrometheusUrl {
            url: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad("expected an http:// or https:// URL".into()));
        }
        Ok(Self {
            url: parsed,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }
}

/// Why one query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// No answer: refused connection, timeout, broken connection.
    #[error("Prometheus at {url} did not answer: {reason}")]
    Unreachable {
        /// The endpoint, without the query string.
        url: String,
        /// What happened, with its causes.
        reason: String,
    },
    /// An error answer (`"status": "error"`, or a non-2xx status).
    #[error("Prometheus refused the query ({status}, {error_type}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Prometheus' `errorType` (`bad_data` for a query that does not parse).
        error_type: String,
        /// Prometheus' `error`.
        message: String,
    },
    /// An answer over the size limit.
    #[error("Prometheus' answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A successful answer that cannot be read as this kind of metric.
    #[error("Prometheus' answer is not usable: {reason}")]
    Unusable {
        /// Why.
        reason: String,
    },
}

impl QueryFailure {
    /// Prometheus could not be reached.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Prometheus refused the query itself (`bad_data`: it does not parse or cannot be run as
    /// written): the template is to change.
    #[must_use]
    pub fn is_bad_query(&self) -> bool {
        matches!(self, Self::Refused { error_type, .. } if error_type == "bad_data")
    }
}

/// A series of an answer: its labels and its values (one for an instant vector or a scalar,
/// every point for a range).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its values, in time order.
    pub values: Vec<f64>,
    /// The time of each value (Unix seconds).
    pub times: Vec<f64>,
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ApiData {
    Vector(Vec<ApiSample>),
    Matrix(Vec<ApiRange>),
    Scalar((f64, String)),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct ApiSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct ApiRange {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

fn number(text: &str) -> Result<f64, QueryFailure> {
    // Prometheus writes special values as `NaN`, `+Inf` and `-Inf`; Rust reads all three.
    text.parse::<f64>().map_err(|_| QueryFailure::Unusable {
        reason: format!("{text:?} is not a number"),
    })
}

/// Reads a query answer into its series.
///
/// # Errors
/// [`QueryFailure::Refused`] for an error answer or a non-2xx status,
/// [`QueryFailure::Unusable`] for a body that is not a Prometheus answer or a string result.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<Series>, QueryFailure> {
    let answer: ApiAnswer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(e) if (200..300).contains(&status) => {
            return Err(QueryFailure::Unusable {
                reason: format!("not a Prometheus API answer: {e}"),
            });
        }
        Err(_) => {
            return Err(QueryFailure::Refused {
                status,
                error_type: "http".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_owned(),
            });
        }
    };
    if answer.status != "success" || !(200..300).contains(&status) {
        return Err(QueryFailure::Refused {
            status,
            error_type: answer.error_type.unwrap_or_else(|| "error".into()),
            message: answer.error.unwrap_or_else(|| "no error given".into()),
        });
    }
    let data = answer.data.ok_or_else(|| QueryFailure::Unusable {
        reason: "the answer has no data".into(),
    })?;
    match data {
        ApiData::Vector(samples) => samples
            .into_iter()
            .map(|s| {
                Ok(Series {
                    labels: s.metric,
                    values: vec![number(&s.value.1)?],
                    times: vec![s.value.0],
                })
            })
            .collect(),
        ApiData::Matrix(ranges) => ranges
            .into_iter()
            .map(|r| {
                Ok(Series {
                    labels: r.metric,
                    values: r
                        .values
                        .iter()
                        .map(|(_, v)| number(v))
                        .collect::<Result<_, _>>()?,
                    times: r.values.iter().map(|(t, _)| *t).collect(),
                })
            })
            .collect(),
        ApiData::Scalar((t, v)) => Ok(vec![Series {
            labels: BTreeMap::new(),
            values: vec![number(&v)?],
            times: vec![t],
        }]),
        ApiData::String(_) => Err(QueryFailure::Unusable {
            reason: "the query returns a string, not numbers".into(),
        }),
    }
}

/// A count: a value that is a finite number, not negative, rounded to a whole number.
fn whole(value: f64) -> Result<u64, QueryFailure> {
    if !value.is_finite() || value < 0.0 {
        return Err(QueryFailure::Unusable {
            reason: format!("{value} is not a count (a finite number, not negative)"),
        });
    }
    // `as` saturates at u64::MAX; counts that large are not real.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(value.round() as u64)
}

/// The total of a count query's answer, `None` when it has no series.
///
/// # Errors
/// [`QueryFailure::Unusable`] when a value is not a count.
pub fn count(series: &[Series]) -> Result<Option<u64>, QueryFailure> {
    if series.is_empty() {
        return Ok(None);
    }
    let mut total = 0.0_f64;
    for v in series.iter().flat_map(|s| &s.values) {
        // Each value is checked, so a NaN cannot hide in a sum.
        whole(*v)?;
        total += v;
    }
    whole(total).map(Some)
}

/// The answer's series grouped by the value of `label` (a series without it is in the group
/// of the empty value), in the label's order.
fn by_label<'a>(series: &'a [Series], label: &str) -> BTreeMap<&'a str, Vec<Series>> {
    let mut groups: BTreeMap<&str, Vec<Series>> = BTreeMap::new();
    for s in series {
        let unit = s.labels.get(label).map_or("", String::as_str);
        groups.entry(unit).or_default().push(s.clone());
    }
    groups
}

/// A ratio's counts per value of `label` (the units): each unit of the denominator's answer
/// with its numerator (0 when the numerator has no series for it, as a unit without errors has
/// none).
///
/// # Errors
/// [`QueryFailure::Unusable`] when a value is not a count.
pub fn ratio_units(
    numerator: &[Series],
    denominator: &[Series],
    label: &str,
) -> Result<Vec<Counts>, QueryFailure> {
    let numerators = by_label(numerator, label);
    by_label(denominator, label)
        .into_iter()
        .map(|(unit, series)| {
            let denominator = count(&series)?.unwrap_or(0);
            let numerator = match numerators.get(unit) {
                Some(n) => count(n)?.unwrap_or(0),
                None => 0,
            };
            Ok(Counts {
                numerator,
                denominator,
            })
        })
        .collect()
}

/// A histogram per value of `label` (the units) of a bucket query's answer.
///
/// # Errors
/// As [`histogram`], for any unit.
pub fn histogram_units(series: &[Series], label: &str) -> Result<Vec<Histogram>, QueryFailure> {
    by_label(series, label)
        .into_values()
        .filter_map(|group| histogram(&group).transpose())
        .collect()
}

/// The histogram of a bucket query's answer (one series per `le`), `None` when it has no
/// series.
///
/// # Errors
/// [`QueryFailure::Unusable`] when a series has no `le` label or an unreadable one, or a value
/// is not a count.
pub fn histogram(series: &[Series]) -> Result<Option<Histogram>, QueryFailure> {
    if series.is_empty() {
        return Ok(None);
    }
    let mut finite: Vec<(f64, f64)> = Vec::new();
    let mut infinite: Option<f64> = None;
    for s in series {
        let Some(le) = s.labels.get("le") else {
            return Err(QueryFailure::Unusable {
                reason: format!(
                    "a histogram query must return one series per `le` label (`sum by (le) (…)`); \
                     got a series with labels {:?}",
                    s.labels
                ),
            });
        };
        let bound = number(le).map_err(|_| QueryFailure::Unusable {
            reason: format!("bucket bound le={le:?} is not a number"),
        })?;
        let mut value = 0.0;
        for v in &s.values {
            whole(*v)?;
            value += v;
        }
        if bound == f64::INFINITY {
            *infinite.get_or_insert(0.0) += value;
        } else if bound.is_finite() {
            match finite.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, c)) => *c += value,
                None => finite.push((bound, value)),
            }
        } else {
            return Err(QueryFailure::Unusable {
                reason: format!("bucket bound le={le:?} is not a finite number or +Inf"),
            });
        }
    }
    finite.sort_by(|a, b| a.0.total_cmp(&b.0));
    let buckets = finite
        .iter()
        .map(|&(le, c)| {
            Ok(Bucket {
                le,
                count: whole(c)?,
            })
        })
        .collect::<Result<Vec<_>, QueryFailure>>()?;
    let count = match infinite {
        Some(total) => whole(total)?,
        None => buckets.last().map_or(0, |b| b.count),
    };
    Ok(Some(Histogram { buckets, count }))
}

/// The observations of a samples query's answer: every finite point of every series, `None`
/// when it has no points.
#[must_use]
pub fn samples(series: &[Series]) -> Option<Distribution> {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    (!values.is_empty()).then_some(Distribution::Samples(values))
}

/// The step of a samples range query over `window`: a sixtieth of it, at least one second.
#[must_use]
pub fn samples_step(window: Window) -> Duration {
    (window.duration() / 60).max(Duration::from_secs(1))
}

/// What one analysis collected: the judge's inputs (side-by-side baseline) and, per metric, the
/// queries that were run.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The canary's and the baseline's data.
    pub inputs: Inputs,
    /// Per metric name, its rendered queries in the order they ran.
    pub queries: BTreeMap<String, Vec<RenderedQuery>>,
}

/// What one selector's series measured over one window: per metric its data (a metric without
/// series is left out) and its rendered queries. A settled release's summary
/// (`deploygraph canary summarize`) and the canary's side of a history analysis.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Per metric name, what was measured.
    pub data: BTreeMap<String, MetricData>,
    /// Per metric name, its rendered queries in the order they ran.
    pub queries: BTreeMap<String, Vec<RenderedQuery>>,
}

impl Collected {
    /// The canary's measurement against a history baseline: `releases` are the service's
    /// earlier releases, most recent first.
    #[must_use]
    pub fn against_history(
        canary: Measured,
        window: Window,
        releases: Vec<ReleaseSummary>,
    ) -> Self {
        Self {
            inputs: Inputs {
                window,
                canary: canary.data,
                baseline: Baseline::History(releases),
                units: BTreeMap::new(),
            },
            queries: canary.queries,
        }
    }

    /// Whether the side-by-side baseline has a series for any metric (a history baseline: false).
    #[must_use]
    pub fn has_side_by_side_baseline(&self) -> bool {
        matches!(&self.inputs.baseline, Baseline::SideBySide(data) if !data.is_empty())
    }

    /// Judges the collected data with the default judge and puts the queries into the
    /// evidence.
    #[must_use]
    pub fn judge(&self, template: &Template) -> Verdict {
        let mut verdict = judge(&template.metrics, &self.inputs);
        verdict.attach_queries(&self.queries);
        verdict
    }
}

/// One side of one metric as measured: the whole, and per unit when the metric names a
/// `unit_label`.
#[derive(Debug, Clone)]
struct SideData {
    data: MetricData,
    units: Vec<MetricData>,
}

/// A Prometheus HTTP API client for analyses.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    config: PrometheusConfig,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

/// An HTTP client for Prometheus' API: each request bounded by `timeout`, connecting by at most
/// ten seconds of it. Every Prometheus query of deploygraph (canary analyses, the mesh topology)
/// goes through one of these and [`fetch`].
///
/// # Errors
/// When the client cannot be built.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("deploygraph/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why [`fetch`] got no answer.
#[derive(Debug)]
pub enum FetchFailure {
    /// No answer: refused connection, timeout, broken connection.
    Unreachable {
        /// The URL without its query string.
        url: String,
        /// What happened, with its causes.
        reason: String,
    },
    /// An answer over the size limit.
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

impl From<FetchFailure> for QueryFailure {
    fn from(f: FetchFailure) -> Self {
        match f {
            FetchFailure::Unreachable { url, reason } => Self::Unreachable { url, reason },
            FetchFailure::TooLarge { limit } => Self::TooLarge { limit },
        }
    }
}

/// GETs `url` and reads the answer's status and body, at most `limit` bytes of it (a larger
/// declared or received body is [`FetchFailure::TooLarge`]).
///
/// # Errors
/// [`FetchFailure`].
pub async fn fetch(
    http: &reqwest::Client,
    url: url::Url,
    limit: usize,
) -> std::result::Result<(u16, Vec<u8>), FetchFailure> {
    let mut shown = url.clone();
    shown.set_query(None);
    let unreachable = |e: reqwest::Error| FetchFailure::Unreachable {
        url: shown.to_string(),
        reason: error_chain(&e),
    };
    let mut response = http.get(url).send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(FetchFailure::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > limit {
            return Err(FetchFailure::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

fn unix_seconds(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

impl Prometheus {
    /// A client bounded by `config.timeout`.
    ///
    /// # Errors
    /// [`Error::HttpClient`] when the HTTP client cannot be built.
    pub fn new(config: PrometheusConfig) -> Result<Self> {
        let http = http_client(config.timeout).map_err(Error::HttpClient)?;
        Ok(Self { http, config })
    }

    /// Runs `/api/v1/{endpoint}` with `params`.
    async fn get(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Series>, QueryFailure> {
        let mut url = self.config.url.clone();
        let path = format!("{}/api/v1/{endpoint}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.query_pairs_mut()
            .clear()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let (status, body) = fetch(&self.http, url, self.config.max_response_bytes).await?;
        parse_answer(status, &body)
    }

    /// An instant query evaluated at `at`.
    ///
    /// # Errors
    /// [`QueryFailure`].
    pub async fn instant(&self, promql: &str, at: SystemTime) -> Result<Vec<Series>, QueryFailure> {
        self.get(
            "query",
            &[("query", promql.to_owned()), ("time", unix_seconds(at))],
        )
        .await
    }

    /// A range query over `window` ending at `end`, every `step`.
    ///
    /// # Errors
    /// [`QueryFailure`].
    pub async fn range(
        &self,
        promql: &str,
        end: SystemTime,
        window: Window,
        step: Duration,
    ) -> Result<Vec<Series>, QueryFailure> {
        let start = end.checked_sub(window.duration()).unwrap_or(UNIX_EPOCH);
        self.get(
            "query_range",
            &[
                ("query", promql.to_owned()),
                ("start", unix_seconds(start)),
                ("end", unix_seconds(end)),
                ("step", format!("{:.3}", step.as_secs_f64())),
            ],
        )
        .await
    }

    /// Collects every metric of `template` for the canary and the baseline over `window`
    /// ending at `at` (rules in the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::Query`] for the first query that failed, naming it.
    pub async fn collect(
        &self,
        template: &Template,
        canary: &Selector,
        baseline: &Selector,
        window: Window,
        at: SystemTime,
    ) -> Result<Collected> {
        let mut canary_data = BTreeMap::new();
        let mut baseline_data = BTreeMap::new();
        let mut units: BTreeMap<String, Units> = BTreeMap::new();
        let mut queries = BTreeMap::new();
        for metric in &template.metrics {
            let mut ran = Vec::new();
            for (side, selector, data) in [
                (Side::Canary, canary, &mut canary_data),
                (Side::Baseline, baseline, &mut baseline_data),
            ] {
                if let Some(d) = self
                    .side(metric, side, selector, window, at, &mut ran)
                    .await?
                {
                    data.insert(metric.name.clone(), d.data);
                    if metric.unit_label.is_some() {
                        let entry = units.entry(metric.name.clone()).or_default();
                        match side {
                            Side::Canary => entry.canary = d.units,
                            Side::Baseline => entry.baseline = d.units,
                        }
                    }
                }
            }
            queries.insert(metric.name.clone(), ran);
        }
        Ok(Collected {
            inputs: Inputs {
                window,
                canary: canary_data,
                baseline: Baseline::SideBySide(baseline_data),
                units,
            },
            queries,
        })
    }

    /// The sequential test since the run's start ([`crate::sequential`]) of every metric of
    /// `template` that gets it: its counts on both sides over `since` (the run so far) ending
    /// at `at`, measured with the same queries and rules as [`Self::collect`], and tested at
    /// [`crate::sequential::ALPHA`]. Empty when no metric gets the test (no query is run).
    ///
    /// # Errors
    /// [`Error::Query`] for the first query that failed, naming it.
    pub async fn sequential(
        &self,
        template: &Template,
        canary: &Selector,
        baseline: &Selector,
        since: Window,
        at: SystemTime,
    ) -> Result<Vec<(String, SequentialEvidence)>> {
        let mut tests = Vec::new();
        for metric in template.metrics.iter().filter(|m| sequential::applies(m)) {
            let mut ran = Vec::new();
            let c = self
                .side(metric, Side::Canary, canary, since, at, &mut ran)
                .await?;
            let b = self
                .side(metric, Side::Baseline, baseline, since, at, &mut ran)
                .await?;
            let (c, c_units) = c.map(|d| (d.data, d.units)).unzip();
            let (b, b_units) = b.map(|d| (d.data, d.units)).unzip();
            let units = metric.unit_label.is_some().then(|| Units {
                canary: c_units.unwrap_or_default(),
                baseline: b_units.unwrap_or_default(),
            });
            if let Some(mut evidence) = sequential::test(
                metric,
                since,
                c.as_ref(),
                b.as_ref(),
                units.as_ref(),
                sequential::ALPHA,
            ) {
                evidence.queries = ran;
                tests.push((metric.name.clone(), evidence));
            }
        }
        Ok(tests)
    }

    /// Judges `collected` ([`Collected::judge`]) and, for an analysis `since` its run started
    /// (`None` at the run's first analysis, or when the caller cannot tell runs apart) against
    /// a side-by-side baseline with series, applies [`Self::sequential`] to the verdict
    /// ([`sequential::apply`]): what every analysis of a run does (`canary analyze`, `serve`'s
    /// rollout analyses, the hooks' runs).
    ///
    /// # Errors
    /// [`Error::Query`] for the first query of the sequential test that failed.
    pub async fn judge_run(
        &self,
        collected: &Collected,
        template: &Template,
        (canary, baseline): (&Selector, &Selector),
        since: Option<Window>,
        at: SystemTime,
    ) -> Result<Verdict> {
        let mut verdict = collected.judge(template);
        if let Some(since) = since
            && collected.has_side_by_side_baseline()
        {
            let tests = self
                .sequential(template, canary, baseline, since, at)
                .await?;
            sequential::apply(&mut verdict, tests);
        }
        Ok(verdict)
    }

    /// Measures every metric of `template` on one `side` (`selector`) over `window` ending at
    /// `at`, with the same queries and rules as [`Self::collect`].
    ///
    /// # Errors
    /// [`Error::Query`] for the first query that failed, naming it.
    pub async fn measure(
        &self,
        template: &Template,
        selector: &Selector,
        side: Side,
        window: Window,
        at: SystemTime,
    ) -> Result<Measured> {
        let mut data = BTreeMap::new();
        let mut queries = BTreeMap::new();
        for metric in &template.metrics {
            let mut ran = Vec::new();
            if let Some(d) = self
                .side(metric, side, selector, window, at, &mut ran)
                .await?
            {
                data.insert(metric.name.clone(), d.data);
            }
            queries.insert(metric.name.clone(), ran);
        }
        Ok(Measured { data, queries })
    }

    /// One side of one metric, with its units when the metric names a `unit_label`; `None`
    /// when it has no series.
    async fn side(
        &self,
        metric: &Metric,
        side: Side,
        selector: &Selector,
        window: Window,
        at: SystemTime,
        ran: &mut Vec<RenderedQuery>,
    ) -> Result<Option<SideData>> {
        let failed = |role: &str, promql: &str, source: QueryFailure| Error::Query {
            metric: metric.name.clone(),
            role: role.to_owned(),
            side,
            query: promql.to_owned(),
            source: Box::new(source),
        };
        let rendered = metric.render(selector, window);
        for (role, promql) in &rendered {
            ran.push(RenderedQuery {
                side,
                role: (*role).to_owned(),
                promql: promql.clone(),
            });
        }
        let query = |role: &str| {
            rendered
                .iter()
                .find(|(r, _)| *r == role)
                .map_or("", |(_, q)| q.as_str())
        };
        match &metric.spec {
            MetricSpec::Ratio { .. } => {
                let (num_q, den_q) = (query("numerator"), query("denominator"));
                let den_series = self
                    .instant(den_q, at)
                    .await
                    .map_err(|e| failed("denominator", den_q, e))?;
                let den = count(&den_series).map_err(|e| failed("denominator", den_q, e))?;
                let num_series = self
                    .instant(num_q, at)
                    .await
                    .map_err(|e| failed("numerator", num_q, e))?;
                let num = count(&num_series).map_err(|e| failed("numerator", num_q, e))?;
                let units = match &metric.unit_label {
                    Some(label) => ratio_units(&num_series, &den_series, label)
                        .map_err(|e| failed("denominator", den_q, e))?
                        .into_iter()
                        .map(MetricData::Ratio)
                        .collect(),
                    None => Vec::new(),
                };
                Ok(den.map(|denominator| SideData {
                    data: MetricData::Ratio(Counts {
                        numerator: num.unwrap_or(0),
                        denominator,
                    }),
                    units,
                }))
            }
            MetricSpec::Distribution { input, .. } => {
                let q = query("query");
                let (data, units) = match input {
                    DistributionInput::Histogram => {
                        let series = self
                            .instant(q, at)
                            .await
                            .map_err(|e| failed("query", q, e))?;
                        let whole = histogram(&series).map_err(|e| failed("query", q, e))?;
                        let units = match &metric.unit_label {
                            Some(label) => histogram_units(&series, label)
                                .map_err(|e| failed("query", q, e))?
                                .into_iter()
                                .map(|h| MetricData::Distribution(Distribution::Histogram(h)))
                                .collect(),
                            None => Vec::new(),
                        };
                        (whole.map(Distribution::Histogram), units)
                    }
                    DistributionInput::Samples => (
                        self.range(q, at, window, samples_step(window))
                            .await
                            .map(|s| samples(&s))
                            .map_err(|e| failed("query", q, e))?,
                        Vec::new(),
                    ),
                };
                Ok(data.map(|d| SideData {
                    data: MetricData::Distribution(d),
                    units,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Vec<Series> {
        parse_answer(200, json.as_bytes()).expect("an answer")
    }

    #[test]
    fn an_empty_vector_is_a_missing_series_not_an_error() {
        let s = answer(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert_eq!(count(&s).expect("read"), None);
        assert_eq!(histogram(&s).expect("read"), None);
        assert_eq!(samples(&s), None);
    }

    #[test]
    fn counts_are_summed_over_series_and_rounded() {
        let s = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"code":"500"},"value":[1,"10.4"]},
                {"metric":{"code":"503"},"value":[1,"2.3"]}]}}"#,
        );
        assert_eq!(count(&s).expect("read"), Some(13));
        let scalar =
            answer(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"7"]}}"#);
        assert_eq!(count(&scalar).expect("read"), Some(7));
    }

    #[test]
    fn a_count_that_is_not_a_number_is_refused() {
        for v in ["NaN", "-3", "+Inf"] {
            let s = answer(&format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{v}"]}}]}}}}"#
            ));
            let e = count(&s).expect_err(v);
            assert!(e.to_string().contains("not a count"), "{e}");
        }
    }

    #[test]
    fn buckets_become_a_histogram_with_the_inf_bucket_as_its_count() {
        let s = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"le":"+Inf"},"value":[1,"100"]},
                {"metric":{"le":"0.1"},"value":[1,"60.2"]},
                {"metric":{"le":"0.05"},"value":[1,"30"]},
                {"metric":{"le":"0.1"},"value":[1,"10"]}]}}"#,
        );
        let h = histogram(&s).expect("read").expect("some");
        assert_eq!(
            h,
            Histogram {
                buckets: vec![
                    Bucket {
                        le: 0.05,
                        count: 30
                    },
                    Bucket { le: 0.1, count: 70 }
                ],
                count: 100
            }
        );
    }

    #[test]
    fn ratio_units_pair_each_pod_with_its_numerator() {
        let den = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"pod":"web-a"},"value":[1,"1000"]},
                {"metric":{"pod":"web-b"},"value":[1,"500.4"]}]}}"#,
        );
        // web-b served no 5xx: no numerator series for it; a numerator-only pod is not a unit.
        let num = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"pod":"web-a"},"value":[1,"12"]},
                {"metric":{"pod":"web-gone"},"value":[1,"3"]}]}}"#,
        );
        let units = ratio_units(&num, &den, "pod").expect("read");
        assert_eq!(
            units,
            vec![
                Counts {
                    numerator: 12,
                    denominator: 1000
                },
                Counts {
                    numerator: 0,
                    denominator: 500
                }
            ]
        );
        // Series without the label are one unit.
        let one = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{},"value":[1,"40"]}]}}"#,
        );
        assert_eq!(ratio_units(&[], &one, "pod").expect("read").len(), 1);
    }

    #[test]
    fn histogram_units_are_one_histogram_per_pod() {
        let s = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"le":"+Inf","pod":"a"},"value":[1,"100"]},
                {"metric":{"le":"0.1","pod":"a"},"value":[1,"90"]},
                {"metric":{"le":"+Inf","pod":"b"},"value":[1,"50"]},
                {"metric":{"le":"0.1","pod":"b"},"value":[1,"20"]}]}}"#,
        );
        let units = histogram_units(&s, "pod").expect("read");
        assert_eq!(units.len(), 2);
        assert_eq!((units[0].count, units[0].buckets[0].count), (100, 90));
        assert_eq!((units[1].count, units[1].buckets[0].count), (50, 20));
        // The whole is still every series summed per `le`.
        let whole = histogram(&s).expect("read").expect("some");
        assert_eq!((whole.count, whole.buckets[0].count), (150, 110));
    }

    #[test]
    fn a_histogram_series_without_le_is_refused() {
        let s = answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"1"]}]}}"#,
        );
        let e = histogram(&s).expect_err("no le");
        assert!(e.to_string().contains("`le`"), "{e}");
    }

    #[test]
    fn every_point_of_a_range_is_a_sample() {
        let s = answer(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"pod":"a"},"values":[[1,"0.1"],[2,"0.2"]]},
                {"metric":{"pod":"b"},"values":[[1,"NaN"],[2,"0.3"]]}]}}"#,
        );
        assert_eq!(
            samples(&s),
            Some(Distribution::Samples(vec![0.1, 0.2, 0.3]))
        );
    }

    #[test]
    fn an_error_answer_says_what_prometheus_said() {
        let e = parse_answer(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#,
        )
        .expect_err("refused");
        assert!(e.is_bad_query());
        assert!(e.to_string().contains("parse error"), "{e}");
        let e = parse_answer(502, b"<html>bad gateway</html>").expect_err("refused");
        assert!(
            !e.is_bad_query() && e.to_string().contains("bad gateway"),
            "{e}"
        );
        let e = parse_answer(200, b"not json").expect_err("unusable");
        assert!(e.to_string().contains("not a Prometheus API answer"), "{e}");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(PrometheusConfig::new("http://127.0.0.1:9090/prom").is_ok());
        for bad in ["ftp://x", "localhost:9090", ""] {
            assert!(PrometheusConfig::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_samples_step_is_a_sixtieth_of_the_window_at_least_a_second() {
        let w = |s: &str| s.parse::<Window>().expect("window");
        assert_eq!(samples_step(w("1h")), Duration::from_secs(60));
        assert_eq!(samples_step(w("10s")), Duration::from_secs(1));
    }
}
