//! Leader election against the real API server (`scripts/services up kube`): of two
//! candidates exactly one leads; a clean stop hands over at once, a crash after the lease
//! duration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_k8s::leader::{Elector, LeaseConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Candidate {
    leading: watch::Receiver<bool>,
    /// Rounds the candidate has completed: each one a decision to lead or not.
    rounds: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Candidate {
    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }
}

async fn candidate(lease: &str, identity: &str) -> Candidate {
    let config = LeaseConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new("default", lease, identity)
    };
    let (tx, leading) = watch::channel(false);
    let stop = CancellationToken::new();
    let elector = Elector::new(deploygraph_k8s::testing::client().await, config);
    let rounds = elector.rounds();
    let task = tokio::spawn(elector.run(tx, stop.clone()));
    Candidate {
        leading,
        rounds,
        stop,
        task,
    }
}

async fn until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn leaders(candidates: &[&Candidate]) -> usize {
    candidates.iter().filter(|c| *c.leading.borrow()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_a_clean_handover() {
    let lease = format!("deploygraph-test-{:08x}", rand::random::<u32>());
    let a = candidate(&lease, "a").await;
    let b = candidate(&lease, "b").await;
    until("a leader", Duration::from_secs(10), || {
        leaders(&[&a, &b]) == 1
    })
    .await;
    // Stays exactly one while each candidate decides five more times (renews, or finds the
    // Lease held).
    let (from_a, from_b) = (a.rounds(), b.rounds());
    until("five more rounds of each", Duration::from_secs(10), || {
        assert_eq!(leaders(&[&a, &b]), 1);
        a.rounds() >= from_a + 5 && b.rounds() >= from_b + 5
    })
    .await;
    let (leader, other) = if *a.leading.borrow() { (a, b) } else { (b, a) };
    leader.stop.cancel();
    leader.task.await.unwrap();
    let took = until("the handover", Duration::from_secs(5), || {
        *other.leading.borrow()
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "a released lease is taken at once ({took:?})"
    );
    other.stop.cancel();
    other.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_after_the_lease_expires() {
    let lease = format!("deploygraph-test-{:08x}", rand::random::<u32>());
    let a = candidate(&lease, "a").await;
    until("a to lead", Duration::from_secs(10), || *a.leading.borrow()).await;
    let b = candidate(&lease, "b").await;
    // b has tried three times, and each time found the Lease held.
    until("b to try three rounds", Duration::from_secs(10), || {
        b.rounds() >= 3
    })
    .await;
    assert!(!*b.leading.borrow(), "b waits while a renews");
    assert!(*a.leading.borrow());
    // A crash: the task is gone without releasing.
    a.task.abort();
    let took = until("b to take over", Duration::from_secs(10), || {
        *b.leading.borrow()
    })
    .await;
    assert!(
        took >= Duration::from_secs(2),
        "not before the lease expired ({took:?})"
    );
    b.stop.cancel();
    b.task.await.unwrap();
}
