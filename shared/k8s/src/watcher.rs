//! The workload watcher: watches Deployments, StatefulSets and DaemonSets and records one
//! DeploymentEvent per rollout, updating it as its status advances and its image digests are
//! resolved.
//!
//! What it knows of a workload is the workload's last recorded rollouts, read from the store
//! the first time the workload is seen. So a restarted watcher (or a new leader) lists every
//! workload, finds each current template already recorded or not, and records nothing twice
//! and misses no workload whose template changed while it was down. A deleted workload is
//! forgotten (on its delete event, or when a relist no longer shows it), so the memory holds
//! the workloads that exist, not every workload ever seen.
//!
//! Image digests come from the Pods' `containerStatuses[].imageID`, read from a reflector
//! cache of the watched namespaces' Pods (stripped to what digests need) rather than a LIST
//! per event; a Pod that starts reporting a digest re-checks the rollouts still waiting for
//! one, as a controller's watch on owned objects would.
//!
//! It also records edits of the ConfigMaps and Secrets the watched workloads' pod templates
//! reference, and of the HorizontalPodAutoscalers that scale them, as changes that are not
//! rollouts ([`configs`], [`crate::config_change`]).
//!
//! Store calls follow [`crate::retry`]: an unavailable store is retried a bounded number of
//! times, then the workload is set aside and tried again later; a record the store rejects is
//! logged, counted ([`SkipReason::StoreRejected`]) and skipped.

use crate::config_change::{References, Snapshot};
use crate::observe::{
    ContainerImage, Known, Observation, Skip, awaits_digests, decide, fill_digests,
    observe_daemonset, observe_deployment, observe_statefulset, resolve_digests, selector_matches,
};
use crate::progress::{OnSkipped, Progress, SkipReason};
use crate::retry::{Failure, Outage, Requeue, RetryPolicy, bounded};
use crate::sink::{RecordSink, StoreSink};
use chrono::Utc;
use deploygraph_model::{Cluster, Deployment, Environment, Image};
use deploygraph_store::{DeploymentFilter, GraphStore, RecordKind};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment as K8sDeployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod configs;

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Namespaces to watch; all when empty.
    pub namespaces: Vec<String>,
    /// Only workloads matching this label selector.
    pub label_selector: Option<String>,
    /// The environment recorded on rollouts.
    pub environment: Environment,
    /// The cluster recorded on rollouts and changes.
    pub cluster: Cluster,
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
    /// A ConfigMap, Secret or HPA, as much of it as the watcher keeps.
    Config(Box<Snapshot>),
}

impl Object {
    fn observe(&self) -> Result<Observation, Skip> {
        match self {
            Self::Deployment(d) => observe_deployment(d),
            Self::StatefulSet(s) => observe_statefulset(s),
            Self::DaemonSet(d) => observe_daemonset(d),
            Self::Config(_) => Err(Skip("not a workload".into())),
        }
    }

    /// A workload's metadata and pod template.
    fn workload(&self) -> Option<(&ObjectMeta, &k8s_openapi::api::core::v1::PodTemplateSpec)> {
        match self {
            Self::Deployment(d) => Some((&d.metadata, &d.spec.as_ref()?.template)),
            Self::StatefulSet(s) => Some((&s.metadata, &s.spec.as_ref()?.template)),
            Self::DaemonSet(d) => Some((&d.metadata, &d.spec.as_ref()?.template)),
            Self::Config(_) => None,
        }
    }

    fn key(&self) -> Key {
        let (kind, meta): (&'static str, &ObjectMeta) = match self {
            Self::Deployment(d) => ("Deployment", &d.metadata),
            Self::StatefulSet(s) => ("StatefulSet", &s.metadata),
            Self::DaemonSet(d) => ("DaemonSet", &d.metadata),
            Self::Config(s) => return (s.kind.as_str(), s.namespace.clone(), s.name.clone()),
        };
        (
            kind,
            meta.namespace.clone().unwrap_or_else(|| "default".into()),
            meta.name.clone().unwrap_or_default(),
        )
    }
}

/// A workload's identity in the watcher's memory: kind, namespace, name.
type Key = (&'static str, String, String);

fn describe(key: &Key) -> String {
    format!("{}/{}/{}", key.1, key.0, key.2)
}

/// What one watch stream covers: a kind in one namespace, or in all (`None`).
type Scope = (&'static str, Option<String>);

fn in_scope(key: &Key, scope: &Scope) -> bool {
    key.0 == scope.0 && scope.1.as_ref().is_none_or(|ns| *ns == key.1)
}

/// What the watch streams tell the watcher.
enum Change {
    /// A workload was added or changed.
    Apply(Object),
    /// A workload was deleted.
    Deleted(Key),
    /// A stream (re)lists its scope: what it does not list again is gone.
    Relisting(Scope),
    /// A workload of a relist.
    Listed(Scope, Object),
    /// The relist of a scope is complete.
    Relisted(Scope),
    /// A Pod reporting image digests changed (it is in the cache already).
    Pod {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
    /// The Pod cache of a namespace (or of all, `None`) was (re)filled.
    PodsListed(Option<String>),
}

type Changes = Pin<Box<dyn Stream<Item = Result<Change, watcher::Error>> + Send>>;

fn stream<K>(api: Api<K>, config: &watcher::Config, scope: Scope, wrap: fn(K) -> Object) -> Changes
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    Box::pin(
        watcher::watcher(api, config.clone())
            .default_backoff()
            .map(move |event| {
                event.map(|event| match event {
                    Event::Apply(o) => Change::Apply(wrap(o)),
                    Event::Delete(o) => Change::Deleted(wrap(o).key()),
                    Event::Init => Change::Relisting(scope.clone()),
                    Event::InitApply(o) => Change::Listed(scope.clone(), wrap(o)),
                    Event::InitDone => Change::Relisted(scope.clone()),
                })
            }),
    )
}

/// What of a Pod the digest lookup reads: labels, and per container its name, image and
/// `imageID`. The rest is dropped before it reaches the cache (kube-rs' "reduce memory"
/// pattern), so caching every Pod of a namespace stays small.
fn strip_pod(pod: &mut Pod) {
    let containers = |list: &[Container]| -> Vec<Container> {
        list.iter()
            .map(|c| Container {
                name: c.name.clone(),
                image: c.image.clone(),
                ..Container::default()
            })
            .collect()
    };
    let statuses = |list: &[ContainerStatus]| -> Vec<ContainerStatus> {
        list.iter()
            .map(|s| ContainerStatus {
                name: s.name.clone(),
                image: s.image.clone(),
                image_id: s.image_id.clone(),
                ..ContainerStatus::default()
            })
            .collect()
    };
    pod.metadata = ObjectMeta {
        name: pod.metadata.name.take(),
        namespace: pod.metadata.namespace.take(),
        labels: pod.metadata.labels.take(),
        resource_version: pod.metadata.resource_version.take(),
        uid: pod.metadata.uid.take(),
        ..ObjectMeta::default()
    };
    pod.spec = pod.spec.as_ref().map(|s| PodSpec {
        containers: containers(&s.containers),
        init_containers: s.init_containers.as_deref().map(containers),
        ..PodSpec::default()
    });
    pod.status = pod.status.as_ref().map(|s| PodStatus {
        container_statuses: s.container_statuses.as_deref().map(statuses),
        init_container_statuses: s.init_container_statuses.as_deref().map(statuses),
        ..PodStatus::default()
    });
}

fn reports_digests(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .any(|c| !c.image_id.is_empty())
    })
}

/// A reflector of the Pods in `api`'s scope, and its changes that matter to digests.
fn pod_stream(api: Api<Pod>, namespace: Option<String>) -> (Store<Pod>, Changes) {
    let (reader, writer) = reflector::store();
    let changes = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_pod)
        .reflect(writer)
        .filter_map(move |event| {
            let namespace = namespace.clone();
            async move {
                match event {
                    Ok(Event::Apply(pod)) if reports_digests(&pod) => Some(Ok(Change::Pod {
                        namespace: pod.metadata.namespace.unwrap_or_default(),
                        labels: pod.metadata.labels.unwrap_or_default(),
                    })),
                    Ok(Event::InitDone) => Some(Ok(Change::PodsListed(namespace))),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            }
        });
    (reader, Box::pin(changes))
}

/// Called after every write of a rollout.
pub type OnRecorded = Box<dyn Fn(&Deployment, RecordKind) + Send + Sync>;

/// A new rollout of a workload that opts in to canary analysis (its annotations start with
/// [`crate::observe::CANARY_ANNOTATION_PREFIX`]), as the watcher first recorded it.
#[derive(Debug, Clone)]
pub struct RolloutStarted {
    /// The rollout as recorded.
    pub deployment: Deployment,
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: &'static str,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name.
    pub name: String,
    /// The workload object's uid (what its ReplicaSets name as their owner).
    pub object_uid: String,
    /// The controller's revision of the rollout (`deployment.kubernetes.io/revision`), when set.
    pub revision: Option<String>,
    /// The selector of its Pods, as a label-selector string.
    pub selector: Option<String>,
    /// The workload's canary annotations, by their full names.
    pub annotations: BTreeMap<String, String>,
}

/// Called once for every new rollout of a workload that opts in to canary analysis.
pub type OnRollout = Box<dyn Fn(RolloutStarted) + Send + Sync>;

/// Called after every write of a change that is not a rollout (a ConfigMap, Secret or HPA edit).
pub type OnChange = Box<dyn Fn(&deploygraph_model::Change, RecordKind) + Send + Sync>;

/// A watched workload as the ConfigMaps, Secrets and HPAs see it: its service and what its pod
/// template references.
#[derive(Debug, Clone, PartialEq)]
struct Usage {
    service: deploygraph_model::ServiceName,
    refs: References,
}

/// A rollout whose Pods have not reported every digest yet: where to look for them.
#[derive(Debug, Clone)]
struct Awaiting {
    template_hash: String,
    selector: String,
    images: Vec<ContainerImage>,
}

/// Work set aside while the store was unavailable.
#[derive(Debug, Clone)]
enum Work {
    /// Handle this version of the workload again.
    Object(Object),
    /// Record the digests its Pods report.
    Digests,
}

/// How one piece of work went.
enum Handled {
    /// Done, or skipped for good.
    Done,
    /// The store stayed unavailable: set it aside.
    Unavailable,
    /// The watcher is stopping.
    Stopped,
}

/// Records rollouts of the workloads it is fed.
pub struct WorkloadWatcher {
    client: kube::Client,
    store: Arc<dyn RecordSink>,
    config: WatchConfig,
    retry: RetryPolicy,
    outage: Outage,
    known: HashMap<Key, Known>,
    awaiting: HashMap<Key, Awaiting>,
    requeue: Requeue<Key, Work>,
    relisting: HashMap<Scope, HashSet<Key>>,
    pods: Vec<Store<Pod>>,
    /// Every watched workload's service and references.
    users: HashMap<Key, Usage>,
    /// The referenced ConfigMaps and Secrets and every HPA, as last seen (or recorded).
    configs: HashMap<Key, Snapshot>,
    /// Workload scopes whose first list is not complete yet: the ConfigMaps, Secrets and HPAs
    /// are listed after them, so their first list finds every reference known.
    unlisted: HashSet<Scope>,
    /// The ConfigMap, Secret and HPA streams have started.
    configs_started: bool,
    progress: Progress,
    on_recorded: Option<OnRecorded>,
    on_change: Option<OnChange>,
    on_skipped: Option<OnSkipped>,
    on_rollout: Option<OnRollout>,
}

impl WorkloadWatcher {
    /// A watcher recording into `store`.
    pub fn new(client: kube::Client, store: Arc<dyn GraphStore>, config: WatchConfig) -> Self {
        Self::with_sink(client, Arc::new(StoreSink(store)), config)
    }

    /// A watcher recording into `sink` (the agent's spool).
    pub fn with_sink(
        client: kube::Client,
        store: Arc<dyn RecordSink>,
        config: WatchConfig,
    ) -> Self {
        Self {
            client,
            store,
            config,
            retry: RetryPolicy::default(),
            outage: Outage::default(),
            known: HashMap::new(),
            awaiting: HashMap::new(),
            requeue: Requeue::new(),
            relisting: HashMap::new(),
            pods: Vec::new(),
            users: HashMap::new(),
            configs: HashMap::new(),
            unlisted: HashSet::new(),
            configs_started: false,
            progress: Progress::default(),
            on_recorded: None,
            on_change: None,
            on_skipped: None,
            on_rollout: None,
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

    /// Calls `f` once for each new rollout (recorded as created, or queued for the store under
    /// a new uid) of a workload with canary annotations, after it is stored or queued.
    #[must_use]
    pub fn on_rollout(mut self, f: impl Fn(RolloutStarted) + Send + Sync + 'static) -> Self {
        self.on_rollout = Some(Box::new(f));
        self
    }

    /// Calls `f` after every successful write of a ConfigMap, Secret or HPA edit (metrics).
    #[must_use]
    pub fn on_change(
        mut self,
        f: impl Fn(&deploygraph_model::Change, RecordKind) + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Box::new(f));
        self
    }

    /// Calls `f` for every workload skipped for good or set aside (metrics).
    #[must_use]
    pub fn on_skipped(mut self, f: impl Fn(&str, SkipReason) + Send + Sync + 'static) -> Self {
        self.on_skipped = Some(Box::new(f));
        self
    }

    /// Retries store calls by `policy` instead of [`RetryPolicy::default`].
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How much the watcher holds, readable while it runs.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// The namespaces to watch, `None` for all.
    fn scopes(&self) -> Vec<Option<String>> {
        if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config.namespaces.iter().cloned().map(Some).collect()
        }
    }

    fn streams(&mut self) -> Vec<Changes> {
        let mut config = watcher::Config::default();
        if let Some(selector) = &self.config.label_selector {
            config = config.labels(selector);
        }
        let client = self.client.clone();
        let mut streams = Vec::new();
        for ns in self.scopes() {
            fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
            where
                K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
                K::DynamicType: Default,
            {
                match ns {
                    Some(ns) => Api::namespaced(client.clone(), ns),
                    None => Api::all(client.clone()),
                }
            }
            let n = ns.as_deref();
            for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
                self.unlisted.insert((kind, ns.clone()));
            }
            streams.push(stream(
                api::<K8sDeployment>(&client, n),
                &config,
                ("Deployment", ns.clone()),
                |o| Object::Deployment(Box::new(o)),
            ));
            streams.push(stream(
                api::<StatefulSet>(&client, n),
                &config,
                ("StatefulSet", ns.clone()),
                |o| Object::StatefulSet(Box::new(o)),
            ));
            streams.push(stream(
                api::<DaemonSet>(&client, n),
                &config,
                ("DaemonSet", ns.clone()),
                |o| Object::DaemonSet(Box::new(o)),
            ));
            // Pods are cached per namespace and not by the workload selector: a Pod carries
            // its template's labels, which need not include the workload's own.
            let (cache, changes) = pod_stream(api::<Pod>(&client, n), ns.clone());
            self.pods.push(cache);
            streams.push(changes);
        }
        streams
    }

    /// Watches until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut changes = futures::stream::select_all(self.streams());
        let mut config_streams = Some(self.config_streams());
        tracing::info!(namespaces = ?self.config.namespaces, "watching workloads");
        enum Next {
            Stop,
            Due,
            Change(Option<Result<Change, watcher::Error>>),
        }
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => Next::Stop,
                () = self.requeue.next_due() => Next::Due,
                next = changes.next() => Next::Change(next),
            };
            let running = match next {
                Next::Stop | Next::Change(None) => false,
                Next::Due => match self.requeue.due(tokio::time::Instant::now()) {
                    Some((key, work)) => self.work(key, work, &stop).await,
                    None => true,
                },
                Next::Change(Some(Ok(change))) => self.apply(change, &stop).await,
                Next::Change(Some(Err(e))) => {
                    tracing::warn!(error.message = %e, "workload watch failed; retrying");
                    true
                }
            };
            self.progress.set(self.known.len(), self.requeue.len());
            self.progress.set_configs(self.configs.len());
            if !running {
                break;
            }
            if self.unlisted.is_empty()
                && let Some(streams) = config_streams.take()
            {
                tracing::info!(
                    "workloads listed; watching the ConfigMaps, Secrets and HPAs they use"
                );
                self.configs_started = true;
                streams.into_iter().for_each(|s| changes.push(s));
            }
        }
        tracing::info!("stopped watching workloads");
    }

    /// Applies one change; `false` when stopping.
    async fn apply(&mut self, change: Change, stop: &CancellationToken) -> bool {
        match change {
            Change::Apply(object) => {
                self.track_usage(&object, stop).await;
                self.work(object.key(), Work::Object(object), stop).await
            }
            Change::Listed(scope, object) => {
                let key = object.key();
                if let Some(seen) = self.relisting.get_mut(&scope) {
                    seen.insert(key.clone());
                }
                self.track_usage(&object, stop).await;
                self.work(key, Work::Object(object), stop).await
            }
            Change::Deleted(key) => {
                tracing::debug!(workload = %describe(&key), "workload deleted; forgotten");
                self.forget(|k| *k == key);
                true
            }
            Change::Relisting(scope) => {
                self.relisting.insert(scope, HashSet::new());
                true
            }
            Change::Relisted(scope) => {
                // Deleted while the watch was down: gone from the list, so from memory.
                if let Some(seen) = self.relisting.remove(&scope) {
                    self.forget(|k| in_scope(k, &scope) && !seen.contains(k));
                }
                self.unlisted.remove(&scope);
                true
            }
            Change::Pod { namespace, labels } => {
                let keys: Vec<Key> = self
                    .awaiting
                    .iter()
                    .filter(|(k, a)| k.1 == namespace && selector_matches(&a.selector, &labels))
                    .map(|(k, _)| k.clone())
                    .collect();
                self.digests_of(keys, stop).await
            }
            Change::PodsListed(namespace) => {
                let keys: Vec<Key> = self
                    .awaiting
                    .keys()
                    .filter(|k| namespace.as_ref().is_none_or(|ns| *ns == k.1))
                    .cloned()
                    .collect();
                self.digests_of(keys, stop).await
            }
        }
    }

    async fn digests_of(&mut self, keys: Vec<Key>, stop: &CancellationToken) -> bool {
        for key in keys {
            if !self.work(key, Work::Digests, stop).await {
                return false;
            }
        }
        true
    }

    fn forget(&mut self, gone: impl Fn(&Key) -> bool) {
        self.known.retain(|k, _| !gone(k));
        self.awaiting.retain(|k, _| !gone(k));
        self.requeue.retain(|k| !gone(k));
        let users = self.users.len();
        self.users.retain(|k, _| !gone(k));
        self.configs.retain(|k, _| !gone(k));
        if self.users.len() != users {
            self.prune_configs();
        }
    }

    /// Does `work` for `key` and books how it went; `false` when stopping.
    async fn work(&mut self, key: Key, work: Work, stop: &CancellationToken) -> bool {
        let handled = match &work {
            Work::Object(Object::Config(snapshot)) => self.handle_config(snapshot, stop).await,
            Work::Object(object) => self.handle(object, stop).await,
            Work::Digests => self.record_digests(&key, stop).await,
        };
        match handled {
            Handled::Done => {
                // Digests recorded leave a workload's own version set aside in place: handling
                // it later looks for digests as well.
                if matches!(work, Work::Object(_)) || self.requeue_holds_digests(&key) {
                    self.requeue.remove(&key);
                }
                true
            }
            Handled::Unavailable => {
                // A version of the workload set aside covers its digests too: keep it.
                let holds_object = matches!(self.requeue.get(&key), Some(Work::Object(_)));
                if matches!(work, Work::Object(_)) || !holds_object {
                    self.requeue.push(key, work, &self.retry);
                }
                true
            }
            Handled::Stopped => false,
        }
    }

    fn requeue_holds_digests(&self, key: &Key) -> bool {
        matches!(self.requeue.get(key), Some(Work::Digests))
    }

    fn skipped(&self, object: &str, reason: SkipReason) {
        if let Some(f) = &self.on_skipped {
            f(object, reason);
        }
    }

    /// What a store call that gave up means for the workload.
    fn failed(&self, key: &Key, what: &str, failure: Failure) -> Handled {
        let workload = describe(key);
        match failure {
            Failure::Stopped => Handled::Stopped,
            Failure::Rejected(e) => {
                tracing::error!(workload = %workload, error.message = %e, error.cause_chain = ?e, "the store refused to {what}; skipping the workload until it changes");
                self.skipped(&workload, SkipReason::StoreRejected);
                Handled::Done
            }
            Failure::Unavailable(e) => {
                tracing::warn!(workload = %workload, error.message = %e, "cannot {what}: the store is still unavailable; the workload is set aside and tried again later");
                self.skipped(&workload, SkipReason::StoreUnavailable);
                Handled::Unavailable
            }
        }
    }

    /// The cached Pods of `namespace` that `selector` selects.
    fn cached_pods(&self, namespace: &str, selector: &str) -> Vec<Arc<Pod>> {
        self.pods
            .iter()
            .flat_map(|cache| {
                cache.state_filter(|p| {
                    p.metadata.namespace.as_deref() == Some(namespace)
                        && p.metadata
                            .labels
                            .as_ref()
                            .is_some_and(|l| selector_matches(selector, l))
                })
            })
            .collect()
    }

    async fn handle(&mut self, object: &Object, stop: &CancellationToken) -> Handled {
        let mut o = match object.observe() {
            Ok(o) => o,
            Err(Skip(reason)) => {
                tracing::debug!(reason, "workload skipped");
                return Handled::Done;
            }
        };
        if self.config.skip_helm_managed
            && let Some(release) = &o.helm_release
        {
            tracing::debug!(workload = %o.name, release, "left to the Helm watcher");
            return Handled::Done;
        }
        let key = object.key();
        if !self.known.contains_key(&key) {
            match self.history(&o, stop).await {
                Ok(Some(known)) => {
                    self.known.insert(key.clone(), known);
                }
                Ok(None) => {}
                Err(failure) => return self.failed(&key, "read a workload's rollouts", failure),
            }
        }
        // A new template's Pods are only starting: its rollout is recorded at once, and the
        // digests their kubelets resolve are looked up on the rollout's later events.
        let same_rollout = self.known.get(&key).is_some_and(|k| {
            k.last
                .workload
                .as_ref()
                .is_some_and(|w| w.template_hash == o.template_hash)
                && awaits_digests(&k.last)
        });
        if same_rollout
            && o.images.iter().any(|i| i.image.digest.is_none())
            && let Some(selector) = &o.selector
        {
            resolve_digests(&mut o.images, &self.cached_pods(&o.namespace, selector));
        }
        let awaiting = o.selector.clone().map(|selector| Awaiting {
            template_hash: o.template_hash.clone(),
            selector,
            images: o.images.clone(),
        });
        let known = self.known.get(&key);
        let Some(deployment) = decide(
            known,
            &o,
            &self.config.environment,
            &self.config.cluster,
            Utc::now(),
        ) else {
            self.track_digests(&key, awaiting);
            return Handled::Done;
        };
        let started = (!o.canary.is_empty() && self.on_rollout.is_some()).then(|| RolloutStarted {
            deployment: deployment.clone(),
            kind: o.kind,
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            object_uid: o.object_uid.clone(),
            revision: o.revision.clone(),
            selector: o.selector.clone(),
            annotations: std::mem::take(&mut o.canary),
        });
        self.write(key, deployment, o.replicas, awaiting, started, stop)
            .await
    }

    /// Records the digests the cached Pods report for `key`'s current rollout.
    async fn record_digests(&mut self, key: &Key, stop: &CancellationToken) -> Handled {
        let (Some(known), Some(awaiting)) = (self.known.get(key), self.awaiting.get(key)) else {
            return Handled::Done;
        };
        let mut images = awaiting.images.clone();
        resolve_digests(&mut images, &self.cached_pods(&key.1, &awaiting.selector));
        let seen: Vec<Image> = images.iter().map(|i| i.image.clone()).collect();
        let mut next = known.last.clone();
        fill_digests(&mut next, &seen);
        if next == known.last {
            return Handled::Done;
        }
        let (replicas, awaiting) = (known.replicas, Some(awaiting.clone()));
        self.write(key.clone(), next, replicas, awaiting, None, stop)
            .await
    }

    /// Keeps `awaiting` while `key`'s last rollout is its rollout and lacks digests.
    fn track_digests(&mut self, key: &Key, awaiting: Option<Awaiting>) {
        let last = self.known.get(key).map(|k| &k.last);
        match awaiting {
            Some(a)
                if last.is_some_and(|d| {
                    awaits_digests(d)
                        && d.workload
                            .as_ref()
                            .is_some_and(|w| w.template_hash == a.template_hash)
                }) =>
            {
                self.awaiting.insert(key.clone(), a);
            }
            _ => {
                self.awaiting.remove(key);
            }
        }
    }

    /// Writes a rollout of `key` and remembers it; a new one is announced as `started`.
    async fn write(
        &mut self,
        key: Key,
        deployment: Deployment,
        replicas: Option<i32>,
        awaiting: Option<Awaiting>,
        started: Option<RolloutStarted>,
        stop: &CancellationToken,
    ) -> Handled {
        let recorded = bounded(stop, &self.retry, &self.outage, "record a rollout", || {
            self.store.record_deployments(vec![deployment.clone()])
        })
        .await;
        let kind = match recorded {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(outcome) => {
                    if outcome.kind == RecordKind::Conflict {
                        tracing::warn!(deployment.uid = %deployment.uid, reason = ?outcome.conflict, "rollout conflicts with what is recorded");
                    }
                    outcome.kind
                }
                None => return Handled::Done,
            },
            Err(failure) => {
                tracing::debug!(deployment.uid = %deployment.uid, "rollout not recorded");
                return self.failed(&key, "record a rollout", failure);
            }
        };
        tracing::info!(
            deployment.uid = %deployment.uid,
            workload = %describe(&key),
            status = deployment.status.as_str(),
            changes = deployment.changes.len(),
            outcome = ?kind,
            "recorded rollout"
        );
        if let Some(f) = &self.on_recorded {
            f(&deployment, kind);
        }
        // A new rollout: created in the store, or queued for it (an agent's spool) under a
        // uid this watcher has not seen for the workload (an update of the same rollout is
        // queued too, and must not start its analysis again).
        let new = match kind {
            RecordKind::Created => true,
            RecordKind::Queued => self
                .known
                .get(&key)
                .is_none_or(|k| k.last.uid != deployment.uid),
            _ => false,
        };
        if new && let (Some(f), Some(started)) = (&self.on_rollout, started) {
            f(started);
        }
        match self.known.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let k = e.get_mut();
                if k.last.uid != deployment.uid {
                    if let Some(w) = &k.last.workload {
                        k.earlier.insert(0, w.template_hash.clone());
                    }
                    k.replicas = replicas;
                }
                k.last = deployment;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Known {
                    replicas,
                    earlier: Vec::new(),
                    last: deployment,
                });
            }
        }
        self.track_digests(&key, awaiting);
        Handled::Done
    }

    /// The workload's recorded rollouts, newest first, as what the watcher knows.
    async fn history(
        &self,
        o: &Observation,
        stop: &CancellationToken,
    ) -> Result<Option<Known>, Failure> {
        let filter = DeploymentFilter {
            service: Some(o.service.clone()),
            environment: Some(self.config.environment.clone()),
            cluster: Some(self.config.cluster.clone()),
            limit: 100,
            ..DeploymentFilter::default()
        };
        let page = bounded(
            stop,
            &self.retry,
            &self.outage,
            "read a workload's rollouts",
            || self.store.list_deployments(&filter),
        )
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
        Ok(Known::from_history(&history))
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
