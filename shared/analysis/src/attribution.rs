//! Which deployments most likely triggered an alert, with a confidence score and the reasons.
//!
//! A candidate is a deployment that finished (or started, while in progress) within the window
//! before the alert started, on the alert's service or on a service it depends on. Its score
//! is the product of five components, each in `0..=1`:
//!
//! | component | value |
//! |---|---|
//! | time proximity | `exp(-Δt / (window / 4))`: about 0.78 at 15 min in a 2 h window, 0.37 at 30 min |
//! | relation | 1 on the alert's service, `0.6^depth` on a dependency |
//! | change risk | `0.4 + 0.6 × risk`, risk = 0.3 + 0.25 image + 0.03 per config change (at most 10) + 0.1 replicas + 0.1 secrets, capped at 1 |
//! | status | failed 1.0, rolled back 0.9, in progress 0.8, removed 0.8, succeeded 0.6 |
//! | history | `0.5 + 0.5 × (alerts after + 1) / (deployments + 2)`: how often alerts followed this service's deployments |
//!
//! When a chaos experiment was running on the alert's service at the alert's start, the alert
//! is attributed to that run and to no deployment.

use chrono::{DateTime, Duration, Utc};
use deploygraph_model::redact::{REDACTED, is_secret_path};
use deploygraph_model::{ChangeKind, Deployment, DeploymentStatus, SubjectKind, Uid};
use serde::Serialize;

/// How a candidate's service relates to the alert's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The alert fired on this service.
    SameService,
    /// The alert's service depends on it, `depth` hops away (1 = direct).
    Dependency {
        /// Hops along DEPENDS_ON.
        depth: u32,
    },
}

/// What changed in a candidate deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeSummary {
    /// The image (digest) changed.
    pub image_changed: bool,
    /// Number of config changes.
    pub config_changes: u32,
    /// The replica count changed.
    pub replicas_changed: bool,
    /// A secret-looking value changed.
    pub secret_changed: bool,
}

impl ChangeSummary {
    /// What `deployment` changed, compared with the deployment it follows (`previous`). The
    /// image counts as changed when a change says so, when the digests differ from the
    /// previous deployment's, or when there is no previous deployment.
    pub fn of(deployment: &Deployment, previous: Option<&Deployment>) -> Self {
        let digests = |d: &Deployment| {
            d.images
                .iter()
                .map(deploygraph_model::Image::reference)
                .collect::<std::collections::BTreeSet<_>>()
        };
        let image_changed = deployment
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::Image)
            || previous.is_none_or(|p| digests(p) != digests(deployment));
        let config_changes = deployment
            .changes
            .iter()
            .filter(|c| !matches!(c.kind, ChangeKind::Image | ChangeKind::Replicas))
            .count();
        let secret_changed = deployment.changes.iter().any(|c| {
            is_secret_path(&c.path)
                || c.before.as_deref().is_some_and(|v| v.contains(REDACTED))
                || c.after.as_deref().is_some_and(|v| v.contains(REDACTED))
        });
        Self {
            image_changed,
            config_changes: u32::try_from(config_changes).unwrap_or(u32::MAX),
            replicas_changed: deployment
                .changes
                .iter()
                .any(|c| c.kind == ChangeKind::Replicas),
            secret_changed,
        }
    }
}

/// A deployment (or a change that is not a rollout) that may have triggered the alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its uid.
    pub deployment: Uid,
    /// A deployment, or a change (mapped onto a deployment's fields: landed at `started_at`,
    /// status succeeded).
    pub subject: SubjectKind,
    /// Its service's name.
    pub service: String,
    /// Start of the rollout.
    pub started_at: DateTime<Utc>,
    /// End of the rollout, when it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its status.
    pub status: DeploymentStatus,
    /// How its service relates to the alert's.
    pub relation: Relation,
    /// What it changed.
    pub changes: ChangeSummary,
    /// Earlier deployments of the same service.
    pub prior_deployments: u32,
    /// How many of those were followed by an alert.
    pub prior_followed_by_alerts: u32,
}

/// A chaos run that was active on the alert's service.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveChaos {
    /// The run's uid.
    pub run: Uid,
    /// The experiment (`pod-delete`).
    pub experiment: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended, when it has.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Tunables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// How far back before the alert deployments count.
    pub window: Duration,
    /// Scores below this are not recorded.
    pub floor: f64,
    /// How many DEPENDS_ON hops from the alert's service candidates may be.
    pub depth: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window: Duration::hours(2),
            floor: 0.05,
            depth: 1,
        }
    }
}

/// One scored candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// The deployment.
    pub deployment: Uid,
    /// Confidence in `0..=1`.
    pub confidence_score: f64,
    /// Why, one reason per component.
    pub reasons: Vec<String>,
}

/// The outcome of attributing one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribution {
    /// Ranked suspects, most likely first, above the floor.
    Deployments(Vec<Suspect>),
    /// A chaos experiment caused it.
    Chaos {
        /// The run.
        run: Uid,
        /// Why.
        reason: String,
    },
}

fn minutes(d: Duration) -> i64 {
    d.num_minutes()
}

/// Scores one candidate for an alert that started at `alert_start`; `None` when it is outside
/// the window (or after the alert started).
pub fn score(
    alert_start: DateTime<Utc>,
    candidate: &Candidate,
    settings: &Settings,
) -> Option<Suspect> {
    let landed = match candidate.status {
        DeploymentStatus::InProgress => candidate.started_at,
        _ => candidate.finished_at.unwrap_or(candidate.started_at),
    };
    let reference = if landed > alert_start {
        candidate.started_at
    } else {
        landed
    };
    let delta = alert_start - reference;
    if delta < Duration::zero() || delta > settings.window {
        return None;
    }
    let tau = (settings.window.num_seconds() as f64 / 4.0).max(1.0);
    let proximity = (-(delta.num_seconds() as f64) / tau).exp();
    let verb = match candidate.subject {
        SubjectKind::Deployment => "deployed to",
        SubjectKind::Change => "changed",
    };
    let (relation, relation_reason) = match candidate.relation {
        Relation::SameService => (
            1.0,
            format!("{verb} {}, the alerting service", candidate.service),
        ),
        Relation::Dependency { depth } => (
            0.6f64.powi(i32::try_from(depth).unwrap_or(i32::MAX)),
            format!(
                "{verb} {}, a dependency {depth} hop(s) away",
                candidate.service
            ),
        ),
    };
    let c = candidate.changes;
    let risk = (0.3
        + if c.image_changed { 0.25 } else { 0.0 }
        + 0.03 * f64::from(c.config_changes.min(10))
        + if c.replicas_changed { 0.1 } else { 0.0 }
        + if c.secret_changed { 0.1 } else { 0.0 })
    .min(1.0);
    let mut what = Vec::new();
    if c.image_changed {
        what.push("a new image".to_owned());
    }
    if c.config_changes > 0 {
        what.push(format!("{} config change(s)", c.config_changes));
    }
    if c.replicas_changed {
        what.push("a replica change".to_owned());
    }
    if c.secret_changed {
        what.push("a secret change".to_owned());
    }
    let (status, status_reason) = match candidate.status {
        DeploymentStatus::Failed => (1.0, "the rollout failed"),
        DeploymentStatus::RolledBack => (0.9, "the rollout was rolled back"),
        DeploymentStatus::InProgress => (0.8, "the rollout was still in progress"),
        DeploymentStatus::Succeeded => (0.6, "the rollout succeeded"),
        // Removing a service breaks what still calls it.
        DeploymentStatus::Removed => (0.8, "the service was removed"),
    };
    let status_reason = match candidate.subject {
        SubjectKind::Deployment => status_reason,
        SubjectKind::Change => "the change was applied",
    };
    let rate = (f64::from(candidate.prior_followed_by_alerts) + 1.0)
        / (f64::from(candidate.prior_deployments) + 2.0);
    let history = 0.5 + 0.5 * rate;
    let confidence = (proximity * relation * (0.4 + 0.6 * risk) * status * history).clamp(0.0, 1.0);
    let reasons = vec![
        format!("landed {} min before the alert started", minutes(delta)),
        relation_reason,
        if what.is_empty() {
            "changed nothing recorded".to_owned()
        } else {
            format!("changes: {}", what.join(", "))
        },
        status_reason.to_owned(),
        format!(
            "{} of {} earlier deployments of {} were followed by alerts",
            candidate.prior_followed_by_alerts, candidate.prior_deployments, candidate.service
        ),
    ];
    Some(Suspect {
        deployment: candidate.deployment.clone(),
        confidence_score: (confidence * 1000.0).round() / 1000.0,
        reasons,
    })
}

/// Attributes an alert that started at `alert_start`: to a chaos run active on its service,
/// or to its candidates ranked by score (above the floor).
pub fn attribute(
    alert_start: DateTime<Utc>,
    candidates: &[Candidate],
    chaos: &[ActiveChaos],
    settings: &Settings,
) -> Attribution {
    if let Some(run) = chaos
        .iter()
        .find(|c| c.started_at <= alert_start && c.ended_at.is_none_or(|end| alert_start <= end))
    {
        return Attribution::Chaos {
            run: run.run.clone(),
            reason: format!(
                "chaos experiment {} was running on the service when the alert started",
                run.experiment
            ),
        };
    }
    let mut suspects: Vec<Suspect> = candidates
        .iter()
        .filter_map(|c| score(alert_start, c, settings))
        .filter(|s| s.confidence_score >= settings.floor)
        .collect();
    suspects.sort_by(|a, b| {
        b.confidence_score
            .total_cmp(&a.confidence_score)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    Attribution::Deployments(suspects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::minutes(minute)
    }

    fn candidate(uid: &str, finished_minute: i64) -> Candidate {
        Candidate {
            deployment: Uid::from_stored(uid),
            subject: SubjectKind::Deployment,
            service: "payments".into(),
            started_at: at(finished_minute - 2),
            finished_at: Some(at(finished_minute)),
            status: DeploymentStatus::Succeeded,
            relation: Relation::SameService,
            changes: ChangeSummary::default(),
            prior_deployments: 0,
            prior_followed_by_alerts: 0,
        }
    }

    fn confidence(c: &Candidate) -> f64 {
        score(at(0), c, &Settings::default()).map_or(0.0, |s| s.confidence_score)
    }

    #[test]
    fn each_component_moves_the_score_the_right_way() {
        let base = candidate("d", -10);
        let b = confidence(&base);
        assert!(b > 0.0 && b < 1.0, "{b}");
        // (variant, expected: higher or lower than the base)
        let cases: Vec<(Candidate, bool, &str)> = vec![
            (
                Candidate {
                    finished_at: Some(at(-60)),
                    started_at: at(-62),
                    ..base.clone()
                },
                false,
                "older",
            ),
            (
                Candidate {
                    relation: Relation::Dependency { depth: 1 },
                    ..base.clone()
                },
                false,
                "dependency",
            ),
            (
                Candidate {
                    relation: Relation::Dependency { depth: 2 },
                    ..base.clone()
                },
                false,
                "deeper dependency",
            ),
            (
                Candidate {
                    changes: ChangeSummary {
                        image_changed: true,
                        ..ChangeSummary::default()
                    },
                    ..base.clone()
                },
                true,
                "new image",
            ),
            (
                Candidate {
                    changes: ChangeSummary {
                        config_changes: 5,
                        ..ChangeSummary::default()
                    },
                    ..base.clone()
                },
                true,
                "config",
            ),
            (
                Candidate {
                    status: DeploymentStatus::Failed,
                    ..base.clone()
                },
                true,
                "failed",
            ),
            (
                Candidate {
                    status: DeploymentStatus::RolledBack,
                    ..base.clone()
                },
                true,
                "rolled back",
            ),
            (
                Candidate {
                    prior_deployments: 10,
                    prior_followed_by_alerts: 8,
                    ..base.clone()
                },
                true,
                "history of alerts",
            ),
            (
                Candidate {
                    prior_deployments: 10,
                    prior_followed_by_alerts: 0,
                    ..base.clone()
                },
                false,
                "clean history",
            ),
        ];
        for (variant, higher, name) in cases {
            let v = confidence(&variant);
            assert_eq!(v > b, higher, "{name}: {v} vs base {b}");
        }
    }

    #[test]
    fn deployments_outside_the_window_or_after_the_alert_are_not_candidates() {
        assert!(score(at(0), &candidate("late", 5), &Settings::default()).is_none());
        assert!(score(at(0), &candidate("old", -121), &Settings::default()).is_none());
        let in_progress = Candidate {
            status: DeploymentStatus::InProgress,
            finished_at: None,
            started_at: at(-1),
            ..candidate("rolling", 0)
        };
        assert!(
            score(at(0), &in_progress, &Settings::default()).is_some(),
            "a rollout still in progress counts"
        );
    }

    #[test]
    fn suspects_are_ranked_with_reasons_and_the_floor_applies() {
        let risky = Candidate {
            status: DeploymentStatus::Failed,
            changes: ChangeSummary {
                image_changed: true,
                config_changes: 3,
                ..ChangeSummary::default()
            },
            ..candidate("risky", -5)
        };
        let quiet = Candidate {
            relation: Relation::Dependency { depth: 2 },
            ..candidate("quiet", -110)
        };
        let Attribution::Deployments(suspects) =
            attribute(at(0), &[quiet.clone(), risky], &[], &Settings::default())
        else {
            panic!("expected deployments");
        };
        assert_eq!(
            suspects.len(),
            1,
            "the quiet, distant one is under the floor: {suspects:?}"
        );
        assert_eq!(suspects[0].deployment.as_str(), "risky");
        assert_eq!(suspects[0].reasons.len(), 5);
        assert!(
            suspects[0].reasons[0].contains("5 min before"),
            "{:?}",
            suspects[0].reasons
        );
        assert!(
            suspects[0].reasons[2].contains("a new image, 3 config change(s)"),
            "{:?}",
            suspects[0].reasons
        );
        let lenient = Settings {
            floor: 0.0,
            ..Settings::default()
        };
        let Attribution::Deployments(all) = attribute(at(0), &[quiet], &[], &lenient) else {
            panic!("expected deployments");
        };
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn a_running_chaos_experiment_takes_the_blame() {
        let chaos = ActiveChaos {
            run: Uid::from_stored("chaos-1"),
            experiment: "pod-delete".into(),
            started_at: at(-3),
            ended_at: None,
        };
        let result = attribute(
            at(0),
            &[candidate("d", -5)],
            std::slice::from_ref(&chaos),
            &Settings::default(),
        );
        assert!(
            matches!(result, Attribution::Chaos { ref run, .. } if run.as_str() == "chaos-1"),
            "{result:?}"
        );
        let finished = ActiveChaos {
            ended_at: Some(at(-1)),
            ..chaos
        };
        assert!(matches!(
            attribute(
                at(0),
                &[candidate("d", -5)],
                &[finished],
                &Settings::default()
            ),
            Attribution::Deployments(_)
        ));
    }

    #[test]
    fn a_credential_redacted_inside_a_value_counts_as_a_secret_change() {
        let url = Deployment::test()
            .change(
                "env.DATABASE_URL",
                "postgres://u:old@host/db",
                "postgres://u:new@host/db",
            )
            .build();
        assert!(ChangeSummary::of(&url, None).secret_changed);
        let ordinary = Deployment::test()
            .change("env.DATABASE_HOST", "db-1", "db-2")
            .build();
        assert!(!ChangeSummary::of(&ordinary, None).secret_changed);
    }
}
