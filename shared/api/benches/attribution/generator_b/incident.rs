//! One incident per kind, laid into the organisation's history: the cause, the pages it raises,
//! the innocent rollouts and changes around it, and what on-call does afterwards.

use super::dice::Dice;
use super::keys::Mode;
use super::ledger::{Dir, Intent, Recorded, What};
use super::services::Class;
use super::{Ctx, Planned, Protect};
use crate::generator::{ChaosRun, Kind, Role, Status};
use chrono::{DateTime, Duration, Utc};

/// What a culprit rollout ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// Whatever breaks things: a new image, values, or both.
    Any,
    /// Values only.
    Config,
    /// A new image, maybe with values (a release train's cargo).
    Release,
    /// A rollout that never becomes ready.
    Failed,
}

/// The longest a planned onset may be, in minutes (the incident stays within half a day).
const MAX_ONSET: f64 = 700.0;

impl Ctx {
    /// Plans the incident of the world's kind, then the history around it.
    pub(super) fn plan(&mut self) {
        let mut priors: Vec<(usize, DateTime<Utc>)> = Vec::new();
        let start = match self.kind {
            Kind::OwnChange => self.own_change(),
            Kind::DependencyConfigThenNoopRedeploy => self.config_then_noop(&mut priors),
            Kind::DependencyFailedRollout => self.failed_dependency(),
            Kind::TwoHops => self.hops_down(2, &mut priors),
            Kind::ThreeHops => self.hops_down(3, &mut priors),
            Kind::Burst => self.burst(),
            Kind::AlertStorm => self.storm(),
            Kind::LateCulprit => self.late(),
            Kind::NoRecordedCause => self.unrecorded(),
            Kind::Chaos => self.game_day(),
            Kind::ConfigMapEdit => self.out_of_band(false, &mut priors),
            Kind::FlagFlip => self.out_of_band(true, &mut priors),
            // Not asked of this generator (`Kind::in_generator_b`); the nearest it has.
            Kind::ReviewedKey => self.own_change(),
        };
        let first = self.first_alert();
        let until = first + self.dice.span(60.0, 180.0);
        self.background(until, first);
        for (s, t) in priors {
            self.ensure_prior(s, t);
        }
        if let Planned::Deploy(c) = self.cause
            && self.dice.chance(0.9)
        {
            let (s, t) = (self.intents[c].service, self.intents[c].start);
            self.ensure_prior(s, t);
        }
        self.history_alerts(start.min(first) - Duration::hours(1));
    }

    /// A culprit rollout of `s` at `start`, and how it will hurt.
    fn culprit(&mut self, s: usize, start: DateTime<Utc>, flavour: Flavour) -> (usize, Mode) {
        let svc = self.svc(s);
        let app = svc.class.is_app();
        // 0: image only, 1: image and values, 2: values only.
        let shape = match flavour {
            Flavour::Any if app => self.dice.weighted(&[(0u8, 0.4), (1, 0.25), (2, 0.35)]),
            Flavour::Any => self.dice.weighted(&[(0u8, 0.3), (2, 0.7)]),
            Flavour::Config => 2,
            Flavour::Release => self.dice.weighted(&[(0u8, 0.6), (1, 0.4)]),
            Flavour::Failed => self.dice.weighted(&[(0u8, 0.6), (2, 0.4)]),
        };
        let mut keys: Vec<(super::keys::KeySpec, Dir)> = Vec::new();
        if shape > 0 {
            let extra = if self.dice.chance(0.35) {
                self.dice.int(1, 2)
            } else {
                0
            };
            for (k, spec) in self.keys(s, 1 + extra, true, start).into_iter().enumerate() {
                keys.push((spec, if k == 0 { Dir::Harmful } else { Dir::Any }));
            }
        }
        let mode = match (flavour, keys.first()) {
            (Flavour::Failed, _) => Mode::Crash,
            (_, Some((spec, _))) => spec.def.mode,
            (_, None) => self.dice.weighted(&[
                (Mode::Errors, 0.4),
                (Mode::Crash, 0.12),
                (Mode::Latency, 0.2),
                (Mode::Leak, 0.15),
                (Mode::Capacity, 0.13),
            ]),
        };
        let what = if shape == 2 && !keys.is_empty() {
            What::Config
        } else {
            What::Image
        };
        let status = match flavour {
            Flavour::Failed => {
                if self.dice.chance(0.75) {
                    Status::Failed
                } else {
                    Status::RolledBack
                }
            }
            Flavour::Any if app && self.dice.chance(if self.org.canary { 0.15 } else { 0.03 }) => {
                // A canary still taking a share of traffic when it pages.
                Status::InProgress
            }
            _ => Status::Succeeded,
        };
        let rollout = match status {
            Status::Failed => self.org.failing(&mut self.dice),
            Status::RolledBack => self.dice.span(5.0, 40.0),
            _ => self.org.rollout(&mut self.dice, &svc),
        };
        let recorded = self.lag();
        let id = self.push(Intent {
            service: s,
            start,
            what,
            keys,
            status,
            rollout,
            recorded,
            role: Role::Culprit,
        });
        self.cause = Planned::Deploy(id);
        self.culprit_mode = Some(mode);
        (id, mode)
    }

    /// Keeps innocent rollouts of the culprit's service off its keys until `until`.
    fn guard(&mut self, id: usize, until: DateTime<Utc>) {
        let it = &self.intents[id];
        self.protect.push(Protect {
            service: it.service,
            from: it.start,
            to: until + Duration::minutes(1),
            paths: it.keys.iter().map(|(k, _)| k.path()).collect(),
        });
    }

    /// The page `hops` above the culprit `id`, on `alerting`.
    fn page(
        &mut self,
        id: usize,
        mode: Mode,
        alerting: usize,
        hops: u32,
        max: f64,
    ) -> DateTime<Utc> {
        let (start, rollout) = (self.intents[id].start, self.intents[id].rollout);
        let at = start + self.onset(mode, hops, start, rollout, max);
        let name = self.alert_name(mode, alerting, hops == 0);
        self.alert(alerting, name, at, true);
        at
    }

    fn everyone(&self) -> Vec<usize> {
        (0..self.n()).collect()
    }

    fn own_change(&mut self) -> DateTime<Utc> {
        let all = self.everyone();
        let a = self.pick_alerting(&all);
        let t0 = self.anchor();
        let (c, mode) = self.culprit(a, t0, Flavour::Any);
        let at = self.page(c, mode, a, 0, MAX_ONSET);
        self.guard(c, at);
        self.decoys(a, Some(t0), at, 0.6);
        self.aftermath(a, at, Some(c), at);
        t0
    }

    /// A dependency's values change; the alerting service is redeployed unchanged after it
    /// (a restart by someone who saw the first symptoms, a re-run pipeline) and pages later.
    fn config_then_noop(&mut self, priors: &mut Vec<(usize, DateTime<Utc>)>) -> DateTime<Utc> {
        let (a, c) = self.pair(1);
        let t0 = self.anchor();
        let (id, mode) = self.culprit(c, t0, Flavour::Config);
        let landed = t0 + self.intents[id].rollout;
        let svc = self.svc(a);
        let noop_roll = self.org.rollout(&mut self.dice, &svc);
        let onset = self.onset(mode, 1, t0, self.intents[id].rollout, 600.0);
        let earliest = landed + noop_roll + self.dice.span(1.5, 10.0);
        let at = (t0 + onset).max(earliest);
        let name = self.alert_name(mode, a, false);
        self.alert(a, name, at, true);
        let noop_at = self.dice.instant(
            landed + Duration::seconds(30),
            at - noop_roll - Duration::seconds(30),
        );
        let recorded = self.lag();
        self.push(Intent {
            service: a,
            start: noop_at,
            what: What::Unchanged,
            keys: Vec::new(),
            status: Status::Succeeded,
            rollout: noop_roll,
            recorded,
            role: Role::NoopRedeploy,
        });
        priors.push((a, noop_at));
        self.guard(id, at);
        self.decoys(a, Some(t0), at, 0.35);
        self.aftermath(a, at, Some(id), at);
        t0
    }

    /// A direct dependency's rollout never becomes ready; the service above loses capacity or
    /// sees errors, often before the rollout is declared failed.
    fn failed_dependency(&mut self) -> DateTime<Utc> {
        let (a, c) = self.pair(1);
        let t0 = self.anchor();
        let (id, _) = self.culprit(c, t0, Flavour::Failed);
        let onset = self.onset(Mode::Crash, 1, t0, self.intents[id].rollout, 90.0);
        let at = t0 + onset;
        let seen = self
            .dice
            .weighted(&[(Mode::Errors, 0.6), (Mode::Latency, 0.4)]);
        let name = self.alert_name(seen, a, false);
        self.alert(a, name, at, true);
        self.guard(id, at);
        self.decoys(a, Some(t0), at, 0.55);
        self.aftermath(a, at, Some(id), at);
        t0
    }

    /// A change `k` hops below the alerting service; sometimes a service in between is
    /// restarted or redeployed unchanged in the meantime.
    fn hops_down(&mut self, k: u32, priors: &mut Vec<(usize, DateTime<Utc>)>) -> DateTime<Utc> {
        let (a, c) = self.pair(k);
        let t0 = self.anchor();
        let (id, mode) = self.culprit(c, t0, Flavour::Any);
        let at = self.page(id, mode, a, k, MAX_ONSET);
        self.guard(id, at);
        let middle: Vec<usize> = (0..self.n())
            .filter(|m| {
                *m != a
                    && *m != c
                    && matches!((self.dist[a][*m], self.dist[*m][c]), (Some(x), Some(y)) if x + y == k)
            })
            .collect();
        let landed = t0 + self.intents[id].rollout;
        if !middle.is_empty() && self.dice.chance(0.45) && at - landed > Duration::minutes(4) {
            let m = self.dice.pick(&middle);
            let start = self.dice.instant(landed, at - Duration::minutes(2));
            let svc = self.svc(m);
            let rollout = Duration::seconds(
                self.org
                    .rollout(&mut self.dice, &svc)
                    .num_seconds()
                    .min((at - start).num_seconds() - 30)
                    .max(20),
            );
            let what = if self.dice.chance(0.6) {
                What::Unchanged
            } else {
                What::Restart
            };
            let recorded = self.lag();
            self.push(Intent {
                service: m,
                start,
                what,
                keys: Vec::new(),
                status: Status::Succeeded,
                rollout,
                recorded,
                role: Role::NoopRedeploy,
            });
            priors.push((m, start));
        }
        self.decoys(a, Some(t0), at, 0.55);
        self.aftermath(a, at, Some(id), at);
        t0
    }

    /// A release train (or, without one, a coordinated release such as the first morning
    /// after a freeze): most services within the hour, one of them breaking the alerting
    /// service or something below it.
    fn burst(&mut self) -> DateTime<Utc> {
        let callers: Vec<usize> = (0..self.n())
            .filter(|s| !self.topo.deps[*s].is_empty())
            .collect();
        let a = self.pick_alerting(&callers);
        let hops = self.dice.weighted(&[(0u32, 0.45), (1, 0.4), (2, 0.15)]);
        let at_hops: Vec<usize> = (0..self.n())
            .filter(|c| self.dist[a][*c] == Some(hops))
            .collect();
        let (c, hops) = if at_hops.is_empty() {
            (self.dice.pick(&self.topo.deps[a].clone()), 1)
        } else {
            (self.dice.pick(&at_hops), hops)
        };
        let t = self.anchor();
        let departure = if self.org.train.is_some() {
            self.org
                .departures(t - Duration::days(3), t + Duration::days(3))
                .into_iter()
                .filter(|d| *d - self.history_start > Duration::hours(36))
                .min_by_key(|d| (*d - t).num_seconds().abs())
                .unwrap_or(t)
        } else {
            t
        };
        self.planned_train = Some(departure);
        let riders = self.train(departure, &[a, c], 6);
        let mut culprit = None;
        for (s, start) in riders {
            if s == c {
                culprit = Some(self.culprit(c, start, Flavour::Release));
            } else {
                let id = self.ordinary(s, start, Role::Burst);
                if self.intents[id].what != What::Image {
                    self.intents[id].what = What::Image;
                    self.intents[id].status = Status::Succeeded;
                }
            }
        }
        let (id, mode) = culprit.unwrap_or_else(|| self.culprit(c, departure, Flavour::Release));
        // Trains are watched: what breaks soon after one is what pages. A memory limit cut
        // too far OOM-kills at start; a capacity cut shows as latency while the train rolls.
        let mode = match mode {
            Mode::Leak => Mode::Crash,
            Mode::Capacity => Mode::Latency,
            m => m,
        };
        let at = self.page(id, mode, a, hops, 150.0);
        self.guard(id, at);
        self.decoys(a, None, at, 0.25);
        self.aftermath(a, at, Some(id), at);
        departure
    }

    /// One change on a shared service; the services above it page one after another.
    fn storm(&mut self) -> DateTime<Utc> {
        let n = self.n();
        let shared: Vec<(usize, f64)> = (0..n)
            .filter_map(|c| {
                let dependents = (0..n)
                    .filter(|a| *a != c && self.dist[*a][c].is_some())
                    .count();
                let factor = match self.topo.svcs[c].class {
                    Class::Store | Class::Cache | Class::Queue | Class::Platform => 2.0,
                    Class::Core => 1.2,
                    _ => 0.5,
                };
                (dependents >= 2).then_some((c, (dependents as f64).powf(1.5) * factor))
            })
            .collect();
        let c = self.dice.weighted(&shared);
        let t0 = self.anchor();
        let (id, mode) = self.culprit(c, t0, Flavour::Any);
        let rollout = self.intents[id].rollout;
        let base = self.onset(mode, 0, t0, rollout, 560.0);
        let mut dependents: Vec<usize> = (0..n)
            .filter(|a| *a != c && self.dist[*a][c].is_some())
            .collect();
        self.dice.shuffle(&mut dependents);
        dependents.sort_by_key(|a| self.dist[*a][c]);
        let k = self.dice.int(2, dependents.len().min(5));
        let mut alerting: Vec<usize> = dependents[..k].to_vec();
        // The edge sees everything, and pages too more often than not.
        if let Some(edge) = dependents[k..]
            .iter()
            .copied()
            .find(|a| self.topo.svcs[*a].class == Class::Edge)
            && self.dice.chance(0.5)
        {
            alerting.push(edge);
        }
        let mut first = None::<DateTime<Utc>>;
        for a in alerting {
            let hops = self.dist[a][c].unwrap_or(1);
            let per_hop = match mode {
                Mode::Crash | Mode::Errors => self.dice.between(0.5, 4.0),
                _ => self.dice.between(2.0, 15.0),
            };
            let delay = per_hop * f64::from(hops) + self.dice.between(0.0, 4.0);
            let at = (t0 + base + Dice::minutes(delay)).min(t0 + Dice::minutes(MAX_ONSET));
            let name = self.alert_name(mode, a, false);
            self.alert(a, name, at, true);
            first = Some(first.map_or(at, |f| f.min(at)));
        }
        if self.dice.chance(0.35) {
            let at = (t0 + base - self.dice.span(0.0, 3.0)).max(t0 + Duration::seconds(30));
            let name = self.alert_name(mode, c, true);
            self.alert(c, name, at, true);
            first = Some(first.map_or(at, |f| f.min(at)));
        }
        let first = first.unwrap_or(t0 + base);
        self.guard(id, first);
        let pages: Vec<usize> = self
            .alerts
            .iter()
            .filter(|a| a.scored)
            .map(|a| a.service)
            .collect();
        let paged = self.dice.pick(&pages);
        self.decoys(paged, Some(t0), first, 0.5);
        self.aftermath(paged, first, Some(id), first);
        t0
    }

    /// The culprit is reported after the page: CI reports after post-deploy checks, the
    /// watcher catches up after an outage of its own, a batch import.
    fn late(&mut self) -> DateTime<Utc> {
        let (a, c, hops) = if self.dice.chance(0.55) {
            let all = self.everyone();
            let a = self.pick_alerting(&all);
            (a, a, 0)
        } else {
            let (a, c) = self.pair(1);
            (a, c, 1)
        };
        let t0 = self.anchor();
        let (id, mode) = self.culprit(c, t0, Flavour::Any);
        if self.intents[id].status == Status::InProgress {
            self.intents[id].status = Status::Succeeded;
        }
        let at = self.page(id, mode, a, hops, MAX_ONSET);
        let lateness = Dice::minutes(self.dice.log_logistic(14.0, 1.8).clamp(1.0, 240.0));
        let lag = self.org.record_lag(&mut self.dice);
        let finished = t0 + self.intents[id].rollout;
        let reported = (at + lateness).max(finished + lag);
        self.intents[id].recorded = Recorded::At(reported);
        self.guard(id, at);
        self.decoys(a, Some(t0), at, 0.55);
        self.aftermath(a, at, Some(id), reported);
        t0
    }

    /// Nothing recorded caused it: a node, the cloud, a traffic spike, a third party. Rollouts
    /// happened nearby anyway.
    fn unrecorded(&mut self) -> DateTime<Utc> {
        let all = self.everyone();
        let a = self.pick_alerting(&all);
        let t = self.anchor();
        let at = if self.dice.chance(0.5) {
            t
        } else {
            t + self.dice.span(0.0, 600.0)
        };
        let mode = self.dice.weighted(&[
            (Mode::Errors, 0.35),
            (Mode::Latency, 0.3),
            (Mode::Capacity, 0.15),
            (Mode::Crash, 0.2),
        ]);
        let name = self.alert_name(mode, a, true);
        self.alert(a, name, at, true);
        self.cause = Planned::None;
        self.decoys(a, None, at, 0.85);
        self.aftermath(a, at, None, at);
        at
    }

    /// A game day: a chaos experiment on the alerting service, often right after the release
    /// it is meant to verify.
    fn game_day(&mut self) -> DateTime<Utc> {
        let all = self.everyone();
        let a = self.pick_alerting(&all);
        let t = self.anchor();
        let (experiment, mode) = self.experiment(a);
        if self.dice.chance(0.5) {
            let start = t - self.dice.span(20.0, 180.0);
            let id = self.ordinary(a, start, Role::Decoy);
            self.intents[id].what = What::Image;
            self.intents[id].status = Status::Succeeded;
        }
        let onset = Dice::minutes(self.dice.log_logistic(4.0, 2.0).clamp(0.5, 25.0));
        let at = t + onset;
        let length =
            Dice::minutes(self.dice.log_between(10.0, 60.0)).max(onset + self.dice.span(1.0, 10.0));
        let ended_at = self.dice.chance(0.8).then_some(t + length);
        self.chaos.push(ChaosRun {
            service: a,
            experiment,
            started_at: t,
            ended_at,
        });
        self.cause = Planned::Chaos(self.chaos.len() - 1);
        let name = self.alert_name(mode, a, true);
        self.alert(a, name, at, true);
        // Earlier game days, on other services.
        for _ in 0..self.dice.int(0, 2) {
            let s = self.dice.index(self.n());
            if s == a {
                continue;
            }
            let start = self
                .dice
                .instant(self.history_start, t - Duration::hours(8));
            let (experiment, mode) = self.experiment(s);
            let length = Dice::minutes(self.dice.log_between(10.0, 60.0));
            self.chaos.push(ChaosRun {
                service: s,
                experiment,
                started_at: start,
                ended_at: Some(start + length),
            });
            if self.dice.chance(0.4) {
                let name = self.alert_name(mode, s, true);
                let within = start + Dice::minutes(self.dice.between(1.0, 8.0));
                self.alert(s, name, within, false);
            }
        }
        self.decoys(a, None, at, 0.3);
        self.aftermath(a, at, None, at);
        t
    }

    fn experiment(&mut self, s: usize) -> (&'static str, Mode) {
        if self.topo.svcs[s].class.is_app() {
            self.dice.weighted(&[
                (("pod-delete", Mode::Errors), 0.3),
                (("pod-network-latency", Mode::Latency), 0.2),
                (("pod-cpu-hog", Mode::Latency), 0.15),
                (("pod-memory-hog", Mode::Leak), 0.1),
                (("pod-network-loss", Mode::Errors), 0.15),
                (("container-kill", Mode::Crash), 0.1),
            ])
        } else {
            self.dice.weighted(&[
                (("pod-delete", Mode::Errors), 0.4),
                (("disk-fill", Mode::Leak), 0.3),
                (("pod-network-partition", Mode::Errors), 0.3),
            ])
        }
    }

    /// A ConfigMap edit (`flags` false) or a flag flip that is not a rollout. An edited
    /// ConfigMap read through the environment takes effect only at the next restart, which
    /// then lands between the edit and the page.
    fn out_of_band(
        &mut self,
        flags: bool,
        priors: &mut Vec<(usize, DateTime<Utc>)>,
    ) -> DateTime<Utc> {
        let candidates: Vec<usize> = if flags {
            (0..self.n())
                .filter(|s| self.topo.svcs[*s].class.is_app())
                .collect()
        } else {
            self.everyone()
        };
        let a = self.pick_alerting(&candidates);
        let target = if !flags && !self.topo.deps[a].is_empty() && self.dice.chance(0.35) {
            self.dice.pick(&self.topo.deps[a].clone())
        } else {
            a
        };
        let t0 = self.anchor();
        let (ch, mode) = self.change(target, flags, t0, true);
        self.cause = Planned::Change(ch);
        let mut effect = t0;
        if !flags && self.dice.chance(0.45) {
            let start = t0 + self.dice.span(2.0, 40.0);
            let svc = self.svc(target);
            let rollout = self.org.rollout(&mut self.dice, &svc);
            let what = if self.dice.chance(0.6) {
                What::Restart
            } else {
                What::Unchanged
            };
            let recorded = self.lag();
            self.push(Intent {
                service: target,
                start,
                what,
                keys: Vec::new(),
                status: Status::Succeeded,
                rollout,
                recorded,
                role: Role::NoopRedeploy,
            });
            priors.push((target, start));
            effect = start + rollout / 2;
        }
        let hops = self.dist[a][target].unwrap_or(0);
        let budget = MAX_ONSET - (effect - t0).num_seconds() as f64 / 60.0;
        let onset = self.onset(mode, hops, effect, Duration::zero(), budget);
        let at = effect + onset;
        let name = self.alert_name(mode, a, target == a);
        self.alert(a, name, at, true);
        // Other edits and flips that day, the alerting service's own among them.
        for _ in 0..self.dice.int(1, 4) {
            let s = if self.dice.chance(0.35) {
                a
            } else {
                self.dice.index(self.n())
            };
            let when = self.dice.instant(
                (t0 - Duration::hours(6)).max(self.history_start),
                at - Duration::seconds(30),
            );
            let other_flags = if self.dice.chance(0.7) { flags } else { !flags };
            self.change(s, other_flags, when, false);
        }
        // The edit or flip undone once someone connects it to the page.
        if self.dice.chance(0.7) {
            let mut undo = self.changes[ch].clone();
            std::mem::swap(&mut undo.key.before, &mut undo.key.after);
            undo.at = at + self.dice.span(3.0, 45.0);
            undo.recorded_at = undo.at + Duration::seconds(5);
            self.changes.push(undo);
        }
        self.decoys(a, Some(t0), at, 0.5);
        self.aftermath(a, at, None, at);
        t0
    }
}
