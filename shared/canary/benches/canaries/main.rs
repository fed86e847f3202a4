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
//! - `BENCH_SEEDS`: `fresh` (default; seeds from 2,000,000, for reporting), `dev` (seeds from
//!   0, for looking at results while working) or `heldout` (seeds from 1,000,000: the first
//!   held-out range, reported in the first section and seen since, so no longer held out).
//!   Decide on `dev`, report once on `fresh`.
//! - `BENCH_EXPLAIN=1`: print the verdict of every healthy canary deploygraph (as it is now)
//!   failed (on `dev`).
//!
//! The schedule is the issue's: windows of 1 minute analysed every 30 s, at most 15 minutes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod generator;
mod rivals;

use deploygraph_canary::stop::{self, Decision};
use deploygraph_canary::template::SHIPPED;
use deploygraph_canary::{
    Baseline, Bucket, Counts, Distribution, Histogram, Inputs, Judge, Metric, MetricData,
    MetricSpec, Template, Window,
};
use generator::{BUCKETS, Canary, Kind, SideSlice};
use rivals::{Final, Flagger, Kayenta, Schedule};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DEV_BASE: u64 = 0;
const HELDOUT_BASE: u64 = 1_000_000;
const FRESH_BASE: u64 = 2_000_000;

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
}

/// deploygraph as one configuration: judge, metrics, stop rule, schedule.
struct Config {
    schedule: Schedule,
    judge: Judge,
    metrics: Vec<Metric>,
    rule: Rule,
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
    } = config;
    let schedule = *schedule;
    let mut first_fail = None;
    let decided = |last: Final, first_fail: Option<u64>| Decided { last, first_fail };
    let window = Window::new(Duration::from_secs(schedule.window)).expect("window");
    let interval = Duration::from_secs(schedule.interval);
    let max = Duration::from_secs(schedule.max_duration);
    let mut earlier = Vec::new();
    for (n, t) in schedule.analyses() {
        let w = schedule.window_at(&canary.slices, t);
        let inputs = Inputs {
            window,
            canary: BTreeMap::from(data(&w.canary)),
            baseline: Baseline::SideBySide(BTreeMap::from(data(&w.baseline))),
        };
        let verdict = judge.judge(metrics, &inputs);
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
        };
        earlier.push((started, verdict.outcome));
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

/// A labelled selection of runs: one row per system in a table.
type Group = (String, Box<dyn Fn(&Run) -> bool>);

const SYSTEMS: [&str; 7] = [
    "deploygraph as merged: error tolerance 1 point, p99 on ≥ 200 observations, fail confirmed",
    "+ error tolerance 0.5 points",
    "+ p99 on ≥ 1,000 observations",
    "deploygraph now: + decisive failures at once",
    "deploygraph now, 5-minute windows",
    "Flagger static thresholds",
    "Kayenta-style rank test",
];

/// Index of "deploygraph now" in [`SYSTEMS`].
const NOW: usize = 3;

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
            schedule: SCHEDULE,
            judge: merged_judge,
            metrics: one_point,
            rule: Rule::Confirmed,
        },
        Config {
            schedule: SCHEDULE,
            judge: merged_judge,
            metrics: half_point.clone(),
            rule: Rule::Confirmed,
        },
        Config {
            schedule: SCHEDULE,
            judge: Judge::default(),
            metrics: half_point.clone(),
            rule: Rule::Confirmed,
        },
        Config {
            schedule: SCHEDULE,
            judge: Judge::default(),
            metrics: shipped_metrics(),
            rule: Rule::ConfirmedOrDecisive,
        },
        Config {
            schedule: FIVE_MINUTES,
            judge: Judge::default(),
            metrics: shipped_metrics(),
            rule: Rule::ConfirmedOrDecisive,
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
        "| system | canaries | n | fail | fail ≤ 3 windows (180 s) | pass | inconclusive / no data | fail at, median / p90 | fail: from first Fail window, median / p90 | any decision, median |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
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
                .filter(|f| matches!(f, Final::Fail(t) if *t <= 3 * SCHEDULE.window))
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
        other => panic!("BENCH_SEEDS: `{other}` is not dev, heldout or fresh"),
    };
    let configs = configs();
    let explain = std::env::var("BENCH_EXPLAIN").is_ok_and(|v| v == "1");
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
                .map(|(c, config)| deploygraph(config, &canary, explain && c == NOW))
                .collect();
            let mut finals: Vec<Final> = decided.iter().map(|d| d.last).collect();
            let mut first_fails: Vec<Option<u64>> = decided.iter().map(|d| d.first_fail).collect();
            finals.push(flagger.run(SCHEDULE, &canary.slices));
            finals.push(kayenta.run(SCHEDULE, &canary.slices));
            first_fails.extend([None, None]);
            let windows = window_verdicts(&configs[NOW], &canary);
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
    let early = |f: Final| matches!(f, Final::Fail(t) if t <= 3 * SCHEDULE.window);
    for (s, system) in SYSTEMS.iter().enumerate() {
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
        let time = if from_first.is_empty() {
            String::new()
        } else {
            format!(
                "; rollbacks of regressions {} after the first window judged Fail (median / p90), under 60 s in {} ({under}/{})",
                median_p90(from_first.clone()),
                percent(under, from_first.len()),
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
