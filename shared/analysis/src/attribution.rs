//! Which changes most likely caused an alert, as probabilities, with the evidence.
//!
//! **Candidates** are the deployments that landed (finished, or started while still rolling)
//! within the window before the alert started, on the alert's service or on a service it
//! depends on up to `depth` `DEPENDS_ON` hops. Beside them stands one more answer: *no recorded
//! change caused it*.
//!
//! **Evidence.** Each candidate is described by a few numbers ([`Features`]): how long before
//! the alert it landed, how many hops below the alerting service, what it changed (nothing, a
//! new image, configuration keys — those that set capacity, limits, timeouts, pools, retries or
//! endpoints apart from cosmetic ones —, resources, replicas, secrets), how the rollout went, how
//! often the service's earlier deployments were followed by alerts, and whether later changes of
//! the same service superseded it.
//!
//! **A probability.** The evidence is weighed by a conditional logit model
//! ([`crate::model`]): each candidate gets a score `w · x`, the "no recorded change" answer gets
//! a constant score, and a softmax over all of them gives each candidate the probability that
//! it caused the alert. The suspects' probabilities and the remainder, `unexplained`, sum to 1.
//! The weights were fitted by maximum likelihood on labelled incidents and their temperature
//! calibrated on a separate split (see [`crate::model`] for the figures and the command).
//!
//! When a chaos experiment was running on the alert's service at the alert's start, the alert
//! is attributed to that run and to no deployment.

use crate::model::{self, Weights};
use crate::symptom::{self, Symptoms};
use chrono::{DateTime, Duration, Utc};
use deploygraph_model::redact::{REDACTED, is_secret_path, split_words};
use deploygraph_model::{
    CanaryVerdict, ChangeKind, Deployment, DeploymentStatus, MetricOnset, ServiceMetric,
    SubjectKind, Uid,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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

impl Relation {
    /// Hops from the alerting service (0 on it).
    pub fn hops(self) -> u32 {
        match self {
            Self::SameService => 0,
            Self::Dependency { depth } => depth,
        }
    }
}

/// What a configuration key is about, by the words of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyClass {
    /// Capacity, limits, timeouts, pools, retries, endpoints: what outages are made of.
    Operational,
    /// Logging, tracing, labels, annotations, UI text: rarely breaks anything.
    Cosmetic,
    /// Anything else.
    Other,
}

/// Words that make a key operational.
const OPERATIONAL_WORDS: &[&str] = &[
    "timeout",
    "timeouts",
    "deadline",
    "pool",
    "conn",
    "connection",
    "connections",
    "connect",
    "limit",
    "limits",
    "request",
    "requests",
    "retry",
    "retries",
    "attempts",
    "backoff",
    "url",
    "uri",
    "endpoint",
    "endpoints",
    "host",
    "hosts",
    "port",
    "address",
    "upstream",
    "memory",
    "cpu",
    "heap",
    "xmx",
    "concurrency",
    "threads",
    "workers",
    "queue",
    "batch",
    "buffer",
    "ttl",
    "probe",
    "liveness",
    "readiness",
    "replicas",
    "capacity",
    "size",
    "max",
    "min",
    "rate",
    "quota",
    "circuit",
    "breaker",
];

/// Words that make a key cosmetic.
const COSMETIC_WORDS: &[&str] = &[
    "log",
    "logging",
    "level",
    "verbosity",
    "tracing",
    "trace",
    "sample",
    "sampling",
    "annotations",
    "labels",
    "label",
    "banner",
    "ui",
    "theme",
    "description",
    "dashboard",
    "scrape",
    "team",
    "owner",
    "podannotations",
];

impl KeyClass {
    /// The class of the key at `path` (`values.redis.pool.size` is operational,
    /// `values.log.level` cosmetic). Cosmetic words win over operational ones
    /// (`values.tracing.sampleRate`).
    pub fn of(path: &str) -> Self {
        let words = split_words(path);
        let has = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
        if has(COSMETIC_WORDS) {
            Self::Cosmetic
        } else if has(OPERATIONAL_WORDS) {
            Self::Operational
        } else {
            Self::Other
        }
    }
}

/// One key a candidate changed, for the evidence and the explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDiff {
    /// `values.redis.pool.size`.
    pub path: String,
    /// Its kind.
    pub kind: ChangeKind,
    /// Before (redacted as stored).
    pub before: Option<String>,
    /// After.
    pub after: Option<String>,
}

/// What changed in a candidate deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSummary {
    /// The image (digest) changed.
    pub image_changed: bool,
    /// The image before and after, when both are known and differ.
    pub image: Option<(String, String)>,
    /// There is no earlier deployment of the service to compare with.
    pub first: bool,
    /// The configuration keys changed (not the image, not the replica count).
    pub keys: Vec<KeyDiff>,
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
        let references = |d: &Deployment| {
            d.images
                .iter()
                .map(deploygraph_model::Image::reference)
                .collect::<std::collections::BTreeSet<_>>()
        };
        let now = references(deployment);
        let image_changed = deployment
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::Image)
            || previous.is_none_or(|p| references(p) != now);
        let image = previous.and_then(|p| {
            let before = references(p);
            (before != now).then(|| {
                (
                    before.into_iter().collect::<Vec<_>>().join(", "),
                    now.iter().cloned().collect::<Vec<_>>().join(", "),
                )
            })
        });
        let keys = deployment
            .changes
            .iter()
            .filter(|c| !matches!(c.kind, ChangeKind::Image | ChangeKind::Replicas))
            .map(|c| KeyDiff {
                path: c.path.clone(),
                kind: c.kind,
                before: c.before.clone(),
                after: c.after.clone(),
            })
            .collect();
        let secret_changed = deployment.changes.iter().any(|c| {
            is_secret_path(&c.path)
                || c.before.as_deref().is_some_and(|v| v.contains(REDACTED))
                || c.after.as_deref().is_some_and(|v| v.contains(REDACTED))
        });
        Self {
            image_changed,
            image,
            first: previous.is_none(),
            keys,
            replicas_changed: deployment
                .changes
                .iter()
                .any(|c| c.kind == ChangeKind::Replicas),
            secret_changed,
        }
    }

    /// Nothing changed: the same image, no key, no replica count.
    pub fn is_unchanged(&self) -> bool {
        !self.image_changed && self.keys.is_empty() && !self.replicas_changed
    }

    fn count(&self, class: KeyClass) -> usize {
        self.keys
            .iter()
            .filter(|k| k.kind != ChangeKind::Resources && KeyClass::of(&k.path) == class)
            .count()
    }
}

/// A deployment (or a change that is not a rollout) that may have caused the alert.
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
    /// The services from the alerting one down to this one (`web`, `api`, `cache`); just
    /// the service on the alerting service itself.
    pub path: Vec<String>,
    /// What it changed.
    pub changes: ChangeSummary,
    /// Earlier deployments of the same service.
    pub prior_deployments: u32,
    /// How many of those were blamed for an alert (confidence ≥ 0.5).
    pub prior_followed_by_alerts: u32,
    /// The records of the keys it changed, in the whole graph before the candidates' window
    /// (ordered by path); empty when it changed no key or no key has a history.
    pub key_history: Vec<KeyRecord>,
    /// The services of other alerts that started after it landed and within
    /// [`crate::engine::CO_ALERT_SPAN`] of this alert, on its service or on a service that
    /// depends on it (up to the attribution depth): one entry per alert. One change behind
    /// several alerts is the shape of an alert storm.
    pub co_alerts: Vec<String>,
    /// What its own canary analysis decided (the newest analysis of the deployment), when one
    /// was recorded; `None` for changes that are not rollouts and for uncanaried rollouts.
    pub canary: Option<CanaryEvidence>,
}

/// A deployment's canary analysis as attribution reads it: its verdict, and the metrics that
/// failed (the judge's own summary of each, for the reasons).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryEvidence {
    /// The analysis template.
    pub template: String,
    /// The verdict of its newest round.
    pub verdict: CanaryVerdict,
    /// What the canary was compared with (`side_by_side`, `history`).
    pub baseline: String,
    /// The metrics that failed, each with the rule that fired.
    pub failed_metrics: Vec<(String, String)>,
    /// How many metrics it judged.
    pub metrics: usize,
}

impl CanaryEvidence {
    /// The evidence of the newest of a deployment's analyses.
    pub fn of(analysis: &deploygraph_model::CanaryAnalysis) -> Self {
        Self {
            template: analysis.template.clone(),
            verdict: analysis.verdict,
            baseline: analysis.baseline_kind.as_str().to_owned(),
            failed_metrics: analysis
                .metrics
                .iter()
                .filter(|m| m.outcome == CanaryVerdict::Fail)
                .map(|m| (m.name.clone(), m.rule.clone()))
                .collect(),
            metrics: analysis.metrics.len(),
        }
    }
}

/// One changed key's record in the graph before the candidate's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key (`values.redis.pool.size`).
    pub path: String,
    /// Its most recent changes anywhere in the graph (deployments that changed it and changes
    /// that are not rollouts with it), at most [`crate::engine::KEY_HISTORY_LIMIT`].
    pub changes: u32,
    /// How many of those were blamed for an alert (confidence ≥ 0.5).
    pub blamed: u32,
}

impl Candidate {
    /// When it took effect: its end, or its start while in progress.
    pub fn landed(&self) -> DateTime<Utc> {
        match self.status {
            DeploymentStatus::InProgress => self.started_at,
            _ => self.finished_at.unwrap_or(self.started_at),
        }
    }

    /// Its service as its path names it, with its cluster unless the default one
    /// ([`deploygraph_model::ServiceRef::shown`]); the bare name without a path.
    pub fn shown(&self) -> &str {
        self.path
            .last()
            .map_or(self.service.as_str(), String::as_str)
    }
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
    /// Suspects whose probability is below this are not recorded (their share counts as
    /// unexplained).
    pub floor: f64,
    /// How many DEPENDS_ON hops from the alert's service candidates may be.
    pub depth: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window: Duration::hours(6),
            floor: 0.01,
            depth: 3,
        }
    }
}

/// The evidence about one candidate, as the model reads it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Features {
    /// `ln(1 + minutes)` between landing and the alert's start.
    pub recency: f64,
    /// `recency` squared: with it the model can learn an onset that peaks some minutes after
    /// a change lands (alerting rules' `for:` clauses and slow leaks hold an alert back; a
    /// change that landed seconds before the alert is rarely its cause), a log-normal hazard.
    pub recency_squared: f64,
    /// Hops below the alerting service.
    pub hops: f64,
    /// 1 on a dependency.
    pub dependency: f64,
    /// 1 when nothing changed (same image, no key, same replicas).
    pub unchanged: f64,
    /// 1 for a new image.
    pub image: f64,
    /// `ln(1 + n)` of operational keys changed.
    pub operational_keys: f64,
    /// `ln(1 + n)` of cosmetic keys changed.
    pub cosmetic_keys: f64,
    /// `ln(1 + n)` of other keys changed.
    pub other_keys: f64,
    /// 1 when resource requests or limits changed.
    pub resources: f64,
    /// 1 when the replica count changed.
    pub replicas: f64,
    /// 1 when a secret changed.
    pub secret: f64,
    /// 1 for a failed rollout.
    pub failed: f64,
    /// 1 for a rolled-back one.
    pub rolled_back: f64,
    /// 1 while in progress.
    pub in_progress: f64,
    /// 1 when the service was removed.
    pub removed: f64,
    /// 1 when the rollout was still running when the alert started.
    pub rolling_at_alert: f64,
    /// Log-odds that the service's deployments are blamed for alerts (smoothed), from its record
    /// before the earliest of its changes read for the alert (the same for all of its
    /// candidates).
    pub history: f64,
    /// The riskiest changed key's log-odds of being blamed, from its recent changes anywhere in
    /// the graph (smoothed; 0 when no changed key has a history).
    pub key_history: f64,
    /// `ln(1 + n)` of later deployments of the same service that changed something and
    /// landed before the alert.
    pub superseded: f64,
    /// `ln(1 + n)` of other alerts it may also explain ([`Candidate::co_alerts`]).
    pub co_alerts: f64,
    /// 1 when its own canary analysis failed.
    pub canary_failed: f64,
    /// 1 when its own canary analysis passed.
    pub canary_passed: f64,
    /// When the alert's metric onset is known and it started at most
    /// [`ONSET_TOLERANCE`] after it: `exp(-minutes / 10)` of how long before the onset its
    /// rollout had finished (1 when the metric began to move while it rolled out, or as it
    /// started); 0 otherwise ([`OnsetPlace`]).
    pub onset_near: f64,
    /// When the alert's metric onset is known and it started at most [`ONSET_TOLERANCE`]
    /// after it: `ln(1 + minutes)` of how long before the onset its rollout had finished (0
    /// when the metric began to move while it rolled out); 0 otherwise.
    pub onset_lead: f64,
    /// 1 when it started more than [`ONSET_TOLERANCE`] after the alert's metric began to
    /// move: the episode was under way before it.
    pub after_onset: f64,
    /// When the alert's metric began to move while it rolled out: `ln(1 + minutes)` of the
    /// rollout's length (to the alert's start while still rolling) — a longer rollout covers
    /// more moments, so an onset inside it says less; 0 otherwise.
    pub onset_in_rollout: f64,
    /// 1 when the alert's metric onset was found, for every candidate of the alert alike: it
    /// moves only the answer "no recorded change caused it" against all of them (with an onset
    /// found, a change that did not start near it keeps less of its share).
    pub onset_found: f64,
    /// When its service's health metric rose before the alert ([`ServiceMetric::Moved`]) and
    /// not more than [`ONSET_TOLERANCE`] before it started: 1 when the rise came while it
    /// rolled out (or as it started), else `exp(-minutes / 10)` of how long after its rollout
    /// finished; 0 otherwise.
    pub service_moved_near: f64,
    /// 1 when its service's health metric was already rising more than [`ONSET_TOLERANCE`]
    /// before it started: its service was in trouble before it.
    pub service_moved_before: f64,
    /// 1 when its service's health metric was read and showed no rise before the alert.
    pub service_steady: f64,
    /// 1 when its service's health metric rose and a service below it (on the way to a deeper
    /// candidate) had begun to rise more than [`BELOW_FIRST_TOLERANCE`] earlier: trouble
    /// travels up from a dependency to the services that call it.
    pub moved_below_first: f64,
}

/// The number of features.
pub const FEATURES: usize = 32;

/// How much earlier than a candidate's service a service below it must have begun to rise to
/// count as first ([`Features::moved_below_first`]): more than the onset detector's grid.
pub const BELOW_FIRST_TOLERANCE: Duration = Duration::minutes(1);

/// How much later than the alert's metric onset a change may start and still count as
/// before it: the onset is read on a grid of [`deploygraph_canary`]-style steps (15–30 s) and
/// a rollout's first new pods serve a little after it starts.
pub const ONSET_TOLERANCE: Duration = Duration::minutes(2);

impl Features {
    /// In the model's order ([`model::FEATURE_NAMES`]).
    pub fn to_array(&self) -> [f64; FEATURES] {
        [
            self.recency,
            self.recency_squared,
            self.hops,
            self.dependency,
            self.unchanged,
            self.image,
            self.operational_keys,
            self.cosmetic_keys,
            self.other_keys,
            self.resources,
            self.replicas,
            self.secret,
            self.failed,
            self.rolled_back,
            self.in_progress,
            self.removed,
            self.rolling_at_alert,
            self.history,
            self.key_history,
            self.superseded,
            self.co_alerts,
            self.canary_failed,
            self.canary_passed,
            self.onset_near,
            self.onset_lead,
            self.after_onset,
            self.onset_in_rollout,
            self.onset_found,
            self.service_moved_near,
            self.service_moved_before,
            self.service_steady,
            self.moved_below_first,
        ]
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn ln1p(n: usize) -> f64 {
    (n as f64).ln_1p()
}

/// How long before the alert `candidate` counts as landed; `None` when it is not a candidate
/// (started after the alert, or landed before the window).
pub fn lead_time(
    alert_start: DateTime<Utc>,
    candidate: &Candidate,
    settings: &Settings,
) -> Option<Duration> {
    let landed = candidate.landed();
    let reference = if landed > alert_start {
        candidate.started_at
    } else {
        landed
    };
    let delta = alert_start - reference;
    (delta >= Duration::zero() && delta <= settings.window).then_some(delta)
}

/// The evidence about `candidate` among `all` (the alert's candidates, for what superseded
/// it), for an alert that started at `alert_start`.
pub fn features(
    when: AlertTime<'_>,
    candidate: &Candidate,
    all: &[Candidate],
    delta: Duration,
) -> Features {
    let alert_start = when.start;
    let place = when
        .onset
        .and_then(MetricOnset::at)
        .map(|onset| OnsetPlace::of(candidate, alert_start, onset));
    let minutes = |d: Duration| d.num_seconds().max(0) as f64 / 60.0;
    let service_place = when
        .service_metric_of(candidate)
        .and_then(ServiceMetric::moved_at)
        .map(|moved| OnsetPlace::of(candidate, alert_start, moved));
    // How long before the metric onset its rollout had finished (0: it was rolling out).
    let lead_minutes = place.and_then(|p| match p {
        OnsetPlace::Before { .. } => None,
        OnsetPlace::During { .. } => Some(0.0),
        OnsetPlace::After { finished } => Some(minutes(finished)),
    });
    let c = &candidate.changes;
    let landed = candidate.landed();
    let superseded = all
        .iter()
        .filter(|o| {
            o.deployment != candidate.deployment
                && o.service == candidate.service
                && o.landed() > landed
                && o.landed() <= alert_start
                && !o.changes.is_unchanged()
        })
        .count();
    let blamed = f64::from(candidate.prior_followed_by_alerts);
    let clean = f64::from(
        candidate
            .prior_deployments
            .saturating_sub(candidate.prior_followed_by_alerts),
    );
    let hops = candidate.relation.hops();
    let recency = minutes(delta).ln_1p();
    Features {
        recency,
        recency_squared: recency * recency,
        hops: f64::from(hops),
        dependency: flag(hops > 0),
        unchanged: flag(c.is_unchanged()),
        image: flag(c.image_changed),
        operational_keys: ln1p(c.count(KeyClass::Operational)),
        cosmetic_keys: ln1p(c.count(KeyClass::Cosmetic)),
        other_keys: ln1p(c.count(KeyClass::Other)),
        resources: flag(c.keys.iter().any(|k| k.kind == ChangeKind::Resources)),
        replicas: flag(c.replicas_changed),
        secret: flag(c.secret_changed),
        failed: flag(candidate.status == DeploymentStatus::Failed),
        rolled_back: flag(candidate.status == DeploymentStatus::RolledBack),
        in_progress: flag(candidate.status == DeploymentStatus::InProgress),
        removed: flag(candidate.status == DeploymentStatus::Removed),
        rolling_at_alert: flag(landed > alert_start),
        history: ((blamed + 1.0) / (clean + 1.0)).ln(),
        key_history: candidate
            .key_history
            .iter()
            .map(|k| {
                let blamed = f64::from(k.blamed.min(k.changes));
                ((blamed + 1.0) / (f64::from(k.changes) - blamed + 1.0)).ln()
            })
            .fold(None, |best: Option<f64>, x| {
                Some(best.map_or(x, |b| b.max(x)))
            })
            .unwrap_or(0.0),
        superseded: ln1p(superseded),
        co_alerts: ln1p(candidate.co_alerts.len()),
        canary_failed: flag(
            candidate
                .canary
                .as_ref()
                .is_some_and(|c| c.verdict == CanaryVerdict::Fail),
        ),
        canary_passed: flag(
            candidate
                .canary
                .as_ref()
                .is_some_and(|c| c.verdict == CanaryVerdict::Pass),
        ),
        onset_near: lead_minutes.map_or(0.0, |m| (-m / 10.0).exp()),
        onset_lead: lead_minutes.map_or(0.0, f64::ln_1p),
        after_onset: flag(matches!(place, Some(OnsetPlace::Before { .. }))),
        onset_in_rollout: match place {
            Some(OnsetPlace::During { length, .. }) => minutes(length).ln_1p(),
            _ => 0.0,
        },
        onset_found: flag(place.is_some()),
        service_moved_near: match service_place {
            Some(OnsetPlace::During { .. }) => 1.0,
            Some(OnsetPlace::After { finished }) => (-minutes(finished) / 10.0).exp(),
            _ => 0.0,
        },
        service_moved_before: flag(matches!(service_place, Some(OnsetPlace::Before { .. }))),
        service_steady: flag(matches!(
            when.service_metric_of(candidate),
            Some(ServiceMetric::Steady)
        )),
        moved_below_first: flag(moved_below_first(when, candidate, all).is_some()),
    }
}

/// The service below `candidate`'s (on the way from the alerting service to another of `all`)
/// whose health metric began to rise first, more than [`BELOW_FIRST_TOLERANCE`] before its
/// service's did, and how much earlier; `None` when its service's did not rise or none below
/// rose that early.
pub fn moved_below_first<'a>(
    when: AlertTime<'_>,
    candidate: &Candidate,
    all: &'a [Candidate],
) -> Option<(&'a str, Duration)> {
    let own = when.service_metric_of(candidate)?.moved_at()?;
    let me = candidate.path.last()?;
    all.iter()
        .filter_map(|o| {
            let at = o.path.iter().position(|p| p == me)?;
            Some(&o.path[at + 1..])
        })
        .flatten()
        .filter_map(|below| {
            let moved = when.service_metric(below)?.moved_at()?;
            (own - moved > BELOW_FIRST_TOLERANCE).then_some((below.as_str(), own - moved))
        })
        .max_by_key(|(_, earlier)| *earlier)
}

/// Where the alert's metric onset lies against a candidate's rollout (a change that is not a
/// rollout takes effect at once: its rollout has no length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnsetPlace {
    /// It started more than [`ONSET_TOLERANCE`] after the onset: the episode was under way
    /// before it.
    Before {
        /// How long after the onset it started.
        started: Duration,
    },
    /// The onset fell while it rolled out (from [`ONSET_TOLERANCE`] before its start to its
    /// finish, or to the alert's start while still rolling).
    During {
        /// How long after its start the onset came (0 when within the tolerance before it).
        into: Duration,
        /// The rollout's length.
        length: Duration,
    },
    /// The onset came after its rollout had finished.
    After {
        /// How long before the onset it finished.
        finished: Duration,
    },
}

impl OnsetPlace {
    /// Where `onset` lies against `candidate`'s rollout, for an alert that started at
    /// `alert_start`.
    pub fn of(candidate: &Candidate, alert_start: DateTime<Utc>, onset: DateTime<Utc>) -> Self {
        let start = candidate.started_at;
        let end = match candidate.status {
            DeploymentStatus::InProgress => alert_start,
            _ => candidate.landed(),
        }
        .max(start);
        if onset < start - ONSET_TOLERANCE {
            Self::Before {
                started: start - onset,
            }
        } else if onset <= end {
            Self::During {
                into: (onset - start).max(Duration::zero()),
                length: end - start,
            }
        } else {
            Self::After {
                finished: onset - end,
            }
        }
    }
}

/// When an alert started, what its metric did before, and what the health metrics of the
/// services around it did (when those were read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertTime<'a> {
    /// When the alert started.
    pub start: DateTime<Utc>,
    /// Its metric onset.
    pub onset: Option<&'a MetricOnset>,
    /// The services' health metrics, by service name.
    pub services: Option<&'a BTreeMap<String, ServiceMetric>>,
    /// The alert's name, for the reasons.
    pub name: Option<&'a str>,
    /// The specific symptoms it names ([`symptom::of_alert`]), for the reasons: read by the
    /// SRE, not weighed by the model ([`symptom_reason`]).
    pub symptoms: Symptoms,
}

impl<'a> AlertTime<'a> {
    /// The time of `alert`.
    pub fn of(alert: &'a deploygraph_model::Alert) -> Self {
        Self {
            start: alert.starts_at,
            onset: alert.onset.as_ref(),
            services: alert.service_metrics.as_ref(),
            name: Some(&alert.name),
            symptoms: symptom::of_alert(
                &alert.name,
                alert.summary.as_deref(),
                alert.labels.get("reason").map(String::as_str),
            ),
        }
    }

    /// What `service`'s health metric did, when it was read.
    pub fn service_metric(&self, service: &str) -> Option<&'a ServiceMetric> {
        self.services?.get(service)
    }

    /// What the health metric of `candidate`'s service did, when it was read: by the service's
    /// name and cluster as its path names it ([`deploygraph_model::ServiceRef::shown`]), so two
    /// clusters' `api` are not mixed up.
    pub fn service_metric_of(&self, candidate: &Candidate) -> Option<&'a ServiceMetric> {
        self.service_metric(candidate.shown())
    }
}

impl From<DateTime<Utc>> for AlertTime<'_> {
    fn from(start: DateTime<Utc>) -> Self {
        Self {
            start,
            onset: None,
            services: None,
            name: None,
            symptoms: Symptoms::NONE,
        }
    }
}

fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// A metric's level in words: four significant digits, trailing zeros dropped (scientific
/// notation outside 1e-4..1e6).
pub fn level(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor();
    if !(-4.0..6.0).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    // Four significant digits, trailing zeros dropped.
    let decimals = (3.0 - magnitude).max(0.0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// What the alert's metric onset says about `candidate`, in words.
pub fn onset_reason(
    candidate: &Candidate,
    alert_start: DateTime<Utc>,
    onset: Option<&MetricOnset>,
) -> Option<String> {
    let Some(MetricOnset::Found {
        at,
        query,
        before,
        at_alert,
    }) = onset
    else {
        return None;
    };
    let moved = format!(
        "the alert's metric `{query}` began to move at {} ({} → {} at the alert)",
        clock(*at),
        level(*before),
        level(*at_alert)
    );
    Some(match OnsetPlace::of(candidate, alert_start, *at) {
        OnsetPlace::Before { started } => format!(
            "started {} min after {moved}: the episode was under way before it",
            started.num_minutes()
        ),
        OnsetPlace::During { into, .. } if into <= Duration::minutes(1) => {
            format!("started as {moved}")
        }
        OnsetPlace::During { into, .. } => format!(
            "was rolling out (started {} min before) when {moved}",
            into.num_minutes()
        ),
        OnsetPlace::After { finished } => {
            let started = *at - candidate.started_at;
            if started <= Duration::minutes(1) {
                format!("started as {moved}")
            } else if started - finished >= Duration::minutes(1) {
                format!(
                    "started {} min (finished {} min) before {moved}",
                    started.num_minutes(),
                    finished.num_minutes()
                )
            } else {
                format!("started {} min before {moved}", started.num_minutes())
            }
        }
    })
}

/// What the health metrics of `candidate`'s service and of the services below it say about
/// it, in words.
pub fn service_metric_reasons(
    when: AlertTime<'_>,
    candidate: &Candidate,
    all: &[Candidate],
) -> Vec<String> {
    let mut out = Vec::new();
    let service = candidate.shown();
    match when.service_metric_of(candidate) {
        Some(ServiceMetric::Moved {
            at,
            before,
            at_alert,
        }) => {
            let rose = format!(
                "the health metric of {service} began to rise at {} ({} → {} at the alert)",
                clock(*at),
                level(*before),
                level(*at_alert)
            );
            out.push(match OnsetPlace::of(candidate, when.start, *at) {
                OnsetPlace::Before { started } => format!(
                    "{rose}, {} min before it started: the service was in trouble before it",
                    started.num_minutes()
                ),
                OnsetPlace::During { into, .. } if into <= Duration::minutes(1) => {
                    format!("{rose}, as it started")
                }
                OnsetPlace::During { into, .. } => {
                    format!("{rose}, {} min into its rollout", into.num_minutes())
                }
                OnsetPlace::After { finished } => format!(
                    "{rose}, {} min after it {}",
                    finished.num_minutes(),
                    if candidate.subject == SubjectKind::Change {
                        "took effect"
                    } else {
                        "finished"
                    }
                ),
            });
            if let Some((below, earlier)) = moved_below_first(when, candidate, all) {
                out.push(format!(
                    "{below}, below it, began to rise {} min earlier: the trouble may have come from there",
                    earlier.num_minutes()
                ));
            }
        }
        Some(ServiceMetric::Steady) => out.push(format!(
            "the health metric of {service} showed no rise before the alert"
        )),
        Some(ServiceMetric::NoSeries) | None => {}
    }
    out
}

/// One scored candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// The deployment.
    pub deployment: Uid,
    /// The probability that it caused the alert.
    pub confidence_score: f64,
    /// The evidence, in words.
    pub reasons: Vec<String>,
}

/// The outcome of attributing one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribution {
    /// Ranked suspects, most likely first, at or above the floor; the rest of the probability
    /// is `unexplained`.
    Deployments {
        /// The suspects.
        suspects: Vec<Suspect>,
        /// The probability that no recorded change caused the alert (with the suspects under
        /// the floor).
        unexplained: f64,
    },
    /// A chaos experiment caused it.
    Chaos {
        /// The run.
        run: Uid,
        /// Why.
        reason: String,
    },
}

/// Rounds a probability to three decimals, downwards, so rounded suspects never sum above 1.
fn round_down(p: f64) -> f64 {
    ((p * 1000.0).floor() / 1000.0).clamp(0.0, 1.0)
}

fn truncate(value: Option<&str>) -> String {
    const MAX: usize = 60;
    match value {
        None => "∅".to_owned(),
        Some(v) if v.chars().count() > MAX => {
            format!("{}…", v.chars().take(MAX).collect::<String>())
        }
        Some(v) => v.to_owned(),
    }
}

/// The evidence about a candidate in words an SRE can check.
pub fn reasons(candidate: &Candidate, features: &Features, delta: Duration) -> Vec<String> {
    let mut out = Vec::new();
    // The candidate's service as its path names it (with its cluster unless the default).
    let service = candidate
        .path
        .last()
        .map_or(candidate.service.as_str(), String::as_str);
    let minutes = delta.num_minutes();
    out.push(if features.rolling_at_alert > 0.0 {
        format!("started {minutes} min before the alert and was still rolling out when it started")
    } else {
        format!("landed {minutes} min before the alert started")
    });
    out.push(match candidate.relation {
        Relation::SameService => format!(
            "{} {}, the alerting service",
            match candidate.subject {
                SubjectKind::Deployment => "deployed to",
                SubjectKind::Change => "changed",
            },
            service
        ),
        Relation::Dependency { depth } => format!(
            "{depth} hop{}: {}",
            if depth == 1 { "" } else { "s" },
            candidate.path.join(" → ")
        ),
    });
    let c = &candidate.changes;
    if c.is_unchanged() && candidate.subject == SubjectKind::Deployment {
        out.push("same image as the previous deployment, nothing changed".to_owned());
    } else {
        let mut what = Vec::new();
        match (&c.image, c.first) {
            (Some((before, after)), _) => what.push(format!("image {before} → {after}")),
            (None, true) => out.push(format!(
                "first recorded deployment of {service}: nothing earlier to compare with"
            )),
            (None, false) if c.image_changed => what.push("a new image".to_owned()),
            _ => {}
        }
        const SHOWN: usize = 5;
        let mut keys: Vec<&KeyDiff> = c.keys.iter().collect();
        // Operational keys first: they carry the evidence.
        keys.sort_by_key(|k| match KeyClass::of(&k.path) {
            KeyClass::Operational => 0,
            KeyClass::Other => 1,
            KeyClass::Cosmetic => 2,
        });
        for k in keys.iter().take(SHOWN) {
            what.push(format!(
                "{} {} → {}",
                k.path,
                truncate(k.before.as_deref()),
                truncate(k.after.as_deref())
            ));
        }
        if keys.len() > SHOWN {
            what.push(format!("{} more key(s)", keys.len() - SHOWN));
        }
        if c.replicas_changed {
            what.push("the replica count".to_owned());
        }
        if c.secret_changed {
            what.push("a secret".to_owned());
        }
        if !what.is_empty() {
            out.push(format!("changed {}", what.join(", ")));
        }
    }
    out.push(
        match candidate.status {
            _ if candidate.subject == SubjectKind::Change => "the change was applied",
            DeploymentStatus::Failed => "the rollout failed",
            DeploymentStatus::RolledBack => "the rollout was rolled back",
            DeploymentStatus::InProgress => "the rollout was still in progress",
            DeploymentStatus::Succeeded => "the rollout succeeded",
            DeploymentStatus::Removed => "the service was removed",
        }
        .to_owned(),
    );
    if let Some(canary) = &candidate.canary {
        out.push(canary_reason(canary));
    }
    out.push(format!(
        "{} of {} earlier deployments of {service} were blamed for alerts",
        candidate.prior_followed_by_alerts, candidate.prior_deployments
    ));
    // What the graph knows of the changed keys elsewhere: the ones blamed before first.
    let mut risky: Vec<&KeyRecord> = candidate
        .key_history
        .iter()
        .filter(|k| k.blamed > 0)
        .collect();
    risky.sort_by(|a, b| {
        let rate = |k: &KeyRecord| f64::from(k.blamed) / f64::from(k.changes.max(1));
        rate(b)
            .total_cmp(&rate(a))
            .then_with(|| a.path.cmp(&b.path))
    });
    for k in risky.iter().take(3) {
        out.push(format!(
            "{}: {} of its last {} changes anywhere were blamed for alerts",
            k.path, k.blamed, k.changes
        ));
    }
    if !candidate.co_alerts.is_empty() {
        let services: BTreeSet<&str> = candidate.co_alerts.iter().map(String::as_str).collect();
        const SHOWN: usize = 5;
        let names: Vec<&str> = services.iter().copied().take(SHOWN).collect();
        let more = services.len().saturating_sub(SHOWN);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let how = if services.contains(candidate.service.as_str()) {
            format!("{service} itself or services that depend on it")
        } else {
            format!("which depend on {service}")
        };
        out.push(format!(
            "{} other alert{} started after it on {}{more}, {how}",
            candidate.co_alerts.len(),
            if candidate.co_alerts.len() == 1 {
                ""
            } else {
                "s"
            },
            names.join(", "),
        ));
    }
    if features.superseded > 0.0 {
        out.push(format!(
            "{} later change(s) of {service} landed before the alert",
            (features.superseded.exp() - 1.0).round(),
        ));
    }
    out
}

/// How the candidate's change stands against the specific symptom the alert names, in words
/// (`ContainerOOMKilled names memory, crashing or unready pods: resources.limits.memory 1Gi →
/// 512Mi can cause that`); nothing when the alert names no specific symptom or the change says
/// nothing about it.
///
/// A pointer for the SRE, not evidence the model weighs: as two features (fits, misfits) the
/// fit gave them weights near zero and the held-out benchmark the same top-1 (the benchmark's
/// generators name specific symptoms on about one alert in ten, one of them at random;
/// `docs/benchmarks.md`), so the probabilities do not depend on it.
pub fn symptom_reason(when: AlertTime<'_>, candidate: &Candidate) -> Option<String> {
    let name = when.name.unwrap_or("the alert");
    match symptom::fit(when.symptoms, &candidate.changes) {
        symptom::Fit::Silent => None,
        symptom::Fit::Fits { key, shared } => {
            let change = candidate
                .changes
                .keys
                .iter()
                .find(|k| k.path == key)
                .map_or(key.clone(), |k| {
                    format!(
                        "{} {} → {}",
                        k.path,
                        truncate(k.before.as_deref()),
                        truncate(k.after.as_deref())
                    )
                });
            Some(format!(
                "{name} names {}: {change} can cause that",
                shared.words()
            ))
        }
        symptom::Fit::Misfits => Some(format!(
            "{name} names {}: none of the keys it changed can cause that",
            when.symptoms.words()
        )),
    }
}

/// `text`, cut to `max` characters with an ellipsis.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Its canary analysis in words: the verdict and, when it failed, the failing metrics' rules.
fn canary_reason(canary: &CanaryEvidence) -> String {
    const SHOWN: usize = 3;
    let against = format!("against its {} baseline", canary.baseline.replace('_', "-"));
    match canary.verdict {
        CanaryVerdict::Fail if canary.failed_metrics.is_empty() => {
            format!("its canary analysis ({}) failed {against}", canary.template)
        }
        CanaryVerdict::Fail => {
            let shown: Vec<String> = canary
                .failed_metrics
                .iter()
                .take(SHOWN)
                .map(|(name, rule)| format!("{name}: {}", clip(rule, 200)))
                .collect();
            let more = canary.failed_metrics.len().saturating_sub(SHOWN);
            format!(
                "its canary analysis ({}) failed {against} on {}{}",
                canary.template,
                shown.join("; "),
                if more > 0 {
                    format!("; {more} more metric(s)")
                } else {
                    String::new()
                }
            )
        }
        CanaryVerdict::Pass => format!(
            "its canary analysis ({}) passed {against} on {} metric(s)",
            canary.template, canary.metrics
        ),
        CanaryVerdict::Inconclusive => format!(
            "its canary analysis ({}) was inconclusive {against}",
            canary.template
        ),
        CanaryVerdict::NoData => format!("its canary analysis ({}) had no data", canary.template),
    }
}

/// Attributes an alert that started at `alert_start` with the fitted weights: to a chaos run
/// active on its service, or to its candidates with their probabilities.
pub fn attribute<'a>(
    when: impl Into<AlertTime<'a>>,
    candidates: &[Candidate],
    chaos: &[ActiveChaos],
    settings: &Settings,
) -> Attribution {
    attribute_with(when, candidates, chaos, settings, &model::WEIGHTS)
}

/// [`attribute`] with `weights`.
pub fn attribute_with<'a>(
    when: impl Into<AlertTime<'a>>,
    candidates: &[Candidate],
    chaos: &[ActiveChaos],
    settings: &Settings,
    weights: &Weights,
) -> Attribution {
    let when = when.into();
    let alert_start = when.start;
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
    let scored: Vec<(&Candidate, Features, Duration)> = candidates
        .iter()
        .filter_map(|c| {
            let delta = lead_time(alert_start, c, settings)?;
            Some((c, features(when, c, candidates, delta), delta))
        })
        .collect();
    let rows: Vec<[f64; FEATURES]> = scored.iter().map(|(_, f, _)| f.to_array()).collect();
    let (probabilities, _) = weights.probabilities(&rows);
    let mut suspects: Vec<Suspect> = scored
        .iter()
        .zip(&probabilities)
        .filter(|(_, p)| **p >= settings.floor)
        .map(|((c, f, delta), p)| Suspect {
            deployment: c.deployment.clone(),
            confidence_score: round_down(*p),
            reasons: {
                let mut words = reasons(c, f, *delta);
                words.extend(onset_reason(c, alert_start, when.onset));
                words.extend(service_metric_reasons(when, c, candidates));
                words.extend(symptom_reason(when, c));
                words
            },
        })
        .collect();
    suspects.sort_by(|a, b| {
        b.confidence_score
            .total_cmp(&a.confidence_score)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    let explained: f64 = suspects.iter().map(|s| s.confidence_score).sum();
    Attribution::Deployments {
        suspects,
        unexplained: ((1.0 - explained) * 1000.0).round() / 1000.0,
    }
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

    fn key(path: &str, before: &str, after: &str) -> KeyDiff {
        KeyDiff {
            path: path.into(),
            kind: ChangeKind::Value,
            before: Some(before.into()),
            after: Some(after.into()),
        }
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
            path: vec!["payments".into()],
            changes: ChangeSummary {
                image_changed: true,
                ..ChangeSummary::default()
            },
            prior_deployments: 0,
            prior_followed_by_alerts: 0,
            key_history: Vec::new(),
            co_alerts: Vec::new(),
            canary: None,
        }
    }

    /// A candidate `finished_minute` after noon on the last service of `path` (from the
    /// alerting service down; an entry may name its cluster, `api [eu-west-1]`).
    fn on_path(uid: &str, finished_minute: i64, path: &[&str]) -> Candidate {
        let mut c = candidate(uid, finished_minute);
        let last = path.last().copied().unwrap_or(uid);
        c.service = last.split(" [").next().unwrap_or(last).into();
        c.path = path.iter().map(|p| (*p).to_owned()).collect();
        let depth = u32::try_from(path.len().saturating_sub(1)).unwrap_or(u32::MAX);
        if depth > 0 {
            c.relation = Relation::Dependency { depth };
        }
        c
    }

    #[test]
    fn a_service_s_health_reading_is_its_own_cluster_s() {
        // web (alerting, default cluster) → api in eu-west-1; the default cluster's api was
        // steady, eu-west-1's rose as its change rolled out.
        let web = on_path("web", -28, &["web"]);
        let mut api = on_path("api", -18, &["web", "api [eu-west-1]"]);
        api.started_at = at(-24);
        let all = [web.clone(), api.clone()];
        let metrics: BTreeMap<String, ServiceMetric> = [
            ("api".to_owned(), ServiceMetric::Steady),
            (
                "api [eu-west-1]".to_owned(),
                ServiceMetric::Moved {
                    at: at(-22),
                    before: 0.002,
                    at_alert: 0.08,
                },
            ),
            (
                "web".to_owned(),
                ServiceMetric::Moved {
                    at: at(-15),
                    before: 0.001,
                    at_alert: 0.05,
                },
            ),
        ]
        .into();
        let when = AlertTime {
            services: Some(&metrics),
            ..AlertTime::from(at(0))
        };
        let f = features(when, &api, &all, Duration::minutes(18));
        assert_eq!(
            (f.service_moved_near, f.service_steady),
            (1.0, 0.0),
            "{f:?}"
        );
        // web's rose later than eu-west-1's api, below it: the trouble came from there.
        let f = features(when, &web, &all, Duration::minutes(28));
        assert_eq!(f.moved_below_first, 1.0, "{f:?}");
        let said = service_metric_reasons(when, &web, &all);
        assert!(
            said.iter()
                .any(|r| r.starts_with("api [eu-west-1], below it, began to rise 7 min earlier")),
            "{said:?}"
        );
    }

    #[test]
    fn the_services_health_metrics_say_where_the_trouble_began() {
        // web (alerting) → api → cache; a redeploy of web at -30 (finished -28), a change of
        // api at -20 (finished -18), one of cache at -40 (finished -38).
        let web = on_path("web", -28, &["web"]);
        let mut api = on_path("api", -18, &["web", "api"]);
        api.started_at = at(-24);
        let cache = on_path("cache", -38, &["web", "api", "cache"]);
        let all = [web.clone(), api.clone(), cache.clone()];
        let metrics: BTreeMap<String, ServiceMetric> = [
            (
                "api".to_owned(),
                ServiceMetric::Moved {
                    at: at(-19),
                    before: 0.002,
                    at_alert: 0.08,
                },
            ),
            (
                "web".to_owned(),
                ServiceMetric::Moved {
                    at: at(-16),
                    before: 0.001,
                    at_alert: 0.05,
                },
            ),
            ("cache".to_owned(), ServiceMetric::Steady),
        ]
        .into();
        let when = AlertTime {
            start: at(0),
            onset: None,
            services: Some(&metrics),
            name: None,
            symptoms: Symptoms::NONE,
        };
        // api's own metric rose while it rolled out: near, and nothing below rose first.
        let f = features(when, &api, &all, Duration::minutes(18));
        assert_eq!(
            (
                f.service_moved_near,
                f.service_moved_before,
                f.service_steady,
                f.moved_below_first
            ),
            (1.0, 0.0, 0.0, 0.0)
        );
        // web's rose 12 min after its redeploy finished, 3 min after api's: decayed, and api,
        // below it, rose first.
        let f = features(when, &web, &all, Duration::minutes(28));
        assert!(
            (f.service_moved_near - (-1.2_f64).exp()).abs() < 1e-9,
            "{f:?}"
        );
        assert_eq!((f.service_moved_before, f.moved_below_first), (0.0, 1.0));
        assert_eq!(
            moved_below_first(when, &web, &all),
            Some(("api", Duration::minutes(3)))
        );
        // cache's stayed steady.
        let f = features(when, &cache, &all, Duration::minutes(38));
        assert_eq!((f.service_moved_near, f.service_steady), (0.0, 1.0));
        // A change that started after its service was already rising.
        let mut late = candidate("late-api", -5);
        late.service = "api".into();
        late.relation = Relation::Dependency { depth: 1 };
        late.path = vec!["web".into(), "api".into()];
        let f = features(when, &late, &all, Duration::minutes(5));
        assert_eq!((f.service_moved_near, f.service_moved_before), (0.0, 1.0));
        // Unread or without a series: no evidence either way.
        for unread in [None, Some(&BTreeMap::new())] {
            let when = AlertTime {
                start: at(0),
                onset: None,
                services: unread,
                name: None,
                symptoms: Symptoms::NONE,
            };
            let f = features(when, &api, &all, Duration::minutes(18));
            assert_eq!(
                (
                    f.service_moved_near,
                    f.service_moved_before,
                    f.service_steady,
                    f.moved_below_first
                ),
                (0.0, 0.0, 0.0, 0.0)
            );
        }
        // The reasons name the service, the levels and the order.
        assert_eq!(
            service_metric_reasons(when, &api, &all),
            vec!["the health metric of api began to rise at 11:41 UTC (0.002 → 0.08 at the alert), 5 min into its rollout".to_owned()]
        );
        assert_eq!(
            service_metric_reasons(when, &web, &all),
            vec![
                "the health metric of web began to rise at 11:44 UTC (0.001 → 0.05 at the alert), 12 min after it finished".to_owned(),
                "api, below it, began to rise 3 min earlier: the trouble may have come from there".to_owned(),
            ]
        );
        assert_eq!(
            service_metric_reasons(when, &cache, &all),
            vec!["the health metric of cache showed no rise before the alert".to_owned()]
        );
        assert_eq!(
            service_metric_reasons(when, &late, &all),
            vec!["the health metric of api began to rise at 11:41 UTC (0.002 → 0.08 at the alert), 12 min before it started: the service was in trouble before it".to_owned()]
        );
    }

    #[test]
    fn the_metric_onset_separates_a_change_before_it_from_one_after_it() {
        // The metric began to move 20 min before the alert; one rollout started just before
        // that, another 10 min after it (closer to the alert, with the same evidence).
        let onset = MetricOnset::Found {
            at: at(-20),
            query: "rate(errors[5m])".into(),
            before: 0.002,
            at_alert: 0.051,
        };
        let early = candidate("early", -19); // started at -21
        let late = candidate("late", -8); // started at -10
        let all = [early.clone(), late.clone()];
        let when = AlertTime {
            start: at(0),
            onset: Some(&onset),
            services: None,
            name: None,
            symptoms: Symptoms::NONE,
        };
        // The metric began to move while `early` rolled out (from -21 to -19).
        let f = features(when, &early, &all, Duration::minutes(19));
        assert!(
            f.onset_near == 1.0
                && f.onset_lead == 0.0
                && f.after_onset == 0.0
                && (f.onset_in_rollout - 3f64.ln()).abs() < 1e-9,
            "{f:?}"
        );
        let g = features(when, &late, &all, Duration::minutes(8));
        assert!(
            g.onset_near == 0.0
                && g.onset_lead == 0.0
                && g.after_onset == 1.0
                && g.onset_in_rollout == 0.0,
            "{g:?}"
        );
        // A rollout that finished 6 min before the onset: measured from its finish.
        let earlier = candidate("earlier", -26); // from -28 to -26
        let e = features(when, &earlier, &all, Duration::minutes(26));
        assert!(
            (e.onset_near - (-0.6f64).exp()).abs() < 1e-9
                && (e.onset_lead - 7f64.ln()).abs() < 1e-9
                && e.onset_in_rollout == 0.0,
            "{e:?}"
        );
        assert_eq!(
            onset_reason(&earlier, at(0), Some(&onset)).unwrap_or_default(),
            "started 8 min (finished 6 min) before the alert's metric `rate(errors[5m])` began to move at 11:40 UTC (0.002 → 0.051 at the alert)"
        );
        // A long rollout still rolling when the alert started: the onset fell inside it.
        let rolling = Candidate {
            started_at: at(-35),
            finished_at: None,
            status: DeploymentStatus::InProgress,
            ..candidate("rolling", -33)
        };
        assert_eq!(
            OnsetPlace::of(&rolling, at(0), at(-20)),
            OnsetPlace::During {
                into: Duration::minutes(15),
                length: Duration::minutes(35)
            }
        );
        assert_eq!(
            onset_reason(&rolling, at(0), Some(&onset)).unwrap_or_default(),
            "was rolling out (started 15 min before) when the alert's metric `rate(errors[5m])` began to move at 11:40 UTC (0.002 → 0.051 at the alert)"
        );
        // Found: the same for both (it moves only the answer "no recorded change").
        assert_eq!((f.onset_found, g.onset_found), (1.0, 1.0));
        // Without an onset all are 0: only the alert's start counts.
        let h = features(at(0).into(), &late, &all, Duration::minutes(8));
        assert_eq!(
            (h.onset_near, h.onset_lead, h.after_onset, h.onset_found),
            (0.0, 0.0, 0.0, 0.0)
        );
        // Read but not found: as without one.
        let none = MetricOnset::NotFound {
            reason: "no break".into(),
        };
        let when_none = AlertTime {
            start: at(0),
            onset: Some(&none),
            services: None,
            name: None,
            symptoms: Symptoms::NONE,
        };
        let n = features(when_none, &late, &all, Duration::minutes(8));
        assert_eq!(n.to_array(), h.to_array());

        let settings = Settings {
            floor: 0.0,
            ..Settings::default()
        };
        let Attribution::Deployments { suspects, .. } = attribute(when, &all, &[], &settings)
        else {
            panic!("no chaos here");
        };
        assert_eq!(suspects[0].deployment.as_str(), "early", "{suspects:?}");
        assert!(
            suspects[0]
                .reasons
                .iter()
                .any(|r| r.starts_with("started as the alert's metric `rate(errors[5m])` began to move at 11:40 UTC (0.002 → 0.051 at the alert)")),
            "{suspects:?}"
        );
        assert!(
            suspects[1]
                .reasons
                .iter()
                .any(|r| r.starts_with("started 10 min after the alert's metric")
                    && r.ends_with("the episode was under way before it")),
            "{suspects:?}"
        );
        assert!(suspects[0].confidence_score > 0.9, "{suspects:?}");
        // Without the onset nothing tells them apart.
        let Attribution::Deployments { suspects, .. } = attribute(at(0), &all, &[], &settings)
        else {
            panic!("no chaos here");
        };
        assert!(
            (suspects[0].confidence_score - suspects[1].confidence_score).abs() < 0.1,
            "{suspects:?}"
        );
    }

    #[test]
    fn an_alert_s_symptom_points_at_the_key_that_can_cause_it() {
        let memory = "spec.template.spec.containers[0].resources.limits.memory";
        let mut cut = candidate("cut", -20);
        cut.changes = ChangeSummary {
            keys: vec![key(memory, "1Gi", "512Mi")],
            ..ChangeSummary::default()
        };
        let mut pool = candidate("pool", -10);
        pool.changes = ChangeSummary {
            keys: vec![key("values.redis.pool.size", "50", "10")],
            ..ChangeSummary::default()
        };
        let mut image = candidate("image", -5);
        image.changes.image = Some(("api:1".into(), "api:2".into()));
        let all = vec![cut.clone(), pool.clone(), image.clone()];
        let name = "ContainerOOMKilled";
        let when = AlertTime {
            name: Some(name),
            symptoms: symptom::of_alert(name, None, None),
            ..AlertTime::from(at(0))
        };
        assert_eq!(
            symptom_reason(when, &cut).as_deref(),
            Some(
                "ContainerOOMKilled names memory, crashing or unready pods: \
                 spec.template.spec.containers[0].resources.limits.memory 1Gi → 512Mi can cause that"
            )
        );
        assert_eq!(
            symptom_reason(when, &pool).as_deref(),
            Some(
                "ContainerOOMKilled names memory, crashing or unready pods: none of the keys it \
                 changed can cause that"
            )
        );
        // New code can break in any way: nothing either way.
        assert_eq!(symptom_reason(when, &image), None);
        // A raised limit cannot starve the container.
        let mut raised = cut.clone();
        raised.changes.keys = vec![key(memory, "512Mi", "1Gi")];
        assert!(
            symptom_reason(when, &raised).is_some_and(|r| r.contains("none of the keys")),
            "{:?}",
            symptom_reason(when, &raised)
        );
        // An alert that names only errors says nothing about any of them.
        let generic = AlertTime {
            name: Some("HTTP5xxRatioHigh"),
            symptoms: symptom::of_alert("HTTP5xxRatioHigh", None, None),
            ..AlertTime::from(at(0))
        };
        for c in &all {
            assert_eq!(symptom_reason(generic, c), None);
        }
        // The reason is among the suspect's reasons; the probabilities do not depend on it.
        let settings = Settings {
            floor: 0.0,
            ..Settings::default()
        };
        let suspects = |w: AlertTime<'_>| {
            let Attribution::Deployments { suspects, .. } = attribute(w, &all, &[], &settings)
            else {
                panic!("no chaos here");
            };
            suspects
        };
        let (named, plain) = (suspects(when), suspects(generic));
        let cut_named = named
            .iter()
            .find(|s| s.deployment == cut.deployment)
            .expect("cut is a suspect");
        assert!(
            cut_named
                .reasons
                .iter()
                .any(|r| r.starts_with("ContainerOOMKilled names memory")),
            "{cut_named:?}"
        );
        assert_eq!(
            named.iter().map(|s| s.confidence_score).collect::<Vec<_>>(),
            plain.iter().map(|s| s.confidence_score).collect::<Vec<_>>()
        );
    }

    fn probability_of(target: &Candidate, others: &[Candidate]) -> f64 {
        let mut all = vec![target.clone()];
        all.extend_from_slice(others);
        let Attribution::Deployments { suspects, .. } = attribute(
            at(0),
            &all,
            &[],
            &Settings {
                floor: 0.0,
                ..Settings::default()
            },
        ) else {
            panic!("expected deployments");
        };
        suspects
            .iter()
            .find(|s| s.deployment == target.deployment)
            .map_or(0.0, |s| s.confidence_score)
    }

    #[test]
    fn key_classes_follow_the_words_of_the_path() {
        for (path, class) in [
            ("values.redis.pool.size", KeyClass::Operational),
            ("values.http.client.timeoutMs", KeyClass::Operational),
            ("env.UPSTREAM_URL", KeyClass::Operational),
            ("resources.limits.memory", KeyClass::Operational),
            ("values.hikari.maximumPoolSize", KeyClass::Operational),
            ("values.log.level", KeyClass::Cosmetic),
            ("values.tracing.sampleRate", KeyClass::Cosmetic),
            ("values.podAnnotations.team", KeyClass::Cosmetic),
            ("values.greeting", KeyClass::Other),
        ] {
            assert_eq!(KeyClass::of(path), class, "{path}");
        }
    }

    #[test]
    fn evidence_moves_the_probability_the_right_way() {
        // Each variant against the same rival: a new image 20 minutes before the alert on a
        // direct dependency. (Hops are left out: their weights are what the fit learned from
        // the labelled incidents, not a direction fixed in advance.)
        let rival = Candidate {
            deployment: Uid::from_stored("rival"),
            service: "db".into(),
            relation: Relation::Dependency { depth: 1 },
            path: vec!["payments".into(), "db".into()],
            ..candidate("rival", -20)
        };
        let base = candidate("d", -10);
        let b = probability_of(&base, std::slice::from_ref(&rival));
        assert!(b > 0.0 && b < 1.0, "{b}");
        let unchanged = ChangeSummary::default();
        let cases: Vec<(Candidate, bool, &str)> = vec![
            (
                Candidate {
                    finished_at: Some(at(-100)),
                    started_at: at(-102),
                    ..base.clone()
                },
                false,
                "older",
            ),
            (
                Candidate {
                    changes: unchanged,
                    ..base.clone()
                },
                false,
                "an unchanged redeploy",
            ),
            (
                Candidate {
                    changes: ChangeSummary {
                        image_changed: true,
                        keys: vec![key("values.redis.pool.size", "50", "10")],
                        ..ChangeSummary::default()
                    },
                    ..base.clone()
                },
                true,
                "a pool size as well",
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
                    canary: Some(canary(CanaryVerdict::Fail)),
                    ..base.clone()
                },
                true,
                "its canary failed",
            ),
            (
                Candidate {
                    canary: Some(canary(CanaryVerdict::Pass)),
                    ..base.clone()
                },
                false,
                "its canary passed",
            ),
        ];
        for (variant, higher, name) in cases {
            let v = probability_of(&variant, std::slice::from_ref(&rival));
            assert_eq!(v > b, higher, "{name}: {v} vs base {b}");
        }
    }

    #[test]
    fn an_unchanged_redeploy_is_nearly_exonerated_beside_a_dependency_config_change() {
        let noop = Candidate {
            changes: ChangeSummary::default(),
            ..candidate("noop", -4)
        };
        let config = Candidate {
            deployment: Uid::from_stored("config"),
            service: "redis".into(),
            relation: Relation::Dependency { depth: 1 },
            path: vec!["payments".into(), "redis".into()],
            changes: ChangeSummary {
                keys: vec![key("values.redis.pool.size", "50", "10")],
                ..ChangeSummary::default()
            },
            ..candidate("config", -25)
        };
        let Attribution::Deployments { suspects, .. } =
            attribute(at(0), &[noop, config], &[], &Settings::default())
        else {
            panic!("expected deployments");
        };
        assert_eq!(suspects[0].deployment.as_str(), "config", "{suspects:?}");
        assert!(
            suspects[0]
                .reasons
                .iter()
                .any(|r| r == "1 hop: payments → redis"),
            "{:?}",
            suspects[0].reasons
        );
        assert!(
            suspects[0]
                .reasons
                .iter()
                .any(|r| r.contains("values.redis.pool.size 50 → 10")),
            "{:?}",
            suspects[0].reasons
        );
        if let Some(noop) = suspects.iter().find(|s| s.deployment.as_str() == "noop") {
            assert!(
                noop.reasons
                    .iter()
                    .any(|r| r == "same image as the previous deployment, nothing changed"),
                "{:?}",
                noop.reasons
            );
        }
    }

    #[test]
    fn probabilities_and_unexplained_sum_to_one() {
        let cands: Vec<Candidate> = (1..=6)
            .map(|i| candidate(&format!("d{i}"), -10 * i))
            .collect();
        let Attribution::Deployments {
            suspects,
            unexplained,
        } = attribute(at(0), &cands, &[], &Settings::default())
        else {
            panic!("expected deployments");
        };
        let sum: f64 = suspects.iter().map(|s| s.confidence_score).sum();
        assert!(sum <= 1.0, "{sum}");
        assert!(
            (sum + unexplained - 1.0).abs() < 1e-6,
            "{sum} + {unexplained}"
        );
        assert!(unexplained > 0.0);
        let Attribution::Deployments {
            suspects,
            unexplained,
        } = attribute(at(0), &[], &[], &Settings::default())
        else {
            panic!("expected deployments");
        };
        assert!(suspects.is_empty());
        assert!((unexplained - 1.0).abs() < 1e-9);
    }

    #[test]
    fn deployments_outside_the_window_or_after_the_alert_are_not_candidates() {
        let settings = Settings::default();
        assert!(lead_time(at(0), &candidate("late", 5), &settings).is_none());
        let window = settings.window.num_minutes();
        assert!(lead_time(at(0), &candidate("old", -window - 1), &settings).is_none());
        let in_progress = Candidate {
            status: DeploymentStatus::InProgress,
            finished_at: None,
            started_at: at(-1),
            ..candidate("rolling", 0)
        };
        assert!(
            lead_time(at(0), &in_progress, &settings).is_some(),
            "a rollout still in progress counts"
        );
        let rolling = Candidate {
            started_at: at(-5),
            finished_at: Some(at(3)),
            status: DeploymentStatus::Failed,
            ..candidate("failing", 0)
        };
        let delta = lead_time(at(0), &rolling, &settings).map(|d| d.num_minutes());
        assert_eq!(
            delta,
            Some(5),
            "a rollout that ends after the alert counts from its start"
        );
        let f = features(at(0).into(), &rolling, &[], Duration::minutes(5));
        assert!((f.rolling_at_alert - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_later_change_of_the_same_service_supersedes_an_earlier_one() {
        let early = candidate("early", -30);
        let later = candidate("later", -10);
        let all = [early.clone(), later.clone()];
        let f = features(at(0).into(), &early, &all, Duration::minutes(30));
        assert!(f.superseded > 0.0);
        let g = features(at(0).into(), &later, &all, Duration::minutes(10));
        assert!(g.superseded.abs() < f64::EPSILON);
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
            Attribution::Deployments { .. }
        ));
    }

    #[test]
    fn key_history_is_the_riskiest_changed_keys_smoothed_log_odds() {
        let mut c = candidate("d1", -20);
        let delta = Duration::minutes(20);
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        assert_eq!(f.key_history, 0.0, "no history, no evidence");
        c.key_history = vec![
            KeyRecord {
                path: "values.a".into(),
                changes: 9,
                blamed: 0,
            },
            KeyRecord {
                path: "values.b".into(),
                changes: 4,
                blamed: 3,
            },
        ];
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        assert!(
            (f.key_history - (4.0f64 / 2.0).ln()).abs() < 1e-12,
            "{}",
            f.key_history
        );
        c.key_history.truncate(1);
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        assert!(
            (f.key_history - (1.0f64 / 10.0).ln()).abs() < 1e-12,
            "{}",
            f.key_history
        );
    }

    #[test]
    fn co_alerts_count_the_other_alerts_and_name_their_services() {
        let mut c = candidate("d1", -20);
        let delta = Duration::minutes(20);
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        assert_eq!(f.co_alerts, 0.0);
        assert!(
            !reasons(&c, &f, delta)
                .iter()
                .any(|r| r.contains("other alert"))
        );
        c.co_alerts = ["web", "cart", "web", "api", "search", "orders", "users"]
            .map(String::from)
            .to_vec();
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        assert!((f.co_alerts - 8.0f64.ln()).abs() < 1e-12, "{}", f.co_alerts);
        let words = reasons(&c, &f, delta);
        assert!(
            words.contains(
                &"7 other alerts started after it on api, cart, orders, search, users and 1 more, which depend on payments"
                    .to_owned()
            ),
            "{words:?}"
        );
        c.co_alerts = vec!["payments".into()];
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        assert!(
            reasons(&c, &f, delta).contains(
                &"1 other alert started after it on payments, payments itself or services that depend on it"
                    .to_owned()
            )
        );
    }

    fn canary(verdict: CanaryVerdict) -> CanaryEvidence {
        CanaryEvidence {
            template: "http-error-ratio".into(),
            verdict,
            baseline: "side_by_side".into(),
            failed_metrics: if verdict == CanaryVerdict::Fail {
                vec![(
                    "http_error_ratio".into(),
                    "canary 2.10 % vs baseline 0.40 %: +1.70 points: beyond the allowed 0.50 points, p 3e-7".into(),
                )]
            } else {
                Vec::new()
            },
            metrics: 2,
        }
    }

    #[test]
    fn a_canary_verdict_is_evidence_and_a_reason() {
        let settings = Settings::default();
        let plain = candidate("d1", -20);
        let delta = lead_time(at(0), &plain, &settings).expect("a candidate");
        let f = features(at(0).into(), &plain, std::slice::from_ref(&plain), delta);
        assert_eq!((f.canary_failed, f.canary_passed), (0.0, 0.0));
        let reasons_of = |c: &Candidate| {
            let f = features(at(0).into(), c, std::slice::from_ref(c), delta);
            (f, reasons(c, &f, delta))
        };
        let failed = Candidate {
            canary: Some(canary(CanaryVerdict::Fail)),
            ..plain.clone()
        };
        let (f, r) = reasons_of(&failed);
        assert_eq!((f.canary_failed, f.canary_passed), (1.0, 0.0));
        assert!(
            r.contains(&"its canary analysis (http-error-ratio) failed against its side-by-side baseline on http_error_ratio: canary 2.10 % vs baseline 0.40 %: +1.70 points: beyond the allowed 0.50 points, p 3e-7".to_owned()),
            "{r:?}"
        );
        let passed = Candidate {
            canary: Some(canary(CanaryVerdict::Pass)),
            ..plain.clone()
        };
        let (f, r) = reasons_of(&passed);
        assert_eq!((f.canary_failed, f.canary_passed), (0.0, 1.0));
        assert!(
            r.contains(&"its canary analysis (http-error-ratio) passed against its side-by-side baseline on 2 metric(s)".to_owned()),
            "{r:?}"
        );
        // Too little traffic is no evidence either way, and says so.
        let unsure = Candidate {
            canary: Some(canary(CanaryVerdict::Inconclusive)),
            ..plain.clone()
        };
        let (f, r) = reasons_of(&unsure);
        assert_eq!((f.canary_failed, f.canary_passed), (0.0, 0.0));
        assert!(r.iter().any(|x| x.contains("was inconclusive")), "{r:?}");
    }

    #[test]
    fn reasons_name_the_changed_keys_blamed_elsewhere_riskiest_first() {
        let mut c = candidate("d1", -20);
        c.changes.keys = vec![
            key("values.redis.pool.size", "50", "10"),
            key("values.log.level", "info", "debug"),
            key("values.cache.ttl", "30", "60"),
        ];
        c.key_history = vec![
            KeyRecord {
                path: "values.cache.ttl".into(),
                changes: 10,
                blamed: 1,
            },
            KeyRecord {
                path: "values.log.level".into(),
                changes: 40,
                blamed: 0,
            },
            KeyRecord {
                path: "values.redis.pool.size".into(),
                changes: 4,
                blamed: 3,
            },
        ];
        let delta = Duration::minutes(20);
        let f = features(at(0).into(), &c, std::slice::from_ref(&c), delta);
        let reasons = reasons(&c, &f, delta);
        let keyed: Vec<&String> = reasons
            .iter()
            .filter(|r| r.contains("changes anywhere"))
            .collect();
        assert_eq!(
            keyed,
            [
                "values.redis.pool.size: 3 of its last 4 changes anywhere were blamed for alerts",
                "values.cache.ttl: 1 of its last 10 changes anywhere were blamed for alerts",
            ]
        );
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
