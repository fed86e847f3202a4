//! Bearer tokens: the write token on writes and user Cypher, the optional read token on reads.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};

/// The token of an `Authorization: Bearer …` header.
fn presented(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether `presented` is one of `accepted`, compared in constant time.
fn matches(presented: Option<&str>, accepted: &[&SecretString]) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    // Every token is compared, so the time taken does not tell which one nearly matched.
    accepted.iter().fold(false, |found, token| {
        found | constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes())
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Rejects write requests without the configured bearer token (open when none is configured).
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.token
        && !matches(presented(&request), &[token])
    {
        return ApiError::unauthorized().into_response();
    }
    next.run(request).await
}

/// Rejects requests without the write token, and every request when no token is configured:
/// for endpoints that are never anonymous (`POST /v1/cypher`).
pub(crate) async fn require_configured_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.config.token else {
        return ApiError::forbidden(
            "",
            "this endpoint needs a token and this server has none: start it with --token \
             (or --token-file) and send Authorization: Bearer <token>",
        )
        .into_response();
    };
    if !matches(presented(&request), &[token]) {
        return ApiError::unauthorized().into_response();
    }
    next.run(request).await
}

/// Rejects reads (`GET`, `HEAD`) without the read token or the write token when a read token
/// is configured; other methods are left to [`require_token`].
pub(crate) async fn require_read_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    if is_read && let Some(read) = &state.config.read_token {
        let mut accepted = vec![read];
        accepted.extend(state.config.token.as_ref());
        if !matches(presented(&request), &accepted) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly() {
        let read = SecretString::from("read-token");
        let write = SecretString::from("write-token");
        assert!(matches(Some("read-token"), &[&read, &write]));
        assert!(matches(Some("write-token"), &[&read, &write]));
        assert!(!matches(Some("read-toke"), &[&read, &write]));
        assert!(!matches(Some(""), &[&read]));
        assert!(!matches(None, &[&read]));
    }
}
