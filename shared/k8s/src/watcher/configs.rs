//! The workload watcher's part for changes that are not rollouts: edits of the ConfigMaps and
//! Secrets a watched workload's pod template references, and of the HPAs that scale a watched
//! workload, each recorded as a [`Change`] on the services of the workloads concerned.
//!
//! What is an edit: the watcher remembers each referenced object's content as a
//! [`Snapshot`] (hashes, and short ConfigMap values) and records a change when a version with
//! other content arrives. The first version it sees of an object is its baseline, so the list
//! after a (re)start records nothing. A relist while it runs (a watch that expired) compares
//! with what it remembers, so an edit made while the watch was down is recorded then. What a
//! previous process remembered is not stored: an edit made while no watcher ran (or before the
//! object was first referenced) is not recorded, since there is nothing to diff it against.
//!
//! The ConfigMap, Secret and HPA streams start once every workload scope has been listed, so
//! their first list finds every reference known; a workload that later starts referencing an
//! object the watcher does not remember reads it once (GET) as its baseline. An object no
//! watched workload references is not kept (HPAs are kept, they are small, so a workload that
//! appears later has its HPA's baseline). Deleted objects are forgotten; a re-created one is a
//! new baseline.

use super::{Handled, Key, Object, Usage, WorkloadWatcher, stream};
use crate::config_change::{
    ConfigKind, Snapshot, change_of, references, snapshot_config_map, snapshot_hpa, snapshot_secret,
};
use crate::observe::service_of;
use crate::retry::{Failure, bounded};
use chrono::Utc;
use deploygraph_model::{Change, ServiceRef};
use deploygraph_store::RecordKind;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::watcher;
use std::collections::HashSet;
use tokio_util::sync::CancellationToken;

/// The Helm field manager: with `skip_helm_managed`, its writes are the Helm watcher's.
const HELM_MANAGER: &str = "helm";

impl WorkloadWatcher {
    /// The ConfigMap, Secret and HPA streams of the watched namespaces. Not filtered by the
    /// workload label selector: what a workload references need not carry its labels.
    pub(super) fn config_streams(&self) -> Vec<super::Changes> {
        let config = watcher::Config::default();
        let mut streams = Vec::new();
        for ns in self.scopes() {
            let client = self.client.clone();
            macro_rules! api {
                ($t:ty) => {
                    match ns.as_deref() {
                        Some(ns) => Api::<$t>::namespaced(client.clone(), ns),
                        None => Api::<$t>::all(client.clone()),
                    }
                };
            }
            streams.push(stream(
                api!(ConfigMap),
                &config,
                (ConfigKind::ConfigMap.as_str(), ns.clone()),
                |o| Object::Config(Box::new(snapshot_config_map(&o))),
            ));
            // The Secret is reduced to key hashes as it arrives: no value is kept.
            streams.push(stream(
                api!(Secret),
                &config,
                (ConfigKind::Secret.as_str(), ns.clone()),
                |o| Object::Config(Box::new(snapshot_secret(&o))),
            ));
            streams.push(stream(
                api!(HorizontalPodAutoscaler),
                &config,
                (ConfigKind::Autoscaler.as_str(), ns.clone()),
                |o| Object::Config(Box::new(snapshot_hpa(&o))),
            ));
        }
        streams
    }

    /// Notes what a workload's template references; reads the objects it starts referencing
    /// that the watcher does not remember (once the ConfigMap and Secret streams run).
    pub(super) async fn track_usage(&mut self, object: &Object, stop: &CancellationToken) {
        let Some((meta, template)) = object.workload() else {
            return;
        };
        let key = object.key();
        let name = meta.name.clone().unwrap_or_default();
        let usage = service_of(meta, template.metadata.as_ref(), &name).map(|service| Usage {
            service,
            refs: template.spec.as_ref().map(references).unwrap_or_default(),
        });
        let previous = match usage {
            Some(usage) => {
                if self.users.get(&key) == Some(&usage) {
                    return;
                }
                self.users.insert(key.clone(), usage)
            }
            None => self.users.remove(&key),
        };
        self.prune_configs();
        if !self.configs_started {
            return;
        }
        let new: Vec<(ConfigKind, String)> = self
            .users
            .get(&key)
            .map(|u| {
                u.refs
                    .iter()
                    .filter(|(kind, name)| {
                        !previous
                            .as_ref()
                            .is_some_and(|p| p.refs.contains(*kind, name))
                    })
                    .map(|(kind, name)| (kind, name.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for (kind, name) in new {
            let config_key = (kind.as_str(), key.1.clone(), name.clone());
            if !self.configs.contains_key(&config_key) {
                self.read_baseline(kind, &key.1, &name, stop).await;
            }
        }
    }

    /// Reads an object a workload started referencing as its baseline. When the read fails,
    /// the object's next version is its baseline.
    async fn read_baseline(
        &mut self,
        kind: ConfigKind,
        namespace: &str,
        name: &str,
        stop: &CancellationToken,
    ) {
        let client = self.client.clone();
        let read = async {
            match kind {
                ConfigKind::ConfigMap => Api::<ConfigMap>::namespaced(client, namespace)
                    .get_opt(name)
                    .await
                    .map(|o| o.map(|o| snapshot_config_map(&o))),
                ConfigKind::Secret => Api::<Secret>::namespaced(client, namespace)
                    .get_opt(name)
                    .await
                    .map(|o| o.map(|o| snapshot_secret(&o))),
                ConfigKind::Autoscaler => Ok(None),
            }
        };
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = read => read,
        };
        match read {
            Ok(Some(snapshot)) => {
                let key = (kind.as_str(), namespace.to_owned(), name.to_owned());
                self.configs.entry(key).or_insert(snapshot);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(object = %format!("{namespace}/{}/{name}", kind.as_str()), error.message = %e, "cannot read a newly referenced object; its next version is its baseline");
            }
        }
    }

    /// Forgets the ConfigMaps and Secrets no watched workload references.
    pub(super) fn prune_configs(&mut self) {
        let referenced: HashSet<(&'static str, &str, &str)> = self
            .users
            .iter()
            .flat_map(|(k, u)| {
                u.refs
                    .iter()
                    .map(|(kind, name)| (kind.as_str(), k.1.as_str(), name))
            })
            .collect();
        self.configs.retain(|k, s| {
            s.kind == ConfigKind::Autoscaler
                || referenced.contains(&(k.0, k.1.as_str(), k.2.as_str()))
        });
    }

    /// The workloads an object's edit concerns, as `Kind/name`, and their services.
    fn users_of(&self, snapshot: &Snapshot) -> (Vec<String>, Vec<ServiceRef>) {
        let users: Vec<(&Key, &Usage)> = match (&snapshot.kind, &snapshot.target) {
            (ConfigKind::Autoscaler, Some((kind, name))) => self
                .users
                .iter()
                .filter(|(k, _)| k.0 == kind.as_str() && k.1 == snapshot.namespace && k.2 == *name)
                .collect(),
            (ConfigKind::Autoscaler, None) => Vec::new(),
            (kind, _) => self
                .users
                .iter()
                .filter(|(k, u)| {
                    k.1 == snapshot.namespace && u.refs.contains(*kind, &snapshot.name)
                })
                .collect(),
        };
        let mut names: Vec<String> = users
            .iter()
            .map(|(k, _)| format!("{}/{}", k.0, k.2))
            .collect();
        names.sort_unstable();
        let services = users
            .iter()
            .map(|(k, u)| ServiceRef {
                name: u.service.clone(),
                namespace: Some(k.1.clone()),
                environment: self.config.environment.clone(),
                cluster: self.config.cluster.clone(),
            })
            .collect();
        (names, services)
    }

    /// Compares a version of a ConfigMap, Secret or HPA with what the watcher remembers and
    /// records the edit, if any.
    pub(super) async fn handle_config(
        &mut self,
        snapshot: &Snapshot,
        stop: &CancellationToken,
    ) -> Handled {
        let key: Key = (
            snapshot.kind.as_str(),
            snapshot.namespace.clone(),
            snapshot.name.clone(),
        );
        let (users, services) = self.users_of(snapshot);
        if services.is_empty() && snapshot.kind != ConfigKind::Autoscaler {
            // Not referenced: ignored, and not kept.
            self.configs.remove(&key);
            return Handled::Done;
        }
        let before = match self.configs.get(&key) {
            Some(before) if before.object_uid == snapshot.object_uid => before,
            _ => {
                tracing::debug!(object = %super::describe(&key), "baseline");
                self.configs.insert(key, snapshot.clone());
                return Handled::Done;
            }
        };
        let by_helm =
            self.config.skip_helm_managed && snapshot.actor.as_deref() == Some(HELM_MANAGER);
        let change = if by_helm {
            // A Helm upgrade's manifest diff is recorded with its release.
            None
        } else {
            change_of(before, snapshot, &services, &users, Utc::now())
        };
        let Some(change) = change else {
            self.configs.insert(key, snapshot.clone());
            return Handled::Done;
        };
        self.write_change(key, change, snapshot, stop).await
    }

    /// Records an edit; remembers the version once it is recorded (or refused for good).
    async fn write_change(
        &mut self,
        key: Key,
        change: Change,
        snapshot: &Snapshot,
        stop: &CancellationToken,
    ) -> Handled {
        let recorded = bounded(stop, &self.retry, &self.outage, "record a change", || {
            self.store.record_changes(vec![change.clone()])
        })
        .await;
        match recorded {
            Ok(mut outcomes) => {
                let kind = outcomes.pop().map_or(RecordKind::Unchanged, |outcome| {
                    if outcome.kind == RecordKind::Conflict {
                        tracing::warn!(change.uid = %change.uid, reason = ?outcome.conflict, "change conflicts with what is recorded");
                    }
                    outcome.kind
                });
                tracing::info!(
                    change.uid = %change.uid,
                    change.kind = change.kind.as_str(),
                    object = %super::describe(&key),
                    services = %change.service_names(),
                    keys = change.diff.len(),
                    outcome = kind.as_str(),
                    "recorded change"
                );
                if let Some(f) = &self.on_change {
                    f(&change, kind);
                }
                self.configs.insert(key, snapshot.clone());
                Handled::Done
            }
            Err(failure) => {
                if matches!(failure, Failure::Rejected(_)) {
                    // Skipped for good: the next edit is compared with this version.
                    self.configs.insert(key.clone(), snapshot.clone());
                }
                self.failed(&key, "record a change", failure)
            }
        }
    }
}
