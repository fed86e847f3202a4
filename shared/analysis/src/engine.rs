//! The queries, at the edge: gather facts from a [`GraphStore`], decide with the pure
//! functions of this crate, and (for attribution) write the decision back.

use crate::attribution::{
    ActiveChaos, AlertTime, Attribution, CanaryEvidence, Candidate, ChangeSummary, KeyRecord,
    Relation, Settings, attribute,
};
use crate::change_candidates;
use crate::dora;
use crate::factors::{FailedFacts, common_factors};
use crate::timeline::TimelinePage;
use crate::views::{
    ChaosCause, CommonFactors, Dora, DoraMetrics, IncidentReport, SuspectView, Suspects, Timeline,
    VerdictView,
};
use chrono::{DateTime, Duration, Utc};
use deploygraph_model::{
    Alert, Change, Cluster, DeploymentStatus, Environment, ServiceName, ServiceRef, SubjectKind,
    SuspectVerdict, Trigger, Uid, Verdict, VerdictKind,
};
use deploygraph_store::{
    AlertFilter, BLAMED_CONFIDENCE, ChaosFilter, DeploymentFilter, GraphStore, MAX_PAGE_SIZE,
    Result, ServiceHistory, StoredDeployment,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The services an alert's candidates may come from, with their relation to the alert: the
/// alert's own, then DEPENDS_ON up to `depth` hops (the nearest relation wins).
pub async fn related_services(
    store: &dyn GraphStore,
    alert_services: &[ServiceRef],
    depth: u32,
) -> Result<Vec<(ServiceRef, Relation)>> {
    Ok(related_with_edges(store, alert_services, depth)
        .await?
        .0
        .into_iter()
        .map(|r| (r.service, r.relation))
        .collect())
}

/// A service related to an alert's: how, and by which path of service names (from the
/// alerting service down to it).
#[derive(Debug, Clone)]
struct Related {
    service: ServiceRef,
    relation: Relation,
    path: Vec<String>,
}

/// [`related_services`] with the paths, and the dependencies read on the way (keyed by service
/// uid): the services of the last hop were not read.
async fn related_with_edges(
    store: &dyn GraphStore,
    alert_services: &[ServiceRef],
    depth: u32,
) -> Result<(Vec<Related>, HashMap<Uid, Vec<ServiceRef>>)> {
    let mut related: Vec<Related> = alert_services
        .iter()
        .map(|s| Related {
            service: s.clone(),
            relation: Relation::SameService,
            path: vec![s.shown()],
        })
        .collect();
    let mut edges: HashMap<Uid, Vec<ServiceRef>> = HashMap::new();
    let mut seen: BTreeSet<Uid> = alert_services.iter().map(ServiceRef::uid).collect();
    let mut frontier: Vec<usize> = (0..related.len()).collect();
    for hop in 1..=depth {
        if frontier.is_empty() {
            break;
        }
        // One read per hop for the whole frontier.
        let asked: Vec<ServiceRef> = frontier
            .iter()
            .map(|&index| related[index].service.clone())
            .collect();
        let found = store.dependencies_of_each(&asked).await?;
        let mut next = Vec::new();
        for (index, (service, dependencies)) in
            frontier.into_iter().zip(asked.into_iter().zip(found))
        {
            for dependency in &dependencies {
                if seen.insert(dependency.uid()) {
                    let mut path = related[index].path.clone();
                    path.push(dependency.shown());
                    related.push(Related {
                        service: dependency.clone(),
                        relation: Relation::Dependency { depth: hop },
                        path,
                    });
                    next.push(related.len() - 1);
                }
            }
            edges.insert(service.uid(), dependencies);
        }
        frontier = next;
    }
    Ok((related, edges))
}

/// How many of a key's most recent changes its history counts
/// ([`GraphStore::key_history`]'s limit): enough for a rate, bounded per key.
pub const KEY_HISTORY_LIMIT: u32 = 200;

/// The facts an alert is attributed from: its candidates (deployments and changes that are not
/// rollouts in the window on its service and its dependencies) and the chaos runs active on its
/// service.
pub async fn candidates(
    store: &dyn GraphStore,
    alert: &Alert,
    settings: &Settings,
) -> Result<(Vec<Candidate>, Vec<ActiveChaos>)> {
    let gathered = gather(store, alert, settings, false).await?;
    Ok((gathered.candidates, gathered.chaos))
}

/// What an attribution reads: the candidates, the active chaos runs, and (when asked for) the
/// alerts whose attribution this alert may change ([`attribute_new_alert`]).
struct Gathered {
    candidates: Vec<Candidate>,
    chaos: Vec<ActiveChaos>,
    revisits: Vec<Uid>,
    /// The services a cause of the alert could be on (its own and their dependencies).
    related: Vec<ServiceRef>,
}

/// [`candidates`], and with `choose_revisits` the alerts to revisit, chosen from the same reads.
async fn gather(
    store: &dyn GraphStore,
    alert: &Alert,
    settings: &Settings,
    choose_revisits: bool,
) -> Result<Gathered> {
    let services = store.alert_services(&alert.uid).await?;
    let related = related_with_edges(store, &services, settings.depth)
        .await?
        .0;
    let relation: HashMap<Uid, &Related> = related.iter().map(|r| (r.service.uid(), r)).collect();
    let relation_of = &relation;
    let nearest: HashMap<Uid, (String, Relation)> = related
        .iter()
        .map(|r| (r.service.uid(), (r.service.name.to_string(), r.relation)))
        .collect();
    let uids: Vec<Uid> = related.iter().map(|r| r.service.uid()).collect();
    let start = alert.starts_at;
    // Rollouts that started up to a window before the window still count when they landed in it.
    let earliest = start - settings.window * 2;
    // The reads that depend only on the services run together (each is one round trip).
    let chaos_filter = ChaosFilter {
        services: services.iter().map(ServiceRef::uid).collect(),
        since: Some(start),
        until: Some(start),
        limit: 10,
        cursor: None,
        against: None,
    };
    let (deployments, changes, runs) = tokio::try_join!(
        store.deployments_between(&uids, earliest, start),
        store.changes_between(&uids, start - settings.window, start),
        async {
            if services.is_empty() {
                Ok(Vec::new())
            } else {
                store.list_chaos_runs(&chaos_filter).await
            }
        },
    )?;
    // Changes that are not rollouts land at once: the window itself bounds them. Each on the
    // nearest of its services.
    let changes: Vec<(Change, Uid, String, Relation, &Related)> = changes
        .into_iter()
        .filter_map(|change| {
            let (service_uid, service, relation) = change_candidates::nearest(&change, &nearest)?;
            let related = *relation_of.get(&service_uid)?;
            Some((change, service_uid, service, relation, related))
        })
        .collect();
    // The deployments the candidates follow, and each service's history (deployments' and
    // changes'): one read each for all candidates, together. A service's history is its record
    // before the earliest of its changes read here, the same for all of its candidates: two
    // rollouts of one service are told apart by what they changed and when, not by how many
    // deployments preceded each (nor does a candidate count in its own history).
    let follows: Vec<Uid> = deployments
        .iter()
        .filter_map(|d| d.follows.clone())
        .collect();
    let mut asked: Vec<(Uid, DateTime<Utc>)> = deployments
        .iter()
        .map(|stored| &stored.deployment)
        .filter(|d| relation.contains_key(&d.service_uid()))
        .map(|d| (d.service_uid(), d.started_at))
        .chain(changes.iter().map(|c| (c.1.clone(), c.0.at)))
        .collect();
    // Sorted, each service's first entry is its earliest.
    asked.sort();
    asked.dedup_by(|later, first| later.0 == first.0);
    let (previous, histories) = tokio::try_join!(
        store.get_deployments(&follows),
        store.service_histories(&asked),
    )?;
    let previous: HashMap<Uid, deploygraph_model::Deployment> = previous
        .into_iter()
        .map(|p| (p.deployment.uid.clone(), p.deployment))
        .collect();
    let histories: HashMap<Uid, ServiceHistory> = histories
        .into_iter()
        .zip(asked)
        .map(|(h, (service, _))| (service, h))
        .collect();
    let mut candidates = Vec::with_capacity(deployments.len());
    // The keys each candidate changed, by index into `candidates`.
    let mut changed_keys: Vec<Vec<String>> = Vec::with_capacity(deployments.len());
    // Each candidate's service, by index into `candidates`.
    let mut services_of: Vec<ServiceRef> = Vec::with_capacity(deployments.len());
    for stored in &deployments {
        let d = &stored.deployment;
        let Some(related) = relation.get(&d.service_uid()) else {
            continue;
        };
        let previous = stored.follows.as_ref().and_then(|uid| previous.get(uid));
        let (prior_deployments, prior_followed_by_alerts) = histories
            .get(&d.service_uid())
            .map_or((0, 0), |h| (h.deployments, h.followed_by_alerts));
        let changes = ChangeSummary::of(d, previous);
        changed_keys.push(changes.keys.iter().map(|k| k.path.clone()).collect());
        candidates.push(Candidate {
            deployment: d.uid.clone(),
            subject: SubjectKind::Deployment,
            service: related.service.name.to_string(),
            started_at: d.started_at,
            finished_at: d.finished_at,
            status: d.status,
            relation: related.relation,
            path: related.path.clone(),
            changes,
            prior_deployments,
            prior_followed_by_alerts,
            key_history: Vec::new(),
            co_alerts: Vec::new(),
            canary: None,
        });
        services_of.push(related.service.clone());
    }
    for (change, service_uid, service, relation, related) in changes {
        let path = related.path.clone();
        let history = histories.get(&service_uid).cloned().unwrap_or_default();
        changed_keys.push(change_candidates::key_paths(&change));
        services_of.push(related.service.clone());
        candidates.push(change_candidates::candidate(
            &change, service, relation, path, history,
        ));
    }
    // Before the earliest time candidates are read from, so that no candidate counts in its own
    // history, nor a rival of the same alert. The two read different things: together.
    // A cause of this alert could be on any of the related services: an alert whose candidate is
    // on one of them counts this alert as a co-alert when its service depends on that one.
    let sources: Option<Vec<ServiceRef>> =
        choose_revisits.then(|| related.iter().map(|r| r.service.clone()).collect());
    // Each deployment's own canary analyses (newest first): evidence about it whenever they
    // were decided, before or after the alert (a canary failing on the regression its alert
    // reports is the common case).
    let analysed: Vec<Uid> = candidates
        .iter()
        .filter(|c| c.subject == SubjectKind::Deployment)
        .map(|c| c.deployment.clone())
        .collect();
    let (key_history, (co_alerts, revisits), analyses) = tokio::try_join!(
        key_history_of(store, &changed_keys, earliest),
        around_alert(
            store,
            alert,
            &candidates,
            &services_of,
            sources.as_deref(),
            settings.depth
        ),
        async {
            if analysed.is_empty() {
                Ok(Vec::new())
            } else {
                store.canary_analyses(&analysed).await
            }
        },
    )?;
    // Newest first: the first of each deployment is its latest verdict.
    let mut canaries: HashMap<Uid, CanaryEvidence> = HashMap::new();
    for analysis in &analyses {
        canaries
            .entry(analysis.deployment.clone())
            .or_insert_with(|| CanaryEvidence::of(analysis));
    }
    for ((candidate, keys), co) in candidates.iter_mut().zip(key_history).zip(co_alerts) {
        candidate.key_history = keys;
        candidate.co_alerts = co;
        // Keyed by deployment uid: a change never finds one.
        candidate.canary = canaries.remove(&candidate.deployment);
    }
    let chaos: Vec<ActiveChaos> = runs
        .into_iter()
        .map(|run| ActiveChaos {
            run: run.uid,
            experiment: run.experiment,
            started_at: run.started_at,
            ended_at: run.ended_at,
        })
        .collect();
    Ok(Gathered {
        candidates,
        chaos,
        revisits,
        related: related.into_iter().map(|r| r.service).collect(),
    })
}

/// How far apart two alerts may start and still count as one another's co-alerts
/// ([`Candidate::co_alerts`]): the alerts of one storm start within minutes of each other.
pub const CO_ALERT_SPAN: Duration = Duration::hours(1);

/// The most services whose alerts are read for an alert's co-alerts (nearest first: the
/// candidates' own services, then those that depend on them), and the most alerts read per
/// service: enough to tell a storm from a lone alert (the evidence grows with the logarithm of
/// the count), bounded so that a storm of thousands does not make every attribution read
/// thousands of alerts.
const CO_ALERT_SERVICES: usize = 32;
const CO_ALERTS_PER_SERVICE: usize = 20;

/// The most alerts one new alert asks to re-attribute ([`attribute_new_alert`]).
pub const REVISIT_LIMIT: usize = 32;

/// Each candidate's [`Candidate::co_alerts`], in `candidates`' order: the other alerts that
/// started within [`CO_ALERT_SPAN`] of `alert` and after the candidate landed, on the
/// candidate's service (`services_of`, by candidate) or a service that depends on it up to
/// `depth` hops. With `sources` (the services a cause of `alert` could be on), also the alerts
/// to revisit: those that started within [`CO_ALERT_SPAN`] of it on a service that depends, up to
/// `depth` hops, on one of `sources` — `alert` is one of their co-alerts — nearest start first, at
/// most [`REVISIT_LIMIT`]. Both from the same reads: one probe for any other alert around it
/// first (nothing more when there is none), one read of dependents per hop for every walk, one
/// read of the alerts of the nearest [`CO_ALERT_SERVICES`] services of each purpose
/// ([`CO_ALERTS_PER_SERVICE`] each).
async fn around_alert(
    store: &dyn GraphStore,
    alert: &Alert,
    candidates: &[Candidate],
    services_of: &[ServiceRef],
    sources: Option<&[ServiceRef]>,
    depth: u32,
) -> Result<(Vec<Vec<String>>, Vec<Uid>)> {
    let none = || (vec![Vec::new(); candidates.len()], Vec::new());
    if candidates.is_empty() && sources.is_none_or(<[ServiceRef]>::is_empty) {
        return Ok(none());
    }
    let around = |limit: usize| AlertFilter {
        environment: alert.environment.clone(),
        since: Some(alert.starts_at - CO_ALERT_SPAN),
        until: Some(alert.starts_at + CO_ALERT_SPAN),
        limit,
        ..AlertFilter::default()
    };
    let probe = store.list_alerts(&around(2)).await?;
    if probe.iter().all(|a| a.uid == alert.uid) {
        return Ok(none());
    }
    // Every distinct service to walk from: the candidates' first, then the sources'. Walked
    // together (one read of dependents per hop for all of them).
    let mut walked: Vec<ServiceRef> = Vec::new();
    for service in services_of.iter().chain(sources.unwrap_or_default()) {
        if !walked.iter().any(|w| w.uid() == service.uid()) {
            walked.push(service.clone());
        }
    }
    let walks = dependent_walks(store, &walked, depth).await?;
    let reach: HashMap<Uid, &Vec<ServiceRef>> =
        walked.iter().map(ServiceRef::uid).zip(&walks).collect();
    let walks_of = |of: &[ServiceRef]| -> Vec<Vec<ServiceRef>> {
        let mut seen: BTreeSet<Uid> = BTreeSet::new();
        of.iter()
            .filter(|s| seen.insert(s.uid()))
            .filter_map(|s| reach.get(&s.uid()).map(|w| (*w).clone()))
            .collect()
    };
    let co_names = nearest_names(&walks_of(services_of), CO_ALERT_SERVICES);
    let revisit_names =
        sources.map_or_else(Vec::new, |s| nearest_names(&walks_of(s), CO_ALERT_SERVICES));
    let mut names = co_names.clone();
    for name in &revisit_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let found: Vec<Alert> = store
        .alerts_of_services(&names, &around(CO_ALERTS_PER_SERVICE))
        .await?
        .into_iter()
        .filter(|a| a.uid != alert.uid)
        .collect();
    let on =
        |a: &Alert, names: &[ServiceName]| a.service.as_ref().is_some_and(|s| names.contains(s));
    let mut co_alerts = Vec::with_capacity(candidates.len());
    for (candidate, service) in candidates.iter().zip(services_of) {
        let below = reach
            .get(&service.uid())
            .map(|w| w.as_slice())
            .unwrap_or_default();
        // As for its lead time: a rollout still running when the alert started counts from
        // its start.
        let landed = match candidate.landed() {
            landed if landed > alert.starts_at => candidate.started_at,
            landed => landed,
        };
        co_alerts.push(
            found
                .iter()
                .filter(|a| on(a, &co_names) && a.starts_at >= landed)
                .filter_map(|a| {
                    let name = a.service.as_ref()?;
                    below
                        .iter()
                        .any(|s| {
                            &s.name == name
                                && a.environment.as_ref().is_none_or(|e| *e == s.environment)
                        })
                        .then(|| name.to_string())
                })
                .collect(),
        );
    }
    let mut revisits: Vec<&Alert> = found.iter().filter(|a| on(a, &revisit_names)).collect();
    revisits.sort_by(|a, b| {
        let apart = |x: &Alert| (x.starts_at - alert.starts_at).abs();
        apart(a)
            .cmp(&apart(b))
            .then_with(|| a.uid.as_str().cmp(b.uid.as_str()))
    });
    revisits.truncate(REVISIT_LIMIT);
    Ok((
        co_alerts,
        revisits.into_iter().map(|a| a.uid.clone()).collect(),
    ))
}

/// Each candidate's [`Candidate::key_history`]: the records of the keys it changed
/// (`changed_keys`, by candidate), read in one call for all of them.
async fn key_history_of(
    store: &dyn GraphStore,
    changed_keys: &[Vec<String>],
    before: DateTime<Utc>,
) -> Result<Vec<Vec<KeyRecord>>> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let paths: Vec<String> = changed_keys
        .iter()
        .flatten()
        .filter(|p| seen.insert(p.as_str()))
        .cloned()
        .collect();
    if paths.is_empty() {
        return Ok(vec![Vec::new(); changed_keys.len()]);
    }
    let records: HashMap<String, KeyRecord> = store
        .key_history(&paths, before, KEY_HISTORY_LIMIT)
        .await?
        .into_iter()
        .map(|h| {
            (
                h.path.clone(),
                KeyRecord {
                    path: h.path,
                    changes: h.changes,
                    blamed: h.followed_by_alerts,
                },
            )
        })
        .collect();
    Ok(changed_keys
        .iter()
        .map(|keys| {
            let keys: BTreeSet<&String> = keys.iter().collect();
            keys.into_iter()
                .filter_map(|k| records.get(k).cloned())
                .collect()
        })
        .collect())
}

/// Attributes `alert` and stores the result: TRIGGERS to the suspects at or above the floor
/// with their probabilities (replacing earlier ones), or RAISED from the chaos run active on
/// its service.
pub async fn attribute_alert(
    store: &dyn GraphStore,
    alert: &Alert,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Attribution> {
    Ok(reattribute_alert(store, alert, settings, now).await?.0)
}

/// [`attribute_alert`], with the later alerts whose revisit it enqueued because it changed which
/// subjects this alert blames ([`Stored::later`]).
///
/// # Errors
/// The store's.
pub async fn reattribute_alert(
    store: &dyn GraphStore,
    alert: &Alert,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<(Attribution, Vec<Uid>)> {
    let stored = attribute_and_store(store, alert, settings, now, false).await?;
    Ok((stored.attribution, stored.later))
}

/// What [`attribute_and_store`] did.
pub struct Stored {
    /// The attribution stored.
    pub attribution: Attribution,
    /// The alerts around the new one whose attribution it may change (only when asked for):
    /// not enqueued, the caller decides.
    pub around: Vec<Uid>,
    /// The later alerts whose revisit was enqueued because this attribution changed which
    /// subjects the alert blames ([`deploygraph_store::is_blamed`]): their candidates'
    /// histories count that blame ([`GraphStore::service_history`] counts an earlier alert's).
    pub later: Vec<Uid>,
}

/// [`attribute_alert`] for a newly recorded alert, with the alerts whose attribution it may
/// change because it is one of their co-alerts ([`Candidate::co_alerts`]): those that started
/// within [`CO_ALERT_SPAN`] of it on a service that depends, up to the attribution depth, on a
/// service its own cause could be on; nearest start first, at most [`REVISIT_LIMIT`], chosen
/// from the reads of its own attribution. The pipeline revisits them, so a storm delivered in
/// several notifications ends with every alert attributed knowing the others.
///
/// # Errors
/// The store's.
pub async fn attribute_new_alert(
    store: &dyn GraphStore,
    alert: &Alert,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Stored> {
    attribute_and_store(store, alert, settings, now, true).await
}

async fn attribute_and_store(
    store: &dyn GraphStore,
    alert: &Alert,
    settings: &Settings,
    now: DateTime<Utc>,
    choose_revisits: bool,
) -> Result<Stored> {
    // What the alert blamed before, read with the facts: the alert's attributions are written
    // one at a time (its follow-ups), so nothing else replaces it in between.
    let (
        Gathered {
            candidates,
            chaos,
            revisits,
            related,
        },
        previous,
    ) = tokio::try_join!(
        gather(store, alert, settings, choose_revisits),
        store.attribution(&alert.uid),
    )?;
    let blamed_before: BTreeSet<Uid> = previous
        .triggers
        .iter()
        .filter(|t| t.confidence_score >= BLAMED_CONFIDENCE)
        .map(|t| t.subject_uid.clone())
        .collect();
    let subjects: HashMap<Uid, SubjectKind> = candidates
        .iter()
        .map(|c| (c.deployment.clone(), c.subject))
        .collect();
    let attribution = attribute(AlertTime::of(alert), &candidates, &chaos, settings);
    match &attribution {
        Attribution::Deployments { suspects, .. } => {
            let triggers: Vec<Trigger> = suspects
                .iter()
                .map(|s| Trigger {
                    subject: subjects
                        .get(&s.deployment)
                        .copied()
                        .unwrap_or(SubjectKind::Deployment),
                    subject_uid: s.deployment.clone(),
                    alert_uid: alert.uid.clone(),
                    confidence_score: s.confidence_score,
                    reasons: s.reasons.clone(),
                    computed_at: now,
                })
                .collect();
            store
                .replace_attribution(&alert.uid, &triggers, None)
                .await?;
        }
        Attribution::Chaos { run, reason } => {
            store
                .replace_attribution(&alert.uid, &[], Some((run, reason)))
                .await?;
        }
    }
    let blamed_now: BTreeSet<Uid> = match &attribution {
        Attribution::Deployments { suspects, .. } => suspects
            .iter()
            .filter(|s| s.confidence_score >= BLAMED_CONFIDENCE)
            .map(|s| s.deployment.clone())
            .collect(),
        Attribution::Chaos { .. } => BTreeSet::new(),
    };
    let later = if blamed_now == blamed_before {
        Vec::new()
    } else {
        revisit_later(store, alert, &related, settings, now).await?
    };
    Ok(Stored {
        attribution,
        around: revisits,
        later,
    })
}

/// Enqueues a revisit of the alerts that started after `alert` — up to twice the window after
/// it, on the services its cause could be on (`related`) and on those that depend on them — once
/// its attribution changed which subjects it blames: a candidate of theirs that started after
/// it counts that blame in its service's history. Each revisit may change what its alert blames
/// in turn, and so revisit alerts later still; the chain ends because it only moves forward in
/// time. Alerts beyond twice the window keep their answer until something else revisits them.
async fn revisit_later(
    store: &dyn GraphStore,
    alert: &Alert,
    related: &[ServiceRef],
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Uid>> {
    // Strictly after it: the stores keep starts to the microsecond.
    let after = alert.starts_at + Duration::microseconds(1);
    let span = (after, alert.starts_at + settings.window * 2);
    let enqueued = revisit_around(store, &alert.uid, related, span, settings, now).await?;
    if !enqueued.is_empty() {
        tracing::debug!(alert.uid = %alert.uid, revisits = enqueued.len(), "what the alert blames changed: later alerts revisited");
    }
    Ok(enqueued)
}

/// The services whose alerts a change of each of `services` may explain — itself, then the
/// services that depend on it (reverse DEPENDS_ON) up to `depth` hops, nearest first — in
/// `services`' order, walked together: each hop's dependents are read in one call for every
/// walk, and each service's at most once.
async fn dependent_walks(
    store: &dyn GraphStore,
    services: &[ServiceRef],
    depth: u32,
) -> Result<Vec<Vec<ServiceRef>>> {
    let mut walks: Vec<Vec<ServiceRef>> = services.iter().map(|s| vec![s.clone()]).collect();
    let mut seen: Vec<BTreeSet<Uid>> = services.iter().map(|s| BTreeSet::from([s.uid()])).collect();
    let mut frontiers = walks.clone();
    let mut read: HashMap<Uid, Vec<ServiceRef>> = HashMap::new();
    for _ in 0..depth {
        let mut unread: Vec<ServiceRef> = Vec::new();
        let mut asked: BTreeSet<Uid> = BTreeSet::new();
        for s in frontiers.iter().flatten() {
            if !read.contains_key(&s.uid()) && asked.insert(s.uid()) {
                unread.push(s.clone());
            }
        }
        if !unread.is_empty() {
            let found = store.dependents_of_each(&unread).await?;
            for (s, dependents) in unread.iter().zip(found) {
                read.insert(s.uid(), dependents);
            }
        }
        for ((walk, seen), frontier) in walks.iter_mut().zip(&mut seen).zip(&mut frontiers) {
            let mut next = Vec::new();
            for s in frontier.iter() {
                for dependent in read.get(&s.uid()).into_iter().flatten() {
                    if seen.insert(dependent.uid()) {
                        walk.push(dependent.clone());
                        next.push(dependent.clone());
                    }
                }
            }
            *frontier = next;
        }
        if frontiers.iter().all(Vec::is_empty) {
            break;
        }
    }
    Ok(walks)
}

/// The distinct service names of `walks`, nearest first (each walk's first service, then the
/// next of each, and so on), at most `limit`.
fn nearest_names(walks: &[Vec<ServiceRef>], limit: usize) -> Vec<ServiceName> {
    let mut names: Vec<ServiceName> = Vec::new();
    let longest = walks.iter().map(Vec::len).max().unwrap_or(0);
    for at in 0..longest {
        for s in walks.iter().filter_map(|w| w.get(at)) {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    names.truncate(limit);
    names
}

/// The most alerts of one service re-attributed after one deployment or change.
const REATTRIBUTE_LIMIT: usize = 1000;

/// Re-attributes the alerts that started within the window after the deployment, on its
/// service and on the services that depend on it (up to the attribution depth): a deployment
/// recorded after its alert (CI reports late, a watcher catches up) is still considered, and so
/// is a dependency's change for its dependents' alerts. The alerts are revisited by the
/// follow-up pipeline; returns those a revisit is pending for.
pub async fn reattribute_after_deployment(
    store: &dyn GraphStore,
    deployment: &deploygraph_model::Deployment,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Uid>> {
    reattribute_after(
        store,
        &deployment.uid,
        &[deployment.service_ref()],
        deployment.started_at,
        settings,
        now,
    )
    .await
}

/// Re-attributes the alerts that started within the window after the change, on its services
/// and on the services that depend on them (up to the attribution depth), exactly as after a
/// late deployment. Returns the alerts a revisit is pending for.
pub async fn reattribute_after_change(
    store: &dyn GraphStore,
    change: &Change,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Uid>> {
    reattribute_after(
        store,
        &change.uid,
        &change.services,
        change.at,
        settings,
        now,
    )
    .await
}

/// Has the alerts that started in `[at, at + window]` on `services` and their dependents
/// re-attributed: a revisit of each is enqueued ([`GraphStore::enqueue_revisits`]), so every
/// write of an alert's attribution is one of its own follow-ups, which are done one at a time
/// (a re-attribution done here, beside a worker attributing the same alert from older reads,
/// could be overwritten by that worker's older answer). `subject` (the deployment or change)
/// names the cause in logs. Returns the alerts a revisit is pending for.
async fn reattribute_after(
    store: &dyn GraphStore,
    subject: &Uid,
    services: &[ServiceRef],
    at: DateTime<Utc>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Uid>> {
    revisit_around(
        store,
        subject,
        services,
        (at, at + settings.window),
        settings,
        now,
    )
    .await
}

/// Enqueues a revisit of the alerts that started in `[from, to]` on `services` and on the
/// services that depend on them (up to the attribution depth), by name: an alert without an
/// environment label fired on every Service of its name; attribution itself follows FIRED_ON.
/// An alert with a cluster label is revisited only when a service of its name in its cluster
/// is among them.
/// At most [`REATTRIBUTE_LIMIT`] per service; `subject` (what asks) names the cause in logs and
/// is never among them. Returns the alerts a revisit is pending for.
async fn revisit_around(
    store: &dyn GraphStore,
    subject: &Uid,
    services: &[ServiceRef],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Uid>> {
    let mut affected: Vec<ServiceRef> = Vec::new();
    let mut seen: BTreeSet<Uid> = BTreeSet::new();
    for s in dependent_walks(store, services, settings.depth)
        .await?
        .into_iter()
        .flatten()
    {
        if seen.insert(s.uid()) {
            affected.push(s);
        }
    }
    // Their alerts in the span, read together (one round trip where the store allows).
    let mut names: Vec<ServiceName> = Vec::new();
    for service in &affected {
        if !names.contains(&service.name) {
            names.push(service.name.clone());
        }
    }
    let alerts = store
        .alerts_of_services(
            &names,
            &AlertFilter {
                since: Some(from),
                until: Some(to),
                limit: REATTRIBUTE_LIMIT,
                ..AlertFilter::default()
            },
        )
        .await?;
    let mut per_service: HashMap<&ServiceName, usize> = HashMap::new();
    for a in &alerts {
        if let Some(service) = &a.service {
            *per_service.entry(service).or_default() += 1;
        }
    }
    for (service, n) in per_service {
        if n >= REATTRIBUTE_LIMIT {
            tracing::warn!(subject.uid = %subject, service = %service, limit = REATTRIBUTE_LIMIT, "more alerts in the span than are re-attributed at once");
        }
    }
    // By name, then by cluster: an alert with a cluster label fired on its service in that
    // cluster only, so a change in another cluster cannot be among its suspects.
    let in_affected_cluster = |a: &Alert| match (&a.cluster, &a.service) {
        (Some(cluster), Some(name)) => affected
            .iter()
            .any(|s| &s.name == name && &s.cluster == cluster),
        _ => true,
    };
    let found: BTreeSet<Uid> = alerts
        .iter()
        .filter(|a| in_affected_cluster(a))
        .map(|a| a.uid.clone())
        .filter(|a| a != subject)
        .collect();
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<Uid> = found.into_iter().collect();
    store.enqueue_revisits(&found, now).await
}

/// The newest occurrence of `fingerprint`, or the one that started at `starts_at`.
pub async fn find_alert(
    store: &dyn GraphStore,
    fingerprint: &str,
    starts_at: Option<DateTime<Utc>>,
) -> Result<Option<Alert>> {
    if let Some(at) = starts_at {
        if let Some(found) = store.get_alert(&Alert::uid_for(fingerprint, &at)).await? {
            return Ok(Some(found));
        }
        // An occurrence keyed otherwise (a CDEvents incident: one per incident) by its start.
        return Ok(store
            .list_alerts(&AlertFilter {
                fingerprint: Some(fingerprint.to_owned()),
                limit: MAX_PAGE_SIZE,
                ..AlertFilter::default()
            })
            .await?
            .into_iter()
            .find(|a| a.starts_at == at));
    }
    Ok(store
        .list_alerts(&AlertFilter {
            fingerprint: Some(fingerprint.to_owned()),
            limit: 1,
            ..AlertFilter::default()
        })
        .await?
        .pop())
}

/// The alert's stored attribution with the suspects' deployments and changes, each with its
/// reviewer's verdict; subjects a reviewer confirmed that attribution did not rank follow the
/// ranked suspects, `added_by_review`.
pub async fn suspects(store: &dyn GraphStore, alert: Alert) -> Result<Suspects> {
    // What is stored about the alert, read together; then the subjects it names, together.
    // Pending: its first attribution, or a re-attribution a later alert of its storm asked for.
    let one = std::slice::from_ref(&alert.uid);
    let (services, stored, verdicts, pending) = tokio::try_join!(
        store.alert_services(&alert.uid),
        store.attribution(&alert.uid),
        store.verdicts(one),
        store.follow_up_stats(Some(one)),
    )?;
    let mut verdicts: BTreeMap<Uid, SuspectVerdict> = verdicts
        .into_iter()
        .map(|v| (v.subject_uid.clone(), v))
        .collect();
    let ranked: BTreeSet<&Uid> = stored.triggers.iter().map(|t| &t.subject_uid).collect();
    // Confirmed outside the ranking: the true cause may lie outside the window.
    let added: Vec<SuspectVerdict> = verdicts
        .values()
        .filter(|v| v.verdict == VerdictKind::Confirmed && !ranked.contains(&v.subject_uid))
        .cloned()
        .collect();
    let of_kind = |kind: SubjectKind| -> Vec<Uid> {
        stored
            .triggers
            .iter()
            .filter(|t| t.subject == kind)
            .map(|t| t.subject_uid.clone())
            .chain(
                added
                    .iter()
                    .filter(|v| v.subject == kind)
                    .map(|v| v.subject_uid.clone()),
            )
            .collect()
    };
    let (deployment_uids, change_uids) = (
        of_kind(SubjectKind::Deployment),
        of_kind(SubjectKind::Change),
    );
    let (deployments, changes, chaos_run) = tokio::try_join!(
        store.get_deployments(&deployment_uids),
        store.get_changes(&change_uids),
        async {
            match &stored.chaos_run {
                Some(run_uid) => store.get_chaos_run(run_uid).await,
                None => Ok(None),
            }
        },
    )?;
    let mut deployments: HashMap<Uid, StoredDeployment> = deployments
        .into_iter()
        .map(|d| (d.deployment.uid.clone(), d))
        .collect();
    let mut changes: HashMap<Uid, Change> =
        changes.into_iter().map(|c| (c.uid.clone(), c)).collect();
    let mut view_of = |subject: SubjectKind,
                       uid: &Uid,
                       confidence_score: f64,
                       reasons: Vec<String>,
                       computed_at: DateTime<Utc>| {
        match subject {
            SubjectKind::Deployment => deployments
                .remove(uid)
                .map(|d| SuspectView::of_deployment(d, confidence_score, reasons, computed_at)),
            SubjectKind::Change => changes
                .remove(uid)
                .map(|c| SuspectView::of_change(c, confidence_score, reasons, computed_at)),
        }
    };
    let mut views = Vec::with_capacity(stored.triggers.len() + added.len());
    for t in stored.triggers {
        let view = view_of(
            t.subject,
            &t.subject_uid,
            t.confidence_score,
            t.reasons,
            t.computed_at,
        );
        views.extend(view.map(|mut v| {
            v.verdict = verdicts.remove(&v.uid).as_ref().map(VerdictView::from);
            v
        }));
    }
    for v in &added {
        if let Some(mut view) = view_of(v.subject, &v.subject_uid, 0.0, Vec::new(), v.at) {
            view.verdict = Some(VerdictView::from(v));
            view.added_by_review = true;
            views.push(view);
        }
    }
    let chaos = stored.chaos_run.map(|run_uid| ChaosCause {
        run: chaos_run,
        run_uid,
        reason: stored.chaos_reason,
    });
    let attribution_pending = pending.alerts + pending.revisits > 0;
    let unexplained = if chaos.is_some() {
        0.0
    } else {
        let explained: f64 = views.iter().map(|v| v.confidence_score).sum();
        ((1.0 - explained).max(0.0) * 1000.0).round() / 1000.0
    };
    Ok(Suspects {
        alert,
        services,
        chaos,
        suspects: views,
        unexplained,
        attribution_pending,
    })
}

/// One page of everything recorded about a service in `[since, until]` ([`crate::timeline`]).
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
    crate::timeline::timeline(store, service, environment, cluster, since, until, page).await
}

/// What the last `last` failed or rolled-back deployments of a service have in common.
pub async fn common_factors_of(
    store: &dyn GraphStore,
    service: &ServiceName,
    (environment, cluster): (Option<&Environment>, Option<&Cluster>),
    last: usize,
    window: Duration,
) -> Result<CommonFactors> {
    let mut failed = Vec::new();
    for status in [DeploymentStatus::Failed, DeploymentStatus::RolledBack] {
        failed.extend(
            store
                .list_deployments(&DeploymentFilter {
                    service: Some(service.clone()),
                    environment: environment.cloned(),
                    cluster: cluster.cloned(),
                    status: Some(status),
                    limit: last,
                    ..DeploymentFilter::default()
                })
                .await?
                .items,
        );
    }
    failed.sort_by(|a, b| {
        b.deployment
            .started_at
            .cmp(&a.deployment.started_at)
            .then_with(|| b.deployment.uid.cmp(&a.deployment.uid))
    });
    failed.truncate(last);
    // The metrics the canary judge failed each deployment on, read in one batch.
    let failed_uids: Vec<Uid> = failed.iter().map(|d| d.deployment.uid.clone()).collect();
    let mut canary_failures: HashMap<Uid, BTreeSet<String>> = HashMap::new();
    for a in store.canary_analyses(&failed_uids).await? {
        canary_failures
            .entry(a.deployment.clone())
            .or_default()
            .extend(a.failing_metrics().map(|m| m.name.clone()));
    }
    // Who rolled each deployment back, read in one batch (dry runs changed nothing).
    let mut rolled_back: HashMap<Uid, BTreeSet<String>> = HashMap::new();
    for r in store.rollbacks(&failed_uids).await? {
        if !r.dry_run {
            rolled_back
                .entry(r.deployment.clone())
                .or_default()
                .insert(r.by);
        }
    }
    let mut facts = Vec::with_capacity(failed.len());
    for stored in &failed {
        let d = &stored.deployment;
        let mut f = FailedFacts::of(d);
        f.rolled_back_by = match rolled_back.remove(&d.uid) {
            Some(by) => by.into_iter().collect(),
            None if d.status == DeploymentStatus::RolledBack => vec!["unrecorded".to_owned()],
            None => Vec::new(),
        };
        f.failed_canary_metrics = canary_failures
            .remove(&d.uid)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        let dependencies = store.dependencies(&d.service_ref()).await?;
        if !dependencies.is_empty() {
            let uids: Vec<Uid> = dependencies.iter().map(ServiceRef::uid).collect();
            let deployed = store
                .deployments_between(&uids, d.started_at - window, d.started_at)
                .await?;
            let mut names: BTreeSet<String> = BTreeSet::new();
            for dep in deployed {
                let dep = dep.deployment;
                names.insert(match dep.version {
                    Some(v) => format!("{}@{v}", dep.service),
                    None => dep.service.to_string(),
                });
            }
            f.dependencies = names.into_iter().collect();
        }
        if let Some(snapshot) = store.snapshot_for_deployment(&d.uid).await? {
            f.failed_checks = snapshot
                .checks
                .iter()
                .filter(|c| c.status == Verdict::Fail)
                .map(|c| format!("{} {}", c.kind, c.target))
                .collect();
        }
        facts.push(f);
    }
    Ok(CommonFactors {
        service: service.to_string(),
        environment: environment.map(ToString::to_string),
        deployments: failed.iter().map(|d| d.deployment.uid.clone()).collect(),
        factors: common_factors(&facts),
    })
}

/// DORA metrics per service and environment over `[since, until]`; all services when
/// `service` is `None`.
pub async fn dora_metrics(
    store: &dyn GraphStore,
    service: Option<&ServiceName>,
    (environment, cluster): (Option<&Environment>, Option<&Cluster>),
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Dora> {
    // Every deployment of the window, a page at a time.
    let deployments = async {
        let mut deployments = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_deployments(&DeploymentFilter {
                    service: service.cloned(),
                    environment: environment.cloned(),
                    cluster: cluster.cloned(),
                    since: Some(since),
                    until: Some(until),
                    limit: MAX_PAGE_SIZE,
                    cursor,
                    ..DeploymentFilter::default()
                })
                .await?;
            deployments.extend(page.items.into_iter().map(|d| d.deployment));
            match page.next_cursor {
                Some(next) => {
                    cursor = Some(deploygraph_store::Cursor::decode(&next).map_err(|_| {
                        deploygraph_store::Error::Backend {
                            backend: "analysis",
                            operation: "page through deployments",
                            source: "the store returned a cursor it cannot read".into(),
                        }
                    })?)
                }
                None => break,
            }
        }
        Ok::<_, deploygraph_store::Error>(deployments)
    };
    let alerts = async {
        // Every alert of the window, a page at a time, and the top suspect of each page's alerts
        // in one query per page.
        let mut alerts = Vec::new();
        let mut blamed = BTreeSet::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_alerts(&AlertFilter {
                    service: service.cloned(),
                    environment: environment.cloned(),
                    cluster: cluster.cloned(),
                    since: Some(since),
                    until: Some(until),
                    limit: MAX_PAGE_SIZE,
                    cursor: cursor.take(),
                    ..AlertFilter::default()
                })
                .await?;
            let uids: Vec<Uid> = page.iter().map(|a| a.uid.clone()).collect();
            let (reviewed, tops) =
                tokio::try_join!(store.verdicts(&uids), store.top_triggers(&uids))?;
            let verdicts: HashMap<(&Uid, &Uid), VerdictKind> = reviewed
                .iter()
                .map(|v| ((&v.alert_uid, &v.subject_uid), v.verdict))
                .collect();
            for top in tops {
                // A change that is not a rollout blamed is no failed deployment.
                let verdict = verdicts.get(&(&top.alert_uid, &top.subject_uid)).copied();
                if top.subject == SubjectKind::Deployment
                    && dora::counts_as_failure(Some(top.confidence_score), verdict)
                {
                    blamed.insert(top.subject_uid);
                }
            }
            // A deployment a reviewer confirmed as an alert's cause is a failed change, whatever
            // its probability.
            blamed.extend(
                reviewed
                    .iter()
                    .filter(|v| {
                        v.subject == SubjectKind::Deployment
                            && dora::counts_as_failure(None, Some(v.verdict))
                    })
                    .map(|v| v.subject_uid.clone()),
            );
            let full = page.len() == MAX_PAGE_SIZE;
            cursor = page
                .last()
                .filter(|_| full)
                .map(|a| deploygraph_store::Cursor::at(a.starts_at, &a.uid));
            alerts.extend(page);
            if cursor.is_none() {
                break;
            }
        }
        Ok::<_, deploygraph_store::Error>((alerts, blamed))
    };
    let (deployments, (alerts, blamed)) = tokio::try_join!(deployments, alerts)?;
    // A service is its name, environment and cluster: the same name in two clusters is two rows.
    let mut groups: BTreeMap<(String, String, String), (Vec<_>, Vec<_>)> = BTreeMap::new();
    for d in deployments {
        groups
            .entry((
                d.service.to_string(),
                d.environment.to_string(),
                d.cluster.as_str().to_owned(),
            ))
            .or_default()
            .0
            .push(d);
    }
    for a in alerts {
        let (Some(s), Some(e)) = (&a.service, &a.environment) else {
            continue;
        };
        let (s, e) = (s.to_string(), e.to_string());
        // An alert without a cluster label counts for its service's only cluster, else for
        // the default one.
        let cluster = match &a.cluster {
            Some(c) => c.as_str().to_owned(),
            None => {
                // The groups of (s, e) are adjacent in key order: read from the first.
                let mut clusters = groups
                    .range((s.clone(), e.clone(), String::new())..)
                    .map(|(k, _)| k)
                    .take_while(|(gs, ge, _)| *gs == s && *ge == e)
                    .map(|(_, _, c)| c.clone());
                match (clusters.next(), clusters.next()) {
                    (Some(only), None) => only,
                    _ => Cluster::DEFAULT.to_owned(),
                }
            }
        };
        if let Some(group) = groups.get_mut(&(s, e, cluster)) {
            group.1.push(a);
        }
    }
    let services: Vec<DoraMetrics> = groups
        .iter()
        .map(|((s, e, c), (ds, alerts))| {
            dora::metrics((s, e, c), since, until, ds, alerts, &blamed)
        })
        .collect();
    Ok(Dora {
        since,
        until,
        services,
    })
}

/// A post-incident review draft for `alert`.
pub async fn incident_report(
    store: &dyn GraphStore,
    alert: Alert,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<IncidentReport> {
    let suspects = suspects(store, alert).await?;
    let alert = &suspects.alert;
    let since = alert.starts_at - settings.window;
    let until = alert.ends_at.unwrap_or(now).max(alert.starts_at) + Duration::minutes(15);
    let service = alert
        .service
        .clone()
        .or_else(|| suspects.services.first().map(|s| s.name.clone()));
    let timeline = match &service {
        Some(name) => {
            timeline(
                store,
                name,
                alert.environment.as_ref(),
                alert.cluster.as_ref(),
                since,
                until,
                &TimelinePage::default(),
            )
            .await?
        }
        None => Timeline {
            service: String::new(),
            environment: None,
            cluster: None,
            since,
            until,
            events: Vec::new(),
            truncated: false,
            next_cursor: None,
        },
    };
    // The cause a reviewer confirmed, else the top suspect.
    let cause = suspects
        .suspects
        .iter()
        .find(|s| {
            s.verdict
                .as_ref()
                .is_some_and(|v| v.verdict == VerdictKind::Confirmed)
        })
        .or_else(|| suspects.suspects.first());
    let snapshot = match cause.and_then(|s| s.deployment.as_ref()) {
        Some(top) => store.snapshot_for_deployment(&top.deployment.uid).await?,
        None => None,
    };
    let chaos_history = if suspects.services.is_empty() {
        Vec::new()
    } else {
        store
            .list_chaos_runs(&ChaosFilter {
                services: suspects.services.iter().map(ServiceRef::uid).collect(),
                limit: 10,
                ..ChaosFilter::default()
            })
            .await?
    };
    // What the canary judge said about each suspect deployment's rollout.
    let suspect_deployments: Vec<Uid> = suspects
        .suspects
        .iter()
        .filter_map(|s| s.deployment.as_ref().map(|d| d.deployment.uid.clone()))
        .collect();
    let canary_analyses = store.canary_analyses(&suspect_deployments).await?;
    let rollbacks = store.rollbacks(&suspect_deployments).await?;
    let dora = dora_metrics(
        store,
        service.as_ref(),
        (alert.environment.as_ref(), alert.cluster.as_ref()),
        alert.starts_at - Duration::days(30),
        alert.starts_at,
    )
    .await?;
    // Every related service with what it depends on: those read while finding them are not
    // read again.
    let (related, mut edges) =
        related_with_edges(store, &suspects.services, settings.depth).await?;
    let mut topology = Vec::with_capacity(related.len());
    for Related { service: s, .. } in related {
        let deps = match edges.remove(&s.uid()) {
            Some(deps) => deps,
            None => store.dependencies(&s).await?,
        };
        topology.push((s, deps));
    }
    let mut owners = Vec::with_capacity(suspects.services.len());
    for s in &suspects.services {
        let view = store.service_topology(s).await?;
        owners.push(crate::views::ServiceOwnership {
            service: view.service,
            owner: view.owner,
            tier: view.tier,
        });
    }
    let related_uids: Vec<Uid> = topology.iter().map(|(s, _)| s.uid()).collect();
    let changes = store
        .changes_between(
            &related_uids,
            alert.starts_at - settings.window,
            alert.starts_at,
        )
        .await?;
    let mermaid = crate::report::mermaid(&suspects, &topology);
    Ok(IncidentReport {
        suspects,
        timeline,
        snapshot,
        changes,
        chaos_history,
        canary_analyses,
        rollbacks,
        dora,
        owners,
        topology,
        mermaid,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use deploygraph_model::fixture::minute;
    use deploygraph_model::{Deployment, KeyChange};
    use deploygraph_store::MigrationSource;
    use deploygraph_store::sqlite::SqliteStore;

    fn blame(deployment: &Uid, alert: &Uid, confidence_score: f64) -> Trigger {
        Trigger {
            subject: SubjectKind::Deployment,
            subject_uid: deployment.clone(),
            alert_uid: alert.clone(),
            confidence_score,
            reasons: vec!["r".into()],
            computed_at: minute(0),
        }
    }

    #[tokio::test]
    async fn a_late_deployment_revisits_the_alerts_of_its_own_cluster_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), MigrationSource::Embedded)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // `api` runs in two clusters; its alerts carry their cluster, but one.
        let in_cluster = |fingerprint: &str, at: i64, cluster: Option<&str>| {
            let mut alert = Alert::test(fingerprint, "api", at);
            alert.cluster = cluster.map(|c| deploygraph_model::Cluster::parse(c).unwrap());
            if let Some(c) = cluster {
                alert.labels.insert("cluster".into(), c.into());
            }
            alert
        };
        let east = in_cluster("east", 110, Some("east"));
        let west = in_cluster("west", 112, Some("west"));
        let anywhere = in_cluster("anywhere", 115, None);
        store
            .record_alerts(vec![east.clone(), west.clone(), anywhere.clone()])
            .await
            .unwrap();
        // Their first attributions done (a revisit is not enqueued while one waits).
        let uids = [east.uid.clone(), west.uid.clone(), anywhere.uid.clone()];
        for f in store
            .claim_follow_ups(deploygraph_store::Claim {
                subjects: Some(&uids),
                limit: 10,
                now: minute(116),
                lease: Duration::seconds(60),
            })
            .await
            .unwrap()
        {
            store
                .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
                .await
                .unwrap();
        }
        // Reported after them: a deployment of `api` in the west cluster.
        let deployment = Deployment::test()
            .service("api")
            .cluster("west")
            .started_at_minute(100)
            .build();
        store
            .record_deployments(vec![deployment.clone()])
            .await
            .unwrap();
        let revisited: BTreeSet<Uid> =
            reattribute_after_deployment(&store, &deployment, &Settings::default(), minute(120))
                .await
                .unwrap()
                .into_iter()
                .collect();
        assert!(revisited.contains(&west.uid), "{revisited:?}");
        assert!(revisited.contains(&anywhere.uid), "{revisited:?}");
        assert!(!revisited.contains(&east.uid), "{revisited:?}");
    }

    #[tokio::test]
    async fn candidates_carry_their_keys_history_from_before_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), MigrationSource::Embedded)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // Earlier, on two services: three changes of the pool size, one of them blamed (and one
        // suspected below the blame threshold).
        let past: Vec<Deployment> = [("api", 0_i64), ("web", 10), ("api", 20)]
            .into_iter()
            .map(|(service, at)| {
                Deployment::test()
                    .service(service)
                    .image_seed(at.unsigned_abs() + 1)
                    .started_at_minute(at)
                    .change("values.pool.size", "50", &at.to_string())
                    .build()
            })
            .collect();
        store.record_deployments(past.clone()).await.unwrap();
        for (d, at, confidence) in [(&past[0], 5, 0.9), (&past[1], 15, 0.3)] {
            let alert = Alert::test(&format!("old{at}"), d.service.as_str(), at);
            store.record_alerts(vec![alert.clone()]).await.unwrap();
            store
                .replace_attribution(&alert.uid, &[blame(&d.uid, &alert.uid, confidence)], None)
                .await
                .unwrap();
        }
        // In the window: a deployment and a change of the same key, and a key with no past.
        let alert_at = 3000;
        let suspect = Deployment::test()
            .service("api")
            .image_seed(99)
            .started_at_minute(alert_at - 20)
            .change("values.pool.size", "50", "10")
            .change("values.fresh", "a", "b")
            .build();
        store
            .record_deployments(vec![suspect.clone()])
            .await
            .unwrap();
        let mut flag = Change::test()
            .service("api")
            .at_minute(alert_at - 10)
            .key("values.pool.size", "10", "5")
            .build();
        flag.diff.push(KeyChange {
            key: "values.other".into(),
            before: None,
            after: Some("x".into()),
        });
        store.record_changes(vec![flag.clone()]).await.unwrap();
        let alert = Alert::test("now", "api", alert_at);
        store.record_alerts(vec![alert.clone()]).await.unwrap();

        let (candidates, _) = candidates(&store, &alert, &Settings::default())
            .await
            .unwrap();
        let record = KeyRecord {
            path: "values.pool.size".into(),
            changes: 3,
            blamed: 1,
        };
        let of = |uid: &Uid| {
            candidates
                .iter()
                .find(|c| &c.deployment == uid)
                .map(|c| c.key_history.clone())
                .expect("a candidate")
        };
        // Neither the candidates themselves nor each other count: they are in the window.
        assert_eq!(of(&suspect.uid), vec![record.clone()]);
        assert_eq!(of(&flag.uid), vec![record]);
        // The service's record is the same for both of its candidates: before the earlier of
        // them (the two past rollouts of api, one blamed), neither counting the other.
        let history = |uid: &Uid| {
            candidates
                .iter()
                .find(|c| &c.deployment == uid)
                .map(|c| (c.prior_deployments, c.prior_followed_by_alerts))
                .expect("a candidate")
        };
        assert_eq!(history(&suspect.uid), (2, 1));
        assert_eq!(history(&flag.uid), (2, 1));
    }
}
