//! What each service's health metric (an error ratio, a latency: one series per service whose
//! rise means harm) did: drawn after a world's alert series, from a stream of its own, so the
//! world and its alerts' series are the same with and without it.
//!
//! The model, per world (nothing here is a constant of the detector or of the attribution
//! model):
//!
//! - **Coverage.** A share of the services (30–100 %) export the health metric the server is
//!   configured with; the others have no series of it (other instrumentation, other labels).
//! - **Harm travels up.** The harm starts on the cause's service when the alert series say it
//!   started at the cause; on each service that depends on it (directly or not) a little later,
//!   0–3 minutes per hop; on an alerting service when that alert's series says it did. Whether
//!   a service's metric shows it at all is drawn per service (50–95 % per world): a cut pool
//!   shows on the callers' errors more than on the cache's own, a cut timeout on neither.
//!   Without a recorded cause, the harm starts on a service the first alerting service depends
//!   on, or on that service itself (an unrecorded cause there), and travels up the same way.
//! - **Shape.** A step (60 %) or a ramp to the alert (40 %), 2–25 noise deviations.
//! - **Harmless shifts.** Each other deployment or change moves its service's level as it
//!   lands with a probability drawn per world (0–30 %): a new version's different error or
//!   latency level, up or down alike, 1–8 noise deviations.
//! - **Unrelated episodes.** Each service's level rises at a random moment of the hours before
//!   the alerts with a probability drawn per world (0–15 %): traffic moved, a noisy neighbour.
//! - **Noise.** A level, a noise of 3–30 % of it, a daily swing of up to two deviations and a
//!   few blips (up to four points, 30–100 % of a harm's signal), as the alerts' series have.

use super::{AlertSeries, STEP_SECONDS, normal};
use crate::generator::{Cause, World, log_uniform};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How far before the first scored alert a service's series starts (beyond the default
/// attribution window).
const BEFORE: Duration = Duration::minutes(420);
/// How far after the last scored alert it ends.
const AFTER: Duration = Duration::minutes(15);

/// One service's health series.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSeries {
    /// (Unix seconds, value), every 30 s.
    pub points: Vec<(f64, f64)>,
    /// When the harm reached it and showed (the model's truth, for the summary).
    pub harm_start: Option<DateTime<Utc>>,
}

/// The seed of a world's service stream.
fn stream(world: &World, generator: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("services/{generator}/{}/{}", world.kind.name(), world.seed).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn minutes(m: f64) -> Duration {
    Duration::milliseconds((m * 60_000.0).round() as i64)
}

/// A level change on a service: from `at`, `height` (in noise deviations, signed) reached at
/// once or, with `ramp_to`, growing until then.
struct Shift {
    at: DateTime<Utc>,
    height: f64,
    ramp_to: Option<DateTime<Utc>>,
}

/// The health series of `world`'s services (`None`: the service has none), given its alerts'
/// series (covered or not: their harm starts).
pub fn draw(
    world: &World,
    generator: &str,
    alerts: &[(bool, AlertSeries)],
) -> Vec<Option<ServiceSeries>> {
    let mut rng = StdRng::seed_from_u64(stream(world, generator));
    let n = world.services.len();
    let scored: Vec<usize> = world.scored_alerts();
    let (Some(&first), Some(&last)) = (
        scored.iter().min_by_key(|&&i| world.alerts[i].starts_at),
        scored.iter().max_by_key(|&&i| world.alerts[i].starts_at),
    ) else {
        return vec![None; n];
    };
    let from = world.alerts[first].starts_at - BEFORE;
    let to = world.alerts[last].starts_at + AFTER;
    let coverage = rng.random_range(0.3..1.0);
    let shows = rng.random_range(0.5..0.95);
    let harmless = rng.random_range(0.0..0.3);
    let unrelated = rng.random_range(0.0..0.15);
    let distances = world.distances();
    let mut shifts: Vec<Vec<Shift>> = (0..n).map(|_| Vec::new()).collect();
    // The harm: where it starts, and when.
    let origin: Option<(usize, DateTime<Utc>)> = match world.cause {
        Cause::Deployment(d) => Some(world.deployments[d].service),
        Cause::Change(c) => Some(world.changes[c].service),
        Cause::Chaos(r) => Some(world.chaos[r].service),
        Cause::None => {
            let alerting = world.alerts[first].service;
            let below: Vec<usize> = (0..n)
                .filter(|&s| distances[alerting][s].is_some())
                .collect();
            below.get(rng.random_range(0..below.len().max(1))).copied()
        }
    }
    .map(|service| {
        let at = alerts[first].1.at_cause;
        let at = match world.cause {
            Cause::None => {
                let hops = distances[world.alerts[first].service][service].unwrap_or(0);
                at - minutes((0..hops).map(|_| rng.random_range(0.0..3.0)).sum::<f64>())
            }
            _ => at,
        };
        (service, at)
    });
    let mut harm_at: Vec<Option<DateTime<Utc>>> = vec![None; n];
    if let Some((origin, at)) = origin {
        for (s, row) in distances.iter().enumerate() {
            if let Some(hops) = row[origin] {
                let delay: f64 = (0..hops).map(|_| rng.random_range(0.0..3.0)).sum();
                harm_at[s] = Some(at + minutes(delay));
            }
        }
        for &i in &scored {
            let s = world.alerts[i].service;
            if distances[s][origin].is_some() {
                let alert_harm = alerts[i].1.harm_start;
                harm_at[s] = Some(harm_at[s].map_or(alert_harm, |h| h.min(alert_harm)));
            }
        }
    }
    let mut shown: Vec<Option<DateTime<Utc>>> = vec![None; n];
    for s in 0..n {
        let show = rng.random_bool(shows);
        let height = log_uniform(&mut rng, 2.0, 25.0);
        let ramp = rng.random_bool(0.4);
        if let (true, Some(at)) = (show, harm_at[s]) {
            let end = world.alerts[last].starts_at;
            shifts[s].push(Shift {
                at,
                height,
                ramp_to: (ramp && end - at > Duration::minutes(3)).then_some(end),
            });
            shown[s] = Some(at);
        }
    }
    // Harmless shifts as the other changes land.
    let landings: Vec<(usize, DateTime<Utc>)> = world
        .deployments
        .iter()
        .enumerate()
        .filter(|(i, _)| world.cause != Cause::Deployment(*i))
        .map(|(_, d)| (d.service, d.landed()))
        .chain(
            world
                .changes
                .iter()
                .enumerate()
                .filter(|(i, _)| world.cause != Cause::Change(*i))
                .map(|(_, c)| (c.service, c.at)),
        )
        .collect();
    for (service, at) in landings {
        let hit = rng.random_bool(harmless);
        let height =
            log_uniform(&mut rng, 1.0, 8.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        if hit && at >= from && at <= to {
            shifts[service].push(Shift {
                at,
                height,
                ramp_to: None,
            });
        }
    }
    // Unrelated episodes.
    let span_minutes = (to - from).num_minutes() as f64;
    for service_shifts in &mut shifts {
        let hit = rng.random_bool(unrelated);
        let at = from + minutes(rng.random_range(0.0..span_minutes));
        let height = log_uniform(&mut rng, 1.0, 8.0);
        if hit {
            service_shifts.push(Shift {
                at,
                height,
                ramp_to: None,
            });
        }
    }
    // The series.
    (0..n)
        .map(|s| {
            let covered = rng.random_bool(coverage);
            let level = log_uniform(&mut rng, 0.001, 1.0);
            let noise = level * rng.random_range(0.03..0.3);
            let swing = noise * rng.random_range(0.0..2.0);
            let phase = rng.random_range(0.0..std::f64::consts::TAU);
            let count = ((to - from).num_seconds() / STEP_SECONDS) as usize + 1;
            let mut blips = vec![0.0; count];
            for _ in 0..rng.random_range(0..4) {
                let at = rng.random_range(0..count);
                let height = noise * log_uniform(&mut rng, 2.0, 25.0) * rng.random_range(0.3..1.0);
                for b in blips.iter_mut().skip(at).take(rng.random_range(1..=4)) {
                    *b = height;
                }
            }
            let points: Vec<(f64, f64)> = (0..count)
                .map(|k| {
                    let t = from + Duration::seconds(STEP_SECONDS * k as i64);
                    let day = t.timestamp() as f64 / 86_400.0 * std::f64::consts::TAU;
                    let moved: f64 = shifts[s]
                        .iter()
                        .filter(|x| t >= x.at)
                        .map(|x| {
                            let share = match x.ramp_to {
                                Some(end) => {
                                    let total = (end - x.at).num_seconds().max(1) as f64;
                                    ((t - x.at).num_seconds() as f64 / total).min(1.0)
                                }
                                None => 1.0,
                            };
                            x.height * noise * share
                        })
                        .sum();
                    let v = level
                        + swing * (day + phase).sin()
                        + noise * normal(&mut rng)
                        + moved
                        + blips[k];
                    (t.timestamp() as f64, v.max(0.0))
                })
                .collect();
            covered.then_some(ServiceSeries {
                points,
                harm_start: shown[s],
            })
        })
        .collect()
}
