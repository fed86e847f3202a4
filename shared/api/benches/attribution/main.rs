//! Attribution quality benchmark: labelled incidents from a seeded generator, written through
//! the public HTTP API (the router in-process, over a fresh SQLite store per kind), scored
//! against their ground truth per scenario kind, beside the last-deployment rule ("the last
//! deployment of the alerting service before the alert", from the generated world) in the same
//! run. Prints Markdown tables for `docs/benchmarks.md`.
//!
//! `cargo bench -p deploygraph-api --bench attribution`
//!
//! Two generators written independently make the incidents: A (`generator/`) and B
//! (`generator_b/`, its own topologies, tempos, keys and onsets). Fit on A's development
//! seeds; report on both generators' held-out seeds.
//!
//! Options (environment):
//! - `BENCH_GENERATOR`: `a`, `b` or `both` (default): whose worlds, each reported under its own
//!   heading.
//! - `BENCH_SEEDS`: `heldout` (default; seeds from 1,000,000, for reporting), `fresh` (seeds
//!   from 3,000,000, a second held-out range first read with the canary evidence), `onset`
//!   (seeds from 4,000,000, a third, first read with the metric onset evidence), `rollout`
//!   (seeds from 5,000,000, a fourth, first read with the onset placed against each
//!   candidate's whole rollout), `health` (seeds from 6,000,000, a fifth, first read with the
//!   services' health metrics), `symptoms` (seeds from 7,000,000, a sixth, first read with the
//!   alerts' symptoms against the changed keys) or `dev` (seeds from 0, for working on the
//!   ranking). Tune on
//!   `dev`, report on the held-out ranges.
//! - `BENCH_INCIDENTS` (400): incidents in all per generator, split evenly over the kinds the
//!   API can record.
//! - `BENCH_CHECK=1`: only generate and check the worlds (no API), with a summary of them.
//! - `BENCH_FIT=1`: fit the attribution model on the development seeds (from 0), calibrate it
//!   on a second development range (from 500,000) and print the weights ([`fit`]). With
//!   `BENCH_SAMPLES_OUT=DIR` it also writes the samples (JSON lines), and with
//!   `BENCH_SAMPLES_IN=DIR` it reads them instead of writing the worlds again;
//!   `BENCH_HEADROOM=1` adds what a model on every pairwise product of the features would get.
//! - `BENCH_NO_CANARIES=1`: the same worlds with their canary analyses left unwritten (what
//!   the model answers when no canary verdict is recorded), for the gain of the canary
//!   evidence; the results are still split by the verdict the cause's canary had.
//! - `BENCH_NO_METRICS=1`: the same worlds and series ([`metrics`]), but no alert names its
//!   rule's expression, so no onset is read (what the model answers without Prometheus), for
//!   the gain of the onset evidence; the results are still split by the series' shape.
//! - `BENCH_NO_SERVICE_METRICS=1`: the same worlds and series, but the server reads no
//!   service's health metric ([`metrics::services`]: no service health query configured),
//!   for the gain of that evidence.
//! - `BENCH_EXPLAIN=1`: print the alerts whose most probable answer is not their cause, with
//!   the features of both (for working on the ranking on the development seeds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ceiling;
mod driver;
mod fit;
mod generator;
mod generator_b;
mod metrics;
mod score;

use deploygraph_api::{ApiConfig, AppState, router_with_inline_follow_ups};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{GraphStore, MigrationSource};
use generator::{Cause, Kind, World};
use score::{Outcome, Prediction, Summary, Truth, judge, summarize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

const DEV_BASE: u64 = 0;
const CALIBRATION_BASE: u64 = 500_000;
const HELDOUT_BASE: u64 = 1_000_000;
/// A second held-out range, first read with the model that reads canary verdicts (the first
/// range had been seen by then).
const FRESH_BASE: u64 = 3_000_000;
/// A third held-out range, first read with the model that reads alert metric onsets.
const ONSET_BASE: u64 = 4_000_000;
/// A fourth held-out range, first read with the model that places the onset against each
/// candidate's whole rollout.
const ROLLOUT_BASE: u64 = 5_000_000;
/// A fifth held-out range, first read with the model that reads the services' health metrics.
const HEALTH_BASE: u64 = 6_000_000;
/// A sixth held-out range, first read with the alerts' symptoms against the changed keys.
const SYMPTOMS_BASE: u64 = 7_000_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One alert as each system answered it.
struct Judged {
    kind: Kind,
    /// Per system (the API configurations, then the rule).
    outcomes: Vec<Outcome>,
    /// The verdict of the cause's own canary analysis, when the cause is a canaried deployment.
    cause_canary: Option<generator::CanaryVerdict>,
    /// The shape of the alert's metric series, when its rule can be read back.
    metric: Option<&'static str>,
}

fn truth(world: &World, recorded: &driver::Recorded) -> Truth {
    match world.cause {
        Cause::Deployment(i) => Truth::Deployment(recorded.deployments[i].clone()),
        Cause::Chaos(i) => Truth::Chaos(recorded.chaos[i].clone()),
        Cause::Change(i) => Truth::Change(recorded.changes[i].clone()),
        Cause::None => Truth::None,
    }
}

/// A migrated SQLite store in a new directory, in memory (`/dev/shm`) where there is one: the
/// figures measure answers, not fsync.
async fn store() -> (tempfile::TempDir, Arc<dyn GraphStore>) {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("store.db"), MigrationSource::Embedded)
        .await
        .expect("the SQLite store opens");
    store.migrate().await.expect("the SQLite store migrates");
    (dir, Arc::new(store))
}

/// Writes every world through a router with `config`, a fresh store per kind; the answers per
/// world, and the store each world was written to (kept, with its directory, for reading).
async fn run(
    config: ApiConfig,
    worlds: &[World],
    reviews: bool,
) -> (
    Vec<driver::Recorded>,
    Vec<Arc<dyn GraphStore>>,
    Vec<tempfile::TempDir>,
) {
    let mut out = Vec::with_capacity(worlds.len());
    let mut stores = Vec::with_capacity(worlds.len());
    let mut dirs = Vec::new();
    let mut current: Option<(Kind, axum::Router, Arc<dyn GraphStore>)> = None;
    let onsets: Option<Arc<dyn deploygraph_analysis::pipeline::Onsets>> = worlds
        .iter()
        .any(|w| {
            (w.rules_named && w.metrics.iter().any(Option::is_some))
                || (w.services_read && w.service_metrics.iter().any(Option::is_some))
        })
        .then(|| Arc::new(metrics::GeneratedOnsets::of(worlds)) as _);
    for world in worlds {
        if current.as_ref().is_none_or(|c| c.0 != world.kind) {
            let (dir, store) = store().await;
            dirs.push(dir);
            let mut state = AppState::new(store.clone(), config.clone());
            if let Some(onsets) = &onsets {
                state = state.with_onset_source(Arc::clone(onsets));
            }
            let app = router_with_inline_follow_ups(state, std::time::Duration::from_secs(60));
            current = Some((world.kind, app, store));
        }
        let (_, app, store) = current.as_ref().expect("a router");
        let recorded = driver::record(app, world, reviews)
            .await
            .unwrap_or_else(|e| panic!("{} seed {}: {e}", world.kind.name(), world.seed));
        out.push(recorded);
        stores.push(store.clone());
    }
    (out, stores, dirs)
}

/// `source`'s worlds of `kinds` for `seeds`, checked.
fn worlds_for(
    source: Source,
    kinds: &[Kind],
    seeds: std::ops::Range<u64>,
    keep_all: bool,
) -> Vec<World> {
    let mut worlds = Vec::new();
    let canaries = std::env::var("BENCH_NO_CANARIES").is_err();
    let rules_named = std::env::var("BENCH_NO_METRICS").is_err();
    let services_read = std::env::var("BENCH_NO_SERVICE_METRICS").is_err();
    for &kind in kinds.iter().filter(|k| source.makes(**k)) {
        for seed in seeds.clone() {
            let mut world = source.generate(kind, seed);
            world.canaries_written = canaries;
            metrics::attach(&mut world, source.tag());
            world.rules_named = rules_named;
            world.services_read = services_read;
            if let Err(e) = world.check() {
                panic!(
                    "{}: {} seed {seed}: an ill-formed world: {e}",
                    source.title(),
                    kind.name()
                );
            }
            if kind.missing().is_none() || keep_all {
                worlds.push(world);
            }
        }
    }
    worlds
}

/// `BENCH_FIT=1`: both generators' development seeds, fitted together (neither generator's
/// held-out seeds are read).
async fn fit_mode(representable: &[Kind], per_kind: u64) {
    if let Ok(dir) = std::env::var("BENCH_SAMPLES_IN") {
        let (train, calibration) = fit::load(std::path::Path::new(&dir));
        println!("samples read from {dir}");
        fit::report(&train, &calibration);
        return;
    }
    let config = ApiConfig::default();
    let settings = config.attribution;
    let mut train = Vec::new();
    let mut calibration = Vec::new();
    for source in [Source::A, Source::B] {
        let train_worlds = worlds_for(source, representable, DEV_BASE..DEV_BASE + per_kind, false);
        let calibration_worlds = worlds_for(
            source,
            representable,
            CALIBRATION_BASE..CALIBRATION_BASE + per_kind,
            false,
        );
        let (t, c) = tokio::join!(
            async {
                let (recorded, stores, _dirs) = run(config.clone(), &train_worlds, true).await;
                fit::samples(&train_worlds, &recorded, &stores, &settings).await
            },
            async {
                let (recorded, stores, _dirs) =
                    run(config.clone(), &calibration_worlds, true).await;
                fit::samples(&calibration_worlds, &recorded, &stores, &settings).await
            }
        );
        train.push((source.title(), t));
        calibration.push((source.title(), c));
    }
    println!(
        "development seeds {DEV_BASE}..{} (fit) and {CALIBRATION_BASE}..{} (calibration), {per_kind} per kind and generator",
        DEV_BASE + per_kind,
        CALIBRATION_BASE + per_kind
    );
    if let Ok(dir) = std::env::var("BENCH_SAMPLES_OUT") {
        fit::dump(std::path::Path::new(&dir), &train, &calibration);
    }
    fit::report(&train, &calibration);
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

fn row(label: &str, s: &Summary) -> String {
    format!(
        "| {label} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
        s.n,
        pct(s.top1),
        pct(s.top3),
        s.mrr,
        s.ece,
        s.brier,
        s.confidence_when_right
            .map_or("–".to_owned(), |c| format!("{c:.3}")),
    )
}

/// Deployments on the first scored alert's service or anything it depends on (the candidates
/// an SRE would look at) that started within `window` before the alert.
fn near_alert(world: &World, window: chrono::Duration) -> usize {
    let Some(&first) = world.scored_alerts().first() else {
        return 0;
    };
    let alert = &world.alerts[first];
    let dist = world.distances();
    world
        .deployments
        .iter()
        .filter(|d| {
            dist[alert.service][d.service].is_some()
                && d.started_at <= alert.starts_at
                && alert.starts_at - d.started_at <= window
        })
        .count()
}

/// How often the worlds' canary analyses failed and passed, for culprits and for innocent
/// deployments (the generators' own canary models, summarised).
fn canary_summary(worlds: &[World]) {
    let (mut analyses, mut deployments) = (0usize, 0usize);
    // [culprit, innocent] × [fail, pass, inconclusive or no data, analysed, deployments]
    let mut counts = [[0usize; 5]; 2];
    for w in worlds {
        deployments += w.deployments.len();
        analyses += w.canaries.len();
        for (i, _) in w.deployments.iter().enumerate() {
            let row = usize::from(w.cause != Cause::Deployment(i));
            counts[row][4] += 1;
            if let Some(c) = w.canaries.iter().find(|c| c.deployment == i) {
                counts[row][3] += 1;
                let col = match c.verdict {
                    generator::CanaryVerdict::Fail => 0,
                    generator::CanaryVerdict::Pass => 1,
                    _ => 2,
                };
                counts[row][col] += 1;
            }
        }
    }
    println!();
    println!(
        "Canary analyses: {analyses} of {deployments} deployments ({:.1} %).",
        100.0 * analyses as f64 / deployments.max(1) as f64
    );
    println!();
    println!("| deployments | n | analysed | failed | passed | inconclusive or no data |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, c) in ["culprits", "innocent"].iter().zip(counts) {
        let pct = |x: usize| 100.0 * x as f64 / c[4].max(1) as f64;
        println!(
            "| {name} | {} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
            c[4],
            pct(c[3]),
            pct(c[0]),
            pct(c[1]),
            pct(c[2])
        );
    }
}

fn check_only(worlds: &[World]) {
    metrics::summary(worlds, ApiConfig::default().attribution.window);
    println!(
        "| kind | worlds | services (mean) | deployments (mean) | scored alerts | an innocent related deployment landed closer to the alert than the culprit | related deployments in the hour before the alert (mean) | … in the 6 h before (mean) | cause to alert, median (min) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in Kind::ALL {
        let of: Vec<&World> = worlds.iter().filter(|w| w.kind == kind).collect();
        if of.is_empty() {
            continue;
        }
        let n = of.len() as f64;
        let services = of.iter().map(|w| w.services.len()).sum::<usize>() as f64 / n;
        let deployments = of.iter().map(|w| w.deployments.len()).sum::<usize>() as f64 / n;
        let alerts: usize = of.iter().map(|w| w.scored_alerts().len()).sum();
        let closer = of.iter().filter(|w| w.innocent_in_between()).count();
        let hour = of
            .iter()
            .map(|w| near_alert(w, chrono::Duration::hours(1)))
            .sum::<usize>() as f64
            / n;
        let six = of
            .iter()
            .map(|w| near_alert(w, chrono::Duration::hours(6)))
            .sum::<usize>() as f64
            / n;
        let mut lags: Vec<i64> = of
            .iter()
            .filter_map(|w| {
                let (_, at) = w.cause_at()?;
                let first = *w.scored_alerts().first()?;
                Some((w.alerts[first].starts_at - at).num_minutes())
            })
            .collect();
        lags.sort_unstable();
        let lag = lags
            .get(lags.len() / 2)
            .map_or("–".to_owned(), |m| m.to_string());
        println!(
            "| {} | {} | {services:.1} | {deployments:.1} | {alerts} | {closer} | {hour:.1} | {six:.1} | {lag} |",
            kind.name(),
            of.len()
        );
    }
}

/// Who generated a set of worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `generator/`.
    A,
    /// `generator_b/`, written independently of A.
    B,
}

impl Source {
    /// Both.
    const ALL: [Self; 2] = [Self::A, Self::B];

    /// `a` or `b`.
    fn tag(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::A => "generator A (`generator/`)",
            Self::B => "generator B (`generator_b/`)",
        }
    }

    /// Whether this generator makes worlds of `kind`.
    fn makes(self, kind: Kind) -> bool {
        self == Self::A || kind.in_generator_b()
    }

    fn generate(self, kind: Kind, seed: u64) -> World {
        match self {
            Self::A => generator::generate(kind, seed),
            Self::B => generator_b::generate(kind, seed),
        }
    }
}

/// `BENCH_GENERATOR`: `a`, `b` or `both` (the default).
fn sources() -> Vec<Source> {
    match std::env::var("BENCH_GENERATOR").as_deref() {
        Err(_) | Ok("both") => vec![Source::A, Source::B],
        Ok("a") => vec![Source::A],
        Ok("b") => vec![Source::B],
        Ok(other) => panic!("BENCH_GENERATOR must be a, b or both, not {other:?}"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seeds = std::env::var("BENCH_SEEDS").unwrap_or_default();
    let heldout = seeds != "dev";
    let base = match seeds.as_str() {
        "dev" => DEV_BASE,
        "fresh" => FRESH_BASE,
        "onset" => ONSET_BASE,
        "rollout" => ROLLOUT_BASE,
        "health" => HEALTH_BASE,
        "symptoms" => SYMPTOMS_BASE,
        "" | "heldout" => HELDOUT_BASE,
        other => {
            panic!(
                "BENCH_SEEDS must be heldout, fresh, onset, rollout, health, symptoms or dev, not {other:?}"
            )
        }
    };
    let representable: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.missing().is_none())
        .collect();
    let incidents = env_usize("BENCH_INCIDENTS", 400);
    let per_kind = incidents.div_ceil(representable.len()).max(1) as u64;
    let seeds = base..base + per_kind;

    if std::env::var("BENCH_FIT").is_ok_and(|v| v == "1") {
        fit_mode(&representable, per_kind).await;
        return;
    }
    let check = std::env::var("BENCH_CHECK").is_ok_and(|v| v == "1");
    for source in sources() {
        bench(
            source,
            heldout,
            seeds.clone(),
            per_kind,
            &representable,
            check,
        )
        .await;
    }
}

/// Generates, checks and (unless `check`) scores one generator's worlds, printing its tables
/// under its own heading.
async fn bench(
    source: Source,
    heldout: bool,
    seeds: std::ops::Range<u64>,
    per_kind: u64,
    representable: &[Kind],
    check: bool,
) {
    let kinds: Vec<Kind> = representable
        .iter()
        .copied()
        .filter(|k| source.makes(*k))
        .collect();
    let representable = &kinds[..];
    let started = Instant::now();
    let worlds = worlds_for(source, &Kind::ALL, seeds.clone(), check);
    println!();
    println!(
        "{}: generated and checked {} worlds in {:.1} s",
        source.title(),
        worlds.len(),
        started.elapsed().as_secs_f64()
    );
    if check {
        println!();
        println!("## Worlds of {}", source.title());
        println!();
        check_only(&worlds);
        canary_summary(&worlds);
        return;
    }

    let default = ApiConfig::default();
    // The earlier defaults' reach (2 h, one hop) with today's model, to show what reach adds.
    let mut deep = ApiConfig::default();
    deep.attribution.depth = 1;
    deep.attribution.window = chrono::Duration::hours(2);
    let describe = |c: &ApiConfig| {
        format!(
            "window {} min, depth {}, floor {}",
            c.attribution.window.num_minutes(),
            c.attribution.depth,
            c.attribution.floor
        )
    };
    let systems = [
        format!("deploygraph, defaults ({})", describe(&default)),
        format!("deploygraph, shorter reach ({})", describe(&deep)),
        "last-deployment rule".to_owned(),
    ];

    let clock = Instant::now();
    let (a, b) = tokio::join!(
        async {
            let t = Instant::now();
            let (recorded, stores, dirs) = run(default.clone(), &worlds, true).await;
            ((recorded, stores, dirs), t.elapsed())
        },
        async {
            let t = Instant::now();
            (run(deep.clone(), &worlds, true).await.0, t.elapsed())
        }
    );
    let elapsed = clock.elapsed();
    // The same reviewed-key worlds with their reviews left unwritten: what reviews add.
    let reviewed: Vec<World> = worlds
        .iter()
        .filter(|w| !w.reviews.is_empty())
        .cloned()
        .collect();
    let unreviewed = run(default.clone(), &reviewed, false).await.0;
    let ((recorded_default, stores_default, _dirs_default), time_default) = a;
    let evidence = ceiling::evidence(
        &worlds,
        &recorded_default,
        &stores_default,
        &default.attribution,
    )
    .await;
    let (recorded_deep, time_deep) = b;

    let mut judged: Vec<Judged> = Vec::new();
    for (w, world) in worlds.iter().enumerate() {
        let answers = [&recorded_default[w], &recorded_deep[w]];
        for (k, &(alert, _)) in answers[0].answers.iter().enumerate() {
            let mut outcomes = Vec::new();
            for recorded in answers {
                let (a, answer) = &recorded.answers[k];
                assert_eq!(*a, alert);
                let prediction = Prediction {
                    chaos: answer.chaos.clone(),
                    suspects: answer.suspects.clone(),
                    unexplained: Some(answer.unexplained),
                };
                outcomes.push(judge(&truth(world, recorded), &prediction));
            }
            let rule = Prediction {
                chaos: None,
                unexplained: None,
                suspects: world
                    .last_deployment_before(alert)
                    .map(|i| (answers[0].deployments[i].clone(), 1.0))
                    .into_iter()
                    .collect(),
            };
            outcomes.push(judge(&truth(world, answers[0]), &rule));
            let cause_canary = match world.cause {
                Cause::Deployment(i) => world
                    .canaries
                    .iter()
                    .find(|c| c.deployment == i)
                    .map(|c| c.verdict),
                _ => None,
            };
            judged.push(Judged {
                kind: world.kind,
                outcomes,
                cause_canary,
                metric: world
                    .metrics
                    .get(alert)
                    .and_then(Option::as_ref)
                    .map(|m| m.shape),
            });
        }
    }

    let summaries: Vec<(BTreeMap<Kind, Summary>, Summary)> = (0..systems.len())
        .map(|s| {
            let mut per_kind = BTreeMap::new();
            for kind in representable {
                let of: Vec<Outcome> = judged
                    .iter()
                    .filter(|j| j.kind == *kind)
                    .map(|j| j.outcomes[s])
                    .collect();
                per_kind.insert(*kind, summarize(&of));
            }
            let all: Vec<Outcome> = judged.iter().map(|j| j.outcomes[s]).collect();
            (per_kind, summarize(&all))
        })
        .collect();

    let range = format!(
        "{} seeds {}..{}",
        if heldout { "held-out" } else { "development" },
        seeds.start,
        seeds.end
    );
    println!();
    println!(
        "## Attribution benchmark, {}: {} incidents per kind, {range}, {} alerts scored",
        source.title(),
        per_kind,
        judged.len()
    );
    println!();
    println!(
        "Writing and reading through the API: {:.1} s (defaults {:.1} s, shorter reach {:.1} s, concurrently).",
        elapsed.as_secs_f64(),
        time_default.as_secs_f64(),
        time_deep.as_secs_f64()
    );
    println!();
    println!("### Top-1 per kind");
    println!();
    println!(
        "| kind | alerts | {} | {} | {} |",
        systems[0], systems[1], systems[2]
    );
    println!("|---|---:|---:|---:|---:|");
    for kind in representable {
        let s: Vec<&Summary> = summaries.iter().map(|(p, _)| &p[kind]).collect();
        println!(
            "| {} | {} | {} | {} | {} |",
            kind.name(),
            s[0].n,
            pct(s[0].top1),
            pct(s[1].top1),
            pct(s[2].top1)
        );
    }
    let o: Vec<&Summary> = summaries.iter().map(|(_, o)| o).collect();
    println!(
        "| **all** | {} | **{}** | **{}** | **{}** |",
        o[0].n,
        pct(o[0].top1),
        pct(o[1].top1),
        pct(o[2].top1)
    );
    for kind in Kind::ALL.into_iter().filter(|k| k.missing().is_some()) {
        println!(
            "| {} | 0 | not yet representable ({}) | | |",
            kind.name(),
            kind.missing().unwrap_or_default()
        );
    }
    for (s, name) in systems.iter().enumerate() {
        println!();
        println!("### {name}");
        println!();
        println!(
            "| kind | alerts | top-1 | top-3 | MRR | ECE | Brier | mean top confidence when right |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for kind in representable {
            println!("{}", row(kind.name(), &summaries[s].0[kind]));
        }
        println!("{}", row("**all**", &summaries[s].1));
    }
    println!();
    println!(
        "### Reliability: all alerts, the top answer's confidence against whether it is the cause (each cell: alerts / mean confidence / accuracy)"
    );
    println!();
    println!(
        "| confidence | {} | {} | {} |",
        systems[0], systems[1], systems[2]
    );
    println!("|---|---:|---:|---:|");
    for bin in 0..10 {
        let cell = |s: &Summary| {
            let b = s.bins[bin];
            if b.count == 0 {
                "0".to_owned()
            } else {
                format!("{} / {:.3} / {:.3}", b.count, b.confidence, b.accuracy)
            }
        };
        println!(
            "| {:.1}–{:.1} | {} | {} | {} |",
            bin as f64 / 10.0,
            (bin + 1) as f64 / 10.0,
            cell(o[0]),
            cell(o[1]),
            cell(o[2])
        );
    }
    if !reviewed.is_empty() {
        let with: Vec<Outcome> = judged
            .iter()
            .filter(|j| j.kind == Kind::ReviewedKey)
            .map(|j| j.outcomes[0])
            .collect();
        let mut without = Vec::new();
        for (w, world) in reviewed.iter().enumerate() {
            let recorded = &unreviewed[w];
            for (_, answer) in &recorded.answers {
                let prediction = Prediction {
                    chaos: answer.chaos.clone(),
                    suspects: answer.suspects.clone(),
                    unexplained: Some(answer.unexplained),
                };
                without.push(judge(&truth(world, recorded), &prediction));
            }
        }
        println!();
        println!(
            "### Reviews: {}, with the earlier incidents' confirmations written and without them (defaults)",
            Kind::ReviewedKey.name()
        );
        println!();
        println!(
            "| reviews | alerts | top-1 | top-3 | MRR | ECE | Brier | mean top confidence when right |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        println!("{}", row("written (confirmed)", &summarize(&with)));
        println!("{}", row("not written", &summarize(&without)));
    }
    where_lost(representable, &judged, &evidence);
    use generator::CanaryVerdict as V;
    let verdict = |j: &Judged| j.cause_canary;
    split_table(
        "By the verdict of the cause's own canary analysis",
        "cause's canary",
        &systems,
        &judged,
        &[
            ("failed".into(), &|j| verdict(j) == Some(V::Fail)),
            ("passed".into(), &|j| verdict(j) == Some(V::Pass)),
            ("inconclusive or no data".into(), &|j| {
                matches!(verdict(j), Some(V::Inconclusive | V::NoData))
            }),
            ("none recorded (or not a deployment)".into(), &|j| {
                verdict(j).is_none()
            }),
        ],
    );
    split_table(
        "By the alert's metric series",
        "alert's metric",
        &systems,
        &judged,
        &[
            ("no readable rule".into(), &|j| j.metric.is_none()),
            ("step (series read)".into(), &|j| j.metric == Some("step")),
            ("ramp (series read)".into(), &|j| j.metric == Some("ramp")),
            ("step+ramp (series read)".into(), &|j| {
                j.metric == Some("step+ramp")
            }),
            ("late (series read)".into(), &|j| j.metric == Some("late")),
        ],
    );
    println!();
    println!("### No recorded cause: alerts with a suspect at confidence ≥ 0.5 (should be none)");
    println!();
    println!("| system | alerts | with a suspect ≥ 0.5 |");
    println!("|---|---:|---:|");
    for (s, name) in systems.iter().enumerate() {
        let (n, blamed) = o[s].without_cause;
        println!("| {name} | {n} | {blamed} |");
    }
}

/// A row's label, and which alerts it takes.
type Split<'a> = (String, &'a dyn Fn(&Judged) -> bool);

/// Alerts and top-1 of every system, one row per group of alerts.
fn split_table(title: &str, header: &str, systems: &[String], judged: &[Judged], groups: &[Split]) {
    println!();
    println!("### {title} (all systems)");
    println!();
    println!(
        "| {header} | {} |",
        systems
            .iter()
            .map(|n| format!("{n}: alerts / top-1"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---:|".repeat(systems.len()));
    for (label, of) in groups {
        let cells: Vec<String> = (0..systems.len())
            .map(|s| {
                let outcomes: Vec<Outcome> = judged
                    .iter()
                    .filter(|j| of(j))
                    .map(|j| j.outcomes[s])
                    .collect();
                let right = outcomes.iter().filter(|o| o.top1).count();
                format!(
                    "{} / {:.1} %",
                    outcomes.len(),
                    100.0 * right as f64 / outcomes.len().max(1) as f64
                )
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
}

/// The defaults' top-1 split by what the evidence allows ([`ceiling`]): `evidence` is in
/// `judged`'s order.
fn where_lost(kinds: &[Kind], judged: &[Judged], evidence: &[Option<ceiling::Evidence>]) {
    use ceiling::Evidence;
    assert_eq!(judged.len(), evidence.len());
    println!();
    println!(
        "### Where top-1 is lost (defaults): alerts whose cause is out of reach, twinned by an innocent candidate with the same evidence about the change that landed at least as close, or separable"
    );
    println!();
    println!(
        "| kind | alerts with a recorded cause | out of reach | twinned | top-1 when twinned | separable | top-1 when separable | top-1 if every separable one were right |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let line = |label: &str, of: &dyn Fn(&Judged) -> bool| {
        let mut counts = [0usize; 3];
        let mut right = [0usize; 3];
        for (j, e) in judged.iter().zip(evidence) {
            let Some(e) = e else { continue };
            if !of(j) {
                continue;
            }
            let slot = match e {
                Evidence::OutOfReach => 0,
                Evidence::Twinned => 1,
                Evidence::Separable => 2,
            };
            counts[slot] += 1;
            right[slot] += usize::from(j.outcomes[0].top1);
        }
        let n: usize = counts.iter().sum();
        if n == 0 {
            return;
        }
        let share = |r: usize, c: usize| {
            if c == 0 {
                "–".to_owned()
            } else {
                pct(r as f64 / c as f64)
            }
        };
        // Twinned alerts keep the top-1 they got; every separable one right.
        let bound = (right[0] + right[1] + counts[2]) as f64 / n as f64;
        println!(
            "| {label} | {n} | {} | {} | {} | {} | {} | {} |",
            counts[0],
            counts[1],
            share(right[1], counts[1]),
            counts[2],
            share(right[2], counts[2]),
            pct(bound)
        );
    };
    for kind in kinds {
        line(kind.name(), &|j: &Judged| j.kind == *kind);
    }
    line("**all**", &|_: &Judged| true);
}
