//! The call graph a service mesh or a tracing pipeline reports to Prometheus, read as `mesh`
//! dependencies.
//!
//! Two metrics are queried over a lookback window, each as a sum over the window of the calls
//! between two services (`increase`), kept where it is above zero:
//!
//! - Istio's `istio_requests_total`, by `source_workload`, `source_workload_namespace`,
//!   `source_canonical_service`, and the same three of the destination. A workload's service is
//!   its canonical service (Istio derives it from `service.istio.io/canonical-name`,
//!   `app.kubernetes.io/name` or `app`, as deploygraph's Kubernetes watcher names services),
//!   else the workload's name; its namespace is the workload's namespace.
//! - The service graph of Tempo or the OpenTelemetry Collector's `servicegraph` connector,
//!   `traces_service_graph_request_total`, by `client` and `server` (service names, no
//!   namespace).
//!
//! Names that are not DNS-1123 labels, and Istio's `unknown` (a caller outside the mesh), are
//! left out and counted. Every service gets the configured environment.
//!
//! Requests are bounded by a timeout and the answer by a size limit; a failed query is logged
//! and counted ([`crate::metrics::Metrics::topology_query`]) and never stops the server.

use crate::metrics::Metrics;
use deploygraph_canary::prometheus::{self, FetchFailure};
use deploygraph_model::topology::EdgeSource;
use deploygraph_model::{Cluster, Environment, ServiceName, ServiceRef};
use deploygraph_store::{GraphStore, TopologyMode, TopologyUpdate};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Default lookback window of the queries.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Default time limit of one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default size limit of one answer: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Where the call graph is and how it is read.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Prometheus' base URL (`http://prometheus:9090`; a path prefix is kept).
    pub url: url::Url,
    /// How far back calls count.
    pub window: Duration,
    /// The environment of every service found.
    pub environment: Environment,
    /// The cluster of every service found (`default` unless set).
    pub cluster: Cluster,
    /// Time limit of one query.
    pub timeout: Duration,
    /// Size limit of one answer.
    pub max_response_bytes: usize,
}

impl MeshConfig {
    /// A configuration with the default window, timeout and size limit.
    ///
    /// # Errors
    /// A message when `url` is not an http(s) URL.
    pub fn new(url: &str, environment: Environment) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!("{url:?}: expected an http:// or https:// URL"));
        }
        Ok(Self {
            url: parsed,
            window: DEFAULT_WINDOW,
            environment,
            cluster: Cluster::default(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }
}

/// One of the metrics read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `istio_requests_total`.
    Istio,
    /// `traces_service_graph_request_total`.
    ServiceGraph,
}

impl Query {
    /// Both, in order.
    pub const ALL: [Self; 2] = [Self::Istio, Self::ServiceGraph];

    /// The metric label value (`istio`, `service_graph`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Istio => "istio",
            Self::ServiceGraph => "service_graph",
        }
    }

    /// The PromQL over `window`.
    pub fn promql(self, window: Duration) -> String {
        let range = format!("{}s", window.as_secs().max(1));
        match self {
            Self::Istio => format!(
                "sum by (source_workload, source_workload_namespace, source_canonical_service, \
                 destination_workload, destination_workload_namespace, destination_canonical_service) \
                 (increase(istio_requests_total[{range}])) > 0"
            ),
            Self::ServiceGraph => format!(
                "sum by (client, server) (increase(traces_service_graph_request_total[{range}])) > 0"
            ),
        }
    }
}

/// Why a query gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// No answer: refused, timed out, broken.
    #[error("Prometheus at {url} did not answer: {reason}")]
    Unreachable {
        /// The query URL without its query string.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An answer that is not a successful vector.
    #[error("Prometheus answered {status}: {reason}")]
    Failed {
        /// HTTP status.
        status: u16,
        /// Its error, or why the body is unusable.
        reason: String,
    },
    /// An answer over the size limit.
    #[error("Prometheus' answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

/// What one query found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Calls between two services (caller, called), without self-calls, deduplicated.
    pub edges: Vec<(ServiceRef, ServiceRef)>,
    /// Series left out: a name that is not a DNS-1123 label, Istio's `unknown`.
    pub skipped: usize,
}

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    status: String,
    data: Option<ApiData>,
    error: Option<String>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
}

/// The service a label set names, `None` when it names none usable.
fn service(
    labels: &BTreeMap<String, String>,
    names: &[&str],
    namespace: Option<&str>,
    (environment, cluster): (&Environment, &Cluster),
) -> Option<ServiceRef> {
    let usable = |v: &&String| !v.is_empty() && v.as_str() != "unknown";
    let name = names
        .iter()
        .filter_map(|k| labels.get(*k).filter(usable))
        .find_map(|v| ServiceName::parse(v).ok())?;
    let namespace = match namespace.map(|k| labels.get(k).filter(usable)) {
        None | Some(None) => None,
        Some(Some(ns)) if deploygraph_model::newtypes::is_dns1123_label(ns) => Some(ns.clone()),
        Some(Some(_)) => return None,
    };
    Some(ServiceRef {
        name,
        namespace,
        environment: environment.clone(),
        cluster: cluster.clone(),
    })
}

/// Reads the edges from a Prometheus query answer.
///
/// # Errors
/// [`MeshError::Failed`] for an error answer, or a body that is not a vector answer.
pub fn parse_answer(
    query: Query,
    status: u16,
    body: &[u8],
    environment: &Environment,
    cluster: &Cluster,
) -> Result<Observed, MeshError> {
    let place = (environment, cluster);
    let failed = |reason: String| MeshError::Failed { status, reason };
    let answer: ApiAnswer = serde_json::from_slice(body)
        .map_err(|e| failed(format!("not a Prometheus API answer: {e}")))?;
    if answer.status != "success" || !(200..300).contains(&status) {
        return Err(failed(format!(
            "{}: {}",
            answer.error_type.as_deref().unwrap_or("error"),
            answer.error.as_deref().unwrap_or("no error given")
        )));
    }
    let data = answer
        .data
        .ok_or_else(|| failed("the answer has no data".into()))?;
    if data.result_type != "vector" {
        return Err(failed(format!(
            "expected a vector, got a {}",
            data.result_type
        )));
    }
    let mut observed = Observed::default();
    for sample in &data.result {
        let m = &sample.metric;
        let pair = match query {
            Query::Istio => service(
                m,
                &["source_canonical_service", "source_workload"],
                Some("source_workload_namespace"),
                place,
            )
            .zip(service(
                m,
                &["destination_canonical_service", "destination_workload"],
                Some("destination_workload_namespace"),
                place,
            )),
            Query::ServiceGraph => {
                service(m, &["client"], None, place).zip(service(m, &["server"], None, place))
            }
        };
        match pair {
            Some((from, to)) if from != to => observed.edges.push((from, to)),
            Some(_) => {}
            None => observed.skipped += 1,
        }
    }
    observed.edges.sort();
    observed.edges.dedup();
    Ok(observed)
}

/// The HTTP client of the queries: bounded by `config.timeout`.
///
/// # Errors
/// When the client cannot be built.
pub fn http_client(config: &MeshConfig) -> Result<reqwest::Client, String> {
    prometheus::http_client(config.timeout).map_err(|e| e.to_string())
}

/// Runs one query against Prometheus' `/api/v1/query`.
///
/// # Errors
/// [`MeshError`].
pub async fn query(
    http: &reqwest::Client,
    config: &MeshConfig,
    query: Query,
) -> Result<Observed, MeshError> {
    let mut url = config.url.clone();
    let path = format!("{}/api/v1/query", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.query_pairs_mut()
        .clear()
        .append_pair("query", &query.promql(config.window));
    let (status, body) = prometheus::fetch(http, url, config.max_response_bytes)
        .await
        .map_err(|e| match e {
            FetchFailure::Unreachable { url, reason } => MeshError::Unreachable { url, reason },
            FetchFailure::TooLarge { limit } => MeshError::TooLarge { limit },
        })?;
    parse_answer(query, status, &body, &config.environment, &config.cluster)
}

/// What one poll found: the edges of every query that answered, and the failures.
#[derive(Debug, Default)]
pub struct Poll {
    /// Edges found, deduplicated.
    pub edges: Vec<(ServiceRef, ServiceRef)>,
    /// Series left out.
    pub skipped: usize,
    /// The queries that failed, with why.
    pub failures: Vec<(Query, MeshError)>,
}

/// Runs every query, each failure recorded in `metrics` (when given) and in the result.
pub async fn poll(http: &reqwest::Client, config: &MeshConfig, metrics: Option<&Metrics>) -> Poll {
    let mut out = Poll::default();
    for q in Query::ALL {
        match query(http, config, q).await {
            Ok(observed) => {
                if let Some(m) = metrics {
                    m.topology_query(q.as_str(), "ok");
                }
                out.skipped += observed.skipped;
                out.edges.extend(observed.edges);
            }
            Err(e) => {
                if let Some(m) = metrics {
                    m.topology_query(q.as_str(), "error");
                }
                out.failures.push((q, e));
            }
        }
    }
    out.edges.sort();
    out.edges.dedup();
    out
}

/// The server's periodic import: polls Prometheus and records what it finds as `mesh` edges.
pub struct MeshImporter {
    store: Arc<dyn GraphStore>,
    metrics: Arc<Metrics>,
    config: MeshConfig,
    http: reqwest::Client,
}

impl MeshImporter {
    /// An importer writing into `store`, counting into `metrics`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        store: Arc<dyn GraphStore>,
        metrics: Arc<Metrics>,
        config: MeshConfig,
    ) -> Result<Self, String> {
        let http = http_client(&config)?;
        Ok(Self {
            store,
            metrics,
            config,
            http,
        })
    }

    /// Polls once and records the edges found. Failures are logged and counted, never
    /// returned: the next poll tries again. Returns how many edges were recorded.
    pub async fn import_once(&self) -> usize {
        let poll = poll(&self.http, &self.config, Some(&self.metrics)).await;
        for (q, e) in &poll.failures {
            tracing::warn!(query = q.as_str(), error.message = %e, error.cause_chain = ?e, "topology: Prometheus query failed; trying again at the next poll");
        }
        if poll.skipped > 0 {
            tracing::debug!(
                skipped = poll.skipped,
                "topology: series without a usable service name left out"
            );
        }
        if poll.edges.is_empty() {
            return 0;
        }
        let services = crate::topology::group_edges(poll.edges);
        let edges: usize = services.iter().map(|s| s.depends_on.len()).sum();
        let update = TopologyUpdate {
            source: EdgeSource::Mesh,
            seen_at: chrono::Utc::now(),
            mode: TopologyMode::Merge,
            services,
        };
        match self.store.apply_topology(&update).await {
            Ok(()) => {
                self.metrics.topology_edges(edges);
                tracing::info!(edges, "topology: recorded mesh edges");
                edges
            }
            Err(e) => {
                self.metrics.topology_store_failure();
                tracing::warn!(error.message = %e, error.cause_chain = ?e, "topology: recording mesh edges failed; trying again at the next poll");
                0
            }
        }
    }

    /// Polls now and every `interval` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: impl Future<Output = ()>) {
        tracing::info!(url = %self.config.url, interval_seconds = interval.as_secs(), window_seconds = self.config.window.as_secs(), "topology: polling Prometheus for the call graph");
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                () = &mut shutdown => return,
                _ = self.import_once() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Environment {
        Environment::parse("production").unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(observed: &Observed) -> Vec<String> {
        observed
            .edges
            .iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect()
    }

    #[test]
    fn istio_series_name_services_by_canonical_service_then_workload() {
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"source_workload": "checkout-v2", "source_workload_namespace": "shop",
                        "source_canonical_service": "checkout",
                        "destination_workload": "payments-v1", "destination_workload_namespace": "pay",
                        "destination_canonical_service": "payments"},
             "value": [1.7e9, "42"]},
            {"metric": {"source_workload": "web", "source_workload_namespace": "shop",
                        "destination_workload": "checkout-v2", "destination_workload_namespace": "shop",
                        "destination_canonical_service": "checkout"},
             "value": [1.7e9, "3"]},
            {"metric": {"source_workload": "unknown", "source_workload_namespace": "unknown",
                        "destination_workload": "web", "destination_workload_namespace": "shop"},
             "value": [1.7e9, "9"]},
            {"metric": {"source_workload": "Bad_Name", "source_workload_namespace": "shop",
                        "destination_workload": "web", "destination_workload_namespace": "shop"},
             "value": [1.7e9, "1"]},
            {"metric": {"source_workload": "web", "source_workload_namespace": "shop",
                        "destination_workload": "web", "destination_workload_namespace": "shop"},
             "value": [1.7e9, "1"]}
        ]}});
        let observed = parse_answer(
            Query::Istio,
            200,
            body.to_string().as_bytes(),
            &env(),
            &Cluster::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            names(&observed),
            vec![
                "shop/checkout (production) -> pay/payments (production)",
                "shop/web (production) -> shop/checkout (production)",
            ]
        );
        assert_eq!(observed.skipped, 2);
    }

    #[test]
    fn service_graph_series_have_no_namespace() {
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"client": "frontend", "server": "cart"}, "value": [1.7e9, "5"]},
            {"metric": {"client": "frontend"}, "value": [1.7e9, "5"]}
        ]}});
        let observed = parse_answer(
            Query::ServiceGraph,
            200,
            body.to_string().as_bytes(),
            &env(),
            &Cluster::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            names(&observed),
            vec!["frontend (production) -> cart (production)"]
        );
        assert_eq!(observed.skipped, 1);
    }

    #[test]
    fn error_answers_and_other_shapes_are_failures() {
        let error = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        let e = parse_answer(
            Query::Istio,
            400,
            error.to_string().as_bytes(),
            &env(),
            &Cluster::default(),
        )
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(
            e.to_string(),
            "Prometheus answered 400: bad_data: parse error"
        );
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(
            parse_answer(
                Query::Istio,
                200,
                matrix.to_string().as_bytes(),
                &env(),
                &Cluster::default()
            )
            .is_err()
        );
        assert!(
            parse_answer(
                Query::Istio,
                502,
                b"<html>bad gateway</html>",
                &env(),
                &Cluster::default()
            )
            .is_err()
        );
    }

    #[test]
    fn queries_sum_increases_over_the_window() {
        let q = Query::Istio.promql(Duration::from_secs(3600));
        assert!(q.contains("increase(istio_requests_total[3600s])"), "{q}");
        assert!(q.ends_with("> 0"), "{q}");
        assert!(
            Query::ServiceGraph
                .promql(Duration::from_secs(300))
                .starts_with(
                    "sum by (client, server) (increase(traces_service_graph_request_total[300s]))"
                )
        );
        assert!(MeshConfig::new("ftp://x", env()).is_err());
        assert!(MeshConfig::new("http://127.0.0.1:9090/prom", env()).is_ok());
    }
}
