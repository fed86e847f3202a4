//! From planned rollouts to recorded deployments: walks every service's rollouts in time order
//! keeping its running configuration, so each change's `before` is what the previous
//! deployment left, a rollback restores exactly what the undone deployment replaced, and an
//! unchanged redeploy repeats the previous deployment's image, commit and values.

use super::dice::Dice;
use super::keys::{Bad, KeySpec, RESTARTED_AT};
use crate::generator::{Deploy, KeyChange, Role, Status};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// What a rollout ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// A new image (and the keys, if any).
    Image,
    /// Configuration only: a new commit of the configuration repository, the same image.
    Config,
    /// The previous deployment again.
    Unchanged,
    /// `kubectl rollout restart`.
    Restart,
    /// Back to what was running before this planned rollout (by index).
    Rollback(usize),
}

/// Which way a key moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The way that hurts.
    Harmful,
    /// Either way (ordinary tuning).
    Any,
    /// Away from harm (a mitigation: more replicas, a longer timeout).
    Safe,
}

/// When a rollout is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// This long after it ends (after it starts while in progress).
    Lag(Duration),
    /// At this moment (a late report), or at its start if that is later.
    At(DateTime<Utc>),
}

/// A planned rollout.
#[derive(Debug, Clone)]
pub struct Intent {
    /// Index of the service.
    pub service: usize,
    /// Start.
    pub start: DateTime<Utc>,
    /// What it ships.
    pub what: What,
    /// Keys it changes, and which way.
    pub keys: Vec<(KeySpec, Dir)>,
    /// Outcome.
    pub status: Status,
    /// How long it runs (to success, failure or undo).
    pub rollout: Duration,
    /// When it is recorded.
    pub recorded: Recorded,
    /// Why it is in the world.
    pub role: Role,
}

#[derive(Debug, Clone)]
struct Snap {
    version: u32,
    commit: u64,
    values: BTreeMap<String, (&'static str, String)>,
}

/// The deployments of `intents`, sorted by start, and each intent's index among them.
pub fn record(dice: &mut Dice, services: usize, intents: &[Intent]) -> (Vec<Deploy>, Vec<usize>) {
    let mut order: Vec<usize> = (0..intents.len()).collect();
    order.sort_by_key(|i| (intents[*i].start, *i));
    let initial: Vec<Snap> = (0..services)
        .map(|_| Snap {
            version: dice.int(2, 400) as u32,
            commit: dice.word(),
            values: BTreeMap::new(),
        })
        .collect();
    let mut last: Vec<Option<Snap>> = vec![None; services];
    // Values a key had before anything recorded touched it.
    let mut baseline: Vec<BTreeMap<String, (&'static str, String)>> =
        vec![BTreeMap::new(); services];
    let mut before: Vec<Option<Snap>> = vec![None; intents.len()];
    let mut index = vec![0usize; intents.len()];
    let mut out = Vec::with_capacity(intents.len());
    for id in order {
        let it = &intents[id];
        let s = it.service;
        let prev = last[s].clone().unwrap_or_else(|| initial[s].clone());
        before[id] = Some(prev.clone());
        let mut next = prev.clone();
        let mut changes: Vec<KeyChange> = Vec::new();
        match it.what {
            What::Image | What::Config => {
                if it.what == What::Image {
                    next.version += if dice.chance(0.8) {
                        1
                    } else {
                        dice.int(2, 4) as u32
                    };
                }
                next.commit = dice.word();
                for (spec, dir) in &it.keys {
                    let path = spec.path();
                    let current = match next.values.get(&path).or_else(|| baseline[s].get(&path)) {
                        Some((_, v)) => v.clone(),
                        None => {
                            let v = spec.value(initial_index(dice, spec, *dir));
                            baseline[s].insert(path.clone(), (spec.def.kind, v.clone()));
                            v
                        }
                    };
                    let from = (0..spec.def.ladder.len())
                        .find(|i| spec.value(*i) == current)
                        .unwrap_or(0);
                    let to = step(dice, spec, *dir, from);
                    let after = spec.value(to);
                    next.values
                        .insert(path.clone(), (spec.def.kind, after.clone()));
                    changes.push(KeyChange {
                        path,
                        kind: spec.def.kind,
                        before: current,
                        after,
                    });
                }
            }
            What::Unchanged => {}
            What::Restart => {
                let stamp = it.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let old = next
                    .values
                    .get(RESTARTED_AT)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                next.values
                    .insert(RESTARTED_AT.to_owned(), ("manifest", stamp.clone()));
                changes.push(KeyChange {
                    path: RESTARTED_AT.to_owned(),
                    kind: "manifest",
                    before: old,
                    after: stamp,
                });
            }
            What::Rollback(target) => {
                let restored = before[target].clone().unwrap_or_else(|| prev.clone());
                next.version = restored.version;
                next.commit = restored.commit;
                let paths: std::collections::BTreeSet<&String> =
                    prev.values.keys().chain(restored.values.keys()).collect();
                let mut values = BTreeMap::new();
                for path in paths {
                    let now = prev.values.get(path).or_else(|| baseline[s].get(path));
                    let then = restored.values.get(path).or_else(|| baseline[s].get(path));
                    let (Some((kind, now)), Some((_, then))) = (now, then) else {
                        // Only a restart stamp can be absent from both; it stays as it is.
                        if let Some(v) = prev.values.get(path) {
                            values.insert(path.clone(), v.clone());
                        }
                        continue;
                    };
                    values.insert(path.clone(), (*kind, then.clone()));
                    if now != then {
                        changes.push(KeyChange {
                            path: path.clone(),
                            kind,
                            before: now.clone(),
                            after: then.clone(),
                        });
                    }
                }
                next.values = values;
            }
        }
        let finished_at = (it.status != Status::InProgress).then(|| it.start + it.rollout);
        let recorded_at = match it.recorded {
            Recorded::Lag(lag) => finished_at.unwrap_or(it.start) + lag,
            Recorded::At(at) => at.max(it.start),
        };
        index[id] = out.len();
        out.push(Deploy {
            service: s,
            started_at: it.start,
            finished_at,
            status: it.status,
            version: next.version,
            commit: next.commit,
            changes,
            role: it.role,
            recorded_at,
        });
        last[s] = Some(next);
    }
    (out, index)
}

/// Where a key stands before its first recorded change: anywhere, but with room to move the
/// harmful way when that is where it is going.
fn initial_index(dice: &mut Dice, spec: &KeySpec, dir: Dir) -> usize {
    let n = spec.def.ladder.len();
    let (lo, hi) = match (dir, spec.def.bad) {
        (Dir::Harmful, Bad::Down) | (Dir::Safe, Bad::Up) => (1, n - 1),
        (Dir::Harmful, Bad::Up) | (Dir::Safe, Bad::Down) => (0, n - 2),
        _ => (0, n - 1),
    };
    dice.int(lo, hi)
}

/// The ladder index a key moves to from `from` (never `from` itself).
fn step(dice: &mut Dice, spec: &KeySpec, dir: Dir, from: usize) -> usize {
    let n = spec.def.ladder.len();
    if spec.def.bad == Bad::Swap || n == 2 {
        let others: Vec<usize> = (0..n).filter(|i| *i != from).collect();
        return dice.pick(&others);
    }
    let stride = if dice.chance(0.8) { 1 } else { 2 };
    let up = |by: usize| (from + by).min(n - 1);
    let down = |by: usize| from.saturating_sub(by);
    let want_up = match (dir, spec.def.bad) {
        (Dir::Harmful, Bad::Up) | (Dir::Safe, Bad::Down) => Some(true),
        (Dir::Harmful, Bad::Down) | (Dir::Safe, Bad::Up) => Some(false),
        _ => None,
    };
    let go_up = match want_up {
        Some(u) => {
            // At the end of the ladder already: the only move left is the other way.
            if u { from + 1 < n } else { from == 0 }
        }
        None => {
            if from == 0 {
                true
            } else if from + 1 == n {
                false
            } else {
                dice.chance(0.5)
            }
        }
    };
    if go_up { up(stride) } else { down(stride) }
}
