//! The organisation's ordinary traffic and on-call's response around an incident: everyday
//! rollouts at each service's rate and the organisation's hours, release trains, innocent
//! rollouts near the alert, past incidents and flapping alerts, ConfigMap edits and flag flips,
//! and the rollbacks, fixes and scale-ups after a page.

use super::Ctx;
use super::dice::Dice;
use super::keys::{self, KeySpec, Mode};
use super::ledger::{Dir, Intent, What};
use super::services::Class;
use crate::generator::{Change, ChangeSource, KeyChange, Role, Status};
use chrono::{DateTime, Duration, Utc};

impl Ctx {
    /// An innocent rollout of `s` at `start`, as this organisation ships them.
    pub(super) fn ordinary(&mut self, s: usize, start: DateTime<Utc>, role: Role) -> usize {
        let svc = self.svc(s);
        let m = self.org.mix;
        // 0 image, 1 image and config, 2 config, 3 unchanged, 4 restart.
        let shape = if svc.class.is_app() {
            self.dice.weighted(&[
                (0u8, m.image),
                (1, m.image_config),
                (2, m.config),
                (3, m.unchanged),
                (4, m.restart),
            ])
        } else {
            // A datastore's chart: mostly values, sometimes an upgrade of the server.
            self.dice
                .weighted(&[(2u8, 0.6), (0, 0.2), (1, 0.1), (3, 0.05), (4, 0.05)])
        };
        let what = match shape {
            0 | 1 => What::Image,
            2 => What::Config,
            3 => What::Unchanged,
            _ => What::Restart,
        };
        let keys = if matches!(shape, 1 | 2) {
            let n = self.key_count();
            // Now and then an innocent rollout touches a key that often hurts, harmlessly.
            let scary = self.dice.chance(0.15);
            self.keys(s, n, scary, start)
        } else {
            Vec::new()
        };
        let what = if what == What::Config && keys.is_empty() {
            What::Unchanged
        } else {
            what
        };
        let changes_something = matches!(what, What::Image | What::Config);
        let rollback_rate = self.org.rollback_rate * if self.org.canary { 2.0 } else { 1.0 };
        let status = if changes_something && self.dice.chance(self.org.fail_rate) {
            Status::Failed
        } else if changes_something && self.dice.chance(rollback_rate) {
            Status::RolledBack
        } else if self.org.canary && svc.class.is_app() && self.dice.chance(0.01) {
            // A canary paused at a step, waiting for someone to promote it.
            Status::InProgress
        } else {
            Status::Succeeded
        };
        let rollout = match status {
            Status::Failed => self.org.failing(&mut self.dice),
            Status::RolledBack => {
                let full = self.org.rollout(&mut self.dice, &svc);
                Dice::minutes(full.num_seconds() as f64 / 60.0 * self.dice.between(0.3, 0.9))
            }
            _ => self.org.rollout(&mut self.dice, &svc),
        };
        let recorded = self.lag();
        self.push(Intent {
            service: s,
            start,
            what,
            keys: keys.into_iter().map(|k| (k, Dir::Any)).collect(),
            status,
            rollout,
            recorded,
            role,
        })
    }

    /// A release train leaving at `at`: back ends first, each service a few minutes after the
    /// one before. `must` ride it; the others join as the train's habits say. Returns the
    /// riders' services and start times, in order.
    pub(super) fn train(
        &mut self,
        at: DateTime<Utc>,
        must: &[usize],
        min: usize,
    ) -> Vec<(usize, DateTime<Utc>)> {
        let join = self.org.train.as_ref().map_or(0.75, |t| t.join);
        let spacing = self.org.train.as_ref().map_or((1.5, 6.0), |t| t.spacing);
        let mut riders: Vec<usize> = (0..self.n())
            .filter(|s| {
                must.contains(s)
                    || (self.topo.svcs[*s].class.is_app()
                        && self.topo.svcs[*s].class != Class::Standalone)
            })
            .collect();
        self.dice.shuffle(&mut riders);
        let mut chosen: Vec<usize> = Vec::new();
        for s in riders {
            if must.contains(&s) || self.dice.chance(join) {
                chosen.push(s);
            }
        }
        let mut rest: Vec<usize> = (0..self.n()).filter(|s| !chosen.contains(s)).collect();
        self.dice.shuffle(&mut rest);
        while chosen.len() < min.min(self.n()) {
            match rest.pop() {
                Some(s) => chosen.push(s),
                None => break,
            }
        }
        chosen.sort_by_key(|s| std::cmp::Reverse(self.topo.svcs[*s].class.tier()));
        let mut t = at;
        let mut out = Vec::new();
        for s in chosen {
            out.push((s, t));
            t += self.dice.span(spacing.0, spacing.1);
        }
        out
    }

    /// Ordinary rollouts over `[history_start, to)` at each service's rate and the
    /// organisation's hours, release trains included; a third as many after `freeze` (an
    /// incident is open).
    pub(super) fn background(&mut self, to: DateTime<Utc>, freeze: DateTime<Utc>) {
        let mass = self.org.workday_mass();
        let riders_slow = self.org.train.is_some();
        let mut hour =
            self.history_start - Duration::seconds(self.history_start.timestamp() % 3600);
        while hour < to {
            let w = self.org.intensity(hour + Duration::minutes(30));
            for s in 0..self.n() {
                let class = self.topo.svcs[s].class;
                let mut lambda = self.rates[s] * w / mass;
                if riders_slow && class.is_app() && class != Class::Standalone {
                    lambda *= 0.35;
                }
                if hour >= freeze {
                    lambda *= 0.35;
                }
                for _ in 0..self.dice.poisson(lambda) {
                    let start = hour + Duration::seconds(self.dice.int(0, 3599) as i64);
                    if start >= self.history_start && start < to {
                        self.ordinary(s, start, Role::Background);
                    }
                }
            }
            hour += Duration::hours(1);
        }
        for at in self.org.departures(self.history_start, to) {
            let planned = self
                .planned_train
                .is_some_and(|p| (p - at).num_minutes().abs() < 180);
            if planned || at >= freeze {
                continue;
            }
            for (s, start) in self.train(at, &[], 0) {
                let id = self.ordinary(s, start, Role::Background);
                if self.intents[id].what != What::Image && self.dice.chance(0.7) {
                    self.intents[id].what = What::Image;
                }
            }
        }
    }

    /// Gives `s` an earlier release before `t` if the history has none, so a redeploy or a
    /// culprit has a previous deployment to be compared with.
    pub(super) fn ensure_prior(&mut self, s: usize, t: DateTime<Utc>) {
        if self.intents.iter().any(|i| i.service == s && i.start < t) {
            return;
        }
        let from = (t - Duration::hours(72)).max(self.history_start);
        let to = t - Duration::minutes(30);
        let start = self.dice.instant(from, to.max(from));
        let id = self.ordinary(s, start, Role::Background);
        let i = &mut self.intents[id];
        i.status = Status::Succeeded;
        if i.what == What::Unchanged || i.what == What::Restart {
            i.what = What::Image;
        }
    }

    /// Unscored alerts of the history: a past incident with its bad rollout and rollback, a
    /// flapping alert, all well before this incident.
    pub(super) fn history_alerts(&mut self, before: DateTime<Utc>) {
        let span = (before - self.history_start).num_seconds() as f64;
        if self.dice.chance(0.35) {
            let s = self.dice.index(self.n());
            let start = self.history_start
                + Duration::seconds((span * self.dice.between(0.05, 0.6)) as i64);
            let bad = self.keys(s, 1, true, start);
            let what = if bad.is_empty() || self.dice.chance(0.5) {
                What::Image
            } else {
                What::Config
            };
            let svc = self.svc(s);
            let rollout = self.org.rollout(&mut self.dice, &svc);
            let recorded = self.lag();
            let id = self.push(Intent {
                service: s,
                start,
                what,
                keys: bad.into_iter().map(|k| (k, Dir::Harmful)).collect(),
                status: Status::Succeeded,
                rollout,
                recorded,
                role: Role::Background,
            });
            let callers: Vec<usize> = (0..self.n())
                .filter(|a| self.dist[*a][s].is_some_and(|d| d <= 1))
                .collect();
            let alerting = self.pick_alerting(&callers);
            let at = start + rollout + self.dice.span(3.0, 50.0);
            let name = self.alert_name(Mode::Errors, alerting, alerting == s);
            self.alert(alerting, name, at, false);
            let back = at + self.dice.span(8.0, 45.0);
            let rollout = self.org.rollout(&mut self.dice, &svc);
            let recorded = self.lag();
            self.push(Intent {
                service: s,
                start: back,
                what: What::Rollback(id),
                keys: Vec::new(),
                status: Status::Succeeded,
                rollout,
                recorded,
                role: Role::Background,
            });
        }
        if self.dice.chance(0.5) {
            let s = self.dice.index(self.n());
            let consumes = self.topo.deps[s]
                .iter()
                .any(|d| self.topo.svcs[*d].class == Class::Queue);
            let names: &[&'static str] = if !self.topo.svcs[s].class.is_app() {
                &[
                    "PersistentVolumeUsageHigh",
                    "BackupJobFailed",
                    "DatastoreLatencyHigh",
                ]
            } else if consumes {
                &["ConsumerLagHigh", "PodRestartsHigh", "LatencyP99AboveSLO"]
            } else {
                &[
                    "CertificateExpiringSoon",
                    "PodRestartsHigh",
                    "LatencyP99AboveSLO",
                ]
            };
            let name = self.dice.pick(names);
            for _ in 0..self.dice.int(1, 4) {
                let at = self
                    .dice
                    .instant(self.history_start, before - Duration::hours(2));
                self.alert(s, name, at, false);
            }
        }
    }

    /// Innocent rollouts near the alert: the first between the cause and the alert when there
    /// is room (so closer to the alert than the culprit), on the alerting service itself half
    /// the time, the others within the hours before.
    pub(super) fn decoys(
        &mut self,
        alerting: usize,
        cause_at: Option<DateTime<Utc>>,
        alert_at: DateTime<Utc>,
        p: f64,
    ) {
        if !self.dice.chance(p) {
            return;
        }
        let count = self.dice.weighted(&[(1usize, 0.55), (2, 0.3), (3, 0.15)]);
        let related: Vec<usize> = (0..self.n())
            .filter(|s| {
                *s != alerting
                    && (self.dist[alerting][*s].is_some() || self.dist[*s][alerting] == Some(1))
            })
            .collect();
        for k in 0..count {
            let s = if self.dice.chance(0.5) || related.is_empty() {
                alerting
            } else {
                self.dice.pick(&related)
            };
            let window = match cause_at {
                Some(c) if k == 0 && alert_at - c > Duration::minutes(3) => {
                    (c + Duration::minutes(1), alert_at - Duration::seconds(30))
                }
                _ => (
                    alert_at - Duration::minutes(if k == 0 { 50 } else { 240 }),
                    alert_at - Duration::minutes(1),
                ),
            };
            let start = self
                .dice
                .instant(window.0.max(self.history_start), window.1);
            let id = self.ordinary(s, start, Role::Decoy);
            // Decoys are rollouts that change something, as the ones that get blamed are.
            if matches!(self.intents[id].what, What::Unchanged | What::Restart)
                && self.dice.chance(0.7)
            {
                self.intents[id].what = What::Image;
            }
        }
    }

    /// What on-call does after the page: sometimes first a rollback of the wrong rollout (the
    /// latest on the alerting service), then a rollback of the culprit or a fix forward;
    /// sometimes a scale-up.
    pub(super) fn aftermath(
        &mut self,
        alerting: usize,
        alert_at: DateTime<Utc>,
        culprit: Option<usize>,
        not_before: DateTime<Utc>,
    ) {
        let mut t = alert_at.max(not_before);
        if self
            .dice
            .chance(if culprit.is_some() { 0.25 } else { 0.35 })
        {
            let wrong = self
                .intents
                .iter()
                .enumerate()
                .filter(|(i, it)| {
                    Some(*i) != culprit
                        && it.service == alerting
                        && it.start < alert_at
                        && it.start > alert_at - Duration::hours(4)
                        && matches!(it.what, What::Image | What::Config)
                        && it.status == Status::Succeeded
                })
                .max_by_key(|(i, it)| (it.start, *i))
                .map(|(i, _)| i);
            if let Some(w) = wrong {
                t += self.dice.span(4.0, 25.0);
                self.rollback(w, t, Role::AfterAlert);
            }
        }
        if let Some(c) = culprit {
            let failed = matches!(self.intents[c].status, Status::Failed | Status::RolledBack);
            let s = self.intents[c].service;
            let r = self.dice.unit();
            if r < 0.65 && !failed {
                t += Dice::minutes(self.dice.log_logistic(22.0, 2.5).clamp(4.0, 240.0));
                self.rollback(c, t, Role::AfterAlert);
            } else if r < 0.9 {
                t += self.dice.span(30.0, 180.0);
                let id = self.ordinary(s, t, Role::AfterAlert);
                let i = &mut self.intents[id];
                i.what = What::Image;
                i.status = Status::Succeeded;
            }
        }
        if self.dice.chance(0.2) && self.topo.svcs[alerting].class.is_app() {
            let at = alert_at + self.dice.span(3.0, 20.0);
            let replicas = keys::table(&self.svc(alerting))
                .into_iter()
                .find(|k| k.kind == "replicas");
            if let Some(def) = replicas {
                let svc = self.svc(alerting);
                let rollout = self.org.rollout(&mut self.dice, &svc);
                let recorded = self.lag();
                self.push(Intent {
                    service: alerting,
                    start: at,
                    what: What::Config,
                    keys: vec![(
                        KeySpec {
                            def,
                            svc: svc.base,
                            dep: "",
                            flag: "",
                        },
                        Dir::Safe,
                    )],
                    status: Status::Succeeded,
                    rollout,
                    recorded,
                    role: Role::AfterAlert,
                });
            }
        }
    }

    pub(super) fn rollback(&mut self, target: usize, at: DateTime<Utc>, role: Role) {
        let s = self.intents[target].service;
        let svc = self.svc(s);
        let rollout = self.org.rollout(&mut self.dice, &svc);
        let recorded = self.lag();
        self.push(Intent {
            service: s,
            start: at,
            what: What::Rollback(target),
            keys: Vec::new(),
            status: Status::Succeeded,
            rollout,
            recorded,
            role,
        });
    }

    /// A change that is not a rollout (a ConfigMap edit, a flag flip) of `s` at `at`.
    pub(super) fn change(
        &mut self,
        s: usize,
        flags: bool,
        at: DateTime<Utc>,
        harmful: bool,
    ) -> (usize, Mode) {
        let svc = self.svc(s);
        let defs: Vec<&'static keys::KeyDef> = keys::out_of_band(flags).iter().collect();
        let spec = keys::pick(&mut self.dice, &defs, svc.base, &[], 1, harmful, &[])
            .into_iter()
            .next()
            .unwrap_or(KeySpec {
                def: defs[0],
                svc: svc.base,
                dep: "",
                flag: keys::FLAGS[0],
            });
        let n = spec.def.ladder.len();
        let (from, to) = if harmful {
            match spec.def.bad {
                keys::Bad::Down => {
                    let f = self.dice.int(1, n - 1);
                    (f, f - 1)
                }
                keys::Bad::Up => {
                    let f = self.dice.int(0, n - 2);
                    (f, f + 1)
                }
                _ => {
                    let f = self.dice.index(n);
                    (f, (f + self.dice.int(1, n - 1)) % n)
                }
            }
        } else {
            let f = self.dice.index(n);
            (f, (f + self.dice.int(1, n - 1)) % n)
        };
        let lag = if flags {
            Duration::seconds(self.dice.int(1, 10) as i64)
        } else {
            Duration::seconds(self.dice.int(3, 45) as i64)
        };
        self.changes.push(Change {
            service: s,
            source: if flags {
                ChangeSource::FeatureFlag
            } else {
                ChangeSource::ConfigMap
            },
            at,
            key: KeyChange {
                path: spec.path(),
                kind: spec.def.kind,
                before: spec.value(from),
                after: spec.value(to),
            },
            recorded_at: at + lag,
        });
        (self.changes.len() - 1, spec.def.mode)
    }
}
