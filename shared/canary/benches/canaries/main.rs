//! Canary analysis benchmark: simulated canaries with a known outcome (healthy, or an error-ratio
//! or latency regression of a given size) through deploygraph's judge and its stop rule
//! ([`deploygraph_canary::stop`], the one `canary analyze` applies), beside Flagger's static
//! thresholds and a Kayenta-style rank test on the same simulated traffic in the same run
//! ([`rivals`]). Prints Markdown tables for `docs/benchmarks.md`.
//!
//! `cargo bench -p deploygraph-canary --bench canaries`
//!
//! Options (environment):
//! - `BENCH_CANARIES` (1000): canaries in all; three in ten healthy, one in ten of each of the
//!   seven regressions ([`generator::Kind::MIX`]).
//! - `BENCH_SEEDS`: `fresh` (default; seeds from 5,000,000, for reporting), `dev` (seeds from
//!   0, for looking at results while working), `heldout` (seeds from 1,000,000), `fresh-1`
//!   (seeds from 2,000,000), `fresh-2` (seeds from 3,000,000) or `fresh-3` (seeds from
//!   4,000,000): the ranges reported in earlier sections, seen since, so no longer held out.
//!   Decide on `dev`, report once on `fresh`.
//! - `BENCH_EXPLAIN=1`: print the verdict of every healthy canary deploygraph (as it is now)
//!   failed (on `dev`); `BENCH_EXPLAIN=N` (N > 1): the same for the configuration of index N.
//!
//! The rivals' schedule: windows of 1 minute analysed every 30 s, at most 15 minutes.
//! deploygraph's configurations each have their own (its defaults are the rivals');
//! "within three windows" is three of the configuration's own windows. The two ceilings are
//! what a test that knows the service's true error ratio catches in the first three windows of
//! each length ([`oracle`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod generator;
mod rivals;

use deploygraph_canary::sequential;
use deploygraph_canary::stop::{self, Decision};
use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{
    Baseline, Bucket, Counts, Distribution, Histogram, Inputs, Judge, Metric, MetricData,
    MetricSpec, Template, Units, Window,
};
use generator::{BUCKETS, Canary, Kind, SideSlice};
use rivals::{Final, Flagger, Kayenta, Schedule};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DEV_BASE: u64 = 0;
const HELDOUT_BASE: u64 = 1_000_000;
const FIRST_FRESH_BASE: u64 = 2_000_000;
const SECOND_FRESH_BASE: u64 = 3_000_000;
const THIRD_FRESH_BASE: u64 = 4_000_000;
const FRESH_BASE: u64 = 5_000_000;

const SCHEDULE: Schedule = Schedule {
    interval: 30,
    window: 60,
    max_duration: 900,
};

/// The error-ratio and p99-latency templates deploygraph ships, as one template's metrics.
fn shipped_metrics() -> Vec<Metric> {
    ["http-error-ratio.yaml", "http-latency-p99.yaml"]
        .iter()
        .flat_map(|name| {
            let (_, yaml) = SHIPPED.iter().find(|(f, _)| f == name).expect("shipped");
            Template::parse(yaml).expect("valid template").metrics
        })
        .collect()
}

/// The shipped metrics with the error ratio's tolerance set to `tolerance` (to compare with the
/// shipped template's earlier 1 point).
fn shipped_metrics_with_tolerance(tolerance: f64) -> Vec<Metric> {
    let mut metrics = shipped_metrics();
    for m in &mut metrics {
        if let MetricSpec::Ratio { max_increase, .. } = &mut m.spec {
            *max_increase = tolerance;
        }
    }
    metrics
}

fn data(side: &SideSlice) -> [(String, MetricData); 2] {
    let mut cumulative = 0;
    let buckets = BUCKETS
        .iter()
        .zip(side.buckets)
        .map(|(&le, c)| {
            cumulative += c;
            Bucket {
                le,
                count: cumulative,
            }
        })
        .collect();
    [
        (
            "http-error-ratio".to_owned(),
            MetricData::Ratio(Counts {
                numerator: side.errors,
                denominator: side.requests,
            }),
        ),
        (
            "http-latency-p99".to_owned(),
            MetricData::Distribution(Distribution::Histogram(Histogram {
                buckets,
                count: side.requests,
            })),
        ),
    ]
}

/// When a failing verdict is final.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Failures confirmed one window later ([`stop::decide_confirmed`]).
    Confirmed,
    /// Decisive failures at once, others confirmed ([`stop::decide_confirmed_or_decisive`]).
    ConfirmedOrDecisive,
    /// Decisive failures at once, others confirmed by the next analysis (one interval later,
    /// its window overlapping).
    ConfirmedNext,
    /// As `ConfirmedNext`, and the data new to the confirming analysis (the last interval)
    /// shows a failed metric beyond its tolerance on its own.
    ConfirmedFresh,
}

/// Whether the failing metrics of `verdict` are beyond their tolerance in `fresh` (the judge on
/// the last interval alone, every sample minimum lifted).
fn fresh_agrees(
    verdict: &deploygraph_canary::Verdict,
    fresh: &deploygraph_canary::Verdict,
) -> bool {
    use deploygraph_canary::template::Direction;
    verdict
        .metrics
        .iter()
        .filter(|m| m.outcome == deploygraph_canary::Outcome::Fail)
        .any(|m| {
            fresh.metrics.iter().any(|f| {
                f.metric == m.metric
                    && match (f.effect, f.effect.and_then(|e| e.value)) {
                        (Some(e), Some(v)) => match f.direction {
                            Direction::Increase => v > e.allowed,
                            Direction::Decrease => v < -e.allowed,
                            Direction::Either => v.abs() > e.allowed,
                        },
                        _ => false,
                    }
            })
        })
}

/// deploygraph as one configuration: judge, metrics, stop rule, schedule.
struct Config {
    schedule: Schedule,
    judge: Judge,
    metrics: Vec<Metric>,
    rule: Rule,
    /// What each analysis looks at.
    span: Span,
    /// When a pass is final before the deadline.
    pass: PassRule,
    /// Error counts deflated by the design effect of the window's 10-second steps.
    clustered: bool,
    /// Each side's pods as units ([`deploygraph_canary::units`]): the metrics name the `pod`
    /// label and the judge (and the sequential test) gets the per-pod data.
    pods: bool,
    /// The product's sequential test of the error ratio on everything since the start
    /// ([`deploygraph_canary::sequential`]) at this α, applied to each verdict before the stop
    /// rule (a failure is final at once); `None`: without it, as before it shipped.
    sequential: Option<f64>,
    /// A sequential test of the p99 tail since the start at this α ([`tail_test`]; tried,
    /// not in the product).
    tail_sequential: Option<f64>,
}

/// The design effect of the error ratio over the steps of a window (Rao and Scott): how much
/// more the steps' error counts vary than independent requests would, pooled over both sides;
/// at least 1.
fn design_effect(steps: &[generator::Slice]) -> f64 {
    design_effect_of(steps, &|s: &SideSlice| s.errors)
}

/// The design effect of the share of requests at or above the baseline's p99 bucket.
fn tail_design_effect(steps: &[generator::Slice], whole_baseline: &SideSlice) -> f64 {
    let Some(at) = p99_bucket(whole_baseline) else {
        return 1.0;
    };
    design_effect_of(steps, &move |s: &SideSlice| s.buckets[at..].iter().sum())
}

fn design_effect_of(steps: &[generator::Slice], events: &dyn Fn(&SideSlice) -> u64) -> f64 {
    let canary: Vec<SideSlice> = steps.iter().map(|s| s.canary.clone()).collect();
    let baseline: Vec<SideSlice> = steps.iter().map(|s| s.baseline.clone()).collect();
    units_design_effect(&canary, &baseline, events)
}

/// The index of the bucket holding the baseline's p99 (the tail test's bar), if any.
fn p99_bucket(whole_baseline: &SideSlice) -> Option<usize> {
    let total: u64 = whole_baseline.buckets.iter().sum();
    let rank = 0.99 * total as f64;
    let mut cumulative = 0.0;
    whole_baseline.buckets.iter().position(|&c| {
        cumulative += c as f64;
        cumulative >= rank && c > 0
    })
}

/// The design effect over units (steps or pods) of each side: how much more the units'
/// event counts vary than independent requests would, pooled over both sides; at least 1.
fn units_design_effect(
    canary: &[SideSlice],
    baseline: &[SideSlice],
    events: &dyn Fn(&SideSlice) -> u64,
) -> f64 {
    let sides: [Vec<(f64, f64)>; 2] = [
        canary
            .iter()
            .map(|s| (events(s) as f64, s.requests as f64))
            .filter(|&(_, n)| n > 0.0)
            .collect(),
        baseline
            .iter()
            .map(|s| (events(s) as f64, s.requests as f64))
            .filter(|&(_, n)| n > 0.0)
            .collect(),
    ];
    let (mut residual, mut expected, mut clusters) = (0.0, 0.0, 0.0);
    for side in &sides {
        let (x, n) = side
            .iter()
            .fold((0.0, 0.0), |(a, b), &(x, n)| (a + x, b + n));
        if n == 0.0 {
            continue;
        }
        let p = x / n;
        for &(xi, ni) in side {
            residual += (xi - p * ni).powi(2);
            expected += ni * p * (1.0 - p);
            clusters += 1.0;
        }
    }
    if expected <= 0.0 || clusters <= 2.0 {
        return 1.0;
    }
    (residual / expected * clusters / (clusters - 2.0)).max(1.0)
}

/// The lead of a sequential test of the p99 tail since the start: the share at or above the
/// baseline's p99 bucket, canary against baseline, by the mixture ratio (no tolerance on the
/// share, τ one point), with the pods' design effects when `pods`; fails when the ratio reaches
/// 1/α and the p99 since the start is more than 10 % above the baseline's, each side with
/// 1,000 observations.
fn tail_test(whole: &generator::Slice, pods: bool, alpha: f64) -> bool {
    let (cb, bb) = (&whole.canary.buckets, &whole.baseline.buckets);
    let (nc, nb): (u64, u64) = (cb.iter().sum(), bb.iter().sum());
    if nc < 1000 || nb < 1000 {
        return false;
    }
    let Some(at) = p99_bucket(&whole.baseline) else {
        return false;
    };
    let exceed = |s: &SideSlice| Counts {
        numerator: s.buckets[at..].iter().sum(),
        denominator: s.buckets.iter().sum(),
    };
    let (mut c, mut b) = (exceed(&whole.canary), exceed(&whole.baseline));
    if pods {
        let per = |pods: &[SideSlice]| -> Vec<Counts> { pods.iter().map(exceed).collect() };
        if let Some(d) = deploygraph_canary::units::dispersion(
            &per(&whole.canary_pods),
            &per(&whole.baseline_pods),
        ) {
            c = d.deflate_canary(c);
            b = d.deflate_baseline(b);
        }
    }
    let significant = sequential::log_mixture_ratio(c, b, 0.0, sequential::DEFAULT_TAU)
        .is_some_and(|lr| lr >= (1.0 / alpha).ln());
    let change = match (
        rivals::histogram_quantile(0.99, cb),
        rivals::histogram_quantile(0.99, bb),
    ) {
        (Some(c), Some(b)) if b > 0.0 => c / b - 1.0,
        _ => 0.0,
    };
    significant && change > 0.10
}

/// Each metric's data per pod of both sides, as a template with `unit_label: pod` collects it.
fn units(w: &generator::Slice) -> BTreeMap<String, Units> {
    let mut out: BTreeMap<String, Units> = BTreeMap::new();
    for (pods, canary) in [(&w.canary_pods, true), (&w.baseline_pods, false)] {
        for pod in pods.iter().filter(|p| p.requests > 0) {
            for (name, d) in data(pod) {
                let entry = out.entry(name).or_default();
                if canary {
                    entry.canary.push(d);
                } else {
                    entry.baseline.push(d);
                }
            }
        }
    }
    out
}

/// `side` with its request and error counts divided by `d`.
fn deflated(side: &SideSlice, d: f64) -> SideSlice {
    SideSlice {
        requests: (side.requests as f64 / d).round() as u64,
        errors: (side.errors as f64 / d).round() as u64,
        buckets: side.buckets,
    }
}

impl Config {
    /// deploygraph now: its defaults (1-minute windows every 30 s, the shipped templates, decisive
    /// failures at once, others confirmed, the sequential test since the start); each variant
    /// of [`configs`] changes some of it.
    fn now() -> Self {
        Self {
            schedule: SCHEDULE,
            judge: Judge::default(),
            metrics: shipped_metrics(),
            rule: Rule::ConfirmedOrDecisive,
            span: Span::Sliding,
            pass: PassRule::NotWorse,
            clustered: false,
            pods: true,
            sequential: Some(sequential::ALPHA),
            tail_sequential: None,
        }
    }

    /// deploygraph before the pods were units (the sequential test shipped).
    fn before_units() -> Self {
        Self {
            pods: false,
            ..Self::now()
        }
    }

    /// deploygraph before the sequential test shipped.
    fn before_sequential() -> Self {
        Self {
            sequential: None,
            ..Self::before_units()
        }
    }
}

/// The data an analysis judges.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Span {
    /// The last `window` only.
    Sliding,
    /// Everything since the run started (at least the last `window`).
    SinceStart,
}

/// When a pass ends the run before the deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PassRule {
    /// Every metric passed in an analysis at least one window after the start.
    NotWorse,
    /// As `NotWorse`, and every ratio metric's interval for the change lies within its
    /// tolerance: the canary is shown to be no worse than allowed, not merely not shown worse.
    Shown,
}

/// What deploygraph decided, and when its first `Fail` verdict came (seconds after the start).
struct Decided {
    last: Final,
    first_fail: Option<u64>,
}

/// deploygraph: the judge on each window, the configuration's stop rule on each verdict.
fn deploygraph(config: &Config, canary: &Canary, explain: bool) -> Decided {
    let Config {
        schedule,
        judge,
        metrics,
        rule,
        span,
        pass,
        clustered,
        pods,
        sequential,
        tail_sequential,
    } = config;
    let schedule = *schedule;
    let mut first_fail = None;
    let decided = |last: Final, first_fail: Option<u64>| Decided { last, first_fail };
    let window = Window::new(Duration::from_secs(schedule.window)).expect("window");
    let interval = Duration::from_secs(schedule.interval);
    let max = Duration::from_secs(schedule.max_duration);
    let mut earlier = Vec::new();
    for (n, t) in schedule.analyses() {
        let (w, looked) = match span {
            Span::Sliding => (schedule.window_at(&canary.slices, t), window),
            Span::SinceStart => {
                let whole = Schedule {
                    window: t.max(schedule.window),
                    ..schedule
                };
                let looked = Window::new(Duration::from_secs(whole.window)).expect("window");
                (whole.window_at(&canary.slices, t), looked)
            }
        };
        let (w_canary, w_baseline) = if *clustered {
            let to = ((t / generator::SLICE_SECONDS) as usize).min(canary.slices.len());
            let from =
                (t.saturating_sub(looked.duration().as_secs()) / generator::SLICE_SECONDS) as usize;
            let steps = &canary.slices[from.min(to)..to];
            let d = design_effect(steps);
            let [mut c, mut b] = [
                data(&deflated(&w.canary, d)),
                data(&deflated(&w.baseline, d)),
            ];
            let dt = tail_design_effect(steps, &w.baseline);
            let tail = |side: &SideSlice| {
                let mut out = side.clone();
                for x in &mut out.buckets {
                    *x = (*x as f64 / dt).round() as u64;
                }
                out.requests = out.buckets.iter().sum();
                data(&out)[1].clone()
            };
            c[1] = tail(&w.canary);
            b[1] = tail(&w.baseline);
            (c, b)
        } else {
            (data(&w.canary), data(&w.baseline))
        };
        let inputs = Inputs {
            window: looked,
            canary: BTreeMap::from(w_canary),
            baseline: Baseline::SideBySide(BTreeMap::from(w_baseline)),
            units: if *pods { units(&w) } else { BTreeMap::new() },
        };
        let mut verdict = judge.judge(metrics, &inputs);
        if let (Some(alpha), Ok(since)) = (sequential, Window::new(Duration::from_secs(t))) {
            // As `canary analyze` does: every critical ratio metric on the counts since the
            // start, tested and applied to the verdict.
            let whole = Schedule {
                window: t,
                ..schedule
            }
            .window_at(&canary.slices, t);
            let (c, b) = (
                BTreeMap::from(data(&whole.canary)),
                BTreeMap::from(data(&whole.baseline)),
            );
            let units = pods.then(|| units(&whole));
            let tests = metrics
                .iter()
                .filter_map(|m| {
                    sequential::test(
                        m,
                        since,
                        c.get(&m.name),
                        b.get(&m.name),
                        units.as_ref().and_then(|u| u.get(&m.name)),
                        *alpha,
                    )
                    .map(|e| (m.name.clone(), e))
                })
                .collect();
            sequential::apply(&mut verdict, tests);
        }
        let tail_failed = tail_sequential.is_some_and(|alpha| {
            let whole = Schedule {
                window: t,
                ..schedule
            }
            .window_at(&canary.slices, t);
            tail_test(&whole, *pods, alpha)
        });
        if tail_failed {
            verdict.outcome = deploygraph_canary::Outcome::Fail;
        }
        if verdict.outcome == deploygraph_canary::Outcome::Fail && first_fail.is_none() {
            first_fail = Some(t);
        }
        let last = stop::is_last(n, interval, max);
        let started = Duration::from_secs(t);
        let decision = match rule {
            Rule::Confirmed => stop::decide_confirmed(&earlier, &verdict, started, window, last),
            Rule::ConfirmedOrDecisive => {
                stop::decide_confirmed_or_decisive(&earlier, &verdict, started, window, last)
            }
            Rule::ConfirmedNext | Rule::ConfirmedFresh => {
                let previous_failed = earlier
                    .last()
                    .is_some_and(|(_, o)| *o == deploygraph_canary::Outcome::Fail);
                let confirmed = previous_failed
                    && (*rule == Rule::ConfirmedNext || {
                        let fresh = Schedule {
                            window: schedule.interval,
                            ..schedule
                        }
                        .window_at(&canary.slices, t);
                        let lifted: Vec<Metric> = metrics
                            .iter()
                            .map(|m| Metric {
                                min_samples: 1,
                                ..m.clone()
                            })
                            .collect();
                        let fresh_verdict = Judge {
                            quantile_observations: false,
                            ..*judge
                        }
                        .judge(
                            &lifted,
                            &Inputs {
                                window: Window::new(interval).expect("interval"),
                                canary: BTreeMap::from(data(&fresh.canary)),
                                baseline: Baseline::SideBySide(BTreeMap::from(data(
                                    &fresh.baseline,
                                ))),
                                units: BTreeMap::new(),
                            },
                        );
                        fresh_agrees(&verdict, &fresh_verdict)
                    });
                if verdict.outcome == deploygraph_canary::Outcome::Fail
                    && (stop::is_decisive(&verdict, stop::DECISIVE_P) || confirmed)
                {
                    Decision::Fail
                } else {
                    stop::decide_confirmed(&earlier, &verdict, started, window, last)
                }
            }
        };
        let decision = if tail_failed {
            Decision::Fail
        } else {
            decision
        };
        earlier.push((started, verdict.outcome));
        let decision = if decision == Decision::Pass && !last && *pass == PassRule::Shown {
            if shown(&verdict) {
                Decision::Pass
            } else {
                Decision::Continue
            }
        } else {
            decision
        };
        match decision {
            Decision::Continue => {}
            Decision::Pass => return decided(Final::Pass(t), first_fail),
            Decision::Fail => {
                if explain && canary.kind == Kind::Healthy {
                    println!(
                        "healthy canary failed at {t} s: {:?}\n  {}",
                        canary.service,
                        verdict
                            .metrics
                            .iter()
                            .map(|m| m.rule.as_str())
                            .collect::<Vec<_>>()
                            .join("\n  ")
                    );
                }
                return decided(Final::Fail(t), first_fail);
            }
            Decision::Inconclusive => return decided(Final::Inconclusive(t), first_fail),
        }
    }
    decided(Final::Inconclusive(schedule.max_duration), first_fail)
}

/// Whether every ratio metric's interval for the change lies within its tolerance on the bad
/// side.
fn shown(verdict: &deploygraph_canary::Verdict) -> bool {
    verdict
        .metrics
        .iter()
        .filter(|m| m.kind == deploygraph_canary::template::MetricKind::Ratio)
        .all(|m| match (m.interval, m.effect) {
            (Some(i), Some(e)) => match m.direction {
                deploygraph_canary::template::Direction::Increase => i.high <= e.allowed,
                deploygraph_canary::template::Direction::Decrease => i.low >= -e.allowed,
                deploygraph_canary::template::Direction::Either => {
                    i.high <= e.allowed && i.low >= -e.allowed
                }
            },
            _ => false,
        })
}

/// The ceiling: a test that knows the service's true error ratio (no baseline to estimate)
/// and treats requests as independent, on every canary request of the first three windows:
/// fails when the canary's errors reach the count a Poisson of the expected errors reaches in
/// at most 1 % of runs. No rule judging the same three minutes can catch more.
fn oracle(canary: &Canary, seconds: u64) -> Final {
    let upto = (seconds / generator::SLICE_SECONDS) as usize;
    let (n, x) = canary.slices[..upto.min(canary.slices.len())]
        .iter()
        .fold((0_u64, 0_u64), |(n, x), s| {
            (n + s.canary.requests, x + s.canary.errors)
        });
    let lambda = n as f64 * canary.service.base_error;
    // Smallest k with P(Poisson(lambda) >= k) <= 0.01 (the normal approximation where the
    // exact sum would underflow).
    let k = if lambda > 200.0 {
        (lambda + 2.326 * lambda.sqrt() + 0.5).ceil() as u64
    } else {
        let (mut k, mut below, mut term) = (0_u64, 0.0_f64, (-lambda).exp());
        while 1.0 - below > 0.01 {
            below += term;
            k += 1;
            term *= lambda / k as f64;
        }
        k
    };
    if x >= k.max(1) {
        Final::Fail(seconds)
    } else {
        Final::Pass(seconds)
    }
}

/// One canary as every system decided it.
struct Run {
    kind: Kind,
    /// Canary requests per analysis window, on average.
    traffic: f64,
    noisy: bool,
    zero_errors: bool,
    tail_only: bool,
    finals: Vec<Final>,
    /// Per system, when its first `Fail` verdict came (deploygraph only).
    first_fails: Vec<Option<u64>>,
    /// "deploygraph now" on every full 1-minute window of the first three minutes, whatever
    /// the stop rule decided: the error ratio's outcome per window.
    windows: Vec<WindowVerdict>,
}

/// The error-ratio metric of one window, as "deploygraph now" judged it.
#[derive(Clone, Copy)]
struct WindowVerdict {
    outcome: deploygraph_canary::Outcome,
    decisive: bool,
    /// Failed with its interval wholly above the tolerance (decisive but for the p limit).
    beyond: bool,
    /// Its one-sided p-value when it was tested.
    p: Option<f64>,
}

/// The error ratio of every full window from 60 s to 180 s (the analyses at 60, 90, …, 180 s),
/// judged by `config` regardless of any stop rule.
fn window_verdicts(config: &Config, canary: &Canary) -> Vec<WindowVerdict> {
    let window = Window::new(Duration::from_secs(config.schedule.window)).expect("window");
    config
        .schedule
        .analyses()
        .filter(|&(_, t)| t >= config.schedule.window && t <= 3 * config.schedule.window)
        .map(|(_, t)| {
            let w = config.schedule.window_at(&canary.slices, t);
            let inputs = Inputs {
                window,
                canary: BTreeMap::from(data(&w.canary)),
                baseline: Baseline::SideBySide(BTreeMap::from(data(&w.baseline))),
                units: if config.pods {
                    units(&w)
                } else {
                    BTreeMap::new()
                },
            };
            let verdict = config.judge.judge(&config.metrics, &inputs);
            let m = &verdict.metrics[0];
            WindowVerdict {
                outcome: m.outcome,
                decisive: stop::is_decisive(&verdict, stop::DECISIVE_P)
                    && m.outcome == deploygraph_canary::Outcome::Fail,
                beyond: stop::is_decisive(&verdict, 1.0)
                    && m.outcome == deploygraph_canary::Outcome::Fail,
                p: m.p_value,
            }
        })
        .collect()
}

/// Per outcome and traffic band: how "deploygraph now" judged the error ratio in single
/// windows (the three minutes' full windows), which bounds what any stop rule can catch.
fn window_table(runs: &[Run]) {
    println!(
        "| canaries | band | canaries | windows | error ratio fail | fail, interval above the tolerance | decisive (also p < 10⁻⁹) | pass | inconclusive / no data | smallest p of a failing window |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in [
        Kind::Healthy,
        Kind::Errors(0.5),
        Kind::Errors(1.0),
        Kind::Errors(2.0),
    ] {
        for (label, lo, hi) in BANDS {
            let sel: Vec<&Run> = runs
                .iter()
                .filter(|r| r.kind == kind && r.traffic >= lo && r.traffic < hi)
                .collect();
            let windows: Vec<WindowVerdict> =
                sel.iter().flat_map(|r| r.windows.iter().copied()).collect();
            let n = windows.len();
            let count =
                |f: &dyn Fn(&WindowVerdict) -> bool| windows.iter().filter(|w| f(w)).count();
            let fail = count(&|w| w.outcome == deploygraph_canary::Outcome::Fail);
            let decisive = count(&|w| w.decisive);
            let beyond = count(&|w| w.beyond);
            let pass = count(&|w| w.outcome == deploygraph_canary::Outcome::Pass);
            let smallest = windows
                .iter()
                .filter(|w| w.outcome == deploygraph_canary::Outcome::Fail)
                .filter_map(|w| w.p)
                .fold(f64::INFINITY, f64::min);
            println!(
                "| {} | {label} | {} | {n} | {} | {} | {} | {} | {} | {} |",
                kind.label(),
                sel.len(),
                percent(fail, n),
                percent(beyond, n),
                percent(decisive, n),
                percent(pass, n),
                percent(n - fail - pass, n),
                if smallest.is_finite() {
                    format!("{smallest:.1e}")
                } else {
                    "–".into()
                },
            );
        }
    }
    println!();
}

/// Traffic bands of the canary, in requests per 1-minute window on average (500 is the shipped
/// error-ratio template's `min_samples` per side).
const BANDS: [(&str, f64, f64); 4] = [
    ("< 500 req/window", 0.0, 500.0),
    ("500–1,000 req/window", 500.0, 1_000.0),
    ("1,000–5,000 req/window", 1_000.0, 5_000.0),
    ("≥ 5,000 req/window", 5_000.0, f64::INFINITY),
];

/// 5-minute windows every 30 s, at most 15 minutes (the CLI's default window before this run).
const FIVE_MINUTES: Schedule = Schedule {
    interval: 30,
    window: 300,
    max_duration: 900,
};

/// 40-second windows every 20 s, at most 15 minutes: a failure confirmed by the next window
/// that does not overlap comes 40 s after the first.
const FORTY_SECONDS: Schedule = Schedule {
    interval: 20,
    window: 40,
    max_duration: 900,
};

/// 50-second windows every 25 s, at most 15 minutes.
const FIFTY_SECONDS: Schedule = Schedule {
    interval: 25,
    window: 50,
    max_duration: 900,
};

/// A labelled selection of runs: one row per system in a table.
type Group = (String, Box<dyn Fn(&Run) -> bool>);

const SYSTEMS: [&str; 23] = [
    "deploygraph as merged: error tolerance 1 point, p99 on ≥ 200 observations, fail confirmed",
    "+ error tolerance 0.5 points",
    "+ p99 on ≥ 1,000 observations",
    "+ decisive failures at once (1-minute windows every 30 s)",
    "+ a sequential error-ratio test since the start (mSPRT, alpha 0.01)",
    "deploygraph now: + pods as units (design effects when the pods differ beyond chance)",
    "now, 5-minute windows",
    "now, 1-minute windows, judged since the start",
    "now, 1-minute windows, pass shown",
    "now, 1-minute windows, since the start and pass shown",
    "now, 1-minute windows, pass shown, confirmed by the next analysis",
    "now, 1-minute windows, pass shown, confirmed by the next analysis and its new data",
    "now, 1-minute windows, pass shown, design effect",
    "now, 1-minute windows, pass shown, design effect, confirmed by the next analysis",
    "now, 1-minute windows, since the start, pass shown, design effect, confirmed by the next analysis",
    "now, 40-second windows every 20 s",
    "now, 50-second windows every 25 s",
    "now, the sequential test at alpha 0.002",
    "now, and a sequential p99 tail test since the start (alpha 0.01; tried, not shipped)",
    "ceiling: the true error ratio known, first three 1-minute windows",
    "ceiling: the true error ratio known, first three 50-second windows",
    "Flagger static thresholds",
    "Kayenta-style rank test",
];

/// Index of "deploygraph now" in [`SYSTEMS`].
const NOW: usize = 5;

/// Index in [`SYSTEMS`] of the configuration whose single 1-minute windows are tabled.
const ONE_MINUTE: usize = 5;

/// Each system's window in seconds: "within three windows" is three of its own.
fn system_windows() -> Vec<u64> {
    let mut windows: Vec<u64> = configs().iter().map(|c| c.schedule.window).collect();
    windows.extend([SCHEDULE.window, 50]);
    windows.resize(SYSTEMS.len(), SCHEDULE.window);
    windows
}

/// The deploygraph configurations of [`SYSTEMS`], in order (the rivals follow).
fn configs() -> Vec<Config> {
    let merged_judge = Judge {
        quantile_observations: false,
        ..Judge::default()
    };
    let one_point = shipped_metrics_with_tolerance(0.01);
    let half_point = shipped_metrics_with_tolerance(0.005);
    vec![
        Config {
            judge: merged_judge,
            metrics: one_point,
            rule: Rule::Confirmed,
            ..Config::before_sequential()
        },
        Config {
            judge: merged_judge,
            metrics: half_point.clone(),
            rule: Rule::Confirmed,
            ..Config::before_sequential()
        },
        Config {
            metrics: half_point.clone(),
            rule: Rule::Confirmed,
            ..Config::before_sequential()
        },
        Config::before_sequential(),
        Config::before_units(),
        Config::now(),
        Config {
            schedule: FIVE_MINUTES,
            ..Config::now()
        },
        Config {
            span: Span::SinceStart,
            ..Config::now()
        },
        Config {
            pass: PassRule::Shown,
            ..Config::now()
        },
        Config {
            span: Span::SinceStart,
            pass: PassRule::Shown,
            ..Config::now()
        },
        Config {
            rule: Rule::ConfirmedNext,
            pass: PassRule::Shown,
            ..Config::now()
        },
        Config {
            rule: Rule::ConfirmedFresh,
            pass: PassRule::Shown,
            ..Config::now()
        },
        Config {
            pass: PassRule::Shown,
            clustered: true,
            ..Config::now()
        },
        Config {
            rule: Rule::ConfirmedNext,
            pass: PassRule::Shown,
            clustered: true,
            ..Config::now()
        },
        Config {
            rule: Rule::ConfirmedNext,
            span: Span::SinceStart,
            pass: PassRule::Shown,
            clustered: true,
            ..Config::now()
        },
        Config {
            schedule: FORTY_SECONDS,
            ..Config::now()
        },
        Config {
            schedule: FIFTY_SECONDS,
            ..Config::now()
        },
        Config {
            sequential: Some(0.002),
            ..Config::now()
        },
        Config {
            tail_sequential: Some(0.01),
            ..Config::now()
        },
    ]
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1} %", 100.0 * part as f64 / whole as f64)
    }
}

fn quantile(sorted: &[u64], q: f64) -> String {
    if sorted.is_empty() {
        return "–".into();
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{} s", sorted[i])
}

/// Median and p90 of `values` as "median / p90 s", or "–".
fn median_p90(mut values: Vec<u64>) -> String {
    values.sort_unstable();
    if values.is_empty() {
        return "–".into();
    }
    format!(
        "{} / {}",
        quantile(&values, 0.5).trim_end_matches(" s"),
        quantile(&values, 0.9)
    )
}

/// One table: a row per (system, group) with decision rates and times. "From first Fail" is,
/// for the canaries a deploygraph configuration rolled back, the time from the end of the
/// first window it judged `Fail` (the analysis at that time) to the rollback decision.
fn table(runs: &[Run], groups: &[Group]) {
    println!(
        "| system | canaries | n | fail | fail ≤ 3 windows | pass | inconclusive / no data | fail at, median / p90 | fail: from first Fail window, median / p90 | any decision, median |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let windows = system_windows();
    for (s, system) in SYSTEMS.iter().enumerate() {
        for (label, keep) in groups {
            let kept: Vec<&Run> = runs.iter().filter(|r| keep(r)).collect();
            let finals: Vec<Final> = kept.iter().map(|r| r.finals[s]).collect();
            let n = finals.len();
            let fail = finals
                .iter()
                .filter(|f| matches!(f, Final::Fail(_)))
                .count();
            let early = finals
                .iter()
                .filter(|f| matches!(f, Final::Fail(t) if *t <= 3 * windows[s]))
                .count();
            let pass = finals
                .iter()
                .filter(|f| matches!(f, Final::Pass(_)))
                .count();
            let open = n - fail - pass;
            let fail_at: Vec<u64> = finals
                .iter()
                .filter_map(|f| match f {
                    Final::Fail(t) => Some(*t),
                    _ => None,
                })
                .collect();
            let from_first: Vec<u64> = kept
                .iter()
                .filter_map(|r| match (r.finals[s], r.first_fails[s]) {
                    (Final::Fail(t), Some(first)) => Some(t - first),
                    _ => None,
                })
                .collect();
            let mut times: Vec<u64> = finals.iter().map(|f| f.at()).collect();
            times.sort_unstable();
            println!(
                "| {system} | {label} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                percent(fail, n),
                percent(early, n),
                percent(pass, n),
                percent(open, n),
                median_p90(fail_at),
                median_p90(from_first),
                quantile(&times, 0.5),
            );
        }
    }
    println!();
}

fn by_kind() -> Vec<Group> {
    let mut kinds: Vec<Kind> = Vec::new();
    for k in Kind::MIX {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds
        .into_iter()
        .map(|k| {
            let keep: Box<dyn Fn(&Run) -> bool> = Box::new(move |r: &Run| r.kind == k);
            (k.label(), keep)
        })
        .collect()
}

fn main() {
    let canaries: usize = std::env::var("BENCH_CANARIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seeds = std::env::var("BENCH_SEEDS").unwrap_or_else(|_| "fresh".into());
    let (base, range) = match seeds.as_str() {
        "dev" => (DEV_BASE, "development"),
        "heldout" => (HELDOUT_BASE, "first held-out (seen)"),
        "fresh" => (FRESH_BASE, "fresh held-out"),
        "fresh-1" => (FIRST_FRESH_BASE, "second held-out (seen)"),
        "fresh-2" => (SECOND_FRESH_BASE, "third held-out (seen)"),
        "fresh-3" => (THIRD_FRESH_BASE, "fourth held-out (seen)"),
        other => {
            panic!("BENCH_SEEDS: `{other}` is not dev, heldout, fresh-1, fresh-2, fresh-3 or fresh")
        }
    };
    let configs = configs();
    // `1` explains "deploygraph now"; a larger number, the configuration of that index.
    let explain: Option<usize> = std::env::var("BENCH_EXPLAIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|i: usize| if i == 1 { NOW } else { i });
    let (flagger, kayenta) = (Flagger::default(), Kayenta::default());

    let started = Instant::now();
    let mut simulated = Duration::ZERO;
    let mut requests = 0_u64;
    let runs: Vec<Run> = (0..canaries)
        .map(|i| {
            let kind = Kind::MIX[i % Kind::MIX.len()];
            let t0 = Instant::now();
            let canary = Canary::simulate(base + i as u64, kind, SCHEDULE.max_duration);
            simulated += t0.elapsed();
            requests += canary
                .slices
                .iter()
                .map(|s| s.canary.requests + s.baseline.requests)
                .sum::<u64>();
            let s = &canary.service;
            let decided: Vec<Decided> = configs
                .iter()
                .enumerate()
                .map(|(c, config)| deploygraph(config, &canary, explain == Some(c)))
                .collect();
            let mut finals: Vec<Final> = decided.iter().map(|d| d.last).collect();
            let mut first_fails: Vec<Option<u64>> = decided.iter().map(|d| d.first_fail).collect();
            finals.push(oracle(&canary, 3 * SCHEDULE.window));
            finals.push(oracle(&canary, 150));
            first_fails.extend([None, None]);
            finals.push(flagger.run(SCHEDULE, &canary.slices));
            finals.push(kayenta.run(SCHEDULE, &canary.slices));
            first_fails.extend([None, None]);
            let windows = window_verdicts(&configs[ONE_MINUTE], &canary);
            Run {
                windows,
                kind,
                traffic: s.canary_requests(SCHEDULE.window as f64),
                noisy: s.noisy,
                zero_errors: s.base_error == 0.0,
                tail_only: canary.tail_only,
                finals,
                first_fails,
            }
        })
        .collect();
    let elapsed = started.elapsed();

    let n = runs.len();
    println!(
        "## {} canaries, {} seeds {}..{}\n",
        n,
        range,
        base,
        base + n as u64
    );
    let band = |b: usize| {
        let (_, lo, hi) = BANDS[b];
        move |r: &Run| r.traffic >= lo && r.traffic < hi
    };
    println!(
        "Canaries: {} of noisy services, {} with zero base errors; by canary traffic {}; {} simulated requests. Simulation {:.1} s, all in {:.1} s.\n",
        runs.iter().filter(|r| r.noisy).count(),
        runs.iter().filter(|r| r.zero_errors).count(),
        BANDS
            .iter()
            .enumerate()
            .map(|(b, (label, _, _))| format!(
                "{} {label}",
                runs.iter().filter(|r| band(b)(r)).count()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        requests,
        simulated.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    println!("### Per outcome\n");
    table(&runs, &by_kind());

    println!("### Healthy canaries by service (fail = false rollback)\n");
    let mut groups: Vec<Group> = vec![
        (
            "healthy, noisy".into(),
            Box::new(|r: &Run| r.kind == Kind::Healthy && r.noisy),
        ),
        (
            "healthy, calm".into(),
            Box::new(|r: &Run| r.kind == Kind::Healthy && !r.noisy),
        ),
        (
            "healthy, zero base errors".into(),
            Box::new(|r: &Run| r.kind == Kind::Healthy && r.zero_errors),
        ),
    ];
    for (b, (label, _, _)) in BANDS.iter().enumerate() {
        let inside = band(b);
        groups.push((
            format!("healthy, {label}"),
            Box::new(move |r: &Run| r.kind == Kind::Healthy && inside(r)),
        ));
    }
    table(&runs, &groups);

    println!("### Error-ratio regressions by canary traffic\n");
    let mut groups: Vec<Group> = Vec::new();
    for points in [1.0, 2.0] {
        for (b, (label, _, _)) in BANDS.iter().enumerate() {
            let inside = band(b);
            groups.push((
                format!("+{points} point(s), {label}"),
                Box::new(move |r: &Run| r.kind == Kind::Errors(points) && inside(r)),
            ));
        }
    }
    table(&runs, &groups);

    println!(
        "### Latency regressions by shape (tail only: median kept, σ widened; whole: every latency scaled)\n"
    );
    let mut groups: Vec<Group> = Vec::new();
    for f in [0.10, 0.25, 0.50] {
        for tail in [true, false] {
            groups.push((
                format!(
                    "p99 +{:.0} %, {}",
                    f * 100.0,
                    if tail { "tail only" } else { "whole" }
                ),
                Box::new(move |r: &Run| r.kind == Kind::Latency(f) && r.tail_only == tail),
            ));
        }
    }
    table(&runs, &groups);

    println!(
        "### Single windows: the error ratio of deploygraph now in each full 1-minute window of the first three minutes (analyses at 60, 90, …, 180 s)\n"
    );
    window_table(&runs);

    println!("### Against the targets\n");
    let windows = system_windows();
    for (s, system) in SYSTEMS.iter().enumerate() {
        let early = |f: Final| matches!(f, Final::Fail(t) if t <= 3 * windows[s]);
        let count = |keep: &dyn Fn(&Run) -> bool, hit: &dyn Fn(Final) -> bool| {
            let sel: Vec<&Run> = runs.iter().filter(|r| keep(r)).collect();
            (sel.iter().filter(|r| hit(r.finals[s])).count(), sel.len())
        };
        let (fr, h) = count(&|r| r.kind == Kind::Healthy, &|f| {
            matches!(f, Final::Fail(_))
        });
        let (c1, n1) = count(&|r| r.kind == Kind::Errors(1.0), &early);
        let bands: Vec<String> = (0..BANDS.len())
            .map(|b| {
                let inside = band(b);
                let (c, n) = count(&|r| r.kind == Kind::Errors(1.0) && inside(r), &early);
                format!("{} {} ({c}/{n})", BANDS[b].0, percent(c, n))
            })
            .collect();
        let false_bands: Vec<String> = (0..BANDS.len())
            .map(|b| {
                let inside = band(b);
                let (c, n) = count(&|r| r.kind == Kind::Healthy && inside(r), &|f| {
                    matches!(f, Final::Fail(_))
                });
                format!("{} {} ({c}/{n})", BANDS[b].0, percent(c, n))
            })
            .collect();
        // Rollbacks of real regressions: seconds from the first window judged Fail.
        let from_first: Vec<u64> = runs
            .iter()
            .filter(|r| r.kind != Kind::Healthy)
            .filter_map(|r| match (r.finals[s], r.first_fails[s]) {
                (Final::Fail(t), Some(first)) => Some(t - first),
                _ => None,
            })
            .collect();
        let under = from_first.iter().filter(|&&d| d < 60).count();
        let within = from_first.iter().filter(|&&d| d <= 60).count();
        let time = if from_first.is_empty() {
            String::new()
        } else {
            format!(
                "; rollbacks of regressions {} after the first window judged Fail (median / p90), under 60 s in {} ({under}/{}), within 60 s in {} ({within}/{})",
                median_p90(from_first.clone()),
                percent(under, from_first.len()),
                from_first.len(),
                percent(within, from_first.len()),
                from_first.len()
            )
        };
        println!(
            "- {system}: false rollbacks {} of healthy canaries ({fr}/{h}; target ≤ 1 %: {}), by canary traffic: {}; a +1-point error ratio caught within three windows in {} ({c1}/{n1}; target ≥ 95 %: {}), by canary traffic: {}{time}",
            percent(fr, h),
            if fr * 100 <= h { "met" } else { "not met" },
            false_bands.join(", "),
            percent(c1, n1),
            if c1 * 100 >= 95 * n1 {
                "met"
            } else {
                "not met"
            },
            bands.join(", "),
        );
    }
}
