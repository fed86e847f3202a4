//! What a batch of deployment events (or of changes) writes, decided purely from what is
//! stored.

use crate::types::{ChangeOutcome, RecordKind, RecordOutcome};
use deploygraph_model::change::{ReconcileChange, reconcile_change};
use deploygraph_model::{Change, Deployment, Reconcile, reconcile};
use std::collections::HashMap;

/// The writes one batch makes, and the outcome of each event in it.
#[derive(Debug, Default)]
pub struct WritePlan {
    /// One per event, in order.
    pub outcomes: Vec<RecordOutcome>,
    /// Deployments to insert, each once with its final state.
    pub inserts: Vec<Deployment>,
    /// Stored deployments whose status, finish time or validation advanced (final state).
    pub updates: Vec<Deployment>,
}

/// Reconciles each event of `batch` against `stored` (keyed by uid) and against the events
/// before it in the batch.
pub fn plan(mut stored: HashMap<String, Deployment>, batch: Vec<Deployment>) -> WritePlan {
    let existed: std::collections::HashSet<String> = stored.keys().cloned().collect();
    let mut dirty: Vec<String> = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for incoming in batch {
        let uid = incoming.uid.as_str().to_owned();
        let (kind, deployment, conflict) = match reconcile(stored.get(&uid), incoming) {
            Reconcile::Create(d) => (RecordKind::Created, d, None),
            Reconcile::Update(d) => (RecordKind::Updated, d, None),
            Reconcile::Unchanged(d) => (RecordKind::Unchanged, d, None),
            Reconcile::Conflict { stored, reason } => (RecordKind::Conflict, stored, Some(reason)),
        };
        if matches!(kind, RecordKind::Created | RecordKind::Updated) {
            stored.insert(uid.clone(), deployment.clone());
            if !dirty.contains(&uid) {
                dirty.push(uid);
            }
        }
        outcomes.push(RecordOutcome {
            kind,
            deployment,
            conflict,
        });
    }
    let mut plan = WritePlan {
        outcomes,
        ..WritePlan::default()
    };
    for uid in dirty {
        if let Some(d) = stored.remove(&uid) {
            if existed.contains(&uid) {
                plan.updates.push(d);
            } else {
                plan.inserts.push(d);
            }
        }
    }
    plan
}

/// The changes one batch creates, and the outcome of each change in it.
#[derive(Debug, Default)]
pub struct ChangePlan {
    /// One per change, in order.
    pub outcomes: Vec<ChangeOutcome>,
    /// Changes to insert, each once.
    pub inserts: Vec<Change>,
}

/// Reconciles each change of `batch` against `stored` (keyed by uid) and against the changes
/// before it in the batch: a change is created once, then found unchanged or conflicting.
pub fn plan_changes(mut stored: HashMap<String, Change>, batch: Vec<Change>) -> ChangePlan {
    let mut plan = ChangePlan::default();
    for incoming in batch {
        let uid = incoming.uid.as_str().to_owned();
        let outcome = match reconcile_change(stored.get(&uid), incoming) {
            ReconcileChange::Create(change) => {
                stored.insert(uid, change.clone());
                plan.inserts.push(change.clone());
                ChangeOutcome {
                    kind: RecordKind::Created,
                    change,
                    conflict: None,
                }
            }
            ReconcileChange::Unchanged(change) => ChangeOutcome {
                kind: RecordKind::Unchanged,
                change,
                conflict: None,
            },
            ReconcileChange::Conflict { stored, reason } => ChangeOutcome {
                kind: RecordKind::Conflict,
                change: stored,
                conflict: Some(reason),
            },
        };
        plan.outcomes.push(outcome);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploygraph_model::deployment::DeploymentInput;
    use deploygraph_model::{DeploymentStatus, Source};

    fn deployment(status: &str, version: &str) -> Deployment {
        let input: DeploymentInput = serde_json::from_value(serde_json::json!({
            "id": "k1", "service": "payments", "environment": "production", "version": version,
            "commit": {"sha": "9fceb02"}, "images": [{"digest": format!("sha256:{}", "c".repeat(64))}],
            "status": status, "started_at": "2026-11-20T10:05:00Z"
        }))
        .expect("input");
        input.validate(Source::Api).expect("valid")
    }

    #[test]
    fn a_new_uid_seen_twice_in_a_batch_is_inserted_once_with_its_final_state() {
        let plan = plan(
            HashMap::new(),
            vec![
                deployment("in_progress", "v1"),
                deployment("succeeded", "v1"),
            ],
        );
        assert_eq!(plan.inserts.len(), 1);
        assert_eq!(plan.inserts[0].status, DeploymentStatus::Succeeded);
        assert!(plan.updates.is_empty());
        assert_eq!(
            plan.outcomes.iter().map(|o| o.kind).collect::<Vec<_>>(),
            vec![RecordKind::Created, RecordKind::Updated]
        );
    }

    #[test]
    fn conflicts_and_repeats_write_nothing() {
        let stored = deployment("succeeded", "v1");
        let map = HashMap::from([(stored.uid.as_str().to_owned(), stored.clone())]);
        let plan = plan(
            map,
            vec![deployment("succeeded", "v1"), deployment("succeeded", "v2")],
        );
        assert!(plan.inserts.is_empty() && plan.updates.is_empty());
        assert_eq!(plan.outcomes[0].kind, RecordKind::Unchanged);
        assert_eq!(plan.outcomes[1].kind, RecordKind::Conflict);
    }

    #[test]
    fn an_advancing_status_updates_the_stored_deployment() {
        let stored = deployment("in_progress", "v1");
        let map = HashMap::from([(stored.uid.as_str().to_owned(), stored)]);
        let plan = plan(map, vec![deployment("failed", "v1")]);
        assert_eq!(plan.updates.len(), 1);
        assert_eq!(plan.updates[0].status, DeploymentStatus::Failed);
    }

    #[test]
    fn a_change_seen_twice_in_a_batch_is_created_once_and_other_facts_conflict() {
        let change = Change::test().id("flag-1").build();
        let other = Change::test().id("flag-1").summary("other").build();
        let plan = plan_changes(HashMap::new(), vec![change.clone(), change.clone(), other]);
        let kinds: Vec<RecordKind> = plan.outcomes.iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            [
                RecordKind::Created,
                RecordKind::Unchanged,
                RecordKind::Conflict
            ]
        );
        assert_eq!(plan.inserts, vec![change.clone()]);
        assert_eq!(plan.outcomes[2].change, change);
        let stored = HashMap::from([(change.uid.as_str().to_owned(), change.clone())]);
        let again = plan_changes(stored, vec![change]);
        assert!(again.inserts.is_empty());
        assert_eq!(again.outcomes[0].kind, RecordKind::Unchanged);
    }
}
