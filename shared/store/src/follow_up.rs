//! Follow-ups: the work an ingest leaves to do after its facts are committed (attribute a new
//! alert; snapshot the infrastructure and re-attribute the alerts around a new or changed
//! deployment; re-attribute the alerts around a new change), and the re-attributions a new
//! alert asks for of the alerts around it ([`FollowUpKind::Revisit`]).
//!
//! The store writes a follow-up in the same transaction as the facts it is about (an outbox),
//! whatever the source of the write — the HTTP API, CDEvents, the Kubernetes and Helm
//! watchers, the CLI's in-process mode. Workers [claim](crate::GraphStore::claim_follow_ups)
//! follow-ups with a lease, do them, and [finish](crate::GraphStore::finish_follow_up) them; a
//! follow-up whose worker died (or whose process stopped) is claimable again when its lease
//! ends, so none is lost.

use chrono::{DateTime, Utc};
use deploygraph_model::Uid;
use serde::{Deserialize, Serialize};

/// What a follow-up is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpKind {
    /// A new alert occurrence: attribute it.
    Alert,
    /// A new or changed deployment: snapshot the infrastructure (new ones), re-attribute the
    /// alerts in the window after it on its service and on the services that depend on it.
    Deployment,
    /// A new change that is not a rollout: re-attribute the alerts in the window after it on
    /// its services and on the services that depend on them.
    Change,
    /// An alert attributed before other alerts of its storm were recorded: attribute it again
    /// (their starts are evidence about its suspects). Enqueued by
    /// [`crate::GraphStore::enqueue_revisits`]; pending ones coalesce, so a storm delivered in
    /// many notifications re-attributes each of its alerts a bounded number of times.
    Revisit,
}

impl FollowUpKind {
    /// Every kind, in a stable order.
    pub const ALL: [Self; 4] = [Self::Alert, Self::Deployment, Self::Change, Self::Revisit];

    /// The stored and metric name (`alert`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Deployment => "deployment",
            Self::Change => "change",
            Self::Revisit => "revisit",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One claimed follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// What it is about.
    pub kind: FollowUpKind,
    /// The uid of the alert, deployment or change (the alert, for a revisit).
    pub subject: Uid,
    /// When it was (last) enqueued. Finishing it names this time, so a follow-up enqueued
    /// again while it was being done is not lost.
    pub enqueued_at: DateTime<Utc>,
    /// How many times it has been claimed, this claim included.
    pub attempts: u32,
}

/// Pending follow-ups: not yet finished, claimed or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUpStats {
    /// Pending alert follow-ups.
    pub alerts: u64,
    /// Pending deployment follow-ups.
    pub deployments: u64,
    /// Pending change follow-ups.
    pub changes: u64,
    /// Pending re-attributions of alerts ([`FollowUpKind::Revisit`]).
    pub revisits: u64,
    /// When the oldest pending follow-up was enqueued.
    pub oldest: Option<DateTime<Utc>>,
    /// Revisits deferred to a later time ([`crate::GraphStore::defer_revisit`]): not counted
    /// above, since there is nothing to do about them yet.
    pub deferred: u64,
}

impl FollowUpStats {
    /// Pending follow-ups of every kind.
    pub fn total(&self) -> u64 {
        self.alerts + self.deployments + self.changes + self.revisits
    }

    /// Pending follow-ups of `kind`.
    pub fn of(&self, kind: FollowUpKind) -> u64 {
        match kind {
            FollowUpKind::Alert => self.alerts,
            FollowUpKind::Deployment => self.deployments,
            FollowUpKind::Change => self.changes,
            FollowUpKind::Revisit => self.revisits,
        }
    }
}

/// The claimable follow-ups a worker asks for.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// Only follow-ups about these subjects; all when `None`.
    pub subjects: Option<&'a [Uid]>,
    /// At most this many.
    pub limit: usize,
    /// The claimer's clock.
    pub now: DateTime<Utc>,
    /// How long the claim holds: a follow-up not finished by then is claimable again.
    pub lease: chrono::Duration,
}
