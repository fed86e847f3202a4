//! Where top-1 is lost: for every scored alert with a recorded cause, whether the evidence the
//! engine has could separate the cause from the innocent candidates at all.
//!
//! An alert's cause is **twinned** when an innocent candidate carries the same evidence about
//! what changed — the same distance below the alerting service, the same kind of change (image,
//! keys by class, resources, replicas, secrets, nothing) and the same rollout outcome — and
//! landed at least as close to the alert. Between the two only their times differ, and a ranker
//! that prefers the closer of two otherwise equal changes (as an SRE does, and as every
//! ranker in the field does) puts the innocent one first. A cause **out of reach** is not a
//! candidate at all (outside the window or the depth). The rest are **separable**: there the
//! evidence differs, and top-1 there is what the model makes of it.
//!
//! The features compared are the engine's own ([`crate::fit::rows_of`]); the ground truth is
//! the generator's.

use crate::driver::Recorded;
use crate::generator::{Cause, World};
use deploygraph_analysis::attribution::{FEATURES, Settings};
use deploygraph_analysis::model::FEATURE_NAMES;
use deploygraph_store::GraphStore;
use std::sync::Arc;

/// What the evidence allows for one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The cause is not a candidate.
    OutOfReach,
    /// An innocent candidate with the same evidence about the change landed at least as close.
    Twinned,
    /// The evidence differs.
    Separable,
}

/// The features that say what changed and how the rollout went (not when, and not what the
/// graph's history says about the service or its keys).
const WHAT_CHANGED: [&str; 14] = [
    "hops",
    "dependency",
    "unchanged",
    "image",
    "operational_keys",
    "cosmetic_keys",
    "other_keys",
    "resources",
    "replicas",
    "secret",
    "failed",
    "rolled_back",
    "in_progress",
    "removed",
];

/// Per scored alert, in the order of `recorded[w].answers` for every world in turn: `None`
/// when the alert has no recorded cause (a chaos run, or nothing recorded).
pub async fn evidence(
    worlds: &[World],
    recorded: &[Recorded],
    stores: &[Arc<dyn GraphStore>],
    settings: &Settings,
) -> Vec<Option<Evidence>> {
    let compared: Vec<usize> = WHAT_CHANGED
        .iter()
        .filter_map(|n| FEATURE_NAMES.iter().position(|f| f == n))
        .collect();
    assert_eq!(compared.len(), WHAT_CHANGED.len(), "a feature was renamed");
    let recency = FEATURE_NAMES
        .iter()
        .position(|f| *f == "recency")
        .expect("the recency feature");
    let explain = std::env::var("BENCH_EXPLAIN").is_ok_and(|v| v == "1");
    let mut out = Vec::new();
    for (w, world) in worlds.iter().enumerate() {
        let cause = match world.cause {
            Cause::Deployment(i) => Some(recorded[w].deployments[i].clone()),
            Cause::Change(i) => Some(recorded[w].changes[i].clone()),
            Cause::Chaos(_) | Cause::None => None,
        };
        let store = stores[w].as_ref();
        for (_, answer) in &recorded[w].answers {
            let Some(cause) = cause.as_deref() else {
                out.push(None);
                continue;
            };
            let (rows, index) =
                crate::fit::rows_of(store, &answer.alert_uid, settings, Some(cause)).await;
            let Some(index) = index else {
                out.push(Some(Evidence::OutOfReach));
                continue;
            };
            let culprit = rows[index];
            if explain {
                misses(world, &rows, index);
            }
            let twinned = rows.iter().enumerate().any(|(j, row)| {
                j != index
                    && row[recency] <= culprit[recency]
                    && compared.iter().all(|&f| row[f] == culprit[f])
            });
            out.push(Some(if twinned {
                Evidence::Twinned
            } else {
                Evidence::Separable
            }));
        }
    }
    out
}

/// `BENCH_EXPLAIN=1` (for working on the ranking, on the development seeds): prints an alert
/// whose most probable answer under the shipped weights is not its cause, with the cause's and
/// that answer's features.
fn misses(world: &World, rows: &[[f64; FEATURES]], cause: usize) {
    let weights = deploygraph_analysis::model::WEIGHTS;
    let (p, null) = weights.probabilities(rows);
    let best = p
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, q)| (i, *q));
    let Some((best, q)) = best.filter(|(_, q)| *q > null).or(Some((usize::MAX, null))) else {
        return;
    };
    if best == cause {
        return;
    }
    let show = |row: &[f64; FEATURES]| {
        FEATURE_NAMES
            .iter()
            .zip(row)
            .filter(|(_, v)| **v != 0.0)
            .map(|(n, v)| format!("{n}={v:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "MISS {} seed {}: {} candidates; cause p={:.3}: {}",
        world.kind.name(),
        world.seed,
        rows.len(),
        p[cause],
        show(&rows[cause])
    );
    if best == usize::MAX {
        println!("  top: nothing recorded, p={q:.3}");
    } else {
        println!("  top p={q:.3}: {}", show(&rows[best]));
    }
}
