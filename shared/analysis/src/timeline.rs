//! A service's timeline, one bounded page at a time.
//!
//! A timeline merges six listings — deployments, changes that are not rollouts, alerts (with
//! their resolution and reviewers' verdicts on their suspects), infra snapshots, chaos runs
//! (with their end) and canary analyses of the service's deployments (with their decision) —
//! each of which the store
//! returns newest first,
//! a page at a time. A page of the timeline is the newest `limit` *items* of the window (an
//! alert and its resolution are one item, keyed by its start; a chaos run and its end too, and a
//! canary analysis and its decision),
//! rendered as events oldest first; when more items are left, the page says `truncated` and its
//! `next_cursor` continues with the items before it. Nothing is lost between pages: a page only
//! keeps items no listing may have cut off before them.

use crate::views::{EventKind, Timeline, TimelineEvent};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use deploygraph_model::{
    AlertStatus, Cluster, Environment, ServiceName, ServiceRef, SubjectKind, SuspectVerdict, Uid,
    Verdict, VerdictKind,
};
use deploygraph_store::{
    AlertFilter, CanaryFilter, ChangeFilter, ChaosFilter, Cursor, DeploymentFilter, GraphStore,
    MAX_PAGE_SIZE, Result, RollbackFilter,
};
use std::collections::{BTreeSet, HashMap};

/// The item kinds of a timeline, in the order that breaks ties of equal times.
const DEPLOYMENT: u8 = 0;
const SNAPSHOT: u8 = 1;
const CHAOS: u8 = 2;
const ALERT: u8 = 3;
/// Changes sort after alerts at the same instant: cursors issued before changes were listed
/// keep their meaning.
const CHANGE: u8 = 4;
/// Canary analyses sort last at the same instant, for the same reason.
const CANARY: u8 = 5;
/// Rollbacks of the service's deployments.
const ROLLBACK: u8 = 6;

/// Where a timeline page ends: the oldest item it holds, by (time, kind, uid).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimelineCursor {
    at_us: i64,
    kind: u8,
    uid: String,
}

impl TimelineCursor {
    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("t{}:{}:{}", self.kind, self.at_us, self.uid))
    }

    /// Parses a string from [`TimelineCursor::encode`]; `None` for anything else.
    pub fn decode(value: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
        let mut parts = text.strip_prefix('t')?.splitn(3, ':');
        let kind: u8 = parts.next()?.parse().ok().filter(|k| *k <= CANARY)?;
        let at_us: i64 = parts.next()?.parse().ok()?;
        let uid = parts.next().filter(|u| !u.is_empty() && u.len() <= 128)?;
        Some(Self {
            at_us,
            kind,
            uid: uid.to_owned(),
        })
    }
}

/// Which page of a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelinePage {
    /// Most items (1..=[`MAX_PAGE_SIZE`]).
    pub limit: usize,
    /// Continue before this position (a previous page's `next_cursor`).
    pub cursor: Option<TimelineCursor>,
}

impl Default for TimelinePage {
    fn default() -> Self {
        Self {
            limit: MAX_PAGE_SIZE,
            cursor: None,
        }
    }
}

struct Item {
    position: TimelineCursor,
    events: Vec<TimelineEvent>,
}

impl Item {
    fn new(at: DateTime<Utc>, kind: u8, uid: &Uid, events: Vec<TimelineEvent>) -> Self {
        Self {
            position: TimelineCursor {
                at_us: at.timestamp_micros(),
                kind,
                uid: uid.as_str().to_owned(),
            },
            events,
        }
    }
}

/// What one listing returned: its items (newest first), and when it stopped at its cap, the
/// position of the last row it returned (older rows may be missing).
struct Listed {
    items: Vec<Item>,
    cut_at: Option<TimelineCursor>,
}

impl Listed {
    /// From up to `limit + 1` items: the extra one only says the listing was cut.
    fn of(items: Vec<Item>, limit: usize) -> Self {
        Self {
            cut_at: (items.len() > limit)
                .then(|| items.last().map(|i| i.position.clone()))
                .flatten(),
            items,
        }
    }
}

/// The upper bound a listing of `kind` takes from the page's cursor: the time to list until
/// (inclusive) and, for the cursor's own kind, the store cursor that excludes the items at or
/// after it.
fn upper(
    cursor: Option<&TimelineCursor>,
    kind: u8,
    until: DateTime<Utc>,
) -> (DateTime<Utc>, Option<Cursor>) {
    let Some(c) = cursor else {
        return (until, None);
    };
    let Some(at) = DateTime::from_timestamp_micros(c.at_us) else {
        return (until, None);
    };
    match kind.cmp(&c.kind) {
        // Items of a kind ordered before the cursor's, at its time, come before it.
        std::cmp::Ordering::Less => (at.min(until), None),
        std::cmp::Ordering::Equal => (
            at.min(until),
            Some(Cursor {
                started_at_us: c.at_us,
                uid: c.uid.clone(),
            }),
        ),
        std::cmp::Ordering::Greater => ((at - Duration::microseconds(1)).min(until), None),
    }
}

fn deployment_event(d: &deploygraph_model::Deployment) -> TimelineEvent {
    TimelineEvent {
        at: d.started_at,
        kind: EventKind::Deployment,
        uid: d.uid.clone(),
        summary: format!(
            "{} {} to {} ({}, commit {}, {} change(s))",
            d.service,
            d.version.as_deref().unwrap_or("deployment"),
            d.environment,
            d.status.as_str(),
            d.short_commit(),
            d.changes.len()
        ),
        fingerprint: None,
    }
}

fn change_event(c: &deploygraph_model::Change) -> TimelineEvent {
    let keys: Vec<String> = c
        .diff
        .iter()
        .take(3)
        .map(|k| {
            format!(
                "{} {} -> {}",
                k.key,
                k.before.as_deref().unwrap_or("∅"),
                k.after.as_deref().unwrap_or("∅")
            )
        })
        .collect();
    let more = c.diff.len().saturating_sub(keys.len());
    let mut summary = format!(
        "{} change of {} by {}",
        c.kind.as_str(),
        c.service_names(),
        c.actor
    );
    if !keys.is_empty() {
        summary.push_str(": ");
        summary.push_str(&keys.join(", "));
        if more > 0 {
            summary.push_str(&format!(" and {more} more key(s)"));
        }
    }
    if let Some(text) = &c.summary {
        summary.push_str(&format!(" ({text})"));
    }
    TimelineEvent {
        at: c.at,
        kind: EventKind::Change,
        uid: c.uid.clone(),
        summary,
        fingerprint: None,
    }
}

fn alert_events(a: &deploygraph_model::Alert) -> Vec<TimelineEvent> {
    let what = a
        .summary
        .as_deref()
        .map_or(String::new(), |s| format!(": {s}"));
    let mut events = vec![TimelineEvent {
        at: a.starts_at,
        kind: EventKind::AlertFiring,
        uid: a.uid.clone(),
        summary: format!(
            "{} fired ({}){what}",
            a.name,
            a.severity.as_deref().unwrap_or("no severity")
        ),
        fingerprint: Some(a.fingerprint.clone()),
    }];
    if let (AlertStatus::Resolved, Some(end)) = (a.status, a.ends_at) {
        events.push(TimelineEvent {
            at: end,
            kind: EventKind::AlertResolved,
            uid: a.uid.clone(),
            summary: format!(
                "{} resolved after {} min",
                a.name,
                (end - a.starts_at).num_minutes()
            ),
            fingerprint: Some(a.fingerprint.clone()),
        });
    }
    events
}

/// How a verdict's subject reads in a timeline (`payments v2.3.0`, `feature_flag change of
/// checkout`), by uid: read in two batches.
async fn verdict_subjects(
    store: &dyn GraphStore,
    verdicts: &[SuspectVerdict],
) -> Result<HashMap<Uid, String>> {
    let of_kind = |kind: SubjectKind| -> Vec<Uid> {
        verdicts
            .iter()
            .filter(|v| v.subject == kind)
            .map(|v| v.subject_uid.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let mut names = HashMap::new();
    for d in store
        .get_deployments(&of_kind(SubjectKind::Deployment))
        .await?
    {
        let d = d.deployment;
        let what = format!(
            "deployment {} {}",
            d.service,
            d.version.as_deref().unwrap_or_else(|| d.short_commit())
        );
        names.insert(d.uid, what);
    }
    for c in store.get_changes(&of_kind(SubjectKind::Change)).await? {
        let what = format!("{} change of {}", c.kind.as_str(), c.service_names());
        names.insert(c.uid, what);
    }
    Ok(names)
}

fn verdict_event(
    a: &deploygraph_model::Alert,
    v: &SuspectVerdict,
    subjects: &HashMap<Uid, String>,
) -> TimelineEvent {
    let subject = subjects
        .get(&v.subject_uid)
        .cloned()
        .unwrap_or_else(|| format!("{} {}", v.subject.as_str(), v.subject_uid));
    let judged = match v.verdict {
        VerdictKind::Confirmed => "confirmed as the cause of",
        VerdictKind::Rejected => "rejected as the cause of",
    };
    TimelineEvent {
        at: v.at,
        kind: EventKind::Verdict,
        uid: v.subject_uid.clone(),
        summary: format!(
            "{subject} {judged} {} by {}{}",
            a.name,
            v.by,
            v.note
                .as_deref()
                .map_or(String::new(), |n| format!(": {n}"))
        ),
        fingerprint: Some(a.fingerprint.clone()),
    }
}

fn chaos_events(r: &deploygraph_model::ChaosRun) -> Vec<TimelineEvent> {
    let mut events = vec![TimelineEvent {
        at: r.started_at,
        kind: EventKind::ChaosStarted,
        uid: r.uid.clone(),
        summary: format!("chaos {} ({}) started", r.experiment, r.scenario),
        fingerprint: None,
    }];
    if let Some(end) = r.ended_at {
        events.push(TimelineEvent {
            at: end,
            kind: EventKind::ChaosEnded,
            uid: r.uid.clone(),
            summary: format!("chaos {} ended: {}", r.experiment, r.verdict.as_str()),
            fingerprint: None,
        });
    }
    events
}

/// The start and the decision of a canary analysis: `canary analysis of payments (template
/// http) started`, `canary of payments FAIL after 7 round(s) against the side_by_side baseline:
/// http-error-ratio failed (critical)`.
fn canary_events(a: &deploygraph_model::CanaryAnalysis) -> Vec<TimelineEvent> {
    let failing: Vec<String> = a
        .failing_metrics()
        .map(|m| {
            if m.critical {
                format!("{} failed (critical)", m.name)
            } else {
                format!("{} failed", m.name)
            }
        })
        .collect();
    let detail = if failing.is_empty() {
        String::new()
    } else {
        format!(": {}", failing.join(", "))
    };
    vec![
        TimelineEvent {
            at: a.started_at,
            kind: EventKind::CanaryStarted,
            uid: a.uid.clone(),
            summary: format!(
                "canary analysis of {} started (template {}, deployment {})",
                a.service.name, a.template, a.deployment
            ),
            fingerprint: None,
        },
        TimelineEvent {
            at: a.decided_at,
            kind: EventKind::CanaryDecided,
            uid: a.uid.clone(),
            summary: format!(
                "canary of {} {} after {} round(s) against the {} baseline{detail}",
                a.service.name,
                a.verdict.as_str().to_uppercase(),
                a.analyses,
                a.baseline_kind.as_str()
            ),
            fingerprint: None,
        },
    ]
}

/// A rollback: `payments rolled back (deployment/web in shop) by deploygraph canary analyze:
/// canary of payments failed: …`, a dry run said as such.
fn rollback_event(r: &deploygraph_model::Rollback) -> TimelineEvent {
    let place = match &r.namespace {
        Some(ns) => format!("{} in {ns}", r.target),
        None => r.target.clone(),
    };
    let restored = r
        .restored
        .as_ref()
        .map_or(String::new(), |p| format!(", restoring {p}"));
    TimelineEvent {
        at: r.at,
        kind: EventKind::RolledBack,
        uid: r.uid.clone(),
        summary: format!(
            "{} {} ({place}) by {}{restored}: {}",
            r.service.name,
            if r.dry_run {
                "rollback planned, dry run,"
            } else {
                "rolled back"
            },
            r.by,
            r.reason
        ),
        fingerprint: None,
    }
}

/// One page of everything recorded about a service in `[since, until]`: the newest
/// `page.limit` items before `page.cursor`, as events oldest first.
///
/// # Errors
/// The store's.
pub async fn timeline(
    store: &dyn GraphStore,
    service: &ServiceName,
    environment: Option<&Environment>,
    cluster: Option<&Cluster>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    page: &TimelinePage,
) -> Result<Timeline> {
    let limit = page.limit.clamp(1, MAX_PAGE_SIZE);
    let cursor = page.cursor.as_ref();
    let mut listings = Vec::with_capacity(6);

    let (to, after) = upper(cursor, DEPLOYMENT, until);
    let deployments = store
        .list_deployments(&DeploymentFilter {
            service: Some(service.clone()),
            environment: environment.cloned(),
            cluster: cluster.cloned(),
            since: Some(since),
            until: Some(to),
            limit,
            cursor: after,
            ..DeploymentFilter::default()
        })
        .await?;
    let ours: BTreeSet<Uid> = deployments
        .items
        .iter()
        .map(|d| d.deployment.uid.clone())
        .collect();
    let deployment_items: Vec<Item> = deployments
        .items
        .iter()
        .map(|d| {
            let d = &d.deployment;
            Item::new(d.started_at, DEPLOYMENT, &d.uid, vec![deployment_event(d)])
        })
        .collect();
    listings.push(Listed {
        cut_at: deployments
            .next_cursor
            .and(deployment_items.last().map(|i| i.position.clone())),
        items: deployment_items,
    });

    let (to, after) = upper(cursor, ALERT, until);
    let alerts = store
        .list_alerts(&AlertFilter {
            service: Some(service.clone()),
            environment: environment.cloned(),
            cluster: cluster.cloned(),
            since: Some(since),
            until: Some(to),
            limit: limit + 1,
            cursor: after,
            ..AlertFilter::default()
        })
        .await?;
    // Reviewers' verdicts belong to their alert's item, like its resolution.
    let alert_uids: Vec<Uid> = alerts.iter().map(|a| a.uid.clone()).collect();
    let verdicts = store.verdicts(&alert_uids).await?;
    let subjects = verdict_subjects(store, &verdicts).await?;
    listings.push(Listed::of(
        alerts
            .iter()
            .map(|a| {
                let mut events = alert_events(a);
                events.extend(
                    verdicts
                        .iter()
                        .filter(|v| v.alert_uid == a.uid)
                        .map(|v| verdict_event(a, v, &subjects)),
                );
                Item::new(a.starts_at, ALERT, &a.uid, events)
            })
            .collect(),
        limit,
    ));

    let (to, _) = upper(cursor, SNAPSHOT, until);
    let snapshots = if to < since {
        Vec::new()
    } else {
        store.list_snapshots(since, to, limit + 1).await?
    };
    // A snapshot taken for a deployment belongs here when the deployment is this service's
    // (in this environment): those of this page are known, the others are read in one batch.
    let others: Vec<Uid> = snapshots
        .iter()
        .filter_map(|s| s.deployment_uid.clone())
        .filter(|d| !ours.contains(d))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let theirs: BTreeSet<Uid> = store
        .get_deployments(&others)
        .await?
        .into_iter()
        .filter(|d| {
            d.deployment.service == *service
                && environment.is_none_or(|e| d.deployment.environment == *e)
        })
        .map(|d| d.deployment.uid)
        .collect();
    let mut listed = Listed {
        items: Vec::new(),
        cut_at: (snapshots.len() > limit)
            .then(|| {
                snapshots
                    .last()
                    .map(|s| Item::new(s.taken_at, SNAPSHOT, &s.uid, Vec::new()).position)
            })
            .flatten(),
    };
    for s in &snapshots {
        if s.deployment_uid
            .as_ref()
            .is_some_and(|d| !ours.contains(d) && !theirs.contains(d))
        {
            continue;
        }
        let failing = s
            .checks
            .iter()
            .filter(|c| c.status == Verdict::Fail)
            .count();
        let event = TimelineEvent {
            at: s.taken_at,
            kind: EventKind::Snapshot,
            uid: s.uid.clone(),
            summary: format!(
                "infra snapshot {} ({} check(s), {failing} failing)",
                s.verdict.as_str(),
                s.checks.len()
            ),
            fingerprint: None,
        };
        listed
            .items
            .push(Item::new(s.taken_at, SNAPSHOT, &s.uid, vec![event]));
    }
    listings.push(listed);

    let services: Vec<Uid> = store
        .find_services(service, None, environment, cluster)
        .await?
        .iter()
        .map(ServiceRef::uid)
        .collect();
    if !services.is_empty() {
        let (to, after) = upper(cursor, CHANGE, until);
        let changes = store
            .list_changes(&ChangeFilter {
                services: services.clone(),
                since: Some(since),
                until: Some(to),
                limit: limit + 1,
                cursor: after,
            })
            .await?;
        listings.push(Listed::of(
            changes
                .iter()
                .map(|c| Item::new(c.at, CHANGE, &c.uid, vec![change_event(c)]))
                .collect(),
            limit,
        ));
        let (to, after) = upper(cursor, CANARY, until);
        let analyses = store
            .list_canary_analyses(&CanaryFilter {
                services: services.clone(),
                since: Some(since),
                until: Some(to),
                limit: limit + 1,
                cursor: after,
            })
            .await?;
        listings.push(Listed::of(
            analyses
                .iter()
                .map(|a| Item::new(a.started_at, CANARY, &a.uid, canary_events(a)))
                .collect(),
            limit,
        ));
        let (to, after) = upper(cursor, ROLLBACK, until);
        let rollbacks = store
            .list_rollbacks(&RollbackFilter {
                services: services.clone(),
                since: Some(since),
                until: Some(to),
                limit: limit + 1,
                cursor: after,
            })
            .await?;
        listings.push(Listed::of(
            rollbacks
                .iter()
                .map(|r| Item::new(r.at, ROLLBACK, &r.uid, vec![rollback_event(r)]))
                .collect(),
            limit,
        ));
        let (to, after) = upper(cursor, CHAOS, until);
        let runs = store
            .list_chaos_runs(&ChaosFilter {
                services,
                since: Some(since),
                until: Some(to),
                limit: limit + 1,
                cursor: after,
                against: None,
            })
            .await?;
        listings.push(Listed::of(
            runs.iter()
                .map(|r| Item::new(r.started_at, CHAOS, &r.uid, chaos_events(r)))
                .collect(),
            limit,
        ));
    }

    // A listing that stopped at its cap may hold items older than its last one: only items
    // from that position on are known to be complete.
    let boundary = listings.iter().filter_map(|l| l.cut_at.clone()).max();
    let mut items: Vec<Item> = listings
        .into_iter()
        .flat_map(|l| l.items)
        .filter(|i| cursor.is_none_or(|c| i.position < *c))
        .filter(|i| boundary.as_ref().is_none_or(|b| i.position >= *b))
        .collect();
    items.sort_by(|a, b| b.position.cmp(&a.position));
    let truncated = boundary.is_some() || items.len() > limit;
    items.truncate(limit);
    let next_cursor = if truncated {
        items.last().map(|i| i.position.encode())
    } else {
        None
    };
    let mut events: Vec<TimelineEvent> = items
        .into_iter()
        .flat_map(|i| i.events)
        .filter(|e| e.at >= since && e.at <= until)
        .collect();
    events.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then(a.kind.cmp(&b.kind))
            .then(a.uid.cmp(&b.uid))
    });
    Ok(Timeline {
        service: service.to_string(),
        environment: environment.map(ToString::to_string),
        cluster: cluster.map(ToString::to_string),
        since,
        until,
        events,
        truncated,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = TimelineCursor {
            at_us: 1_763_632_000_000_000,
            kind: ALERT,
            uid: "alert-0123".into(),
        };
        assert_eq!(TimelineCursor::decode(&c.encode()), Some(c));
        for bad in ["", "!!!", "dDk6MTox", "eDA6MTph"] {
            assert_eq!(TimelineCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn listings_are_bounded_by_the_cursor_position() {
        let at = deploygraph_model::fixture::minute(10);
        let until = deploygraph_model::fixture::minute(60);
        let c = TimelineCursor {
            at_us: at.timestamp_micros(),
            kind: SNAPSHOT,
            uid: "snapshot-b".into(),
        };
        // Deployments at the cursor's time come before a snapshot: all of them are listed.
        assert_eq!(upper(Some(&c), DEPLOYMENT, until), (at, None));
        // Snapshots at that time: only those before its uid.
        let (to, after) = upper(Some(&c), SNAPSHOT, until);
        assert_eq!(to, at);
        assert_eq!(after.map(|a| a.uid), Some("snapshot-b".to_owned()));
        // Alerts at that time come after it: none of them.
        assert_eq!(
            upper(Some(&c), ALERT, until),
            (at - Duration::microseconds(1), None)
        );
        assert_eq!(upper(None, ALERT, until), (until, None));
    }
}
