//! The OpenAPI 3.1 document served at `/v1/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` declarations and the request types the handlers parse, whose schemas come
//! from the validators' own constants ([`deploygraph_model::schema`]).
//!
//! What every operation may answer besides its success is added here, from what the operation
//! takes: a body (400, 413, 415, 422), parameters (422), the token (401), the store (503 with
//! `Retry-After`). Every error has the same body, [`ErrorBody`].

use crate::summaries::ClosedVariants;
use serde::Serialize;
use std::borrow::Cow;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The error body of every response that is not a success.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_field`, `unauthorized`, `store_unavailable` …).
    pub code: String,
    /// For humans.
    pub message: String,
    /// The offending input field (`images[0].digest`), when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// A page of a listing: every listing that stops at a page size says so.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListPage {
    /// The items, newest first.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// More items match than this page holds: pass `next_cursor` as `cursor` for the next page.
    pub truncated: bool,
    /// The `cursor` of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Any JSON object (a response this document does not detail field by field).
pub struct JsonObject;

impl PartialSchema for JsonObject {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new().schema_type(Type::Object).build(),
        ))
    }
}

impl ToSchema for JsonObject {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JsonObject")
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "deploygraph",
        description = "Deployments, infra snapshots, chaos runs and alerts as a knowledge graph, \
                       and which change caused an alert.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::handlers::record_deployment,
        crate::handlers::list_deployments,
        crate::handlers::get_deployment,
        crate::handlers::record_cdevent,
        crate::changes::record_changes,
        crate::changes::get_change,
        crate::handlers::list_services,
        crate::handlers::service_deployments,
        crate::handlers::take_snapshot,
        crate::handlers::get_snapshot,
        crate::handlers::latest_snapshot,
        crate::handlers::deployment_snapshot,
        crate::handlers::openapi,
        crate::handlers::healthz,
        crate::handlers::readyz,
        crate::metrics::render,
        crate::rca::alertmanager,
        crate::rca::list_alerts,
        crate::rca::suspects,
        crate::rca::reattribute,
        crate::verdicts::record_verdict,
        crate::topology::put_dependencies,
        crate::topology::get_dependencies,
        crate::topology::import_backstage,
        crate::topology::import_mesh,
        crate::rca::timeline,
        crate::ask::ask,
        crate::rca::common_factors,
        crate::rca::dora,
        crate::rca::incident_report,
        crate::rca::cypher,
        crate::rca::record_chaos_run,
        crate::rca::list_chaos_runs,
        crate::rca::list_gate_overrides,
        crate::rca::service_certificates,
        crate::rca::get_chaos_run,
        crate::rca::resilience,
        crate::canary::record_analysis,
        crate::canary::deployment_analyses,
        crate::rca::deployment_alerts,
        crate::summaries::record_summary,
        crate::summaries::service_summaries,
        crate::canary::judge::judge,
        crate::canary::flagger::flagger,
        crate::rollback::record_rollback,
        crate::agent::record_batch,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        ListPage,
        crate::rca::ReportFormat,
        deploygraph_model::ServiceName,
        deploygraph_model::Environment,
        deploygraph_model::Cluster,
        deploygraph_model::DeploymentStatus,
        deploygraph_model::ChangeType,
        deploygraph_model::ChangeEventInput,
        deploygraph_model::VerdictInput,
        deploygraph_model::VerdictKind,
        deploygraph_model::SubjectKind,
        crate::verdicts::StoredVerdict,
        deploygraph_model::schema::InputTime,
        deploygraph_model::schema::Fingerprint,
        deploygraph_model::schema::Namespace,
        deploygraph_model::CanaryAnalysisInput,
        deploygraph_model::MetricVerdictInput,
        deploygraph_model::CanaryVerdict,
        deploygraph_model::CanaryBaselineKind,
        deploygraph_model::CanaryMetricKind,
        crate::summaries::ReleaseSummaryInput,
        crate::summaries::SummaryWindow,
        crate::summaries::SummaryMetrics,
        crate::canary::judge::JudgeAnswer,
        crate::canary::judge::JudgeVerdict,
        crate::canary::judge::JudgedSide,
        crate::canary::judge::JudgedBaseline,
        crate::canary::judge::JudgeRecord,
        crate::canary::judge::FlaggerCall,
        crate::canary::judge::TemplateName,
        crate::canary::judge::WindowText,
        crate::canary::judge::SelectorText,
        crate::canary::flagger::FlaggerPayload,
        crate::canary::flagger::FlaggerMetadata,
    )),
    modifiers(&ErrorResponses, &ClosedVariants),
)]
struct ApiDoc;

/// The document, built now (input times are bounded by today's date).
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// Paths a read token does not guard.
const UNGUARDED: [&str; 2] = ["/healthz", "/readyz"];

/// The document a server with a read token (`serve --read-token`) serves: every `GET` but
/// `/healthz` and `/readyz` needs the read token or the write token, and may answer 401.
pub fn document_with_read_token() -> Document {
    let mut doc = document();
    for (path, item) in &mut doc.paths.paths {
        if UNGUARDED.contains(&path.as_str()) {
            continue;
        }
        if let Some(op) = item.get.as_mut() {
            if op.security.as_ref().is_none_or(Vec::is_empty) {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
            }
            add(op, "401", unauthorized());
        }
    }
    doc
}

fn unauthorized() -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description("The bearer token is missing or wrong.")
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new().schema(String::schema()).build(),
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// Paths that never touch the store and sit outside the concurrency budgets.
const STORELESS: [&str; 3] = ["/healthz", "/metrics", "/v1/openapi.json"];

struct ErrorResponses;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, status: &str, response: RefOr<utoipa::openapi::Response>) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert(response);
}

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token given to `serve --token`: writes require it when set, and \
                         `POST /v1/cypher` always. With `serve --read-token`, every GET but \
                         /healthz and /readyz requires the read token or the write token.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in &mut openapi.paths.paths {
            let storeless = STORELESS.contains(&path.as_str());
            for op in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if op.request_body.is_some() {
                    add(op, "400", error_response("The body is not JSON."));
                    add(
                        op,
                        "413",
                        error_response("The body is larger than the server's limit."),
                    );
                    add(
                        op,
                        "415",
                        error_response("The body is not sent as application/json."),
                    );
                }
                if op.request_body.is_some()
                    || op.parameters.as_ref().is_some_and(|p| !p.is_empty())
                {
                    add(
                        op,
                        "422",
                        error_response(
                            "A field or parameter is invalid; `field` names it. Unknown fields \
                             and parameters are invalid too.",
                        ),
                    );
                }
                if op.security.is_some() {
                    add(op, "401", unauthorized());
                }
                if !storeless {
                    add(
                        op,
                        "503",
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(
                                    "Retry after the delay: the store is unavailable \
                                     (`store_unavailable`), the server is at its limit of \
                                     concurrent requests (`overloaded`), or the request ran past \
                                     the server's time limit (`timeout`).",
                                )
                                .header(
                                    "Retry-After",
                                    HeaderBuilder::new()
                                        .schema(u64::schema())
                                        .description(Some("Seconds"))
                                        .build(),
                                )
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build(),
                        ),
                    );
                }
            }
        }
    }
}
