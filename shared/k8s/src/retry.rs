//! The watchers' error policy for store calls, after controller-runtime's: a call the store
//! cannot take *now* (`is_unavailable`) is retried a bounded number of times with jittered
//! exponential backoff; an object whose call still fails is set aside and tried again later
//! with a per-object backoff (`Requeue`), so the watch moves on and the object is not lost.
//! Once one call has given up, the outage is known (`Outage`) and the next calls try once
//! each until the store answers, so a long outage does not cost every object the full backoff.
//! Any other store error is final for that object: the caller logs it with the object, counts
//! it and moves on, so one record the store rejects never stalls the rollouts after it.

use rand::Rng as _;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the watchers retry store calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at one store call while the store is unavailable, before the object is set
    /// aside for a later round.
    pub attempts: u32,
    /// Pause after the first failed attempt; doubled after each one, jittered.
    pub initial_backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
    /// Wait before an object set aside is tried again; doubled for each round it fails.
    pub requeue_after: Duration,
    /// Longest wait before an object set aside is tried again.
    pub max_requeue_after: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts 200 ms → 5 s apart (about 3 s in all), then rounds 10 s → 5 min apart.
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            requeue_after: Duration::from_secs(10),
            max_requeue_after: Duration::from_secs(300),
        }
    }
}

/// `base` doubled `n` times, at most `max`.
fn exponential(base: Duration, n: u32, max: Duration) -> Duration {
    base.saturating_mul(2u32.saturating_pow(n)).min(max)
}

/// "Equal jitter": half of `d` fixed, the other half random, so retries of many objects spread
/// out while none comes back sooner than half its backoff.
fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::rng().random_range(0..=spread))
}

/// Why a store call gave up.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The watcher was told to stop.
    Stopped,
    /// The store rejected the call: retrying it unchanged fails again.
    Rejected(deploygraph_store::Error),
    /// Still unavailable after the policy's attempts.
    Unavailable(deploygraph_store::Error),
}

/// Whether the store is known to be away: the last call gave up as unavailable. While it is,
/// a call gets a single attempt, so an outage costs each object one call rather than the whole
/// backoff, and the watch keeps moving (setting objects aside) until the store answers again.
#[derive(Debug, Default)]
pub(crate) struct Outage(AtomicBool);

impl Outage {
    fn attempts(&self, policy: &RetryPolicy) -> u32 {
        if self.0.load(Ordering::SeqCst) {
            1
        } else {
            policy.attempts.max(1)
        }
    }

    fn set(&self, down: bool) {
        if self.0.swap(down, Ordering::SeqCst) != down {
            if down {
                tracing::warn!("the store is unavailable; objects are set aside until it is back");
            } else {
                tracing::info!("the store answers again");
            }
        }
    }
}

/// Runs `op` until it succeeds, retrying only while the store is unavailable, at most
/// `policy.attempts` times (once during a known `outage`); each failure is logged as "cannot
/// `what`".
pub(crate) async fn bounded<T, F>(
    stop: &CancellationToken,
    policy: &RetryPolicy,
    outage: &Outage,
    what: &str,
    mut op: impl FnMut() -> F,
) -> Result<T, Failure>
where
    F: Future<Output = deploygraph_store::Result<T>>,
{
    let attempts = outage.attempts(policy);
    for attempt in 1.. {
        let e = match op().await {
            Ok(value) => {
                outage.set(false);
                return Ok(value);
            }
            Err(e) if !e.is_unavailable() => {
                outage.set(false);
                return Err(Failure::Rejected(e));
            }
            Err(e) => e,
        };
        if attempt >= attempts {
            outage.set(true);
            return Err(Failure::Unavailable(e));
        }
        let pause = jittered(exponential(
            policy.initial_backoff,
            attempt - 1,
            policy.max_backoff,
        ));
        tracing::warn!(error.message = %e, attempt, retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "cannot {what}; store unavailable, retrying");
        tokio::select! {
            () = stop.cancelled() => return Err(Failure::Stopped),
            () = tokio::time::sleep(pause) => {}
        }
    }
    Err(Failure::Stopped)
}

struct Entry<V> {
    value: V,
    failures: u32,
    due: Instant,
}

/// Objects set aside while the store was unavailable, each due again after its own backoff
/// (controller-runtime's per-object rate limiter). A newer version of an object replaces the
/// one set aside; a deleted object is dropped.
pub(crate) struct Requeue<K, V> {
    entries: HashMap<K, Entry<V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Requeue<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    /// Sets `value` aside under `key` (again): due after the policy's backoff for the number
    /// of rounds `key` has failed so far.
    pub(crate) fn push(&mut self, key: K, value: V, policy: &RetryPolicy) {
        let failures = self.entries.get(&key).map_or(0, |e| e.failures) + 1;
        let due = Instant::now()
            + jittered(exponential(
                policy.requeue_after,
                failures - 1,
                policy.max_requeue_after,
            ));
        self.entries.insert(
            key,
            Entry {
                value,
                failures,
                due,
            },
        );
    }

    /// Forgets `key`: it was handled, or deleted.
    pub(crate) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forgets every key `keep` says no to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    /// The value set aside under `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|e| &e.value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// One object due now, if any; it stays set aside until [`Self::remove`] or
    /// [`Self::push`] says how its new round went.
    pub(crate) fn due(&self, now: Instant) -> Option<(K, V)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.due <= now)
            .min_by_key(|(_, e)| e.due)
            .map(|(k, e)| (k.clone(), e.value.clone()))
    }

    /// Resolves when the earliest object is due; never when none is set aside.
    pub(crate) async fn next_due(&self) {
        match self.entries.values().map(|e| e.due).min() {
            Some(due) => tokio::time::sleep_until(due).await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            requeue_after: Duration::from_secs(10),
            max_requeue_after: Duration::from_secs(40),
        }
    }

    fn unavailable() -> deploygraph_store::Error {
        deploygraph_store::Error::Unavailable {
            backend: "sqlite",
            source: "database is locked".into(),
        }
    }

    fn rejected() -> deploygraph_store::Error {
        deploygraph_store::Error::Backend {
            backend: "sqlite",
            operation: "record deployments",
            source: "constraint failed".into(),
        }
    }

    #[tokio::test]
    async fn a_rejection_is_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = bounded(
            &CancellationToken::new(),
            &quick(),
            &Outage::default(),
            "write",
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(rejected()) }
            },
        )
        .await;
        assert!(matches!(result, Err(Failure::Rejected(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    async fn calls_until(outage: &Outage, succeed_from: u32) -> (Result<u32, Failure>, u32) {
        let calls = AtomicU32::new(0);
        let result = bounded(&CancellationToken::new(), &quick(), outage, "write", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < succeed_from {
                    Err(unavailable())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn unavailability_is_retried_up_to_the_bound_then_once_per_call_until_it_ends() {
        let outage = Outage::default();
        // A store that comes back within the bound is used.
        let (result, calls) = calls_until(&outage, 2).await;
        assert!(matches!(result, Ok(2)));
        assert_eq!(calls, 3);
        // One that does not: three attempts, then the outage is known.
        let (result, calls) = calls_until(&outage, u32::MAX).await;
        assert!(matches!(result, Err(Failure::Unavailable(_))));
        assert_eq!(calls, 3);
        // During it, one attempt per call.
        let (result, calls) = calls_until(&outage, u32::MAX).await;
        assert!(matches!(result, Err(Failure::Unavailable(_))));
        assert_eq!(calls, 1);
        // The store answers: the outage is over, and the full bound applies again.
        let (result, _) = calls_until(&outage, 0).await;
        assert!(matches!(result, Ok(0)));
        let (result, calls) = calls_until(&outage, u32::MAX).await;
        assert!(matches!(result, Err(Failure::Unavailable(_))));
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn a_stop_ends_the_retries() {
        let stop = CancellationToken::new();
        stop.cancel();
        let policy = RetryPolicy {
            initial_backoff: Duration::from_secs(3600),
            ..quick()
        };
        let result: Result<(), _> =
            bounded(&stop, &policy, &Outage::default(), "write", || async {
                Err(unavailable())
            })
            .await;
        assert!(matches!(result, Err(Failure::Stopped)));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitter_keeps_at_least_half() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(40);
        assert_eq!(exponential(base, 0, max), base);
        assert_eq!(exponential(base, 1, max), Duration::from_secs(20));
        assert_eq!(exponential(base, 5, max), max);
        assert_eq!(exponential(base, u32::MAX, max), max);
        for _ in 0..100 {
            let j = jittered(base);
            assert!(j >= base / 2 && j <= base, "{j:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_set_aside_comes_back_later_each_round_and_leaves_when_handled() {
        let policy = quick();
        let mut requeue: Requeue<&str, u32> = Requeue::new();
        requeue.push("web", 1, &policy);
        assert!(requeue.due(Instant::now()).is_none(), "not due at once");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(requeue.due(Instant::now()), Some(("web", 1)));
        // A second failed round: due after 10–20 s, the newer value kept.
        requeue.push("web", 2, &policy);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(requeue.due(Instant::now()).is_none());
        tokio::time::advance(Duration::from_secs(11)).await;
        requeue.next_due().await;
        assert_eq!(requeue.due(Instant::now()), Some(("web", 2)));
        requeue.remove(&"web");
        assert_eq!(requeue.len(), 0);
    }
}
