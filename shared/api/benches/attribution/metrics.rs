//! What each alert's metric did: a model of the series behind the alerting rules, drawn after
//! a world is built (its own random stream, so the world is otherwise the one the generator
//! made), and the pipeline's onset source reading it.
//!
//! The model, per alert (nothing here is a constant of the detector or of the attribution
//! model):
//!
//! - **Coverage.** Per world, a share of the alerts (30–100 %) come from Prometheus rules
//!   whose series can be read back; the others carry no rule expression (rules evaluated
//!   elsewhere, recording rules dropped, webhooks from other tools).
//! - **Harm start.** From the ground truth: a culprit rollout harms once its new pods serve —
//!   5–70 % of the way through it (a failed one within its first 3 minutes); a change that is
//!   not a rollout and a chaos run within a minute; on a service that depends on the culprit's,
//!   0–3 minutes later. Without a recorded cause, some minutes before the alert (log-normal,
//!   median 12). Alerts of the history, whose cause the benchmark does not score, likewise.
//! - **Shape.** The rule holds 0–10 minutes (`for:`); the metric crosses its threshold that
//!   long before the alert. When the harm started longer ago than that, the metric got there as
//!   a ramp (45 %), a partial step then a ramp (25 %), a late trigger — flat until just before
//!   the crossing, as load at the next peak is (20 %) — or a step that was held longer (10 %).
//! - **Noise.** A level, a noise of 3–30 % of it, a signal of 2–25 noise deviations, a daily
//!   swing of up to two deviations, and unrelated blips (up to four points, 30–100 % of the
//!   signal) a few times in the window. A quarter of the rules alert on a fall (availability,
//!   throughput) instead of a rise.
//!
//! The series are kept in memory and served to the pipeline by [`GeneratedOnsets`], which
//! runs the same code `serve --prometheus` runs on a range query's answer (the rule expression
//! from `generatorURL`, its comparison taken off, the detector over the same span and step, read
//! 30 s after the alert started, as Alertmanager's default `group_wait` delivers it);
//! only the HTTP round trip to Prometheus is left out (the end-to-end test
//! `alert_metric_onset_is_read_from_prometheus` covers it against the real server).

#[path = "metrics/services.rs"]
pub mod services;

use crate::generator::{Cause, Status, World, log_uniform};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use deploygraph_analysis::pipeline::Onsets;
use deploygraph_canary::onset::{
    alert_metric, onset_in, read_span, series_of, service_metric_in, service_query,
};
use deploygraph_canary::prometheus::Series;
use deploygraph_model::{Alert, MetricOnset, ServiceMetric, ServiceRef};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Spacing of the generated points (a common scrape and rule evaluation interval).
const STEP_SECONDS: i64 = 30;
/// How far before an alert its series starts (beyond the default attribution window).
const BEFORE: Duration = Duration::minutes(400);
/// How far after it.
const AFTER: Duration = Duration::minutes(15);

/// When the pipeline first reads an alert: Alertmanager's default `group_wait` after it
/// started (what `serve` sees; later points are read only when the alert is attributed again).
const ARRIVAL: Duration = Duration::seconds(30);

/// One alert's rule and series.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSeries {
    /// The rule expression (`generatorURL`'s `g0.expr`).
    pub expression: String,
    /// (Unix seconds, value), every 30 s.
    pub points: Vec<(f64, f64)>,
    /// When its harm started (the model's truth, for the benchmark's summary).
    pub harm_start: DateTime<Utc>,
    /// The harm's shape (`step`, `ramp`, `step+ramp`, `late`), for the summary.
    pub shape: &'static str,
    /// When the harm started at its cause (before it reached the alert's service).
    pub at_cause: DateTime<Utc>,
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn minutes(m: f64) -> Duration {
    Duration::milliseconds((m * 60_000.0).round() as i64)
}

/// The seed of a world's metric stream (its own, whatever the generator drew).
fn stream(world: &World, generator: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("metrics/{generator}/{}/{}", world.kind.name(), world.seed).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// When the harm behind alert `i` started at its cause, and on the alert's own service.
fn harm_start(world: &World, i: usize, rng: &mut StdRng) -> (DateTime<Utc>, DateTime<Utc>) {
    let alert = &world.alerts[i];
    let a = alert.starts_at;
    let unexplained = |rng: &mut StdRng| a - minutes(12.0 * (0.8 * normal(rng)).exp());
    let (start, service) = if !alert.scored {
        (unexplained(rng), None)
    } else {
        match world.cause {
            Cause::Deployment(d) => {
                let d = &world.deployments[d];
                let start = if d.status == Status::Failed {
                    d.started_at + minutes(rng.random_range(0.0..3.0))
                } else {
                    let span = (d.landed() - d.started_at).num_milliseconds() as f64 / 60_000.0;
                    d.started_at + minutes(span * rng.random_range(0.05..0.7))
                };
                (start, Some(d.service))
            }
            Cause::Change(c) => {
                let c = &world.changes[c];
                (c.at + minutes(rng.random_range(0.0..1.0)), Some(c.service))
            }
            Cause::Chaos(r) => {
                let r = &world.chaos[r];
                (
                    r.started_at + minutes(rng.random_range(0.0..1.0)),
                    Some(r.service),
                )
            }
            Cause::None => (unexplained(rng), None),
        }
    };
    let at_cause = start;
    let start = match service {
        Some(s) if s != alert.service => start + minutes(rng.random_range(0.0..3.0)),
        _ => start,
    };
    (at_cause, start.min(a - Duration::seconds(20)))
}

/// The series of alert `i` of `world`.
fn series(world: &World, i: usize, rng: &mut StdRng) -> AlertSeries {
    let a = world.alerts[i].starts_at;
    let (at_cause, h) = harm_start(world, i, rng);
    let level = log_uniform(rng, 0.01, 100.0);
    let noise = level * rng.random_range(0.03..0.3);
    let signal = noise * log_uniform(rng, 2.0, 25.0);
    let swing = noise * rng.random_range(0.0..2.0);
    let phase = rng.random_range(0.0..std::f64::consts::TAU);
    let falls = rng.random_bool(0.25);
    let theta = rng.random_range(0.4..0.8);
    let gap = (a - h).num_milliseconds() as f64 / 60_000.0;
    let hold = [0.0_f64, 1.0, 2.0, 5.0, 10.0][rng.random_range(0..5)].min((gap - 0.5).max(0.0));
    let cross = a - minutes(hold);
    let until_cross = (cross - h).num_milliseconds() as f64 / 60_000.0;
    // The harm's shape: its share of the signal at time t (minutes after the harm started).
    enum Shape {
        Step,
        Ramp,
        StepRamp(f64),
        Late(f64),
    }
    let shape = if until_cross <= 2.0 {
        Shape::Step
    } else {
        match rng.random_range(0.0..1.0) {
            x if x < 0.45 => Shape::Ramp,
            x if x < 0.70 => Shape::StepRamp(rng.random_range(0.2..0.7)),
            x if x < 0.90 => Shape::Late(until_cross - rng.random_range(0.0..1.0)),
            _ => Shape::Step,
        }
    };
    let harm = |m: f64| -> f64 {
        if m < 0.0 {
            return 0.0;
        }
        let share = match shape {
            Shape::Step => 1.0,
            Shape::Ramp => theta * m / until_cross,
            Shape::StepRamp(jump) => theta * (jump + (1.0 - jump) * m / until_cross),
            Shape::Late(at) => {
                if m >= at {
                    1.0
                } else {
                    0.0
                }
            }
        };
        share.min(1.5)
    };
    let first = a - BEFORE;
    let last = a + AFTER;
    let n = ((last - first).num_seconds() / STEP_SECONDS) as usize + 1;
    let mut blips = vec![0.0; n];
    for _ in 0..rng.random_range(0..4) {
        let at = rng.random_range(0..n);
        let height = signal * rng.random_range(0.3..1.0);
        for b in blips.iter_mut().skip(at).take(rng.random_range(1..=4)) {
            *b = height;
        }
    }
    let sign = if falls { -1.0 } else { 1.0 };
    let points: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let t = first + Duration::seconds(STEP_SECONDS * k as i64);
            let m = (t - h).num_milliseconds() as f64 / 60_000.0;
            let day = t.timestamp() as f64 / 86_400.0 * std::f64::consts::TAU;
            let v = level
                + swing * (day + phase).sin()
                + noise * normal(rng)
                + sign * (signal * harm(m) + blips[k]);
            (t.timestamp() as f64, if falls { v.max(0.0) } else { v })
        })
        .collect();
    let threshold = level + sign * theta * signal;
    let selector = format!(
        "bench_metric{{world=\"{}-{}\",fingerprint=\"{}\"}}",
        world.kind.name().replace(' ', "_"),
        world.seed,
        world.alerts[i].fingerprint
    );
    let expression = if falls {
        format!("{selector} < {threshold:.6}")
    } else {
        format!("{selector} > {threshold:.6}")
    };
    AlertSeries {
        expression,
        points,
        harm_start: h,
        at_cause,
        shape: match shape {
            Shape::Step => "step",
            Shape::Ramp => "ramp",
            Shape::StepRamp(_) => "step+ramp",
            Shape::Late(_) => "late",
        },
    }
}

/// Draws the series of `world`'s alerts that come from readable rules (`generator`: `a` or
/// `b`, so that the two generators' worlds of a seed draw apart).
pub fn attach(world: &mut World, generator: &str) {
    let mut rng = StdRng::seed_from_u64(stream(world, generator));
    let coverage = rng.random_range(0.3..1.0);
    let drawn: Vec<(bool, AlertSeries)> = (0..world.alerts.len())
        .map(|i| {
            let covered = rng.random_bool(coverage);
            // Drawn either way, so that coverage does not shift the other alerts' streams.
            (covered, series(world, i, &mut rng))
        })
        .collect();
    world.service_metrics = services::draw(world, generator, &drawn);
    world.metrics = drawn
        .into_iter()
        .map(|(covered, s)| covered.then_some(s))
        .collect();
}

/// The `generatorURL` of alert `i`.
pub fn generator_url(world: &World, i: usize) -> String {
    match world
        .metrics
        .get(i)
        .and_then(Option::as_ref)
        .filter(|_| world.rules_named)
    {
        Some(s) => format!(
            "http://prometheus:9090/graph?g0.expr={}&g0.tab=1",
            url::form_urlencoded::byte_serialize(s.expression.as_bytes()).collect::<String>()
        ),
        None => "http://prometheus:9090/graph".to_owned(),
    }
}

/// The pipeline's onset source over the generated series: what a range query over
/// [`read_span`] would answer, read by the same code as Prometheus' answer.
#[derive(Default)]
pub struct GeneratedOnsets {
    /// Series by alert fingerprint.
    series: HashMap<String, Arc<AlertSeries>>,
    /// Health series by service name (unique to a world), of the worlds whose server reads
    /// them; `None` for a service without one.
    services: HashMap<String, Option<Arc<services::ServiceSeries>>>,
}

/// The service health query the benchmark's server is configured with.
pub const SERVICE_TEMPLATE: &str = "bench_service_health{service=\"$service\"}";

/// What a range query over `start..=end` every `step` seconds answers from `points`: the last
/// point at or before each step, as an instant lookup gives (at most 5 min stale).
fn sample(points: &[(f64, f64)], start: DateTime<Utc>, end: DateTime<Utc>, step: f64) -> Series {
    let (mut times, mut values) = (Vec::new(), Vec::new());
    let (from, to) = (start.timestamp() as f64, end.timestamp() as f64);
    let mut t = from;
    let mut k = 0;
    while t <= to && !points.is_empty() {
        while k + 1 < points.len() && points[k + 1].0 <= t {
            k += 1;
        }
        if points[k].0 <= t && t - points[k].0 <= 300.0 {
            times.push(t);
            values.push(points[k].1);
        }
        t += step;
    }
    Series {
        labels: BTreeMap::new(),
        values,
        times,
    }
}

impl GeneratedOnsets {
    /// The series of `worlds`' alerts.
    pub fn of(worlds: &[World]) -> Self {
        let mut series = HashMap::new();
        let mut services = HashMap::new();
        for w in worlds {
            for (i, s) in w.metrics.iter().enumerate() {
                if let Some(s) = s {
                    series.insert(w.alerts[i].fingerprint.clone(), Arc::new(s.clone()));
                }
            }
            if w.services_read {
                for (name, s) in w.services.iter().zip(&w.service_metrics) {
                    services.insert(name.clone(), s.clone().map(Arc::new));
                }
            }
        }
        Self { series, services }
    }
}

impl GeneratedOnsets {
    /// What the onset source answers for an alert.
    fn read(
        &self,
        fingerprint: &str,
        generator_url: Option<&str>,
        labels: &BTreeMap<String, String>,
        starts_at: DateTime<Utc>,
        window: Duration,
    ) -> Option<MetricOnset> {
        let metric = match alert_metric(generator_url) {
            Ok(m) => m,
            Err(none) => return Some(none),
        };
        // Read as the alert arrives: Alertmanager's default `group_wait` after it started.
        let (end, span, step) = read_span(starts_at, window.to_std().ok()?, starts_at + ARRIVAL);
        let start = end - Duration::from_std(span).ok()?;
        let step = step.as_secs_f64();
        let answer: Vec<Series> = self
            .series
            .get(fingerprint)
            .map(|s| vec![sample(&s.points, start, end, step)])
            .unwrap_or_default();
        Some(onset_in(&metric, series_of(&answer, labels), starts_at))
    }
}

#[async_trait]
impl Onsets for GeneratedOnsets {
    async fn onset(&self, alert: &Alert, window: Duration) -> Option<MetricOnset> {
        self.read(
            &alert.fingerprint,
            alert.generator_url.as_deref(),
            &alert.labels,
            alert.starts_at,
            window,
        )
    }

    fn reads_services(&self) -> bool {
        !self.services.is_empty()
    }

    async fn services(
        &self,
        alert: &Alert,
        services: &[ServiceRef],
        window: Duration,
    ) -> Option<BTreeMap<String, ServiceMetric>> {
        Some(
            services
                .iter()
                .map(|service| {
                    (
                        service.shown(),
                        self.read_service(service.name.as_str(), alert.starts_at, window),
                    )
                })
                .collect(),
        )
    }
}

impl GeneratedOnsets {
    /// What the service health source answers for `service` around an alert that started at
    /// `starts_at` (read as the alert arrives).
    fn read_service(
        &self,
        service: &str,
        starts_at: DateTime<Utc>,
        window: Duration,
    ) -> ServiceMetric {
        let Some(Some(s)) = self.services.get(service) else {
            return ServiceMetric::NoSeries;
        };
        let Ok(window) = window.to_std() else {
            return ServiceMetric::NoSeries;
        };
        let (end, span, step) = read_span(starts_at, window, starts_at + ARRIVAL);
        let Ok(span) = Duration::from_std(span) else {
            return ServiceMetric::NoSeries;
        };
        let answer = sample(&s.points, end - span, end, step.as_secs_f64());
        service_metric_in(
            &service_query(SERVICE_TEMPLATE, service, "", "default"),
            Some(&answer),
            starts_at,
        )
    }
}

/// How the scored alerts' series and their onsets came out (`BENCH_CHECK=1`): the share with
/// a readable rule, with an onset found, and how far the onset found was from the model's harm
/// start.
pub fn summary(worlds: &[World], window: Duration) {
    let onsets = GeneratedOnsets::of(worlds);
    let (mut alerts, mut covered, mut found) = (0usize, 0usize, 0usize);
    let mut errors: Vec<f64> = Vec::new();
    let mut by_shape: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for w in worlds {
        for i in w.scored_alerts() {
            alerts += 1;
            let Some(s) = w.metrics.get(i).and_then(Option::as_ref) else {
                continue;
            };
            covered += 1;
            let shape = by_shape.entry(s.shape).or_default();
            shape.0 += 1;
            let url = generator_url(w, i);
            let a = &w.alerts[i];
            let read = onsets.read(
                &a.fingerprint,
                Some(&url),
                &BTreeMap::new(),
                a.starts_at,
                window,
            );
            if let Some(MetricOnset::Found { at, .. }) = read {
                found += 1;
                let error = (at - s.harm_start).num_seconds() as f64 / 60.0;
                shape.1 += 1;
                if error.abs() <= 2.0 {
                    shape.2 += 1;
                }
                errors.push(error);
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let share = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    let within = |m: f64| errors.iter().filter(|e| e.abs() <= m).count();
    let quantile = |q: f64| {
        errors
            .get(((errors.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "metric series: {covered} of {alerts} scored alerts ({:.1} %) from readable rules; onset found for {found} ({:.1} % of those); found onset − harm start: within 1 min {:.1} %, within 2 min {:.1} %, within 5 min {:.1} %; quantiles 10/50/90 %: {:.1} / {:.1} / {:.1} min",
        share(covered, alerts),
        share(found, covered),
        share(within(1.0), found),
        share(within(2.0), found),
        share(within(5.0), found),
        quantile(0.1),
        quantile(0.5),
        quantile(0.9),
    );
    // The services' health series, read at each world's first scored alert.
    let (mut harmed, mut harmed_moved, mut harmed_near, mut calm, mut calm_moved) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    for w in worlds {
        let Some(first) = w
            .scored_alerts()
            .into_iter()
            .min_by_key(|&i| w.alerts[i].starts_at)
        else {
            continue;
        };
        let a = &w.alerts[first];
        for (name, series) in w.services.iter().zip(&w.service_metrics) {
            let Some(series) = series else { continue };
            let read = onsets.read_service(name, a.starts_at, window);
            match series.harm_start.filter(|h| *h <= a.starts_at) {
                Some(h) => {
                    harmed += 1;
                    if let Some(at) = read.moved_at() {
                        harmed_moved += 1;
                        if (at - h).num_seconds().abs() <= 120 {
                            harmed_near += 1;
                        }
                    }
                }
                None => {
                    calm += 1;
                    if read.moved_at().is_some() {
                        calm_moved += 1;
                    }
                }
            }
        }
    }
    println!(
        "service health series at each world's first scored alert: {harmed} showing the harm, a rise found in {:.1} % of them ({:.1} % of those within 2 min of the harm's start); {calm} without it, a rise found in {:.1} % of them",
        share(harmed_moved, harmed),
        share(harmed_near, harmed_moved),
        share(calm_moved, calm)
    );
    for (shape, (n, found, near)) in by_shape {
        println!(
            "  {shape}: {n} series, onset found {:.1} %, within 2 min of the harm start {:.1} % of those",
            share(found, n),
            share(near, found)
        );
    }
}
