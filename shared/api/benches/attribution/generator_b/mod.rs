//! A second incident generator for the attribution benchmark, written independently of the
//! first (`generator/`) so that a ranking fitted on one can be reported on the other. It
//! fills the same [`World`] with its own model of how incidents look:
//!
//! - **Organisations** ([`org`]): a time zone and working hours with a lunch dip, weekend and
//!   Friday-afternoon freezes, release trains on fixed weekdays, CI or a cluster watcher
//!   recording rollouts, canaries, failure rates, and a daily traffic peak.
//! - **Service graphs** ([`services`]): a gateway fanning out, many services over shared
//!   datastores and brokers, a mesh where nearly everything calls one platform service, deep
//!   call chains, diamonds; cron jobs and consoles with no recorded dependency.
//! - **Changes** ([`keys`]): keys of realistic charts and manifests per runtime (Hikari pools,
//!   `JAVA_OPTS`, memory limits, probe timeouts, route timeouts, `max_connections`,
//!   `maxmemory-policy`, feature flags, ConfigMaps), each with how often it changes and how
//!   often it is behind an outage, and how the outage shows.
//! - **Symptoms**: crash loops within minutes, error-rate alerts after the rollout and the rule's
//!   `for`, latency that builds up, capacity that breaks at the next traffic peak, leaks that
//!   take hours; a few more minutes per hop for deeper causes.
//! - **Noise**: innocent rollouts near the alert (on the alerting service itself, between the
//!   culprit and the alert), restarts and re-runs, a wrong rollback before the right one,
//!   mitigations, past incidents and flapping alerts in the history.
//!
//! Nothing here reads the scorer or the first generator's numbers. The same `(kind, seed)`
//! always gives the same world (with the locked `rand`).

mod canary;
mod dice;
mod incident;
mod keys;
mod ledger;
mod org;
mod routine;
mod services;
mod symptoms;

use crate::generator::{Alert, Cause, Change, ChaosRun, Kind, World};
use chrono::{DateTime, Duration, TimeZone, Utc};
use dice::{Dice, mix};
use keys::KeySpec;
use ledger::{Intent, Recorded};
use org::Org;
use services::{Class, Layout, Svc, Topology};

/// The world of `kind` for `seed`.
pub fn generate(kind: Kind, seed: u64) -> World {
    let kind_no = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u64;
    let mut dice = Dice::new(mix(seed) ^ mix(0x6765_6e62_0000 + kind_no));
    let org = Org::draw(&mut dice);
    let topo = topology_for(&mut dice, kind);
    let dist = distances(&topo.deps);
    let mut ctx = Ctx {
        kind,
        kind_no,
        seed,
        dice,
        org,
        topo,
        dist,
        rates: Vec::new(),
        intents: Vec::new(),
        alerts: Vec::new(),
        changes: Vec::new(),
        chaos: Vec::new(),
        cause: Planned::None,
        protect: Vec::new(),
        history_start: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
        planned_train: None,
        culprit_mode: None,
    };
    ctx.rates = (0..ctx.topo.svcs.len())
        .map(|s| {
            let svc = ctx.topo.svcs[s].clone();
            ctx.org.rate(&mut ctx.dice, &svc)
        })
        .collect();
    ctx.plan();
    ctx.world()
}

/// A graph that can hold `kind`'s incident: a pair of services the right number of hops apart,
/// a shared service under several, enough services for a release train.
fn topology_for(dice: &mut Dice, kind: Kind) -> Topology {
    let layouts = [
        (Layout::GatewayFanOut, 0.24),
        (Layout::SharedBackbone, 0.2),
        (Layout::Mesh, 0.2),
        (Layout::DeepChain, 0.16),
        (Layout::Diamonds, 0.2),
    ];
    for _ in 0..40 {
        let layout = dice.weighted(&layouts);
        let deep = kind == Kind::ThreeHops || (kind == Kind::TwoHops && dice.chance(0.3));
        let topo = services::build(dice, layout, deep);
        if fits(kind, &topo) {
            return topo;
        }
    }
    let layout = if kind == Kind::Burst {
        Layout::Mesh
    } else {
        Layout::DeepChain
    };
    services::build(dice, layout, true)
}

fn fits(kind: Kind, topo: &Topology) -> bool {
    let dist = distances(&topo.deps);
    let n = topo.svcs.len();
    let pair = |k: u32| (0..n).any(|a| (0..n).any(|c| dist[a][c] == Some(k)));
    match kind {
        Kind::DependencyConfigThenNoopRedeploy | Kind::DependencyFailedRollout => pair(1),
        Kind::TwoHops => pair(2),
        Kind::ThreeHops => pair(3),
        Kind::Burst => n >= 6 && pair(1),
        Kind::AlertStorm => {
            (0..n).any(|c| (0..n).filter(|a| *a != c && dist[*a][c].is_some()).count() >= 2)
        }
        _ => true,
    }
}

/// Shortest hops along `DEPENDS_ON` (`None`: unreachable).
fn distances(deps: &[Vec<usize>]) -> Vec<Vec<Option<u32>>> {
    let n = deps.len();
    let mut out = vec![vec![None; n]; n];
    for (from, row) in out.iter_mut().enumerate() {
        row[from] = Some(0);
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(s) = queue.pop_front() {
            let d = row[s].unwrap_or(0);
            for &t in &deps[s] {
                if row[t].is_none() {
                    row[t] = Some(d + 1);
                    queue.push_back(t);
                }
            }
        }
    }
    out
}

/// An alert as planned.
#[derive(Debug, Clone)]
struct PlannedAlert {
    service: usize,
    name: &'static str,
    at: DateTime<Utc>,
    scored: bool,
}

/// The scored alerts' cause as planned (deployments by intent index).
#[derive(Debug, Clone, Copy)]
enum Planned {
    Deploy(usize),
    Change(usize),
    Chaos(usize),
    None,
}

/// Keys no innocent rollout of `service` may touch between `from` and `to`: the culprit's, so
/// nothing undoes the cause before the alert.
#[derive(Debug, Clone)]
struct Protect {
    service: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    paths: Vec<String>,
}

/// Everything a world is built from.
struct Ctx {
    kind: Kind,
    kind_no: u64,
    seed: u64,
    dice: Dice,
    org: Org,
    topo: Topology,
    dist: Vec<Vec<Option<u32>>>,
    /// Deployments per working day, per service.
    rates: Vec<f64>,
    intents: Vec<Intent>,
    alerts: Vec<PlannedAlert>,
    changes: Vec<Change>,
    chaos: Vec<ChaosRun>,
    cause: Planned,
    protect: Vec<Protect>,
    history_start: DateTime<Utc>,
    /// The release train the incident planned itself (background trains skip it).
    planned_train: Option<DateTime<Utc>>,
    /// How the culprit rollout hurts, when there is one.
    culprit_mode: Option<keys::Mode>,
}

impl Ctx {
    pub(super) fn n(&self) -> usize {
        self.topo.svcs.len()
    }

    pub(super) fn svc(&self, s: usize) -> Svc {
        self.topo.svcs[s].clone()
    }

    pub(super) fn dep_names(&self, s: usize) -> Vec<&'static str> {
        self.topo.deps[s]
            .iter()
            .map(|d| self.topo.svcs[*d].base)
            .collect()
    }

    /// Services whose symptoms page someone, weighted: user-facing ones more.
    pub(super) fn alerting_weight(&self, s: usize) -> f64 {
        match self.topo.svcs[s].class {
            Class::Edge => 1.2,
            Class::Bff => 1.5,
            Class::Domain => 2.0,
            Class::Core => 1.3,
            Class::Platform => 0.8,
            Class::Store => 0.5,
            Class::Queue => 0.4,
            Class::Cache => 0.3,
            Class::Standalone => 0.4,
        }
    }

    /// A service to alert on among `candidates`, by [`Self::alerting_weight`].
    pub(super) fn pick_alerting(&mut self, candidates: &[usize]) -> usize {
        let weighted: Vec<(usize, f64)> = candidates
            .iter()
            .map(|s| (*s, self.alerting_weight(*s)))
            .collect();
        self.dice.weighted(&weighted)
    }

    /// `(alerting, cause)` pairs exactly `k` hops apart, weighted by the alerting service.
    pub(super) fn pair(&mut self, k: u32) -> (usize, usize) {
        let n = self.n();
        let pairs: Vec<((usize, usize), f64)> = (0..n)
            .flat_map(|a| (0..n).map(move |c| (a, c)))
            .filter(|(a, c)| self.dist[*a][*c] == Some(k))
            .map(|(a, c)| ((a, c), self.alerting_weight(a)))
            .collect();
        self.dice.weighted(&pairs)
    }

    /// The moment the incident's first change starts (a plausible deploy time) in a week of
    /// 2024 or the first half of 2025 (the API refuses times more than a day ahead of its
    /// clock), which also fixes where the history starts: two to six days before.
    pub(super) fn anchor(&mut self) -> DateTime<Utc> {
        let monday = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::weeks(self.dice.int(0, 80) as i64);
        let at = self.org.deploy_moment(&mut self.dice, monday);
        let days = self.dice.between(2.0, 6.0);
        let start = at - Dice::minutes(days * 24.0 * 60.0);
        self.history_start = start - Duration::seconds(start.timestamp().rem_euclid(60));
        at
    }

    /// Paths `service` may not change at `t`.
    pub(super) fn protected(&self, service: usize, t: DateTime<Utc>) -> Vec<String> {
        self.protect
            .iter()
            .filter(|p| p.service == service && p.from <= t && t <= p.to)
            .flat_map(|p| p.paths.iter().cloned())
            .collect()
    }

    /// `n` keys for a change of `s` at `t`; the first weighted as a cause when `harmful`.
    pub(super) fn keys(
        &mut self,
        s: usize,
        n: usize,
        harmful: bool,
        t: DateTime<Utc>,
    ) -> Vec<KeySpec> {
        let svc = self.svc(s);
        let table = keys::table(&svc);
        let deps = self.dep_names(s);
        let exclude = self.protected(s, t);
        keys::pick(
            &mut self.dice,
            &table,
            svc.base,
            &deps,
            n,
            harmful,
            &exclude,
        )
    }

    pub(super) fn key_count(&mut self) -> usize {
        self.dice
            .weighted(&[(1usize, 0.6), (2, 0.28), (3, 0.09), (4, 0.03)])
    }

    pub(super) fn lag(&mut self) -> Recorded {
        Recorded::Lag(self.org.record_lag(&mut self.dice))
    }

    pub(super) fn push(&mut self, intent: Intent) -> usize {
        self.intents.push(intent);
        self.intents.len() - 1
    }

    pub(super) fn alert(
        &mut self,
        service: usize,
        name: &'static str,
        at: DateTime<Utc>,
        scored: bool,
    ) {
        self.alerts.push(PlannedAlert {
            service,
            name,
            at,
            scored,
        });
    }

    /// The first scored alert's start.
    pub(super) fn first_alert(&self) -> DateTime<Utc> {
        self.alerts
            .iter()
            .filter(|a| a.scored)
            .map(|a| a.at)
            .min()
            .unwrap_or(self.history_start)
    }

    /// Turns the plan into the world.
    fn world(mut self) -> World {
        let n = self.n();
        let (deployments, index) = ledger::record(&mut self.dice, n, &self.intents);
        let cause = match self.cause {
            Planned::Deploy(i) => Cause::Deployment(index[i]),
            Planned::Change(i) => Cause::Change(i),
            Planned::Chaos(i) => Cause::Chaos(i),
            Planned::None => Cause::None,
        };
        let mut planned = self.alerts.clone();
        planned.sort_by_key(|a| (a.at, a.service));
        let mut alerts: Vec<Alert> = Vec::new();
        let mut groups = 0usize;
        // Scored alerts of one name starting within Alertmanager's group wait share a
        // notification; everything else is notified on its own.
        let mut open: Option<(usize, &'static str, DateTime<Utc>)> = None;
        for (i, a) in planned.iter().enumerate() {
            let group = match open {
                Some((g, name, first))
                    if a.scored && name == a.name && a.at - first <= Duration::seconds(30) =>
                {
                    g
                }
                _ => {
                    groups += 1;
                    if a.scored {
                        open = Some((groups, a.name, a.at));
                    }
                    groups
                }
            };
            let fingerprint = format!(
                "{:016x}",
                mix(mix(self.seed ^ 0x0067_656e_625f_0000) ^ mix((self.kind_no << 32) | i as u64))
            );
            alerts.push(Alert {
                fingerprint,
                service: a.service,
                name: a.name,
                starts_at: a.at,
                group,
                scored: a.scored,
            });
        }
        let culprit = match cause {
            Cause::Deployment(i) => Some(i),
            _ => None,
        };
        let alerting = alerts.iter().find(|a| a.scored).map(|a| a.service);
        let canaries = self.canary_reports(&deployments, culprit, alerting);
        let services = self
            .topo
            .svcs
            .iter()
            .map(|s| format!("{}-b{}-{}", s.base, self.kind_no, self.seed))
            .collect();
        World {
            kind: self.kind,
            seed: self.seed,
            shape: self.topo.layout.shape(),
            services,
            depends_on: self.topo.deps.clone(),
            deployments,
            changes: self.changes,
            chaos: self.chaos,
            alerts,
            cause,
            history_start: self.history_start,
            reviews: Vec::new(),
            canaries,
            canaries_written: true,
            metrics: Vec::new(),
            rules_named: true,
            service_metrics: Vec::new(),
            services_read: true,
        }
    }
}
