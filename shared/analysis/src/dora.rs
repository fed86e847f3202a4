//! DORA metrics from recorded deployments and alerts.
//!
//! | metric | definition |
//! |---|---|
//! | deployment frequency | deployments started in the period ÷ the period's length in days |
//! | lead time for changes | per deployment with a commit time: finish (else start) − `commit.committed_at`; median and p90 |
//! | change failure rate | deployments that failed, were rolled back, or caused an alert ÷ deployments. A deployment caused an alert when a reviewer confirmed it as the cause, or when it is the top suspect with a calibrated probability ≥ 0.5 and no reviewer rejected it for that alert ([`counts_as_failure`]) |
//! | time to restore | per resolved alert on the service that started in the period: `ends_at − starts_at`; median and p90 |

use crate::views::{DoraMetrics, DurationStats};
use chrono::{DateTime, Utc};
use deploygraph_model::{Alert, AlertStatus, Deployment, DeploymentStatus, Uid};
use std::collections::BTreeSet;

/// A top suspect counts as a failed change from this probability on: more likely than not, by
/// the attribution model's calibrated probability.
pub const FAILURE_CONFIDENCE: f64 = deploygraph_store::BLAMED_CONFIDENCE;

/// Whether a deployment with this probability of causing an alert (`None`: not a suspect of
/// it) and this reviewer's verdict on it for that alert is a failed change: a confirmed one
/// always, a rejected one never, else from [`FAILURE_CONFIDENCE`] on — the rule the service
/// history counts by ([`deploygraph_store::is_blamed`]).
pub fn counts_as_failure(
    confidence: Option<f64>,
    verdict: Option<deploygraph_model::VerdictKind>,
) -> bool {
    deploygraph_store::is_blamed(confidence, verdict)
}

/// Median and p90 (nearest rank) of `samples`, in seconds.
pub fn stats(mut samples: Vec<f64>) -> Option<DurationStats> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let n = samples.len();
        // Nearest rank: ceil(q × n), 1-based.
        let r = (q * n as f64).ceil().max(1.0) as usize;
        samples[r.min(n) - 1]
    };
    let median = if samples.len() % 2 == 1 {
        samples[samples.len() / 2]
    } else {
        let mid = samples.len() / 2;
        f64::midpoint(samples[mid - 1], samples[mid])
    };
    Some(DurationStats {
        samples: samples.len(),
        median_seconds: median,
        p90_seconds: rank(0.9),
    })
}

/// DORA metrics of one service and environment over `[since, until]`, from its deployments
/// and alerts in the period and the deployments that were alerts' top suspects.
pub fn metrics(
    (service, environment, cluster): (&str, &str, &str),
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    deployments: &[Deployment],
    alerts: &[Alert],
    blamed: &BTreeSet<Uid>,
) -> DoraMetrics {
    let days = ((until - since).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
    // Removing a service (a CDEvents service.removed) is a change, not a deployment.
    let deployments: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| d.status != DeploymentStatus::Removed)
        .collect();
    let lead_times = deployments
        .iter()
        .filter_map(|d| {
            let committed = d.commit.as_ref()?.committed_at?;
            let landed = d.finished_at.unwrap_or(d.started_at);
            Some((landed - committed).num_milliseconds() as f64 / 1000.0)
        })
        .filter(|s| *s >= 0.0)
        .collect();
    let failed = deployments
        .iter()
        .filter(|d| {
            matches!(
                d.status,
                DeploymentStatus::Failed | DeploymentStatus::RolledBack
            ) || blamed.contains(&d.uid)
        })
        .count();
    let restores = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Resolved)
        .filter_map(|a| Some((a.ends_at? - a.starts_at).num_milliseconds() as f64 / 1000.0))
        .filter(|s| *s >= 0.0)
        .collect();
    DoraMetrics {
        service: service.to_owned(),
        environment: environment.to_owned(),
        cluster: cluster.to_owned(),
        deployments: deployments.len(),
        deployment_frequency_per_day: (deployments.len() as f64 / days * 1000.0).round() / 1000.0,
        lead_time: stats(lead_times),
        failed_changes: failed,
        change_failure_rate: (!deployments.is_empty())
            .then(|| (failed as f64 / deployments.len() as f64 * 1000.0).round() / 1000.0),
        time_to_restore: stats(restores),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_model::fixture::minute;

    #[test]
    fn percentiles() {
        let s = stats(vec![5.0, 1.0, 3.0, 2.0, 4.0]).unwrap_or(DurationStats {
            samples: 0,
            median_seconds: 0.0,
            p90_seconds: 0.0,
        });
        assert_eq!((s.samples, s.median_seconds, s.p90_seconds), (5, 3.0, 5.0));
        let even = stats(vec![1.0, 2.0, 3.0, 4.0]).map(|s| s.median_seconds);
        assert_eq!(even, Some(2.5));
        assert_eq!(stats(Vec::new()), None);
    }

    #[test]
    fn the_four_metrics() {
        let ok = Deployment::test().service("payments").build(); // committed 10 min before
        let failed = Deployment::test()
            .service("payments")
            .started_at_minute(60)
            .finished_at(minute(65))
            .failed()
            .build();
        let blamed_one = Deployment::test()
            .service("payments")
            .started_at_minute(120)
            .build();
        let resolved = Alert::test("f", "payments", 130).resolved_at(150);
        let firing = Alert::test("g", "payments", 200);
        let blamed: BTreeSet<Uid> = [blamed_one.uid.clone()].into();
        let m = metrics(
            ("payments", "production", "default"),
            minute(0),
            minute(0) + chrono::Duration::days(2),
            &[ok, failed, blamed_one],
            &[resolved, firing],
            &blamed,
        );
        assert_eq!(m.deployments, 3);
        assert_eq!(m.deployment_frequency_per_day, 1.5);
        assert_eq!(m.failed_changes, 2);
        assert_eq!(m.change_failure_rate, Some(0.667));
        let lead = m.lead_time.map(|l| (l.samples, l.median_seconds));
        assert_eq!(lead, Some((3, 600.0)));
        let restore = m.time_to_restore.map(|r| (r.samples, r.median_seconds));
        assert_eq!(restore, Some((1, 1200.0)));
    }

    #[test]
    fn a_reviewer_s_verdict_decides_over_the_probability() {
        use deploygraph_model::VerdictKind::{Confirmed, Rejected};
        assert!(counts_as_failure(Some(0.5), None));
        assert!(!counts_as_failure(Some(0.49), None));
        assert!(!counts_as_failure(None, None));
        assert!(counts_as_failure(Some(0.1), Some(Confirmed)));
        assert!(counts_as_failure(None, Some(Confirmed)));
        assert!(!counts_as_failure(Some(0.95), Some(Rejected)));
    }

    #[test]
    fn a_removal_is_not_a_deployment() {
        let ok = Deployment::test().service("payments").build();
        let removed = Deployment::test()
            .service("payments")
            .started_at_minute(60)
            .status(DeploymentStatus::Removed)
            .build();
        let m = metrics(
            ("payments", "production", "default"),
            minute(0),
            minute(0) + chrono::Duration::days(1),
            &[ok, removed],
            &[],
            &BTreeSet::new(),
        );
        assert_eq!((m.deployments, m.failed_changes), (1, 0));
    }
}
