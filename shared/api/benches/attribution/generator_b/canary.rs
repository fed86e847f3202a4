//! Canary analyses in generator B's worlds. Organisations with progressive delivery judge most
//! application rollouts with a canary analysis while the canary takes traffic; the others run
//! one after some rollouts of their busiest services. Whether a harmful rollout's canary fails
//! depends on how the harm shows: crash loops and error spikes show within the canary's
//! minutes, latency often does, capacity waits for the traffic peak and leaks take hours, so
//! their canaries mostly pass. Harm that shows on the services calling the changed one shows
//! less on the changed service's own metrics. Innocent rollouts' canaries fail now and then
//! (noisy pods, a cold cache). Drawn from dice of their own, after the world is recorded, so
//! the world is the same with or without them.

use super::Ctx;
use super::dice::{Dice, mix};
use super::keys::Mode;
use super::services::Class;
use crate::generator::{CanaryReport, CanaryVerdict, Deploy, Status};
use chrono::Duration;

impl Ctx {
    /// The canary analyses of `deployments`; `culprit` is the harmful one (index into
    /// `deployments`), `alerting` the service the harm pages on.
    pub(super) fn canary_reports(
        &self,
        deployments: &[Deploy],
        culprit: Option<usize>,
        alerting: Option<usize>,
    ) -> Vec<CanaryReport> {
        let mut dice = Dice::new(mix(self.seed ^ 0x0063_616e_6172_7942) ^ mix(self.kind_no));
        // Per service: runs canary analyses, and how often its canary has the traffic to judge.
        let judged: Vec<(bool, f64)> = self
            .topo
            .svcs
            .iter()
            .map(|svc| {
                let app = svc.class.is_app() && svc.class != Class::Standalone;
                let runs = app
                    && if self.org.canary {
                        dice.chance(0.9)
                    } else {
                        dice.chance(0.2)
                    };
                let busy = match svc.class {
                    Class::Edge | Class::Platform | Class::Core => dice.between(0.8, 1.0),
                    _ => dice.between(0.35, 0.95),
                };
                (runs, busy)
            })
            .collect();
        let noise = dice.between(0.004, 0.04);
        let mut out = Vec::new();
        for (i, d) in deployments.iter().enumerate() {
            let (runs, busy) = judged[d.service];
            if !runs || (!self.org.canary && !dice.chance(0.5)) {
                continue;
            }
            let harmful = culprit == Some(i);
            let caught = if harmful {
                let shows = match self.culprit_mode {
                    Some(Mode::Crash) => 0.92,
                    Some(Mode::Errors) => 0.7,
                    Some(Mode::Latency) => 0.5,
                    Some(Mode::Capacity) => 0.12,
                    Some(Mode::Leak) | None => 0.06,
                };
                let own = alerting == Some(d.service);
                dice.chance(if own { shows } else { shows * 0.55 })
            } else {
                dice.chance(noise)
            };
            let start = d.started_at + Duration::seconds(dice.int(20, 120) as i64);
            let end = d.finished_at.unwrap_or(d.recorded_at).max(start);
            let verdict = if d.status == Status::Failed && dice.chance(0.6) {
                CanaryVerdict::NoData
            } else if !dice.chance(busy) {
                CanaryVerdict::Inconclusive
            } else if caught {
                CanaryVerdict::Fail
            } else {
                CanaryVerdict::Pass
            };
            let decided = match verdict {
                // Two failing windows of a few minutes.
                CanaryVerdict::Fail => {
                    start + Dice::minutes(dice.between(2.0, 5.0) + dice.between(0.0, 8.0))
                }
                // The analysis runs until the rollout is promoted.
                _ => end.max(start + Dice::minutes(dice.between(5.0, 15.0))),
            };
            let (metric, ratio) = match (verdict, self.culprit_mode) {
                (CanaryVerdict::Fail, Some(Mode::Latency | Mode::Capacity)) if harmful => {
                    ("p99_latency_seconds", false)
                }
                (CanaryVerdict::Fail, _) if dice.chance(0.25) => ("p99_latency_seconds", false),
                _ => ("http_5xx_ratio", true),
            };
            out.push(CanaryReport {
                deployment: i,
                verdict,
                metric,
                ratio,
                started_at: start,
                decided_at: decided,
                recorded_at: decided.max(d.recorded_at + Duration::seconds(dice.int(1, 30) as i64)),
            });
        }
        out
    }
}
