//! `POST /v1/canary/flagger`: one canary analysis run by the server for a Flagger webhook.
//!
//! Flagger posts `{name, namespace, phase, checksum, metadata}` (its `CanaryWebhookPayload`)
//! to each webhook of a Canary's analysis and counts an answer with a status above 202 as a
//! failed check; after `analysis.threshold` failed checks it rolls the canary back. So:
//!
//! - **Pass → 200**, **Fail → 412** (`Precondition Failed`: the canary is not as good as its
//!   baseline), both with the verdict and its evidence ([`super::judge::JudgeAnswer`]; Flagger
//!   shows the body's start, `{"verdict":"Fail","rule":…`, in its events).
//! - **Inconclusive and NoData → 200**: too little data is never a failure (an idle worker or a
//!   canary without traffic yet is not rolled back, fluxcd/flagger#361); the body says which.
//! - Errors are the API's (422 naming the field, 404 `unsupported` without Prometheus, 503 with
//!   `Retry-After` when Prometheus does not answer): each counts as a failed check too, as
//!   Flagger counts every other failing webhook.
//!
//! **Which pods are which.** Flagger runs the new version as the target Deployment
//! `TARGET` and the promoted one as `TARGET-primary`, whose pods are named
//! `TARGET-<hash>-<suffix>` and `TARGET-primary-<hash>-<suffix>`. By default `TARGET` is the
//! Canary's `name`, and the selectors are
//! `namespace="NAMESPACE",pod=~"TARGET-[0-9a-zA-Z]+-[0-9a-zA-Z]+"` (canary) and
//! `namespace="NAMESPACE",pod=~"TARGET-primary-[0-9a-zA-Z]+-[0-9a-zA-Z]+"` (baseline) — PromQL
//! regular expressions are anchored, so the canary's does not match the primary's pods. The
//! webhook's `metadata` overrides: `target` (the Deployment's name when it differs from the
//! Canary's), `canary_selector`, `baseline_selector`, and names `template`, `window`, `service`
//! (default `TARGET`) and `deployment` (record the analysis as that deployment's). Each of
//! these may be given in the query string instead, not in both; unknown metadata keys are
//! refused, so a misspelt key is not silently ignored.
//!
//! **The run since its start.** Flagger calls the webhook at every interval of one rollout
//! with the same `checksum` (of the canary's pod template). The server remembers when it first
//! judged each (namespace, name, checksum, template, selectors) and, from the second call on,
//! also runs the sequential test of the critical error ratio on everything since then
//! (`deploygraph_canary::sequential`, as `canary analyze` does): a failure there is a `Fail`
//! (412) even when the window alone has too little traffic. Remembered in memory until 10 minutes
//! pass without a call (the same revision tried again after a rollback is a new run); a call
//! without a checksum is judged on its window only.

use super::judge::{
    Analysis, Fields, FlaggerCall, JudgeAnswer, JudgeVerdict, SelectorText, TemplateName,
    WindowText, deployment, run, selector, service, window,
};
use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{parse_json, query_params};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use deploygraph_canary::Selector;
use serde::Deserialize;

/// A Kubernetes object name as Flagger sends it (a DNS-1123 label).
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest name or namespace.
pub const NAME_MAX_LEN: usize = 63;

/// Flagger's webhook payload (`CanaryWebhookPayload`). Fields Flagger may add later are
/// ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FlaggerPayload {
    /// The Canary's name.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    pub name: String,
    /// The Canary's namespace.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    pub namespace: String,
    /// The Canary's phase (`Progressing`, …), kept in the answer.
    #[schema(max_length = 64)]
    pub phase: String,
    /// Flagger's checksum of the canary's configuration (Flagger 1.x), kept in the answer.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub checksum: Option<String>,
    /// The webhook's `metadata`: the analysis' settings (module docs).
    #[serde(default)]
    pub metadata: Option<FlaggerMetadata>,
}

/// The settings a webhook's `metadata` may carry; every value is a string, as in Flagger.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlaggerMetadata {
    /// The analysis template.
    #[schema(value_type = Option<TemplateName>)]
    pub template: Option<String>,
    /// The window (default `5m`).
    #[schema(value_type = Option<WindowText>)]
    pub window: Option<String>,
    /// The service under analysis (default: the target).
    #[schema(value_type = Option<deploygraph_model::ServiceName>)]
    pub service: Option<String>,
    /// The Deployment Flagger rolls out, when its name is not the Canary's.
    #[schema(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    pub target: Option<String>,
    /// Label matchers of the canary, instead of the pod-name convention.
    #[schema(value_type = Option<SelectorText>)]
    pub canary_selector: Option<String>,
    /// Label matchers of the baseline, instead of the pod-name convention.
    #[schema(value_type = Option<SelectorText>)]
    pub baseline_selector: Option<String>,
    /// Record the analysis as this deployment's.
    #[schema(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    pub deployment: Option<String>,
}

/// The query string of `POST /v1/canary/flagger`: the same settings as the metadata's.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FlaggerParams {
    /// The analysis template (here or in `metadata.template`).
    #[param(value_type = Option<TemplateName>)]
    template: Option<String>,
    /// The window (default `5m`).
    #[param(value_type = Option<WindowText>)]
    window: Option<String>,
    /// The service under analysis (default: the target).
    #[param(value_type = Option<deploygraph_model::ServiceName>)]
    service: Option<String>,
    /// The Deployment Flagger rolls out, when its name is not the Canary's.
    #[param(pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length = 63)]
    target: Option<String>,
    /// Label matchers of the canary.
    #[param(value_type = Option<SelectorText>)]
    canary_selector: Option<String>,
    /// Label matchers of the baseline.
    #[param(value_type = Option<SelectorText>)]
    baseline_selector: Option<String>,
    /// Record the analysis as this deployment's.
    #[param(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    deployment: Option<String>,
}

/// A DNS-1123 label of at most 63 characters.
fn is_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= NAME_MAX_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn name(field: &str, value: &str) -> Result<String, ApiError> {
    if is_name(value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{value:?} is not a Kubernetes name (a DNS-1123 label: a-z, 0-9 and -, at most 63)"
            ),
        ))
    }
}

/// One setting from the query string or the metadata (not both): its value and the field that
/// gave it.
fn setting<'a>(
    key: &str,
    query: Option<&'a String>,
    metadata: Option<&'a String>,
) -> Result<Option<(&'a str, String)>, ApiError> {
    match (query, metadata) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            format!("metadata.{key}"),
            format!(
                "{key} is given both in the query string and in the webhook's metadata; give it once"
            ),
        )),
        (Some(q), None) => Ok(Some((q.as_str(), key.to_owned()))),
        (None, Some(m)) => Ok(Some((m.as_str(), format!("metadata.{key}")))),
        (None, None) => Ok(None),
    }
}

/// The conventional selector of Flagger's pods of `deployment` in `namespace`.
fn pods_of(namespace: &str, deployment: &str) -> Result<Selector, ApiError> {
    // `.` is the only regex metacharacter a DNS-1123 name may hold (labels hold none).
    let pattern = deployment.replace('.', "[.]");
    Selector::parse(&format!(
        "namespace=\"{namespace}\",pod=~\"{pattern}-[0-9a-zA-Z]+-[0-9a-zA-Z]+\""
    ))
    .map_err(|e| {
        tracing::error!(error.message = %e, "a Flagger pod selector does not parse");
        ApiError::internal()
    })
}

/// `POST /v1/canary/flagger`: runs one analysis for Flagger and answers 200 unless it failed
/// (module docs).
#[utoipa::path(post, path = "/v1/canary/flagger", tag = "canary",
    params(FlaggerParams),
    request_body(content = FlaggerPayload, content_type = "application/json"),
    responses(
        (status = 200, description = "The analysis did not fail: `verdict` is Pass, Inconclusive or NoData (too little data never fails a canary); the evidence", body = super::judge::JudgeAnswer),
        (status = 412, description = "The analysis failed (`verdict`: Fail): Flagger counts a failed check; the evidence", body = super::judge::JudgeAnswer),
        (status = 403, description = "The server has no write token, so the hooks are off", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such template (`field` names it) or deployment, or the server has no Prometheus (`unsupported`: start it with --prometheus)", body = crate::openapi::ErrorBody),
        (status = 502, description = "Prometheus answered a query with an error, or with an answer that cannot be used (`prometheus_error`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "Retry after the delay: Prometheus did not answer (`prometheus_unavailable`), the store is unavailable (`store_unavailable`), the server is at its limit of concurrent requests (`overloaded`), or the request ran past the server's time limit (`timeout`)", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
    security(("bearer" = [])))]
pub(crate) async fn flagger(
    State(state): State<AppState>,
    query: Result<Query<FlaggerParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = query_params(query)?;
    let payload: FlaggerPayload = parse_json(&state, &headers, body)?;
    let canary_name = name("name", &payload.name)?;
    let namespace = name("namespace", &payload.namespace)?;
    let m = payload.metadata.unwrap_or_default();
    if payload.phase.chars().count() > 64 {
        return Err(ApiError::invalid("phase", "longer than 64 characters"));
    }
    if payload
        .checksum
        .as_ref()
        .is_some_and(|c| c.chars().count() > 256)
    {
        return Err(ApiError::invalid("checksum", "longer than 256 characters"));
    }

    let target = match setting("target", q.target.as_ref(), m.target.as_ref())? {
        Some((v, field)) => name(&field, v)?,
        None => canary_name.clone(),
    };
    let service = match setting("service", q.service.as_ref(), m.service.as_ref())? {
        Some((v, field)) => service(&field, v)?,
        None => service("name", &target)?,
    };
    let Some((template_name, template_field)) =
        setting("template", q.template.as_ref(), m.template.as_ref())?
    else {
        return Err(ApiError::invalid(
            "template",
            "name the analysis template in the query string (?template=NAME) or in the webhook's metadata (template: NAME)",
        ));
    };
    let template =
        super::judge::load_template(&state.config.canary, &template_field, template_name)?;
    let window = match setting("window", q.window.as_ref(), m.window.as_ref())? {
        Some((v, field)) => window(&field, Some(v))?,
        None => window("window", None)?,
    };
    let canary = match setting(
        "canary_selector",
        q.canary_selector.as_ref(),
        m.canary_selector.as_ref(),
    )? {
        Some((v, field)) => selector(&field, v)?,
        None => pods_of(&namespace, &target)?,
    };
    let (baseline, baseline_field) = match setting(
        "baseline_selector",
        q.baseline_selector.as_ref(),
        m.baseline_selector.as_ref(),
    )? {
        Some((v, field)) => (selector(&field, v)?, field),
        None => (
            pods_of(&namespace, &format!("{target}-primary"))?,
            "baseline_selector".to_owned(),
        ),
    };
    let (deployment, deployment_field) =
        match setting("deployment", q.deployment.as_ref(), m.deployment.as_ref())? {
            Some((v, field)) => (Some(deployment(&field, v)?), field),
            None => (None, "deployment".to_owned()),
        };
    let analysis = Analysis {
        service,
        template_name: template_name.to_owned(),
        template,
        canary,
        baseline,
        window,
        deployment,
        // The run: one canary revision (Flagger's checksum of its pod template). Without a
        // checksum, rollouts cannot be told apart.
        run: payload
            .checksum
            .as_ref()
            .map(|checksum| vec![namespace.clone(), canary_name.clone(), checksum.clone()]),
        hook: "flagger",
        fields: Fields {
            template: template_field,
            baseline: baseline_field,
            deployment: deployment_field,
        },
    };
    analysis.check_sides()?;
    let mut answer: JudgeAnswer = run(&state, analysis).await?;
    answer.flagger = Some(FlaggerCall {
        name: canary_name,
        namespace,
        phase: payload.phase,
        checksum: payload.checksum,
    });
    let status = if answer.verdict == JudgeVerdict::Fail {
        StatusCode::PRECONDITION_FAILED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaggers_pods_are_told_apart_by_name() {
        let canary = pods_of("prod", "podinfo").expect("canary").to_string();
        let primary = pods_of("prod", "podinfo-primary")
            .expect("primary")
            .to_string();
        assert_eq!(
            canary,
            r#"namespace="prod",pod=~"podinfo-[0-9a-zA-Z]+-[0-9a-zA-Z]+""#
        );
        // PromQL anchors its regular expressions: the canary's does not match primary pods.
        let re = regex::Regex::new("^podinfo-[0-9a-zA-Z]+-[0-9a-zA-Z]+$").expect("re");
        assert!(re.is_match("podinfo-5d9f7c8b6-x2k9q"));
        assert!(!re.is_match("podinfo-primary-5d9f7c8b6-x2k9q"));
        assert!(primary.contains("podinfo-primary-"));
    }

    #[test]
    fn a_setting_is_given_once() {
        let q = "a".to_owned();
        let m = "b".to_owned();
        assert_eq!(
            setting("template", Some(&q), None).expect("query"),
            Some(("a", "template".to_owned()))
        );
        assert_eq!(
            setting("template", None, Some(&m)).expect("metadata"),
            Some(("b", "metadata.template".to_owned()))
        );
        let e = setting("template", Some(&q), Some(&m)).expect_err("both");
        assert_eq!(e.field.as_deref(), Some("metadata.template"));
        assert!(is_name("podinfo") && !is_name("Podinfo") && !is_name("-a") && !is_name(""));
    }
}
