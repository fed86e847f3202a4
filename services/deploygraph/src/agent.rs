//! `deploygraph agent`: the workload and Helm watchers (with Lease election) inside one
//! cluster, forwarding what they record to a central `deploygraph serve` over HTTPS with the
//! token, so that the cluster holds no store credentials and needs no path to the store.
//!
//! Everything a watcher records goes first into a durable spool ([`deploygraph_spool`]):
//! written and fsync'ed before the watcher is told it is recorded (`queued`), then sent in
//! order, in batches, to `POST /v1/agent/records`, and marked delivered only once the server
//! answered 200 (after its store committed). A central outage of any length up to the spool's
//! capacity loses nothing; an agent killed mid-batch sends the batch again after its restart,
//! and the server, idempotent by uid, stores it once. When the spool is full the watchers are
//! told the store is unavailable and try again later (Vector's `when_full: block`): their
//! workloads' latest rollouts are recorded once there is room, intermediate ones are not — the
//! `deploygraph_agent_spool_full` counter and an error log say so.
//!
//! A batch the server refuses as malformed (400, 413, 422) is dropped, logged with the uids it
//! held and counted (`deploygraph_agent_records_dropped`): sending it again cannot succeed,
//! and keeping it would stop every later record (Prometheus' remote write does the same). Any
//! other failure is retried with exponential backoff, honouring `Retry-After`.

use crate::cli::AgentArgs;
use crate::commands::{Failure, start_watcher, token_from};
use async_trait::async_trait;
use deploygraph_k8s::sink::RecordSink;
use deploygraph_model::{Change, Deployment};
use deploygraph_spool::{Config as SpoolConfig, Spool};
use deploygraph_store::{
    ChangeOutcome, DeploymentFilter, Page, RecordKind, RecordOutcome, StoredDeployment,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The most bytes of records in one batch (the server takes 16 MiB).
const BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long one batch may take to be answered.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a watcher's history read waits for what was spooled before it to be delivered.
const HISTORY_WAIT: Duration = Duration::from_secs(30);

/// The agent's own metrics, beside the watchers' (`deploygraph_watch_*`).
#[derive(Clone, Default)]
struct AgentMetrics {
    records: Gauge,
    bytes: Gauge,
    capacity: Gauge,
    oldest: Gauge<f64, AtomicU64>,
    full: Counter,
    forwarded: Family<KindLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    dropped: Counter,
    repaired: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

impl AgentMetrics {
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "agent_spool_records",
            "Records in the agent's spool not yet delivered to the central server",
            self.records.clone(),
        );
        registry.register(
            "agent_spool_bytes",
            "Bytes of the agent's spool segments on disk (what counts toward its capacity)",
            self.bytes.clone(),
        );
        registry.register(
            "agent_spool_capacity_bytes",
            "Most bytes the agent's spool may hold (--spool-max-bytes)",
            self.capacity.clone(),
        );
        registry.register(
            "agent_spool_oldest_age_seconds",
            "Age of the oldest record not yet delivered (0 when none)",
            self.oldest.clone(),
        );
        registry.register(
            "agent_spool_full",
            "Records refused because the spool was full (the watchers try again later)",
            self.full.clone(),
        );
        registry.register(
            "agent_forwarded",
            "Records delivered to the central server, by kind (deployment, change)",
            self.forwarded.clone(),
        );
        registry.register(
            "agent_forward_errors",
            "Failed deliveries of a batch, by reason (connect, timeout, status_503, unauthorized, ...)",
            self.errors.clone(),
        );
        registry.register(
            "agent_records_dropped",
            "Records the central server refused as malformed, dropped from the spool",
            self.dropped.clone(),
        );
        registry.register(
            "agent_spool_repairs",
            "Torn or corrupt spool records found (and cut) when the spool was opened",
            self.repaired.clone(),
        );
    }

    fn observe(&self, stats: &deploygraph_spool::Stats) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.records.set(gauge(stats.records));
        self.bytes.set(gauge(stats.bytes));
        self.capacity.set(gauge(stats.capacity_bytes));
        let age = stats.oldest_appended_at_ms.map_or(0.0, |at| {
            (chrono::Utc::now().timestamp_millis() - at).max(0) as f64 / 1000.0
        });
        self.oldest.set(age);
    }
}

/// The spool and what waits on it.
struct Shared {
    spool: Mutex<Spool>,
    /// Woken when a record is appended.
    appended: Notify,
    /// Woken when records are delivered.
    delivered: Notify,
    metrics: AgentMetrics,
}

impl Shared {
    /// Runs `f` on the spool in a blocking task (its writes fsync).
    async fn with_spool<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Spool) -> Result<T, deploygraph_spool::Error> + Send + 'static,
    ) -> Result<T, deploygraph_spool::Error> {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut spool = shared
                .spool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = f(&mut spool);
            shared.metrics.observe(&spool.stats());
            result
        })
        .await
        .unwrap_or_else(|e| {
            Err(deploygraph_spool::Error::Io {
                context: "the spool task failed".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }

    fn stats(&self) -> deploygraph_spool::Stats {
        self.spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stats()
    }
}

/// The central server, as the agent calls it.
#[derive(Clone)]
struct Central {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
}

impl Central {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(SEND_TIMEOUT);
        match &self.token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        }
    }
}

fn unavailable(what: &str, why: impl std::fmt::Display) -> deploygraph_store::Error {
    deploygraph_store::Error::Unavailable {
        backend: "agent",
        source: format!("{what}: {why}").into(),
    }
}

/// The watchers' [`RecordSink`]: records go to the spool; history is read from the central
/// server once what was spooled before has been delivered.
struct SpoolSink {
    shared: Arc<Shared>,
    central: Central,
}

impl SpoolSink {
    async fn append(&self, payloads: Vec<Vec<u8>>) -> deploygraph_store::Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let count = payloads.len() as u64;
        match self
            .shared
            .with_spool(move |spool| spool.append_batch(&payloads, now))
            .await
        {
            Ok(_) => {
                self.shared.appended.notify_one();
                Ok(())
            }
            Err(e @ deploygraph_spool::Error::Full { .. }) => {
                self.shared.metrics.full.inc_by(count);
                tracing::error!(error.message = %e, "the agent's spool is full: the watchers hold what they saw and try again; rollouts between now and then are not recorded");
                Err(unavailable("the agent's spool is full", e))
            }
            Err(e) => {
                tracing::error!(error.message = %e, "cannot write to the agent's spool");
                Err(unavailable("cannot write to the agent's spool", e))
            }
        }
    }
}

fn payload(kind: &str, value: impl serde::Serialize) -> deploygraph_store::Result<Vec<u8>> {
    let mut record = serde_json::Map::new();
    record.insert(
        kind.to_owned(),
        serde_json::to_value(value).map_err(|e| unavailable("cannot encode a record", e))?,
    );
    serde_json::to_vec(&record).map_err(|e| unavailable("cannot encode a record", e))
}

#[async_trait]
impl RecordSink for SpoolSink {
    async fn record_deployments(
        &self,
        batch: Vec<Deployment>,
    ) -> deploygraph_store::Result<Vec<RecordOutcome>> {
        let payloads = batch
            .iter()
            .map(|d| payload("deployment", d))
            .collect::<deploygraph_store::Result<Vec<_>>>()?;
        self.append(payloads).await?;
        Ok(batch
            .into_iter()
            .map(|deployment| RecordOutcome {
                kind: RecordKind::Queued,
                deployment,
                conflict: None,
            })
            .collect())
    }

    async fn record_changes(
        &self,
        batch: Vec<Change>,
    ) -> deploygraph_store::Result<Vec<ChangeOutcome>> {
        let payloads = batch
            .iter()
            .map(|c| payload("change", c))
            .collect::<deploygraph_store::Result<Vec<_>>>()?;
        self.append(payloads).await?;
        Ok(batch
            .into_iter()
            .map(|change| ChangeOutcome {
                kind: RecordKind::Queued,
                change,
                conflict: None,
            })
            .collect())
    }

    /// The central server's page, read once every record spooled before this call is
    /// delivered: a rollout still in the spool is part of the workload's history.
    async fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> deploygraph_store::Result<Page<StoredDeployment>> {
        let through = self.shared.stats().next_seq.saturating_sub(1);
        let deadline = tokio::time::Instant::now() + HISTORY_WAIT;
        loop {
            let delivered = self.shared.delivered.notified();
            if self.shared.stats().acked >= through {
                break;
            }
            if tokio::time::timeout_at(deadline, delivered).await.is_err() {
                return Err(unavailable(
                    "read a workload's history",
                    "records spooled before it are not delivered yet",
                ));
            }
        }
        let mut query: Vec<(&str, String)> = vec![("limit", filter.limit.to_string())];
        if let Some(service) = &filter.service {
            query.push(("service", service.to_string()));
        }
        if let Some(environment) = &filter.environment {
            query.push(("environment", environment.to_string()));
        }
        if let Some(cluster) = &filter.cluster {
            query.push(("cluster", cluster.to_string()));
        }
        let response = self
            .central
            .request(reqwest::Method::GET, "/v1/deployments")
            .query(&query)
            .send()
            .await
            .map_err(|e| unavailable("read a workload's history", e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(unavailable(
                "read a workload's history",
                format!("the central server answered {status}: {body}"),
            ));
        }
        response
            .json::<Page<StoredDeployment>>()
            .await
            .map_err(|e| unavailable("read a workload's history", e))
    }
}

/// How one delivery went.
enum Sent {
    /// Stored: mark delivered.
    Delivered,
    /// Refused for good: drop it.
    Refused(String),
    /// Try again after this long (or the backoff's).
    Retry(&'static str, Option<Duration>, String),
}

/// Sends the spool's records in order until `stop`.
async fn forward(
    shared: Arc<Shared>,
    central: Central,
    cluster: String,
    batch: usize,
    stop: CancellationToken,
) {
    let mut failures: u32 = 0;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let appended = shared.appended.notified();
        let entries = match shared
            .with_spool(move |spool| spool.peek(batch, BATCH_MAX_BYTES))
            .await
        {
            Ok(entries) => entries,
            Err(deploygraph_spool::Error::Corrupt { seq, .. }) => {
                // Damaged on disk since it was written: it cannot be sent; skipping it keeps
                // the records after it flowing.
                tracing::error!(seq, "a spooled record is damaged on disk; dropping it");
                shared.metrics.dropped.inc();
                if let Err(e) = shared.with_spool(move |spool| spool.ack(seq)).await {
                    tracing::error!(error.message = %e, "cannot skip a damaged record in the agent's spool");
                    wait(&stop, MAX_BACKOFF).await;
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error.message = %e, "cannot read the agent's spool");
                wait(&stop, MAX_BACKOFF).await;
                continue;
            }
        };
        let Some(last) = entries.last().map(|e| e.seq) else {
            tokio::select! {
                () = stop.cancelled() => return,
                () = appended => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        let mut records = Vec::with_capacity(entries.len());
        let mut kinds: Vec<String> = Vec::with_capacity(entries.len());
        for entry in &entries {
            match serde_json::from_slice::<serde_json::Map<String, Value>>(&entry.payload) {
                Ok(mut record) => {
                    kinds.push(record.keys().next().cloned().unwrap_or_default());
                    record.insert("seq".into(), Value::from(entry.seq));
                    records.push(Value::Object(record));
                }
                Err(e) => {
                    // Written by this program: only a bug or a foreign file gets here.
                    tracing::error!(seq = entry.seq, error.message = %e, "a spooled record is not JSON; dropping it");
                    shared.metrics.dropped.inc();
                }
            }
        }
        let outcome = if records.is_empty() {
            Sent::Delivered
        } else {
            send(&central, &cluster, records).await
        };
        match outcome {
            Sent::Delivered => {
                failures = 0;
                for kind in &kinds {
                    shared
                        .metrics
                        .forwarded
                        .get_or_create(&KindLabels { kind: kind.clone() })
                        .inc();
                }
                if let Err(e) = shared.with_spool(move |spool| spool.ack(last)).await {
                    // Delivered but not marked: sent again later, stored once (by uid).
                    tracing::error!(error.message = %e, "cannot mark records delivered in the agent's spool");
                    wait(&stop, MAX_BACKOFF).await;
                    continue;
                }
                shared.delivered.notify_waiters();
                tracing::debug!(records = entries.len(), through = last, "records delivered");
            }
            Sent::Refused(why) => {
                failures = 0;
                let uids: Vec<String> = entries
                    .iter()
                    .filter_map(|e| {
                        let v: Value = serde_json::from_slice(&e.payload).ok()?;
                        v.as_object()?
                            .values()
                            .next()?
                            .get("uid")?
                            .as_str()
                            .map(str::to_owned)
                    })
                    .collect();
                tracing::error!(records = entries.len(), uids = ?uids, reason = %why, "the central server refused a batch as malformed: dropped");
                shared.metrics.dropped.inc_by(entries.len() as u64);
                if let Err(e) = shared.with_spool(move |spool| spool.ack(last)).await {
                    tracing::error!(error.message = %e, "cannot mark records dropped in the agent's spool");
                }
                shared.delivered.notify_waiters();
            }
            Sent::Retry(reason, after, why) => {
                shared
                    .metrics
                    .errors
                    .get_or_create(&ReasonLabels {
                        reason: reason.to_owned(),
                    })
                    .inc();
                failures = failures.saturating_add(1);
                let backoff = Duration::from_millis(250)
                    .saturating_mul(1u32 << failures.min(7))
                    .min(MAX_BACKOFF);
                let delay = after.unwrap_or(backoff).min(MAX_BACKOFF);
                tracing::warn!(records = entries.len(), reason, error.message = %why, retry_in_ms = delay.as_millis() as u64, "cannot deliver records to the central server; they stay in the spool");
                wait(&stop, delay).await;
            }
        }
    }
}

async fn wait(stop: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

async fn send(central: &Central, cluster: &str, records: Vec<Value>) -> Sent {
    let body = serde_json::json!({"cluster": cluster, "records": records});
    let response = match central
        .request(reqwest::Method::POST, "/v1/agent/records")
        .json(&body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Sent::Retry("timeout", None, e.to_string()),
        Err(e) if e.is_connect() => return Sent::Retry("connect", None, e.to_string()),
        Err(e) => return Sent::Retry("transport", None, e.to_string()),
    };
    let status = response.status();
    let retry_after = deploygraph_client::retry_after(response.headers());
    // The answer is read to its end: a 200 means the server's store committed.
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Sent::Retry("transport", None, e.to_string()),
    };
    match status.as_u16() {
        200 => Sent::Delivered,
        400 | 413 | 422 => Sent::Refused(format!("{status}: {text}")),
        401 | 403 => Sent::Retry(
            "unauthorized",
            None,
            format!("{status}: the central server refused the token"),
        ),
        429 => Sent::Retry("status_429", retry_after, text),
        500..=599 => Sent::Retry(
            match status.as_u16() {
                503 => "status_503",
                _ => "status_5xx",
            },
            retry_after,
            text,
        ),
        _ => Sent::Retry("status_other", retry_after, format!("{status}: {text}")),
    }
}

fn http_client(args: &AgentArgs) -> Result<reqwest::Client, Failure> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("deploygraph-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Failure::usage(format!("--ca-file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Failure::usage(format!("--ca-file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Failure::usage(format!(
                "--ca-file {}: no PEM certificate in it",
                path.display()
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Failure::usage(format!("cannot build the HTTPS client: {e}")))
}

/// `deploygraph agent`.
pub async fn run(args: AgentArgs) -> Result<(), Failure> {
    let url = url::Url::parse(&args.server)
        .map_err(|e| Failure::usage(format!("--server {:?}: {e}", args.server)))?;
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Failure::usage(format!(
                "--server {}: the token and the cluster's rollouts would cross the network in clear; use https:// (http:// is accepted on loopback only)",
                args.server
            )));
        }
        other => {
            return Err(Failure::usage(format!(
                "--server: {other}:// is not http(s)"
            )));
        }
    }
    let token = token_from(args.auth.token.as_deref(), args.auth.token_file.as_deref())?;
    if token.is_none() {
        tracing::warn!(
            "no token: the central server must accept anonymous writes (it does on loopback only)"
        );
    }
    if args.batch == 0 || args.batch > deploygraph_api::agent::MAX_RECORDS {
        return Err(Failure::usage(format!(
            "--batch: 1 to {}",
            deploygraph_api::agent::MAX_RECORDS
        )));
    }
    let opened = Spool::open(SpoolConfig {
        max_bytes: args.spool_max_bytes,
        ..SpoolConfig::new(args.spool_dir.clone())
    })
    .map_err(|e| Failure::usage(format!("--spool-dir {}: {e}", args.spool_dir.display())))?;
    let agent_metrics = AgentMetrics::default();
    if let Some(repair) = &opened.repaired {
        tracing::warn!(repair = ?repair, "the spool held a torn or corrupt record (a crash mid-write): cut there; what followed it in that segment is lost");
        agent_metrics.repaired.inc();
    }
    let stats = opened.spool.stats();
    agent_metrics.observe(&stats);
    tracing::info!(dir = %args.spool_dir.display(), records = stats.records, bytes = stats.bytes, capacity = stats.capacity_bytes, "spool opened");
    let metrics = Arc::new(
        deploygraph_api::metrics::Metrics::new().with_extra(|r| agent_metrics.register(r)),
    );
    let shared = Arc::new(Shared {
        spool: Mutex::new(opened.spool),
        appended: Notify::new(),
        delivered: Notify::new(),
        metrics: agent_metrics,
    });
    let canary_hooks = crate::commands::canary_config(args.prometheus.as_deref(), &args.canary)?;
    let http = http_client(&args)?;
    let base = args.server.trim_end_matches('/').to_owned();
    let stop = CancellationToken::new();
    // Canary analyses of the rollouts it watches, recorded on the central server.
    let analyses = canary_hooks.prometheus.is_some().then(|| {
        let client = deploygraph_client::Client::with_transport(
            Arc::new(deploygraph_client::transport::HttpTransport::with_client(
                &base,
                http.clone(),
            )),
            token.clone(),
            deploygraph_client::RetryPolicy::default(),
        );
        (
            Arc::new(crate::canary_watch::ServerRecords::new(
                client,
                stop.clone(),
            )) as Arc<dyn crate::canary_watch::Records>,
            canary_hooks.clone(),
            args.canary.canary_max_analyses,
            args.canary.canary_rollback,
        )
    });
    let central = Central { http, base, token };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::usage(format!("--listen {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::usage(format!("--listen {}: {e}", args.listen)))?;
    let forwarder = tokio::spawn(forward(
        Arc::clone(&shared),
        central.clone(),
        args.cluster.to_string(),
        args.batch,
        stop.clone(),
    ));
    start_watcher(
        &args.watch,
        args.cluster.clone(),
        Arc::new(SpoolSink {
            shared: Arc::clone(&shared),
            central,
        }),
        Arc::clone(&metrics),
        stop.clone(),
        analyses,
    )
    .await?;
    tracing::info!(address = %address, server = %args.server, cluster = %args.cluster, "agent running");
    let router = {
        let metrics = Arc::clone(&metrics);
        let shared = Arc::clone(&shared);
        axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let (metrics, shared) = (Arc::clone(&metrics), Arc::clone(&shared));
                    async move {
                        shared.metrics.observe(&shared.stats());
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            metrics.encode(),
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/readyz", axum::routing::get(|| async { "ok" }))
    };
    let signal_stop = stop.clone();
    tokio::spawn(async move {
        crate::commands::shutdown_signal().await;
        signal_stop.cancel();
    });
    let stopped = stop.clone();
    deploygraph_api::serve(
        listener,
        router,
        async move { stopped.cancelled().await },
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| Failure::from(anyhow::Error::new(e).context("the agent's server failed")))?;
    let _ = forwarder.await;
    tracing::info!(
        records = shared.stats().records,
        "agent stopped; undelivered records stay in the spool"
    );
    Ok(())
}
