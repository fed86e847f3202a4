//! Bounded retries of whole transactions after transient failures.
//!
//! Concurrent writers of the same nodes (an alert storm on a few busy services) make Neo4j
//! roll one of them back with `Neo.TransientError.Transaction.DeadlockDetected`; a cluster
//! answers `NotALeader` during a leader switch; a pooled connection the server closed fails on
//! first use. None of these is the request's fault, and the rolled-back transaction may simply
//! run again — from its start, since nothing of it was committed. SQLite's equivalent is
//! `SQLITE_BUSY` after its `busy_timeout`, when another process holds the write lock.
//!
//! The retry is bounded in attempts *and* in time, so a real outage still surfaces quickly as
//! [`crate::Error::Unavailable`] (503 with `Retry-After`, and the client's own retry), and
//! jittered, so writers that collided once do not collide again in lockstep.
//!
//! Retrying is safe because every write is idempotent: nodes are merged on their uid, and
//! deployments and alerts are reconciled against what is stored. A transaction whose commit
//! succeeded but whose answer was lost is re-run as a no-op (its outcome then reads
//! `unchanged`).

use crate::error::{Error, Result};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Most attempts of one transaction, the first included.
pub const MAX_ATTEMPTS: u32 = 10;

/// Pause before the first retry; it doubles with each further retry.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_millis(800);

/// No retry starts after this much time since the first attempt: past it, the failure is
/// reported (503) rather than making the caller wait longer. With [`FIRST_BACKOFF`] doubling
/// up to [`MAX_BACKOFF`] the pauses add up to at most 4.75 s over [`MAX_ATTEMPTS`], so the
/// budget bounds slow attempts, not pauses. Ten seconds, well inside the request timeout:
/// on a busy Neo4j (a storm on a few services while other work holds the CPU) lock waits
/// make each attempt slow, and a 503 only moves the same retry to the client.
pub const TIME_BUDGET: Duration = Duration::from_secs(10);

/// Retries made in this process, by every store.
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// How many transactions this process has retried after a transient failure, over every
/// store: a counter for metrics (`deploygraph_store_retries_total`).
pub fn retries() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

/// The pause before retry number `retry` (1-based): the exponential step, jittered uniformly
/// between half of it and all of it ("equal jitter"), never above [`MAX_BACKOFF`].
pub fn backoff(retry: u32) -> Duration {
    let step = FIRST_BACKOFF
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = step / 2;
    let jitter = rand::random_range(0..=half.as_micros().try_into().unwrap_or(u64::MAX));
    half + Duration::from_micros(jitter)
}

/// Runs `attempt` until it succeeds, fails with an error `retryable` rejects, or the attempts
/// or the time budget are spent; returns the last result. Each attempt must run a whole
/// transaction from its start.
///
/// # Errors
/// The last attempt's error.
pub(crate) async fn run<T, F, Fut>(
    backend: &'static str,
    operation: &'static str,
    retryable: impl Fn(&Error) -> bool,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut tries = 1u32;
    loop {
        match attempt().await {
            Err(e) if tries < MAX_ATTEMPTS && retryable(&e) => {
                let pause = backoff(tries);
                if started.elapsed() + pause > TIME_BUDGET {
                    tracing::debug!(
                        store.backend = backend,
                        store.operation = operation,
                        attempts = tries,
                        "transient failure past the retry budget"
                    );
                    return Err(e);
                }
                tracing::debug!(
                    store.backend = backend,
                    store.operation = operation,
                    retry = tries,
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    error.message = %e,
                    error.cause_chain = ?e,
                    "retrying a transaction after a transient failure"
                );
                RETRIES.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause).await;
                tries += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> Error {
        Error::Unavailable {
            backend: "test",
            source: "deadlock".into(),
        }
    }

    #[test]
    fn pauses_grow_are_jittered_and_capped() {
        for retry in 1..=10 {
            let step = FIRST_BACKOFF
                .saturating_mul(1 << (retry - 1).min(16))
                .min(MAX_BACKOFF);
            for _ in 0..50 {
                let pause = backoff(retry);
                assert!(pause >= step / 2 && pause <= step, "{retry}: {pause:?}");
            }
        }
        let worst: Duration = (1..MAX_ATTEMPTS)
            .map(|r| FIRST_BACKOFF.saturating_mul(1 << (r - 1)).min(MAX_BACKOFF))
            .sum();
        assert!(worst < TIME_BUDGET, "{worst:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let result = run(
            "test",
            "write",
            |_| true,
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(transient())
                } else {
                    Ok(7)
                }
            },
        )
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = run(
            "test",
            "write",
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient())
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), MAX_ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = run(
            "test",
            "write",
            |_| false,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::InvalidCursor)
            },
        )
        .await;
        assert!(matches!(result, Err(Error::InvalidCursor)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_attempts_end_at_the_time_budget() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = run(
            "test",
            "write",
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(6)).await;
                Err(transient())
            },
        )
        .await;
        assert!(result.is_err());
        // 6 s, a pause, 6 s: a third attempt would start past the budget.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
