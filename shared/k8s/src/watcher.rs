//! The workload watcher: watches Deployments, StatefulSets and DaemonSets and records one
//! DeploymentEvent per rollout, updating it as its status advances and its image digests are
//! resolved.
//!
//! It keeps nothing of its own: what it knows of a workload is the workload's last recorded
//! rollouts, read from the store the first time the workload is seen. So a restarted watcher
//! (or a new leader) lists every workload, finds each current template already recorded or
//! not, and records nothing twice and misses no workload whose template changed while it was
//! down.

use crate::observe::{
    Known, Observation, Skip, decide, observe_daemonset, observe_deployment, observe_statefulset,
    resolve_digests,
};
use crate::retry::until_ok;
use chrono::Utc;
use deploygraph_model::{Deployment, Environment};
use deploygraph_store::{DeploymentFilter, GraphStore, RecordKind};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment as K8sDeployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Namespaces to watch; all when empty.
    pub namespaces: Vec<String>,
    /// Only workloads matching this label selector.
    pub label_selector: Option<String>,
    /// The environment recorded on rollouts.
    pub environment: Environment,
    /// Leave workloads managed by a Helm release to the Helm watcher, so an upgrade is one
    /// DeploymentEvent.
    pub skip_helm_managed: bool,
}

/// One workload object from any of the watched kinds.
#[derive(Debug, Clone)]
enum Object {
    Deployment(Box<K8sDeployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
}

impl Object {
    fn observe(&self) -> Result<Observation, Skip> {
        match self {
            Self::Deployment(d) => observe_deployment(d),
            Self::StatefulSet(s) => observe_statefulset(s),
            Self::DaemonSet(d) => observe_daemonset(d),
        }
    }
}

type Objects = Pin<Box<dyn Stream<Item = Result<Object, watcher::Error>> + Send>>;

fn stream<K>(api: Api<K>, config: &watcher::Config, wrap: fn(K) -> Object) -> Objects
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    Box::pin(
        watcher::watcher(api, config.clone())
            .default_backoff()
            .filter_map(move |event| async move {
                match event {
                    Ok(Event::Apply(o) | Event::InitApply(o)) => Some(Ok(wrap(o))),
                    Ok(Event::Delete(_) | Event::Init | Event::InitDone) => None,
                    Err(e) => Some(Err(e)),
                }
            }),
    )
}

/// Called after every write of a rollout.
pub type OnRecorded = Box<dyn Fn(&Deployment, RecordKind) + Send + Sync>;

/// A workload's identity in the watcher's memory.
type Key = (&'static str, String, String);

/// Records rollouts of the workloads it is fed.
pub struct WorkloadWatcher {
    client: kube::Client,
    store: Arc<dyn GraphStore>,
    config: WatchConfig,
    known: HashMap<Key, Known>,
    on_recorded: Option<OnRecorded>,
}

impl WorkloadWatcher {
    /// A watcher recording into `store`.
    pub fn new(client: kube::Client, store: Arc<dyn GraphStore>, config: WatchConfig) -> Self {
        Self {
            client,
            store,
            config,
            known: HashMap::new(),
            on_recorded: None,
        }
    }

    /// Calls `f` after every successful write (metrics, benchmarks).
    #[must_use]
    pub fn on_recorded(
        mut self,
        f: impl Fn(&Deployment, RecordKind) + Send + Sync + 'static,
    ) -> Self {
        self.on_recorded = Some(Box::new(f));
        self
    }

    fn streams(&self) -> Vec<Objects> {
        let mut config = watcher::Config::default();
        if let Some(selector) = &self.config.label_selector {
            config = config.labels(selector);
        }
        let client = &self.client;
        let namespaces: Vec<Option<&str>> = if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config
                .namespaces
                .iter()
                .map(|n| Some(n.as_str()))
                .collect()
        };
        let mut streams = Vec::new();
        for ns in namespaces {
            let api = |c: &kube::Client| match ns {
                Some(ns) => (
                    Api::namespaced(c.clone(), ns),
                    Api::namespaced(c.clone(), ns),
                    Api::namespaced(c.clone(), ns),
                ),
                None => (
                    Api::all(c.clone()),
                    Api::all(c.clone()),
                    Api::all(c.clone()),
                ),
            };
            let (deployments, statefulsets, daemonsets) = api(client);
            streams.push(stream(deployments, &config, |o| {
                Object::Deployment(Box::new(o))
            }));
            streams.push(stream(statefulsets, &config, |o| {
                Object::StatefulSet(Box::new(o))
            }));
            streams.push(stream(daemonsets, &config, |o| {
                Object::DaemonSet(Box::new(o))
            }));
        }
        streams
    }

    /// Watches until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut objects = futures::stream::select_all(self.streams());
        tracing::info!(namespaces = ?self.config.namespaces, "watching workloads");
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => break,
                next = objects.next() => next,
            };
            match next {
                Some(Ok(object)) => self.handle(&object, &stop).await,
                Some(Err(e)) => {
                    tracing::warn!(error.message = %e, "workload watch failed; retrying");
                }
                None => break,
            }
        }
        tracing::info!("stopped watching workloads");
    }

    async fn handle(&mut self, object: &Object, stop: &CancellationToken) {
        let mut o = match object.observe() {
            Ok(o) => o,
            Err(Skip(reason)) => {
                tracing::debug!(reason, "workload skipped");
                return;
            }
        };
        if self.config.skip_helm_managed
            && let Some(release) = &o.helm_release
        {
            tracing::debug!(workload = %o.name, release, "left to the Helm watcher");
            return;
        }
        let key: Key = (o.kind, o.namespace.clone(), o.name.clone());
        if !self.known.contains_key(&key) {
            match self.history(&o, stop).await {
                Some(Some(known)) => {
                    self.known.insert(key.clone(), known);
                }
                Some(None) => {}
                None => return,
            }
        }
        // A new template's Pods are only starting: its rollout is recorded at once, and the
        // digests their kubelets resolve are looked up on the rollout's later status events.
        let same_rollout = self.known.get(&key).is_some_and(|k| {
            k.last
                .workload
                .as_ref()
                .is_some_and(|w| w.template_hash == o.template_hash)
                && k.last.images.iter().any(|i| i.digest.is_none())
        });
        if same_rollout
            && o.images.iter().any(|i| i.image.digest.is_none())
            && let Some(selector) = &o.selector
        {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &o.namespace);
            match pods.list(&ListParams::default().labels(selector)).await {
                Ok(list) => resolve_digests(&mut o.images, &list.items),
                Err(e) => tracing::debug!(error.message = %e, "cannot list pods for digests"),
            }
        }
        let known = self.known.get(&key);
        let Some(deployment) = decide(known, &o, &self.config.environment, Utc::now()) else {
            return;
        };
        let Some(kind) = self.record(&deployment, stop).await else {
            return;
        };
        tracing::info!(
            deployment.uid = %deployment.uid,
            workload = %format!("{}/{}/{}", o.namespace, o.kind, o.name),
            status = deployment.status.as_str(),
            changes = deployment.changes.len(),
            outcome = ?kind,
            "recorded rollout"
        );
        if let Some(f) = &self.on_recorded {
            f(&deployment, kind);
        }
        let entry = self.known.entry(key);
        match entry {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let k = e.get_mut();
                if k.last.uid != deployment.uid {
                    if let Some(w) = &k.last.workload {
                        k.earlier.insert(0, w.template_hash.clone());
                    }
                    k.replicas = o.replicas;
                }
                k.last = deployment;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Known {
                    replicas: o.replicas,
                    earlier: Vec::new(),
                    last: deployment,
                });
            }
        }
    }

    /// The workload's recorded rollouts, newest first, as what the watcher knows; `None` when
    /// stopped while the store was unavailable.
    async fn history(&self, o: &Observation, stop: &CancellationToken) -> Option<Option<Known>> {
        let filter = DeploymentFilter {
            service: Some(o.service.clone()),
            environment: Some(self.config.environment.clone()),
            limit: 100,
            ..DeploymentFilter::default()
        };
        let page = until_ok(stop, "read a workload's rollouts", || {
            self.store.list_deployments(&filter)
        })
        .await?;
        let history: Vec<Deployment> = page
            .items
            .into_iter()
            .map(|s| s.deployment)
            .filter(|d| {
                d.namespace.as_deref() == Some(o.namespace.as_str())
                    && d.workload
                        .as_ref()
                        .is_some_and(|w| w.kind == o.kind && w.name == o.name)
            })
            .collect();
        Some(Known::from_history(&history))
    }

    /// Writes until the store takes it (or `stop`).
    async fn record(
        &self,
        deployment: &Deployment,
        stop: &CancellationToken,
    ) -> Option<RecordKind> {
        let mut outcomes = until_ok(stop, "record a rollout", || {
            self.store.record_deployments(vec![deployment.clone()])
        })
        .await?;
        let outcome = outcomes.pop()?;
        if outcome.kind == RecordKind::Conflict {
            tracing::warn!(deployment.uid = %deployment.uid, reason = ?outcome.conflict, "rollout conflicts with what is recorded");
        }
        Some(outcome.kind)
    }
}

/// Campaigns for `lease` and runs the watchers `start` spawns while leading: of several
/// replicas exactly one records. Losing the lease stops them (their token is cancelled);
/// winning it again starts new ones, which relist.
pub async fn run_elected(
    client: kube::Client,
    lease: crate::leader::LeaseConfig,
    stop: CancellationToken,
    start: impl Fn(CancellationToken) -> Vec<tokio::task::JoinHandle<()>> + Send + 'static,
) {
    let (tx, mut leading) = tokio::sync::watch::channel(false);
    let elector = crate::leader::Elector::new(client, lease);
    let election = tokio::spawn(elector.run(tx, stop.clone()));
    let mut current: Option<(CancellationToken, Vec<tokio::task::JoinHandle<()>>)> = None;
    loop {
        let lead = *leading.borrow_and_update();
        match (lead, current.is_some()) {
            (true, false) => {
                let token = stop.child_token();
                current = Some((token.clone(), start(token)));
            }
            (false, true) => {
                if let Some((token, tasks)) = current.take() {
                    token.cancel();
                    futures::future::join_all(tasks).await;
                }
            }
            _ => {}
        }
        tokio::select! {
            () = stop.cancelled() => break,
            changed = leading.changed() => if changed.is_err() { break },
        }
    }
    if let Some((token, tasks)) = current.take() {
        token.cancel();
        futures::future::join_all(tasks).await;
    }
    let _ = election.await;
}
