//! Changes that are not rollouts as attribution candidates: each is mapped onto a deployment
//! candidate's fields ([`Candidate`]), so the scorer ranks both alike.
//!
//! | candidate field | from a change |
//! |---|---|
//! | `started_at`, `finished_at` | `at` (a change lands at once) |
//! | `status` | succeeded (the change was applied) |
//! | `relation`, `service` | the nearest of its services to the alert's |
//! | `changes.image_changed` | a node pool upgrade (the nodes' image and kubelet change under every pod) |
//! | `changes.replicas_changed` | an HPA edit, or a key about replicas |
//! | `changes.secret_changed` | a Secret edit, or a secret-looking or redacted key |
//! | `changes.keys` | the other keys; the change's kind as one key for a change of configuration that lists none |
//! | history | the service's deployments, as for a deployment of it |
//! | key history | the keys it changed ([`key_paths`]), as a deployment's config keys |

use crate::attribution::{Candidate, ChangeSummary, KeyDiff, Relation};
use deploygraph_model::redact::{REDACTED, is_secret_path};
use deploygraph_model::{Change, ChangeKind, ChangeType, DeploymentStatus, SubjectKind, Uid};
use deploygraph_store::ServiceHistory;
use std::collections::HashMap;

/// Whether `key` is about a replica count (`spec.maxReplicas`, `replicas`, `min_replicas`).
fn is_replicas_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("replicas")
}

/// What a change changed, in the terms of a deployment's [`ChangeSummary`].
pub fn summary_of(change: &Change) -> ChangeSummary {
    let secret_changed = change.kind == ChangeType::Secret
        || change.diff.iter().any(|k| {
            is_secret_path(&k.key)
                || k.before.as_deref().is_some_and(|v| v.contains(REDACTED))
                || k.after.as_deref().is_some_and(|v| v.contains(REDACTED))
        });
    let replicas_changed =
        change.kind == ChangeType::Hpa || change.diff.iter().any(|k| is_replicas_key(&k.key));
    let mut keys: Vec<KeyDiff> = change
        .diff
        .iter()
        .filter(|k| !is_replicas_key(&k.key))
        .map(|k| KeyDiff {
            path: k.key.clone(),
            kind: ChangeKind::Value,
            before: k.before.clone(),
            after: k.after.clone(),
        })
        .collect();
    let configuration = matches!(
        change.kind,
        ChangeType::FeatureFlag
            | ChangeType::Terraform
            | ChangeType::Migration
            | ChangeType::ConfigMap
            | ChangeType::Other
    );
    if keys.is_empty() && configuration {
        // A change of configuration that lists no key still changed something.
        keys.push(KeyDiff {
            path: change.kind.as_str().to_owned(),
            kind: ChangeKind::Value,
            before: None,
            after: None,
        });
    }
    ChangeSummary {
        image_changed: change.kind == ChangeType::NodePool,
        image: None,
        first: false,
        keys,
        replicas_changed,
        secret_changed,
    }
}

/// The nearest of the change's services to the alert's, by `related` (service uid → name and
/// relation): the alert's own service first, then the fewest hops; `None` when none is related.
pub fn nearest(
    change: &Change,
    related: &HashMap<Uid, (String, Relation)>,
) -> Option<(Uid, String, Relation)> {
    let hops = |r: &Relation| match r {
        Relation::SameService => 0,
        Relation::Dependency { depth } => *depth,
    };
    change
        .services
        .iter()
        .filter_map(|s| {
            let uid = s.uid();
            related
                .get(&uid)
                .map(|(name, relation)| (uid, name.clone(), *relation))
        })
        .min_by(|a, b| hops(&a.2).cmp(&hops(&b.2)).then_with(|| a.0.cmp(&b.0)))
}

/// The change as a candidate: on `service`, related to the alert's as `relation`, with the
/// service's `history`.
pub fn candidate(
    change: &Change,
    service: String,
    relation: Relation,
    path: Vec<String>,
    history: ServiceHistory,
) -> Candidate {
    Candidate {
        deployment: change.uid.clone(),
        subject: SubjectKind::Change,
        service,
        started_at: change.at,
        finished_at: Some(change.at),
        status: DeploymentStatus::Succeeded,
        relation,
        path,
        changes: summary_of(change),
        prior_deployments: history.deployments,
        prior_followed_by_alerts: history.followed_by_alerts,
        // Filled for all candidates of an alert at once (`engine::candidates`).
        key_history: Vec::new(),
        co_alerts: Vec::new(),
        canary: None,
    }
}

/// The keys whose history counts for the change: the keys it changed, as in its
/// [`summary_of`] (not replica counts, and not the kind that stands in for a change of
/// configuration that lists no key).
pub fn key_paths(change: &Change) -> Vec<String> {
    change
        .diff
        .iter()
        .filter(|k| !is_replicas_key(&k.key))
        .map(|k| k.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{Attribution, Settings, attribute, lead_time};
    use deploygraph_model::fixture::minute;

    #[test]
    fn each_kind_of_change_maps_onto_what_a_deployment_could_change() {
        let flag = summary_of(&Change::test().build());
        assert_eq!((flag.keys.len(), flag.image_changed), (1, false));
        let no_keys = Change::test().kind(ChangeType::Terraform);
        let mut terraform = no_keys.build();
        terraform.diff.clear();
        assert_eq!(summary_of(&terraform).keys.len(), 1);
        let nodes = summary_of(&Change::test().kind(ChangeType::NodePool).build());
        assert!(nodes.image_changed);
        let hpa = summary_of(
            &Change::test()
                .kind(ChangeType::Hpa)
                .key("spec.maxReplicas", "10", "4")
                .build(),
        );
        assert!(hpa.replicas_changed);
        assert!(hpa.keys.is_empty());
        let secret = summary_of(
            &Change::test()
                .kind(ChangeType::Secret)
                .key("data.url", "a", "b")
                .build(),
        );
        assert!(secret.secret_changed);
        let redacted = summary_of(&Change::test().key("env.API_TOKEN", "a", "b").build());
        assert!(redacted.secret_changed);
    }

    #[test]
    fn key_paths_are_the_keys_changed_without_replica_counts_or_the_kind() {
        let mut change = Change::test()
            .kind(ChangeType::ConfigMap)
            .key("data.pool.size", "50", "10")
            .build();
        change.diff.push(deploygraph_model::KeyChange {
            key: "spec.replicas".into(),
            before: Some("3".into()),
            after: Some("1".into()),
        });
        assert_eq!(key_paths(&change), vec!["data.pool.size".to_owned()]);
        let mut terraform = Change::test().kind(ChangeType::Terraform).build();
        terraform.diff.clear();
        assert!(key_paths(&terraform).is_empty());
        assert_eq!(summary_of(&terraform).keys.len(), 1, "the kind stands in");
    }

    #[test]
    fn the_alerts_own_service_is_the_nearest() {
        let change = Change::test()
            .service("db")
            .also_service("payments")
            .build();
        let uid_of = |name: &str| {
            change
                .services
                .iter()
                .find(|s| s.name.as_str() == name)
                .map(deploygraph_model::ServiceRef::uid)
                .unwrap_or_else(|| Uid::from_stored(""))
        };
        let related = HashMap::from([
            (
                uid_of("db"),
                ("db".to_owned(), Relation::Dependency { depth: 1 }),
            ),
            (
                uid_of("payments"),
                ("payments".to_owned(), Relation::SameService),
            ),
        ]);
        let (_, name, relation) = nearest(&change, &related).expect("related");
        assert_eq!(
            (name.as_str(), relation),
            ("payments", Relation::SameService)
        );
        assert_eq!(nearest(&change, &HashMap::new()), None);
    }

    #[test]
    fn a_change_candidate_is_explained_as_a_change() {
        let change = Change::test().at_minute(-10).build();
        let c = candidate(
            &change,
            "payments".into(),
            Relation::SameService,
            vec!["payments".into()],
            ServiceHistory::default(),
        );
        let Attribution::Deployments { suspects, .. } = attribute(
            minute(0),
            std::slice::from_ref(&c),
            &[],
            &Settings::default(),
        ) else {
            panic!("expected suspects");
        };
        let suspect = &suspects[0];
        assert_eq!(suspect.deployment, change.uid);
        assert!(
            suspect
                .reasons
                .iter()
                .any(|r| r == "changed payments, the alerting service"),
            "{:?}",
            suspect.reasons
        );
        assert!(
            suspect
                .reasons
                .iter()
                .any(|r| r == "the change was applied"),
            "{:?}",
            suspect.reasons
        );
        assert!(
            lead_time(minute(-11), &c, &Settings::default()).is_none(),
            "a change after the alert started is no candidate"
        );
    }
}
