//! The organisation a world belongs to: where its engineers sit (their time zone and working
//! hours), when they ship (business hours with a lunch dip, release trains on fixed weekdays,
//! weekend and Friday-afternoon freezes), how they ship (CI pipelines or a cluster watcher
//! recording rollouts, canaries or plain rolling updates, how often rollouts fail) and when
//! their users arrive (the traffic peak that capacity changes wait for).

use super::dice::Dice;
use super::services::{Class, Runtime, Svc};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc, Weekday};

/// A release train: on fixed weekdays at a fixed local time, most services ship together,
/// back ends first.
#[derive(Debug, Clone)]
pub struct Train {
    /// Its weekdays.
    pub days: Vec<Weekday>,
    /// Local departure, minutes after midnight.
    pub at: u32,
    /// How likely a service is to have something on it.
    pub join: f64,
    /// Minutes between two services' rollouts, lower and upper bound.
    pub spacing: (f64, f64),
}

/// Shares of what an ordinary deployment is.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// A new image only.
    pub image: f64,
    /// A new image and configuration.
    pub image_config: f64,
    /// Configuration only (a GitOps repository's commit).
    pub config: f64,
    /// The same image and configuration again (a pipeline re-run, an Argo sync).
    pub unchanged: f64,
    /// `kubectl rollout restart`.
    pub restart: f64,
}

/// One organisation's habits.
#[derive(Debug, Clone)]
pub struct Org {
    /// Local time minus UTC.
    pub offset: Duration,
    /// Working hours, local, `[start, end)`.
    pub hours: (u32, u32),
    /// Deploy intensity outside working hours, against inside.
    pub after_hours: f64,
    /// No deployments at weekends but hotfixes.
    pub weekend_freeze: bool,
    /// No deployments on Friday from this local hour but hotfixes.
    pub friday_cutoff: Option<u32>,
    /// A release train, if they run one.
    pub train: Option<Train>,
    /// Local hours of the daily traffic peak, `[start, end)`.
    pub peak: (u32, u32),
    /// Progressive delivery: application rollouts are canaries of tens of minutes.
    pub canary: bool,
    /// Rollouts are recorded by the cluster watcher within seconds (else by CI, a minute or
    /// two after the rollout ends).
    pub watcher: bool,
    /// Share of rollouts that fail.
    pub fail_rate: f64,
    /// Share of rollouts the rollout tool undoes.
    pub rollback_rate: f64,
    /// What ordinary deployments are.
    pub mix: Mix,
    /// How much this organisation deploys, against others.
    pub busy: f64,
}

impl Org {
    /// Draws an organisation.
    pub fn draw(dice: &mut Dice) -> Self {
        let offset_hours = dice.weighted(&[
            (-8.0, 0.15),
            (-5.0, 0.25),
            (0.0, 0.15),
            (1.0, 0.2),
            (2.0, 0.1),
            (5.5, 0.07),
            (8.0, 0.08),
        ]);
        let start = dice.int(8, 10) as u32;
        let end = start + dice.int(8, 10) as u32;
        let train = dice.chance(0.35).then(|| {
            let days = dice.weighted(&[(0usize, 0.45), (1, 0.35), (2, 0.2)]);
            let days = match days {
                0 => vec![Weekday::Tue, Weekday::Thu],
                1 => vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu],
                _ => vec![Weekday::Wed],
            };
            Train {
                days,
                at: (dice.int(start as usize + 1, end as usize - 3) as u32) * 60
                    + 15 * dice.int(0, 3) as u32,
                join: dice.between(0.45, 0.9),
                spacing: (dice.between(1.0, 3.0), dice.between(4.0, 10.0)),
            }
        });
        let consumer = dice.chance(0.45);
        let peak = if consumer {
            let s = dice.int(18, 20) as u32;
            (s, s + 2)
        } else {
            let s = dice.weighted(&[(10u32, 0.5), (14, 0.5)]);
            (s, s + 2)
        };
        let config = dice.between(0.08, 0.35);
        let unchanged = dice.between(0.02, 0.1);
        let restart = dice.between(0.01, 0.06);
        let image_config = dice.between(0.1, 0.35);
        let image = (1.0 - config - unchanged - restart - image_config).max(0.15);
        Self {
            offset: Dice::minutes(offset_hours * 60.0),
            hours: (start, end),
            after_hours: dice.log_between(0.01, 0.12),
            weekend_freeze: dice.chance(0.8),
            friday_cutoff: dice.chance(0.45).then(|| dice.int(13, 16) as u32),
            train,
            peak,
            canary: dice.chance(0.3),
            watcher: dice.chance(0.4),
            fail_rate: dice.between(0.01, 0.07),
            rollback_rate: dice.between(0.0, 0.04),
            mix: Mix {
                image,
                image_config,
                config,
                unchanged,
                restart,
            },
            busy: dice.log_between(0.5, 2.0),
        }
    }

    fn local(&self, t: DateTime<Utc>) -> chrono::NaiveDateTime {
        (t + self.offset).naive_utc()
    }

    /// Relative deploy intensity at `t` (a working hour mid-morning is about 1.3).
    pub fn intensity(&self, t: DateTime<Utc>) -> f64 {
        let l = self.local(t);
        let h = l.hour();
        let (s, e) = self.hours;
        let mut w = if (s..e).contains(&h) {
            if h == s || h + 1 == e {
                0.7
            } else if h == 12 {
                0.55
            } else if h < 12 {
                1.3
            } else {
                1.5
            }
        } else if h >= e && h < 22 {
            self.after_hours * 2.0
        } else {
            self.after_hours * 0.5
        };
        match l.weekday() {
            Weekday::Sat | Weekday::Sun => {
                w *= if self.weekend_freeze { 0.03 } else { 0.25 };
            }
            Weekday::Fri if self.friday_cutoff.is_some_and(|c| h >= c) => w *= 0.15,
            _ => {}
        }
        w
    }

    /// The intensity summed over an ordinary weekday: the divisor that turns a service's
    /// deployments per working day into a per-hour mean.
    pub fn workday_mass(&self) -> f64 {
        // 2025-01-08 is a Wednesday; the offset is undone so its local hours are summed.
        let midnight = NaiveDate::from_ymd_opt(2025, 1, 8)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| n.and_utc() - self.offset)
            .unwrap_or_default();
        (0..24)
            .map(|h| self.intensity(midnight + Duration::hours(h) + Duration::minutes(30)))
            .sum()
    }

    /// A moment someone would start a rollout, in the week starting at `monday` (UTC): drawn
    /// from the intensity, so mostly in working hours on working days.
    pub fn deploy_moment(&self, dice: &mut Dice, monday: DateTime<Utc>) -> DateTime<Utc> {
        let hours: Vec<(i64, f64)> = (0..7 * 24)
            .map(|h| {
                (
                    h,
                    self.intensity(monday + Duration::hours(h) + Duration::minutes(30)),
                )
            })
            .collect();
        let h = dice.weighted(&hours);
        monday + Duration::hours(h) + Duration::seconds(dice.int(0, 3599) as i64)
    }

    /// Every departure of the train in `[from, to)`.
    pub fn departures(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let Some(train) = &self.train else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut day = self.local(from).date();
        while let Some(midnight) = day.and_hms_opt(0, 0, 0) {
            let at = midnight.and_utc() - self.offset + Duration::minutes(i64::from(train.at));
            if at >= to {
                break;
            }
            if at >= from && train.days.contains(&day.weekday()) {
                out.push(at);
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        out
    }

    /// The next moment at or after `t` that traffic peaks (within two days).
    pub fn next_peak(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = t;
        for _ in 0..(2 * 24 * 4) {
            let h = self.local(at).hour();
            if (self.peak.0..self.peak.1).contains(&h) {
                return at;
            }
            at += Duration::minutes(15);
        }
        t
    }

    /// A service's deployments per working day.
    pub fn rate(&self, dice: &mut Dice, svc: &Svc) -> f64 {
        let (lo, hi) = match svc.class {
            Class::Edge => (0.15, 1.5),
            Class::Bff => (0.4, 5.0),
            Class::Domain => (0.3, 6.0),
            Class::Core => (0.25, 4.0),
            Class::Platform => (0.1, 1.2),
            Class::Store | Class::Cache | Class::Queue => (0.02, 0.25),
            Class::Standalone => (0.05, 1.0),
        };
        let hot = if dice.chance(0.2) { 2.0 } else { 1.0 };
        dice.log_between(lo, hi) * hot * self.busy
    }

    /// How long a rollout of `svc` runs before it is done.
    pub fn rollout(&self, dice: &mut Dice, svc: &Svc) -> Duration {
        let minutes = match svc.runtime {
            Runtime::Jvm => dice.log_between(3.0, 14.0),
            Runtime::Go => dice.log_between(1.0, 5.0),
            Runtime::Node => dice.log_between(1.0, 6.0),
            Runtime::Python => dice.log_between(1.5, 7.0),
            Runtime::Envoy | Runtime::Nginx => dice.log_between(2.0, 8.0),
            _ => dice.log_between(4.0, 30.0),
        };
        let canary = self.canary && svc.class.is_app() && dice.chance(0.85);
        let minutes = if canary {
            minutes + dice.between(15.0, 60.0)
        } else {
            minutes
        };
        Dice::minutes(minutes)
    }

    /// How long a failing rollout runs before it is declared failed: the progress deadline
    /// (Kubernetes' default is ten minutes) or Helm's timeout, plus CI's polling.
    pub fn failing(&self, dice: &mut Dice) -> Duration {
        let minutes = dice.weighted(&[(10.0, 0.55), (5.0, 0.25), (15.0, 0.2)]);
        Dice::minutes(minutes + dice.between(0.2, 2.5))
    }

    /// How long after a rollout ends it is recorded.
    pub fn record_lag(&self, dice: &mut Dice) -> Duration {
        if self.watcher {
            Duration::seconds(dice.int(1, 20) as i64)
        } else {
            Duration::seconds(dice.int(15, 150) as i64)
        }
    }
}
