//! When an alert's metric began to move: the evidence an SRE reads first after an incident
//! ("the error ratio left its level at 14:02; what landed at 14:01?").
//!
//! An alert from Prometheus carries its rule's expression in `generatorURL` (`g0.expr`). The
//! rule is nearly always a comparison (`rate(errors[5m]) / rate(requests[5m]) > 0.05`); the
//! alert starts when the comparison has held for the rule's `for:`, often many minutes after
//! the metric itself began to move. So the comparison is taken off ([`metric_of`]) and the
//! metric is read over the window before the alert (a range query), the series of the alert's
//! own labels is chosen, and [`detect`] finds where the episode that ended in the alert began.
//!
//! **The detector.** The series is described by a baseline — a parabola, which absorbs a slow
//! drift and the part of a daily cycle a few hours show — up to an unknown break, and after it
//! by one of two episodes: a line of its own (a step, with or without a slope) or a line that
//! starts where the baseline was (a ramp). The break and episode with the lowest Bayesian
//! information criterion are kept when they beat the baseline alone over the whole window, the
//! series moved toward the alert's side of the comparison (up for `>`), and the level at the
//! end lies more than two noise deviations (of the baseline's residuals) from the level at the
//! break. Everything is computed from prefix sums, so every break point is tried in linear
//! time.

use crate::prometheus::{Prometheus, QueryFailure, Series};
use crate::template::Window;
use chrono::{DateTime, TimeZone, Utc};
use deploygraph_model::{MetricOnset, ServiceMetric};
use promql_parser::parser::{self, Expr};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Points read at most: the step is the window over this, at least [`MIN_STEP`].
pub const MAX_POINTS: u32 = 720;
/// The finest step read.
pub const MIN_STEP: Duration = Duration::from_secs(1);
/// How long after the alert's start the metric is read too (when that time has passed): an
/// alert whose rule has no `for:` starts as its metric crosses the threshold, and the points
/// after it show which level the metric moved to.
pub const AFTER_ALERT: Duration = Duration::from_secs(300);
/// Points on each side of a break at least.
const MIN_SEGMENT: usize = 4;
/// The level at the end must lie this many noise deviations beyond the level at the break.
const MIN_SHIFT_SIGMAS: f64 = 2.0;

/// Which way the alert's metric goes when it is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `>` / `>=`: higher is worse.
    Up,
    /// `<` / `<=`: lower is worse.
    Down,
    /// No comparison, or `==` / `!=`: either way.
    Either,
}

/// The metric to read for an alert rule's expression.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMetric {
    /// PromQL of the metric (the expression without its comparison).
    pub query: String,
    /// Which way is bad.
    pub direction: Direction,
}

/// The rule's expression in an Alertmanager `generatorURL` (`…/graph?g0.expr=…`).
pub fn expression_of(generator_url: &str) -> Option<String> {
    let url = url::Url::parse(generator_url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "g0.expr")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
}

fn unparen(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    expr
}

fn is_number(expr: &Expr) -> bool {
    match unparen(expr) {
        Expr::NumberLiteral(_) => true,
        Expr::Unary(u) => is_number(&u.expr),
        _ => false,
    }
}

/// The metric an alert rule compares: `lhs` of `lhs > 0.05` (and `rhs` of `0.05 < rhs`),
/// `lhs - (rhs)` when both sides are series, the left operand of a top-level `and` / `unless`
/// (the extra conditions of a rule), the expression itself when it compares nothing.
///
/// # Errors
/// The parser's message when `expression` is not PromQL; a message when it is a `bool`
/// comparison or a number.
pub fn metric_of(expression: &str) -> Result<AlertMetric, String> {
    let parsed = parser::parse(expression)?;
    let mut expr = unparen(&parsed);
    // `a > 1 and on() b` / `a unless b`: the rule's condition is the left operand.
    while let Expr::Binary(b) = expr {
        let op = b.op.to_string();
        if op == "and" || op == "unless" {
            expr = unparen(&b.lhs);
        } else {
            break;
        }
    }
    if let Expr::Binary(b) = expr
        && b.op.is_comparison_operator()
    {
        if b.return_bool() {
            return Err("a `bool` comparison gives 0 or 1, not the metric".to_owned());
        }
        let op = b.op.to_string();
        let up = match op.as_str() {
            ">" | ">=" => Some(Direction::Up),
            "<" | "<=" => Some(Direction::Down),
            _ => None,
        };
        let flip = |d: Direction| match d {
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
            Direction::Either => Direction::Either,
        };
        let (query, direction) = match (is_number(&b.lhs), is_number(&b.rhs)) {
            (false, true) => (b.lhs.to_string(), up.unwrap_or(Direction::Either)),
            (true, false) => (b.rhs.to_string(), up.map_or(Direction::Either, flip)),
            (false, false) => (
                format!("({}) - ({})", b.lhs, b.rhs),
                up.unwrap_or(Direction::Either),
            ),
            (true, true) => return Err("the rule compares two numbers".to_owned()),
        };
        return Ok(AlertMetric { query, direction });
    }
    if is_number(expr) {
        return Err("the rule's expression is a number".to_owned());
    }
    Ok(AlertMetric {
        query: expr.to_string(),
        direction: Direction::Either,
    })
}

/// Where the episode that ended in the alert began, in a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Index of the first point after the break.
    pub start: usize,
    /// The level before the break (the left line's value at the break).
    pub before: f64,
    /// The level at the end (the right line's value at the last point).
    pub at_end: f64,
}

/// Sums over a range of points for least-squares polynomials of degree 1 and 2.
#[derive(Clone, Copy, Default)]
struct Sums {
    /// Σ t^k, k = 0..=4.
    t: [f64; 5],
    /// Σ y t^k, k = 0..=2.
    y: [f64; 3],
    yy: f64,
}

impl Sums {
    fn add(self, t: f64, y: f64) -> Self {
        let mut out = self;
        let mut p = 1.0;
        for k in 0..5 {
            out.t[k] += p;
            if k < 3 {
                out.y[k] += y * p;
            }
            p *= t;
        }
        out.yy += y * y;
        out
    }

    fn minus(self, o: Self) -> Self {
        let mut out = self;
        for k in 0..5 {
            out.t[k] -= o.t[k];
        }
        for k in 0..3 {
            out.y[k] -= o.y[k];
        }
        out.yy -= o.yy;
        out
    }

    /// The least-squares polynomial of `degree` (1 or 2): its coefficients (constant first)
    /// and residual sum of squares. Fewer points than coefficients fit exactly.
    fn fit(self, degree: usize) -> ([f64; 3], f64) {
        let m = degree + 1;
        if self.t[0] < m as f64 + 0.5 {
            let mean = if self.t[0] > 0.5 {
                self.y[0] / self.t[0]
            } else {
                0.0
            };
            return ([mean, 0.0, 0.0], 0.0);
        }
        // Normal equations A c = b, A[i][j] = Σ t^(i+j), b[i] = Σ y t^i; Gaussian elimination.
        let mut a = [[0.0; 4]; 3];
        for (i, row) in a.iter_mut().enumerate().take(m) {
            for (j, cell) in row.iter_mut().enumerate().take(m) {
                *cell = self.t[i + j];
            }
            row[3] = self.y[i];
        }
        for col in 0..m {
            let pivot = (col..m)
                .max_by(|i, j| a[*i][col].abs().total_cmp(&a[*j][col].abs()))
                .unwrap_or(col);
            a.swap(col, pivot);
            if a[col][col].abs() < 1e-12 {
                // Degenerate (all points at one time): the mean.
                let mean = self.y[0] / self.t[0];
                let sse = (self.yy - self.t[0] * mean * mean).max(0.0);
                return ([mean, 0.0, 0.0], sse);
            }
            for row in col + 1..m {
                let f = a[row][col] / a[col][col];
                let pivot_row = a[col];
                for (k, p) in pivot_row.iter().enumerate().skip(col) {
                    a[row][k] -= f * p;
                }
            }
        }
        let mut c = [0.0; 3];
        for row in (0..m).rev() {
            let tail: f64 = (row + 1..m).map(|k| a[row][k] * c[k]).sum();
            c[row] = (a[row][3] - tail) / a[row][row];
        }
        let explained: f64 = (0..m).map(|k| c[k] * self.y[k]).sum();
        (c, (self.yy - explained).max(0.0))
    }

    /// The least-squares line through (`t0`, `y0`) (its slope) and its residual sum of squares:
    /// the episode continuing the baseline from the break, as a ramp does.
    fn hinge(self, t0: f64, y0: f64) -> (f64, f64) {
        // With u = t - t0 and r = y - y0: slope = Σ r u / Σ u², SSE = Σ r² - slope Σ r u.
        let [n, st, stt, ..] = self.t;
        let [sy, syt, _] = self.y;
        let suu = stt - 2.0 * t0 * st + n * t0 * t0;
        let sru = syt - t0 * sy - y0 * st + n * y0 * t0;
        let srr = self.yy - 2.0 * y0 * sy + n * y0 * y0;
        if suu <= 1e-12 {
            return (0.0, srr.max(0.0));
        }
        let slope = sru / suu;
        (slope, (srr - slope * sru).max(0.0))
    }
}

fn value(c: &[f64; 3], t: f64) -> f64 {
    c[0] + c[1] * t + c[2] * t * t
}

/// Finds where the episode that ends at the last point began (rules in the
/// [module docs](self)); `points` are (time in any unit, value), in time order. `None` when no
/// break stands out.
pub fn detect(points: &[(f64, f64)], direction: Direction) -> Option<Episode> {
    let n = points.len();
    if n < 2 * MIN_SEGMENT + 1 {
        return None;
    }
    // Standardised values and times, so that the sums keep their precision whatever the
    // metric's unit.
    let mean = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let sd = (points.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    if !sd.is_finite() || sd <= f64::EPSILON * mean.abs().max(1.0) {
        return None;
    }
    let t0 = points[0].0;
    let span = (points[n - 1].0 - t0).max(f64::EPSILON);
    let z: Vec<(f64, f64)> = points
        .iter()
        .map(|(t, y)| ((t - t0) / span, (y - mean) / sd))
        .collect();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(Sums::default());
    for (t, y) in &z {
        let last = prefix[prefix.len() - 1];
        prefix.push(last.add(*t, *y));
    }
    let all = prefix[n];
    // The baseline bends (a daily cycle over hours is nearly a parabola); the episode after
    // the break is a line (a step, a ramp, or both).
    let nf = n as f64;
    let floor = 1e-9 * nf;
    // Bayesian information criterion of a residual sum of squares with `extra` parameters
    // beyond the baseline's.
    let bic = |sse: f64, extra: f64| nf * (sse + floor).ln() + extra * nf.ln();
    let (_, sse_one) = all.fit(2);
    // Per break point, two episodes: a line of its own after it (a step, with or without a
    // slope: the break, a level and a slope) and a line that starts where the baseline was (a
    // ramp: the break and a slope).
    let mut best: Option<(usize, bool, f64)> = None;
    for (k, head) in prefix
        .iter()
        .enumerate()
        .take(n - MIN_SEGMENT + 1)
        .skip(MIN_SEGMENT)
    {
        let (left, sse_left) = head.fit(2);
        let tail = all.minus(*head);
        let (_, jump) = tail.fit(1);
        let (_, ramp) = tail.hinge(z[k].0, value(&left, z[k].0));
        for (is_ramp, score) in [
            (false, bic(sse_left + jump, 3.0)),
            (true, bic(sse_left + ramp, 2.0)),
        ] {
            if best.is_none_or(|(_, _, b)| score < b) {
                best = Some((k, is_ramp, score));
            }
        }
    }
    let (k, is_ramp, score) = best?;
    if score >= bic(sse_one, 0.0) {
        return None;
    }
    let (left, sse_left) = prefix[k].fit(2);
    let before = value(&left, z[k].0);
    let tail = all.minus(prefix[k]);
    let at_end = if is_ramp {
        let (slope, _) = tail.hinge(z[k].0, before);
        before + slope * (z[n - 1].0 - z[k].0)
    } else {
        value(&tail.fit(1).0, z[n - 1].0)
    };
    let shift = at_end - before;
    let moved = match direction {
        Direction::Up => shift > 0.0,
        Direction::Down => shift < 0.0,
        Direction::Either => true,
    };
    // The noise before the break; a flat series before it (an error counter at zero) has none,
    // and any departure from it stands out.
    let noise = (sse_left / (k as f64 - 3.0).max(1.0)).sqrt();
    if !moved || shift.abs() <= MIN_SHIFT_SIGMAS * noise {
        return None;
    }
    Some(Episode {
        start: k,
        before: before * sd + mean,
        at_end: at_end * sd + mean,
    })
}

/// The series among `series` that belongs to an alert with `labels`: every label the series
/// and the alert both have is equal (`__name__` aside). One series is the alert's whatever its
/// labels; among several, the one that agrees with the alert on the most labels.
pub fn series_of<'a>(
    series: &'a [Series],
    labels: &BTreeMap<String, String>,
) -> Option<&'a Series> {
    if series.len() == 1 {
        return series.first();
    }
    series
        .iter()
        .filter_map(|s| {
            let mut shared = 0;
            for (k, v) in &s.labels {
                if k == "__name__" {
                    continue;
                }
                match labels.get(k) {
                    Some(a) if a == v => shared += 1,
                    Some(_) => return None,
                    None => {}
                }
            }
            Some((shared, s))
        })
        .max_by_key(|(shared, _)| *shared)
        .map(|(_, s)| s)
}

fn time_of(seconds: f64) -> Option<DateTime<Utc>> {
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round() as u32;
    Utc.timestamp_opt(whole as i64, nanos.min(999_999_999))
        .single()
}

/// What is read for an alert that started at `alert_start`, at `now`: from `window` before
/// it to [`AFTER_ALERT`] after it (or `now`, when sooner), every `step` (at most
/// [`MAX_POINTS`] points, at least [`MIN_STEP`] apart). Returns (end, span, step).
pub fn read_span(
    alert_start: DateTime<Utc>,
    window: Duration,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Duration, Duration) {
    let after = (now - alert_start)
        .to_std()
        .unwrap_or_default()
        .min(AFTER_ALERT);
    // Whole milliseconds, as a range query takes them.
    let span =
        Duration::from_millis(u64::try_from((window + after).as_millis()).unwrap_or(u64::MAX));
    let step = Duration::from_millis(
        u64::try_from((span / MAX_POINTS).as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
    )
    .max(MIN_STEP);
    let end = alert_start + chrono::Duration::from_std(after).unwrap_or_default();
    (end, span, step)
}

/// The onset in the alert's series ([`series_of`]) of what a range query of `metric` answered
/// ([`read_span`]), for an alert that started at `alert_start`.
pub fn onset_in(
    metric: &AlertMetric,
    chosen: Option<&Series>,
    alert_start: DateTime<Utc>,
) -> MetricOnset {
    let not_found = |reason: String| MetricOnset::NotFound { reason };
    let Some(chosen) = chosen else {
        return not_found(format!(
            "`{}` has no series of the alert's labels before it",
            metric.query
        ));
    };
    let points: Vec<(f64, f64)> = chosen
        .times
        .iter()
        .copied()
        .zip(chosen.values.iter().copied())
        .filter(|(_, v)| v.is_finite())
        .collect();
    let Some(episode) = detect(&points, metric.direction) else {
        return not_found(format!(
            "`{}` shows no change that stands out from its noise before the alert",
            metric.query
        ));
    };
    let Some(at) = time_of(points[episode.start].0) else {
        return not_found("Prometheus answered a time out of range".into());
    };
    // A break found in the minutes after the alert is where the metric settled, not where it
    // began to move: the alert's start is the latest it can have begun.
    MetricOnset::Found {
        at: at.min(alert_start),
        query: metric.query.clone(),
        before: episode.before,
        at_alert: episode.at_end,
    }
}

/// The metric of the rule expression an alert's `generatorURL` names.
///
/// # Errors
/// Why there is none ([`MetricOnset::NotFound`]).
pub fn alert_metric(generator_url: Option<&str>) -> Result<AlertMetric, MetricOnset> {
    let Some(expression) = generator_url.and_then(expression_of) else {
        return Err(MetricOnset::NotFound {
            reason: "the alert names no rule expression (generatorURL g0.expr)".into(),
        });
    };
    metric_of(&expression).map_err(|e| MetricOnset::NotFound {
        reason: format!("the rule expression cannot be read: {e}"),
    })
}

/// Reads an alert's metric onset from Prometheus, over `window` before the alert's start and
/// up to [`AFTER_ALERT`] after it ([`read_span`]): `Ok(Some)` with what was found (or why
/// nothing can be: no expression, one the parser refuses, no series of the alert's labels, no
/// break), `Ok(None)` when the alert's series shows no break yet but the alert started less
/// than [`AFTER_ALERT`] ago (a rule without `for:` fires as its metric moves: the points after
/// it are still to come, so ask again later), `Err` when Prometheus could not answer (ask
/// again later).
///
/// # Errors
/// [`QueryFailure`] when Prometheus is unreachable or refuses the range query for a reason
/// other than the query itself.
pub async fn read_onset(
    prometheus: &Prometheus,
    generator_url: Option<&str>,
    labels: &BTreeMap<String, String>,
    alert_start: DateTime<Utc>,
    window: Duration,
) -> Result<Option<MetricOnset>, QueryFailure> {
    let metric = match alert_metric(generator_url) {
        Ok(m) => m,
        Err(none) => return Ok(Some(none)),
    };
    let now = Utc::now();
    let series = match read_around(prometheus, &metric.query, alert_start, window, now).await? {
        Around::Series(series) => series,
        Around::ShortWindow => {
            return Ok(Some(MetricOnset::NotFound {
                reason: "the attribution window is shorter than a millisecond".into(),
            }));
        }
        Around::Refused(e) => {
            return Ok(Some(MetricOnset::NotFound {
                reason: format!("Prometheus refused `{}`: {e}", metric.query),
            }));
        }
    };
    let chosen = series_of(&series, labels);
    let onset = onset_in(&metric, chosen, alert_start);
    let young = (now - alert_start).to_std().unwrap_or_default() < AFTER_ALERT;
    if young && matches!(onset, MetricOnset::NotFound { .. }) && chosen.is_some() {
        return Ok(None);
    }
    Ok(Some(onset))
}

/// The query a service health template gives for a service: `$service` where its name goes,
/// `$namespace` its namespace (empty when it has none) and `$cluster` the cluster it runs in
/// (`default` when none was named), each inside a label matcher's quotes and escaped as a
/// PromQL string. With one graph over many clusters, `cluster="$cluster"` keeps two clusters'
/// `api` apart.
pub fn service_query(template: &str, service: &str, namespace: &str, cluster: &str) -> String {
    let escaped = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    template
        .replace("$service", &escaped(service))
        .replace("$namespace", &escaped(namespace))
        .replace("$cluster", &escaped(cluster))
}

/// What a service's health metric (`query`, one series whose rise means harm: an error ratio,
/// a latency) did over `window` before an alert that started at `alert_start` ([`read_span`],
/// [`detect`]): [`ServiceMetric::Moved`] when it rose and stayed up, `Steady`, or `NoSeries`
/// when Prometheus has none (or refuses the query: the template is wrong for this service).
/// Of several series, the first is read.
///
/// # Errors
/// [`QueryFailure`] when Prometheus is unreachable or refuses the range query for a reason
/// other than the query itself (ask again later).
pub async fn read_service_metric(
    prometheus: &Prometheus,
    query: &str,
    alert_start: DateTime<Utc>,
    window: Duration,
) -> Result<ServiceMetric, QueryFailure> {
    match read_around(prometheus, query, alert_start, window, Utc::now()).await? {
        Around::Series(series) => Ok(service_metric_in(query, series.first(), alert_start)),
        Around::ShortWindow | Around::Refused(_) => Ok(ServiceMetric::NoSeries),
    }
}

/// What a range query of `query` around an alert ([`read_span`]) gave.
enum Around {
    /// Its series.
    Series(Vec<Series>),
    /// The window is shorter than a millisecond: nothing to read.
    ShortWindow,
    /// Prometheus refused the query itself.
    Refused(QueryFailure),
}

/// `query` over [`read_span`] of an alert that started at `alert_start`, at `now`.
///
/// # Errors
/// [`QueryFailure`] when Prometheus is unreachable or refuses for another reason than the
/// query itself.
async fn read_around(
    prometheus: &Prometheus,
    query: &str,
    alert_start: DateTime<Utc>,
    window: Duration,
    now: DateTime<Utc>,
) -> Result<Around, QueryFailure> {
    let (end, span, step) = read_span(alert_start, window, now);
    let Ok(span) = Window::new(span) else {
        return Ok(Around::ShortWindow);
    };
    match prometheus
        .range(query, SystemTime::from(end), span, step)
        .await
    {
        Ok(series) => Ok(Around::Series(series)),
        Err(e) if e.is_bad_query() => Ok(Around::Refused(e)),
        Err(e) => Err(e),
    }
}

/// [`read_service_metric`]'s reading of a range query's first series.
pub fn service_metric_in(
    query: &str,
    series: Option<&Series>,
    alert_start: DateTime<Utc>,
) -> ServiceMetric {
    let metric = AlertMetric {
        query: query.to_owned(),
        direction: Direction::Up,
    };
    if series.is_none_or(|s| s.values.iter().all(|v| !v.is_finite())) {
        return ServiceMetric::NoSeries;
    }
    match onset_in(&metric, series, alert_start) {
        MetricOnset::Found {
            at,
            before,
            at_alert,
            ..
        } => ServiceMetric::Moved {
            at,
            before,
            at_alert,
        },
        MetricOnset::NotFound { .. } => ServiceMetric::Steady,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn service_queries_fill_the_name_the_namespace_and_the_cluster_escaped() {
        let template = r#"sum(rate(http_requests_total{service="$service",namespace="$namespace",cluster="$cluster",code=~"5.."}[5m]))"#;
        assert_eq!(
            service_query(template, "api", "prod", "eu-west-1"),
            r#"sum(rate(http_requests_total{service="api",namespace="prod",cluster="eu-west-1",code=~"5.."}[5m]))"#
        );
        assert_eq!(
            service_query(
                r#"up{job="$service",ns="$namespace"}"#,
                r#"a"b\c"#,
                "",
                "default"
            ),
            r#"up{job="a\"b\\c",ns=""}"#
        );
    }

    fn noisy(n: usize, seed: u64, f: impl Fn(usize) -> f64, sigma: f64) -> Vec<(f64, f64)> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                // A sum of uniforms: roughly normal noise of standard deviation `sigma`.
                let e: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                (i as f64 * 30.0, f(i) + sigma * e)
            })
            .collect()
    }

    #[test]
    fn metric_of_rule_expressions() {
        let cases = [
            (
                "rate(errors[5m]) / rate(requests[5m]) > 0.05",
                Direction::Up,
            ),
            ("0.05 < rate(errors[5m])", Direction::Up),
            ("up == 0", Direction::Either),
            ("(avail < 0.99)", Direction::Down),
            ("latency > 1 and on() rate(requests[5m]) > 1", Direction::Up),
            ("queue_depth", Direction::Either),
            ("used_bytes > limit_bytes", Direction::Up),
        ];
        for (expr, direction) in cases {
            let m = metric_of(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(m.direction, direction, "{expr}");
            assert!(!m.query.contains("0.05 <"), "{expr}: {}", m.query);
            metric_of(&m.query).unwrap_or_else(|e| panic!("{} does not parse: {e}", m.query));
        }
        assert_eq!(
            metric_of("used_bytes > limit_bytes").map(|m| m.query),
            Ok("(used_bytes) - (limit_bytes)".to_owned())
        );
        assert!(metric_of("rate(x[5m]) > bool 1").is_err());
        assert!(metric_of("1 > 0").is_err());
        assert!(metric_of("rate(x[5m] >").is_err());
    }

    #[test]
    fn expression_from_generator_url() {
        assert_eq!(
            expression_of("http://prom:9090/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1"),
            Some("rate(x[5m]) > 1".to_owned())
        );
        assert_eq!(expression_of("http://prom:9090/graph"), None);
        assert_eq!(expression_of("not a url"), None);
    }

    #[test]
    fn a_step_is_found_where_it_happened() {
        for seed in 0..20 {
            let points = noisy(720, seed, |i| if i >= 600 { 5.0 } else { 1.0 }, 0.3);
            let e = detect(&points, Direction::Up).expect("a step");
            assert!((598..=602).contains(&e.start), "seed {seed}: {}", e.start);
            assert!((e.before - 1.0).abs() < 0.2 && (e.at_end - 5.0).abs() < 0.3);
        }
    }

    #[test]
    fn a_ramp_is_found_where_it_started() {
        for seed in 0..20 {
            let ramp = |i: usize| {
                2.0 + if i >= 500 {
                    (i - 500) as f64 * 0.02
                } else {
                    0.0
                }
            };
            let points = noisy(720, seed, ramp, 0.2);
            let e = detect(&points, Direction::Up).expect("a ramp");
            assert!((480..=520).contains(&e.start), "seed {seed}: {}", e.start);
        }
    }

    #[test]
    fn a_flat_counter_that_starts_counting() {
        let points: Vec<(f64, f64)> = (0..100)
            .map(|i| (f64::from(i), if i >= 80 { 3.0 } else { 0.0 }))
            .collect();
        assert_eq!(detect(&points, Direction::Up).map(|e| e.start), Some(80));
    }

    #[test]
    fn noise_drift_and_the_wrong_way_find_nothing() {
        let mut found = 0;
        for seed in 0..50 {
            let drift = |i: usize| 10.0 + i as f64 * 0.005;
            if detect(&noisy(720, seed, drift, 0.5), Direction::Up).is_some() {
                found += 1;
            }
        }
        // A break in pure noise passes the criterion rarely.
        assert!(found <= 2, "{found} of 50 noise series had an onset");
        let drop = noisy(720, 1, |i| if i >= 600 { 1.0 } else { 5.0 }, 0.3);
        assert_eq!(detect(&drop, Direction::Up), None);
        assert!(detect(&drop, Direction::Down).is_some());
        assert_eq!(detect(&[(0.0, 1.0); 50], Direction::Up), None);
        assert_eq!(detect(&[], Direction::Up), None);
    }

    #[test]
    fn the_alerts_series_among_several() {
        let s = |pod: &str, job: &str| Series {
            labels: [
                ("__name__".to_owned(), "x".to_owned()),
                ("pod".to_owned(), pod.to_owned()),
                ("job".to_owned(), job.to_owned()),
            ]
            .into(),
            values: Vec::new(),
            times: Vec::new(),
        };
        let series = [s("a", "api"), s("b", "api")];
        let labels: BTreeMap<String, String> = [
            ("pod".to_owned(), "b".to_owned()),
            ("alertname".to_owned(), "X".to_owned()),
        ]
        .into();
        assert_eq!(
            series_of(&series, &labels).map(|s| s.labels["pod"].as_str()),
            Some("b")
        );
        let other: BTreeMap<String, String> = [("pod".to_owned(), "c".to_owned())].into();
        assert!(series_of(&series, &other).is_none());
        assert!(series_of(&series[..1], &other).is_some());
    }
}
