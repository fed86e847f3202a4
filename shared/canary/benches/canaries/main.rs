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
//! - `BENCH_SEEDS`: `heldout` (default; seeds from 1,000,000, for reporting) or `dev` (seeds
//!   from 0, for looking at results while working). Decide on `dev`, report on `heldout`.
//! - `BENCH_EXPLAIN=1`: print the verdict of every healthy canary the judge failed (on `dev`).
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

/// The shipped metrics with the error ratio's tolerance set to `max_increase` (what a team that
/// must catch smaller increases would write in its template).
fn with_error_tolerance(mut metrics: Vec<Metric>, tolerance: f64) -> Vec<Metric> {
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

/// deploygraph: the judge on each window, a stop rule on each verdict (`confirm`: failures
/// confirmed one window later, [`stop::decide_confirmed`]; else [`stop::decide`]).
fn deploygraph(
    schedule: Schedule,
    judge: &Judge,
    metrics: &[Metric],
    canary: &Canary,
    confirm: bool,
    explain: bool,
) -> Final {
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
        let last = stop::is_last(n, interval, max);
        let started = Duration::from_secs(t);
        let decision = if confirm {
            stop::decide_confirmed(&earlier, &verdict, started, window, last)
        } else {
            stop::decide(&verdict, started, window, last)
        };
        earlier.push((started, verdict.outcome));
        match decision {
            Decision::Continue => {}
            Decision::Pass => return Final::Pass(t),
            Decision::Fail => {
                if explain && canary.kind == Kind::Healthy {
                    println!(
                        "healthy canary failed at {t} s (confirm {confirm}): {:?}\n  {}",
                        canary.service,
                        verdict
                            .metrics
                            .iter()
                            .map(|m| m.rule.as_str())
                            .collect::<Vec<_>>()
                            .join("\n  ")
                    );
                }
                return Final::Fail(t);
            }
            Decision::Inconclusive => return Final::Inconclusive(t),
        }
    }
    Final::Inconclusive(schedule.max_duration)
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
}

/// Traffic bands of the canary, in requests per 1-minute window on average (500 is the shipped
/// error-ratio template's `min_samples` per side).
const BANDS: [(&str, f64, f64); 3] = [
    ("< 500 req/window", 0.0, 500.0),
    ("500–5,000 req/window", 500.0, 5_000.0),
    ("≥ 5,000 req/window", 5_000.0, f64::INFINITY),
];

/// The CLI's default schedule: 5-minute windows every 30 s, at most 15 minutes.
const CLI_DEFAULTS: Schedule = Schedule {
    interval: 30,
    window: 300,
    max_duration: 900,
};

/// A labelled selection of runs: one row per system in a table.
type Group = (String, Box<dyn Fn(&Run) -> bool>);

const SYSTEMS: [&str; 6] = [
    "deploygraph before: rank test alone, fail at once",
    "deploygraph after: tail test, fail confirmed one window later",
    "deploygraph after, error tolerance 0.5 points",
    "deploygraph after, 5-minute windows (the CLI's default)",
    "Flagger static thresholds",
    "Kayenta-style rank test",
];

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

/// One table: a row per (system, group) with decision rates and times.
fn table(runs: &[Run], groups: &[Group]) {
    println!(
        "| system | canaries | n | fail | fail ≤ 3 windows (180 s) | pass | inconclusive / no data | decision time median | p90 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (s, system) in SYSTEMS.iter().enumerate() {
        for (label, keep) in groups {
            let finals: Vec<Final> = runs
                .iter()
                .filter(|r| keep(r))
                .map(|r| r.finals[s])
                .collect();
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
            let mut times: Vec<u64> = finals.iter().map(|f| f.at()).collect();
            times.sort_unstable();
            println!(
                "| {system} | {label} | {n} | {} | {} | {} | {} | {} | {} |",
                percent(fail, n),
                percent(early, n),
                percent(pass, n),
                percent(open, n),
                quantile(&times, 0.5),
                quantile(&times, 0.9),
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
    let heldout = std::env::var("BENCH_SEEDS").map_or(true, |v| v != "dev");
    let base = if heldout { HELDOUT_BASE } else { DEV_BASE };
    let metrics = shipped_metrics();
    let tighter = with_error_tolerance(shipped_metrics(), 0.005);
    let after = Judge::default();
    let before = Judge {
        quantile_tail: false,
        ..Judge::default()
    };
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
            Run {
                kind,
                traffic: s.canary_requests(SCHEDULE.window as f64),
                noisy: s.noisy,
                zero_errors: s.base_error == 0.0,
                tail_only: canary.tail_only,
                finals: vec![
                    deploygraph(SCHEDULE, &before, &metrics, &canary, false, false),
                    deploygraph(SCHEDULE, &after, &metrics, &canary, true, explain),
                    deploygraph(SCHEDULE, &after, &tighter, &canary, true, false),
                    deploygraph(CLI_DEFAULTS, &after, &metrics, &canary, true, false),
                    flagger.run(SCHEDULE, &canary.slices),
                    kayenta.run(SCHEDULE, &canary.slices),
                ],
            }
        })
        .collect();
    let elapsed = started.elapsed();

    let n = runs.len();
    println!(
        "## {} canaries, {} seeds {}..{}\n",
        n,
        if heldout { "held-out" } else { "development" },
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
        println!(
            "- {system}: false rollbacks {} of healthy canaries ({fr}/{h}; target ≤ 1 %: {}); a +1-point error ratio caught within three windows in {} ({c1}/{n1}; target ≥ 95 %: {}), by canary traffic: {}",
            percent(fr, h),
            if fr * 100 <= h { "met" } else { "not met" },
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
