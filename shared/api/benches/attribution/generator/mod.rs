//! Labelled incidents for the attribution benchmark, generated from a seed: each one a small
//! world of services with `DEPENDS_ON` topology, days of deployments, maybe chaos runs, and the
//! alert (or alerts) whose cause is known.
//!
//! Written without looking at the scorer's numbers: times come from log-normal and exponential
//! distributions with this generator's own parameters, drawn afresh for every world (how often
//! services deploy, what a deployment changes, how long a culprit takes to raise an alert), and
//! innocent deployments are plausible suspects — config changes, new images, failed rollouts,
//! often closer to the alert than the culprit. Nothing here knows the attribution window, the
//! decay, the per-hop factor or the weights of a change.
//!
//! The same `(kind, seed)` always gives the same world (with the locked `rand`).

mod build;
mod canary;
mod topology;

pub use build::generate;
pub(crate) use build::log_uniform;

use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, VecDeque};

/// What caused an incident, and how it is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The alerting service's own deployment.
    OwnChange,
    /// A dependency's config change, then an unchanged redeploy of the alerting service.
    DependencyConfigThenNoopRedeploy,
    /// A failed rollout on a direct dependency.
    DependencyFailedRollout,
    /// A change two `DEPENDS_ON` hops below the alerting service.
    TwoHops,
    /// A change three hops below.
    ThreeHops,
    /// Many deployments across the services shortly before the alert, one of them the culprit.
    Burst,
    /// One change on a shared dependency; several services that depend on it alert.
    AlertStorm,
    /// The culprit is recorded after the alert (CI reporting late, a watcher catching up).
    LateCulprit,
    /// No recorded change caused the alert; innocent deployments around it.
    NoRecordedCause,
    /// A chaos run on the service was active when the alert started.
    Chaos,
    /// A ConfigMap the alerting service mounts was edited (not a rollout).
    ConfigMapEdit,
    /// A feature flag was flipped.
    FlagFlip,
    /// The culprit changes a key whose earlier changes caused incidents that SREs reviewed
    /// and confirmed; an innocent change lands closer to the alert. What reviews teach.
    ReviewedKey,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Self; 13] = [
        Self::OwnChange,
        Self::DependencyConfigThenNoopRedeploy,
        Self::DependencyFailedRollout,
        Self::TwoHops,
        Self::ThreeHops,
        Self::Burst,
        Self::AlertStorm,
        Self::LateCulprit,
        Self::NoRecordedCause,
        Self::Chaos,
        Self::ConfigMapEdit,
        Self::FlagFlip,
        Self::ReviewedKey,
    ];

    /// Its name in reports and service names' prefixes.
    pub fn name(self) -> &'static str {
        match self {
            Self::OwnChange => "own change",
            Self::DependencyConfigThenNoopRedeploy => "dependency config, then no-op redeploy",
            Self::DependencyFailedRollout => "dependency failed rollout",
            Self::TwoHops => "two hops down",
            Self::ThreeHops => "three hops down",
            Self::Burst => "burst of deployments",
            Self::AlertStorm => "alert storm (one change, several alerts)",
            Self::LateCulprit => "culprit recorded after the alert",
            Self::NoRecordedCause => "no recorded cause",
            Self::Chaos => "chaos run",
            Self::ConfigMapEdit => "ConfigMap edit",
            Self::FlagFlip => "feature flag flip",
            Self::ReviewedKey => "key of earlier reviewed incidents",
        }
    }

    /// What the public API lacks to record this kind's cause; `None` when it can be written.
    /// Adding a kind's writer to the driver and returning `None` here is all it takes.
    pub fn missing(self) -> Option<&'static str> {
        // Every kind is written: changes that are not rollouts through `POST /v1/changes`,
        // reviews through `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`.
        let _ = self;
        None
    }

    /// Whether generator B makes worlds of this kind (its author wrote the other kinds).
    pub fn in_generator_b(self) -> bool {
        self != Self::ReviewedKey
    }

    fn index(self) -> u64 {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u64
    }
}

/// The topology's overall shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Each service depends on the next.
    Chain,
    /// A few front services over many back ones.
    FanOut,
    /// Many services over a few shared ones (a database, a cache).
    FanIn,
    /// Diamonds: one service over two or three, which share one below.
    Diamond,
    /// Random layer widths.
    Layered,
}

/// A rollout's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Rolled out.
    Succeeded,
    /// Did not become ready.
    Failed,
    /// Undone by the rollout tool.
    RolledBack,
    /// Still rolling when recorded.
    InProgress,
}

impl Status {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::InProgress => "in_progress",
        }
    }
}

/// One key a deployment or a change changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// `values.redis.pool.size`.
    pub path: String,
    /// The API's change kind (`value`, `env`, `resources`, `replicas`).
    pub kind: &'static str,
    /// Before.
    pub before: String,
    /// After.
    pub after: String,
}

/// Why a deployment is in the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Ordinary traffic of the preceding days.
    Background,
    /// The ground-truth cause.
    Culprit,
    /// Innocent, placed near the alert on a related service.
    Decoy,
    /// An unchanged redeploy after the culprit, on a service between it and the alert.
    NoopRedeploy,
    /// Part of a burst.
    Burst,
    /// A fix or rollback after the alert.
    AfterAlert,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// Index into [`World::services`].
    pub service: usize,
    /// Rollout start.
    pub started_at: DateTime<Utc>,
    /// Rollout end; `None` while in progress.
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub status: Status,
    /// Image version (the tag); the digest derives from it.
    pub version: u32,
    /// Commit (of the app or of its configuration repository).
    pub commit: u64,
    /// What changed against the service's previous deployment.
    pub changes: Vec<KeyChange>,
    /// Why it is here.
    pub role: Role,
    /// When it is written through the API.
    pub recorded_at: DateTime<Utc>,
}

impl Deploy {
    /// When it took effect: its end, or its start while in progress.
    pub fn landed(&self) -> DateTime<Utc> {
        self.finished_at.unwrap_or(self.started_at)
    }
}

/// Where a change that is not a rollout comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// A ConfigMap edited in place (`kubectl edit`).
    ConfigMap,
    /// A feature flag flipped.
    FeatureFlag,
}

/// A change that is not a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Index into [`World::services`].
    pub service: usize,
    /// Its source.
    pub source: ChangeSource,
    /// When it took effect.
    pub at: DateTime<Utc>,
    /// The key, before and after.
    pub key: KeyChange,
    /// When it is written through the API.
    pub recorded_at: DateTime<Utc>,
}

/// A chaos run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosRun {
    /// Index into [`World::services`].
    pub service: usize,
    /// `pod-delete`, `network-latency` …
    pub experiment: &'static str,
    /// Fault start.
    pub started_at: DateTime<Utc>,
    /// Fault end, when it has ended (recorded then, as the runner updates the run).
    pub ended_at: Option<DateTime<Utc>>,
}

/// A canary verdict, as `canary analyze` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryVerdict {
    /// No metric worse beyond its tolerance.
    Pass,
    /// A metric significantly worse.
    Fail,
    /// Too little traffic to judge.
    Inconclusive,
    /// No series.
    NoData,
}

impl CanaryVerdict {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Inconclusive => "inconclusive",
            Self::NoData => "no_data",
        }
    }
}

/// A canary analysis of one deployment, recorded when it is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryReport {
    /// Index into [`World::deployments`].
    pub deployment: usize,
    /// Its verdict.
    pub verdict: CanaryVerdict,
    /// The metric that decided it (the failing one, or the template's first).
    pub metric: &'static str,
    /// Whether that metric is a ratio (else a distribution).
    pub ratio: bool,
    /// When the analysis started.
    pub started_at: DateTime<Utc>,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// When it is written through the API (not before its deployment is).
    pub recorded_at: DateTime<Utc>,
}

/// An alert occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Alertmanager fingerprint (16 hex digits).
    pub fingerprint: String,
    /// Index into [`World::services`].
    pub service: usize,
    /// `alertname`.
    pub name: &'static str,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// Alerts of one group are delivered in one notification.
    pub group: usize,
    /// Scored against the world's cause (earlier alerts of the history are not).
    pub scored: bool,
}

/// What caused the scored alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A deployment, by index into [`World::deployments`].
    Deployment(usize),
    /// A change that is not a rollout, by index into [`World::changes`].
    Change(usize),
    /// A chaos run, by index into [`World::chaos`].
    Chaos(usize),
    /// No recorded change.
    None,
}

/// One write through the API, in the order they happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `PUT /v1/services/{name}/dependencies` for every service.
    Topology,
    /// `POST /v1/deployments`.
    Deployment(usize),
    /// `POST /v1/changes`: a change that is not a rollout.
    Change(usize),
    /// `POST /v1/chaos/runs` when the run starts.
    ChaosStarted(usize),
    /// `POST /v1/chaos/runs` again when it ends.
    ChaosEnded(usize),
    /// `POST /v1/alerts/alertmanager` with these alerts.
    Alerts(Vec<usize>),
    /// `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`: an SRE confirms review `i`.
    Review(usize),
    /// `POST /v1/canary/analyses`: canary analysis `i` decided.
    Canary(usize),
}

/// An SRE's review of an earlier (unscored) alert: what caused it, confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Review {
    /// Index into [`World::alerts`].
    pub alert: usize,
    /// The confirmed cause (a deployment or a change).
    pub cause: Cause,
    /// When the review is written.
    pub at: DateTime<Utc>,
}

/// One labelled incident.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// Its kind.
    pub kind: Kind,
    /// Its seed.
    pub seed: u64,
    /// The topology's shape.
    pub shape: Shape,
    /// Service names, unique to this world.
    pub services: Vec<String>,
    /// `depends_on[i]`: what `services[i]` depends on.
    pub depends_on: Vec<Vec<usize>>,
    /// Deployments, by start time.
    pub deployments: Vec<Deploy>,
    /// Changes that are not rollouts.
    pub changes: Vec<Change>,
    /// Chaos runs.
    pub chaos: Vec<ChaosRun>,
    /// Alerts: the scored ones and earlier ones of the history.
    pub alerts: Vec<Alert>,
    /// The scored alerts' cause.
    pub cause: Cause,
    /// Start of the recorded history.
    pub history_start: DateTime<Utc>,
    /// Reviews of earlier alerts, written only when the benchmark writes reviews.
    pub reviews: Vec<Review>,
    /// Canary analyses of deployments (services that run canaries), written when decided.
    pub canaries: Vec<CanaryReport>,
    /// Whether the canary analyses are written (`BENCH_NO_CANARIES` keeps them unwritten, so
    /// the results can still be split by the verdict the cause's canary would have had).
    pub canaries_written: bool,
    /// Per alert, its rule's series when it comes from a readable rule ([`crate::metrics`];
    /// empty until attached).
    pub metrics: Vec<Option<crate::metrics::AlertSeries>>,
    /// Whether the alerts name their rule's expression in their `generatorURL`
    /// (`BENCH_NO_METRICS` keeps the series, so that the results can still be split by their
    /// shape, but no alert names its rule and no onset is read).
    pub rules_named: bool,
    /// Per service, its health series when it has one ([`crate::metrics::services`]; empty
    /// until attached).
    pub service_metrics: Vec<Option<crate::metrics::services::ServiceSeries>>,
    /// Whether the server reads the services' health metrics (`BENCH_NO_SERVICE_METRICS`
    /// keeps the series but configures no service health query).
    pub services_read: bool,
}

/// How far back a culprit may be and still be this generator's cause (a sanity bound of the
/// generator, not an attribution window).
pub const CAUSAL_HORIZON: Duration = Duration::hours(12);

impl World {
    /// The scored alerts' indices.
    pub fn scored_alerts(&self) -> Vec<usize> {
        (0..self.alerts.len())
            .filter(|i| self.alerts[*i].scored)
            .collect()
    }

    /// Hops along `DEPENDS_ON` from every service to every other (`None`: unreachable).
    pub fn distances(&self) -> Vec<Vec<Option<u32>>> {
        distances(&self.depends_on)
    }

    /// When the cause took effect, if it is a recorded change.
    pub fn cause_at(&self) -> Option<(usize, DateTime<Utc>)> {
        match self.cause {
            Cause::Deployment(i) => {
                let d = &self.deployments[i];
                Some((d.service, d.started_at))
            }
            Cause::Change(i) => Some((self.changes[i].service, self.changes[i].at)),
            Cause::Chaos(i) => Some((self.chaos[i].service, self.chaos[i].started_at)),
            Cause::None => None,
        }
    }

    /// The last-deployment rule's answer for alert `alert`: the deployment of the alerting
    /// service that started last before the alert did (no window), from the world itself.
    pub fn last_deployment_before(&self, alert: usize) -> Option<usize> {
        let a = &self.alerts[alert];
        self.deployments
            .iter()
            .enumerate()
            .filter(|(_, d)| d.service == a.service && d.started_at <= a.starts_at)
            .max_by_key(|(i, d)| (d.started_at, *i))
            .map(|(i, _)| i)
    }

    /// The writes in the order they happen: the topology first, then every fact when it is
    /// recorded (deployments when they end, late ones later; alerts as their group is
    /// delivered; chaos runs when they start and when they end).
    pub fn writes(&self) -> Vec<Write> {
        let mut timed: Vec<(DateTime<Utc>, u8, usize, Write)> = Vec::new();
        for (i, d) in self.deployments.iter().enumerate() {
            timed.push((d.recorded_at, 1, i, Write::Deployment(i)));
        }
        for (i, c) in self.changes.iter().enumerate() {
            timed.push((c.recorded_at, 1, i, Write::Change(i)));
        }
        for (i, c) in self.chaos.iter().enumerate() {
            timed.push((c.started_at, 0, i, Write::ChaosStarted(i)));
            if let Some(end) = c.ended_at {
                timed.push((end, 0, i, Write::ChaosEnded(i)));
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, a) in self.alerts.iter().enumerate() {
            groups.entry(a.group).or_default().push(i);
        }
        for (group, members) in groups {
            // Alertmanager waits for the group before the first notification.
            let at = members
                .iter()
                .map(|i| self.alerts[*i].starts_at)
                .max()
                .unwrap_or(self.history_start)
                + Duration::seconds(30);
            timed.push((at, 2, group, Write::Alerts(members)));
        }
        for (i, r) in self.reviews.iter().enumerate() {
            timed.push((r.at, 3, i, Write::Review(i)));
        }
        for (i, c) in self.canaries.iter().enumerate() {
            if self.canaries_written {
                timed.push((c.recorded_at, 4, i, Write::Canary(i)));
            }
        }
        timed.sort_by_key(|a| (a.0, a.1, a.2));
        std::iter::once(Write::Topology)
            .chain(timed.into_iter().map(|t| t.3))
            .collect()
    }

    /// Checks that the world is well formed and its ground truth is where its kind says.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        let n = self.services.len();
        if !(3..=12).contains(&n) {
            return Err(format!("{n} services"));
        }
        for name in &self.services {
            let ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !ok {
                return Err(format!("service name {name:?} is not a DNS-1123 label"));
            }
        }
        let distinct: std::collections::BTreeSet<&String> = self.services.iter().collect();
        if distinct.len() != n {
            return Err("duplicate service names".into());
        }
        if self.depends_on.len() != n
            || self
                .depends_on
                .iter()
                .enumerate()
                .any(|(i, deps)| deps.iter().any(|j| *j >= n || *j == i))
        {
            return Err("a dependency out of range or on itself".into());
        }
        let dist = self.distances();
        if (0..n).any(|i| (0..n).any(|j| i != j && dist[i][j].is_some() && dist[j][i].is_some())) {
            return Err("the topology has a cycle".into());
        }
        for (i, d) in self.deployments.iter().enumerate() {
            if d.service >= n {
                return Err(format!("deployment {i} on no service"));
            }
            if d.finished_at.is_some_and(|f| f < d.started_at) {
                return Err(format!("deployment {i} ends before it starts"));
            }
            if (d.status == Status::InProgress) != d.finished_at.is_none() {
                return Err(format!("deployment {i}: status and end disagree"));
            }
            if d.started_at < self.history_start || d.recorded_at < d.started_at {
                return Err(format!("deployment {i} out of the history"));
            }
            if d.changes.iter().any(|c| c.before == c.after) {
                return Err(format!("deployment {i} changes a key to its own value"));
            }
        }
        let scored = self.scored_alerts();
        if scored.is_empty() {
            return Err("no scored alert".into());
        }
        let fingerprints: std::collections::BTreeSet<&String> =
            self.alerts.iter().map(|a| &a.fingerprint).collect();
        if fingerprints.len() != self.alerts.len() {
            return Err("duplicate fingerprints".into());
        }
        let expected_hops: Option<u32> = match self.kind {
            Kind::OwnChange | Kind::FlagFlip => Some(0),
            Kind::DependencyConfigThenNoopRedeploy | Kind::DependencyFailedRollout => Some(1),
            Kind::TwoHops => Some(2),
            Kind::ThreeHops => Some(3),
            _ => None,
        };
        for &a in &scored {
            let alert = &self.alerts[a];
            match self.cause {
                Cause::None => {
                    if matches!(self.kind, Kind::NoRecordedCause) {
                        continue;
                    }
                    return Err(format!("{} without a cause", self.kind.name()));
                }
                Cause::Chaos(c) => {
                    let run = &self.chaos[c];
                    let active = run.started_at <= alert.starts_at
                        && run.ended_at.is_none_or(|e| alert.starts_at <= e);
                    if run.service != alert.service || !active {
                        return Err("the chaos run is not active on the alert's service".into());
                    }
                }
                Cause::Deployment(_) | Cause::Change(_) => {
                    let Some((service, at)) = self.cause_at() else {
                        return Err("no cause time".into());
                    };
                    if at >= alert.starts_at || alert.starts_at - at > CAUSAL_HORIZON {
                        return Err(format!(
                            "the cause is not in the {} h before the alert",
                            CAUSAL_HORIZON.num_hours()
                        ));
                    }
                    if let Cause::Deployment(i) = self.cause {
                        let d = &self.deployments[i];
                        if d.role != Role::Culprit || (d.changes.is_empty() && !self.new_image(i)) {
                            return Err("the culprit changes nothing".into());
                        }
                    }
                    let hops = if service == alert.service {
                        Some(0)
                    } else {
                        dist[alert.service][service]
                    };
                    let Some(hops) = hops else {
                        return Err("the cause's service is not below the alert's".into());
                    };
                    if let Some(expected) = expected_hops
                        && hops != expected
                    {
                        return Err(format!("the cause is {hops} hop(s) away, not {expected}"));
                    }
                }
            }
        }
        if self.kind == Kind::AlertStorm && scored.len() < 2 {
            return Err("an alert storm of one alert".into());
        }
        if self.kind == Kind::LateCulprit
            && let Cause::Deployment(i) = self.cause
        {
            let first = scored.iter().map(|a| self.alerts[*a].starts_at).min();
            if first.is_none_or(|f| self.deployments[i].recorded_at <= f) {
                return Err("the late culprit is recorded before the alert".into());
            }
        }
        if matches!(self.kind, Kind::ConfigMapEdit | Kind::FlagFlip)
            != matches!(self.cause, Cause::Change(_))
        {
            return Err("the cause's type does not fit the kind".into());
        }
        for r in &self.reviews {
            let Some(alert) = self.alerts.get(r.alert) else {
                return Err("a review of no alert".into());
            };
            if alert.scored || r.at <= alert.starts_at {
                return Err("a review of a scored alert, or before its alert".into());
            }
            let Cause::Deployment(i) = r.cause else {
                return Err("a review confirms no deployment".into());
            };
            if self
                .deployments
                .get(i)
                .is_none_or(|d| d.landed() >= alert.starts_at)
            {
                return Err("a review confirms a deployment after its alert".into());
            }
        }
        let mut analysed = std::collections::BTreeSet::new();
        for (i, c) in self.canaries.iter().enumerate() {
            let Some(d) = self.deployments.get(c.deployment) else {
                return Err(format!("canary {i} of no deployment"));
            };
            if !analysed.insert(c.deployment) {
                return Err(format!(
                    "two canary analyses of deployment {}",
                    c.deployment
                ));
            }
            if c.started_at < d.started_at
                || c.decided_at < c.started_at
                || c.recorded_at < c.decided_at
                || c.recorded_at <= d.recorded_at
            {
                return Err(format!("canary {i} out of order with its deployment"));
            }
        }
        if (self.kind == Kind::ReviewedKey) == self.reviews.is_empty() {
            return Err("reviews belong to the reviewed-key kind".into());
        }
        Ok(())
    }

    /// Whether an innocent deployment on the alerting service or below it landed between the
    /// culprit and the (first) scored alert.
    pub fn innocent_in_between(&self) -> bool {
        let Cause::Deployment(c) = self.cause else {
            return false;
        };
        let Some(&first) = self.scored_alerts().first() else {
            return false;
        };
        let alert = &self.alerts[first];
        let dist = self.distances();
        let culprit = self.deployments[c].landed();
        self.deployments.iter().enumerate().any(|(i, d)| {
            i != c
                && dist[alert.service][d.service].is_some()
                && d.landed() > culprit
                && d.landed() < alert.starts_at
        })
    }

    /// Whether deployment `i` runs another image than the service's previous deployment.
    pub fn new_image(&self, i: usize) -> bool {
        let d = &self.deployments[i];
        self.deployments[..i]
            .iter()
            .rev()
            .find(|p| p.service == d.service)
            .is_none_or(|p| p.version != d.version)
    }
}

fn distances(depends_on: &[Vec<usize>]) -> Vec<Vec<Option<u32>>> {
    let n = depends_on.len();
    let mut out = vec![vec![None; n]; n];
    for (from, row) in out.iter_mut().enumerate() {
        row[from] = Some(0);
        let mut queue = VecDeque::from([from]);
        while let Some(s) = queue.pop_front() {
            let d = row[s].unwrap_or(0);
            for &t in &depends_on[s] {
                if row[t].is_none() {
                    row[t] = Some(d + 1);
                    queue.push_back(t);
                }
            }
        }
    }
    out
}
