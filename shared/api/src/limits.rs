//! Bounded work per request: a time limit, and separate concurrency budgets for writes and
//! reads with load shedding.
//!
//! An alert storm fills the write budget; reads keep their own, so an SRE's queries still
//! answer while the storm is absorbed. A request over its budget is not queued (a queue only
//! moves the wait into the client's timeout): it is answered at once with 503 `overloaded` and
//! `Retry-After`, which Alertmanager, the CLI and CI clients retry. Health routes and
//! `/metrics` sit outside both budgets.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Which concurrency budget a route draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Ingest and other writes.
    Write,
    /// Listings, queries and reports.
    Read,
}

impl Budget {
    /// The metric label (`write`, `read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
        }
    }
}

/// The two budgets' permits.
#[derive(Debug, Clone)]
pub struct Budgets {
    writes: Arc<Semaphore>,
    reads: Arc<Semaphore>,
}

impl Budgets {
    /// Budgets of `writes` and `reads` requests in flight (each at least 1).
    pub fn new(writes: usize, reads: usize) -> Self {
        Self {
            writes: Arc::new(Semaphore::new(writes.max(1))),
            reads: Arc::new(Semaphore::new(reads.max(1))),
        }
    }

    fn of(&self, budget: Budget) -> &Arc<Semaphore> {
        match budget {
            Budget::Write => &self.writes,
            Budget::Read => &self.reads,
        }
    }
}

/// Runs the request within `budget`, or answers 503 `overloaded` when the budget is spent.
async fn limit(state: &AppState, budget: Budget, request: Request, next: Next) -> Response {
    let Ok(_permit) = Arc::clone(state.budgets.of(budget)).try_acquire_owned() else {
        state.metrics.shed(budget.as_str());
        tracing::debug!(
            budget = budget.as_str(),
            "request shed: concurrency budget spent"
        );
        return ApiError::overloaded(budget.as_str(), state.config.retry_after_secs)
            .into_response();
    };
    next.run(request).await
}

/// Middleware: the write budget.
pub(crate) async fn writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    limit(&state, Budget::Write, request, next).await
}

/// Middleware: the read budget.
pub(crate) async fn reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    limit(&state, Budget::Read, request, next).await
}

/// Middleware: answers 503 `timeout` (with `Retry-After`) when the handler runs longer than
/// [`crate::ApiConfig::request_timeout`]. The handler is dropped; a write it started is either
/// committed or rolled back whole, and every write is idempotent, so the client's retry is
/// safe.
pub(crate) async fn timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.config.request_timeout;
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.metrics.timed_out();
            tracing::warn!(http.method = %method, http.path = %path, timeout_ms = millis(limit), "request timed out");
            ApiError::timed_out(limit, state.config.retry_after_secs).into_response()
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
