//! The one data path of the commands: every command speaks the HTTP API, to a server with
//! `--server`, or with `--store` to the same router (`deploygraph_api::router`) served in this
//! process — no socket, each request handed to the router with `tower::ServiceExt::oneshot`.
//! So a command is written once, and the CLI cannot drift from the API.

use crate::cli::{AttributionArgs, RecordTarget};
use crate::commands::{Failure, attribution_settings, open_migrated};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::header;
use deploygraph_api::{ApiConfig, AppState};
use deploygraph_client::{Client, Request, Response, RetryPolicy, Transport, TransportError};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt as _;

/// How long a command in this process waits for the follow-ups of its writes (attribution,
/// re-attribution) before it leaves the rest pending in the store for a server to do.
const FOLLOW_UP_DEADLINE: Duration = Duration::from_secs(120);

/// The API's router, in this process.
struct InProcess {
    router: axum::Router,
}

#[async_trait]
impl Transport for InProcess {
    fn retries(&self) -> bool {
        // The router answers the same way every time; a store outage is reported at once.
        false
    }

    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let mut builder = axum::http::Request::builder()
            .method(request.method.as_str())
            .uri(&request.path_and_query);
        if let Some(token) = request.bearer_token() {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match request.body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(body)
            }
            None => Body::empty(),
        };
        let request = builder
            .body(body)
            .map_err(|e| TransportError::Failed(Box::new(e)))?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| TransportError::Failed(Box::new(e)))?;
        Ok(Response {
            status,
            retry_after,
            body: body.to_vec(),
        })
    }
}

/// What the router in this process is configured with, beyond the store.
#[derive(Debug, Default, Clone)]
pub struct Local {
    /// Attribution settings (`--attribution-*`); the defaults otherwise.
    pub attribution: Option<deploygraph_analysis::attribution::Settings>,
    /// Time limit of Cypher queries.
    pub cypher_timeout: Option<Duration>,
    /// Row cap of Cypher queries.
    pub cypher_max_rows: Option<usize>,
}

impl Local {
    /// With the attribution settings of `args`.
    ///
    /// # Errors
    /// When they are not valid (exit 2).
    pub fn attribution(args: &AttributionArgs) -> Result<Self, Failure> {
        Ok(Self {
            attribution: Some(attribution_settings(args)?),
            ..Self::default()
        })
    }
}

/// A client of `--server`, or of the router over `--store` in this process. Against a server,
/// requests are tried `--attempts` times; in this process nothing is retried.
///
/// # Errors
/// When the store cannot be opened or migrated (exit 3 when it cannot be reached, else 2).
pub async fn connect(target: &RecordTarget, local: Local) -> Result<Client, Failure> {
    let retry = RetryPolicy {
        attempts: target.attempts,
        ..RetryPolicy::default()
    };
    if let Some(server) = &target.server {
        let token = target.token.clone().map(SecretString::from);
        return Client::new(server, token, retry)
            .map_err(|e| Failure::usage(format!("--server {server}: {e}")));
    }
    let store = open_migrated(&target.store).await?;
    // Writes and user Cypher need the token; this process's client is the only one that
    // holds it.
    let token = format!("{:032x}", rand::random::<u128>());
    let defaults = ApiConfig::default();
    let config = ApiConfig {
        token: Some(SecretString::from(token.clone())),
        // Nothing crosses a network here: a large changes file is the user's own input.
        max_body_bytes: 64 * 1024 * 1024,
        alertmanager_max_body_bytes: 64 * 1024 * 1024,
        // One user's own command: it runs as long as it takes (user Cypher keeps its limit).
        request_timeout: std::time::Duration::from_secs(24 * 3600),
        attribution: local.attribution.unwrap_or(defaults.attribution),
        cypher_timeout: local.cypher_timeout.unwrap_or(defaults.cypher_timeout),
        cypher_max_rows: local.cypher_max_rows.unwrap_or(defaults.cypher_max_rows),
        ..defaults
    };
    // Each write's follow-ups are done before its answer: no server runs them here.
    let router = deploygraph_api::router_with_inline_follow_ups(
        AppState::new(store, config),
        FOLLOW_UP_DEADLINE,
    );
    Ok(Client::with_transport(
        Arc::new(InProcess { router }),
        Some(SecretString::from(token)),
        retry,
    ))
}
