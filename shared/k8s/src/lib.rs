//! Kubernetes workloads as deploygraph sees them. [`leader`] elects the one replica that
//! watches; [`rollout`] is the pure part of the workload watcher: what a
//! rollout is (a pod-template change), its status from the rollout conditions, the commit and
//! actor it carries, and the diff of its template against the previous one; [`config_change`]
//! the pure part of recording edits of the ConfigMaps, Secrets and HPAs workloads use as
//! changes that are not rollouts; [`rollback`] undoes a release whose canary failed.

pub mod config_change;
pub mod helm_watch;
pub mod leader;
pub mod observe;
pub mod progress;
pub mod retry;
pub mod rollback;
pub mod rollout;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod watcher;
