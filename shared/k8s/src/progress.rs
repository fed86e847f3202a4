//! What a running watcher reports besides what it records: the objects it skipped and why,
//! and how much it holds in memory (for metrics, health and tests that wait for an event
//! instead of a clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a watcher skipped an object; the `reason` label of
/// `deploygraph_watch_objects_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The store rejected the object's record (not an outage): it is not retried until the
    /// object changes.
    StoreRejected,
    /// The store stayed unavailable through the retries: the object is set aside and tried
    /// again later, counted once per round it fails.
    StoreUnavailable,
    /// A Helm release Secret that does not decode.
    HelmReleaseCorrupt,
    /// A Helm release Secret over a decoder size cap (a gzip bomb, say).
    HelmReleaseTooLarge,
}

impl SkipReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StoreRejected => "store_rejected",
            Self::StoreUnavailable => "store_unavailable",
            Self::HelmReleaseCorrupt => "helm_release_corrupt",
            Self::HelmReleaseTooLarge => "helm_release_too_large",
        }
    }
}

/// Called for every object a watcher skips, with the object (`namespace/Kind/name`) and why.
pub type OnSkipped = Box<dyn Fn(&str, SkipReason) + Send + Sync>;

/// How much a watcher holds, readable while it runs (cheap to clone, shared).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    tracked: AtomicUsize,
    requeued: AtomicUsize,
    configs: AtomicUsize,
}

impl Progress {
    /// Objects the watcher remembers (workloads and their last rollout; Helm release Secrets
    /// it has handled). Deleted objects leave.
    pub fn tracked(&self) -> usize {
        self.inner.tracked.load(Ordering::SeqCst)
    }

    /// Objects set aside until the store is back.
    pub fn requeued(&self) -> usize {
        self.inner.requeued.load(Ordering::SeqCst)
    }

    /// ConfigMaps and Secrets referenced by watched workloads, and HPAs, whose content the
    /// workload watcher remembers to tell an edit from a relist. Deleted objects and objects
    /// no watched workload references leave.
    pub fn configs(&self) -> usize {
        self.inner.configs.load(Ordering::SeqCst)
    }

    pub(crate) fn set_configs(&self, configs: usize) {
        self.inner.configs.store(configs, Ordering::SeqCst);
    }

    pub(crate) fn set(&self, tracked: usize, requeued: usize) {
        self.inner.tracked.store(tracked, Ordering::SeqCst);
        self.inner.requeued.store(requeued, Ordering::SeqCst);
    }
}
