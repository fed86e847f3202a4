//! Release summaries over HTTP: `POST /v1/deployments/{uid}/summaries` (what a deployment
//! measured on one template's metrics once it had settled, `deploygraph canary summarize`) and
//! `GET /v1/services/{name}/summaries` (the summaries of a service's earlier releases: the
//! history baseline of a canary that has no old version running beside it).
//!
//! One summary per deployment and template: the first record is created (201), a later one
//! replaces it (200). Every metric's data is checked as the judge reads it (a ratio's numerator
//! at most its denominator, a histogram's bounds finite and increasing) and kept in its bounded
//! form (`MetricData::summary`: raw samples become at most 512 weighted points). A summary of a
//! deployment that is not stored is a 404, and nothing is written.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{from_value, parse_json, query_params};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use deploygraph_canary::{MetricData, Window};
use deploygraph_model::release_summary::limits;
use deploygraph_model::schema::parse_input_time;
use deploygraph_model::{Environment, NewReleaseSummary, ServiceName};
use deploygraph_store::{RecordKind, SummaryFilter};
use serde::Deserialize;
use serde_json::json;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// A PromQL duration that is not zero, as the window of a summary: `10m`, `1h30m`, `90s`.
pub(crate) struct SummaryWindow;

impl PartialSchema for SummaryWindow {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "The window the metrics cover: a PromQL duration that is not zero (`10m`, \
                     `1h30m`; units ms s m h d w y).",
                ))
                .pattern(Some(deploygraph_model::release_summary::WINDOW_PATTERN))
                .min_length(Some(2))
                .max_length(Some(limits::WINDOW))
                .build(),
        ))
    }
}

impl ToSchema for SummaryWindow {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SummaryWindow")
    }
}

/// Closes the variants of the judge's tagged enums in the document (`MetricData`'s
/// `{kind, data}` and `Distribution`'s one-key objects), which the server reads with no other
/// field: utoipa leaves their objects open.
pub(crate) struct ClosedVariants;

impl utoipa::Modify for ClosedVariants {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in ["MetricData", "Distribution"] {
            if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(name) {
                for item in &mut one_of.items {
                    if let RefOr::T(Schema::Object(object)) = item {
                        object.additional_properties =
                            Some(Box::new(AdditionalProperties::FreeForm(false)));
                    }
                }
            }
        }
    }
}

/// The metrics of a summary: per metric name (1 to 256 characters), its data.
pub(crate) struct SummaryMetrics;

impl PartialSchema for SummaryMetrics {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "Per metric name (1 to 256 characters), what the release measured: \
                     `{\"kind\": \"ratio\", \"data\": {\"numerator\", \"denominator\"}}` (numerator \
                     at most denominator) or `{\"kind\": \"distribution\", \"data\": {\"samples\" | \
                     \"weighted\" | \"histogram\": …}}` (histogram bounds strictly increasing).",
                ))
                .property_names(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(limits::NAME)),
                ))
                .additional_properties(Some(Ref::from_schema_name("MetricData")))
                .min_properties(Some(1))
                .max_properties(Some(limits::METRICS))
                .build(),
        ))
    }
}

impl ToSchema for SummaryMetrics {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SummaryMetrics")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((MetricData::name().into_owned(), MetricData::schema()));
        MetricData::schemas(schemas);
    }
}

/// The body of `POST /v1/deployments/{uid}/summaries`: what the deployment measured on one
/// analysis template's metrics over a window once it had settled. Unknown fields are rejected.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseSummaryInput {
    /// The analysis template's name.
    #[schema(min_length = 1, max_length = 256)]
    template: String,
    /// The window the metrics cover.
    #[schema(value_type = SummaryWindow)]
    window: String,
    /// When the window ended.
    #[schema(value_type = deploygraph_model::schema::InputTime)]
    settled_at: String,
    /// Per metric name, what the release measured.
    #[schema(value_type = SummaryMetrics)]
    metrics: BTreeMap<String, MetricInput>,
}

/// One metric of a body as read: its `kind`, and its `data` read afterwards by the kind's
/// type. (A tagged enum would buffer `data` when it comes before `kind`, and the buffered
/// value is read more leniently than the document says: `5.0` not a count, an array as an
/// object.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricInput {
    kind: MetricTag,
    data: serde_json::Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MetricTag {
    Ratio,
    Distribution,
}

impl MetricInput {
    /// The judge's data; errors name `metrics.NAME.data…`.
    fn read(self, name: &str) -> Result<MetricData, ApiError> {
        let within = |e: ApiError| {
            let inner = e.field.clone().unwrap_or_default();
            ApiError {
                field: Some(if inner.is_empty() {
                    format!("metrics.{name}.data")
                } else {
                    format!("metrics.{name}.data.{inner}")
                }),
                ..e
            }
        };
        Ok(match self.kind {
            MetricTag::Ratio => MetricData::Ratio(from_value(self.data).map_err(within)?),
            MetricTag::Distribution => {
                MetricData::Distribution(from_value(self.data).map_err(within)?)
            }
        })
    }
}

/// `POST /v1/deployments/{uid}/summaries`: records (or replaces) the deployment's summary on a
/// template.
#[utoipa::path(post, path = "/v1/deployments/{uid}/summaries", tag = "canary",
    params(("uid" = String, Path, description = "The deployment's uid")),
    request_body(content = ReleaseSummaryInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded: the summary, with its uid and the deployment's service, version and start (`deployed_at`)", body = crate::openapi::JsonObject),
        (status = 200, description = "A later summary of the same deployment and template replaced the stored one, or it was already stored so: the summary", body = crate::openapi::JsonObject),
        (status = 404, description = "The deployment is not stored; nothing was written", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_summary(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: ReleaseSummaryInput = parse_json(&state, &headers, body)?;
    let mut metrics = serde_json::Map::new();
    for (name, metric) in input.metrics {
        let data = metric.read(&name)?;
        data.check()
            .map_err(|message| ApiError::invalid(format!("metrics.{name}"), message))?;
        let value = serde_json::to_value(data.summary())
            .map_err(|e| ApiError::invalid(format!("metrics.{name}"), e.to_string()))?;
        metrics.insert(name.clone(), value);
    }
    let summary = NewReleaseSummary::validate(
        &uid,
        input.template,
        input.window,
        &input.settled_at,
        metrics,
    )
    .map_err(|e| {
        if e.field == "deployment" {
            ApiError::not_found(format!("no deployment {uid:?}"))
        } else {
            ApiError::from(e)
        }
    })?;
    // The pattern admits only windows the judge reads; this is the judge's own reading.
    if let Err(e) = summary.window.parse::<Window>() {
        return Err(ApiError::invalid("window", e.to_string()));
    }
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away.
    let store = Arc::clone(&state.store);
    let result = crate::detached(async move { store.record_release_summary(&summary).await }).await;
    state.metrics.store_call("record_release_summary", started);
    let outcome = result.map_err(|e| match e {
        deploygraph_store::Error::NotFound { what, uid } => {
            ApiError::not_found(format!("{what} {uid} is not stored"))
        }
        e => ApiError::from_store(&e, state.config.retry_after_secs),
    })?;
    let s = &outcome.summary;
    tracing::info!(
        summary.uid = %s.uid,
        deployment.uid = %s.deployment,
        service = %s.service.name,
        template = %s.template,
        outcome = outcome.kind.as_str(),
        "recorded release summary"
    );
    let status = match outcome.kind {
        RecordKind::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(outcome.summary)).into_response())
}

/// The parameters of `GET /v1/services/{name}/summaries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SummaryParams {
    /// The environment of the service's deployments.
    #[param(value_type = deploygraph_model::Environment)]
    environment: String,
    /// The analysis template's name.
    #[param(min_length = 1, max_length = 256)]
    template: String,
    /// Only deployments that started before this time (default: now); a canary passes its own
    /// deployment's start.
    #[param(value_type = Option<deploygraph_model::schema::InputTime>)]
    before: Option<String>,
    /// Most summaries (default 10).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 50)]
    limit: Option<String>,
}

/// `GET /v1/services/{name}/summaries`: the history baseline of a canary.
#[utoipa::path(get, path = "/v1/services/{name}/summaries", tag = "canary",
    params(("name" = deploygraph_model::ServiceName, Path), SummaryParams),
    responses(
        (status = 200, description = "`{service, environment, template, before, items: [...]}`: the summaries on `template` of the service's deployments in `environment` that started before `before`, leaving out deployments that failed or were rolled back; the most recent deployment first, at most `limit`", body = crate::openapi::JsonObject),
    ))]
pub(crate) async fn service_summaries(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p: SummaryParams = query_params(query)?;
    let service = ServiceName::parse(&name).map_err(|e| ApiError::invalid("name", e.message))?;
    let environment = Environment::parse(&p.environment)
        .map_err(|e| ApiError::invalid("environment", e.message))?;
    if p.template.is_empty() || p.template.chars().count() > limits::NAME {
        return Err(ApiError::invalid(
            "template",
            format!("must be 1 to {} characters", limits::NAME),
        ));
    }
    let before = match &p.before {
        Some(t) => parse_input_time("before", t)?,
        None => chrono::Utc::now(),
    };
    let limit = match &p.limit {
        None => limits::HISTORY_DEFAULT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=limits::HISTORY).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("must be a whole number from 1 to {}", limits::HISTORY),
                )
            })?,
    };
    let filter = SummaryFilter {
        service,
        environment,
        template: p.template,
        before,
        limit,
    };
    let started = Instant::now();
    let items = state.store.release_summaries(&filter).await;
    state.metrics.store_call("release_summaries", started);
    let items = items.map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?;
    Ok(Json(json!({
        "service": filter.service,
        "environment": filter.environment,
        "template": filter.template,
        "before": deploygraph_model::format_time(&filter.before),
        "items": items,
    }))
    .into_response())
}
