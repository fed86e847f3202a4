//! Values the store takes and returns.

use crate::error::{Error, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use deploygraph_model::{
    CanaryAnalysis, Change, Cluster, Deployment, DeploymentStatus, Environment, ReleaseSummary,
    Rollback, ServiceName, SuspectVerdict, Trigger, Uid, VerdictKind,
};
use serde::{Deserialize, Serialize};

/// The largest page a listing returns.
pub const MAX_PAGE_SIZE: usize = 10_000;

/// A certificate securing a Service (`(Certificate)-[:SECURES {via}]->(Service)`), as the
/// newest snapshot that saw it there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecuredCertificate {
    /// The certificate (a TLS Secret's leaf).
    pub certificate: deploygraph_model::CertificateRecord,
    /// The Service.
    pub service: deploygraph_model::ServiceRef,
    /// Through what: `ingress payments/api`, `gateway infra/public`.
    pub via: String,
    /// The snapshot that saw it last.
    pub snapshot_uid: Uid,
    /// When.
    pub seen_at: DateTime<Utc>,
}

impl SecuredCertificate {
    /// Keeps, for each Service and route, the certificates of the newest snapshot that saw one
    /// there (a renewed certificate replaces the old one); soonest to expire first.
    pub fn current(mut all: Vec<Self>) -> Vec<Self> {
        let mut newest: std::collections::HashMap<(Uid, String), DateTime<Utc>> =
            std::collections::HashMap::new();
        for s in &all {
            let key = (s.service.uid(), s.via.clone());
            let seen = newest.entry(key).or_insert(s.seen_at);
            if s.seen_at > *seen {
                *seen = s.seen_at;
            }
        }
        all.retain(|s| newest.get(&(s.service.uid(), s.via.clone())) == Some(&s.seen_at));
        all.sort_by(|a, b| {
            (a.certificate.not_after, &a.via, a.service.uid()).cmp(&(
                b.certificate.not_after,
                &b.via,
                b.service.uid(),
            ))
        });
        all
    }
}

/// A deployment as stored, with its place in the FOLLOWS chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDeployment {
    /// The recorded deployment.
    #[serde(flatten)]
    pub deployment: Deployment,
    /// Uid of the previous deployment of the same service and environment, by `started_at`.
    pub follows: Option<Uid>,
}

/// What recording one deployment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Newly recorded.
    Created,
    /// Already recorded; its status, finish time or validation advanced.
    Updated,
    /// Already recorded exactly so: nothing written.
    Unchanged,
    /// Its uid holds other facts: nothing written.
    Conflict,
    /// Written to a durable queue (the agent's spool) that delivers it to the store later,
    /// where it is created, updated, unchanged or a conflict; no store ever answers this.
    Queued,
}

impl RecordKind {
    /// The wire and metric name (`created`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Conflict => "conflict",
            Self::Queued => "queued",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Created,
            Self::Updated,
            Self::Unchanged,
            Self::Conflict,
            Self::Queued,
        ]
        .into_iter()
        .find(|k| k.as_str() == value)
    }
}

/// The outcome of recording one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOutcome {
    /// What happened.
    pub kind: RecordKind,
    /// The deployment as stored after the call (for a conflict: what was already stored).
    pub deployment: Deployment,
    /// Why it conflicts.
    pub conflict: Option<String>,
}

/// The outcome of recording one change (a change is never updated: it is created, found
/// unchanged, or conflicts).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeOutcome {
    /// What happened.
    pub kind: RecordKind,
    /// The change as stored after the call (for a conflict: what was already stored).
    pub change: Change,
    /// Why it conflicts.
    pub conflict: Option<String>,
}

/// The outcome of recording a canary analysis: created, updated (a later decision of the same
/// analysis replaced the stored one) or unchanged (stored exactly so: nothing written).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryOutcome {
    /// What happened (never a conflict).
    pub kind: RecordKind,
    /// The analysis as stored after the call, with its deployment's service.
    pub analysis: CanaryAnalysis,
}

/// The outcome of recording a rollback: created, unchanged (stored exactly so: nothing
/// written) or a conflict (its uid holds other facts, or the restored deployment is of another
/// service: nothing written).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackOutcome {
    /// What happened (never `Updated`: a rollback is recorded once).
    pub kind: RecordKind,
    /// The rollback as stored after the call (on a conflict over its uid, the stored one).
    pub rollback: Rollback,
    /// Why it conflicts, naming the field.
    pub conflict: Option<String>,
}

/// Which rollbacks to list, newest (by `at`, ties by the larger uid) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollbackFilter {
    /// Only rollbacks of deployments of one of these services (uids); all when empty.
    pub services: Vec<Uid>,
    /// Only rollbacks at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rollbacks at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
    /// Continue after this position (`at`, uid).
    pub cursor: Option<Cursor>,
}

/// Which gate overrides to list, newest (by `at`, ties by the larger uid) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateOverrideFilter {
    /// Only overrides of workloads in this namespace.
    pub namespace: Option<String>,
    /// Only overrides of workloads of this name.
    pub name: Option<String>,
    /// Only the overrides linked to this deployment.
    pub deployment: Option<Uid>,
    /// Only overrides at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
}

/// Which canary analyses to list, newest (by `started_at`, ties by the larger uid) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanaryFilter {
    /// Only analyses of deployments of one of these services (uids); all when empty.
    pub services: Vec<Uid>,
    /// Only analyses decided at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only analyses started at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
    /// Continue after this position (`started_at`, uid).
    pub cursor: Option<Cursor>,
}

/// The outcome of recording a release summary: created, updated (a later summary of the same
/// deployment and template replaced the stored one) or unchanged (stored exactly so).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOutcome {
    /// What happened (never a conflict).
    pub kind: RecordKind,
    /// The summary as stored after the call, with its deployment's service, version and start.
    pub summary: ReleaseSummary,
}

/// Which release summaries a history baseline reads: the summaries on `template` of the
/// service's deployments in `environment` that started before `before` (any namespace), leaving
/// out deployments that `failed` or were `rolled_back`; the most recent deployment first (ties
/// by the larger uid), at most `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryFilter {
    /// The service's name.
    pub service: ServiceName,
    /// Its environment.
    pub environment: Environment,
    /// The analysis template's name.
    pub template: String,
    /// Only deployments that started strictly before this time.
    pub before: DateTime<Utc>,
    /// At most this many.
    pub limit: usize,
}

/// Which changes to list, newest (by `at`) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeFilter {
    /// Only changes of one of these services (uids); all when empty.
    pub services: Vec<Uid>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// At or before.
    pub until: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
    /// Continue after this position (`at`, uid).
    pub cursor: Option<Cursor>,
}

/// A position in a newest-first listing: the last item returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// `started_at` in microseconds since the epoch.
    pub started_at_us: i64,
    /// Uid, the tie-breaker.
    pub uid: String,
}

impl Cursor {
    /// The cursor after `deployment`.
    pub fn after(deployment: &Deployment) -> Self {
        Self::at(deployment.started_at, &deployment.uid)
    }

    /// The cursor after the item listed at `time` with `uid` (an alert by its start, a chaos
    /// run by its start).
    pub fn at(time: DateTime<Utc>, uid: &Uid) -> Self {
        Self {
            started_at_us: time.timestamp_micros(),
            uid: uid.as_str().to_owned(),
        }
    }

    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.started_at_us, self.uid))
    }

    /// Parses a string from [`Cursor::encode`].
    ///
    /// # Errors
    /// [`Error::InvalidCursor`].
    pub fn decode(value: &str) -> Result<Self> {
        let bytes = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| Error::InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::InvalidCursor)?;
        let (us, uid) = text.split_once(':').ok_or(Error::InvalidCursor)?;
        let started_at_us = us.parse().map_err(|_| Error::InvalidCursor)?;
        if uid.is_empty() || uid.len() > 64 {
            return Err(Error::InvalidCursor);
        }
        Ok(Self {
            started_at_us,
            uid: uid.to_owned(),
        })
    }
}

/// Which deployments to list.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentFilter {
    /// Only this service.
    pub service: Option<ServiceName>,
    /// Only this environment.
    pub environment: Option<Environment>,
    /// Only this cluster.
    pub cluster: Option<Cluster>,
    /// Only this status.
    pub status: Option<DeploymentStatus>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started at or before.
    pub until: Option<DateTime<Utc>>,
    /// At most this many items (1..=[`MAX_PAGE_SIZE`]).
    pub limit: usize,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
}

impl Default for DeploymentFilter {
    fn default() -> Self {
        Self {
            service: None,
            environment: None,
            cluster: None,
            status: None,
            since: None,
            until: None,
            limit: 50,
            cursor: None,
        }
    }
}

/// Listing parameters as text — a query string or command-line flags — before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Service name.
    #[param(value_type = Option<ServiceName>)]
    pub service: Option<String>,
    /// Environment.
    #[param(value_type = Option<Environment>)]
    pub environment: Option<String>,
    /// Cluster.
    #[param(value_type = Option<Cluster>)]
    pub cluster: Option<String>,
    /// Status.
    #[param(value_type = Option<DeploymentStatus>)]
    pub status: Option<String>,
    /// RFC 3339 lower bound of `started_at`.
    #[param(value_type = Option<deploygraph_model::schema::InputTime>)]
    pub since: Option<String>,
    /// RFC 3339 upper bound of `started_at`.
    #[param(value_type = Option<deploygraph_model::schema::InputTime>)]
    pub until: Option<String>,
    /// Page size, 1..=[`MAX_PAGE_SIZE`] (default 50).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 10000)]
    pub limit: Option<String>,
    /// Cursor from a previous page (`next_cursor`).
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

impl FilterParams {
    /// Validates the parameters into a filter.
    ///
    /// # Errors
    /// The first invalid parameter, named by its key (`limit`, `since`…).
    pub fn into_filter(self) -> Result<DeploymentFilter, deploygraph_model::Error> {
        let at = |field: &'static str| move |e: deploygraph_model::Error| e.within(field);
        let limit = match self.limit.as_deref() {
            None => DeploymentFilter::default().limit,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_PAGE_SIZE).contains(l))
                .ok_or_else(|| {
                    deploygraph_model::Error::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE_SIZE}"),
                    )
                })?,
        };
        Ok(DeploymentFilter {
            service: self
                .service
                .as_deref()
                .map(ServiceName::parse)
                .transpose()
                .map_err(at("service"))?,
            environment: self
                .environment
                .as_deref()
                .map(Environment::parse)
                .transpose()
                .map_err(at("environment"))?,
            cluster: self
                .cluster
                .as_deref()
                .map(Cluster::parse)
                .transpose()
                .map_err(at("cluster"))?,
            status: self
                .status
                .as_deref()
                .map(DeploymentStatus::parse)
                .transpose()
                .map_err(at("status"))?,
            since: self
                .since
                .as_deref()
                .map(|t| deploygraph_model::schema::parse_input_time("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| deploygraph_model::schema::parse_input_time("until", t))
                .transpose()?,
            limit,
            cursor: self
                .cursor
                .as_deref()
                .map(Cursor::decode)
                .transpose()
                .map_err(|_| {
                    deploygraph_model::Error::new("cursor", "not a cursor deploygraph issued")
                })?,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Whether more items match than this page holds (`next_cursor` is set).
    pub truncated: bool,
}

impl Page<StoredDeployment> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says another page exists.
    pub fn from_rows(mut rows: Vec<StoredDeployment>, limit: usize) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last()
                .map(|last| Cursor::after(&last.deployment).encode())
        } else {
            None
        };
        Self {
            items: rows,
            truncated: next_cursor.is_some(),
            next_cursor,
        }
    }
}

/// A service and a summary of its deployments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSummary {
    /// Service uid.
    pub uid: Uid,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: Option<String>,
    /// Environment.
    pub environment: String,
    /// Cluster.
    pub cluster: String,
    /// Number of deployments recorded.
    pub deployments: u64,
    /// Start of the newest deployment.
    pub last_deployed_at: Option<DateTime<Utc>>,
    /// The team that owns it, when known.
    pub owner: Option<String>,
    /// Its SLA tier, when known.
    pub tier: Option<String>,
}

/// How a topology write treats the edges it does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyMode {
    /// Each listed service's edges of the source become exactly the listed ones: the source's
    /// other edges of that service are removed (a file or catalog that is the whole truth).
    Replace,
    /// The listed edges are added or refreshed; nothing is removed (observations).
    Merge,
}

/// A write of one source's topology ([`crate::GraphStore::apply_topology`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyUpdate {
    /// Whose edges these are; other sources' edges are never touched.
    pub source: deploygraph_model::topology::EdgeSource,
    /// When the source asserted them: each written edge's `last_seen_at` becomes the later of
    /// this and its stored value.
    pub seen_at: DateTime<Utc>,
    /// Replace or merge.
    pub mode: TopologyMode,
    /// The services, their owner and tier (`None`: unchanged) and dependencies.
    pub services: Vec<deploygraph_model::topology::ServiceTopology>,
}

impl TopologyUpdate {
    /// The services ordered by uid, so that concurrent writers lock them in one order, and the
    /// dependencies of each deduplicated, without the service itself.
    pub fn normalized(&self) -> Vec<deploygraph_model::topology::ServiceTopology> {
        let mut services = self.services.clone();
        for s in &mut services {
            let me = s.service.clone();
            s.depends_on.retain(|d| *d != me);
            s.depends_on.sort_by_key(deploygraph_model::ServiceRef::uid);
            s.depends_on.dedup();
        }
        services.sort_by_key(|s| s.service.uid());
        services
    }
}

/// Which alerts to list, newest (by `starts_at`) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Only alerts on this service (its name, as mapped from the labels).
    pub service: Option<ServiceName>,
    /// Only this environment.
    pub environment: Option<Environment>,
    /// Only alerts in this cluster: its `cluster` label, or, without one, a service it fired on.
    pub cluster: Option<Cluster>,
    /// Only this fingerprint.
    pub fingerprint: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started at or before.
    pub until: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
    /// Continue after this position (`starts_at`, uid).
    pub cursor: Option<Cursor>,
}

/// Which chaos runs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChaosFilter {
    /// Only runs that targeted one of these services (uids); all when empty.
    pub services: Vec<Uid>,
    /// Only runs AGAINST this deployment.
    pub against: Option<Uid>,
    /// Only runs still active at or after this time (ended after it, or not ended).
    pub since: Option<DateTime<Utc>>,
    /// Only runs started at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
    /// Continue after this position (`started_at`, uid).
    pub cursor: Option<Cursor>,
}

/// An alert's stored attribution: the TRIGGERS relationships into it, from deployments and
/// from changes (highest confidence first), and the chaos run that RAISED it, when attribution
/// found one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredAttribution {
    /// `(DeploymentEvent|Change)-[:TRIGGERS]->(Alert)`, highest confidence first, ties by
    /// the smaller subject uid.
    pub triggers: Vec<Trigger>,
    /// The chaos run the alert is attributed to.
    pub chaos_run: Option<Uid>,
    /// Why the chaos run.
    pub chaos_reason: Option<String>,
}

/// A TRIGGERS relationship seen from its subject (a deployment or a change): the alert it is
/// a suspect of, how it ranks among that alert's suspects, and how many there are.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectTrigger {
    /// The relationship, as [`GraphStore::attribution`](crate::GraphStore::attribution) reads it.
    pub trigger: Trigger,
    /// The subject's place among the alert's suspects, 1 for the top one (ranked as
    /// [`GraphStore::attribution`](crate::GraphStore::attribution) ranks them).
    pub rank: u32,
    /// How many suspects the alert has.
    pub suspects: u32,
}

/// A deployment with the figures attribution's history component needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceHistory {
    /// Deployments of the service that started before the given time.
    pub deployments: u32,
    /// How many of those were blamed for an alert ([`is_blamed`]): confirmed as the cause of
    /// one by a reviewer (CAUSED), or TRIGGERS one with a confidence of [`BLAMED_CONFIDENCE`]
    /// or more that no reviewer rejected (REJECTED) for that alert.
    pub followed_by_alerts: u32,
}

/// The confidence at which a TRIGGERS edge blames its deployment (more likely than not),
/// unless a reviewer rejected the deployment for that alert.
pub const BLAMED_CONFIDENCE: f64 = 0.5;

/// One key's record: of its most recent changes before a time (at most a limit), how many there
/// were and how many were blamed for an alert ([`crate::GraphStore::key_history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHistory {
    /// The key: a deployment's config change path, or a key a change that is not a rollout
    /// changed.
    pub path: String,
    /// Its most recent changes before the given time, at most the limit: deployments that
    /// changed it and changes that are not rollouts with it.
    pub changes: u32,
    /// How many of those were blamed for an alert ([`is_blamed`]: confirmed by a reviewer, or a
    /// TRIGGERS with a confidence of [`BLAMED_CONFIDENCE`] or more that no reviewer rejected).
    pub followed_by_alerts: u32,
}

/// The most distinct paths one [`crate::GraphStore::key_history`] call reads; later ones are
/// left out.
pub const KEY_HISTORY_MAX_PATHS: usize = 64;

/// The largest `limit` of [`crate::GraphStore::key_history`]; a larger one reads this many.
pub const KEY_HISTORY_MAX_LIMIT: u32 = 500;

/// Whether a subject is blamed for one alert: a reviewer's verdict decides (confirmed: yes,
/// rejected: no); without one, a TRIGGERS confidence of [`BLAMED_CONFIDENCE`] or more does.
/// Both stores count [`ServiceHistory::followed_by_alerts`] by this rule, and DORA's change
/// failure rate follows it.
pub fn is_blamed(confidence: Option<f64>, verdict: Option<VerdictKind>) -> bool {
    match verdict {
        Some(VerdictKind::Confirmed) => true,
        Some(VerdictKind::Rejected) => false,
        None => confidence.is_some_and(|c| c >= BLAMED_CONFIDENCE),
    }
}

/// What recording a verdict did ([`crate::GraphStore::record_verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictOutcome {
    /// `Created` (the first verdict on this subject for this alert), `Updated` (it replaced
    /// another) or `Unchanged` (the same verdict, reviewer and note were stored: nothing
    /// written).
    pub kind: RecordKind,
    /// The verdict as stored after the call.
    pub verdict: SuspectVerdict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_params_name_the_invalid_parameter() {
        for (params, field) in [
            (
                FilterParams {
                    limit: Some("0".into()),
                    ..FilterParams::default()
                },
                "limit",
            ),
            (
                FilterParams {
                    limit: Some("x".into()),
                    ..FilterParams::default()
                },
                "limit",
            ),
            (
                FilterParams {
                    status: Some("done".into()),
                    ..FilterParams::default()
                },
                "status",
            ),
            (
                FilterParams {
                    since: Some("today".into()),
                    ..FilterParams::default()
                },
                "since",
            ),
            (
                FilterParams {
                    service: Some("A_B".into()),
                    ..FilterParams::default()
                },
                "service",
            ),
            (
                FilterParams {
                    cursor: Some("!".into()),
                    ..FilterParams::default()
                },
                "cursor",
            ),
        ] {
            assert_eq!(
                params.into_filter().map_err(|e| e.field),
                Err(field.to_owned())
            );
        }
        let filter = FilterParams {
            limit: Some("1500".into()),
            ..FilterParams::default()
        }
        .into_filter()
        .map(|f| f.limit);
        assert_eq!(filter, Ok(1500));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            started_at_us: 1_763_632_000_000_000,
            uid: "deployment-0123".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        for bad in ["", "!!!", "bm9jb2xvbg", "YWJjOmRlZg"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
