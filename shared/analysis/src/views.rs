//! What the queries answer: serializable views shared by the HTTP API and the CLI (which
//! reads them from a server or computes them from a store).

use chrono::{DateTime, Utc};
use deploygraph_model::{Alert, ChaosRun, InfraSnapshot, ServiceRef, Uid};
use deploygraph_store::StoredDeployment;
use serde::{Deserialize, Serialize};

/// One ranked suspect: a deployment with its score, reasons and changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspectView {
    /// The deployment, with its changes.
    pub deployment: StoredDeployment,
    /// Confidence in `0..=1`.
    pub confidence_score: f64,
    /// Why.
    pub reasons: Vec<String>,
    /// When the score was computed.
    pub computed_at: DateTime<Utc>,
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
    /// the deployment caused the alert.
    pub suspects: Vec<SuspectView>,
    /// The probability that no recorded change caused the alert: 1 minus the suspects' scores
    /// (0 when a chaos run caused it).
    #[serde(default)]
    pub unexplained: f64,
    /// The alert's attribution follow-up is pending: it was recorded moments ago and its
    /// suspects are not computed yet.
    #[serde(default)]
    pub attribution_pending: bool,
}

/// What kind of event a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A deployment started.
    Deployment,
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
}

/// One entry of a service timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: EventKind,
    /// The uid of the deployment, alert, snapshot or run.
    pub uid: Uid,
    /// One line for humans.
    pub summary: String,
}

/// A service's deployments, alerts, snapshots and chaos runs in a window, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The service.
    pub service: String,
    /// The environment, when one was asked for.
    pub environment: Option<String>,
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
    /// `config_key`, `image`, `chart`, `author`, `actor`, `dependency` or `failed_check`.
    pub kind: String,
    /// The key path, image, author, dependency or check.
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

/// `GET /v1/dora`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dora {
    /// Period start.
    pub since: DateTime<Utc>,
    /// Period end.
    pub until: DateTime<Utc>,
    /// One row per service and environment.
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
    /// The infrastructure snapshot taken before the top suspect's rollout.
    pub snapshot: Option<InfraSnapshot>,
    /// Chaos runs against the alert's services, newest first.
    pub chaos_history: Vec<ChaosRun>,
    /// DORA metrics of the alert's services over the 30 days before the alert.
    pub dora: Dora,
    /// The owner and tier of each of the alert's services.
    #[serde(default)]
    pub owners: Vec<ServiceOwnership>,
    /// The services involved: the alert's and their dependencies, with DEPENDS_ON edges.
    pub topology: Vec<(ServiceRef, Vec<ServiceRef>)>,
    /// A Mermaid flowchart of services, suspect deployments and the alert.
    pub mermaid: String,
}
