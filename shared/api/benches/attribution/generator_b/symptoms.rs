//! How a harmful change shows: how long until it pages (crash loops within minutes, errors
//! after the rollout and the rule's `for`, latency that builds up, capacity that breaks at the
//! next traffic peak, leaks that take hours, a few more minutes per hop), and the alert an
//! SRE's Prometheus rules would name it.

use super::Ctx;
use super::dice::Dice;
use super::keys::Mode;
use super::services::{Class, Runtime as R};
use chrono::{DateTime, Duration, Utc};

impl Ctx {
    /// How long after `start` a change that hurts as `mode`, `hops` below the alerting service,
    /// pages someone; at most `max` minutes.
    pub(super) fn onset(
        &mut self,
        mode: Mode,
        hops: u32,
        start: DateTime<Utc>,
        rollout: Duration,
        max: f64,
    ) -> Duration {
        let roll = rollout.num_seconds() as f64 / 60.0;
        for _ in 0..16 {
            let base = match mode {
                // First new pods crash, back-off, then the rule's `for`.
                Mode::Crash => self.dice.between(0.5, 2.0) + self.dice.log_logistic(5.0, 3.0),
                // Errors once enough traffic reaches new pods, plus the rule's `for`; some
                // only on a path that is rarely taken.
                Mode::Errors => {
                    roll * self.dice.between(0.2, 1.0)
                        + self.dice.between(1.0, 10.0)
                        + if self.dice.chance(0.3) {
                            self.dice.log_logistic(35.0, 1.6)
                        } else {
                            0.0
                        }
                }
                Mode::Latency => roll + self.dice.log_logistic(22.0, 1.8),
                // Fine until the next traffic peak.
                Mode::Capacity => {
                    let live = start + rollout;
                    let peak = self.org.next_peak(live);
                    let wait = (peak - start).num_seconds() as f64 / 60.0;
                    if wait > max - 80.0 {
                        roll + self.dice.log_logistic(40.0, 1.5)
                    } else {
                        wait + self.dice.between(5.0, 75.0)
                    }
                }
                // Memory, connections or disk fill up.
                Mode::Leak => 40.0 + self.dice.weibull(260.0, 1.7),
            };
            let per_hop = match mode {
                Mode::Crash | Mode::Errors => self.dice.between(0.5, 6.0),
                Mode::Latency | Mode::Capacity => self.dice.between(3.0, 25.0),
                Mode::Leak => self.dice.between(0.0, 20.0),
            };
            let total = base + per_hop * f64::from(hops) + self.dice.between(0.0, 1.0);
            if (1.0..=max).contains(&total) {
                return Dice::minutes(total);
            }
        }
        Dice::minutes(max.min(60.0))
    }

    /// An alert name for `mode` seen on `s` (`own`: the change is on `s` itself).
    pub(super) fn alert_name(&mut self, mode: Mode, s: usize, own: bool) -> &'static str {
        let svc = self.svc(s);
        let names: &[&'static str] = match svc.class {
            Class::Store | Class::Cache | Class::Queue => match (svc.runtime, mode) {
                (R::Postgres, Mode::Errors | Mode::Capacity) => {
                    &["PostgresConnectionsSaturated", "PostgresTooManyClients"]
                }
                (R::Postgres, _) => &["PostgresSlowQueries", "PostgresReplicationLagHigh"],
                (R::Redis, Mode::Leak) => &["RedisMemoryHigh", "RedisEvictionsSpike"],
                (R::Redis, _) => &["RedisRejectedConnections", "RedisLatencyHigh"],
                (R::Kafka | R::Rabbit | R::Nats, Mode::Leak) => {
                    &["BrokerMemoryAlarm", "BrokerDiskFilling"]
                }
                (R::Kafka | R::Rabbit | R::Nats, _) => {
                    &["BrokerUnderReplicated", "QueueDepthGrowing"]
                }
                _ => &["DatastoreLatencyHigh", "DatastoreErrorsHigh"],
            },
            Class::Standalone => &["CronJobFailed", "JobDurationTooLong"],
            Class::Edge => match mode {
                Mode::Latency | Mode::Capacity | Mode::Leak => {
                    &["EdgeLatencySLOBurn", "UpstreamResponseTimeHigh"]
                }
                _ => &["EdgeAvailabilitySLOBurn", "Upstream5xxRatioHigh"],
            },
            _ => match (mode, own) {
                (Mode::Crash, true) => &["KubePodCrashLooping", "KubeDeploymentReplicasMismatch"],
                (Mode::Crash, false) => &["UpstreamConnectErrors", "HTTP5xxRatioHigh"],
                (Mode::Errors, _) => &[
                    "HTTP5xxRatioHigh",
                    "ErrorBudgetBurnFast",
                    "GrpcServerErrorsHigh",
                ],
                (Mode::Latency, true) => &["LatencyP99AboveSLO", "CPUThrottlingHigh"],
                (Mode::Latency, false) => &["LatencyP99AboveSLO", "ErrorBudgetBurnSlow"],
                (Mode::Capacity, true) => &["HPAAtMaxReplicas", "RequestQueueSaturated"],
                (Mode::Capacity, false) if svc.runtime == R::Jvm => {
                    &["HikariPendingThreadsHigh", "RequestQueueSaturated"]
                }
                (Mode::Capacity, false) => &["RequestQueueSaturated", "ErrorBudgetBurnSlow"],
                (Mode::Leak, true) if svc.runtime == R::Jvm => {
                    &["ContainerOOMKilled", "JvmGcTimeHigh", "MemoryNearLimit"]
                }
                (Mode::Leak, true) => &["ContainerOOMKilled", "MemoryNearLimit"],
                (Mode::Leak, false) => &["LatencyP99AboveSLO", "HTTP5xxRatioHigh"],
            },
        };
        self.dice.pick(names)
    }
}
