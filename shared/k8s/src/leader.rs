//! Lease-based leader election (`coordination.k8s.io/v1` Lease), so that of several replicas
//! only one watches the cluster and records rollouts.
//!
//! The algorithm is client-go's: a candidate takes the Lease when it is free or when its record
//! has not changed for `lease_duration` *as observed locally* (so clocks need not agree), and
//! the holder renews it every `retry_period`. Every write carries the `resourceVersion` it read,
//! so two candidates can never both succeed. A holder that cannot renew for `renew_deadline`
//! stops leading; a holder that stops cleanly releases the Lease so another takes over at once.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Where the Lease is and how long terms last.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (pod name, or host name + pid).
    pub identity: String,
    /// How long a Lease not renewed stays with its holder.
    pub lease_duration: Duration,
    /// How long a leader keeps leading while renewals fail.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What this candidate last saw of the Lease: its version, holder and when the version changed.
#[derive(Debug, Clone)]
struct Observed {
    resource_version: Option<String>,
    holder: Option<String>,
    duration: Duration,
    at: Instant,
}

/// Whether a Lease observed as `observed` may be taken by `identity` at `now`: it is free, ours,
/// or has not changed for its duration.
fn may_take(observed: &Observed, identity: &str, now: Instant) -> bool {
    match observed.holder.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => now.duration_since(observed.at) >= observed.duration,
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// One candidate for the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
    rounds: Arc<AtomicU64>,
}

impl Elector {
    /// A candidate using `client`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            rounds: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many rounds (tries to take or renew the Lease) [`Self::run`] has completed, readable
    /// while it runs: a round that ends not leading is a decision, not an absence of news.
    pub fn rounds(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.rounds)
    }

    fn observe(&mut self, lease: &Lease) {
        let version = lease.metadata.resource_version.clone();
        let spec = lease.spec.clone().unwrap_or_default();
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.resource_version != version);
        if changed {
            self.observed = Some(Observed {
                resource_version: version,
                holder: spec.holder_identity,
                duration: spec
                    .lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(self.config.lease_duration, Duration::from_secs),
                at: Instant::now(),
            });
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let ours = previous
            .and_then(|p| p.holder_identity.as_deref())
            .is_some_and(|h| h == self.config.identity);
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds(self.config.lease_duration)),
            acquire_time: if ours {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease once. `Ok(true)` while this candidate holds it.
    ///
    /// # Errors
    /// API errors other than a lost race (409), which is `Ok(false)`.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&current);
        let Some(observed) = &self.observed else {
            return Ok(false);
        };
        if !may_take(observed, &self.config.identity, Instant::now()) {
            return Ok(false);
        }
        let mut next = current.clone();
        next.spec = Some(self.spec(current.spec.as_ref()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &next)
            .await
        {
            Ok(replaced) => {
                self.observe(&replaced);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up when this candidate holds it, so another takes over at once.
    ///
    /// # Errors
    /// API errors.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut current) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let ours = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| h == self.config.identity);
        if !ours {
            return Ok(());
        }
        if let Some(spec) = current.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Campaigns until `stop`: `leading` is `true` while this candidate holds the Lease. On
    /// stop a held Lease is released.
    pub async fn run(mut self, leading: watch::Sender<bool>, stop: CancellationToken) {
        let mut last_renewed: Option<Instant> = None;
        loop {
            let held = match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renewed = Some(Instant::now());
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error.message = %e, "leader election: cannot reach the Lease");
                    last_renewed.is_some_and(|t| t.elapsed() < self.config.renew_deadline)
                }
            };
            if !held {
                last_renewed = None;
            }
            leading.send_if_modified(|was| {
                if *was == held {
                    return false;
                }
                if held {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                } else {
                    tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "stopped leading");
                }
                *was = held;
                true
            });
            self.rounds.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        leading.send_replace(false);
        if let Err(e) = self.release().await {
            tracing::warn!(lease = %self.config.name, error.message = %e, "leader election: could not release the Lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_take_the_lease() {
        let now = Instant::now();
        let observed = |holder: Option<&str>, age: u64| Observed {
            resource_version: Some("1".into()),
            holder: holder.map(str::to_owned),
            duration: Duration::from_secs(15),
            at: now.checked_sub(Duration::from_secs(age)).unwrap_or(now),
        };
        assert!(may_take(&observed(None, 0), "a", now));
        assert!(may_take(&observed(Some(""), 0), "a", now));
        assert!(may_take(&observed(Some("a"), 0), "a", now));
        assert!(!may_take(&observed(Some("b"), 5), "a", now));
        assert!(may_take(&observed(Some("b"), 16), "a", now));
    }
}
