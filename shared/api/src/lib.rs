//! deploygraph's HTTP API (axum): ingest of deployments, CDEvents and changes that are not
//! rollouts, listings, health,
//! Prometheus metrics and the OpenAPI document.
//!
//! Nothing is acknowledged with a 2xx before the store has committed it; when the store is
//! unavailable, writes get 503 with `Retry-After`.

pub mod admission;
pub mod agent;
mod ask;
mod auth;
pub mod canary;
pub mod cdevents;
mod changes;
pub mod console;
pub mod error;
mod handlers;
pub mod limits;
pub mod mesh;
pub mod metrics;
pub mod onsets;
pub mod openapi;
mod rca;
pub mod rollback;
pub mod snapshot_targets;
pub mod snapshotter;
mod strict;
mod summaries;
pub mod tls;
pub mod topology;
mod verdicts;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put};
use deploygraph_analysis::pipeline::{Pipeline, PipelineConfig};
use deploygraph_model::Uid;
use deploygraph_store::GraphStore;
use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

pub use openapi::document as openapi_document;

/// Default body limit of every endpoint but Alertmanager's: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default body limit of `POST /v1/alerts/alertmanager`: 32 MiB, about 80,000 alerts.
pub const DEFAULT_ALERTMANAGER_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default write budget: 50 parallel Alertmanager notifications pass with room to spare.
pub const DEFAULT_MAX_CONCURRENT_WRITES: usize = 64;
/// Default read budget.
pub const DEFAULT_MAX_CONCURRENT_READS: usize = 128;

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// When set, write endpoints require `Authorization: Bearer <token>`. `POST /v1/cypher`
    /// always does: without a token it is refused.
    pub token: Option<SecretString>,
    /// When set, every `GET` except `/healthz`, `/readyz` and the console's page and assets
    /// requires `Authorization: Bearer` with this token or [`ApiConfig::token`].
    pub read_token: Option<SecretString>,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted Alertmanager notification (`POST /v1/alerts/alertmanager`) in bytes.
    /// Alertmanager drops a notification refused with a 4xx and never retries it, so this
    /// limit is sized for groups of thousands of alerts (about 400 bytes each).
    pub alertmanager_max_body_bytes: usize,
    /// Longest a request may run before it is answered 503 `timeout`. User Cypher and
    /// snapshots that run checks are bounded by their own limits instead.
    pub request_timeout: Duration,
    /// Most write requests in flight; past it, writes are answered 503 `overloaded`.
    pub max_concurrent_writes: usize,
    /// Most read requests in flight; past it, reads are answered 503 `overloaded`. Separate
    /// from the writes' budget, so an alert storm cannot starve queries.
    pub max_concurrent_reads: usize,
    /// `Retry-After` seconds on 503.
    pub retry_after_secs: u64,
    /// Attribution window, floor and dependency depth.
    pub attribution: deploygraph_analysis::attribution::Settings,
    /// Which alert labels name the service, namespace and environment.
    pub alert_mapping: deploygraph_model::alertmanager::AlertMapping,
    /// Server-side timeout of user Cypher queries.
    pub cypher_timeout: std::time::Duration,
    /// Most rows a user Cypher query returns.
    pub cypher_max_rows: usize,
    /// Most bytes of JSON a user Cypher query's rows take.
    pub cypher_max_bytes: usize,
    /// Targets `POST /v1/snapshots` may run checks against besides those of the server's gate
    /// configuration: `host`, `host:port` or a URL prefix (`https://api.example:6443/`).
    pub snapshot_allow_targets: Vec<String>,
    /// The Prometheus and templates of the canary hooks (`GET /v1/canary/judge`,
    /// `POST /v1/canary/flagger`).
    pub canary: canary::HooksConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            read_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            alertmanager_max_body_bytes: DEFAULT_ALERTMANAGER_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_concurrent_writes: DEFAULT_MAX_CONCURRENT_WRITES,
            max_concurrent_reads: DEFAULT_MAX_CONCURRENT_READS,
            retry_after_secs: 5,
            attribution: deploygraph_analysis::attribution::Settings::default(),
            alert_mapping: deploygraph_model::alertmanager::AlertMapping::default(),
            cypher_timeout: std::time::Duration::from_secs(10),
            cypher_max_rows: 1000,
            cypher_max_bytes: deploygraph_store::cypher::DEFAULT_BYTE_CAP,
            snapshot_allow_targets: Vec::new(),
            canary: canary::HooksConfig::default(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<dyn GraphStore>,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) snapshotter: Option<Arc<snapshotter::Snapshotter>>,
    onsets: Option<Arc<dyn deploygraph_analysis::pipeline::Onsets>>,
    pipeline: Pipeline,
    pipeline_config: PipelineConfig,
    /// Uids of the facts written through this state, kept for [`AppState::take_written`].
    written: Option<Arc<std::sync::Mutex<Vec<Uid>>>>,
    pub(crate) budgets: limits::Budgets,
}

impl AppState {
    /// State over `store`, with a follow-up pipeline of default size (see
    /// [`AppState::with_pipeline`]); nothing runs it until [`Pipeline::run`].
    pub fn new(store: Arc<dyn GraphStore>, config: ApiConfig) -> Self {
        let pipeline_config = PipelineConfig {
            attribution: config.attribution,
            ..PipelineConfig::default()
        };
        let metrics = Arc::new(metrics::Metrics::new());
        let mut state = Self {
            pipeline: Pipeline::new(Arc::clone(&store), pipeline_config),
            store,
            budgets: limits::Budgets::new(
                config.max_concurrent_writes,
                config.max_concurrent_reads,
            ),
            config: Arc::new(config),
            metrics,
            snapshotter: None,
            onsets: None,
            pipeline_config,
            written: None,
        };
        state.rebuild_pipeline();
        state
    }

    fn rebuild_pipeline(&mut self) {
        let observer: Arc<dyn deploygraph_analysis::pipeline::Observer> = self.metrics.clone();
        let mut builder =
            Pipeline::builder(Arc::clone(&self.store), self.pipeline_config).observer(observer);
        if let Some(snapshotter) = &self.snapshotter {
            let snapshots: Arc<dyn deploygraph_analysis::pipeline::Snapshots> = snapshotter.clone();
            builder = builder.snapshots(snapshots);
        }
        if let Some(onsets) = &self.onsets {
            builder = builder.onsets(Arc::clone(onsets));
        }
        self.pipeline = builder.build();
    }

    /// The store the API writes to.
    pub fn store(&self) -> Arc<dyn GraphStore> {
        Arc::clone(&self.store)
    }

    /// The metrics registry (the watchers count into it too).
    pub fn metrics(&self) -> Arc<metrics::Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Takes an infra snapshot for every deployment recorded (the follow-up pipeline does).
    #[must_use]
    pub fn with_snapshotter(mut self, snapshotter: Arc<snapshotter::Snapshotter>) -> Self {
        self.snapshotter = Some(snapshotter);
        self.rebuild_pipeline();
        self
    }

    /// Reads each alert's metric onset from `prometheus` before attributing it, and with
    /// `service_template` the health metric of each service around it
    /// ([`onsets::PrometheusOnsets`]).
    #[must_use]
    pub fn with_onsets(
        self,
        prometheus: deploygraph_canary::prometheus::Prometheus,
        service_template: Option<String>,
    ) -> Self {
        let onsets = onsets::PrometheusOnsets::new(prometheus, Arc::clone(&self.metrics))
            .with_service_template(service_template);
        self.with_onset_source(Arc::new(onsets))
    }

    /// Reads each alert's metric onset from `onsets` before attributing it.
    #[must_use]
    pub fn with_onset_source(
        mut self,
        onsets: Arc<dyn deploygraph_analysis::pipeline::Onsets>,
    ) -> Self {
        self.onsets = Some(onsets);
        self.rebuild_pipeline();
        self
    }

    /// Sizes the follow-up pipeline (its attribution settings stay the API's).
    #[must_use]
    pub fn with_pipeline(mut self, config: PipelineConfig) -> Self {
        self.pipeline_config = PipelineConfig {
            attribution: self.config.attribution,
            ..config
        };
        self.rebuild_pipeline();
        self
    }

    /// Keeps the uids of the deployments and alerts written through this state, so that the
    /// caller can do their follow-ups ([`AppState::take_written`], [`Pipeline::drain`]): the
    /// CLI's in-process mode does, before it exits.
    #[must_use]
    pub fn track_written(mut self) -> Self {
        self.written = Some(Arc::default());
        self
    }

    /// The uids written since the last call (with [`AppState::track_written`]).
    pub fn take_written(&self) -> Vec<Uid> {
        self.written
            .as_ref()
            .and_then(|w| w.lock().ok().map(|mut w| std::mem::take(&mut *w)))
            .unwrap_or_default()
    }

    /// The follow-up pipeline every write of this state feeds.
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline.clone()
    }

    /// Facts with these uids were written (and their follow-ups with them): wakes the pipeline.
    pub(crate) fn followed_up(&self, uids: impl IntoIterator<Item = Uid>) {
        if let Some(written) = &self.written
            && let Ok(mut written) = written.lock()
        {
            written.extend(uids);
        }
        self.pipeline.wake();
    }
}

/// The API's router. Health routes, `/metrics` and the OpenAPI document sit outside the
/// concurrency budgets ([`limits`]); health routes also outside request tracing and tokens.
pub fn router(state: AppState) -> Router {
    let timeout = || middleware::from_fn_with_state(state.clone(), limits::timeout);
    let write_budget = || middleware::from_fn_with_state(state.clone(), limits::writes);
    let read_budget = || middleware::from_fn_with_state(state.clone(), limits::reads);
    let write_token = || middleware::from_fn_with_state(state.clone(), auth::require_token);
    let writes = Router::new()
        .route("/v1/deployments", post(handlers::record_deployment))
        .route("/v1/events", post(handlers::record_cdevent))
        .route("/v1/changes", post(changes::record_changes))
        .route(
            "/v1/alerts/alertmanager",
            post(rca::alertmanager).layer(DefaultBodyLimit::max(
                state.config.alertmanager_max_body_bytes,
            )),
        )
        .route(
            "/v1/alerts/{fingerprint}/attribution",
            post(rca::reattribute),
        )
        .route(
            "/v1/alerts/{fingerprint}/suspects/{uid}/verdict",
            post(verdicts::record_verdict),
        )
        .route(
            "/v1/services/{name}/dependencies",
            put(topology::put_dependencies),
        )
        .route(
            "/v1/topology/backstage",
            post(topology::import_backstage)
                .layer(DefaultBodyLimit::max(topology::TOPOLOGY_MAX_BODY_BYTES)),
        )
        .route(
            "/v1/topology/mesh",
            post(topology::import_mesh)
                .layer(DefaultBodyLimit::max(topology::TOPOLOGY_MAX_BODY_BYTES)),
        )
        .route("/v1/chaos/runs", post(rca::record_chaos_run))
        .route("/v1/canary/analyses", post(canary::record_analysis))
        .route(
            "/v1/deployments/{uid}/summaries",
            post(summaries::record_summary),
        )
        .route("/v1/rollbacks", post(rollback::record_rollback))
        .route(
            "/v1/agent/records",
            post(agent::record_batch).layer(DefaultBodyLimit::max(agent::AGENT_MAX_BODY_BYTES)),
        )
        .route_layer(timeout())
        .route_layer(write_budget())
        .route_layer(write_token());
    // Running checks is bounded by the snapshot's own deadline, not the request timeout.
    let snapshots = Router::new()
        .route("/v1/snapshots", post(handlers::take_snapshot))
        .route_layer(write_budget())
        .route_layer(write_token());
    // User Cypher is never anonymous: it needs the write token, and a server without one
    // refuses it. It is a read, bounded by its own time limit.
    let cypher = Router::new()
        .route("/v1/cypher", post(rca::cypher))
        .route_layer(read_budget())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_configured_token,
        ));
    // The canary hooks run an analysis on the server's behalf (Prometheus queries, and a write
    // when they name a deployment): never anonymous, like user Cypher.
    let canary_hooks = Router::new()
        .route("/v1/canary/judge", get(canary::judge::judge))
        .route("/v1/canary/flagger", post(canary::flagger::flagger))
        .route_layer(timeout())
        .route_layer(write_budget())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_configured_token,
        ));
    let reads = Router::new()
        .route("/v1/deployments", get(handlers::list_deployments))
        .route("/v1/deployments/{uid}", get(handlers::get_deployment))
        .route("/v1/changes/{uid}", get(changes::get_change))
        .route(
            "/v1/deployments/{uid}/snapshot",
            get(handlers::deployment_snapshot),
        )
        .route("/v1/snapshots/latest", get(handlers::latest_snapshot))
        .route("/v1/snapshots/{uid}", get(handlers::get_snapshot))
        .route("/v1/services", get(handlers::list_services))
        .route(
            "/v1/services/{name}/deployments",
            get(handlers::service_deployments),
        )
        .route("/v1/alerts", get(rca::list_alerts))
        .route("/v1/alerts/{fingerprint}/suspects", get(rca::suspects))
        .route(
            "/v1/services/{name}/dependencies",
            get(topology::get_dependencies),
        )
        .route("/v1/services/{name}/timeline", get(rca::timeline))
        .route(
            "/v1/services/{name}/common-factors",
            get(rca::common_factors),
        )
        .route("/v1/dora", get(rca::dora))
        .route("/v1/ask", get(ask::ask))
        .route("/v1/reports/incident", get(rca::incident_report))
        .route("/v1/chaos/runs/{uid}", get(rca::get_chaos_run))
        .route("/v1/chaos/runs", get(rca::list_chaos_runs))
        .route("/v1/gate/overrides", get(rca::list_gate_overrides))
        .route(
            "/v1/deployments/{uid}/canary",
            get(canary::deployment_analyses),
        )
        .route("/v1/deployments/{uid}/alerts", get(rca::deployment_alerts))
        .route("/v1/services/{name}/resilience", get(rca::resilience))
        .route(
            "/v1/services/{name}/certificates",
            get(rca::service_certificates),
        )
        .route(
            "/v1/services/{name}/summaries",
            get(summaries::service_summaries),
        )
        .route_layer(timeout())
        .route_layer(read_budget());
    let api = Router::new()
        .route("/v1/openapi.json", get(handlers::openapi))
        .merge(reads)
        .merge(writes)
        .merge(snapshots)
        .merge(cypher)
        .merge(canary_hooks)
        .fallback(handlers::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http());
    // Every read but the health routes, whichever router a GET route is added to.
    let guarded = Router::new()
        .route("/metrics", get(metrics::render))
        .merge(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_read_token,
        ));
    // The console's page and assets hold no data (it reads through the API with the user's
    // token), so a browser can load them without one.
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .merge(guarded)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Runs a store write on its own task, so that a client going away (which drops the request's
/// future) cannot stop it half-way through its transaction.
pub(crate) async fn detached<T: Send + 'static>(
    write: impl Future<Output = deploygraph_store::Result<T>> + Send + 'static,
) -> deploygraph_store::Result<T> {
    tokio::spawn(write).await.unwrap_or_else(|e| {
        Err(deploygraph_store::Error::Backend {
            backend: "api",
            operation: "run a store write",
            source: Box::new(e),
        })
    })
}

/// The router with every request's follow-ups done before its response returns, as a server's
/// workers would do them moments later: for the CLI's in-process mode (a command's next request,
/// or the next command, sees their result) and for tests. A server runs [`Pipeline::run`]
/// instead. Follow-ups not done within `deadline` stay pending in the store, for a server.
pub fn router_with_inline_follow_ups(state: AppState, deadline: Duration) -> Router {
    let state = state.track_written();
    let pipeline = state.pipeline();
    let written = state.clone();
    router(state).layer(middleware::from_fn(
        move |request: axum::extract::Request, next: middleware::Next| {
            let pipeline = pipeline.clone();
            let written = written.clone();
            async move {
                let response = next.run(request).await;
                let uids = written.take_written();
                if !uids.is_empty() {
                    match pipeline.drain(&uids, deadline).await {
                        Ok(drained) if drained.pending == 0 => {}
                        Ok(drained) => tracing::warn!(
                            pending = drained.pending,
                            "follow-ups left pending in the store; a running `deploygraph serve` on this store does them"
                        ),
                        Err(e) => tracing::warn!(
                            error.message = %e,
                            "follow-ups left pending in the store; a running `deploygraph serve` on this store does them"
                        ),
                    }
                }
                response
            }
        },
    ))
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains open requests for at
/// most `drain`.
///
/// # Errors
/// When the server fails.
pub async fn serve<L>(
    listener: L,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining open requests");
        let _ = stopped_tx.send(());
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = server => result,
        () = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(drain_seconds = drain.as_secs(), "drain timed out; closing open connections");
            Ok(())
        }
    }
}
