//! Canary analyses in generator A's worlds: which services run canaries and what each analysis
//! decided. Drawn from a random stream of its own, after the world is built, so every world is
//! the same with or without them. The rates are this generator's assumptions about canary
//! practice (how many services run canaries, how often a canary has the traffic to judge, how
//! often a regression shows on the changed service's own metrics), drawn afresh per world; none
//! of them is a constant of the judge or of the attribution model.

use super::{CanaryReport, CanaryVerdict, Cause, Status, World};
use chrono::Duration;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Metrics a canary fails on: (name, a ratio).
const FAILING: &[(&str, bool)] = &[
    ("http_error_ratio", true),
    ("latency_p99", false),
    ("connection_pool_errors", true),
];

fn minutes(m: f64) -> Duration {
    Duration::seconds((m * 60.0).round().max(1.0) as i64)
}

/// The canary analyses of `world`'s deployments.
pub fn canaries(world: &World, kind_index: u64) -> Vec<CanaryReport> {
    let mut rng = StdRng::seed_from_u64(world.seed ^ 0x6361_6e61_7279_0000 ^ (kind_index << 44));
    let adoption: f64 = rng.random_range(0.0..0.9);
    let sensitivity: f64 = rng.random_range(0.45..0.95);
    let false_fail: f64 = rng.random_range(0.0..0.05);
    // Per service: whether it runs canaries, and how often its canary sees enough traffic.
    let services: Vec<(bool, f64)> = (0..world.services.len())
        .map(|_| (rng.random_bool(adoption), rng.random_range(0.3..1.0)))
        .collect();
    let alerting = world
        .scored_alerts()
        .first()
        .map(|a| world.alerts[*a].service);
    let mut out = Vec::new();
    for (i, d) in world.deployments.iter().enumerate() {
        let (canaried, traffic) = services[d.service];
        if !canaried {
            continue;
        }
        let culprit = world.cause == Cause::Deployment(i);
        // A regression shows on the changed service's own metrics more often when the alert
        // is its own than when it shows on the services calling it.
        let visible = culprit
            && rng.random_bool(if alerting == Some(d.service) {
                0.85
            } else {
                0.55
            });
        let started_at = d.started_at + Duration::seconds(rng.random_range(0..90));
        let verdict = match d.status {
            // Pods that never became ready send no traffic.
            Status::Failed => CanaryVerdict::NoData,
            _ if !rng.random_bool(traffic) => {
                if rng.random_bool(0.8) {
                    CanaryVerdict::Inconclusive
                } else {
                    CanaryVerdict::NoData
                }
            }
            _ if visible && rng.random_bool(sensitivity) => CanaryVerdict::Fail,
            _ if !culprit && rng.random_bool(false_fail) => CanaryVerdict::Fail,
            _ => CanaryVerdict::Pass,
        };
        let decided_at = match verdict {
            CanaryVerdict::Fail => started_at + minutes(2.0 + 6.0 * rng.random::<f64>().powi(2)),
            _ => started_at + minutes(rng.random_range(8.0..30.0)),
        };
        let (metric, ratio) = if verdict == CanaryVerdict::Fail {
            FAILING[rng.random_range(0..FAILING.len())]
        } else {
            FAILING[0]
        };
        let recorded_at = decided_at.max(d.recorded_at + Duration::seconds(1));
        out.push(CanaryReport {
            deployment: i,
            verdict,
            metric,
            ratio,
            started_at,
            decided_at,
            recorded_at,
        });
    }
    out
}
