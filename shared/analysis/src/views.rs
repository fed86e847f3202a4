//! What the queries answer: serializable views shared by the HTTP API and the CLI (which
//! reads them from a server or computes them from a store).

use chrono::{DateTime, Utc};
use deploygraph_model::{
    Alert, Change, ChaosRun, InfraSnapshot, ServiceRef, SubjectKind, SuspectVerdict, Uid,
    VerdictKind,
};
use deploygraph_store::StoredDeployment;
use serde::{Deserialize, Serialize};

/// One ranked suspect with its score and reasons: a deployment (with the keys it changed), or
/// a change that is not a rollout. `uid` and `subject` say which; the other field is absent.
/// A suspect written before changes were suspects (a deployment, without `uid` and `subject`)
/// reads as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SuspectWire")]
pub struct SuspectView {
    /// The suspect's uid (the deployment's or the change's).
    pub uid: Uid,
    /// `deployment` or `change`.
    pub subject: SubjectKind,
    /// The deployment, with its changes (a deployment suspect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<StoredDeployment>,
    /// The change (a change suspect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Confidence in `0..=1`.
    pub confidence_score: f64,
    /// Why.
    pub reasons: Vec<String>,
    /// When the score was computed (for a subject added by review: when it was confirmed).
    pub computed_at: DateTime<Utc>,
    /// A reviewer's verdict on it for this alert, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<VerdictView>,
    /// Not among the computed suspects, listed because a reviewer confirmed it as the cause
    /// (its `confidence_score` is 0 and it has no reasons: attribution did not rank it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub added_by_review: bool,
}

/// A reviewer's verdict on a suspect, as the suspects, the timeline and the incident report
/// show it: `(subject)-[:CAUSED {by, at, note}]->(alert)` or `-[:REJECTED …]->`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictView {
    /// `confirmed` or `rejected`.
    pub verdict: VerdictKind,
    /// Who gave it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl From<&SuspectVerdict> for VerdictView {
    fn from(v: &SuspectVerdict) -> Self {
        Self {
            verdict: v.verdict,
            by: v.by.clone(),
            at: v.at,
            note: v.note.clone(),
        }
    }
}

/// [`SuspectView`] as read: `uid` and `subject` may be missing (a deployment suspect).
#[derive(Deserialize)]
struct SuspectWire {
    #[serde(default)]
    uid: Option<Uid>,
    #[serde(default)]
    subject: Option<SubjectKind>,
    #[serde(default)]
    deployment: Option<StoredDeployment>,
    #[serde(default)]
    change: Option<Change>,
    confidence_score: f64,
    reasons: Vec<String>,
    computed_at: DateTime<Utc>,
    #[serde(default)]
    verdict: Option<VerdictView>,
    #[serde(default)]
    added_by_review: bool,
}

impl TryFrom<SuspectWire> for SuspectView {
    type Error = String;

    fn try_from(w: SuspectWire) -> Result<Self, Self::Error> {
        let (subject, uid) = match (&w.deployment, &w.change) {
            (Some(d), None) => (SubjectKind::Deployment, d.deployment.uid.clone()),
            (None, Some(c)) => (SubjectKind::Change, c.uid.clone()),
            _ => return Err("a suspect is one deployment or one change".to_owned()),
        };
        if w.subject.is_some_and(|s| s != subject) || w.uid.as_ref().is_some_and(|u| *u != uid) {
            return Err(format!(
                "suspect {uid}: its uid or subject names another suspect"
            ));
        }
        Ok(Self {
            uid,
            subject,
            deployment: w.deployment,
            change: w.change,
            confidence_score: w.confidence_score,
            reasons: w.reasons,
            computed_at: w.computed_at,
            verdict: w.verdict,
            added_by_review: w.added_by_review,
        })
    }
}

impl SuspectView {
    /// A deployment suspect.
    pub fn of_deployment(
        deployment: StoredDeployment,
        confidence_score: f64,
        reasons: Vec<String>,
        computed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            uid: deployment.deployment.uid.clone(),
            subject: SubjectKind::Deployment,
            deployment: Some(deployment),
            change: None,
            confidence_score,
            reasons,
            computed_at,
            verdict: None,
            added_by_review: false,
        }
    }

    /// A change suspect.
    pub fn of_change(
        change: Change,
        confidence_score: f64,
        reasons: Vec<String>,
        computed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            uid: change.uid.clone(),
            subject: SubjectKind::Change,
            deployment: None,
            change: Some(change),
            confidence_score,
            reasons,
            computed_at,
            verdict: None,
            added_by_review: false,
        }
    }
}

/// The chaos run an alert is attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosCause {
    /// The run (absent when only its uid is known).
    pub run: Option<ChaosRun>,
    /// The run's uid.
    pub run_uid: Uid,
    /// Why.
    pub reason: Option<String>,
}

/// `GET /v1/alerts/{fingerprint}/suspects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspects {
    /// The alert occurrence (the newest with the fingerprint unless one was asked for).
    pub alert: Alert,
    /// The services it fired on.
    pub services: Vec<ServiceRef>,
    /// A chaos run that caused it; then there are no suspects.
    pub chaos: Option<ChaosCause>,
    /// Ranked suspects, most likely first; each `confidence_score` is the probability that
    /// the deployment caused the alert. Each carries its reviewer's `verdict` when one was
    /// given; subjects a reviewer confirmed that are not among the computed suspects follow
    /// them, `added_by_review`.
    pub suspects: Vec<SuspectView>,
    /// The probability that no recorded change caused the alert: 1 minus the suspects' scores
    /// (0 when a chaos run caused it).
    #[serde(default)]
    pub unexplained: f64,
    /// The alert's attribution follow-up is pending: it was recorded moments ago and its
    /// suspects are not computed yet, or an alert of its storm recorded since asked for it to be
    /// attributed again (the suspects shown may change).
    #[serde(default)]
    pub attribution_pending: bool,
}

/// What kind of event a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A deployment started.
    Deployment,
    /// A change that is not a rollout took effect.
    Change,
    /// An infrastructure snapshot was taken.
    Snapshot,
    /// A chaos experiment started.
    ChaosStarted,
    /// A chaos experiment ended.
    ChaosEnded,
    /// An alert started firing.
    AlertFiring,
    /// An alert resolved.
    AlertResolved,
    /// A reviewer confirmed or rejected a suspect of an alert (`uid`: the suspect).
    Verdict,
    /// A canary analysis of a deployment started (`uid`: the analysis).
    CanaryStarted,
    /// A canary analysis decided its (latest) verdict (`uid`: the analysis).
    CanaryDecided,
    /// A deployment was rolled back, or a dry run planned it (`uid`: the rollback).
    RolledBack,
}

/// One entry of a service timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: EventKind,
    /// The uid of the deployment, change, alert, snapshot or run (for a verdict: the suspect
    /// judged).
    pub uid: Uid,
    /// One line for humans.
    pub summary: String,
    /// The alert's fingerprint, on alert events (firing, resolved) and reviewers' verdicts: the
    /// alert's address in the API (`/v1/alerts/{fingerprint}/suspects`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A service's deployments, changes, alerts, snapshots and chaos runs in a window, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The service.
    pub service: String,
    /// The environment, when one was asked for.
    pub environment: Option<String>,
    /// The cluster, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Window start.
    pub since: DateTime<Utc>,
    /// Window end.
    pub until: DateTime<Utc>,
    /// The events, oldest first.
    pub events: Vec<TimelineEvent>,
    /// Whether the window holds more than this page: the page is its newest items, and
    /// `next_cursor` gives the ones before them.
    #[serde(default)]
    pub truncated: bool,
    /// Pass as `cursor` to get the items before this page; `null` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One factor shared by failed deployments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    /// `config_key`, `image`, `chart`, `author`, `actor`, `dependency`, `failed_check`,
    /// `canary_failed` (the canary judge failed the deployment on the metric `value`) or
    /// `rolled_back` (the deployment was rolled back by `value`, the Rollback's `by`;
    /// `unrecorded` when its status is `rolled_back` but no Rollback is stored).
    pub kind: String,
    /// The key path, image, author, dependency, check or canary metric.
    pub value: String,
    /// How many of the examined deployments have it.
    pub count: usize,
    /// Which ones.
    pub deployments: Vec<Uid>,
}

/// `GET /v1/services/{name}/common-factors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommonFactors {
    /// The service.
    pub service: String,
    /// The environment, when one was asked for.
    pub environment: Option<String>,
    /// The failed (or rolled back) deployments examined, newest first.
    pub deployments: Vec<Uid>,
    /// Factors, the most shared first.
    pub factors: Vec<Factor>,
}

/// A summary of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DurationStats {
    /// How many samples.
    pub samples: usize,
    /// Median.
    pub median_seconds: f64,
    /// 90th percentile.
    pub p90_seconds: f64,
}

/// DORA metrics of one service in one environment over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoraMetrics {
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: String,
    /// The cluster (`default` when the facts name none): the same service in two clusters is
    /// two rows.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Deployments started in the period.
    pub deployments: usize,
    /// Deployments per day.
    pub deployment_frequency_per_day: f64,
    /// Commit time to deployment finish.
    pub lead_time: Option<DurationStats>,
    /// Deployments that failed, were rolled back or were the top suspect of an alert.
    pub failed_changes: usize,
    /// `failed_changes / deployments`.
    pub change_failure_rate: Option<f64>,
    /// Alert start to resolution.
    pub time_to_restore: Option<DurationStats>,
}

fn default_cluster() -> String {
    deploygraph_model::Cluster::DEFAULT.to_owned()
}

/// `GET /v1/dora`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dora {
    /// Period start.
    pub since: DateTime<Utc>,
    /// Period end.
    pub until: DateTime<Utc>,
    /// One row per service, environment and cluster.
    pub services: Vec<DoraMetrics>,
}

/// Who owns a service and its SLA tier, as the topology sources recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOwnership {
    /// The service.
    pub service: ServiceRef,
    /// The team that owns it, when known.
    pub owner: Option<String>,
    /// Its SLA tier, when known.
    pub tier: Option<String>,
}

/// A post-incident review draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentReport {
    /// The alert and its ranked suspects (or chaos cause).
    pub suspects: Suspects,
    /// The alert's service timeline around the incident.
    pub timeline: Timeline,
    /// The infrastructure snapshot taken before the rollout of the deployment a reviewer
    /// confirmed as the cause, else of the top suspect (none when that is a change).
    pub snapshot: Option<InfraSnapshot>,
    /// Changes that are not rollouts on the alert's services and their dependencies in the
    /// window before the alert (suspects or not), newest first.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Chaos runs against the alert's services, newest first.
    pub chaos_history: Vec<ChaosRun>,
    /// Canary analyses of the suspects' deployments, newest first: the judge's verdict, its
    /// baseline and each metric's outcome and rule.
    #[serde(default)]
    pub canary_analyses: Vec<deploygraph_model::CanaryAnalysis>,
    /// Rollbacks of the suspects' deployments (dry runs included, marked), newest first.
    #[serde(default)]
    pub rollbacks: Vec<deploygraph_model::Rollback>,
    /// DORA metrics of the alert's services over the 30 days before the alert.
    pub dora: Dora,
    /// The owner and tier of each of the alert's services.
    #[serde(default)]
    pub owners: Vec<ServiceOwnership>,
    /// The services involved: the alert's and their dependencies, with DEPENDS_ON edges.
    pub topology: Vec<(ServiceRef, Vec<ServiceRef>)>,
    /// A Mermaid flowchart of services, suspect deployments and changes, and the alert.
    pub mermaid: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_model::Deployment;

    #[test]
    fn suspects_read_back_and_old_deployment_suspects_still_read() {
        let at = deploygraph_model::fixture::minute(10);
        let deployment = StoredDeployment {
            deployment: Deployment::test().build(),
            follows: None,
        };
        let change = Change::test().build();
        for view in [
            SuspectView::of_deployment(deployment.clone(), 0.5, vec!["r".into()], at),
            SuspectView::of_change(change.clone(), 0.4, vec![], at),
        ] {
            let json = serde_json::to_value(&view).expect("json");
            assert_eq!(json["uid"], serde_json::to_value(&view.uid).expect("uid"));
            assert_eq!(serde_json::from_value::<SuspectView>(json).ok(), Some(view));
        }
        let mut old = serde_json::to_value(SuspectView::of_deployment(
            deployment.clone(),
            0.5,
            vec![],
            at,
        ))
        .expect("json");
        let object = old.as_object_mut().expect("an object");
        object.remove("uid");
        object.remove("subject");
        let read: SuspectView = serde_json::from_value(old.clone()).expect("an old suspect");
        assert_eq!(read.subject, SubjectKind::Deployment);
        assert_eq!(read.uid, deployment.deployment.uid);
        old["subject"] = serde_json::json!("change");
        assert!(serde_json::from_value::<SuspectView>(old).is_err());
    }
}
