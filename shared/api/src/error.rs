//! One error type for every HTTP response that is not a success, rendered as
//! `{"error":{"code":"…","message":"…","field":"…"}}`. Domain errors map to status codes here
//! and nowhere else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// For humans.
    pub message: String,
    /// The offending input field, when one is to blame.
    pub field: Option<String>,
    /// `Retry-After` seconds (503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400: the body is not JSON.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 422: `field` is invalid.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            field: (!field.is_empty()).then_some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint requires Authorization: Bearer <token>",
        )
    }

    /// 403: the request is understood and refused, whoever asks (`field` names what is
    /// refused, when one input is to blame).
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            field: (!field.is_empty()).then_some(field),
            ..Self::new(StatusCode::FORBIDDEN, "forbidden", message)
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::CONFLICT, "conflict", message)
        }
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        )
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            )
        }
    }

    /// 503 `overloaded` with `Retry-After`: the route's concurrency budget (`write` or `read`)
    /// is spent; the request was not started.
    pub fn overloaded(budget: &str, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("the server is at its limit of concurrent {budget} requests; retry later"),
            )
        }
    }

    /// 503 `timeout` with `Retry-After`: the request ran longer than the server's limit and was
    /// stopped.
    pub fn timed_out(limit: std::time::Duration, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than the server's limit of {} ms and was stopped; \
                     a write it made is complete or absent, so retrying is safe",
                    limit.as_millis()
                ),
            )
        }
    }

    /// 404 `unsupported`: a capability this server is not configured for (or its store lacks):
    /// the endpoint is absent here, and retrying does not change that.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "unsupported", message)
    }

    /// Maps a failed canary analysis: Prometheus not answering to 503 `prometheus_unavailable`
    /// with `Retry-After`, a query it refuses as invalid PromQL to 422 naming `template_field`
    /// (the template is to change), any other failed query to 502 `prometheus_error`; the rest
    /// (the analysis' input) to 422.
    pub fn from_canary(
        e: &deploygraph_canary::Error,
        template_field: &str,
        retry_after: u64,
    ) -> Self {
        let text = error_chain(e);
        match e {
            deploygraph_canary::Error::Query { source, .. } if source.is_unreachable() => {
                tracing::warn!(error.message = %e, error.cause_chain = ?e, "prometheus unavailable");
                Self {
                    retry_after: Some(retry_after),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "prometheus_unavailable",
                        format!("{text}; retry later"),
                    )
                }
            }
            deploygraph_canary::Error::Query { source, .. } if source.is_bad_query() => {
                Self::invalid(
                    template_field,
                    format!("{text} (the template's query is not valid PromQL)"),
                )
            }
            deploygraph_canary::Error::Query { .. } => {
                tracing::warn!(error.message = %e, error.cause_chain = ?e, "prometheus query failed");
                Self::new(StatusCode::BAD_GATEWAY, "prometheus_error", text)
            }
            e => Self::invalid(e.field().unwrap_or_default(), text),
        }
    }

    /// 500. The cause is logged where it is handled, not sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// Maps a store error: outages to 503, a bad cursor to 422, a refused user query to 400, one
    /// over its time limit to 504, the rest to 500 (logged).
    pub fn from_store(e: &deploygraph_store::Error, retry_after: u64) -> Self {
        match e {
            deploygraph_store::Error::NotFound { .. } => Self::not_found(e.to_string()),
            deploygraph_store::Error::InvalidCursor => {
                Self::invalid("cursor", "not a cursor this server issued")
            }
            // A capability this store lacks (Cypher on SQLite): the endpoint is absent here.
            deploygraph_store::Error::Unsupported { .. } => {
                Self::new(StatusCode::NOT_FOUND, "unsupported", e.to_string())
            }
            deploygraph_store::Error::QueryRefused { .. } => Self {
                field: Some("query".into()),
                ..Self::new(StatusCode::BAD_REQUEST, "query_refused", e.to_string())
            },
            // The database stopped the query at its limit: the request's fault, not an outage,
            // so no Retry-After; clients must not retry it unchanged.
            deploygraph_store::Error::QueryTimedOut { .. } => Self {
                field: Some("query".into()),
                ..Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "query_timed_out",
                    e.to_string(),
                )
            },
            e if e.is_unavailable() => {
                tracing::warn!(error.message = %e, error.cause_chain = ?e, "store unavailable");
                Self::unavailable(format!("{e}; retry later"), retry_after)
            }
            e => {
                tracing::error!(error.message = %e, error.cause_chain = ?e, "store operation failed");
                Self::internal()
            }
        }
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

impl From<deploygraph_model::Error> for ApiError {
    fn from(e: deploygraph_model::Error) -> Self {
        Self::invalid(e.field.clone(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
