//! The ingest pipeline's second half: the follow-ups every ingest leaves in the store
//! ([`deploygraph_store::follow_up`]), done the same way whatever the source of the facts.
//!
//! - a new alert is attributed, and the alerts of its storm attributed before it was recorded
//!   are re-attributed (it is evidence about their suspects: a [revisit](FollowUpKind::Revisit),
//!   coalesced while pending, so each is redone a bounded number of times however many
//!   notifications the storm arrives in);
//! - a new or changed deployment gets an infrastructure snapshot (when a snapshotter is
//!   configured and the deployment was recorded moments ago) and the alerts in the window after
//!   it, on its service and on the services that depend on it, are re-attributed; so are they
//!   after a new canary verdict about it (the store enqueues the deployment's follow-up);
//! - after a new change that is not a rollout, the alerts in the window after it, on its
//!   services and on the services that depend on them, are re-attributed;
//! - an alert whose attribution could not read its metric onset or its services' health yet is
//!   revisited later by itself: a revisit deferred in the store ([`read_again_at`]).
//!
//! Work is bounded: one claimer fills a bounded queue from the store and a fixed number of
//! workers drain it. When the queue is full, follow-ups stay pending in the store and are
//! claimed when capacity returns; a follow-up whose worker died is claimable again when its
//! lease ends, after a restart too. No follow-up depends on the client that sent the facts
//! staying connected.

use crate::attribution::Settings;
use crate::engine;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deploygraph_model::Uid;
use deploygraph_store::{Claim, FollowUp, FollowUpKind, FollowUpStats, GraphStore};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Notify, mpsc};

/// How the pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineConfig {
    /// Workers doing follow-ups at once.
    pub workers: usize,
    /// Follow-ups claimed and waiting for a worker at most.
    pub queue: usize,
    /// How long a claim holds: a follow-up not finished by then is claimed again.
    pub lease: Duration,
    /// How often the store is polled for follow-ups written by other processes (or whose lease
    /// ended) when nothing wakes the pipeline sooner.
    pub poll: Duration,
    /// A deployment's infrastructure snapshot is taken only this soon after it was recorded: a
    /// later one would describe the infrastructure of another moment.
    pub snapshot_max_age: Duration,
    /// A follow-up failing for another reason than an unavailable store is given up after this
    /// many attempts (logged and counted as `abandoned`).
    pub max_attempts: u32,
    /// Attribution's window, floor and depth.
    pub attribution: Settings,
    /// What an alert's attribution could not read yet (its metric shows no break yet in the
    /// minutes after the alert, a rule without `for:` firing as its metric moves; Prometheus did
    /// not answer) is read again by a revisit deferred by this long at first, then by half the
    /// alert's age ([`read_again_at`]) …
    pub read_again: Duration,
    /// … until the alert is this old: then what was read stands.
    pub read_again_until: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            queue: 256,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(2),
            snapshot_max_age: Duration::from_secs(600),
            max_attempts: 5,
            attribution: Settings::default(),
            read_again: Duration::from_secs(60),
            read_again_until: Duration::from_secs(15 * 60),
        }
    }
}

/// Takes the infrastructure snapshot of a newly recorded deployment.
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// Runs the configured checks and records the snapshot `TAKEN_FOR` the deployment.
    ///
    /// # Errors
    /// Why no snapshot was recorded.
    async fn take_for(&self, deployment: &Uid) -> Result<(), String>;
}

/// Reads what an alert's metric did before it ([`deploygraph_model::MetricOnset`]), from
/// where its metrics are (Prometheus).
#[async_trait]
pub trait Onsets: Send + Sync {
    /// The onset of `alert`'s metric over `window` before it; `None` when it cannot be read
    /// now (the metrics source did not answer, the metric shows no break yet): it is asked
    /// again when the alert is next attributed, by a revisit deferred for it at the latest
    /// ([`PipelineConfig::read_again`]).
    async fn onset(
        &self,
        alert: &deploygraph_model::Alert,
        window: chrono::Duration,
    ) -> Option<deploygraph_model::MetricOnset>;

    /// Whether it reads the health metrics of the services around an alert
    /// ([`Onsets::services`]): a service health query is configured.
    fn reads_services(&self) -> bool {
        false
    }

    /// What the health metric of each of `services` did over `window` before `alert`, keyed by
    /// [`deploygraph_model::ServiceRef::shown`] (its name, with its cluster unless the default
    /// one); `None` when they cannot be read now (asked again as [`Onsets::onset`] is).
    async fn services(
        &self,
        _alert: &deploygraph_model::Alert,
        _services: &[deploygraph_model::ServiceRef],
        _window: chrono::Duration,
    ) -> Option<std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>> {
        None
    }
}

/// How many services' health metrics are read for one alert: its own and its nearest
/// dependencies (by hops), as the attribution depth reaches them.
pub const SERVICE_METRICS_LIMIT: usize = 16;

/// How one follow-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done and removed from the store.
    Done,
    /// Its alert, deployment or change is not in the store (removed): nothing to do.
    Missing,
    /// Failed; claimed again when its lease ends.
    Failed,
    /// Failed too often for a reason retrying will not cure: logged and removed.
    Abandoned,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Self; 4] = [Self::Done, Self::Missing, Self::Failed, Self::Abandoned];

    /// The metric name (`done`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Missing => "missing",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }
}

/// Where the pipeline reports what it does (the Prometheus metrics of `serve`).
pub trait Observer: Send + Sync {
    /// Follow-ups this process claimed: waiting for a worker (at most the queue's size) or
    /// being done (at most one per worker).
    fn queue_depth(&self, depth: usize);
    /// Pending follow-ups in the store, and when the oldest was enqueued.
    fn pending(&self, stats: &FollowUpStats);
    /// A follow-up ended.
    fn finished(&self, follow_up: &FollowUp, outcome: Outcome);
}

struct NoObserver;

impl Observer for NoObserver {
    fn queue_depth(&self, _: usize) {}
    fn pending(&self, _: &FollowUpStats) {}
    fn finished(&self, _: &FollowUp, _: Outcome) {}
}

/// The follow-up pipeline. Cheap to clone; every clone is the same pipeline.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn GraphStore>,
    config: PipelineConfig,
    snapshots: Option<Arc<dyn Snapshots>>,
    onsets: Option<Arc<dyn Onsets>>,
    observer: Arc<dyn Observer>,
    wake: Notify,
    /// Claimed and not yet finished.
    depth: AtomicUsize,
    /// The claimer stopped because the queue was full: a worker wakes it when room returns.
    full: AtomicBool,
}

/// Builds a [`Pipeline`].
pub struct PipelineBuilder {
    store: Arc<dyn GraphStore>,
    config: PipelineConfig,
    snapshots: Option<Arc<dyn Snapshots>>,
    onsets: Option<Arc<dyn Onsets>>,
    observer: Option<Arc<dyn Observer>>,
}

impl PipelineBuilder {
    /// Takes an infrastructure snapshot for each newly recorded deployment.
    #[must_use]
    pub fn snapshots(mut self, snapshots: Arc<dyn Snapshots>) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// Reads each alert's metric onset before attributing it.
    #[must_use]
    pub fn onsets(mut self, onsets: Arc<dyn Onsets>) -> Self {
        self.onsets = Some(onsets);
        self
    }

    /// Reports queue depth, pending follow-ups and outcomes to `observer`.
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The pipeline.
    pub fn build(self) -> Pipeline {
        Pipeline {
            inner: Arc::new(Inner {
                store: self.store,
                config: self.config,
                snapshots: self.snapshots,
                onsets: self.onsets,
                observer: self.observer.unwrap_or_else(|| Arc::new(NoObserver)),
                wake: Notify::new(),
                depth: AtomicUsize::new(0),
                full: AtomicBool::new(false),
            }),
        }
    }
}

/// What [`Pipeline::drain`] left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Follow-ups this call did.
    pub done: usize,
    /// Follow-ups about the subjects still pending when the deadline passed (0: all done).
    pub pending: u64,
}

impl Pipeline {
    /// A pipeline over `store`; it does nothing until [`Pipeline::run`] or [`Pipeline::drain`].
    pub fn new(store: Arc<dyn GraphStore>, config: PipelineConfig) -> Self {
        Self::builder(store, config).build()
    }

    /// A pipeline with a snapshotter or an observer.
    pub fn builder(store: Arc<dyn GraphStore>, config: PipelineConfig) -> PipelineBuilder {
        PipelineBuilder {
            store,
            config,
            snapshots: None,
            onsets: None,
            observer: None,
        }
    }

    /// The pipeline's configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// Tells the pipeline new follow-ups were written (it polls the store too, for writes of
    /// other processes).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs the claimer and the workers until `shutdown` resolves; follow-ups being done then
    /// are finished (the rest stay pending in the store for the next start).
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) {
        let config = self.inner.config;
        let (tx, rx) = mpsc::channel::<FollowUp>(config.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..config.workers.max(1) {
            let pipeline = self.clone();
            let rx = Arc::clone(&rx);
            workers.spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(follow_up) = next else { return };
                    pipeline.process(&follow_up).await;
                    pipeline.finished_one();
                }
            });
        }
        tracing::info!(
            workers = config.workers,
            queue = config.queue,
            "follow-up pipeline started"
        );
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_stats: Option<tokio::time::Instant> = None;
        loop {
            // One claim at a time, never cut half-way (what is claimed is queued); between
            // claims a stop is noticed at once.
            if self.fill_once(&tx).await {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = std::future::ready(()) => continue,
                }
            }
            if last_stats.is_none_or(|at| at.elapsed() >= config.poll) {
                self.report_pending().await;
                last_stats = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(config.poll) => {}
            }
        }
        // No more claims; the workers finish what is queued, then stop.
        drop(tx);
        while workers.join_next().await.is_some() {}
        tracing::info!("follow-up pipeline stopped");
    }

    /// Claims one batch of follow-ups into the queue's room; `true` when the batch was full
    /// (the store may have more).
    async fn fill_once(&self, tx: &mpsc::Sender<FollowUp>) -> bool {
        let room = tx.capacity();
        if room == 0 {
            self.inner.full.store(true, Ordering::SeqCst);
            return false;
        }
        let limit = room.min(64);
        let claimed = match self
            .inner
            .store
            .claim_follow_ups(Claim {
                subjects: None,
                limit,
                now: Utc::now(),
                lease: lease(&self.inner.config),
            })
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error.message = %e, "claiming follow-ups failed; trying again at the next poll");
                return false;
            }
        };
        let got = claimed.len();
        for follow_up in claimed {
            let depth = self.inner.depth.fetch_add(1, Ordering::SeqCst) + 1;
            self.inner.observer.queue_depth(depth);
            // The room was counted before the claim and only this task sends: no wait.
            if tx.send(follow_up).await.is_err() {
                return false;
            }
        }
        got == limit
    }

    fn finished_one(&self) {
        let depth = self
            .inner
            .depth
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        self.inner.observer.queue_depth(depth);
        if depth <= self.inner.config.queue / 2 && self.inner.full.swap(false, Ordering::SeqCst) {
            self.wake();
        }
    }

    async fn report_pending(&self) {
        match self.inner.store.follow_up_stats(None).await {
            Ok(stats) => self.inner.observer.pending(&stats),
            Err(e) => tracing::debug!(error.message = %e, "counting pending follow-ups failed"),
        }
    }

    /// Does the follow-ups about `subjects` now, in the caller's task, until none is pending or
    /// `deadline` passes: the CLI's in-process mode runs this before it exits, and tests use it
    /// to wait for an ingest's follow-ups. Follow-ups another worker holds are waited for.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn drain(
        &self,
        subjects: &[Uid],
        deadline: Duration,
    ) -> deploygraph_store::Result<Drained> {
        let until = tokio::time::Instant::now() + deadline;
        let mut done = 0;
        // The revisits the follow-ups ask for are done too: the subjects grow with them.
        let mut subjects: Vec<Uid> = subjects.to_vec();
        loop {
            let claimed = if subjects.is_empty() {
                Vec::new()
            } else {
                self.inner
                    .store
                    .claim_follow_ups(Claim {
                        subjects: Some(&subjects),
                        limit: 64,
                        now: Utc::now(),
                        lease: lease(&self.inner.config),
                    })
                    .await?
            };
            for follow_up in &claimed {
                let (_, revisits) = self.process_one(follow_up).await;
                for alert in revisits {
                    if !subjects.contains(&alert) {
                        subjects.push(alert);
                    }
                }
                done += 1;
            }
            if !claimed.is_empty() {
                continue;
            }
            let pending = if subjects.is_empty() {
                0
            } else {
                self.inner
                    .store
                    .follow_up_stats(Some(&subjects))
                    .await?
                    .total()
            };
            if pending == 0 || tokio::time::Instant::now() >= until {
                return Ok(Drained { done, pending });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Does one claimed follow-up and records how it ended.
    pub async fn process(&self, follow_up: &FollowUp) -> Outcome {
        self.process_one(follow_up).await.0
    }

    /// [`Self::process`], with the alerts whose revisit it enqueued.
    async fn process_one(&self, follow_up: &FollowUp) -> (Outcome, Vec<Uid>) {
        let inner = &self.inner;
        let mut revisits = Vec::new();
        // When the alert's attribution is to be done again, to read what it could not yet.
        let mut read_again: Option<DateTime<Utc>> = None;
        // Whether the subject is stored, keeping the alerts a revisit was enqueued for.
        let mut stored = |enqueued: Option<Vec<Uid>>| {
            let found = enqueued.is_some();
            revisits = enqueued.unwrap_or_default();
            found
        };
        let mut attributed = |done: Option<Attributed>| {
            stored(done.map(|d| {
                read_again = d.read_again;
                d.revisits
            }))
        };
        let result = match follow_up.kind {
            FollowUpKind::Alert => self
                .attribute_new(&follow_up.subject, follow_up.enqueued_at)
                .await
                .map(&mut attributed),
            FollowUpKind::Revisit => self
                .attribute(&follow_up.subject)
                .await
                .map(&mut attributed),
            FollowUpKind::Deployment => self
                .after_deployment(&follow_up.subject, follow_up.enqueued_at)
                .await
                .map(&mut stored),
            FollowUpKind::Change => self.after_change(&follow_up.subject).await.map(&mut stored),
        };
        let outcome = match result {
            Ok(true) => Outcome::Done,
            Ok(false) => Outcome::Missing,
            Err(e) if !e.is_unavailable() && follow_up.attempts >= inner.config.max_attempts => {
                tracing::error!(follow_up.kind = follow_up.kind.as_str(), follow_up.subject = %follow_up.subject, attempts = follow_up.attempts, error.message = %e, error.cause_chain = ?e, "follow-up abandoned");
                Outcome::Abandoned
            }
            Err(e) => {
                tracing::warn!(follow_up.kind = follow_up.kind.as_str(), follow_up.subject = %follow_up.subject, attempts = follow_up.attempts, error.message = %e, "follow-up failed; it is retried when its lease ends");
                Outcome::Failed
            }
        };
        if outcome != Outcome::Failed {
            let deferred_this = follow_up.kind == FollowUpKind::Revisit && read_again.is_some();
            if !deferred_this
                && let Err(e) = inner
                    .store
                    .finish_follow_up(follow_up.kind, &follow_up.subject, follow_up.enqueued_at)
                    .await
            {
                // Done but not removed: done again when its lease ends (both follow-ups are
                // idempotent).
                tracing::warn!(follow_up.subject = %follow_up.subject, error.message = %e, "finishing a follow-up failed");
            }
            if let Some(until) = read_again {
                // A revisit finishes by being deferred; a first attribution leaves one behind.
                let claimed = deferred_this.then_some(follow_up.enqueued_at);
                match inner
                    .store
                    .defer_revisit(&follow_up.subject, claimed, until, Utc::now())
                    .await
                {
                    Ok(()) => {
                        tracing::debug!(alert.uid = %follow_up.subject, until = %until, "the alert's attribution is done again later, to read what it could not yet");
                    }
                    // Not deferred: a claimed revisit is done again when its lease ends; after
                    // a first attribution, at the alert's next revisit.
                    Err(e) => {
                        tracing::warn!(alert.uid = %follow_up.subject, error.message = %e, "deferring the alert's revisit failed");
                    }
                }
            }
        }
        if !revisits.is_empty() {
            self.wake();
        }
        inner.observer.finished(follow_up, outcome);
        (outcome, revisits)
    }

    /// Reads and records the alert's metric onset when it has none yet and an onset source is
    /// configured, and the health metrics of the services around it when the source reads them
    /// and they were not read yet. What cannot be read now is asked for again: when the alert
    /// is next attributed, at the latest at the time returned ([`read_again_at`]).
    async fn read_onset(
        &self,
        alert: &mut deploygraph_model::Alert,
    ) -> deploygraph_store::Result<Option<DateTime<Utc>>> {
        let Some(onsets) = &self.inner.onsets else {
            return Ok(None);
        };
        let mut unread = false;
        let window = self.inner.config.attribution.window;
        if alert.onset.is_none()
            && let Some(onset) = onsets.onset(alert, window).await
        {
            self.inner.store.set_alert_onset(&alert.uid, &onset).await?;
            alert.onset = Some(onset);
        }
        unread |= alert.onset.is_none();
        if onsets.reads_services() && alert.service_metrics.is_none() {
            // The alert's services and their dependencies as the attribution reaches them,
            // nearest first (one topology read per hop).
            let store = self.inner.store.as_ref();
            let around = store.alert_services(&alert.uid).await?;
            let related =
                engine::related_services(store, &around, self.inner.config.attribution.depth)
                    .await?;
            // One reading per service as reasons name it (name and cluster): two clusters'
            // `api` are two services; namespaces and environments of one name share it.
            let mut seen = BTreeSet::new();
            let mut services: Vec<_> = related
                .into_iter()
                .map(|(service, _)| service)
                .filter(|service| seen.insert(service.shown()))
                .collect();
            services.truncate(SERVICE_METRICS_LIMIT);
            // Without a known service there is nothing to read yet (asked again next time).
            if !services.is_empty() {
                match onsets.services(alert, &services, window).await {
                    Some(read) => {
                        store.set_alert_service_metrics(&alert.uid, &read).await?;
                        alert.service_metrics = Some(read);
                    }
                    None => unread = true,
                }
            }
        }
        let config = &self.inner.config;
        Ok(unread
            .then(|| {
                read_again_at(
                    alert.starts_at,
                    Utc::now(),
                    config.read_again,
                    config.read_again_until,
                )
            })
            .flatten())
    }

    /// Attributes the alert again: the later alerts whose revisit it enqueued (when what it
    /// blames changed), `None` when it is not stored.
    async fn attribute(&self, alert: &Uid) -> deploygraph_store::Result<Option<Attributed>> {
        let store = self.inner.store.as_ref();
        let Some(mut alert) = store.get_alert(alert).await? else {
            return Ok(None);
        };
        let read_again = self.read_onset(&mut alert).await?;
        let (_, later) =
            engine::reattribute_alert(store, &alert, &self.inner.config.attribution, Utc::now())
                .await?;
        Ok(Some(Attributed {
            revisits: later,
            read_again,
        }))
    }

    /// Attributes a new alert (`recorded` when its follow-up was enqueued), then enqueues the
    /// re-attribution of the alerts around it that it is evidence about and whose stored answer
    /// predates it; the alerts a revisit is pending for, `None` when the alert is not stored.
    async fn attribute_new(
        &self,
        alert: &Uid,
        recorded: DateTime<Utc>,
    ) -> deploygraph_store::Result<Option<Attributed>> {
        let store = self.inner.store.as_ref();
        let Some(mut alert) = store.get_alert(alert).await? else {
            return Ok(None);
        };
        let read_again = self.read_onset(&mut alert).await?;
        let settings = &self.inner.config.attribution;
        let engine::Stored {
            mut around, later, ..
        } = engine::attribute_new_alert(store, &alert, settings, Utc::now()).await?;
        if !around.is_empty() {
            // Answers computed after this alert was recorded saw it (a server catching up on a
            // backlog attributes each alert with the rest known); any other may have missed
            // it: one computed before, one being computed now from reads that may predate it
            // (not stored yet), one that found no suspect.
            let fresh: BTreeSet<Uid> = store
                .top_triggers(&around)
                .await?
                .into_iter()
                .filter(|t| t.computed_at >= recorded + FRESH_AFTER)
                .map(|t| t.alert_uid)
                .collect();
            around.retain(|a| !fresh.contains(a));
        }
        let mut revisits = if around.is_empty() {
            Vec::new()
        } else {
            let enqueued = store.enqueue_revisits(&around, Utc::now()).await?;
            tracing::debug!(alert.uid = %alert.uid, revisits = enqueued.len(), "re-attribution of the alerts around a new one enqueued");
            enqueued
        };
        for uid in later {
            if !revisits.contains(&uid) {
                revisits.push(uid);
            }
        }
        Ok(Some(Attributed {
            revisits,
            read_again,
        }))
    }

    /// Snapshot (new deployments recorded moments ago) and re-attribution after a deployment:
    /// the alerts a revisit is pending for, `None` when it is not stored.
    async fn after_deployment(
        &self,
        uid: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> deploygraph_store::Result<Option<Vec<Uid>>> {
        let inner = &self.inner;
        let store = inner.store.as_ref();
        let Some(stored) = store.get_deployment(uid).await? else {
            return Ok(None);
        };
        if let Some(snapshots) = &inner.snapshots {
            let age = (Utc::now() - enqueued_at).to_std().unwrap_or_default();
            if age > inner.config.snapshot_max_age {
                tracing::info!(deployment.uid = %uid, age_seconds = age.as_secs(), "no snapshot for a deployment recorded too long ago");
            } else if store.snapshot_for_deployment(uid).await?.is_none()
                && let Err(reason) = snapshots.take_for(uid).await
            {
                tracing::warn!(deployment.uid = %uid, reason = %reason, "snapshot for the deployment failed");
            }
        }
        // A gate override admitted for this workload's change is linked to the deployment
        // the change became.
        let d = &stored.deployment;
        if let (Some(workload), Some(namespace)) = (&d.workload, &d.namespace) {
            let linked = store
                .link_gate_overrides(
                    uid,
                    (&workload.kind, namespace, &workload.name),
                    &workload.template_hash,
                    d.started_at,
                )
                .await?;
            if linked > 0 {
                tracing::info!(deployment.uid = %uid, overrides = linked, "gate overrides linked to the deployment they admitted");
            }
        }
        let revisits = engine::reattribute_after_deployment(
            store,
            &stored.deployment,
            &inner.config.attribution,
            Utc::now(),
        )
        .await?;
        if !revisits.is_empty() {
            tracing::info!(deployment.uid = %uid, alerts = revisits.len(), "re-attribution of the alerts after a deployment enqueued");
        }
        Ok(Some(revisits))
    }

    /// Re-attribution after a change that is not a rollout: the alerts a revisit is pending
    /// for, `None` when it is not stored.
    async fn after_change(&self, uid: &Uid) -> deploygraph_store::Result<Option<Vec<Uid>>> {
        let store = self.inner.store.as_ref();
        let Some(change) = store.get_change(uid).await? else {
            return Ok(None);
        };
        let revisits = engine::reattribute_after_change(
            store,
            &change,
            &self.inner.config.attribution,
            Utc::now(),
        )
        .await?;
        if !revisits.is_empty() {
            tracing::info!(change.uid = %uid, alerts = revisits.len(), "re-attribution of the alerts after a change enqueued");
        }
        Ok(Some(revisits))
    }
}

/// How long after an alert's follow-up was enqueued (the last statement before its commit) an
/// attribution must have started to be known to have read it: the commit's own time (a WAL
/// fsync, a Bolt round trip), with room for a loaded machine. A neighbour attributed sooner is
/// revisited, which costs one more attribution and is never wrong.
const FRESH_AFTER: chrono::Duration = chrono::Duration::seconds(10);

/// An alert attributed by a follow-up.
struct Attributed {
    /// The alerts whose revisit it enqueued.
    revisits: Vec<Uid>,
    /// When to attribute it again, to read what could not be read yet.
    read_again: Option<DateTime<Utc>>,
}

/// When an alert that started at `start`, whose attribution could not read everything at `now`,
/// is attributed again: after `first`, or half the alert's age when longer (an onset that is not
/// there a minute after the alert may show a few minutes later; a Prometheus that is down is
/// asked less often), never later than `until` after the alert's start; `None` when the alert
/// is that old already.
#[must_use]
pub fn read_again_at(
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    first: Duration,
    until: Duration,
) -> Option<DateTime<Utc>> {
    let last = start + chrono::Duration::from_std(until).ok()?;
    if now >= last {
        return None;
    }
    let first = chrono::Duration::from_std(first).ok()?;
    let half_age = (now - start) / 2;
    Some((now + first.max(half_age)).min(last))
}

fn lease(config: &PipelineConfig) -> chrono::Duration {
    chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::seconds(60))
}
