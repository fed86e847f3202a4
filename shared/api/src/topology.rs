//! Service topology over HTTP: each service's dependencies by hand (`manual`), from Backstage
//! catalog files (`backstage`) and from the call graph a mesh reports (`mesh`), with owners and
//! SLA tiers. A source's write never touches another source's edges.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{parse_json, parse_json_within, query_params};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use deploygraph_model::backstage::{self, CatalogFile, ImportOptions};
use deploygraph_model::topology::{DependenciesInput, EdgeSource, ServiceTopology};
use deploygraph_model::{Environment, ServiceName, ServiceRef};
use deploygraph_store::{TopologyMode, TopologyUpdate};
use serde::Deserialize;
use serde_json::json;
use std::time::Instant;

/// Body limit of `POST /v1/topology/backstage` and `POST /v1/topology/mesh`: 16 MiB (a whole
/// catalog, or a mesh of about 80,000 edges).
pub const TOPOLOGY_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most edges one `POST /v1/topology/mesh` records.
pub const MAX_MESH_EDGES: usize = 100_000;

fn store_error(state: &AppState) -> impl Fn(deploygraph_store::Error) -> ApiError + '_ {
    move |e| ApiError::from_store(&e, state.config.retry_after_secs)
}

fn namespace(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.filter(|n| !n.is_empty()) {
        Some(ns) if !deploygraph_model::newtypes::is_dns1123_label(&ns) => Err(ApiError::invalid(
            field,
            format!("{ns:?} is not a DNS-1123 label"),
        )),
        other => Ok(other),
    }
}

fn environment(field: &str, value: Option<&str>) -> Result<Environment, ApiError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::invalid(field, "is required"))?;
    Environment::parse(value).map_err(|e| ApiError::invalid(field, e.message))
}

/// A cluster field: absent or empty for `default`.
fn cluster(field: &str, value: Option<&str>) -> Result<deploygraph_model::Cluster, ApiError> {
    deploygraph_model::Cluster::parse_field(value, field)
        .map_err(|e| ApiError::invalid(e.field.clone(), e.message))
}

/// Writes one source's topology, on its own task (a client going away cannot stop it half-way).
async fn apply(
    state: &AppState,
    update: TopologyUpdate,
    what: &'static str,
) -> Result<(), ApiError> {
    let started = Instant::now();
    let store = std::sync::Arc::clone(&state.store);
    let written = crate::detached(async move { store.apply_topology(&update).await }).await;
    state.metrics.store_call(what, started);
    written.map_err(store_error(state))
}

/// `PUT /v1/services/{name}/dependencies`: replaces the service's `manual` dependencies.
#[utoipa::path(put, path = "/v1/services/{name}/dependencies", tag = "services",
    params(("name" = deploygraph_model::ServiceName, Path)),
    request_body(content = deploygraph_model::topology::DependenciesInput, content_type = "application/json"),
    responses((status = 200, description = "Replaced (the edges of other sources stay)", body = crate::openapi::JsonObject)),
    security(("bearer" = [])))]
pub(crate) async fn put_dependencies(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    ServiceName::parse(&name).map_err(|e| ApiError::invalid("name", e.message))?;
    let input: DependenciesInput = parse_json(&state, &headers, body)?;
    let topology = input.validate(&name)?;
    apply(
        &state,
        TopologyUpdate {
            source: EdgeSource::Manual,
            seen_at: Utc::now(),
            mode: TopologyMode::Replace,
            services: vec![topology.clone()],
        },
        "apply_topology",
    )
    .await?;
    tracing::info!(service = %topology.service, dependencies = topology.depends_on.len(), "recorded dependencies");
    Ok(Json(topology).into_response())
}

/// The service a path and query name, the environment required.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DependencyParams {
    /// The service's namespace (empty: none).
    #[param(value_type = Option<deploygraph_model::schema::Namespace>)]
    namespace: Option<String>,
    /// The service's environment.
    #[param(value_type = Environment, required = true)]
    environment: Option<String>,
    /// The service's cluster (absent: `default`).
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
}

/// `GET /v1/services/{name}/dependencies?environment=&namespace=`.
#[utoipa::path(get, path = "/v1/services/{name}/dependencies", tag = "services",
    params(("name" = deploygraph_model::ServiceName, Path), DependencyParams),
    responses((status = 200, description = "The service's owner and tier, and what it depends on: \
        each dependency with `sources` (`manual`, `backstage`, `mesh`, each with its \
        `last_seen_at`) and the latest `last_seen_at`", body = crate::openapi::JsonObject)))]
pub(crate) async fn get_dependencies(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<DependencyParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let service = ServiceRef {
        name: ServiceName::parse(&name).map_err(|e| ApiError::invalid("name", e.message))?,
        namespace: namespace("namespace", p.namespace)?,
        environment: environment("environment", p.environment.as_deref())?,
        cluster: cluster("cluster", p.cluster.as_deref())?,
    };
    let started = Instant::now();
    let view = state.store.service_topology(&service).await;
    state.metrics.store_call("service_topology", started);
    Ok(Json(view.map_err(store_error(&state))?).into_response())
}

/// The body of `POST /v1/topology/backstage`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackstageImportInput {
    /// The environment of every imported service.
    #[schema(value_type = Environment, required = true)]
    pub environment: Option<String>,
    /// The namespace of entities without a `backstage.io/kubernetes-namespace` annotation
    /// (absent: none).
    #[schema(value_type = Option<deploygraph_model::schema::Namespace>)]
    pub namespace: Option<String>,
    /// The cluster of every imported service (absent: `default`).
    #[schema(value_type = Option<deploygraph_model::Cluster>)]
    pub cluster: Option<String>,
    /// The catalog files (`catalog-info.yaml`), each with its entity documents; at most 1,000
    /// files of at most 1 MiB each, 10,000 entities in all.
    #[schema(required = true, nullable = false, max_items = 1000)]
    pub files: Option<Vec<CatalogFile>>,
}

impl BackstageImportInput {
    /// Validates the options and reads the files.
    ///
    /// # Errors
    /// The field at fault: `environment`, `namespace`, `files[i].path`, or `files[i]` with a
    /// message naming the file, the entity and its field.
    pub fn parse(self) -> Result<backstage::CatalogImport, ApiError> {
        let options = ImportOptions {
            environment: environment("environment", self.environment.as_deref())?,
            namespace: namespace("namespace", self.namespace)?,
            cluster: cluster("cluster", self.cluster.as_deref())?,
        };
        let files = self
            .files
            .ok_or_else(|| ApiError::invalid("files", "is required"))?;
        for (i, f) in files.iter().enumerate() {
            if f.path.is_empty() || f.path.chars().count() > 4096 {
                return Err(ApiError::invalid(
                    format!("files[{i}].path"),
                    "must be 1 to 4096 characters",
                ));
            }
        }
        Ok(backstage::parse(&files, &options)?)
    }
}

/// `POST /v1/topology/backstage`: records what Backstage catalog files say — each `Component`
/// and `Resource` as a service with its owner and tier, and its `backstage` dependencies,
/// replacing the ones an earlier import recorded for it.
#[utoipa::path(post, path = "/v1/topology/backstage", tag = "services",
    request_body(content = BackstageImportInput, content_type = "application/json"),
    responses((status = 200, description = "Imported: the services with their owner, tier and \
        dependencies, and warnings (documents skipped, references outside the files)",
        body = crate::openapi::JsonObject)),
    security(("bearer" = [])))]
pub(crate) async fn import_backstage(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: BackstageImportInput = parse_json_within(TOPOLOGY_MAX_BODY_BYTES, &headers, body)?;
    let import = input.parse()?;
    let edges: usize = import.services.iter().map(|s| s.depends_on.len()).sum();
    apply(
        &state,
        TopologyUpdate {
            source: EdgeSource::Backstage,
            seen_at: Utc::now(),
            mode: TopologyMode::Replace,
            services: import.services.clone(),
        },
        "apply_topology",
    )
    .await?;
    for warning in &import.warnings {
        tracing::warn!(warning = %warning, "backstage import");
    }
    tracing::info!(
        entities = import.entities,
        services = import.services.len(),
        edges,
        "imported backstage topology"
    );
    Ok(Json(json!({
        "source": EdgeSource::Backstage,
        "entities": import.entities,
        "edges": edges,
        "services": import.services,
        "warnings": import.warnings,
    }))
    .into_response())
}

/// A service of `POST /v1/topology/mesh`. Unknown fields are rejected.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshServiceInput {
    /// Service name.
    #[schema(value_type = ServiceName, required = true)]
    pub name: Option<String>,
    /// Namespace (absent: none).
    #[schema(value_type = Option<deploygraph_model::schema::Namespace>)]
    pub namespace: Option<String>,
    /// Environment.
    #[schema(value_type = Environment, required = true)]
    pub environment: Option<String>,
    /// Cluster (absent: `default`).
    #[schema(value_type = Option<deploygraph_model::Cluster>)]
    pub cluster: Option<String>,
}

/// One observed call: `service` called `depends_on`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshEdgeInput {
    /// The caller.
    #[schema(required = true, nullable = false)]
    pub service: Option<MeshServiceInput>,
    /// The service called.
    #[schema(required = true, nullable = false)]
    pub depends_on: Option<MeshServiceInput>,
}

/// The body of `POST /v1/topology/mesh`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshImportInput {
    /// Calls seen, each recorded as a `mesh` edge last seen now; a call of a service to itself
    /// is left out. At most 100,000.
    #[schema(required = true, nullable = false, max_items = 100000)]
    pub edges: Option<Vec<MeshEdgeInput>>,
}

fn mesh_service(field: &str, input: Option<MeshServiceInput>) -> Result<ServiceRef, ApiError> {
    let input = input.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let name = input
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("{field}.name"), "is required"))?;
    Ok(ServiceRef {
        name: ServiceName::parse(&name)
            .map_err(|e| ApiError::invalid(format!("{field}.name"), e.message))?,
        namespace: namespace(&format!("{field}.namespace"), input.namespace)?,
        environment: environment(
            &format!("{field}.environment"),
            input.environment.as_deref(),
        )?,
        cluster: cluster(&format!("{field}.cluster"), input.cluster.as_deref())?,
    })
}

impl MeshImportInput {
    /// Validates the edges into one entry per calling service.
    ///
    /// # Errors
    /// The field at fault (`edges[3].depends_on.name`).
    pub fn validate(self) -> Result<Vec<ServiceTopology>, ApiError> {
        let edges = self
            .edges
            .ok_or_else(|| ApiError::invalid("edges", "is required"))?;
        if edges.len() > MAX_MESH_EDGES {
            return Err(ApiError::invalid(
                "edges",
                format!("has more than {MAX_MESH_EDGES} edges"),
            ));
        }
        let mut pairs = Vec::with_capacity(edges.len());
        for (i, edge) in edges.into_iter().enumerate() {
            let from = mesh_service(&format!("edges[{i}].service"), edge.service)?;
            let to = mesh_service(&format!("edges[{i}].depends_on"), edge.depends_on)?;
            pairs.push((from, to));
        }
        Ok(group_edges(pairs))
    }
}

/// Edges grouped by calling service, without self-calls: a merge write of them.
pub fn group_edges(
    pairs: impl IntoIterator<Item = (ServiceRef, ServiceRef)>,
) -> Vec<ServiceTopology> {
    let mut by_service: std::collections::BTreeMap<ServiceRef, Vec<ServiceRef>> =
        std::collections::BTreeMap::new();
    for (from, to) in pairs {
        if from != to {
            by_service.entry(from).or_default().push(to);
        }
    }
    by_service
        .into_iter()
        .map(|(service, mut depends_on)| {
            depends_on.sort();
            depends_on.dedup();
            ServiceTopology {
                service,
                owner: None,
                tier: None,
                depends_on,
            }
        })
        .collect()
}

/// `POST /v1/topology/mesh`: records observed calls as `mesh` dependencies, last seen now.
/// Nothing is removed: an edge no longer observed keeps its `last_seen_at`.
#[utoipa::path(post, path = "/v1/topology/mesh", tag = "services",
    request_body(content = MeshImportInput, content_type = "application/json"),
    responses((status = 200, description = "Recorded", body = crate::openapi::JsonObject)),
    security(("bearer" = [])))]
pub(crate) async fn import_mesh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: MeshImportInput = parse_json_within(TOPOLOGY_MAX_BODY_BYTES, &headers, body)?;
    let services = input.validate()?;
    let edges: usize = services.iter().map(|s| s.depends_on.len()).sum();
    let seen_at = Utc::now();
    apply(
        &state,
        TopologyUpdate {
            source: EdgeSource::Mesh,
            seen_at,
            mode: TopologyMode::Merge,
            services,
        },
        "apply_topology",
    )
    .await?;
    tracing::info!(edges, "recorded mesh topology");
    Ok(Json(json!({
        "source": EdgeSource::Mesh,
        "edges": edges,
        "last_seen_at": deploygraph_model::format_time(&seen_at),
    }))
    .into_response())
}
