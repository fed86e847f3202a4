//! Building one world: the background of ordinary deployments, then the kind's incident.

use super::topology::topology;
use super::{
    Alert, CAUSAL_HORIZON, Cause, Change, ChangeSource, ChaosRun, Deploy, KeyChange, Kind, Review,
    Role, Shape, Status, World, distances,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller; 1 - u keeps the logarithm finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Log-normal minutes with this median and shape.
fn log_normal(rng: &mut StdRng, median_minutes: f64, sigma: f64) -> f64 {
    median_minutes * (sigma * normal(rng)).exp()
}

fn exponential(rng: &mut StdRng, mean_minutes: f64) -> f64 {
    -mean_minutes * (1.0 - rng.random::<f64>()).ln()
}

/// A draw between `low` and `high`, uniform in logarithm.
pub(crate) fn log_uniform(rng: &mut StdRng, low: f64, high: f64) -> f64 {
    (low.ln() + rng.random::<f64>() * (high.ln() - low.ln())).exp()
}

fn minutes(m: f64) -> Duration {
    Duration::seconds((m * 60.0).round().max(1.0) as i64)
}

/// Keys a deployment may change: (path, API kind, dangerous: the kind of key outages are made of).
const KEYS: &[(&str, &str, bool)] = &[
    ("values.redis.pool.size", "value", true),
    ("values.db.maxConnections", "value", true),
    ("values.http.client.timeoutMs", "value", true),
    ("values.grpc.deadlineMs", "value", true),
    ("values.retry.maxAttempts", "value", true),
    ("resources.limits.memory", "resources", true),
    ("resources.limits.cpu", "resources", true),
    ("env.UPSTREAM_URL", "env", true),
    ("values.log.level", "value", false),
    ("values.tracing.sampleRate", "value", false),
    ("values.cache.ttlSeconds", "value", false),
    ("values.ui.banner", "value", false),
    ("env.FEATURE_DARK_MODE", "env", false),
    ("values.podAnnotations.team", "value", false),
    ("values.metrics.scrapeInterval", "value", false),
];

const NAMES: &[&str] = &[
    "web", "api", "gateway", "checkout", "cart", "payments", "auth", "search", "catalog", "orders",
    "users", "stock", "mailer", "ledger", "cache", "redis", "db", "queue", "pricing", "reco",
];

const ALERTS: &[&str] = &[
    "HighErrorRate",
    "LatencySLOBurn",
    "PodCrashLooping",
    "SaturationHigh",
    "ProbeFailing",
];

const EXPERIMENTS: &[&str] = &[
    "pod-delete",
    "network-latency",
    "cpu-hog",
    "pod-network-loss",
];

/// How a world deploys: drawn once per world so that worlds differ in tempo and change mix.
#[derive(Debug, Clone)]
struct Style {
    /// Deployments per day per service.
    rates: Vec<f64>,
    /// Weights of: new image, new image + config, config only, unchanged redeploy,
    /// replicas, resources.
    mix: [f64; 6],
    fail: f64,
    rolled_back: f64,
    /// Median rollout minutes.
    rollout: f64,
    /// Median minutes from a culprit taking effect to the alert.
    onset: f64,
    /// Chance of innocent deployments placed near the alert.
    decoys: f64,
}

struct Builder {
    rng: StdRng,
    kind: Kind,
    seed: u64,
    shape: Shape,
    services: Vec<String>,
    depends_on: Vec<Vec<usize>>,
    deployments: Vec<Deploy>,
    changes: Vec<Change>,
    chaos: Vec<ChaosRun>,
    alerts: Vec<Alert>,
    style: Style,
    history_start: DateTime<Utc>,
    /// The (first) scored alert's start.
    alert_at: DateTime<Utc>,
    /// Per deployment: how many versions its image moves on (0: the same image).
    bumps: Vec<u32>,
    /// Reviews of earlier alerts (deployment indices before `finish` sorts them).
    reviews: Vec<Review>,
}

/// Generates the world of `kind` for `seed`.
pub fn generate(kind: Kind, seed: u64) -> World {
    let mut rng = StdRng::seed_from_u64(seed ^ ((kind.index() + 1) << 52));
    let need = match kind {
        Kind::TwoHops => 2,
        Kind::ThreeHops => 3,
        Kind::OwnChange | Kind::NoRecordedCause | Kind::Chaos | Kind::FlagFlip => 0,
        _ => 1,
    };
    let (shape, depends_on) = topology(&mut rng, need, kind == Kind::AlertStorm);
    let n = depends_on.len();
    let mut names: Vec<&str> = NAMES.to_vec();
    names.shuffle(&mut rng);
    let services: Vec<String> = names[..n]
        .iter()
        .map(|name| format!("i{seed}k{}-{name}", kind.index()))
        .collect();
    let anchor = Utc
        .with_ymd_and_hms(2026, 8, 3, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let alert_at = anchor + Duration::seconds(rng.random_range(0..90 * 86_400));
    let history = Duration::seconds(rng.random_range(86_400..5 * 86_400));
    let mut mix = [0.33, 0.14, 0.22, 0.19, 0.05, 0.07];
    for w in &mut mix {
        *w *= rng.random_range(0.4..1.6);
    }
    let style = Style {
        rates: (0..n).map(|_| log_uniform(&mut rng, 0.2, 10.0)).collect(),
        mix,
        fail: rng.random_range(0.01..0.08),
        rolled_back: rng.random_range(0.0..0.05),
        rollout: rng.random_range(1.0..6.0),
        onset: rng.random_range(3.0..28.0),
        decoys: rng.random_range(0.35..0.8),
    };
    let mut b = Builder {
        rng,
        kind,
        seed,
        shape,
        services,
        depends_on,
        deployments: Vec::new(),
        changes: Vec::new(),
        chaos: Vec::new(),
        alerts: Vec::new(),
        style,
        history_start: alert_at - history,
        alert_at,
        bumps: Vec::new(),
        reviews: Vec::new(),
    };
    b.background();
    let cause = b.incident();
    b.past_alerts();
    b.finish(cause)
}

impl Builder {
    fn dist(&self) -> Vec<Vec<Option<u32>>> {
        distances(&self.depends_on)
    }

    /// The service's key values just before `at`, as generated so far.
    fn values(&self, service: usize, at: DateTime<Utc>) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        for d in self
            .deployments
            .iter()
            .filter(|d| d.service == service && d.started_at < at)
        {
            for c in &d.changes {
                values.insert(c.path.clone(), c.after.clone());
            }
        }
        values
    }

    fn value(&mut self, path: &str, current: Option<&String>) -> (String, String) {
        let pick = |rng: &mut StdRng| -> String {
            if path.contains("memory") {
                format!("{}Mi", 128 * rng.random_range(1..=16))
            } else if path.contains("cpu") {
                format!("{}m", 100 * rng.random_range(1..=20))
            } else if path.contains("URL") {
                format!("http://upstream-{}.svc:8080", rng.random_range(1..=9))
            } else if path.contains("level") {
                ["debug", "info", "warn"][rng.random_range(0..3)].to_owned()
            } else if path.contains("DARK") || path.contains("banner") {
                ["true", "false", "on", "off"][rng.random_range(0..4)].to_owned()
            } else if path.contains("team") {
                format!("team-{}", rng.random_range(1..=6))
            } else if path.contains("sampleRate") {
                format!("0.{}", rng.random_range(1..=9))
            } else {
                rng.random_range(1..=400).to_string()
            }
        };
        let before = current.cloned().unwrap_or_else(|| pick(&mut self.rng));
        let mut after = pick(&mut self.rng);
        for _ in 0..20 {
            if after != before {
                break;
            }
            after = pick(&mut self.rng);
        }
        if after == before {
            after = format!("{before}-new");
        }
        (before, after)
    }

    /// `count` keys changed, each a dangerous one with probability `dangerous`; only keys of
    /// the API kind `only` when given.
    fn key_changes(
        &mut self,
        service: usize,
        at: DateTime<Utc>,
        count: usize,
        dangerous: f64,
        only: Option<&str>,
    ) -> Vec<KeyChange> {
        let values = self.values(service, at);
        let mut out: Vec<KeyChange> = Vec::new();
        while out.len() < count {
            let danger = self.rng.random_bool(dangerous);
            let pool: Vec<&(&str, &str, bool)> = KEYS
                .iter()
                .filter(|k| only.map_or(k.2 == danger, |kind| k.1 == kind))
                .collect();
            let (path, kind, _) = **pool.choose(&mut self.rng).unwrap_or(&&KEYS[0]);
            if out.iter().any(|c| c.path == path) {
                continue;
            }
            let (before, after) = self.value(path, values.get(path));
            out.push(KeyChange {
                path: path.to_owned(),
                kind,
                before,
                after,
            });
        }
        out
    }

    /// What an ordinary deployment changes, from the world's mix: (new image, key changes).
    fn ordinary_change(&mut self, service: usize, at: DateTime<Utc>) -> (bool, Vec<KeyChange>) {
        let total: f64 = self.style.mix.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        let mut which = 0;
        for (i, w) in self.style.mix.iter().enumerate() {
            if x < *w {
                which = i;
                break;
            }
            x -= w;
            which = i;
        }
        // Innocent config changes touch dangerous-looking keys too, only less often.
        let danger = 0.35;
        match which {
            0 => (true, Vec::new()),
            1 => {
                let k = self.rng.random_range(1..=3);
                (true, self.key_changes(service, at, k, danger, None))
            }
            2 => {
                let k = self.rng.random_range(1..=4);
                (false, self.key_changes(service, at, k, danger, None))
            }
            3 => (false, Vec::new()),
            4 => {
                let values = self.values(service, at);
                let before = values
                    .get("values.replicas")
                    .cloned()
                    .unwrap_or_else(|| "3".to_owned());
                let mut after = self.rng.random_range(2..=12).to_string();
                if after == before {
                    after = format!("{}", before.parse::<u32>().unwrap_or(3) + 1);
                }
                (
                    false,
                    vec![KeyChange {
                        path: "values.replicas".into(),
                        kind: "replicas",
                        before,
                        after,
                    }],
                )
            }
            _ => {
                let k = self.rng.random_range(1..=2);
                (
                    false,
                    self.key_changes(service, at, k, 1.0, Some("resources")),
                )
            }
        }
    }

    fn ordinary_status(&mut self) -> Status {
        let x = self.rng.random::<f64>();
        if x < self.style.fail {
            Status::Failed
        } else if x < self.style.fail + self.style.rolled_back {
            Status::RolledBack
        } else {
            Status::Succeeded
        }
    }

    fn rollout_minutes(&mut self, status: Status) -> f64 {
        match status {
            // Failed rollouts run into their progress deadline.
            Status::Failed | Status::RolledBack => log_normal(&mut self.rng, 9.0, 0.45),
            _ => log_normal(&mut self.rng, self.style.rollout, 0.6),
        }
    }

    /// Adds a deployment of `service` starting at `started_at` and rolling for `rollout`
    /// minutes (drawn when `None`); returns its index.
    #[allow(clippy::too_many_arguments)]
    fn deploy(
        &mut self,
        service: usize,
        started_at: DateTime<Utc>,
        rollout: Option<f64>,
        new_image: bool,
        changes: Vec<KeyChange>,
        status: Status,
        role: Role,
    ) -> usize {
        // Versions and commits are settled in start order by `finish`.
        let bump = if new_image {
            self.rng.random_range(1..=3)
        } else {
            0
        };
        self.bumps.push(bump);
        let finished_at = (status != Status::InProgress)
            .then(|| started_at + minutes(rollout.unwrap_or_else(|| self.rollout_minutes(status))));
        let recorded_at = finished_at.unwrap_or(started_at);
        self.deployments.push(Deploy {
            service,
            started_at,
            finished_at,
            status,
            version: 0,
            commit: 0,
            changes,
            role,
            recorded_at,
        });
        self.deployments.len() - 1
    }

    fn ordinary(
        &mut self,
        service: usize,
        at: DateTime<Utc>,
        rollout: Option<f64>,
        role: Role,
    ) -> usize {
        let (image, changes) = self.ordinary_change(service, at);
        let status = self.ordinary_status();
        self.deploy(service, at, rollout, image, changes, status, role)
    }

    /// Days of ordinary deployments, each service at its own rate, up to a little after the
    /// alert.
    fn background(&mut self) {
        let end = self.alert_at + Duration::hours(2);
        let mut planned: Vec<(DateTime<Utc>, usize)> = Vec::new();
        for s in 0..self.services.len() {
            // Every service runs some release when the history starts.
            planned.push((
                self.history_start + minutes(self.rng.random_range(1.0..60.0)),
                s,
            ));
            let mean_gap = 1440.0 / self.style.rates[s];
            let mut t = self.history_start + minutes(exponential(&mut self.rng, mean_gap));
            while t < end {
                planned.push((t, s));
                t += minutes(exponential(&mut self.rng, mean_gap));
            }
        }
        planned.sort();
        for (t, s) in planned {
            self.ordinary(s, t, None, Role::Background);
        }
    }

    /// The culprit's change: a new image, config keys (mostly dangerous ones), or both.
    fn culprit(
        &mut self,
        service: usize,
        at: DateTime<Utc>,
        rollout: f64,
        status: Status,
    ) -> usize {
        let (image, keys) = match self.rng.random_range(0..10) {
            0..=3 => (true, 0),
            4..=6 => (false, self.rng.random_range(1..=3)),
            _ => (true, self.rng.random_range(1..=2)),
        };
        let changes = self.key_changes(service, at, keys, 0.75, None);
        self.deploy(
            service,
            at,
            Some(rollout),
            image,
            changes,
            status,
            Role::Culprit,
        )
    }

    fn culprit_status(&mut self) -> Status {
        match self.rng.random_range(0..100) {
            0..=17 => Status::Failed,
            18..=25 => Status::RolledBack,
            26..=31 => Status::InProgress,
            _ => Status::Succeeded,
        }
    }

    /// Minutes from the cause taking effect to the alert, `hops` services away.
    fn onset(&mut self, hops: u32) -> f64 {
        let mut m = log_normal(&mut self.rng, self.style.onset, 0.8);
        for _ in 0..hops {
            m += exponential(&mut self.rng, 5.0);
        }
        m.min(CAUSAL_HORIZON.num_minutes() as f64 - 30.0)
    }

    /// Services `hops` away below `service`.
    fn below(&self, service: usize, hops: u32) -> Vec<usize> {
        let dist = self.dist();
        (0..self.services.len())
            .filter(|t| dist[service][*t] == Some(hops))
            .collect()
    }

    /// A service with something `hops` below it, and one of those.
    fn pair(&mut self, hops: u32) -> (usize, usize) {
        let candidates: Vec<(usize, usize)> = (0..self.services.len())
            .flat_map(|a| self.below(a, hops).into_iter().map(move |c| (a, c)))
            .collect();
        *candidates.choose(&mut self.rng).unwrap_or(&(0, 0))
    }

    fn alert(&mut self, service: usize, at: DateTime<Utc>, group: usize) -> usize {
        let fingerprint = format!("{:016x}", self.rng.random::<u64>());
        let name = *ALERTS.choose(&mut self.rng).unwrap_or(&"HighErrorRate");
        self.alerts.push(Alert {
            fingerprint,
            service,
            name,
            starts_at: at,
            group,
            scored: true,
        });
        self.alerts.len() - 1
    }

    /// Innocent deployments near the alert on `service` and what it depends on: often closer
    /// to the alert than `cause_lag` (minutes), with the world's ordinary change mix.
    fn decoys(&mut self, service: usize, cause_lag: Option<f64>) {
        if !self.rng.random_bool(self.style.decoys) {
            return;
        }
        let dist = self.dist();
        let related: Vec<usize> = (0..self.services.len())
            .filter(|t| dist[service][*t].is_some_and(|d| d <= 3))
            .collect();
        let count = self.rng.random_range(1..=3);
        for k in 0..count {
            let lag = match (k, cause_lag) {
                (0, Some(lag)) => lag * self.rng.random_range(0.05..1.0),
                _ => log_normal(&mut self.rng, 30.0, 1.0),
            };
            // Half on the alerting service itself, the rest below it.
            let s = if self.rng.random_bool(0.5) {
                service
            } else {
                *related.choose(&mut self.rng).unwrap_or(&service)
            };
            let rollout = log_normal(&mut self.rng, self.style.rollout, 0.6);
            let start = self.alert_at - minutes(lag + rollout);
            if start > self.history_start {
                self.ordinary(s, start, Some(rollout), Role::Decoy);
            }
        }
    }

    /// A fix or rollback after the alert, sometimes.
    fn after_alert(&mut self, service: usize) {
        if self.rng.random_bool(0.35) {
            let at = self.alert_at + minutes(log_normal(&mut self.rng, 25.0, 0.6));
            let changes = self.key_changes(service, at, 1, 0.5, None);
            self.deploy(
                service,
                at,
                None,
                true,
                changes,
                Status::Succeeded,
                Role::AfterAlert,
            );
        }
    }

    /// A culprit deployment on `service`, `hops` below the alerting one, taking effect `lag`
    /// minutes before the alert.
    fn culprit_at(&mut self, service: usize, hops: u32, status: Status) -> (usize, f64) {
        let lag = self.onset(hops);
        let rollout = match status {
            Status::InProgress => 0.0,
            s => self.rollout_minutes(s),
        };
        // A failed rollout hurts while it is still rolling: the alert may come before the
        // rollout is declared failed.
        let start_lag = match status {
            Status::Failed | Status::RolledBack if self.rng.random_bool(0.5) => lag,
            _ => lag + rollout,
        };
        let start = self.alert_at - minutes(start_lag);
        let i = self.culprit(service, start, rollout, status);
        (i, lag)
    }

    /// The kind's incident: the cause and the scored alerts.
    fn incident(&mut self) -> Cause {
        let n = self.services.len();
        match self.kind {
            Kind::OwnChange | Kind::LateCulprit | Kind::Burst => {
                let a = self.rng.random_range(0..n);
                let below = self.below(a, 1);
                let (c, hops) = if self.kind != Kind::OwnChange
                    && !below.is_empty()
                    && self.rng.random_bool(0.5)
                {
                    (*below.choose(&mut self.rng).unwrap_or(&a), 1)
                } else {
                    (a, 0)
                };
                if self.kind == Kind::Burst {
                    self.burst(a);
                }
                let status = self.culprit_status();
                let (i, lag) = self.culprit_at(c, hops, status);
                if self.kind == Kind::LateCulprit {
                    let late = self.alert_at + minutes(1.0 + log_normal(&mut self.rng, 15.0, 0.9));
                    self.deployments[i].recorded_at = late.max(self.deployments[i].recorded_at);
                }
                self.decoys(a, Some(lag));
                self.alert(a, self.alert_at, 0);
                self.after_alert(c);
                Cause::Deployment(i)
            }
            Kind::DependencyConfigThenNoopRedeploy => {
                let (a, c) = self.pair(1);
                let lag = log_normal(&mut self.rng, 22.0, 0.45);
                let rollout = self.rollout_minutes(Status::Succeeded);
                let start = self.alert_at - minutes(lag + rollout);
                let keys = self.rng.random_range(1..=3);
                let changes = self.key_changes(c, start, keys, 0.8, None);
                let i = self.deploy(
                    c,
                    start,
                    Some(rollout),
                    false,
                    changes,
                    Status::Succeeded,
                    Role::Culprit,
                );
                let noop_lag = lag * self.rng.random_range(0.05..0.85);
                let rollout = self.rollout_minutes(Status::Succeeded);
                let noop = self.alert_at - minutes(noop_lag + rollout);
                self.deploy(
                    a,
                    noop,
                    Some(rollout),
                    false,
                    Vec::new(),
                    Status::Succeeded,
                    Role::NoopRedeploy,
                );
                self.decoys(a, Some(lag));
                self.alert(a, self.alert_at, 0);
                self.after_alert(c);
                Cause::Deployment(i)
            }
            Kind::DependencyFailedRollout => {
                let (a, c) = self.pair(1);
                let (i, lag) = self.culprit_at(c, 1, Status::Failed);
                self.decoys(a, Some(lag));
                self.alert(a, self.alert_at, 0);
                self.after_alert(c);
                Cause::Deployment(i)
            }
            Kind::TwoHops | Kind::ThreeHops => {
                let hops = if self.kind == Kind::TwoHops { 2 } else { 3 };
                let (a, c) = self.pair(hops);
                let status = if self.rng.random_bool(0.2) {
                    Status::Failed
                } else {
                    Status::Succeeded
                };
                let (i, lag) = self.culprit_at(c, hops, status);
                // The service in between often redeploys unchanged after the culprit.
                let dist = self.dist();
                let between: Vec<usize> = (0..n)
                    .filter(|m| dist[a][*m] == Some(1) && dist[*m][c].is_some())
                    .collect();
                if let Some(&m) = between.choose(&mut self.rng)
                    && self.rng.random_bool(0.5)
                {
                    let noop_lag = lag * self.rng.random_range(0.05..0.9);
                    let rollout = self.rollout_minutes(Status::Succeeded);
                    let start = self.alert_at - minutes(noop_lag + rollout);
                    self.deploy(
                        m,
                        start,
                        Some(rollout),
                        false,
                        Vec::new(),
                        Status::Succeeded,
                        Role::NoopRedeploy,
                    );
                }
                self.decoys(a, Some(lag));
                self.alert(a, self.alert_at, 0);
                self.after_alert(c);
                Cause::Deployment(i)
            }
            Kind::AlertStorm => {
                let dist = self.dist();
                let shared: Vec<usize> = (0..n)
                    .filter(|c| (0..n).filter(|a| dist[*a][*c] == Some(1)).count() >= 2)
                    .collect();
                let c = *shared.choose(&mut self.rng).unwrap_or(&0);
                let mut dependents: Vec<usize> = (0..n)
                    .filter(|a| dist[*a][c].is_some_and(|d| (1..=2).contains(&d)))
                    .collect();
                dependents.shuffle(&mut self.rng);
                // Direct dependents first: they feel it most.
                dependents.sort_by_key(|a| dist[*a][c]);
                let count = self.rng.random_range(2..=5usize).min(dependents.len());
                let mut alerting: Vec<usize> = dependents[..count].to_vec();
                if self.rng.random_bool(0.3) {
                    alerting.push(c);
                }
                let status = self.culprit_status();
                let (i, lag) = self.culprit_at(c, 1, status);
                let one_group = self.rng.random_bool(0.5);
                let first = alerting[0];
                for (k, a) in alerting.into_iter().enumerate() {
                    let jitter = if k == 0 {
                        0.0
                    } else {
                        exponential(&mut self.rng, 3.0)
                    };
                    let at = self.alert_at + minutes(jitter);
                    self.alert(a, at, if one_group { 0 } else { k });
                }
                self.decoys(first, Some(lag));
                self.after_alert(c);
                Cause::Deployment(i)
            }
            Kind::NoRecordedCause => {
                let a = self.rng.random_range(0..n);
                // Always something nearby: an alert with nothing around it is too easy.
                let saved = self.style.decoys;
                self.style.decoys = 1.0;
                self.decoys(a, None);
                self.style.decoys = saved;
                self.alert(a, self.alert_at, 0);
                self.after_alert(a);
                Cause::None
            }
            Kind::Chaos => {
                let a = self.rng.random_range(0..n);
                let started = self.alert_at - minutes(log_normal(&mut self.rng, 3.0, 0.6));
                let ended = self
                    .rng
                    .random_bool(0.7)
                    .then(|| self.alert_at + minutes(log_normal(&mut self.rng, 8.0, 0.5)));
                let experiment = *EXPERIMENTS.choose(&mut self.rng).unwrap_or(&"pod-delete");
                self.chaos.push(ChaosRun {
                    service: a,
                    experiment,
                    started_at: started,
                    ended_at: ended,
                });
                self.decoys(a, None);
                self.alert(a, self.alert_at, 0);
                Cause::Chaos(self.chaos.len() - 1)
            }
            Kind::ReviewedKey => self.reviewed_key(),
            Kind::ConfigMapEdit | Kind::FlagFlip => {
                let a = self.rng.random_range(0..n);
                let below = self.below(a, 1);
                let (c, hops) = if self.kind == Kind::ConfigMapEdit
                    && !below.is_empty()
                    && self.rng.random_bool(0.4)
                {
                    (*below.choose(&mut self.rng).unwrap_or(&a), 1)
                } else {
                    (a, 0)
                };
                let lag = self.onset(hops);
                let at = self.alert_at - minutes(lag);
                let (source, key) = if self.kind == Kind::FlagFlip {
                    let flag = format!(
                        "{}.new-{}",
                        self.services[c],
                        ["pricing", "checkout-flow", "search-ranker"][self.rng.random_range(0..3)]
                    );
                    let on = self.rng.random_bool(0.8);
                    (
                        ChangeSource::FeatureFlag,
                        KeyChange {
                            path: flag,
                            kind: "flag",
                            before: (!on).to_string(),
                            after: on.to_string(),
                        },
                    )
                } else {
                    let mut keys = self.key_changes(c, at, 1, 0.8, None);
                    let mut key = keys.remove(0);
                    key.path = format!("configmap/{}-config:{}", self.services[c], key.path);
                    key.kind = "configmap";
                    (ChangeSource::ConfigMap, key)
                };
                self.changes.push(Change {
                    service: c,
                    source,
                    at,
                    key,
                    recorded_at: at,
                });
                self.decoys(a, Some(lag));
                self.alert(a, self.alert_at, 0);
                Cause::Change(self.changes.len() - 1)
            }
        }
    }

    /// A change of `path` (of the API kind `kind`) on `service` at `at`, from its current value.
    fn change_of(
        &mut self,
        service: usize,
        at: DateTime<Utc>,
        path: &str,
        kind: &'static str,
    ) -> KeyChange {
        let values = self.values(service, at);
        let (before, after) = self.value(path, values.get(path));
        KeyChange {
            path: path.to_owned(),
            kind,
            before,
            after,
        }
    }

    /// Earlier incidents caused by changes of one key, each reviewed and confirmed some hours
    /// later, then the scored one: the same key changed again, with innocent changes closer to
    /// the alert. The key is any of the vocabulary: its history, not its name, marks it.
    fn reviewed_key(&mut self) -> Cause {
        let n = self.services.len();
        let (path, kind, _) = *KEYS.choose(&mut self.rng).unwrap_or(&KEYS[0]);
        let span = (self.alert_at - self.history_start).num_minutes() as f64;
        let earlier = self.rng.random_range(1..=3);
        for j in 0..earlier {
            // Well before the scored alert's reach, well after the history starts.
            let back = self.rng.random_range(10.0 * 60.0..span - 90.0);
            let service = self.rng.random_range(0..n);
            let start = self.alert_at - minutes(back);
            let change = self.change_of(service, start, path, kind);
            let image = self.rng.random_bool(0.4);
            let rollout = self.rollout_minutes(Status::Succeeded);
            let culprit = self.deploy(
                service,
                start,
                Some(rollout),
                image,
                vec![change],
                Status::Succeeded,
                Role::Culprit,
            );
            let at = start + minutes(rollout + self.onset(0));
            // An innocent deployment closer to that alert: the model alone is unsure.
            let decoy_start = at - minutes(self.rng.random_range(1.0..10.0));
            if decoy_start > start + minutes(rollout) {
                self.ordinary(service, decoy_start, Some(0.5), Role::Decoy);
            }
            let alert = self.alert(service, at, 2000 + j);
            self.alerts[alert].scored = false;
            let reviewed = at + minutes(log_normal(&mut self.rng, 120.0, 0.6));
            self.reviews.push(Review {
                alert,
                cause: Cause::Deployment(culprit),
                at: reviewed.min(self.alert_at - Duration::hours(1)),
            });
        }
        let a = self.rng.random_range(0..n);
        let below = self.below(a, 1);
        let (c, hops) = if !below.is_empty() && self.rng.random_bool(0.4) {
            (*below.choose(&mut self.rng).unwrap_or(&a), 1)
        } else {
            (a, 0)
        };
        let lag = self.onset(hops);
        let rollout = self.rollout_minutes(Status::Succeeded);
        let start = self.alert_at - minutes(lag + rollout);
        let change = self.change_of(c, start, path, kind);
        let image = self.rng.random_bool(0.4);
        let i = self.deploy(
            c,
            start,
            Some(rollout),
            image,
            vec![change],
            Status::Succeeded,
            Role::Culprit,
        );
        let saved = self.style.decoys;
        self.style.decoys = 1.0;
        self.decoys(a, Some(lag));
        self.style.decoys = saved;
        self.alert(a, self.alert_at, 0);
        self.after_alert(c);
        Cause::Deployment(i)
    }

    /// Many deployments across the world shortly before the alert, half on `service` and
    /// what it depends on.
    fn burst(&mut self, service: usize) {
        let span = log_normal(&mut self.rng, 45.0, 0.4);
        let count = self.rng.random_range(6..=25);
        let dist = self.dist();
        let related: Vec<usize> = (0..self.services.len())
            .filter(|t| dist[service][*t].is_some_and(|d| d <= 1))
            .collect();
        for _ in 0..count {
            let s = if self.rng.random_bool(0.5) {
                *related.choose(&mut self.rng).unwrap_or(&service)
            } else {
                self.rng.random_range(0..self.services.len())
            };
            let at = self.alert_at - minutes(self.rng.random::<f64>() * span + 0.5);
            self.ordinary(s, at, None, Role::Burst);
        }
    }

    /// Earlier alerts of the history (not scored), after some earlier deployment now and then.
    fn past_alerts(&mut self) {
        let count = self.rng.random_range(0..=3);
        for _ in 0..count {
            let earlier: Vec<usize> = (0..self.deployments.len())
                .filter(|i| {
                    self.deployments[*i].started_at < self.alert_at - Duration::hours(6)
                        && self.deployments[*i].role == Role::Background
                })
                .collect();
            let (service, at) = match earlier.choose(&mut self.rng) {
                Some(&i) if self.rng.random_bool(0.6) => {
                    let d = &self.deployments[i];
                    let (s, landed) = (d.service, d.landed());
                    (s, landed + minutes(log_normal(&mut self.rng, 15.0, 0.9)))
                }
                _ => {
                    let span = (self.alert_at - Duration::hours(6) - self.history_start)
                        .num_seconds()
                        .max(1);
                    (
                        self.rng.random_range(0..self.services.len()),
                        self.history_start + Duration::seconds(self.rng.random_range(0..span)),
                    )
                }
            };
            if at < self.alert_at - Duration::hours(3) {
                let i = self.alert(service, at, 1000 + self.alerts.len());
                self.alerts[i].scored = false;
            }
        }
    }

    fn finish(mut self, cause: Cause) -> World {
        // By start time; the cause's index follows its deployment.
        let mut order: Vec<usize> = (0..self.deployments.len()).collect();
        order.sort_by_key(|i| (self.deployments[*i].started_at, *i));
        let mut position = vec![0; order.len()];
        for (new, old) in order.iter().enumerate() {
            position[*old] = new;
        }
        let bumps: Vec<u32> = order.iter().map(|i| self.bumps[*i]).collect();
        self.deployments = order.iter().map(|i| self.deployments[*i].clone()).collect();
        let remap = |cause: Cause| match cause {
            Cause::Deployment(i) => Cause::Deployment(position[i]),
            other => other,
        };
        let cause = remap(cause);
        let reviews: Vec<Review> = self
            .reviews
            .iter()
            .map(|r| Review {
                cause: remap(r.cause),
                ..*r
            })
            .collect();
        // Versions, commits and diffs as the store sees them: each deployment against the one
        // before it on its service, in start order (a culprit or decoy placed among the
        // background changes what follows it).
        let mut commits = 0u64;
        let mut last: BTreeMap<usize, (u32, u64, BTreeMap<String, String>)> = BTreeMap::new();
        for (d, bump) in self.deployments.iter_mut().zip(bumps) {
            let (version, commit, values) = last
                .entry(d.service)
                .or_insert_with(|| (1, 0, BTreeMap::new()));
            d.version = *version + bump;
            d.commit = if bump > 0 || !d.changes.is_empty() || *commit == 0 {
                commits += 1;
                commits
            } else {
                *commit
            };
            for c in &mut d.changes {
                if let Some(v) = values.get(&c.path) {
                    c.before = v.clone();
                }
                if c.before == c.after {
                    c.after = format!("{}-{}", c.after, d.commit);
                }
                values.insert(c.path.clone(), c.after.clone());
            }
            *version = d.version;
            *commit = d.commit;
        }
        let mut world = World {
            kind: self.kind,
            seed: self.seed,
            shape: self.shape,
            services: self.services,
            depends_on: self.depends_on,
            deployments: self.deployments,
            changes: self.changes,
            chaos: self.chaos,
            alerts: self.alerts,
            cause,
            history_start: self.history_start,
            reviews,
            canaries: Vec::new(),
            canaries_written: true,
            metrics: Vec::new(),
            rules_named: true,
            service_metrics: Vec::new(),
            services_read: true,
        };
        world.canaries = super::canary::canaries(&world, self.kind.index());
        world
    }
}
