//! Attribution quality benchmark: labelled incidents from a seeded generator, written through
//! the public HTTP API (the router in-process, over a fresh SQLite store per kind), scored
//! against their ground truth per scenario kind, beside the last-deployment rule ("the last
//! deployment of the alerting service before the alert", from the generated world) in the same
//! run. Prints Markdown tables for `docs/benchmarks.md`.
//!
//! `cargo bench -p deploygraph-api --bench attribution`
//!
//! Options (environment):
//! - `BENCH_SEEDS`: `heldout` (default; seeds from 1,000,000, for reporting) or `dev` (seeds
//!   from 0, for working on the ranking). Tune on `dev`, report on `heldout`.
//! - `BENCH_INCIDENTS` (400): incidents in all, split evenly over the kinds the API can record.
//! - `BENCH_CHECK=1`: only generate and check the worlds (no API), with a summary of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver;
mod generator;
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
const HELDOUT_BASE: u64 = 1_000_000;

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
/// world.
async fn run(config: ApiConfig, worlds: &[World]) -> Vec<driver::Recorded> {
    let mut out = Vec::with_capacity(worlds.len());
    let mut current: Option<(Kind, axum::Router, tempfile::TempDir)> = None;
    for world in worlds {
        if current.as_ref().is_none_or(|c| c.0 != world.kind) {
            let (dir, store) = store().await;
            let app = router_with_inline_follow_ups(
                AppState::new(store, config.clone()),
                std::time::Duration::from_secs(60),
            );
            current = Some((world.kind, app, dir));
        }
        let app = &current.as_ref().expect("a router").1;
        let recorded = driver::record(app, world)
            .await
            .unwrap_or_else(|e| panic!("{} seed {}: {e}", world.kind.name(), world.seed));
        out.push(recorded);
    }
    out
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

fn check_only(worlds: &[World]) {
    println!(
        "| kind | worlds | services (mean) | deployments (mean) | scored alerts | an innocent related deployment landed closer to the alert than the culprit |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
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
        println!(
            "| {} | {} | {services:.1} | {deployments:.1} | {alerts} | {closer} |",
            kind.name(),
            of.len()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let heldout = std::env::var("BENCH_SEEDS").map_or(true, |v| v != "dev");
    let base = if heldout { HELDOUT_BASE } else { DEV_BASE };
    let representable: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.missing().is_none())
        .collect();
    let incidents = env_usize("BENCH_INCIDENTS", 400);
    let per_kind = incidents.div_ceil(representable.len()).max(1) as u64;
    let seeds = base..base + per_kind;

    let check = std::env::var("BENCH_CHECK").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let mut worlds = Vec::new();
    for kind in Kind::ALL {
        for seed in seeds.clone() {
            let world = generator::generate(kind, seed);
            if let Err(e) = world.check() {
                panic!("{} seed {seed}: an ill-formed world: {e}", kind.name());
            }
            if kind.missing().is_none() || check {
                worlds.push(world);
            }
        }
    }
    println!(
        "generated and checked {} worlds in {:.1} s",
        worlds.len(),
        started.elapsed().as_secs_f64()
    );
    if check {
        check_only(&worlds);
        return;
    }

    let default = ApiConfig::default();
    let mut deep = ApiConfig::default();
    deep.attribution.depth = 3;
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
        format!("deploygraph, depth 3 ({})", describe(&deep)),
        "last-deployment rule".to_owned(),
    ];

    let clock = Instant::now();
    let (a, b) = tokio::join!(
        async {
            let t = Instant::now();
            (run(default.clone(), &worlds).await, t.elapsed())
        },
        async {
            let t = Instant::now();
            (run(deep.clone(), &worlds).await, t.elapsed())
        }
    );
    let elapsed = clock.elapsed();
    let (recorded_default, time_default) = a;
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
                };
                outcomes.push(judge(&truth(world, recorded), &prediction));
            }
            let rule = Prediction {
                chaos: None,
                suspects: world
                    .last_deployment_before(alert)
                    .map(|i| (answers[0].deployments[i].clone(), 1.0))
                    .into_iter()
                    .collect(),
            };
            outcomes.push(judge(&truth(world, answers[0]), &rule));
            judged.push(Judged {
                kind: world.kind,
                outcomes,
            });
        }
    }

    let summaries: Vec<(BTreeMap<Kind, Summary>, Summary)> = (0..systems.len())
        .map(|s| {
            let mut per_kind = BTreeMap::new();
            for kind in &representable {
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
        "## Attribution benchmark: {} incidents per kind, {range}, {} alerts scored",
        per_kind,
        judged.len()
    );
    println!();
    println!(
        "Writing and reading through the API: {:.1} s (defaults {:.1} s, depth 3 {:.1} s, concurrently).",
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
    for kind in &representable {
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
        for kind in &representable {
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
