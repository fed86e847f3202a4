//! Conformance of changes that are not rollouts, on both backends: recording (idempotent by
//! uid, conflicts refused), reads by uid, by service and window and as listings, their
//! follow-ups, and TRIGGERS from changes beside those from deployments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_model::fixture::minute;
use deploygraph_model::{
    Alert, Change, ChangeType, Deployment, ServiceName, SubjectKind, Trigger, Uid,
};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{ChangeFilter, Cursor, GraphStore, MigrationSource, RecordKind};
use std::sync::Arc;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn uids(changes: &[Change]) -> Vec<&Uid> {
    changes.iter().map(|c| &c.uid).collect()
}

async fn changes_are_recorded_once_and_conflicts_change_nothing(store: Arc<dyn GraphStore>) {
    let service = unique("flagged");
    let id = unique("flag-audit");
    let change = Change::test()
        .service(&service)
        .id(&id)
        .summary("new checkout flow")
        .link("https://flags.acme.io/audit/42")
        .build();
    let other = Change::test()
        .service(&service)
        .id(&id)
        .summary("another flow")
        .build();
    let outcomes = store
        .record_changes(vec![change.clone(), change.clone(), other])
        .await
        .unwrap();
    let kinds: Vec<RecordKind> = outcomes.iter().map(|o| o.kind).collect();
    assert_eq!(
        kinds,
        [
            RecordKind::Created,
            RecordKind::Unchanged,
            RecordKind::Conflict
        ]
    );
    assert_eq!(
        outcomes[2].change, change,
        "a conflict reports what is stored"
    );
    assert!(outcomes[2].conflict.as_deref().unwrap().contains(&id));
    // A retried post is unchanged and writes nothing.
    let again = store.record_changes(vec![change.clone()]).await.unwrap();
    assert_eq!(again[0].kind, RecordKind::Unchanged);
    assert_eq!(
        store.get_change(&change.uid).await.unwrap(),
        Some(change.clone())
    );
    assert_eq!(
        store
            .get_change(&Uid::from_stored("change-event-unknown"))
            .await
            .unwrap(),
        None
    );
    // Its services exist, and one follow-up is pending for it.
    let found = store
        .find_services(&ServiceName::parse(&service).unwrap(), None, None, None)
        .await
        .unwrap();
    assert_eq!(found, change.services);
    let stats = store
        .follow_up_stats(Some(std::slice::from_ref(&change.uid)))
        .await
        .unwrap();
    assert_eq!((stats.changes, stats.total()), (1, 1));
    deploygraph_store::testing::discard_follow_ups(
        store.as_ref(),
        std::slice::from_ref(&change.uid),
    )
    .await;
    assert!(store.record_changes(Vec::new()).await.unwrap().is_empty());
}

async fn changes_are_found_by_service_and_window(store: Arc<dyn GraphStore>) {
    let (a, b) = (unique("svc-a"), unique("svc-b"));
    let at = |m: i64| {
        Change::test()
            .service(&a)
            .kind(ChangeType::ConfigMap)
            .key("data.LOG_LEVEL", "info", &format!("debug-{m}"))
            .at_minute(m)
            .build()
    };
    let (c0, c10, c20) = (at(0), at(10), at(20));
    let both = Change::test()
        .service(&a)
        .also_service(&b)
        .kind(ChangeType::Terraform)
        .at_minute(15)
        .build();
    let only_b = Change::test()
        .service(&b)
        .kind(ChangeType::NodePool)
        .at_minute(12)
        .build();
    let all = vec![
        c0.clone(),
        c10.clone(),
        c20.clone(),
        both.clone(),
        only_b.clone(),
    ];
    store.record_changes(all.clone()).await.unwrap();
    let a_uid = c0.services[0].uid();
    let b_uid = only_b.services[0].uid();
    let window = store
        .changes_between(std::slice::from_ref(&a_uid), minute(5), minute(20))
        .await
        .unwrap();
    assert_eq!(
        uids(&window),
        vec![&c20.uid, &both.uid, &c10.uid],
        "newest first"
    );
    let window = store
        .changes_between(&[a_uid.clone(), b_uid.clone()], minute(10), minute(15))
        .await
        .unwrap();
    assert_eq!(
        uids(&window),
        vec![&both.uid, &only_b.uid, &c10.uid],
        "a change of both services is listed once"
    );
    assert!(
        store
            .changes_between(&[], minute(0), minute(60))
            .await
            .unwrap()
            .is_empty()
    );
    // By uid, in one read: unknown and repeated uids left out, ordered by uid.
    let mut asked: Vec<Uid> = all.iter().rev().map(|c| c.uid.clone()).collect();
    asked.push(Uid::from_stored("change-event-unknown"));
    asked.push(c0.uid.clone());
    let mut expected = all.clone();
    expected.sort_by(|x, y| x.uid.cmp(&y.uid));
    assert_eq!(store.get_changes(&asked).await.unwrap(), expected);
    assert!(store.get_changes(&[]).await.unwrap().is_empty());
    // Listings page newest first with cursors.
    let filter = |cursor: Option<Cursor>| ChangeFilter {
        services: vec![a_uid.clone()],
        limit: 2,
        cursor,
        ..ChangeFilter::default()
    };
    let first = store.list_changes(&filter(None)).await.unwrap();
    assert_eq!(uids(&first), vec![&c20.uid, &both.uid]);
    let next = Cursor::at(first[1].at, &first[1].uid);
    let second = store.list_changes(&filter(Some(next))).await.unwrap();
    assert_eq!(uids(&second), vec![&c10.uid, &c0.uid]);
    let bounded = store
        .list_changes(&ChangeFilter {
            services: vec![a_uid.clone(), b_uid.clone()],
            since: Some(minute(10)),
            until: Some(minute(12)),
            limit: 10,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(uids(&bounded), vec![&only_b.uid, &c10.uid]);
    let everyone = store
        .list_changes(&ChangeFilter {
            since: Some(minute(15)),
            until: Some(minute(15)),
            limit: 10_000,
            ..ChangeFilter::default()
        })
        .await
        .unwrap();
    assert!(
        everyone.contains(&both),
        "without services: every service's"
    );
    let subjects: Vec<Uid> = all.iter().map(|c| c.uid.clone()).collect();
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &subjects).await;
}

async fn changes_trigger_alerts_beside_deployments(store: Arc<dyn GraphStore>) {
    let service = unique("suspected");
    let deployment = Deployment::test()
        .service(&service)
        .started_at_minute(5)
        .build();
    let change = Change::test().service(&service).at_minute(8).build();
    store
        .record_deployments(vec![deployment.clone()])
        .await
        .unwrap();
    store.record_changes(vec![change.clone()]).await.unwrap();
    let alerts: Vec<Alert> = (0..2)
        .map(|i| Alert::test(&unique("fp"), &service, 10 + i))
        .collect();
    store.record_alerts(alerts.clone()).await.unwrap();
    let trigger = |alert: &Alert, subject: SubjectKind, uid: &Uid, score: f64| Trigger {
        subject,
        subject_uid: uid.clone(),
        alert_uid: alert.uid.clone(),
        confidence_score: score,
        reasons: vec![format!("score {score}")],
        computed_at: minute(20),
    };
    let on_change = |alert: &Alert, score| trigger(alert, SubjectKind::Change, &change.uid, score);
    let on_deployment =
        |alert: &Alert, score| trigger(alert, SubjectKind::Deployment, &deployment.uid, score);
    store
        .replace_attribution(
            &alerts[0].uid,
            &[on_deployment(&alerts[0], 0.3), on_change(&alerts[0], 0.6)],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.attribution(&alerts[0].uid).await.unwrap().triggers,
        vec![on_change(&alerts[0], 0.6), on_deployment(&alerts[0], 0.3)]
    );
    // A tie goes to the smaller subject uid, whatever its kind.
    store
        .replace_attribution(
            &alerts[1].uid,
            &[on_deployment(&alerts[1], 0.5), on_change(&alerts[1], 0.5)],
            None,
        )
        .await
        .unwrap();
    let top = store
        .top_triggers(&[alerts[0].uid.clone(), alerts[1].uid.clone()])
        .await
        .unwrap();
    let mut expected = vec![
        on_change(&alerts[0], 0.6),
        if change.uid < deployment.uid {
            on_change(&alerts[1], 0.5)
        } else {
            on_deployment(&alerts[1], 0.5)
        },
    ];
    expected.sort_by(|x, y| x.alert_uid.cmp(&y.alert_uid));
    assert_eq!(top, expected);
    // The deployments' history counts deployments only.
    let history = store
        .service_history(&deployment.service_uid(), minute(60))
        .await
        .unwrap();
    assert_eq!((history.deployments, history.followed_by_alerts), (1, 1));
    // Recomputing replaces the triggers of both kinds.
    store
        .replace_attribution(&alerts[0].uid, &[on_deployment(&alerts[0], 0.4)], None)
        .await
        .unwrap();
    assert_eq!(
        store.attribution(&alerts[0].uid).await.unwrap().triggers,
        vec![on_deployment(&alerts[0], 0.4)]
    );
    store
        .replace_attribution(&alerts[0].uid, &[on_change(&alerts[0], 0.2)], None)
        .await
        .unwrap();
    assert_eq!(
        store.attribution(&alerts[0].uid).await.unwrap().triggers,
        vec![on_change(&alerts[0], 0.2)]
    );
    store
        .replace_attribution(&alerts[0].uid, &[], None)
        .await
        .unwrap();
    assert!(
        store
            .attribution(&alerts[0].uid)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
    let mut subjects: Vec<Uid> = alerts.iter().map(|a| a.uid.clone()).collect();
    subjects.extend([deployment.uid.clone(), change.uid.clone()]);
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &subjects).await;
}

deploygraph_store::both_stores!(
    changes_are_recorded_once_and_conflicts_change_nothing,
    changes_are_found_by_service_and_window,
    changes_trigger_alerts_beside_deployments,
);

/// A store of schema 0009 with pending follow-ups migrates to the changes' schema keeping
/// them, and then records changes with their follow-ups.
#[tokio::test]
async fn the_changes_migration_keeps_pending_follow_ups() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // The cluster columns came later but are written by this build's code, which records
        // the old store's deployment below; their migration depends on nothing after 0003.
        if name.as_str() < "0010" || name.starts_with("0022_") {
            std::fs::copy(source.join(&name), old.join("sqlite").join(&name)).unwrap();
        }
    }
    let path = dir.path().join("upgrade.db");
    let deployment = Deployment::test().service(&unique("upgrade")).build();
    {
        let v7 = SqliteStore::open(&path, MigrationSource::Directory(old))
            .await
            .unwrap();
        assert_eq!(v7.migrate().await.unwrap().len(), 10);
        v7.record_deployments(vec![deployment.clone()])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        [
            "0010_changes.sql",
            "0011_verdicts.sql",
            "0012_key_history.sql",
            "0013_change_keys.sql",
            "0014_revisits.sql",
            "0015_canary_analyses.sql",
            "0017_attribution_canary_evidence.sql",
            "0018_release_summaries.sql",
            "0019_rollbacks.sql",
            "0020_gate_overrides.sql",
            "0021_certificate_secures.sql",
            "0023_attribution_metric_onset.sql",
            "0024_attribution_onset_in_rollout.sql",
            "0025_attribution_service_metrics.sql"
        ]
    );
    store.ready().await.unwrap();
    let pending = store
        .follow_up_stats(Some(std::slice::from_ref(&deployment.uid)))
        .await
        .unwrap();
    assert_eq!(pending.deployments, 1);
    let change = Change::test().service(&unique("upgrade")).build();
    assert_eq!(
        store.record_changes(vec![change.clone()]).await.unwrap()[0].kind,
        RecordKind::Created
    );
    let stats = store.follow_up_stats(None).await.unwrap();
    assert_eq!((stats.deployments, stats.changes), (1, 1));
}

/// On Neo4j a change is a node an SRE can query: AFFECTS its services, its keys and facts as
/// properties, TRIGGERS the alerts it is suspected of, as the README's query reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_changes_form_the_documented_subgraph() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let (service, other) = (unique("cyphered"), unique("cyphered-db"));
    let change = Change::test()
        .service(&service)
        .also_service(&other)
        .summary("new checkout flow")
        .at_minute(5)
        .build();
    store.record_changes(vec![change.clone()]).await.unwrap();
    let alert = Alert::test(&unique("fp"), &service, 10);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    store
        .replace_attribution(
            &alert.uid,
            &[Trigger {
                subject: SubjectKind::Change,
                subject_uid: change.uid.clone(),
                alert_uid: alert.uid.clone(),
                confidence_score: 0.7,
                reasons: vec!["r".into()],
                computed_at: minute(11),
            }],
            None,
        )
        .await
        .unwrap();
    let request = |query: &str| deploygraph_store::cypher::CypherRequest {
        query: query.to_owned(),
        params: serde_json::Map::from_iter([("name".to_owned(), service.clone().into())]),
        timeout: std::time::Duration::from_secs(10),
        row_cap: 100,
        byte_cap: 1 << 20,
    };
    let documented = store
        .read_cypher(&request(
            "MATCH (c:Change)-[:AFFECTS]->(:Service {name: $name})
             RETURN c.at, c.kind, c.actor, c.keys, c.summary ORDER BY c.at DESC",
        ))
        .await
        .unwrap();
    assert_eq!(documented.rows.len(), 1, "{documented:?}");
    let row = &documented.rows[0];
    assert_eq!(
        row[1..],
        [
            serde_json::json!("feature_flag"),
            serde_json::json!("alice@acme.io"),
            serde_json::json!(["checkout.new_flow"]),
            serde_json::json!("new checkout flow"),
        ]
    );
    // Each key the change changed is a ChangeKey with the change's time: the key history's
    // index.
    let keys = store
        .read_cypher(&request(
            "MATCH (c:Change)-[:HAS_KEY]->(k:ChangeKey)
             WHERE (c)-[:AFFECTS]->(:Service {name: $name})
             RETURN k.path, k.at_us = c.at_us, k.change_uid = c.uid",
        ))
        .await
        .unwrap();
    assert_eq!(
        keys.rows,
        vec![vec![
            serde_json::json!("checkout.new_flow"),
            serde_json::json!(true),
            serde_json::json!(true)
        ]]
    );
    let linked = store
        .read_cypher(&request(
            "MATCH (c:Change)-[r:TRIGGERS]->(a:Alert), (c)-[:AFFECTS]->(s:Service)
             WHERE (c)-[:AFFECTS]->(:Service {name: $name})
             RETURN a.uid, r.confidence_score, count(s) AS services",
        ))
        .await
        .unwrap();
    assert_eq!(
        linked.rows,
        vec![vec![
            serde_json::json!(alert.uid.as_str()),
            serde_json::json!(0.7),
            serde_json::json!(2)
        ]]
    );
    deploygraph_store::testing::discard_follow_ups(
        store.as_ref(),
        &[change.uid.clone(), alert.uid.clone()],
    )
    .await;
}
