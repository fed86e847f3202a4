//! One conformance suite, run against both backends: the embedded SQLite store (a fresh file per
//! test) and a real Neo4j server (`NEO4J_TEST_URI`, started by `scripts/services up neo4j`).
//! Neo4j Community has one database, so tests isolate by unique service names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use deploygraph_model::fixture::minute;
use deploygraph_model::topology::{EdgeSource, ServiceTopology};
use deploygraph_model::{
    Alert, AlertOutcome, AlertStatus, CertificateRecord, Change, ChangeKind, ChaosRun, CheckRecord,
    Cluster, ConfigChange, Deployment, DeploymentStatus, Environment, InfraSnapshot, KeyChange,
    ServiceName, ServiceRef, SubjectKind, SuspectVerdict, Trigger, Uid, ValidationResult, Verdict,
    VerdictKind,
};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{
    AlertFilter, ChaosFilter, Claim, Cursor, DeploymentFilter, FollowUpKind, FollowUpStats,
    GraphStore, KeyHistory, MigrationSource, RecordKind, ServiceHistory, StoredDeployment,
    TopologyMode, TopologyUpdate,
};
use rand::seq::SliceRandom;
use std::collections::HashSet;
use std::sync::Arc;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn filter_service(service: &str, limit: usize) -> DeploymentFilter {
    DeploymentFilter {
        service: Some(ServiceName::parse(service).unwrap()),
        limit,
        ..DeploymentFilter::default()
    }
}

async fn record_one(store: &Arc<dyn GraphStore>, d: Deployment) -> RecordKind {
    store.record_deployments(vec![d]).await.unwrap()[0].kind
}

async fn migrations_are_idempotent_and_make_the_store_ready(store: Arc<dyn GraphStore>) {
    assert!(
        store.migrate().await.unwrap().is_empty(),
        "a second migrate applies nothing"
    );
    store.ready().await.unwrap();
}

async fn recording_twice_is_a_no_op(store: Arc<dyn GraphStore>) {
    let service = unique("idem");
    let d = Deployment::test()
        .service(&service)
        .change("values.pool", "50", "10")
        .build();
    assert_eq!(record_one(&store, d.clone()).await, RecordKind::Created);
    assert_eq!(record_one(&store, d.clone()).await, RecordKind::Unchanged);
    let page = store
        .list_deployments(&filter_service(&service, 10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let stored = store.get_deployment(&d.uid).await.unwrap().unwrap();
    assert_eq!(stored.deployment, d);
    assert_eq!(stored.follows, None);
    let services = store.list_services().await.unwrap();
    let summary = services.iter().find(|s| s.name == service).unwrap();
    assert_eq!(summary.deployments, 1);
    assert_eq!(summary.last_deployed_at, Some(d.started_at));
}

async fn a_reused_id_with_other_content_conflicts_and_changes_nothing(store: Arc<dyn GraphStore>) {
    let service = unique("conflict");
    let id = unique("ci-run");
    let first = Deployment::test()
        .service(&service)
        .id(&id)
        .version("v1")
        .build();
    assert_eq!(record_one(&store, first.clone()).await, RecordKind::Created);
    let other = Deployment::test()
        .service(&service)
        .id(&id)
        .version("v2")
        .build();
    let outcome = store
        .record_deployments(vec![other])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(outcome.kind, RecordKind::Conflict);
    assert!(outcome.conflict.unwrap().contains(&id));
    assert_eq!(
        store
            .get_deployment(&first.uid)
            .await
            .unwrap()
            .unwrap()
            .deployment,
        first
    );
}

async fn status_advances_and_never_regresses(store: Arc<dyn GraphStore>) {
    let service = unique("status");
    let started = Deployment::test().service(&service).in_progress().build();
    record_one(&store, started.clone()).await;
    let mut done = started.clone();
    done.status = DeploymentStatus::Failed;
    done.finished_at = Some(started.started_at + Duration::minutes(3));
    done.validation = Some(ValidationResult {
        tests_passed: Some(10),
        tests_failed: Some(2),
        ..ValidationResult::default()
    });
    assert_eq!(record_one(&store, done.clone()).await, RecordKind::Updated);
    assert_eq!(
        record_one(&store, started.clone()).await,
        RecordKind::Unchanged
    );
    let stored = store
        .get_deployment(&started.uid)
        .await
        .unwrap()
        .unwrap()
        .deployment;
    assert_eq!(stored, done);
    let failed = DeploymentFilter {
        status: Some(DeploymentStatus::Failed),
        ..filter_service(&service, 10)
    };
    assert_eq!(
        store.list_deployments(&failed).await.unwrap().items.len(),
        1
    );
}

fn assert_chain(items: &[StoredDeployment]) {
    // Newest first: each item follows the next one.
    for pair in items.windows(2) {
        assert_eq!(
            pair[0].follows.as_ref(),
            Some(&pair[1].deployment.uid),
            "chain broken"
        );
    }
}

async fn follows_chains_survive_out_of_order_arrival(store: Arc<dyn GraphStore>) {
    let service = unique("chain");
    let mut events: Vec<Deployment> = (0..30)
        .map(|i| {
            Deployment::test()
                .service(&service)
                .image_seed(i)
                .started_at_minute(i as i64 * 7)
                .build()
        })
        .collect();
    // Another environment of the same service has a chain of its own.
    let staging: Vec<Deployment> = (0..5)
        .map(|i| {
            Deployment::test()
                .service(&service)
                .environment("staging")
                .image_seed(100 + i)
                .started_at_minute(i as i64 * 7 + 1)
                .build()
        })
        .collect();
    events.shuffle(&mut rand::rng());
    let (singles, rest) = events.split_at(10);
    for d in singles {
        record_one(&store, d.clone()).await;
    }
    for chunk in rest.chunks(7) {
        store.record_deployments(chunk.to_vec()).await.unwrap();
    }
    store.record_deployments(staging).await.unwrap();

    for (environment, expected) in [("production", 30), ("staging", 5)] {
        let filter = DeploymentFilter {
            environment: Some(Environment::parse(environment).unwrap()),
            ..filter_service(&service, 100)
        };
        let items = store.list_deployments(&filter).await.unwrap().items;
        assert_eq!(items.len(), expected);
        assert_chain(&items);
        assert_eq!(
            items.last().unwrap().follows,
            None,
            "the oldest follows nothing"
        );
    }
}

async fn large_limits_return_exactly_limit_items_and_cursors_walk_everything(
    store: Arc<dyn GraphStore>,
) {
    let service = unique("bulk");
    let events: Vec<Deployment> = (0..1600)
        .map(|i| {
            Deployment::test()
                .service(&service)
                .image_seed(i)
                .started_at_minute(i as i64)
                .build()
        })
        .collect();
    for chunk in events.chunks(400) {
        store.record_deployments(chunk.to_vec()).await.unwrap();
    }
    // Their follow-ups are not this test's subject: no backlog for later tests' pipelines.
    let uids: Vec<Uid> = events.iter().map(|d| d.uid.clone()).collect();
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &uids).await;
    assert_eq!(store.follow_up_stats(Some(&uids)).await.unwrap().total(), 0);
    let page = store
        .list_deployments(&filter_service(&service, 1500))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1500, "exactly limit items");
    assert!(page.next_cursor.is_some());
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0].deployment.started_at > w[1].deployment.started_at),
        "newest first"
    );
    assert_chain(&page.items);

    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let filter = DeploymentFilter {
            cursor: cursor.as_deref().map(|c| Cursor::decode(c).unwrap()),
            ..filter_service(&service, 250)
        };
        let page = store.list_deployments(&filter).await.unwrap();
        for item in &page.items {
            assert!(seen.insert(item.deployment.uid.clone()), "no item twice");
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1600);

    let window = DeploymentFilter {
        since: Some(events[100].started_at),
        until: Some(events[199].started_at),
        ..filter_service(&service, 1000)
    };
    assert_eq!(
        store.list_deployments(&window).await.unwrap().items.len(),
        100
    );
}

async fn a_batch_writes_everything_but_its_conflicts(store: Arc<dyn GraphStore>) {
    let service = unique("batch");
    let id = unique("key");
    let first = Deployment::test()
        .service(&service)
        .id(&id)
        .version("v1")
        .started_at_minute(1)
        .build();
    record_one(&store, first).await;
    let batch = vec![
        Deployment::test()
            .service(&service)
            .id(&id)
            .version("v2")
            .started_at_minute(2)
            .build(),
        Deployment::test()
            .service(&service)
            .image_seed(9)
            .started_at_minute(3)
            .build(),
    ];
    let kinds: Vec<RecordKind> = store
        .record_deployments(batch)
        .await
        .unwrap()
        .iter()
        .map(|o| o.kind)
        .collect();
    assert_eq!(kinds, vec![RecordKind::Conflict, RecordKind::Created]);
    assert_eq!(
        store
            .list_deployments(&filter_service(&service, 10))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

async fn concurrent_writers_keep_one_chain(store: Arc<dyn GraphStore>) {
    let service = unique("race");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        let d = Deployment::test()
            .service(&service)
            .image_seed(i)
            .started_at_minute(i as i64)
            .build();
        tasks.push(tokio::spawn(async move {
            // A writer may lose a deadlock race; retrying is what clients do on 503.
            for _ in 0..20 {
                match store.record_deployments(vec![d.clone()]).await {
                    Ok(_) => return,
                    Err(e) if e.is_unavailable() => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            panic!("gave up");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let items = store
        .list_deployments(&filter_service(&service, 100))
        .await
        .unwrap()
        .items;
    assert_eq!(items.len(), 16);
    assert_chain(&items);
    assert_eq!(items.last().unwrap().follows, None);
}

fn snapshot_for(deployment: Option<&Deployment>, cluster: &str) -> InfraSnapshot {
    let cert = CertificateRecord {
        sha256: format!("{:064x}", rand::random::<u64>()),
        subject: "CN=api.example.test".into(),
        issuer: "CN=test CA".into(),
        sans: vec!["api.example.test".into()],
        not_before: chrono::Utc::now() - Duration::days(1),
        not_after: chrono::Utc::now() + Duration::days(90),
        is_ca: false,
    };
    let checks = vec![
        CheckRecord {
            kind: "tls".into(),
            target: "api.example.test:443".into(),
            status: Verdict::Pass,
            detail: "expires in 90d 0h; trusted".into(),
            latency_ms: 12,
            certificates: vec![cert.clone()],
            uses: Vec::new(),
        },
        CheckRecord {
            kind: "file-cert".into(),
            target: "/etc/ssl/bundle.pem".into(),
            status: Verdict::Pass,
            detail: "1 certificate(s)".into(),
            latency_ms: 1,
            certificates: vec![cert],
            uses: Vec::new(),
        },
        CheckRecord {
            kind: "dns".into(),
            target: "db.example.test".into(),
            status: Verdict::Fail,
            detail: "does not resolve (NXDOMAIN)".into(),
            latency_ms: 3,
            certificates: vec![],
            uses: Vec::new(),
        },
    ];
    InfraSnapshot::new(
        chrono::Utc::now(),
        Some(cluster.to_owned()),
        deployment.map(|d| d.uid.clone()),
        checks,
    )
}

async fn snapshots_are_recorded_once_and_found_for_their_deployment(store: Arc<dyn GraphStore>) {
    let service = unique("snap");
    let deployment = Deployment::test().service(&service).build();
    // Taken before the deployment is recorded, as a CI gate does.
    let snapshot = snapshot_for(Some(&deployment), &unique("cluster"));
    assert_eq!(snapshot.verdict, Verdict::Fail);
    store.record_snapshot(&snapshot).await.unwrap();
    store.record_snapshot(&snapshot).await.unwrap();
    assert_eq!(
        store.get_snapshot(&snapshot.uid).await.unwrap().as_ref(),
        Some(&snapshot)
    );
    record_one(&store, deployment.clone()).await;
    assert_eq!(
        store
            .snapshot_for_deployment(&deployment.uid)
            .await
            .unwrap()
            .as_ref(),
        Some(&snapshot)
    );
    let newest = InfraSnapshot::new(
        chrono::Utc::now() + Duration::days(3650),
        Some(unique("future")),
        None,
        vec![],
    );
    let older_elsewhere = InfraSnapshot::new(
        chrono::Utc::now() + Duration::days(3649),
        Some(unique("elsewhere")),
        None,
        vec![],
    );
    store.record_snapshot(&older_elsewhere).await.unwrap();
    store.record_snapshot(&newest).await.unwrap();
    assert_eq!(
        store.latest_snapshot(None).await.unwrap().map(|s| s.uid),
        Some(newest.uid.clone())
    );
    // A cluster's newest, however newer the others' are.
    assert_eq!(
        store
            .latest_snapshot(older_elsewhere.cluster.as_deref())
            .await
            .unwrap()
            .map(|s| s.uid),
        Some(older_elsewhere.uid.clone())
    );
    assert_eq!(
        store
            .latest_snapshot(Some(&unique("nowhere")))
            .await
            .unwrap(),
        None
    );
    let other = Deployment::test().service(&service).image_seed(7).build();
    assert_eq!(
        store.snapshot_for_deployment(&other.uid).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_snapshot(&deploygraph_model::Uid::from_stored("snapshot-none"))
            .await
            .unwrap(),
        None
    );
}

fn alerts_for(service: &str) -> AlertFilter {
    AlertFilter {
        service: Some(ServiceName::parse(service).unwrap()),
        limit: 100,
        ..AlertFilter::default()
    }
}

async fn alerts_are_stored_once_per_occurrence_and_resolve(store: Arc<dyn GraphStore>) {
    let service = unique("alerting");
    let d = Deployment::test().service(&service).build();
    record_one(&store, d.clone()).await;
    let fingerprint = unique("fp");
    let firing = Alert::test(&fingerprint, &service, 30);
    let outcomes =
        |r: Vec<(Alert, AlertOutcome)>| r.into_iter().map(|(_, o)| o).collect::<Vec<_>>();
    assert_eq!(
        outcomes(store.record_alerts(vec![firing.clone()]).await.unwrap()),
        vec![AlertOutcome::Created]
    );
    // A retried delivery, and the same alert twice in one notification.
    assert_eq!(
        outcomes(
            store
                .record_alerts(vec![firing.clone(), firing.clone()])
                .await
                .unwrap()
        ),
        vec![AlertOutcome::Unchanged, AlertOutcome::Unchanged]
    );
    let listed = store.list_alerts(&alerts_for(&service)).await.unwrap();
    assert_eq!(listed, vec![firing.clone()]);
    assert_eq!(
        store.get_alert(&firing.uid).await.unwrap(),
        Some(firing.clone())
    );
    // FIRED_ON the deployment's Service.
    assert_eq!(
        store.alert_services(&firing.uid).await.unwrap(),
        vec![ServiceRef::test(&service)]
    );
    // Resolution updates it; a late firing retry does not reopen it.
    let resolved = firing.clone().resolved_at(45);
    assert_eq!(
        outcomes(store.record_alerts(vec![resolved.clone()]).await.unwrap()),
        vec![AlertOutcome::Updated]
    );
    assert_eq!(
        outcomes(store.record_alerts(vec![firing.clone()]).await.unwrap()),
        vec![AlertOutcome::Unchanged]
    );
    let stored = store.get_alert(&firing.uid).await.unwrap().unwrap();
    assert_eq!(stored.status, AlertStatus::Resolved);
    assert_eq!(stored.ends_at, resolved.ends_at);
    // Its metric onset is recorded on it and kept by later deliveries; an unknown alert has
    // none to record.
    let onset = deploygraph_model::MetricOnset::Found {
        at: firing.starts_at - Duration::minutes(4),
        query: "rate(errors[5m])".into(),
        before: 0.25,
        at_alert: 3.5,
    };
    assert!(store.set_alert_onset(&firing.uid, &onset).await.unwrap());
    assert!(
        !store
            .set_alert_onset(&deploygraph_model::Uid::from_stored("alert-none"), &onset)
            .await
            .unwrap()
    );
    let metrics: std::collections::BTreeMap<String, deploygraph_model::ServiceMetric> = [
        (
            "api".to_owned(),
            deploygraph_model::ServiceMetric::Moved {
                at: firing.starts_at - Duration::minutes(9),
                before: 0.01,
                at_alert: 0.2,
            },
        ),
        ("cache".to_owned(), deploygraph_model::ServiceMetric::Steady),
        ("db".to_owned(), deploygraph_model::ServiceMetric::NoSeries),
    ]
    .into();
    assert!(
        store
            .set_alert_service_metrics(&firing.uid, &metrics)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_alert_service_metrics(&deploygraph_model::Uid::from_stored("alert-none"), &metrics)
            .await
            .unwrap()
    );
    store.record_alerts(vec![resolved.clone()]).await.unwrap();
    let stored = store.get_alert(&firing.uid).await.unwrap().unwrap();
    assert_eq!(
        stored.service_metrics.as_ref(),
        Some(&metrics),
        "kept across redeliveries"
    );
    assert_eq!(stored.onset, Some(onset));
    assert_eq!(stored.status, AlertStatus::Resolved);
    // The next occurrence of the same fingerprint is another alert.
    let again = Alert::test(&fingerprint, &service, 90);
    store.record_alerts(vec![again.clone()]).await.unwrap();
    let by_fingerprint = store
        .list_alerts(&AlertFilter {
            fingerprint: Some(fingerprint.clone()),
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_fingerprint.iter().map(|a| &a.uid).collect::<Vec<_>>(),
        vec![&again.uid, &firing.uid],
        "newest first"
    );
    let window = store
        .list_alerts(&AlertFilter {
            since: Some(firing.starts_at + Duration::minutes(1)),
            ..alerts_for(&service)
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 1);
}

async fn alerts_fire_on_known_or_named_services(store: Arc<dyn GraphStore>) {
    // No Service stored and no environment label: stored, linked to nothing.
    let service = unique("unknown");
    let mut alert = Alert::test(&unique("fp"), &service, 0);
    alert.environment = None;
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    assert!(store.alert_services(&alert.uid).await.unwrap().is_empty());
    // With an environment, the named Service is created.
    let named = Alert::test(&unique("fp"), &service, 0);
    store.record_alerts(vec![named.clone()]).await.unwrap();
    assert_eq!(
        store.alert_services(&named.uid).await.unwrap(),
        vec![ServiceRef::test(&service)]
    );
    // Without an environment, every environment's Service with the name.
    let staging = Deployment::test()
        .service(&service)
        .environment("staging")
        .build();
    record_one(&store, staging).await;
    let mut any_env = Alert::test(&unique("fp"), &service, 5);
    any_env.environment = None;
    store.record_alerts(vec![any_env.clone()]).await.unwrap();
    let envs: Vec<String> = store
        .alert_services(&any_env.uid)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.environment.to_string())
        .collect();
    assert_eq!(envs, vec!["production".to_owned(), "staging".to_owned()]);
    let found = store
        .find_services(
            &ServiceName::parse(&service).unwrap(),
            Some("prod"),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
}

/// Two clusters that both run a service of one name in one environment hold two Services, two
/// FOLLOWS chains and two rollouts of the same build; listings, lookups and alerts tell them
/// apart, and a dependency may cross clusters.
async fn one_service_name_in_two_clusters_is_two_services(store: Arc<dyn GraphStore>) {
    let service = unique("clustered");
    let eu = Cluster::parse("eu-1").unwrap();
    let here = Deployment::test().service(&service).build();
    let there = Deployment::test().service(&service).cluster("eu-1").build();
    assert_ne!(
        here.uid, there.uid,
        "the same build in two clusters is two rollouts"
    );
    assert_ne!(here.service_uid(), there.service_uid());
    let there_later = Deployment::test()
        .service(&service)
        .cluster("eu-1")
        .commit("abcdef1234567")
        .image_seed(7)
        .started_at_minute(30)
        .build();
    let outcomes = store
        .record_deployments(vec![here.clone(), there.clone(), there_later.clone()])
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.kind == RecordKind::Created));
    // Each cluster's chain is its own.
    let later = store
        .get_deployment(&there_later.uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.follows, Some(there.uid.clone()));
    assert_eq!(later.deployment.cluster, eu);
    assert_eq!(
        store
            .get_deployment(&here.uid)
            .await
            .unwrap()
            .unwrap()
            .follows,
        None
    );
    // Listings filter by cluster.
    let listed = |cluster: Option<Cluster>| {
        let store = Arc::clone(&store);
        let service = service.clone();
        async move {
            let page = store
                .list_deployments(&DeploymentFilter {
                    cluster,
                    ..filter_service(&service, 10)
                })
                .await
                .unwrap();
            page.items
                .into_iter()
                .map(|d| d.deployment.uid)
                .collect::<HashSet<_>>()
        }
    };
    assert_eq!(listed(None).await.len(), 3);
    assert_eq!(
        listed(Some(eu.clone())).await,
        HashSet::from([there.uid.clone(), there_later.uid.clone()])
    );
    assert_eq!(
        listed(Some(Cluster::default())).await,
        HashSet::from([here.uid.clone()])
    );
    let mut clusters: Vec<(String, u64)> = store
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.name == service)
        .map(|s| (s.cluster, s.deployments))
        .collect();
    clusters.sort();
    assert_eq!(
        clusters,
        vec![("default".to_owned(), 1), ("eu-1".to_owned(), 2)]
    );
    let name = ServiceName::parse(&service).unwrap();
    assert_eq!(
        store
            .find_services(&name, None, None, Some(&eu))
            .await
            .unwrap(),
        vec![there.service_ref()]
    );
    assert_eq!(
        store
            .find_services(&name, None, None, None)
            .await
            .unwrap()
            .len(),
        2
    );
    // An alert with a cluster label fires on that cluster's Service; one without, on both.
    let mut labelled = Alert::test(&unique("fp"), &service, 40);
    labelled.cluster = Some(eu.clone());
    let unlabelled = Alert::test(&unique("fp"), &service, 41);
    store
        .record_alerts(vec![labelled.clone(), unlabelled.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.alert_services(&labelled.uid).await.unwrap(),
        vec![there.service_ref()]
    );
    assert_eq!(
        store.alert_services(&unlabelled.uid).await.unwrap().len(),
        2
    );
    let alerts_in = |cluster: Cluster| {
        let store = Arc::clone(&store);
        let filter = AlertFilter {
            cluster: Some(cluster),
            ..alerts_for(&service)
        };
        async move {
            store
                .list_alerts(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.uid)
                .collect::<HashSet<_>>()
        }
    };
    assert_eq!(
        alerts_in(eu.clone()).await,
        HashSet::from([labelled.uid.clone(), unlabelled.uid.clone()])
    );
    assert_eq!(
        alerts_in(Cluster::default()).await,
        HashSet::from([unlabelled.uid.clone()])
    );
    // A label naming a cluster with no such Service creates it there, not in the default one.
    let mut elsewhere = Alert::test(&unique("fp"), &service, 42);
    elsewhere.cluster = Some(Cluster::parse("us-2").unwrap());
    store.record_alerts(vec![elsewhere.clone()]).await.unwrap();
    let fired = store.alert_services(&elsewhere.uid).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].cluster.as_str(), "us-2");
    // DEPENDS_ON may cross clusters.
    let web = ServiceRef {
        cluster: eu.clone(),
        ..ServiceRef::test(&unique("web"))
    };
    store
        .set_dependencies(&web, &[here.service_ref()])
        .await
        .unwrap();
    assert_eq!(
        store.dependencies(&web).await.unwrap(),
        vec![here.service_ref()]
    );
    assert_eq!(
        store.dependents(&here.service_ref()).await.unwrap(),
        vec![web.clone()]
    );
    let view = store.service_topology(&web).await.unwrap();
    assert_eq!(view.depends_on.len(), 1);
}

/// Adds (or drops again) the cluster columns of migration 0022 in an old store's file, outside
/// the migration record: this build's code writes them when it records the old store's data,
/// and 0022 must still apply after the table rebuilds (0004, 0006) the test is about.
fn cluster_columns(path: &std::path::Path, add: bool) {
    let conn = rusqlite::Connection::open(path).unwrap();
    for (table, column) in [
        ("services", "TEXT NOT NULL DEFAULT 'default'"),
        ("deployments", "TEXT NOT NULL DEFAULT 'default'"),
        ("alerts", "TEXT"),
    ] {
        let sql = if add {
            format!("ALTER TABLE {table} ADD COLUMN cluster {column}")
        } else {
            format!("ALTER TABLE {table} DROP COLUMN cluster")
        };
        conn.execute_batch(&sql).unwrap();
    }
}

async fn dependencies_are_replaced(store: Arc<dyn GraphStore>) {
    let (a, b, c) = (unique("api"), unique("db"), unique("cache"));
    let a_ref = ServiceRef::test(&a);
    store
        .set_dependencies(&a_ref, &[ServiceRef::test(&b), ServiceRef::test(&c)])
        .await
        .unwrap();
    let mut deps = store.dependencies(&a_ref).await.unwrap();
    deps.sort();
    let mut expected = vec![ServiceRef::test(&b), ServiceRef::test(&c)];
    expected.sort();
    assert_eq!(deps, expected);
    assert_eq!(
        store.dependents(&ServiceRef::test(&b)).await.unwrap(),
        vec![a_ref.clone()]
    );
    store
        .set_dependencies(&a_ref, &[ServiceRef::test(&c)])
        .await
        .unwrap();
    assert_eq!(
        store.dependencies(&a_ref).await.unwrap(),
        vec![ServiceRef::test(&c)]
    );
    assert!(
        store
            .dependents(&ServiceRef::test(&b))
            .await
            .unwrap()
            .is_empty()
    );
    store.set_dependencies(&a_ref, &[]).await.unwrap();
    assert!(store.dependencies(&a_ref).await.unwrap().is_empty());
    assert!(
        store
            .dependents(&ServiceRef::test(&c))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The batched reads attribution uses answer what their single reads answer.
async fn batched_reads_match_single_reads(store: Arc<dyn GraphStore>) {
    let (a, b, c, d) = (unique("a"), unique("b"), unique("c"), unique("d"));
    let [a, b, c, d] = [&a, &b, &c, &d].map(|s| ServiceRef::test(s));
    store
        .set_dependencies(&b, std::slice::from_ref(&a))
        .await
        .unwrap();
    store
        .set_dependencies(&c, std::slice::from_ref(&a))
        .await
        .unwrap();
    store
        .set_dependencies(&d, std::slice::from_ref(&b))
        .await
        .unwrap();
    let asked = [a.clone(), b.clone(), d.clone(), a.clone()];
    let mut single = Vec::new();
    for s in &asked {
        single.push(store.dependents(s).await.unwrap());
    }
    assert_eq!(single[0].len(), 2);
    assert_eq!(store.dependents_of_each(&asked).await.unwrap(), single);
    assert!(store.dependents_of_each(&[]).await.unwrap().is_empty());
    let asked = [d.clone(), b.clone(), a.clone(), c.clone(), d.clone()];
    let mut single = Vec::new();
    for s in &asked {
        single.push(store.dependencies(s).await.unwrap());
    }
    assert_eq!(single[0], vec![b.clone()]);
    assert!(single[2].is_empty());
    assert_eq!(store.dependencies_of_each(&asked).await.unwrap(), single);
    assert!(store.dependencies_of_each(&[]).await.unwrap().is_empty());

    let (s1, s2, s3) = (unique("alerts1"), unique("alerts2"), unique("alerts3"));
    let mut alerts: Vec<Alert> = [0, 1, 2, 3, 10]
        .into_iter()
        .map(|m| Alert::test(&unique("fp"), &s1, m))
        .collect();
    alerts.extend([1, 4].map(|m| Alert::test(&unique("fp"), &s2, m)));
    store.record_alerts(alerts).await.unwrap();
    let names: Vec<ServiceName> = [&s1, &s2, &s1, &s3]
        .iter()
        .map(|s| ServiceName::parse(s).unwrap())
        .collect();
    let filter = AlertFilter {
        environment: Some(Environment::parse("production").unwrap()),
        since: Some(minute(1)),
        until: Some(minute(5)),
        limit: 2,
        ..AlertFilter::default()
    };
    let mut expected: Vec<Uid> = Vec::new();
    for name in [&s1, &s2, &s3] {
        let of = AlertFilter {
            service: Some(ServiceName::parse(name).unwrap()),
            ..filter.clone()
        };
        expected.extend(
            store
                .list_alerts(&of)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.uid),
        );
    }
    assert_eq!(expected.len(), 4, "two of s1's in the window, both of s2's");
    let mut got: Vec<Uid> = store
        .alerts_of_services(&names, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.uid)
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    let elsewhere = AlertFilter {
        environment: Some(Environment::parse("staging").unwrap()),
        ..filter.clone()
    };
    assert!(
        store
            .alerts_of_services(&names, &elsewhere)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .alerts_of_services(&[], &filter)
            .await
            .unwrap()
            .is_empty()
    );
}

fn topology(
    source: EdgeSource,
    mode: TopologyMode,
    seen_minute: i64,
    services: Vec<(ServiceRef, Vec<ServiceRef>)>,
) -> TopologyUpdate {
    TopologyUpdate {
        source,
        seen_at: minute(seen_minute),
        mode,
        services: services
            .into_iter()
            .map(|(service, depends_on)| ServiceTopology {
                service,
                owner: None,
                tier: None,
                depends_on,
            })
            .collect(),
    }
}

/// `(dependency name, [sources])` of a service, as `service_topology` reads them.
async fn edges_of(
    store: &Arc<dyn GraphStore>,
    service: &ServiceRef,
) -> Vec<(String, Vec<EdgeSource>)> {
    store
        .service_topology(service)
        .await
        .unwrap()
        .depends_on
        .into_iter()
        .map(|e| {
            (
                e.service.name.as_str().to_owned(),
                e.sources.iter().map(|s| s.source).collect(),
            )
        })
        .collect()
}

async fn each_source_keeps_its_own_edges(store: Arc<dyn GraphStore>) {
    let (api, db, cache, queue) = (
        unique("api"),
        unique("db"),
        unique("cache"),
        unique("queue"),
    );
    let a = ServiceRef::test(&api);
    let (db_ref, cache_ref, queue_ref) = (
        ServiceRef::test(&db),
        ServiceRef::test(&cache),
        ServiceRef::test(&queue),
    );
    store
        .set_dependencies(&a, &[db_ref.clone(), cache_ref.clone()])
        .await
        .unwrap();
    store
        .apply_topology(&topology(
            EdgeSource::Mesh,
            TopologyMode::Merge,
            10,
            vec![(a.clone(), vec![db_ref.clone(), queue_ref.clone()])],
        ))
        .await
        .unwrap();
    store
        .apply_topology(&topology(
            EdgeSource::Backstage,
            TopologyMode::Replace,
            5,
            vec![(a.clone(), vec![cache_ref.clone()])],
        ))
        .await
        .unwrap();
    let mut expected = vec![
        (
            cache.clone(),
            vec![EdgeSource::Manual, EdgeSource::Backstage],
        ),
        (db.clone(), vec![EdgeSource::Manual, EdgeSource::Mesh]),
        (queue.clone(), vec![EdgeSource::Mesh]),
    ];
    expected.sort();
    assert_eq!(edges_of(&store, &a).await, expected);
    // The reads attribution uses see every source, each dependency once.
    let mut deps = store.dependencies(&a).await.unwrap();
    deps.sort();
    let mut all = vec![db_ref.clone(), cache_ref.clone(), queue_ref.clone()];
    all.sort();
    assert_eq!(deps, all);
    assert_eq!(store.dependents(&db_ref).await.unwrap(), vec![a.clone()]);

    // PUT replaces the manual edges only: the mesh and Backstage ones stay.
    store.set_dependencies(&a, &[]).await.unwrap();
    let mut expected = vec![
        (cache.clone(), vec![EdgeSource::Backstage]),
        (db.clone(), vec![EdgeSource::Mesh]),
        (queue.clone(), vec![EdgeSource::Mesh]),
    ];
    expected.sort();
    assert_eq!(edges_of(&store, &a).await, expected);
    // A Backstage import without the edge removes the Backstage one, not the mesh ones.
    store
        .apply_topology(&topology(
            EdgeSource::Backstage,
            TopologyMode::Replace,
            6,
            vec![(a.clone(), vec![])],
        ))
        .await
        .unwrap();
    let mut expected = vec![
        (db.clone(), vec![EdgeSource::Mesh]),
        (queue.clone(), vec![EdgeSource::Mesh]),
    ];
    expected.sort();
    assert_eq!(edges_of(&store, &a).await, expected);
    assert!(store.dependents(&cache_ref).await.unwrap().is_empty());
    // A merge never removes: observing one edge again leaves the other.
    store
        .apply_topology(&topology(
            EdgeSource::Mesh,
            TopologyMode::Merge,
            11,
            vec![(a.clone(), vec![db_ref.clone()])],
        ))
        .await
        .unwrap();
    assert_eq!(edges_of(&store, &a).await.len(), 2);
}

async fn edges_keep_their_latest_sighting(store: Arc<dyn GraphStore>) {
    let (api, db) = (unique("seen"), unique("seen-db"));
    let (a, b) = (ServiceRef::test(&api), ServiceRef::test(&db));
    let observe = |m: i64| {
        topology(
            EdgeSource::Mesh,
            TopologyMode::Merge,
            m,
            vec![(a.clone(), vec![b.clone()])],
        )
    };
    store.apply_topology(&observe(20)).await.unwrap();
    // A late, older observation does not move it back.
    store.apply_topology(&observe(10)).await.unwrap();
    let view = store.service_topology(&a).await.unwrap();
    assert_eq!(view.depends_on.len(), 1);
    assert_eq!(view.depends_on[0].last_seen_at, minute(20));
    assert_eq!(view.depends_on[0].sources[0].last_seen_at, minute(20));
    store.apply_topology(&observe(30)).await.unwrap();
    store
        .apply_topology(&topology(
            EdgeSource::Backstage,
            TopologyMode::Replace,
            25,
            vec![(a.clone(), vec![b.clone()])],
        ))
        .await
        .unwrap();
    let view = store.service_topology(&a).await.unwrap();
    let edge = &view.depends_on[0];
    assert_eq!(edge.last_seen_at, minute(30));
    let seen: Vec<(EdgeSource, DateTime<Utc>)> = edge
        .sources
        .iter()
        .map(|s| (s.source, s.last_seen_at))
        .collect();
    assert_eq!(
        seen,
        vec![
            (EdgeSource::Backstage, minute(25)),
            (EdgeSource::Mesh, minute(30))
        ]
    );
    // A service nobody wrote has no topology.
    let unknown = store
        .service_topology(&ServiceRef::test(&unique("nobody")))
        .await
        .unwrap();
    assert_eq!(
        (unknown.owner, unknown.tier, unknown.depends_on.len()),
        (None, None, 0)
    );
}

async fn owner_and_tier_are_kept_and_listed(store: Arc<dyn GraphStore>) {
    let name = unique("owned");
    let service = ServiceRef::test(&name);
    let mut update = topology(
        EdgeSource::Backstage,
        TopologyMode::Replace,
        1,
        vec![(service.clone(), vec![])],
    );
    update.services[0].owner = Some("team-payments".into());
    update.services[0].tier = Some("tier-1".into());
    store.apply_topology(&update).await.unwrap();
    // A write without them leaves them.
    store.set_dependencies(&service, &[]).await.unwrap();
    let mut update = topology(
        EdgeSource::Manual,
        TopologyMode::Replace,
        2,
        vec![(service.clone(), vec![])],
    );
    update.services[0].tier = Some("tier-2".into());
    store.apply_topology(&update).await.unwrap();
    let view = store.service_topology(&service).await.unwrap();
    assert_eq!(view.owner.as_deref(), Some("team-payments"));
    assert_eq!(view.tier.as_deref(), Some("tier-2"));
    let listed = store.list_services().await.unwrap();
    let summary = listed.iter().find(|s| s.name == name).unwrap();
    assert_eq!(summary.owner.as_deref(), Some("team-payments"));
    assert_eq!(summary.tier.as_deref(), Some("tier-2"));
    assert_eq!(summary.deployments, 0);
}

async fn a_large_mesh_write_is_one_transaction_in_chunks(store: Arc<dyn GraphStore>) {
    // More edges than one UNWIND chunk (2,000) on Neo4j.
    let hub = ServiceRef::test(&unique("hub"));
    let prefix = unique("leaf");
    let leaves: Vec<ServiceRef> = (0..2_500)
        .map(|i| ServiceRef::test(&format!("{prefix}-{i}")))
        .collect();
    store
        .apply_topology(&topology(
            EdgeSource::Mesh,
            TopologyMode::Merge,
            3,
            vec![(hub.clone(), leaves.clone())],
        ))
        .await
        .unwrap();
    assert_eq!(store.dependencies(&hub).await.unwrap().len(), 2_500);
    assert_eq!(store.dependents(&leaves[2_499]).await.unwrap(), vec![hub]);
}

async fn attribution_is_replaced_never_duplicated(store: Arc<dyn GraphStore>) {
    let service = unique("attributed");
    let old = Deployment::test().service(&service).image_seed(1).build();
    let new = Deployment::test()
        .service(&service)
        .image_seed(2)
        .started_at_minute(20)
        .build();
    let other = Deployment::test()
        .service(&unique("elsewhere"))
        .started_at_minute(21)
        .build();
    for d in [&old, &new, &other] {
        record_one(&store, d.clone()).await;
    }
    let alert = Alert::test(&unique("fp"), &service, 30);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    let window = store
        .deployments_between(
            &[new.service_uid(), other.service_uid()],
            minute(10),
            minute(30),
        )
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|d| &d.deployment.uid).collect::<Vec<_>>(),
        vec![&other.uid, &new.uid],
        "newest first, only the window"
    );
    assert_eq!(window[1].follows.as_ref(), Some(&old.uid));
    let trigger = |d: &Deployment, score: f64| Trigger {
        subject: SubjectKind::Deployment,
        subject_uid: d.uid.clone(),
        alert_uid: alert.uid.clone(),
        confidence_score: score,
        reasons: vec![format!("reason for {score}")],
        computed_at: minute(31),
    };
    store
        .replace_attribution(&alert.uid, &[trigger(&old, 0.2), trigger(&new, 0.7)], None)
        .await
        .unwrap();
    let stored = store.attribution(&alert.uid).await.unwrap();
    assert_eq!(
        stored.triggers,
        vec![trigger(&new, 0.7), trigger(&old, 0.2)]
    );
    assert_eq!(stored.chaos_run, None);
    let history = store
        .service_history(&new.service_uid(), minute(60))
        .await
        .unwrap();
    // Only a suspect at BLAMED_CONFIDENCE or more counts as blamed: `new`, not `old` at 0.2.
    assert_eq!((history.deployments, history.followed_by_alerts), (2, 1));
    // Recomputing replaces.
    store
        .replace_attribution(&alert.uid, &[trigger(&new, 0.65)], None)
        .await
        .unwrap();
    assert_eq!(
        store.attribution(&alert.uid).await.unwrap().triggers,
        vec![trigger(&new, 0.65)]
    );
    let history = store
        .service_history(&new.service_uid(), minute(60))
        .await
        .unwrap();
    assert_eq!((history.deployments, history.followed_by_alerts), (2, 1));
    let before_new = store
        .service_history(&new.service_uid(), minute(20))
        .await
        .unwrap();
    assert_eq!(
        (before_new.deployments, before_new.followed_by_alerts),
        (1, 0)
    );
    // Concurrent attributions of one alert (the webhook's and a late deployment's) leave one
    // edge per suspect: the last writer's, never both side by side.
    // Readers meanwhile (DORA's top suspects, the suspects view) never fail on an edge being
    // replaced under them.
    for round in 0..5 {
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                let alert = alert.uid.clone();
                let triggers = vec![trigger(&new, 0.5 + f64::from(i) / 100.0)];
                tokio::spawn(
                    async move { store.replace_attribution(&alert, &triggers, None).await },
                )
            })
            .collect();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                let alert = alert.uid.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        let top = store.top_triggers(std::slice::from_ref(&alert)).await?;
                        assert!(top.len() <= 1);
                        store.attribution(&alert).await?;
                    }
                    Ok::<(), deploygraph_store::Error>(())
                })
            })
            .collect::<Vec<_>>();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        for reader in readers {
            reader.await.unwrap().unwrap();
        }
        let stored = store.attribution(&alert.uid).await.unwrap().triggers;
        assert_eq!(stored.len(), 1, "round {round}: {stored:?}");
    }
}

/// One key's history as `(changes, followed_by_alerts)` by path.
fn histories(found: &[KeyHistory]) -> Vec<(String, u32, u32)> {
    found
        .iter()
        .map(|h| (h.path.clone(), h.changes, h.followed_by_alerts))
        .collect()
}

async fn key_history_counts_each_keys_recent_changes_across_the_graph(store: Arc<dyn GraphStore>) {
    // Keys of this test alone (the Neo4j database is shared): `a` sorts before `b`.
    let prefix = unique("values.keyhist");
    let (a, b, quiet_key) = (
        format!("{prefix}.a"),
        format!("{prefix}.b"),
        format!("{prefix}.quiet"),
    );
    let (api, db) = (unique("keys-api"), unique("keys-db"));
    let deployment = |service: &str, at: i64, keys: &[&str]| {
        let mut builder = Deployment::test()
            .service(service)
            .image_seed(at.unsigned_abs() + 1)
            .started_at_minute(at);
        for key in keys {
            builder = builder.change(key, "1", &at.to_string());
        }
        builder.build()
    };
    let d0 = deployment(&api, 0, &[&a]);
    let d1 = deployment(&db, 10, &[&a]);
    let d2 = deployment(&api, 20, &[&a, &b]);
    // Changed `a` in two ways (a value and a manifest field): one change of the key.
    let mut d3 = deployment(&api, 30, &[&a]);
    d3.changes.push(ConfigChange::new(
        a.clone(),
        ChangeKind::Manifest,
        Some("x".into()),
        Some("y".into()),
    ));
    let at_before = deployment(&db, 50, &[&a]);
    let unrelated = deployment(&db, 40, &[]);
    let deployments = [&d0, &d1, &d2, &d3, &at_before, &unrelated];
    store
        .record_deployments(deployments.iter().map(|d| (*d).clone()).collect())
        .await
        .unwrap();
    let mut change = Change::test()
        .service(&db)
        .at_minute(25)
        .key(&a, "1", "2")
        .build();
    change.diff.push(KeyChange {
        key: b.clone(),
        before: None,
        after: Some("on".into()),
    });
    let quiet = Change::test()
        .service(&db)
        .at_minute(26)
        .key(&quiet_key, "1", "2")
        .build();
    let later = Change::test()
        .service(&db)
        .at_minute(55)
        .key(&a, "2", "3")
        .build();
    store
        .record_changes(vec![change.clone(), quiet.clone(), later.clone()])
        .await
        .unwrap();
    // Blamed at 0.5 or more only: d0 (0.9), d1 (exactly 0.5) and the change (0.8); d2 was a
    // suspect at 0.49, `quiet` one at 0.1.
    let mut alerts: Vec<Alert> = Vec::new();
    let mut subjects: Vec<Uid> = deployments.iter().map(|d| d.uid.clone()).collect();
    subjects.extend([change.uid.clone(), quiet.uid.clone(), later.uid.clone()]);
    for (i, (subject, uid, score)) in [
        (SubjectKind::Deployment, &d0.uid, 0.9),
        (SubjectKind::Deployment, &d1.uid, 0.5),
        (SubjectKind::Deployment, &d2.uid, 0.49),
        (SubjectKind::Change, &change.uid, 0.8),
        (SubjectKind::Change, &quiet.uid, 0.1),
        (SubjectKind::Deployment, &at_before.uid, 0.9),
    ]
    .into_iter()
    .enumerate()
    {
        // Early: blame counts in a history only from alerts that started before its time.
        let alert = Alert::test(&unique("fp"), &api, 1 + i as i64);
        store.record_alerts(vec![alert.clone()]).await.unwrap();
        subjects.push(alert.uid.clone());
        alerts.push(alert.clone());
        store
            .replace_attribution(
                &alert.uid,
                &[Trigger {
                    subject,
                    subject_uid: uid.clone(),
                    alert_uid: alert.uid.clone(),
                    confidence_score: score,
                    reasons: vec!["r".into()],
                    computed_at: minute(200),
                }],
                None,
            )
            .await
            .unwrap();
    }
    let history = |paths: Vec<String>, before: i64, limit: u32| {
        let store = Arc::clone(&store);
        async move {
            histories(
                &store
                    .key_history(&paths, minute(before), limit)
                    .await
                    .unwrap(),
            )
        }
    };
    // Across services and kinds of change, strictly before `before`, ordered by path; a path
    // asked twice is answered once, an unknown one not at all.
    assert_eq!(
        history(
            vec![b.clone(), a.clone(), quiet_key.clone(), a.clone()],
            50,
            10
        )
        .await,
        vec![
            (a.clone(), 5, 3),
            (b.clone(), 2, 1),
            (quiet_key.clone(), 1, 0)
        ]
    );
    assert_eq!(
        history(vec![a.clone(), format!("{prefix}.nothing")], 50, 10).await,
        vec![(a.clone(), 5, 3)]
    );
    // The most recent `limit`: d3 (30) and the change (25).
    assert_eq!(
        history(vec![a.clone(), b.clone()], 50, 2).await,
        vec![(a.clone(), 2, 1), (b.clone(), 2, 1)]
    );
    assert_eq!(
        history(vec![a.clone()], 50, 1).await,
        vec![(a.clone(), 1, 0)]
    );
    // Only before `before`: at 20, d2 is not yet (it started then).
    assert_eq!(
        history(vec![a.clone(), b.clone()], 20, 10).await,
        vec![(a.clone(), 2, 2)]
    );
    // Later changes count when they are before.
    assert_eq!(
        history(vec![a.clone()], 60, 10).await,
        vec![(a.clone(), 7, 4)]
    );
    assert!(history(Vec::new(), 60, 10).await.is_empty());
    assert!(history(vec![a.clone()], 60, 0).await.is_empty());
    assert!(history(vec![a.clone()], 0, 10).await.is_empty());
    // Reviews decide: confirming d2 (a suspect at 0.49) blames it, rejecting d0 (0.9) clears it.
    for v in [
        verdict(
            &alerts[2],
            SubjectKind::Deployment,
            &d2.uid,
            VerdictKind::Confirmed,
            "sre",
            None,
            300,
        ),
        verdict(
            &alerts[0],
            SubjectKind::Deployment,
            &d0.uid,
            VerdictKind::Rejected,
            "sre",
            Some("a coincidence"),
            300,
        ),
    ] {
        assert!(store.record_verdict(&v).await.unwrap().is_some());
    }
    assert_eq!(
        history(vec![a.clone(), b.clone()], 50, 10).await,
        vec![(a.clone(), 5, 3), (b.clone(), 2, 2)]
    );
    assert_eq!(
        history(vec![a.clone()], 25, 10).await,
        vec![(a.clone(), 3, 2)]
    );
    // Blame from an alert that started later is not in the history of an earlier time: d3
    // blamed for an alert of minute 100 counts at 200, not at 60.
    let late = Alert::test(&unique("fp"), &api, 100);
    store.record_alerts(vec![late.clone()]).await.unwrap();
    subjects.push(late.uid.clone());
    store
        .replace_attribution(&late.uid, &[scored(&late, &d3, 0.9)], None)
        .await
        .unwrap();
    assert_eq!(
        history(vec![a.clone()], 60, 10).await,
        vec![(a.clone(), 7, 4)]
    );
    assert_eq!(
        history(vec![a.clone()], 200, 10).await,
        vec![(a.clone(), 7, 5)]
    );
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &subjects).await;
}

async fn chaos_runs_are_updated_in_place_and_raise_alerts(store: Arc<dyn GraphStore>) {
    let service = unique("chaos");
    let run_id = unique("run");
    let running = ChaosRun::test(&run_id, &service, 0, None);
    store.record_chaos_run(&running).await.unwrap();
    let done = ChaosRun::test(&run_id, &service, 0, Some(10));
    store.record_chaos_run(&done).await.unwrap();
    assert_eq!(
        store.get_chaos_run(&done.uid).await.unwrap(),
        Some(done.clone())
    );
    let filter = |since: i64, until: i64| ChaosFilter {
        services: vec![done.target.uid()],
        since: Some(minute(since)),
        until: Some(minute(until)),
        limit: 10,
        cursor: None,
        against: None,
    };
    assert_eq!(
        store.list_chaos_runs(&filter(5, 5)).await.unwrap(),
        vec![done.clone()]
    );
    // Runs AGAINST a deployment: only its own.
    let release = Deployment::test().service(&service).build();
    store
        .record_deployments(vec![release.clone()])
        .await
        .unwrap();
    let mut against = ChaosRun::test(&unique("run"), &service, 1, Some(3));
    against.against = Some(release.uid.clone());
    store.record_chaos_run(&against).await.unwrap();
    let of = |uid: &deploygraph_model::Uid| ChaosFilter {
        against: Some(uid.clone()),
        limit: 10,
        ..ChaosFilter::default()
    };
    assert_eq!(
        store.list_chaos_runs(&of(&release.uid)).await.unwrap(),
        vec![against.clone()]
    );
    assert!(
        store
            .list_chaos_runs(&of(&deploygraph_model::Uid::from_stored("deployment-none")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_chaos_runs(&filter(11, 20))
            .await
            .unwrap()
            .is_empty()
    );
    let alert = Alert::test(&unique("fp"), &service, 5);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    store
        .replace_attribution(&alert.uid, &[], Some((&done.uid, "pod-delete was running")))
        .await
        .unwrap();
    let stored = store.attribution(&alert.uid).await.unwrap();
    assert_eq!(stored.chaos_run, Some(done.uid.clone()));
    assert_eq!(
        stored.chaos_reason.as_deref(),
        Some("pod-delete was running")
    );
    assert!(stored.triggers.is_empty());
}

async fn a_rollout_without_commit_or_digest_is_recorded(store: Arc<dyn GraphStore>) {
    let service = unique("k8s");
    let mut d = Deployment::test().service(&service).build();
    d.commit = None;
    d.images[0].digest = None;
    d.images[0].tag = Some("1.25".into());
    d.source = deploygraph_model::Source::K8s;
    assert_eq!(record_one(&store, d.clone()).await, RecordKind::Created);
    assert_eq!(record_one(&store, d.clone()).await, RecordKind::Unchanged);
    let stored = store.get_deployment(&d.uid).await.unwrap().unwrap();
    assert_eq!(stored.deployment, d);
    assert_eq!(stored.deployment.commit_sha(), None);
    // The kubelet resolves the digest and the rollout completes: the same rollout, updated.
    let mut resolved = d.clone();
    resolved.images[0].digest = Deployment::test().image_seed(3).build().images[0]
        .digest
        .clone();
    resolved.status = DeploymentStatus::Succeeded;
    assert_eq!(
        record_one(&store, resolved.clone()).await,
        RecordKind::Updated
    );
    let stored = store.get_deployment(&d.uid).await.unwrap().unwrap();
    assert_eq!(stored.deployment.images, resolved.images);
    assert_eq!(stored.deployment.status, DeploymentStatus::Succeeded);
    // The next rollout, with a commit and a digest, follows it.
    let next = Deployment::test()
        .service(&service)
        .started_at_minute(5)
        .build();
    record_one(&store, next.clone()).await;
    assert_eq!(
        store
            .get_deployment(&next.uid)
            .await
            .unwrap()
            .unwrap()
            .follows,
        Some(d.uid.clone())
    );
}

async fn helm_revisions_are_linked_and_follow_the_release(store: Arc<dyn GraphStore>) {
    let service = unique("helm");
    let mut d = Deployment::test().service(&service).in_progress().build();
    d.source = deploygraph_model::Source::Helm;
    d.helm = Some(deploygraph_model::HelmRevision {
        release: service.clone(),
        namespace: "prod".into(),
        revision: 11,
        chart: Some("payments".into()),
        chart_version: Some("1.4.2".into()),
        app_version: Some("2.3.0".into()),
        status: "pending-upgrade".into(),
    });
    assert_eq!(record_one(&store, d.clone()).await, RecordKind::Created);
    let mut deployed = d.clone();
    deployed.status = DeploymentStatus::Succeeded;
    if let Some(h) = deployed.helm.as_mut() {
        h.status = "deployed".into();
    }
    assert_eq!(
        record_one(&store, deployed.clone()).await,
        RecordKind::Updated
    );
    let stored = store
        .get_deployment(&d.uid)
        .await
        .unwrap()
        .unwrap()
        .deployment;
    assert_eq!(
        stored.helm.as_ref().map(|h| h.status.as_str()),
        Some("deployed")
    );
    if store.backend() == "neo4j" {
        let result = store
            .read_cypher(&deploygraph_store::cypher::CypherRequest {
                query: "MATCH (d:DeploymentEvent {uid: $uid})-[:RELEASED_AS]->(h:HelmRevision) RETURN h.revision AS revision, h.status AS status".into(),
                params: serde_json::json!({"uid": d.uid.as_str()}).as_object().unwrap().clone(),
                timeout: std::time::Duration::from_secs(5),
                row_cap: 10,
                byte_cap: deploygraph_store::cypher::DEFAULT_BYTE_CAP,
            })
            .await
            .unwrap();
        assert_eq!(result.rows.len(), 1, "{result:?}");
        let status = result.columns.iter().position(|c| c == "status").unwrap();
        assert_eq!(result.rows[0][status], "deployed");
    }
}

/// A CDEvents removal in an environment named by a path, with the producer's own names: no
/// image, no commit, the path kept whole, the origin kept, in the service's chain.
async fn a_removal_in_a_path_environment_keeps_its_origin(store: Arc<dyn GraphStore>) {
    let service = unique("removal");
    let environment = format!("prod/eu/{}", unique("cluster"));
    let deployed = Deployment::test()
        .service(&service)
        .environment(&environment)
        .build();
    let mut removed = Deployment::test()
        .service(&service)
        .environment(&environment)
        .started_at_minute(30)
        .status(DeploymentStatus::Removed)
        .build();
    removed.images.clear();
    removed.commit = None;
    removed.source = deploygraph_model::Source::Cdevents;
    removed.origin = Some(deploygraph_model::deployment::Origin {
        source: "/event/source/123".into(),
        event_type: "dev.cdevents.service.removed.0.3.0".into(),
        subject: "My-Removal".into(),
        source_name: "My-Removal".into(),
    });
    assert_eq!(
        record_one(&store, deployed.clone()).await,
        RecordKind::Created
    );
    assert_eq!(
        record_one(&store, removed.clone()).await,
        RecordKind::Created
    );
    assert_eq!(
        record_one(&store, removed.clone()).await,
        RecordKind::Unchanged
    );
    let got = store.get_deployment(&removed.uid).await.unwrap().unwrap();
    assert_eq!(got.deployment, removed);
    assert_eq!(got.follows, Some(deployed.uid.clone()));
    let page = store
        .list_deployments(&DeploymentFilter {
            service: Some(ServiceName::parse(&service).unwrap()),
            environment: Some(Environment::parse(&environment).unwrap()),
            status: Some(DeploymentStatus::Removed),
            limit: 10,
            ..DeploymentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].deployment.uid, removed.uid);
}

/// Upgrading a store that holds data across the migration that allows the `removed` status
/// keeps every row and relationship.
#[tokio::test]
async fn the_removed_status_migration_keeps_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for name in [
        "0001_init.sql",
        "0002_infra_snapshots.sql",
        "0003_alerts_topology_chaos.sql",
        "0004_optional_commit_and_digest.sql",
        "0005_helm_revisions.sql",
        // The follow-up outbox the current code writes into with every ingest, the changes'
        // tables attribution reads and replaces beside the deployments', and the config
        // changes' start it writes for key history.
        "0007_follow_ups.sql",
        "0010_changes.sql",
        "0012_key_history.sql",
    ] {
        std::fs::copy(source.join(name), old.join("sqlite").join(name)).unwrap();
    }
    let path = dir.path().join("upgrade.db");
    let service = unique("upgrade");
    let first = Deployment::test()
        .service(&service)
        .change("values.a", "1", "2")
        .build();
    let second = Deployment::test()
        .service(&service)
        .image_seed(2)
        .started_at_minute(5)
        .build();
    let alert = Alert::test(&unique("fp"), &service, 10);
    {
        let v5 = SqliteStore::open(&path, MigrationSource::Directory(old.clone()))
            .await
            .unwrap();
        assert_eq!(v5.migrate().await.unwrap().len(), 8);
        cluster_columns(&path, true);
        v5.record_deployments(vec![first.clone(), second.clone()])
            .await
            .unwrap();
        v5.record_alerts(vec![alert.clone()]).await.unwrap();
        v5.replace_attribution(
            &alert.uid,
            &[Trigger {
                subject: SubjectKind::Deployment,
                subject_uid: second.uid.clone(),
                alert_uid: alert.uid.clone(),
                confidence_score: 0.5,
                reasons: vec!["r".into()],
                computed_at: minute(11),
            }],
            None,
        )
        .await
        .unwrap();
        let removed = Deployment::test()
            .service(&service)
            .started_at_minute(20)
            .status(DeploymentStatus::Removed)
            .build();
        assert!(
            v5.record_deployments(vec![removed]).await.is_err(),
            "before 0006 the status is refused"
        );
    }
    cluster_columns(&path, false);
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.first().map(|m| m.name.as_str()),
        Some("0006_removed_status.sql"),
        "{applied:?}"
    );
    store.ready().await.unwrap();
    let got = store.get_deployment(&second.uid).await.unwrap().unwrap();
    assert_eq!(got.deployment, second);
    assert_eq!(got.follows, Some(first.uid.clone()));
    let history = store
        .service_history(&second.service_uid(), minute(60))
        .await
        .unwrap();
    // Scores of the earlier attribution model are removed by 0008 and their alerts queued for
    // re-attribution, so the new model's probabilities are never mixed with them.
    assert_eq!((history.deployments, history.followed_by_alerts), (2, 0));
    assert!(
        store
            .attribution(&alert.uid)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
    assert_eq!(
        store
            .follow_up_stats(Some(std::slice::from_ref(&alert.uid)))
            .await
            .unwrap()
            .alerts,
        1,
        "the alert is queued for re-attribution"
    );
    let removed = Deployment::test()
        .service(&service)
        .started_at_minute(20)
        .status(DeploymentStatus::Removed)
        .build();
    assert_eq!(
        store.record_deployments(vec![removed]).await.unwrap()[0].kind,
        RecordKind::Created
    );
}

fn claim(subjects: &[Uid], limit: usize, now: DateTime<Utc>) -> Claim<'_> {
    Claim {
        subjects: Some(subjects),
        limit,
        now,
        lease: Duration::seconds(60),
    }
}

async fn ingest_leaves_follow_ups_that_are_claimed_once_and_finished(store: Arc<dyn GraphStore>) {
    let service = unique("follow");
    let d = Deployment::test().service(&service).build();
    let alert = Alert::test(&unique("fp"), &service, 30);
    let subjects = vec![d.uid.clone(), alert.uid.clone()];
    record_one(&store, d.clone()).await;
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    // Facts recorded again unchanged leave no new follow-up.
    assert_eq!(record_one(&store, d.clone()).await, RecordKind::Unchanged);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    let stats = store.follow_up_stats(Some(&subjects)).await.unwrap();
    assert_eq!((stats.alerts, stats.deployments), (1, 1));
    assert!(stats.oldest.is_some());

    let now = Utc::now();
    let mut first = store
        .claim_follow_ups(claim(&subjects, 10, now))
        .await
        .unwrap();
    first.sort_by_key(|f| f.kind);
    assert_eq!(
        first
            .iter()
            .map(|f| (f.kind, f.subject.clone(), f.attempts))
            .collect::<Vec<_>>(),
        vec![
            (FollowUpKind::Alert, alert.uid.clone(), 1),
            (FollowUpKind::Deployment, d.uid.clone(), 1)
        ]
    );
    assert!(
        store
            .claim_follow_ups(claim(&subjects, 10, now))
            .await
            .unwrap()
            .is_empty(),
        "a leased follow-up is not claimed again"
    );
    assert_eq!(
        store
            .follow_up_stats(Some(&subjects))
            .await
            .unwrap()
            .total(),
        2
    );
    // The lease ended (the worker died): claimable again.
    let again = store
        .claim_follow_ups(claim(&subjects, 10, now + Duration::seconds(61)))
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|f| f.attempts == 2));
    for f in &again {
        store
            .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
            .await
            .unwrap();
    }
    assert_eq!(
        store.follow_up_stats(Some(&subjects)).await.unwrap(),
        FollowUpStats::default()
    );
}

async fn a_follow_up_enqueued_again_while_claimed_is_not_lost(store: Arc<dyn GraphStore>) {
    let service = unique("refollow");
    let started = Deployment::test().service(&service).in_progress().build();
    let subjects = vec![started.uid.clone()];
    record_one(&store, started.clone()).await;
    let now = Utc::now();
    let claimed = store
        .claim_follow_ups(claim(&subjects, 10, now))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // While a worker does it, the deployment fails: the facts changed.
    let mut done = started.clone();
    done.status = DeploymentStatus::Failed;
    done.finished_at = Some(started.started_at + Duration::minutes(3));
    assert_eq!(record_one(&store, done).await, RecordKind::Updated);
    store
        .finish_follow_up(claimed[0].kind, &claimed[0].subject, claimed[0].enqueued_at)
        .await
        .unwrap();
    let pending = store
        .claim_follow_ups(claim(&subjects, 10, now))
        .await
        .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "pending and claimable at once for the newer facts"
    );
    assert!(pending[0].enqueued_at > claimed[0].enqueued_at);
    store
        .finish_follow_up(pending[0].kind, &pending[0].subject, pending[0].enqueued_at)
        .await
        .unwrap();
    assert_eq!(
        store
            .follow_up_stats(Some(&subjects))
            .await
            .unwrap()
            .total(),
        0
    );
}

async fn alerts_are_read_by_uid_in_one_call(store: Arc<dyn GraphStore>) {
    let service = unique("batch");
    let alerts: Vec<Alert> = (0..3)
        .map(|i| Alert::test(&unique("fp"), &service, 10 + i))
        .collect();
    store.record_alerts(alerts.clone()).await.unwrap();
    let asked = vec![
        alerts[2].uid.clone(),
        Uid::from_stored("alert-unknown"),
        alerts[0].uid.clone(),
        alerts[0].uid.clone(),
    ];
    let read = store.get_alerts(&asked).await.unwrap();
    let mut expected = vec![alerts[0].clone(), alerts[2].clone()];
    expected.sort_by(|a, b| a.uid.cmp(&b.uid));
    assert_eq!(read, expected);
    assert!(store.get_alerts(&[]).await.unwrap().is_empty());
}

/// A revisit deferred to read later what an attribution could not read yet: claimable at its
/// time and not before, not counted as pending, claimable at once again when newer facts ask
/// for a revisit; a claimed revisit enqueued again while it was being done is not deferred.
async fn a_deferred_revisit_waits_for_its_time_unless_newer_facts_come(store: Arc<dyn GraphStore>) {
    let alert = Alert::test(&unique("fp"), &unique("defer"), 10);
    let one = std::slice::from_ref(&alert.uid);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    let now = Utc::now();
    let first = store.claim_follow_ups(claim(one, 10, now)).await.unwrap();
    assert_eq!(first.len(), 1);
    store
        .finish_follow_up(first[0].kind, &first[0].subject, first[0].enqueued_at)
        .await
        .unwrap();
    // After the first attribution: a revisit is written for later.
    store
        .defer_revisit(&alert.uid, None, now + Duration::minutes(10), now)
        .await
        .unwrap();
    let stats = store.follow_up_stats(Some(one)).await.unwrap();
    assert_eq!((stats.total(), stats.deferred), (0, 1), "{stats:?}");
    assert!(
        store
            .claim_follow_ups(claim(one, 10, now))
            .await
            .unwrap()
            .is_empty()
    );
    let later = now + Duration::minutes(11);
    let revisit = store.claim_follow_ups(claim(one, 10, later)).await.unwrap();
    assert_eq!(
        revisit.iter().map(|f| f.kind).collect::<Vec<_>>(),
        vec![FollowUpKind::Revisit]
    );
    // The claimed revisit, still short of what it needs, is deferred again.
    store
        .defer_revisit(
            &alert.uid,
            Some(revisit[0].enqueued_at),
            now + Duration::minutes(20),
            later,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_follow_ups(claim(one, 10, now + Duration::minutes(12)))
            .await
            .unwrap()
            .is_empty(),
        "deferred past its lease"
    );
    assert_eq!(store.follow_up_stats(Some(one)).await.unwrap().deferred, 1);
    // Newer facts ask for a revisit: claimable at once, counted as pending.
    assert_eq!(
        store.enqueue_revisits(one, now).await.unwrap(),
        vec![alert.uid.clone()]
    );
    let stats = store.follow_up_stats(Some(one)).await.unwrap();
    assert_eq!((stats.revisits, stats.deferred), (1, 0), "{stats:?}");
    let revisit = store.claim_follow_ups(claim(one, 10, now)).await.unwrap();
    assert_eq!(revisit.len(), 1);
    // Enqueued again while it was being done: deferring it leaves it claimable at once.
    store.enqueue_revisits(one, now).await.unwrap();
    store
        .defer_revisit(
            &alert.uid,
            Some(revisit[0].enqueued_at),
            now + Duration::minutes(30),
            now,
        )
        .await
        .unwrap();
    let again = store.claim_follow_ups(claim(one, 10, now)).await.unwrap();
    assert_eq!(again.len(), 1, "claimable at once for the newer facts");
    store
        .finish_follow_up(again[0].kind, &again[0].subject, again[0].enqueued_at)
        .await
        .unwrap();
    // Another revisit pending: a first attribution's deferral leaves it as it is.
    store.enqueue_revisits(one, now).await.unwrap();
    store
        .defer_revisit(&alert.uid, None, now + Duration::minutes(30), now)
        .await
        .unwrap();
    let pending = store.claim_follow_ups(claim(one, 10, now)).await.unwrap();
    assert_eq!(pending.len(), 1, "the pending revisit runs sooner");
    store
        .finish_follow_up(pending[0].kind, &pending[0].subject, pending[0].enqueued_at)
        .await
        .unwrap();
    let stats = store.follow_up_stats(Some(one)).await.unwrap();
    assert_eq!((stats.total(), stats.deferred), (0, 0), "{stats:?}");
}

async fn revisits_skip_waiting_first_attributions_and_coalesce(store: Arc<dyn GraphStore>) {
    let service = unique("revisit");
    let waiting = Alert::test(&unique("fp"), &service, 10);
    let attributed = Alert::test(&unique("fp"), &service, 12);
    let subjects = vec![waiting.uid.clone(), attributed.uid.clone()];
    store
        .record_alerts(vec![waiting.clone(), attributed.clone()])
        .await
        .unwrap();
    let now = Utc::now();
    // `attributed`'s first attribution is claimed (being done or done): it can be revisited;
    // `waiting`'s is not claimed yet, so it sees the newer facts without one.
    let first = store
        .claim_follow_ups(claim(std::slice::from_ref(&attributed.uid), 10, now))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let asked = vec![
        waiting.uid.clone(),
        attributed.uid.clone(),
        attributed.uid.clone(),
    ];
    assert_eq!(
        store.enqueue_revisits(&asked, now).await.unwrap(),
        vec![attributed.uid.clone()]
    );
    store
        .finish_follow_up(first[0].kind, &first[0].subject, first[0].enqueued_at)
        .await
        .unwrap();
    let stats = store.follow_up_stats(Some(&subjects)).await.unwrap();
    assert_eq!((stats.alerts, stats.revisits), (1, 1));
    // Asked again while pending: still one.
    assert_eq!(
        store
            .enqueue_revisits(std::slice::from_ref(&attributed.uid), now)
            .await
            .unwrap(),
        vec![attributed.uid.clone()]
    );
    assert_eq!(
        store
            .follow_up_stats(Some(std::slice::from_ref(&attributed.uid)))
            .await
            .unwrap()
            .revisits,
        1
    );
    let revisit = store
        .claim_follow_ups(claim(std::slice::from_ref(&attributed.uid), 10, now))
        .await
        .unwrap();
    assert_eq!(
        revisit
            .iter()
            .map(|f| (f.kind, f.subject.clone()))
            .collect::<Vec<_>>(),
        vec![(FollowUpKind::Revisit, attributed.uid.clone())]
    );
    // Asked again while being done: done once more, for the newer alert.
    store
        .enqueue_revisits(std::slice::from_ref(&attributed.uid), now)
        .await
        .unwrap();
    store
        .finish_follow_up(revisit[0].kind, &revisit[0].subject, revisit[0].enqueued_at)
        .await
        .unwrap();
    let again = store
        .claim_follow_ups(claim(std::slice::from_ref(&attributed.uid), 10, now))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].kind, FollowUpKind::Revisit);
    assert!(again[0].enqueued_at > revisit[0].enqueued_at);
    store
        .finish_follow_up(again[0].kind, &again[0].subject, again[0].enqueued_at)
        .await
        .unwrap();
    // The first attribution's lease is held by a worker: a revisit is enqueued, since that
    // worker may have read the alerts before the newer one was recorded.
    let held = store
        .claim_follow_ups(claim(std::slice::from_ref(&waiting.uid), 10, now))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        store
            .enqueue_revisits(std::slice::from_ref(&waiting.uid), now)
            .await
            .unwrap(),
        vec![waiting.uid.clone()]
    );
    // Once the lease ran out, one of the subject's two is claimed at a time: the other waits
    // until it is finished.
    let mut rounds = Vec::new();
    loop {
        let claimed = store
            .claim_follow_ups(claim(&subjects, 10, now + Duration::seconds(61)))
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        rounds.push(claimed.iter().map(|f| f.kind).collect::<Vec<_>>());
        assert!(
            store
                .claim_follow_ups(claim(&subjects, 10, now + Duration::seconds(62)))
                .await
                .unwrap()
                .is_empty(),
            "nothing of a subject with a follow-up in flight is claimed"
        );
        for f in claimed {
            store
                .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
                .await
                .unwrap();
        }
    }
    assert_eq!(
        rounds,
        vec![vec![FollowUpKind::Alert], vec![FollowUpKind::Revisit]]
    );
    assert_eq!(
        store
            .follow_up_stats(Some(&subjects))
            .await
            .unwrap()
            .total(),
        0
    );
    assert!(store.enqueue_revisits(&[], now).await.unwrap().is_empty());

    // A revisit waits for every first attribution, even one enqueued after it.
    store
        .enqueue_revisits(std::slice::from_ref(&attributed.uid), now)
        .await
        .unwrap();
    let later = Alert::test(&unique("fp"), &service, 14);
    store.record_alerts(vec![later.clone()]).await.unwrap();
    let both = vec![attributed.uid.clone(), later.uid.clone()];
    let mut order: Vec<(FollowUpKind, Uid)> = Vec::new();
    for _ in 0..2 {
        for f in store.claim_follow_ups(claim(&both, 1, now)).await.unwrap() {
            store
                .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
                .await
                .unwrap();
            order.push((f.kind, f.subject));
        }
    }
    assert_eq!(
        order,
        vec![
            (FollowUpKind::Alert, later.uid.clone()),
            (FollowUpKind::Revisit, attributed.uid.clone())
        ]
    );
}

async fn concurrent_claimers_never_share_a_follow_up(store: Arc<dyn GraphStore>) {
    let service = unique("claimers");
    let alerts: Vec<Alert> = (0..40)
        .map(|i| Alert::test(&unique("fp"), &service, i))
        .collect();
    let subjects: Arc<Vec<Uid>> = Arc::new(alerts.iter().map(|a| a.uid.clone()).collect());
    store.record_alerts(alerts).await.unwrap();
    let now = Utc::now();
    let claimers = (0..8).map(|_| {
        let store = Arc::clone(&store);
        let subjects = Arc::clone(&subjects);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_follow_ups(claim(&subjects, 3, now))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|f| f.subject));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers.collect::<Vec<_>>() {
        all.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<&Uid> = all.iter().collect();
    assert_eq!(all.len(), 40, "every follow-up claimed exactly once");
    assert_eq!(distinct.len(), 40);
}

/// Alertmanager delivers notifications in parallel, and CI records rollouts of the same
/// services meanwhile: every write touches the same few Service nodes (and one shared commit
/// and image). Each call must succeed on its first try from the caller's side — the store
/// orders its locks and retries its own transient failures.
async fn concurrent_alert_and_deployment_storms_complete_without_errors(
    store: Arc<dyn GraphStore>,
) {
    let services: Vec<String> = (0..3).map(|i| unique(&format!("storm{i}"))).collect();
    let shared = unique("fp-shared");
    let run = unique("fp");
    let mut tasks = Vec::new();
    for task in 0..20i64 {
        let store = Arc::clone(&store);
        let mut order = services.clone();
        order.shuffle(&mut rand::rng());
        let services = services.clone();
        let shared = shared.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut alerts: Vec<Alert> = order
                .iter()
                .enumerate()
                .flat_map(|(i, service)| {
                    let run = run.clone();
                    (0..5)
                        .map(move |n| Alert::test(&format!("{run}-{task}-{i}-{n}"), service, task))
                })
                .collect();
            // The same alert, delivered by every notification.
            alerts.push(Alert::test(&shared, &order[0], 0));
            alerts.shuffle(&mut rand::rng());
            let recorded = store
                .record_alerts(alerts)
                .await
                .map_err(|e| format!("alerts: {e}"))?;
            let deployments: Vec<Deployment> = services
                .iter()
                .map(|service| {
                    Deployment::test()
                        .service(service)
                        .commit("0123456789abcdef0123456789abcdef01234567")
                        .image_seed(7)
                        .started_at_minute(task)
                        .build()
                })
                .collect();
            let outcomes = store
                .record_deployments(deployments)
                .await
                .map_err(|e| format!("deployments: {e}"))?;
            Ok::<_, String>((recorded.len(), outcomes.len()))
        }));
    }
    let retries = deploygraph_store::retry::retries();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok((alerts, deployments)) => assert_eq!((alerts, deployments), (16, 3)),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(errors, Vec::<String>::new(), "no writer may fail");
    eprintln!(
        "{} store: {} transaction retries",
        store.backend(),
        deploygraph_store::retry::retries() - retries
    );
    for service in &services {
        let alerts = store
            .list_alerts(&AlertFilter {
                limit: 1000,
                ..alerts_for(service)
            })
            .await
            .unwrap();
        let own = alerts.iter().filter(|a| a.fingerprint != shared).count();
        assert_eq!(own, 20 * 5, "{service}");
        for a in alerts.iter().take(10) {
            assert_eq!(
                store.alert_services(&a.uid).await.unwrap(),
                vec![ServiceRef::test(service)]
            );
        }
        let items = store
            .list_deployments(&filter_service(service, 100))
            .await
            .unwrap()
            .items;
        assert_eq!(items.len(), 20);
        assert_chain(&items);
    }
    let shared_alerts = store
        .list_alerts(&AlertFilter {
            fingerprint: Some(shared.clone()),
            limit: 10,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(shared_alerts.len(), 1, "one node per occurrence");
}

async fn top_triggers_rank_like_the_attribution(store: Arc<dyn GraphStore>) {
    let service = unique("ranked");
    let d1 = Deployment::test()
        .service(&service)
        .started_at_minute(0)
        .build();
    let d2 = Deployment::test()
        .service(&service)
        .started_at_minute(5)
        .build();
    store
        .record_deployments(vec![d1.clone(), d2.clone()])
        .await
        .unwrap();
    let alerts: Vec<Alert> = (0..4)
        .map(|i| Alert::test(&unique("fp"), &service, 10 + i))
        .collect();
    store.record_alerts(alerts.clone()).await.unwrap();
    let trigger = |alert: &Alert, d: &Deployment, score: f64| Trigger {
        subject: SubjectKind::Deployment,
        subject_uid: d.uid.clone(),
        alert_uid: alert.uid.clone(),
        confidence_score: score,
        reasons: vec![format!("score {score}")],
        computed_at: minute(60),
    };
    // d2 wins; d1 wins; a tie goes to the smaller uid; no trigger at all.
    store
        .replace_attribution(
            &alerts[0].uid,
            &[trigger(&alerts[0], &d1, 0.3), trigger(&alerts[0], &d2, 0.6)],
            None,
        )
        .await
        .unwrap();
    store
        .replace_attribution(
            &alerts[1].uid,
            &[trigger(&alerts[1], &d1, 0.9), trigger(&alerts[1], &d2, 0.1)],
            None,
        )
        .await
        .unwrap();
    store
        .replace_attribution(
            &alerts[2].uid,
            &[trigger(&alerts[2], &d2, 0.5), trigger(&alerts[2], &d1, 0.5)],
            None,
        )
        .await
        .unwrap();
    let mut asked: Vec<_> = alerts.iter().map(|a| a.uid.clone()).collect();
    asked.push(deploygraph_model::Uid::from_stored("alert-unknown"));
    asked.push(alerts[0].uid.clone());
    let top = store.top_triggers(&asked).await.unwrap();
    let mut expected = Vec::new();
    for a in &alerts {
        if let Some(first) = store.attribution(&a.uid).await.unwrap().triggers.first() {
            expected.push(first.clone());
        }
    }
    expected.sort_by(|a, b| a.alert_uid.cmp(&b.alert_uid));
    assert_eq!(top, expected);
    assert_eq!(top.len(), 3);
    let winner = |alert: &Alert| {
        top.iter()
            .find(|t| t.alert_uid == alert.uid)
            .map(|t| (t.subject_uid.clone(), t.confidence_score))
    };
    assert_eq!(winner(&alerts[0]), Some((d2.uid.clone(), 0.6)));
    assert_eq!(winner(&alerts[1]), Some((d1.uid.clone(), 0.9)));
    let smaller = d1.uid.clone().min(d2.uid.clone());
    assert_eq!(winner(&alerts[2]), Some((smaller, 0.5)));
    assert_eq!(winner(&alerts[3]), None);
    assert!(store.top_triggers(&[]).await.unwrap().is_empty());

    // Seen from the suspects: a change suspected of the last alert too; each subject's place
    // among its alert's suspects is its place in the attribution.
    let change = Change::test().service(&service).at_minute(8).build();
    store.record_changes(vec![change.clone()]).await.unwrap();
    store
        .replace_attribution(
            &alerts[3].uid,
            &[Trigger {
                subject: SubjectKind::Change,
                subject_uid: change.uid.clone(),
                ..trigger(&alerts[3], &d1, 0.7)
            }],
            None,
        )
        .await
        .unwrap();
    let subjects = [
        d2.uid.clone(),
        change.uid.clone(),
        deploygraph_model::Uid::from_stored("deployment-unknown"),
        d1.uid.clone(),
    ];
    let seen = store.triggered_by(&subjects).await.unwrap();
    let mut expected = Vec::new();
    for a in &alerts {
        let triggers = store.attribution(&a.uid).await.unwrap().triggers;
        for (i, t) in triggers.iter().enumerate() {
            expected.push(deploygraph_store::SubjectTrigger {
                trigger: t.clone(),
                rank: u32::try_from(i + 1).unwrap(),
                suspects: u32::try_from(triggers.len()).unwrap(),
            });
        }
    }
    expected.sort_by(|a, b| {
        (
            &a.trigger.subject_uid,
            b.trigger.confidence_score,
            &a.trigger.alert_uid,
        )
            .partial_cmp(&(
                &b.trigger.subject_uid,
                a.trigger.confidence_score,
                &b.trigger.alert_uid,
            ))
            .unwrap()
    });
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 7, "{seen:?}");
    let of = |uid: &deploygraph_model::Uid, alert: &Alert| {
        seen.iter()
            .find(|s| &s.trigger.subject_uid == uid && s.trigger.alert_uid == alert.uid)
            .map(|s| (s.rank, s.suspects))
    };
    assert_eq!(of(&d1.uid, &alerts[0]), Some((2, 2)));
    assert_eq!(of(&d1.uid, &alerts[1]), Some((1, 2)));
    assert_eq!(of(&change.uid, &alerts[3]), Some((1, 1)));
    assert_eq!(
        store
            .triggered_by(std::slice::from_ref(&d1.uid))
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(store.triggered_by(&[]).await.unwrap().is_empty());
}

async fn deployments_are_read_in_one_batch(store: Arc<dyn GraphStore>) {
    let service = unique("batch-read");
    let ds: Vec<Deployment> = (0..5)
        .map(|i| {
            Deployment::test()
                .service(&service)
                .started_at_minute(i)
                .build()
        })
        .collect();
    store.record_deployments(ds.clone()).await.unwrap();
    let mut asked: Vec<_> = ds.iter().rev().map(|d| d.uid.clone()).collect();
    asked.push(deploygraph_model::Uid::from_stored("deployment-unknown"));
    asked.push(ds[0].uid.clone());
    let got = store.get_deployments(&asked).await.unwrap();
    let mut expected = Vec::new();
    for d in &ds {
        expected.push(store.get_deployment(&d.uid).await.unwrap().unwrap());
    }
    expected.sort_by(|a, b| a.deployment.uid.cmp(&b.deployment.uid));
    assert_eq!(got, expected);
    assert!(got.iter().filter(|d| d.follows.is_some()).count() == 4);
    assert!(store.get_deployments(&[]).await.unwrap().is_empty());
}

async fn alerts_and_chaos_runs_page_with_cursors(store: Arc<dyn GraphStore>) {
    let service = unique("paged");
    // 23 alerts over 8 distinct start times: ties are broken by uid.
    let alerts: Vec<Alert> = (0..23)
        .map(|i| Alert::test(&unique("fp"), &service, i % 8))
        .collect();
    store.record_alerts(alerts.clone()).await.unwrap();
    let mut walked = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_alerts(&AlertFilter {
                limit: 5,
                cursor: cursor.clone(),
                ..alerts_for(&service)
            })
            .await
            .unwrap();
        pages += 1;
        assert!(pages <= 5, "the walk ends");
        let Some(last) = page.last() else { break };
        cursor = Some(Cursor::at(last.starts_at, &last.uid));
        let full = page.len() == 5;
        walked.extend(page);
        if !full {
            break;
        }
    }
    let mut expected = alerts.clone();
    expected.sort_by(|a, b| (b.starts_at, &b.uid).cmp(&(a.starts_at, &a.uid)));
    assert_eq!(walked, expected);

    let runs: Vec<ChaosRun> = (0..12)
        .map(|i| ChaosRun::test(&unique("run"), &service, i % 4, Some(i % 4 + 1)))
        .collect();
    for run in &runs {
        store.record_chaos_run(run).await.unwrap();
    }
    let target = ServiceRef::test(&service).uid();
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_chaos_runs(&ChaosFilter {
                services: vec![target.clone()],
                limit: 5,
                cursor: cursor.clone(),
                ..ChaosFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(Cursor::at(last.started_at, &last.uid));
        let full = page.len() == 5;
        walked.extend(page.into_iter().map(|r| r.uid));
        if !full {
            break;
        }
    }
    let mut expected = runs.clone();
    expected.sort_by(|a, b| (b.started_at, &b.uid).cmp(&(a.started_at, &a.uid)));
    assert_eq!(
        walked,
        expected.into_iter().map(|r| r.uid).collect::<Vec<_>>()
    );
}

/// Two stores on one SQLite file (two processes: `serve` and a CLI with `--store`) write
/// concurrently: the one waiting for the other's lock waits (busy_timeout) or retries, and
/// neither reports an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_stores_on_one_file_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let first: Arc<dyn GraphStore> = Arc::new(
        SqliteStore::open(&path, MigrationSource::Embedded)
            .await
            .unwrap(),
    );
    first.migrate().await.unwrap();
    let second: Arc<dyn GraphStore> = Arc::new(
        SqliteStore::open(&path, MigrationSource::Embedded)
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for task in 0..20i64 {
        let store = Arc::clone(if task % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            let alerts: Vec<Alert> = (0..20)
                .map(|n| Alert::test(&format!("fp-{task}-{n}"), "busy", task))
                .collect();
            store.record_alerts(alerts).await.map(|r| r.len())?;
            store
                .record_deployments(vec![
                    Deployment::test()
                        .service("busy")
                        .started_at_minute(task)
                        .build(),
                ])
                .await
                .map(|r| r.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    let listed = first
        .list_alerts(&AlertFilter {
            limit: 1000,
            ..alerts_for("busy")
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 400);
}

fn verdict(
    alert: &Alert,
    subject: SubjectKind,
    uid: &Uid,
    kind: VerdictKind,
    by: &str,
    note: Option<&str>,
    at: i64,
) -> SuspectVerdict {
    SuspectVerdict {
        alert_uid: alert.uid.clone(),
        subject,
        subject_uid: uid.clone(),
        verdict: kind,
        by: by.to_owned(),
        at: minute(at),
        note: note.map(str::to_owned),
    }
}

fn scored(alert: &Alert, d: &Deployment, score: f64) -> Trigger {
    Trigger {
        subject: SubjectKind::Deployment,
        subject_uid: d.uid.clone(),
        alert_uid: alert.uid.clone(),
        confidence_score: score,
        reasons: vec![format!("score {score}")],
        computed_at: minute(90),
    }
}

/// A verdict is one relationship per subject and alert: created, found unchanged when it says
/// the same (keeping its time), replaced by another (whichever its kind), never written for an
/// unknown alert or subject, and never touched by attribution.
async fn verdicts_are_replaced_and_survive_attribution(store: Arc<dyn GraphStore>) {
    use VerdictKind::{Confirmed, Rejected};
    let service = unique("reviewed");
    let old = Deployment::test()
        .service(&service)
        .image_seed(1)
        .started_at_minute(10)
        .build();
    let new = Deployment::test()
        .service(&service)
        .image_seed(2)
        .started_at_minute(20)
        .build();
    store
        .record_deployments(vec![old.clone(), new.clone()])
        .await
        .unwrap();
    let change = deploygraph_model::Change::test()
        .service(&service)
        .at_minute(25)
        .build();
    store.record_changes(vec![change.clone()]).await.unwrap();
    let alert = Alert::test(&unique("fp"), &service, 30);
    let other = Alert::test(&unique("fp"), &service, 31);
    store
        .record_alerts(vec![alert.clone(), other.clone()])
        .await
        .unwrap();
    let unknown = Uid::from_stored("deployment-unknown");
    let mut unstored = Alert::test(&unique("fp"), &service, 32);
    unstored.uid = Uid::from_stored("alert-unknown");
    for (a, subject, uid) in [
        (&unstored, SubjectKind::Deployment, &old.uid),
        (&alert, SubjectKind::Deployment, &unknown),
        // A change's uid is no deployment's, and the other way round.
        (&alert, SubjectKind::Deployment, &change.uid),
        (&alert, SubjectKind::Change, &old.uid),
    ] {
        let refused = store
            .record_verdict(&verdict(a, subject, uid, Confirmed, "alice", None, 40))
            .await
            .unwrap();
        assert_eq!(refused, None, "{uid}");
    }
    assert!(
        store
            .verdicts(std::slice::from_ref(&alert.uid))
            .await
            .unwrap()
            .is_empty()
    );

    store
        .replace_attribution(
            &alert.uid,
            &[scored(&alert, &new, 0.7), scored(&alert, &old, 0.2)],
            None,
        )
        .await
        .unwrap();
    let first = verdict(
        &alert,
        SubjectKind::Deployment,
        &old.uid,
        Confirmed,
        "alice",
        Some("pool size cut"),
        40,
    );
    let created = store.record_verdict(&first).await.unwrap().unwrap();
    assert_eq!(
        (created.kind, &created.verdict),
        (RecordKind::Created, &first)
    );
    // The same verdict later: unchanged, its first time kept.
    let again = store
        .record_verdict(&SuspectVerdict {
            at: minute(45),
            ..first.clone()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.kind, &again.verdict),
        (RecordKind::Unchanged, &first)
    );
    // Another reviewer rejects it: the rejection replaces the confirmation.
    let rejected = verdict(
        &alert,
        SubjectKind::Deployment,
        &old.uid,
        Rejected,
        "bob",
        None,
        50,
    );
    let replaced = store.record_verdict(&rejected).await.unwrap().unwrap();
    assert_eq!(
        (replaced.kind, &replaced.verdict),
        (RecordKind::Updated, &rejected)
    );
    // A change that is not a rollout is judged like a deployment; a verdict on another alert
    // is its own.
    let on_change = verdict(
        &alert,
        SubjectKind::Change,
        &change.uid,
        Confirmed,
        "carol",
        None,
        55,
    );
    assert_eq!(
        store
            .record_verdict(&on_change)
            .await
            .unwrap()
            .unwrap()
            .kind,
        RecordKind::Created
    );
    let elsewhere = verdict(
        &other,
        SubjectKind::Deployment,
        &old.uid,
        Confirmed,
        "alice",
        None,
        56,
    );
    assert_eq!(
        store
            .record_verdict(&elsewhere)
            .await
            .unwrap()
            .unwrap()
            .kind,
        RecordKind::Created
    );
    let mut expected = vec![rejected.clone(), on_change.clone()];
    expected.sort_by(|a, b| a.subject_uid.cmp(&b.subject_uid));
    assert_eq!(
        store
            .verdicts(std::slice::from_ref(&alert.uid))
            .await
            .unwrap(),
        expected
    );
    // Recomputing the attribution, to other suspects or to none, keeps every verdict.
    store
        .replace_attribution(&alert.uid, &[scored(&alert, &new, 0.9)], None)
        .await
        .unwrap();
    store
        .replace_attribution(&alert.uid, &[], None)
        .await
        .unwrap();
    let mut both = vec![elsewhere.clone()];
    both.extend(expected.clone());
    both.sort_by(|a, b| {
        a.alert_uid
            .cmp(&b.alert_uid)
            .then(a.subject_uid.cmp(&b.subject_uid))
    });
    assert_eq!(
        store
            .verdicts(&[other.uid.clone(), alert.uid.clone(), unknown.clone()])
            .await
            .unwrap(),
        both
    );
    assert!(store.verdicts(&[]).await.unwrap().is_empty());

    // Reviewers of one subject at once leave one verdict, never a CAUSED beside a REJECTED.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let v = verdict(
                &alert,
                SubjectKind::Deployment,
                &new.uid,
                if i % 2 == 0 { Confirmed } else { Rejected },
                &format!("reviewer-{i}"),
                None,
                60 + i,
            );
            tokio::spawn(async move { store.record_verdict(&v).await })
        })
        .collect();
    for writer in writers {
        assert!(writer.await.unwrap().unwrap().is_some());
    }
    let on_new: Vec<SuspectVerdict> = store
        .verdicts(std::slice::from_ref(&alert.uid))
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.subject_uid == new.uid)
        .collect();
    assert_eq!(on_new.len(), 1, "{on_new:?}");
}

/// A deployment is blamed in its service's history when a reviewer confirmed it as an alert's
/// cause, or when it TRIGGERS an alert at BLAMED_CONFIDENCE or more and no reviewer rejected it
/// for that alert — an alert that started before the history's time.
async fn history_counts_confirmed_and_never_rejected_deployments(store: Arc<dyn GraphStore>) {
    use VerdictKind::{Confirmed, Rejected};
    let service = unique("judged");
    let ds: Vec<Deployment> = [0, 10, 20, 30]
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            Deployment::test()
                .service(&service)
                .image_seed(u64::try_from(i).unwrap() + 1)
                .started_at_minute(m)
                .build()
        })
        .collect();
    store.record_deployments(ds.clone()).await.unwrap();
    let alerts: Vec<Alert> = [5, 15, 25]
        .into_iter()
        .map(|m| Alert::test(&unique("fp"), &service, m))
        .collect();
    store.record_alerts(alerts.clone()).await.unwrap();
    for (a, d, score) in [(0, 0, 0.8), (1, 1, 0.3), (2, 2, 0.9)] {
        store
            .replace_attribution(&alerts[a].uid, &[scored(&alerts[a], &ds[d], score)], None)
            .await
            .unwrap();
    }
    let followed = || async {
        let service = ds[0].service_uid();
        let h = store.service_history(&service, minute(60)).await.unwrap();
        // The batched read answers alike, in the order asked; a service without deployments
        // has an empty history.
        let early = store.service_history(&service, minute(15)).await.unwrap();
        let nowhere = Uid::from_stored(unique("service-nowhere"));
        let batch = store
            .service_histories(&[
                (service.clone(), minute(60)),
                (nowhere, minute(60)),
                (service, minute(15)),
            ])
            .await
            .unwrap();
        assert_eq!(batch, vec![h, ServiceHistory::default(), early]);
        (h.deployments, h.followed_by_alerts)
    };
    // ds[0] and ds[2] by their probability; ds[1] at 0.3 is not blamed.
    assert_eq!(followed().await, (4, 2));
    let judge = |a: usize, d: usize, kind: VerdictKind| {
        let v = verdict(
            &alerts[a],
            SubjectKind::Deployment,
            &ds[d].uid,
            kind,
            "sre",
            None,
            70,
        );
        let store = Arc::clone(&store);
        async move { store.record_verdict(&v).await.unwrap().unwrap() }
    };
    // Confirmed, whatever its probability.
    judge(1, 1, Confirmed).await;
    assert_eq!(followed().await, (4, 3));
    // Rejected for the alert it TRIGGERS: no longer blamed.
    judge(2, 2, Rejected).await;
    assert_eq!(followed().await, (4, 2));
    // Rejected for an alert it does not TRIGGERS: still blamed for its own.
    judge(1, 0, Rejected).await;
    assert_eq!(followed().await, (4, 2));
    // Confirmed for an alert without being a suspect of it (outside the window).
    judge(0, 3, Confirmed).await;
    assert_eq!(followed().await, (4, 3));
    // A confirmation turned into a rejection stops counting; recomputing changes nothing.
    judge(1, 1, Rejected).await;
    assert_eq!(followed().await, (4, 2));
    store
        .replace_attribution(&alerts[1].uid, &[scored(&alerts[1], &ds[1], 0.95)], None)
        .await
        .unwrap();
    assert_eq!(followed().await, (4, 2));
    // Only deployments before the given time.
    let early = store
        .service_history(&ds[0].service_uid(), minute(15))
        .await
        .unwrap();
    assert_eq!((early.deployments, early.followed_by_alerts), (2, 1));
    // Blamed only by alerts that started before the given time too: ds[0] (minute 0) is blamed
    // for the alert of minute 5, which its record at minute 4 does not know yet.
    let before_blame = store
        .service_history(&ds[0].service_uid(), minute(4))
        .await
        .unwrap();
    assert_eq!(
        (before_blame.deployments, before_blame.followed_by_alerts),
        (1, 0)
    );
}

async fn a_new_canary_verdict_enqueues_its_deployments_follow_up(store: Arc<dyn GraphStore>) {
    use deploygraph_model::{CanaryVerdict, NewCanaryAnalysis};
    let service = unique("canaryfollow");
    let d = Deployment::test().service(&service).build();
    let subjects = vec![d.uid.clone()];
    record_one(&store, d.clone()).await;
    let drain = || async {
        let claimed = store
            .claim_follow_ups(claim(&subjects, 10, Utc::now()))
            .await
            .unwrap();
        for f in &claimed {
            store
                .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
                .await
                .unwrap();
        }
        claimed
            .iter()
            .map(|f| (f.kind, f.subject.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        drain().await,
        vec![(FollowUpKind::Deployment, d.uid.clone())]
    );
    let pending = || async {
        store
            .follow_up_stats(Some(&subjects))
            .await
            .unwrap()
            .deployments
    };

    // A new analysis is evidence about the deployment: its follow-up is enqueued.
    let mut analysis = NewCanaryAnalysis::test(&d.uid, 1, CanaryVerdict::Inconclusive);
    store.record_canary_analysis(&analysis).await.unwrap();
    assert_eq!(pending().await, 1);
    assert_eq!(
        drain().await,
        vec![(FollowUpKind::Deployment, d.uid.clone())]
    );
    // A later round with the same verdict changes no evidence.
    analysis.analyses += 2;
    assert_eq!(
        store.record_canary_analysis(&analysis).await.unwrap().kind,
        RecordKind::Updated
    );
    assert_eq!(pending().await, 0);
    // The verdict changed: enqueued again.
    analysis.analyses += 1;
    analysis.verdict = CanaryVerdict::Fail;
    store.record_canary_analysis(&analysis).await.unwrap();
    assert_eq!(pending().await, 1);
    assert_eq!(
        drain().await,
        vec![(FollowUpKind::Deployment, d.uid.clone())]
    );
}

async fn canary_analyses_are_recorded_replaced_and_listed(store: Arc<dyn GraphStore>) {
    use deploygraph_model::{CanaryVerdict, NewCanaryAnalysis};
    use deploygraph_store::{CanaryFilter, Error};
    let service = unique("canary");
    let first = Deployment::test()
        .service(&service)
        .started_at_minute(0)
        .build();
    let second = Deployment::test()
        .service(&service)
        .version("v2")
        .started_at_minute(20)
        .build();
    store
        .record_deployments(vec![first.clone(), second.clone()])
        .await
        .unwrap();

    // A running analysis recorded on its first decision, then replaced by its final one.
    let running = NewCanaryAnalysis::test(&first.uid, 1, CanaryVerdict::Inconclusive);
    let created = store.record_canary_analysis(&running).await.unwrap();
    assert_eq!(created.kind, RecordKind::Created);
    assert_eq!(created.analysis.service.name.as_str(), service);
    assert_eq!(created.analysis.service.environment, first.environment);
    let mut decided = NewCanaryAnalysis::test(&first.uid, 1, CanaryVerdict::Fail);
    decided.analyses = 7;
    decided.decided_at = minute(9);
    decided.metrics.truncate(1);
    assert_eq!(
        decided.uid, running.uid,
        "same deployment and start: same analysis"
    );
    let updated = store.record_canary_analysis(&decided).await.unwrap();
    assert_eq!(updated.kind, RecordKind::Updated);
    let again = store.record_canary_analysis(&decided).await.unwrap();
    assert_eq!(again.kind, RecordKind::Unchanged);

    let of_first = store
        .canary_analyses(std::slice::from_ref(&first.uid))
        .await
        .unwrap();
    assert_eq!(of_first, vec![updated.analysis.clone()]);
    assert_eq!(of_first[0].verdict, CanaryVerdict::Fail);
    assert_eq!(of_first[0].analyses, 7);
    assert_eq!(
        of_first[0].metrics.len(),
        1,
        "the replaced metrics are gone"
    );
    assert_eq!(
        of_first[0].metrics[0].evidence["canary"]["events"],
        serde_json::json!(100)
    );

    // Two analyses of the second deployment: newest first.
    let early = NewCanaryAnalysis::test(&second.uid, 21, CanaryVerdict::Pass);
    let late = NewCanaryAnalysis::test(&second.uid, 40, CanaryVerdict::NoData);
    for a in [&early, &late] {
        store.record_canary_analysis(a).await.unwrap();
    }
    let uids = |list: &[deploygraph_model::CanaryAnalysis]| -> Vec<Uid> {
        list.iter().map(|a| a.uid.clone()).collect()
    };
    assert_eq!(
        uids(
            &store
                .canary_analyses(&[first.uid.clone(), second.uid.clone()])
                .await
                .unwrap()
        ),
        vec![late.uid.clone(), early.uid.clone(), decided.uid.clone()]
    );
    assert!(store.canary_analyses(&[]).await.unwrap().is_empty());

    // The timeline's listing: by service, in a window, a page at a time.
    let services = vec![first.service_uid()];
    let filter = |since: i64, until: i64, limit: usize| CanaryFilter {
        services: services.clone(),
        since: Some(minute(since)),
        until: Some(minute(until)),
        limit,
        cursor: None,
    };
    assert_eq!(
        uids(
            &store
                .list_canary_analyses(&filter(0, 60, 10))
                .await
                .unwrap()
        ),
        vec![late.uid.clone(), early.uid.clone(), decided.uid.clone()]
    );
    // Decided before the window (minute 26) or started after it (minute 40): left out.
    assert_eq!(
        uids(
            &store
                .list_canary_analyses(&filter(27, 39, 10))
                .await
                .unwrap()
        ),
        Vec::<Uid>::new()
    );
    assert_eq!(
        uids(
            &store
                .list_canary_analyses(&filter(9, 30, 10))
                .await
                .unwrap()
        ),
        vec![early.uid.clone(), decided.uid.clone()]
    );
    let page = store.list_canary_analyses(&filter(0, 60, 2)).await.unwrap();
    assert_eq!(uids(&page), vec![late.uid.clone(), early.uid.clone()]);
    let rest = store
        .list_canary_analyses(&CanaryFilter {
            cursor: Some(Cursor::at(page[1].started_at, &page[1].uid)),
            ..filter(0, 60, 2)
        })
        .await
        .unwrap();
    assert_eq!(uids(&rest), vec![decided.uid.clone()]);

    // An unknown deployment: not found, nothing written.
    let ghost = Deployment::test().service(&unique("ghost")).build();
    let orphan = NewCanaryAnalysis::test(&ghost.uid, 1, CanaryVerdict::Fail);
    match store.record_canary_analysis(&orphan).await {
        Err(Error::NotFound { what, uid }) => {
            assert_eq!((what, uid.as_str()), ("deployment", ghost.uid.as_str()));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        store
            .canary_analyses(std::slice::from_ref(&ghost.uid))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_canary_analyses(&CanaryFilter {
                services: vec![ghost.service_uid()],
                limit: 10,
                ..CanaryFilter::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

fn summary_of(
    deployment: &Uid,
    template: &str,
    errors: u64,
) -> deploygraph_model::NewReleaseSummary {
    let mut metrics = serde_json::Map::new();
    metrics.insert(
        "http-error-ratio".into(),
        serde_json::json!({"kind": "ratio", "data": {"numerator": errors, "denominator": 1000}}),
    );
    metrics.insert(
        "latency-p99".into(),
        serde_json::json!({"kind": "distribution", "data": {"histogram": {
            "buckets": [{"le": 0.1, "count": 900}, {"le": 0.5, "count": 990}], "count": 1000}}}),
    );
    deploygraph_model::NewReleaseSummary::validate(
        deployment.as_str(),
        template.to_owned(),
        "10m".into(),
        "2026-11-20T12:00:00Z",
        metrics,
    )
    .unwrap()
}

async fn release_summaries_are_replaced_and_read_as_a_history(store: Arc<dyn GraphStore>) {
    use deploygraph_store::{Error, SummaryFilter};
    let service = unique("history");
    let ds: Vec<Deployment> = (0..5)
        .map(|i| {
            let b = Deployment::test()
                .service(&service)
                .version(&format!("v{i}"))
                .started_at_minute(i * 10);
            if i == 2 { b.failed() } else { b }.build()
        })
        .collect();
    let staging = Deployment::test()
        .service(&service)
        .environment("staging")
        .started_at_minute(15)
        .build();
    let mut all = ds.clone();
    all.push(staging.clone());
    store.record_deployments(all).await.unwrap();

    // One summary per deployment and template: created, replaced, then unchanged.
    let first = store
        .record_release_summary(&summary_of(&ds[1].uid, "t", 5))
        .await
        .unwrap();
    assert_eq!(first.kind, RecordKind::Created);
    assert_eq!(first.summary.service.name.as_str(), service);
    assert_eq!(first.summary.version.as_deref(), Some("v1"));
    assert_eq!(first.summary.deployed_at, minute(10));
    let replaced = summary_of(&ds[1].uid, "t", 7);
    assert_eq!(
        replaced.uid, first.summary.uid,
        "same deployment and template"
    );
    let updated = store.record_release_summary(&replaced).await.unwrap();
    assert_eq!(updated.kind, RecordKind::Updated);
    assert_eq!(
        store.record_release_summary(&replaced).await.unwrap().kind,
        RecordKind::Unchanged
    );
    for d in [&ds[0], &ds[2], &ds[3], &ds[4], &staging] {
        store
            .record_release_summary(&summary_of(&d.uid, "t", 3))
            .await
            .unwrap();
    }
    // Another template of the same deployment is another summary.
    store
        .record_release_summary(&summary_of(&ds[3].uid, "other", 3))
        .await
        .unwrap();

    let history = |before: i64, limit: usize, template: &str| {
        let store = Arc::clone(&store);
        let filter = SummaryFilter {
            service: ServiceName::parse(&service).unwrap(),
            environment: Environment::parse("production").unwrap(),
            template: template.to_owned(),
            before: minute(before),
            limit,
        };
        async move { store.release_summaries(&filter).await.unwrap() }
    };
    let versions = |list: &[deploygraph_model::ReleaseSummary]| -> Vec<String> {
        list.iter()
            .map(|s| s.version.clone().unwrap_or_default())
            .collect()
    };
    // Before the canary (minute 40): the most recent first, the failed v2 left out, the other
    // environment and template too.
    let read = history(40, 10, "t").await;
    assert_eq!(versions(&read), ["v3", "v1", "v0"]);
    assert_eq!(read[1], updated.summary, "the replaced summary is read");
    assert_eq!(
        read[1].metrics["http-error-ratio"]["data"]["numerator"],
        serde_json::json!(7)
    );
    assert_eq!(versions(&history(40, 2, "t").await), ["v3", "v1"]);
    assert_eq!(
        versions(&history(10, 10, "t").await),
        ["v0"],
        "strictly before"
    );
    assert_eq!(versions(&history(60, 10, "other").await), ["v3"]);
    assert!(history(60, 10, "none").await.is_empty());

    // A release rolled back later drops out of the history.
    let mut undone = ds[3].clone();
    undone.status = DeploymentStatus::RolledBack;
    store.record_deployments(vec![undone]).await.unwrap();
    assert_eq!(versions(&history(60, 10, "t").await), ["v4", "v1", "v0"]);

    // An unknown deployment: not found, nothing written.
    let ghost = Deployment::test()
        .service(&service)
        .started_at_minute(5)
        .build();
    match store
        .record_release_summary(&summary_of(&ghost.uid, "t", 1))
        .await
    {
        Err(Error::NotFound { what, uid }) => {
            assert_eq!((what, uid.as_str()), ("deployment", ghost.uid.as_str()));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(versions(&history(60, 10, "t").await), ["v4", "v1", "v0"]);
}

async fn rollbacks_undo_a_deployment_restore_its_predecessor_and_are_listed(
    store: Arc<dyn GraphStore>,
) {
    use deploygraph_model::{DeploymentStatus, NewRollback};
    use deploygraph_store::{Error, RollbackFilter};
    let service = unique("rollback");
    let first = Deployment::test()
        .service(&service)
        .started_at_minute(0)
        .build();
    let second = Deployment::test()
        .service(&service)
        .version("v2")
        .started_at_minute(20)
        .build();
    let other = Deployment::test()
        .service(&unique("rollback-other"))
        .started_at_minute(5)
        .build();
    store
        .record_deployments(vec![first.clone(), second.clone(), other.clone()])
        .await
        .unwrap();
    let status = |uid: Uid| {
        let store = Arc::clone(&store);
        async move {
            store
                .get_deployment(&uid)
                .await
                .unwrap()
                .unwrap()
                .deployment
                .status
        }
    };
    let before = status(second.uid.clone()).await;
    assert_ne!(before, DeploymentStatus::RolledBack);

    // A dry run is recorded, and the deployment keeps its status.
    let mut dry = NewRollback::test(&second.uid, 24);
    dry.dry_run = true;
    dry.uid = deploygraph_model::Rollback::uid_for(&second.uid, &dry.at, "rollout/web", None);
    dry.target = "rollout/web".into();
    dry.namespace = None;
    let dry_out = store.record_rollback(&dry).await.unwrap();
    assert_eq!(dry_out.kind, RecordKind::Created);
    assert!(dry_out.rollback.dry_run);
    assert_eq!(status(second.uid.clone()).await, before);

    // The rollback: the previous deployment of the service is the restored one, and the
    // undone deployment is rolled_back.
    let rollback = NewRollback::test(&second.uid, 25);
    let created = store.record_rollback(&rollback).await.unwrap();
    assert_eq!(created.kind, RecordKind::Created);
    assert_eq!(created.rollback.restored.as_ref(), Some(&first.uid));
    assert_eq!(created.rollback.service.name.as_str(), service);
    assert_eq!(created.rollback.deployment, second.uid);
    assert_eq!(
        status(second.uid.clone()).await,
        DeploymentStatus::RolledBack
    );
    assert_ne!(
        status(first.uid.clone()).await,
        DeploymentStatus::RolledBack
    );

    // Idempotent by uid; other facts under the uid conflict and change nothing.
    let again = store.record_rollback(&rollback).await.unwrap();
    assert_eq!(again.kind, RecordKind::Unchanged);
    assert_eq!(again.rollback, created.rollback);
    let mut changed = rollback.clone();
    changed.reason = "another reason".into();
    let conflict = store.record_rollback(&changed).await.unwrap();
    assert_eq!(conflict.kind, RecordKind::Conflict);
    assert_eq!(conflict.rollback, created.rollback);

    // Listed for the deployment, newest first.
    let of_second = store
        .rollbacks(std::slice::from_ref(&second.uid))
        .await
        .unwrap();
    assert_eq!(
        of_second,
        vec![created.rollback.clone(), dry_out.rollback.clone()]
    );
    assert!(store.rollbacks(&[]).await.unwrap().is_empty());
    assert!(
        store
            .rollbacks(std::slice::from_ref(&first.uid))
            .await
            .unwrap()
            .is_empty()
    );

    // The first deployment has no predecessor: nothing restored.
    let oldest = store
        .record_rollback(&NewRollback::test(&first.uid, 3))
        .await
        .unwrap();
    assert_eq!(oldest.kind, RecordKind::Created);
    assert_eq!(oldest.rollback.restored, None);

    // The timeline's listing: by service, in a window.
    let filter = |since: i64, until: i64, limit: usize| RollbackFilter {
        services: vec![first.service_uid()],
        since: Some(minute(since)),
        until: Some(minute(until)),
        limit,
        cursor: None,
    };
    let uids = |list: &[deploygraph_model::Rollback]| -> Vec<Uid> {
        list.iter().map(|r| r.uid.clone()).collect()
    };
    assert_eq!(
        uids(&store.list_rollbacks(&filter(0, 60, 10)).await.unwrap()),
        vec![
            created.rollback.uid.clone(),
            dry_out.rollback.uid.clone(),
            oldest.rollback.uid.clone()
        ]
    );
    assert_eq!(
        uids(&store.list_rollbacks(&filter(10, 24, 10)).await.unwrap()),
        vec![dry_out.rollback.uid.clone()]
    );
    let page = store.list_rollbacks(&filter(0, 60, 1)).await.unwrap();
    assert_eq!(uids(&page), vec![created.rollback.uid.clone()]);
    let rest = store
        .list_rollbacks(&RollbackFilter {
            cursor: Some(Cursor::at(page[0].at, &page[0].uid)),
            ..filter(0, 60, 10)
        })
        .await
        .unwrap();
    assert_eq!(
        uids(&rest),
        vec![dry_out.rollback.uid.clone(), oldest.rollback.uid.clone()]
    );

    // A named restored deployment: stored and of the same service, or refused.
    let mut named = NewRollback::test(&second.uid, 30);
    named.restored = Some(other.uid.clone());
    let refused = store.record_rollback(&named).await.unwrap();
    assert_eq!(refused.kind, RecordKind::Conflict);
    assert!(
        refused
            .conflict
            .as_deref()
            .unwrap_or_default()
            .starts_with("restored:"),
        "{refused:?}"
    );
    let ghost = Deployment::test().service(&unique("ghost")).build();
    named.restored = Some(ghost.uid.clone());
    match store.record_rollback(&named).await {
        Err(Error::NotFound { what, uid }) => {
            assert_eq!(
                (what, uid.as_str()),
                ("restored deployment", ghost.uid.as_str())
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // An unknown deployment: not found, nothing written.
    let orphan = NewRollback::test(&ghost.uid, 1);
    match store.record_rollback(&orphan).await {
        Err(Error::NotFound { what, uid }) => {
            assert_eq!((what, uid.as_str()), ("deployment", ghost.uid.as_str()));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        uids(&store.list_rollbacks(&filter(0, 60, 10)).await.unwrap()).len(),
        3,
        "nothing written on errors and conflicts"
    );
    assert!(
        store
            .rollbacks(std::slice::from_ref(&ghost.uid))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_rollback_that_changes_the_status_enqueues_its_deployments_follow_up(
    store: Arc<dyn GraphStore>,
) {
    use deploygraph_model::NewRollback;
    let d = Deployment::test()
        .service(&unique("rollbackfollow"))
        .build();
    let subjects = vec![d.uid.clone()];
    record_one(&store, d.clone()).await;
    let drain = || async {
        let claimed = store
            .claim_follow_ups(claim(&subjects, 10, Utc::now()))
            .await
            .unwrap();
        for f in &claimed {
            store
                .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
                .await
                .unwrap();
        }
        claimed
            .iter()
            .map(|f| (f.kind, f.subject.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        drain().await,
        vec![(FollowUpKind::Deployment, d.uid.clone())]
    );
    let pending = || async {
        store
            .follow_up_stats(Some(&subjects))
            .await
            .unwrap()
            .deployments
    };

    // A dry run leaves the status alone: no new evidence.
    let mut dry = NewRollback::test(&d.uid, 4);
    dry.dry_run = true;
    dry.uid = deploygraph_model::Rollback::uid_for(&d.uid, &dry.at, "rollout/web", None);
    dry.target = "rollout/web".into();
    dry.namespace = None;
    store.record_rollback(&dry).await.unwrap();
    assert_eq!(pending().await, 0);

    // The deployment becomes rolled_back: its follow-up re-attributes the alerts after it.
    let rollback = NewRollback::test(&d.uid, 5);
    store.record_rollback(&rollback).await.unwrap();
    assert_eq!(pending().await, 1);
    assert_eq!(
        drain().await,
        vec![(FollowUpKind::Deployment, d.uid.clone())]
    );
    // The same rollback again, or another of the rolled-back deployment, changes no status.
    assert_eq!(
        store.record_rollback(&rollback).await.unwrap().kind,
        RecordKind::Unchanged
    );
    assert_eq!(
        store
            .record_rollback(&NewRollback::test(&d.uid, 6))
            .await
            .unwrap()
            .kind,
        RecordKind::Created
    );
    assert_eq!(pending().await, 0);
}

async fn canary_analyses_keep_whether_their_round_was_final(store: Arc<dyn GraphStore>) {
    use deploygraph_model::{CanaryVerdict, NewCanaryAnalysis};
    let d = Deployment::test().service(&unique("canary-final")).build();
    store.record_deployments(vec![d.clone()]).await.unwrap();
    let mut running = NewCanaryAnalysis::test(&d.uid, 1, CanaryVerdict::Inconclusive);
    running.final_round = false;
    store.record_canary_analysis(&running).await.unwrap();
    let read = || async {
        store
            .canary_analyses(std::slice::from_ref(&d.uid))
            .await
            .unwrap()
    };
    assert!(!read().await[0].final_round);
    let decided = NewCanaryAnalysis::test(&d.uid, 1, CanaryVerdict::Fail);
    assert!(decided.final_round);
    let outcome = store.record_canary_analysis(&decided).await.unwrap();
    assert_eq!(outcome.kind, RecordKind::Updated);
    assert!(read().await[0].final_round);
}

/// A gate override is recorded once per admission request, listed newest first by workload,
/// and linked to the deployment of its workload recorded within the hour after it (only
/// that workload's, only once).
async fn gate_overrides_are_recorded_once_and_linked_to_the_deployment_they_admitted(
    store: Arc<dyn GraphStore>,
) {
    use deploygraph_model::GateOverride;
    use deploygraph_model::deployment::Workload;
    use deploygraph_store::GateOverrideFilter;
    let namespace = unique("gate");
    let at = minute(0);
    let made = |request: &str, name: &str, minutes: i64| GateOverride {
        uid: GateOverride::uid_for(request),
        at: at + Duration::minutes(minutes),
        cluster: Some("eu-1".into()),
        kind: "Deployment".into(),
        namespace: namespace.clone(),
        name: name.into(),
        operation: "UPDATE".into(),
        user: "alice@example.com".into(),
        reason: "INC-1 hotfix".into(),
        refusal: "infra snapshot failed: tls api:443: expires in 2 days".into(),
        template_hash: Some("abc".into()),
        snapshot_uid: Some(Uid::derive("snapshot", &["x"])),
        deployment_uid: None,
    };
    let first = made(&unique("req"), "web", 0);
    assert!(store.record_gate_override(&first).await.unwrap());
    assert!(!store.record_gate_override(&first).await.unwrap());
    let other = made(&unique("req"), "api", 1);
    store.record_gate_override(&other).await.unwrap();
    let stale = made(&unique("req"), "web", -120);
    store.record_gate_override(&stale).await.unwrap();
    // Admitted another template of the same workload (a change refused later on): not linked.
    let elsewhere = GateOverride {
        template_hash: Some("def".into()),
        ..made(&unique("req"), "web", -1)
    };
    store.record_gate_override(&elsewhere).await.unwrap();
    let list = |filter: GateOverrideFilter| {
        let store = Arc::clone(&store);
        async move { store.list_gate_overrides(&filter).await.unwrap() }
    };
    let in_ns = GateOverrideFilter {
        namespace: Some(namespace.clone()),
        limit: 10,
        ..GateOverrideFilter::default()
    };
    let all = list(in_ns.clone()).await;
    assert_eq!(
        all.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["api", "web", "web", "web"]
    );
    assert_eq!(all[1], first);

    let mut rollout = Deployment::test()
        .service(&unique("web"))
        .started_at_minute(2)
        .build();
    rollout.namespace = Some(namespace.clone());
    rollout.workload = Some(Workload {
        kind: "Deployment".into(),
        name: "web".into(),
        template_hash: "abc".into(),
        replicas: Some(2),
        template: serde_json::json!({}),
    });
    let workload = ("Deployment", namespace.as_str(), "web");
    // Not stored yet: nothing to link to.
    assert_eq!(
        store
            .link_gate_overrides(&rollout.uid, workload, "abc", rollout.started_at)
            .await
            .unwrap(),
        0
    );
    store
        .record_deployments(vec![rollout.clone()])
        .await
        .unwrap();
    assert_eq!(
        store
            .link_gate_overrides(&rollout.uid, workload, "abc", rollout.started_at)
            .await
            .unwrap(),
        1
    );
    // Once.
    assert_eq!(
        store
            .link_gate_overrides(&rollout.uid, workload, "abc", rollout.started_at)
            .await
            .unwrap(),
        0
    );
    let linked = list(GateOverrideFilter {
        deployment: Some(rollout.uid.clone()),
        limit: 10,
        ..GateOverrideFilter::default()
    })
    .await;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].uid, first.uid);
    assert_eq!(linked[0].deployment_uid.as_ref(), Some(&rollout.uid));
    // The other workload's and the one from two hours before stay unlinked.
    let web = list(GateOverrideFilter {
        name: Some("web".into()),
        ..in_ns.clone()
    })
    .await;
    assert_eq!(web.len(), 3);
    for unlinked in [&stale, &elsewhere] {
        assert!(
            web.iter()
                .any(|o| o.uid == unlinked.uid && o.deployment_uid.is_none())
        );
    }
    let since = list(GateOverrideFilter {
        since: Some(at + Duration::seconds(30)),
        ..in_ns
    })
    .await;
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].uid, other.uid);
}

/// A TLS Secret's certificate served by an Ingress SECURES the Services it routes to (those
/// known, in any environment); a renewed certificate seen by a newer snapshot replaces it.
async fn certificates_secure_the_services_their_ingresses_route_to(store: Arc<dyn GraphStore>) {
    use chrono::TimeZone as _;
    use deploygraph_model::CertificateUse;
    // Far from the fixtures' clock: Neo4j is shared, and timelines list the snapshots of
    // their window.
    let epoch = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap()
        + Duration::minutes(i64::from(rand::random::<u16>()));
    let namespace = unique("tls");
    let service = unique("payments");
    let d = Deployment::test().service(&service).build();
    let mut d = d;
    d.namespace = Some(namespace.clone());
    store.record_deployments(vec![d.clone()]).await.unwrap();
    let cert = |days: i64| CertificateRecord {
        sha256: format!("{:064x}", rand::random::<u64>()),
        subject: "CN=api.shop.example".into(),
        issuer: "CN=shop CA".into(),
        sans: vec!["api.shop.example".into()],
        not_before: epoch,
        not_after: epoch + Duration::days(days),
        is_ca: false,
    };
    let check = |leaf: CertificateRecord| CheckRecord {
        kind: "k8s-secret-cert".into(),
        target: format!("{namespace}/api-tls"),
        status: Verdict::Pass,
        detail: "ok".into(),
        latency_ms: 2,
        certificates: vec![leaf],
        uses: vec![CertificateUse {
            kind: "ingress".into(),
            namespace: namespace.clone(),
            name: "api".into(),
            services: vec![service.clone(), "not-deployed".into()],
        }],
    };
    let old = cert(5);
    let first = InfraSnapshot::new(
        epoch + Duration::minutes(10),
        None,
        None,
        vec![check(old.clone())],
    );
    store.record_snapshot(&first).await.unwrap();
    let secured = store
        .certificates_securing(&[d.service_uid()])
        .await
        .unwrap();
    assert_eq!(secured.len(), 1);
    assert_eq!(secured[0].certificate, old);
    assert_eq!(secured[0].via, format!("ingress {namespace}/api"));
    assert_eq!(secured[0].service.name.as_str(), service);
    assert_eq!(secured[0].snapshot_uid, first.uid);
    assert_eq!(secured[0].seen_at, epoch + Duration::minutes(10));
    // Renewed: the newer snapshot's certificate is the one that secures it now.
    let renewed = cert(90);
    let second = InfraSnapshot::new(
        epoch + Duration::minutes(20),
        None,
        None,
        vec![check(renewed.clone())],
    );
    store.record_snapshot(&second).await.unwrap();
    let secured = store
        .certificates_securing(&[d.service_uid()])
        .await
        .unwrap();
    assert_eq!(secured.len(), 1);
    assert_eq!(secured[0].certificate, renewed);
    // Recorded again (a retry), an older snapshot changes nothing.
    store.record_snapshot(&first).await.unwrap();
    assert_eq!(
        store
            .certificates_securing(&[d.service_uid()])
            .await
            .unwrap()[0]
            .certificate,
        renewed
    );
    assert!(
        store
            .certificates_securing(&[Uid::derive("service", &["nothing"])])
            .await
            .unwrap()
            .is_empty()
    );
}

deploygraph_store::both_stores!(
    certificates_secure_the_services_their_ingresses_route_to,
    gate_overrides_are_recorded_once_and_linked_to_the_deployment_they_admitted,
    migrations_are_idempotent_and_make_the_store_ready,
    recording_twice_is_a_no_op,
    a_reused_id_with_other_content_conflicts_and_changes_nothing,
    status_advances_and_never_regresses,
    follows_chains_survive_out_of_order_arrival,
    large_limits_return_exactly_limit_items_and_cursors_walk_everything,
    a_batch_writes_everything_but_its_conflicts,
    concurrent_writers_keep_one_chain,
    snapshots_are_recorded_once_and_found_for_their_deployment,
    alerts_are_stored_once_per_occurrence_and_resolve,
    alerts_fire_on_known_or_named_services,
    dependencies_are_replaced,
    batched_reads_match_single_reads,
    each_source_keeps_its_own_edges,
    edges_keep_their_latest_sighting,
    owner_and_tier_are_kept_and_listed,
    a_large_mesh_write_is_one_transaction_in_chunks,
    attribution_is_replaced_never_duplicated,
    key_history_counts_each_keys_recent_changes_across_the_graph,
    chaos_runs_are_updated_in_place_and_raise_alerts,
    a_rollout_without_commit_or_digest_is_recorded,
    helm_revisions_are_linked_and_follow_the_release,
    a_removal_in_a_path_environment_keeps_its_origin,
    ingest_leaves_follow_ups_that_are_claimed_once_and_finished,
    a_follow_up_enqueued_again_while_claimed_is_not_lost,
    revisits_skip_waiting_first_attributions_and_coalesce,
    a_deferred_revisit_waits_for_its_time_unless_newer_facts_come,
    alerts_are_read_by_uid_in_one_call,
    concurrent_claimers_never_share_a_follow_up,
    concurrent_alert_and_deployment_storms_complete_without_errors,
    top_triggers_rank_like_the_attribution,
    deployments_are_read_in_one_batch,
    alerts_and_chaos_runs_page_with_cursors,
    verdicts_are_replaced_and_survive_attribution,
    history_counts_confirmed_and_never_rejected_deployments,
    canary_analyses_are_recorded_replaced_and_listed,
    release_summaries_are_replaced_and_read_as_a_history,
    a_new_canary_verdict_enqueues_its_deployments_follow_up,
    rollbacks_undo_a_deployment_restore_its_predecessor_and_are_listed,
    canary_analyses_keep_whether_their_round_was_final,
    a_rollback_that_changes_the_status_enqueues_its_deployments_follow_up,
    one_service_name_in_two_clusters_is_two_services,
);

/// On Neo4j a release summary is the documented subgraph an SRE can query:
/// `(ReleaseSummary {template, window, settled_at, metrics})-[:SUMMARIZES]->(DeploymentEvent)`,
/// one node per deployment and template, replaced in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_release_summaries_form_the_documented_subgraph() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let d = Deployment::test().service(&unique("summary-graph")).build();
    store.record_deployments(vec![d.clone()]).await.unwrap();
    let request = deploygraph_store::cypher::CypherRequest {
        query: "MATCH (s:ReleaseSummary)-[:SUMMARIZES]->(:DeploymentEvent {uid: $deployment})
                RETURN s.template, s.window, toString(s.settled_at), s.metrics"
            .to_owned(),
        params: serde_json::Map::from_iter([(
            "deployment".to_owned(),
            d.uid.as_str().to_owned().into(),
        )]),
        timeout: std::time::Duration::from_secs(10),
        row_cap: 100,
        byte_cap: 1 << 20,
    };
    store
        .record_release_summary(&summary_of(&d.uid, "t", 1))
        .await
        .unwrap();
    store
        .record_release_summary(&summary_of(&d.uid, "t", 9))
        .await
        .unwrap();
    let rows = store.read_cypher(&request).await.unwrap().rows;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], serde_json::json!("t"));
    assert_eq!(rows[0][1], serde_json::json!("10m"));
    assert_eq!(rows[0][2], serde_json::json!("2026-11-20T12:00:00Z"));
    let metrics: serde_json::Value = serde_json::from_str(rows[0][3].as_str().unwrap()).unwrap();
    assert_eq!(
        metrics["http-error-ratio"]["data"]["numerator"],
        serde_json::json!(9)
    );
}

/// On Neo4j a canary analysis is the documented subgraph an SRE can query:
/// `(CanaryAnalysis)-[:ANALYZED]->(DeploymentEvent)`, `(CanaryAnalysis)-[:MEASURED]->(MetricVerdict)`;
/// a replaced analysis leaves no stale MetricVerdict behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_canary_analyses_form_the_documented_subgraph() {
    use deploygraph_model::{CanaryVerdict, NewCanaryAnalysis};
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let d = Deployment::test().service(&unique("canary-graph")).build();
    store.record_deployments(vec![d.clone()]).await.unwrap();
    let request = |query: &str| deploygraph_store::cypher::CypherRequest {
        query: query.to_owned(),
        params: serde_json::Map::from_iter([(
            "deployment".to_owned(),
            d.uid.as_str().to_owned().into(),
        )]),
        timeout: std::time::Duration::from_secs(10),
        row_cap: 100,
        byte_cap: 1 << 20,
    };
    let graph = || async {
        store
            .read_cypher(&request(
                "MATCH (c:CanaryAnalysis)-[:ANALYZED]->(:DeploymentEvent {uid: $deployment})
                 MATCH (c)-[:MEASURED]->(m:MetricVerdict)
                 RETURN c.verdict, c.baseline_kind, m.name, m.outcome, m.critical
                 ORDER BY m.name",
            ))
            .await
            .unwrap()
            .rows
    };
    let running = NewCanaryAnalysis::test(&d.uid, 1, CanaryVerdict::Inconclusive);
    store.record_canary_analysis(&running).await.unwrap();
    assert_eq!(graph().await.len(), 2);
    let mut failed = NewCanaryAnalysis::test(&d.uid, 1, CanaryVerdict::Fail);
    failed.metrics.truncate(1);
    store.record_canary_analysis(&failed).await.unwrap();
    assert_eq!(
        graph().await,
        vec![vec![
            serde_json::json!("fail"),
            serde_json::json!("side_by_side"),
            serde_json::json!("http-error-ratio"),
            serde_json::json!("fail"),
            serde_json::json!(true),
        ]]
    );
}

/// On Neo4j a rollback is the documented subgraph an SRE can query:
/// `(Rollback)-[:UNDID]->(DeploymentEvent)`, `(Rollback)-[:RESTORED]->(DeploymentEvent)`, the
/// undone deployment `rolled_back`; a canary analysis carries `final`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_rollbacks_form_the_documented_subgraph() {
    use deploygraph_model::{CanaryVerdict, NewCanaryAnalysis, NewRollback};
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let service = unique("rollback-graph");
    let first = Deployment::test()
        .service(&service)
        .started_at_minute(0)
        .build();
    let second = Deployment::test()
        .service(&service)
        .version("v2")
        .started_at_minute(20)
        .build();
    store
        .record_deployments(vec![first.clone(), second.clone()])
        .await
        .unwrap();
    store
        .record_canary_analysis(&NewCanaryAnalysis::test(
            &second.uid,
            21,
            CanaryVerdict::Fail,
        ))
        .await
        .unwrap();
    store
        .record_rollback(&NewRollback::test(&second.uid, 27))
        .await
        .unwrap();
    let rows = store
        .read_cypher(&deploygraph_store::cypher::CypherRequest {
            query: "MATCH (r:Rollback)-[:UNDID]->(d:DeploymentEvent {uid: $deployment})
                    MATCH (r)-[:RESTORED]->(p:DeploymentEvent)
                    MATCH (c:CanaryAnalysis)-[:ANALYZED]->(d)
                    RETURN d.status, p.uid, r.by, r.target, r.dry_run, c.final"
                .to_owned(),
            params: serde_json::Map::from_iter([(
                "deployment".to_owned(),
                second.uid.as_str().to_owned().into(),
            )]),
            timeout: std::time::Duration::from_secs(10),
            row_cap: 100,
            byte_cap: 1 << 20,
        })
        .await
        .unwrap()
        .rows;
    assert_eq!(
        rows,
        vec![vec![
            serde_json::json!("rolled_back"),
            serde_json::json!(first.uid.as_str()),
            serde_json::json!("deploygraph canary analyze"),
            serde_json::json!("deployment/web"),
            serde_json::json!(false),
            serde_json::json!(true),
        ]]
    );
}

/// On Neo4j a verdict is the documented relationship an SRE can query:
/// `(DeploymentEvent|Change)-[:CAUSED {by, at, note}]->(Alert)`, or REJECTED, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_verdicts_form_the_documented_subgraph() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let service = unique("cause");
    let d = Deployment::test().service(&service).build();
    store.record_deployments(vec![d.clone()]).await.unwrap();
    let alert = Alert::test(&unique("fp"), &service, 30);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    let request = |query: &str| deploygraph_store::cypher::CypherRequest {
        query: query.to_owned(),
        params: serde_json::Map::from_iter([(
            "alert".to_owned(),
            alert.uid.as_str().to_owned().into(),
        )]),
        timeout: std::time::Duration::from_secs(10),
        row_cap: 100,
        byte_cap: 1 << 20,
    };
    let edges = || async {
        store
            .read_cypher(&request(
                "MATCH (x:DeploymentEvent)-[r]->(a:Alert {uid: $alert})
                 RETURN x.uid, type(r), r.by, r.note, toString(r.at) ORDER BY type(r)",
            ))
            .await
            .unwrap()
            .rows
    };
    let confirmed = verdict(
        &alert,
        SubjectKind::Deployment,
        &d.uid,
        VerdictKind::Confirmed,
        "alice",
        Some("pool size cut"),
        40,
    );
    store.record_verdict(&confirmed).await.unwrap().unwrap();
    assert_eq!(
        edges().await,
        vec![vec![
            serde_json::json!(d.uid.as_str()),
            serde_json::json!("CAUSED"),
            serde_json::json!("alice"),
            serde_json::json!("pool size cut"),
            serde_json::json!("2026-11-20T10:40:00Z"),
        ]]
    );
    store
        .record_verdict(&SuspectVerdict {
            verdict: VerdictKind::Rejected,
            note: None,
            ..confirmed
        })
        .await
        .unwrap()
        .unwrap();
    let rows = edges().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], serde_json::json!("REJECTED"));
    assert_eq!(rows[0][3], serde_json::Value::Null);
}

/// On Neo4j the snapshot is a subgraph an SRE can query: checks, certificates and TAKEN_FOR,
/// linked whether the deployment was recorded before or after the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_snapshots_form_the_documented_subgraph() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let service = unique("subgraph");
    let before = Deployment::test().service(&service).image_seed(1).build();
    record_one(&store, before.clone()).await;
    let after = Deployment::test()
        .service(&service)
        .image_seed(2)
        .started_at_minute(5)
        .build();
    let cluster = unique("cluster");
    let snap_before = snapshot_for(Some(&before), &cluster);
    let snap_after = snapshot_for(Some(&after), &cluster);
    store.record_snapshot(&snap_before).await.unwrap();
    store.record_snapshot(&snap_after).await.unwrap();
    record_one(&store, after.clone()).await;

    let graph = neo4rs::Graph::new(std::env::var("NEO4J_TEST_URI").unwrap(), "", "").unwrap();
    let mut rows = graph
        .execute(
            neo4rs::query(
                "MATCH (s:InfraSnapshot {cluster: $cluster})-[:TAKEN_FOR]->(d:DeploymentEvent)
                 MATCH (s)-[:INCLUDES]->(c:Check)
                 OPTIONAL MATCH (c)-[:OBSERVED]->(x:Certificate)
                 RETURN d.uid AS deployment, count(DISTINCT c) AS checks, count(DISTINCT x) AS certificates
                 ORDER BY deployment",
            )
            .param("cluster", cluster.as_str()),
        )
        .await
        .unwrap();
    let mut found = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        found.push((
            row.get::<String>("deployment").unwrap(),
            row.get::<i64>("checks").unwrap(),
            row.get::<i64>("certificates").unwrap(),
        ));
    }
    let mut expected = vec![
        (before.uid.as_str().to_owned(), 3, 1),
        (after.uid.as_str().to_owned(), 3, 1),
    ];
    expected.sort();
    assert_eq!(found, expected);
}

/// Upgrading a store with hand-written dependencies (before sources existed) keeps each edge, as
/// `manual`, and the owner column starts empty.
#[tokio::test]
async fn the_topology_sources_migration_keeps_existing_edges_as_manual() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // The cluster columns (0022) are written by this build's code; they depend on 0003.
        if name.as_str() < "0009" || name.starts_with("0022_") {
            std::fs::copy(source.join(&name), old.join("sqlite").join(&name)).unwrap();
        }
    }
    let path = dir.path().join("upgrade.db");
    let (api, db) = (ServiceRef::test("api"), ServiceRef::test("db"));
    {
        let before = SqliteStore::open(&path, MigrationSource::Directory(old.clone()))
            .await
            .unwrap();
        before.migrate().await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        for s in [&api, &db] {
            conn.execute(
                "INSERT INTO services (uid, name, namespace, environment) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    s.uid().as_str(),
                    s.name.as_str(),
                    s.namespace,
                    s.environment.as_str()
                ],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO service_dependencies (service_uid, depends_on_uid) VALUES (?1, ?2)",
            rusqlite::params![api.uid().as_str(), db.uid().as_str()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.first().map(|m| m.name.as_str()),
        Some("0009_topology_sources.sql"),
        "{applied:?}"
    );
    let view = store.service_topology(&api).await.unwrap();
    assert_eq!(view.depends_on.len(), 1);
    assert_eq!(view.depends_on[0].service, db);
    assert_eq!(view.depends_on[0].sources[0].source, EdgeSource::Manual);
    assert_eq!(view.owner, None);
    assert_eq!(store.dependents(&db).await.unwrap(), vec![api]);
}

/// On Neo4j, the migration's statements turn a DEPENDS_ON written before sources existed into a
/// `manual` one (run here on edges of this test's own services; the shared server is migrated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_the_topology_sources_migration_marks_old_edges_manual() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let (a, b) = (
        ServiceRef::test(&unique("old-api")),
        ServiceRef::test(&unique("old-db")),
    );
    let graph = neo4rs::Graph::new(std::env::var("NEO4J_TEST_URI").unwrap(), "", "").unwrap();
    graph
        .run(
            neo4rs::query(
                "CREATE (:Service {uid: $a, name: $an, namespace: 'prod', environment: 'production'})
                        -[:DEPENDS_ON]->
                        (:Service {uid: $b, name: $bn, namespace: 'prod', environment: 'production'})",
            )
            .param("a", a.uid().as_str())
            .param("an", a.name.as_str())
            .param("b", b.uid().as_str())
            .param("bn", b.name.as_str()),
        )
        .await
        .unwrap();
    // Without a source the edge is still a dependency, as before.
    assert_eq!(store.dependencies(&a).await.unwrap(), vec![b.clone()]);
    let migration = deploygraph_store::migrations::EMBEDDED_NEO4J
        .iter()
        .find(|(name, _)| *name == "0007_topology_sources.cypher")
        .unwrap();
    let migration = deploygraph_store::Migration {
        version: 7,
        name: migration.0.to_owned(),
        body: migration.1.to_owned(),
    };
    for statement in migration.statements() {
        graph.run(neo4rs::query(&statement)).await.unwrap();
    }
    let view = store.service_topology(&a).await.unwrap();
    assert_eq!(view.depends_on.len(), 1);
    assert_eq!(view.depends_on[0].sources[0].source, EdgeSource::Manual);
    // A manual PUT now replaces it like any manual edge.
    store.set_dependencies(&a, &[]).await.unwrap();
    assert!(store.dependencies(&a).await.unwrap().is_empty());
}

/// Upgrading a store whose config changes were written before they carried their deployment's
/// start backfills it, so their keys' history is read from the new index at once.
#[tokio::test]
async fn the_key_history_migration_backfills_config_changes() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // The cluster columns (0022) are written by this build's code; they depend on 0003.
        if name.as_str() < "0012" || name.starts_with("0022_") {
            std::fs::copy(source.join(&name), old.join("sqlite").join(&name)).unwrap();
        }
    }
    let path = dir.path().join("upgrade.db");
    let service = unique("upgrade");
    let deployments: Vec<Deployment> = [0, 10, 20]
        .into_iter()
        .map(|at: i64| {
            Deployment::test()
                .service(&service)
                .image_seed(at.unsigned_abs() + 1)
                .started_at_minute(at)
                .build()
        })
        .collect();
    {
        let before = SqliteStore::open(&path, MigrationSource::Directory(old.clone()))
            .await
            .unwrap();
        before.migrate().await.unwrap();
        before
            .record_deployments(deployments.clone())
            .await
            .unwrap();
        // Config changes as the code before 0012 wrote them: without the deployment's start.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (d, key) in deployments.iter().zip(["values.a", "values.a", "values.b"]) {
            conn.execute(
                "INSERT INTO config_changes (uid, deployment_uid, path, kind, before, after)
                 VALUES (?1, ?2, ?3, 'value', '1', '2')",
                rusqlite::params![format!("cc-{}", d.uid.as_str()), d.uid.as_str(), key],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        [
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
    let history = |before: i64, limit: u32| {
        let store = &store;
        async move {
            histories(
                &store
                    .key_history(
                        &["values.a".to_owned(), "values.b".to_owned()],
                        minute(before),
                        limit,
                    )
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(
        history(60, 10).await,
        vec![("values.a".to_owned(), 2, 0), ("values.b".to_owned(), 1, 0)]
    );
    // Each change carries its own deployment's start.
    assert_eq!(history(10, 10).await, vec![("values.a".to_owned(), 1, 0)]);
    // A deployment recorded after the upgrade is counted beside the backfilled ones.
    let after = Deployment::test()
        .service(&service)
        .image_seed(40)
        .started_at_minute(30)
        .change("values.b", "2", "3")
        .build();
    store.record_deployments(vec![after]).await.unwrap();
    assert_eq!(
        history(60, 10).await,
        vec![("values.a".to_owned(), 2, 0), ("values.b".to_owned(), 2, 0)]
    );
}

/// On Neo4j, the migration's statements give ConfigChange nodes written before they carried
/// their deployment's start that start (run here on this test's own deployments, whose
/// ConfigChanges lose the property first; the shared server is migrated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_the_key_history_migration_backfills_config_changes() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let service = unique("old-keys");
    let key = unique("values.old");
    let deployments: Vec<Deployment> = [0, 10, 20]
        .into_iter()
        .map(|at: i64| {
            Deployment::test()
                .service(&service)
                .image_seed(at.unsigned_abs() + 1)
                .started_at_minute(at)
                .change(&key, "1", &at.to_string())
                .build()
        })
        .collect();
    store.record_deployments(deployments.clone()).await.unwrap();
    let graph = neo4rs::Graph::new(std::env::var("NEO4J_TEST_URI").unwrap(), "", "").unwrap();
    graph
        .run(
            neo4rs::query(
                "MATCH (:DeploymentEvent {service_uid: $service})-[:CHANGED]->(x:ConfigChange)
                 REMOVE x.started_at_us",
            )
            .param("service", deployments[0].service_uid().as_str()),
        )
        .await
        .unwrap();
    let history = |before: i64, limit: u32| {
        let store = Arc::clone(&store);
        let key = key.clone();
        async move {
            histories(
                &store
                    .key_history(std::slice::from_ref(&key), minute(before), limit)
                    .await
                    .unwrap(),
            )
        }
    };
    assert!(history(60, 10).await.is_empty(), "not backfilled yet");
    let migration = deploygraph_store::migrations::EMBEDDED_NEO4J
        .iter()
        .find(|(name, _)| *name == "0010_key_history.cypher")
        .unwrap();
    let migration = deploygraph_store::Migration {
        version: 10,
        name: migration.0.to_owned(),
        body: migration.1.to_owned(),
    };
    for statement in migration.statements() {
        graph.run(neo4rs::query(&statement)).await.unwrap();
    }
    assert_eq!(history(60, 10).await, vec![(key.clone(), 3, 0)]);
    assert_eq!(history(15, 10).await, vec![(key.clone(), 2, 0)]);
    let uids: Vec<Uid> = deployments.iter().map(|d| d.uid.clone()).collect();
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &uids).await;
}

/// Upgrading a store whose changed keys were written before they carried their change's time
/// backfills it, so the keys' history of changes that are not rollouts is read from the new
/// index at once.
#[tokio::test]
async fn the_change_keys_migration_backfills_changed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // The cluster columns (0022) are written by this build's code; they depend on 0003.
        if name.as_str() < "0013" || name.starts_with("0022_") {
            std::fs::copy(source.join(&name), old.join("sqlite").join(&name)).unwrap();
        }
    }
    let path = dir.path().join("upgrade.db");
    let service = unique("upgrade");
    let key = "flags.checkout";
    let changes: Vec<Change> = [0, 10, 20]
        .into_iter()
        .map(|at| {
            Change::test()
                .service(&service)
                .at_minute(at)
                .key(key, "off", &at.to_string())
                .build()
        })
        .collect();
    {
        let before = SqliteStore::open(&path, MigrationSource::Directory(old.clone()))
            .await
            .unwrap();
        assert_eq!(before.migrate().await.unwrap().len(), 13);
        // Changes as the code before 0013 wrote them: their keys without the change's time.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for c in &changes {
            conn.execute(
                "INSERT INTO changes (uid, kind, actor, at, at_us, source, content_fingerprint,
                                      payload)
                 VALUES (?1, 'feature_flag', 'alice', ?2, ?3, 'api', ?4, ?5)",
                rusqlite::params![
                    c.uid.as_str(),
                    c.at.to_rfc3339(),
                    c.at.timestamp_micros(),
                    c.content_fingerprint(),
                    serde_json::to_string(c).unwrap()
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO change_keys (change_uid, key, before, after) VALUES (?1, ?2, 'off', 'on')",
                rusqlite::params![c.uid.as_str(), key],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        [
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
    let history = |before: i64, limit: u32| {
        let store = &store;
        async move {
            histories(
                &store
                    .key_history(&[key.to_owned()], minute(before), limit)
                    .await
                    .unwrap(),
            )
        }
    };
    assert_eq!(history(60, 10).await, vec![(key.to_owned(), 3, 0)]);
    // Each key carries its own change's time.
    assert_eq!(history(15, 10).await, vec![(key.to_owned(), 2, 0)]);
    assert_eq!(history(60, 2).await, vec![(key.to_owned(), 2, 0)]);
    // A change recorded after the upgrade is counted beside the backfilled ones.
    let after = Change::test()
        .service(&service)
        .at_minute(30)
        .key(key, "on", "off")
        .build();
    store.record_changes(vec![after]).await.unwrap();
    assert_eq!(history(60, 10).await, vec![(key.to_owned(), 4, 0)]);
}

/// On Neo4j, the migration's statements give Change nodes written before their keys were
/// ChangeKey nodes those nodes (run here on this test's own changes, whose ChangeKeys are
/// deleted first; the shared server is migrated), and running them again adds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_the_change_keys_migration_backfills_changed_keys() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let service = unique("old-change-keys");
    let (key, other) = (unique("flags.old"), unique("flags.other"));
    let changes: Vec<Change> = [0, 10, 20]
        .into_iter()
        .map(|at| {
            let mut change = Change::test()
                .service(&service)
                .at_minute(at)
                .key(&key, "off", &at.to_string())
                .build();
            change.diff.push(KeyChange {
                key: other.clone(),
                before: None,
                after: Some(at.to_string()),
            });
            change
        })
        .collect();
    store.record_changes(changes.clone()).await.unwrap();
    let uids: Vec<Uid> = changes.iter().map(|c| c.uid.clone()).collect();
    let uid_list: Vec<&str> = uids.iter().map(Uid::as_str).collect();
    let history = |before: i64, limit: u32| {
        let store = Arc::clone(&store);
        let paths = vec![key.clone(), other.clone()];
        async move {
            histories(
                &store
                    .key_history(&paths, minute(before), limit)
                    .await
                    .unwrap(),
            )
        }
    };
    let expected = |n: u32| {
        let mut both = vec![(key.clone(), n, 0), (other.clone(), n, 0)];
        both.sort();
        both
    };
    assert_eq!(
        history(60, 10).await,
        expected(3),
        "written with the changes"
    );
    let graph = neo4rs::Graph::new(std::env::var("NEO4J_TEST_URI").unwrap(), "", "").unwrap();
    graph
        .run(
            neo4rs::query(
                "MATCH (c:Change)-[:HAS_KEY]->(k:ChangeKey) WHERE c.uid IN $uids DETACH DELETE k",
            )
            .param("uids", uid_list.clone()),
        )
        .await
        .unwrap();
    assert!(history(60, 10).await.is_empty(), "not backfilled yet");
    let migration = deploygraph_store::migrations::EMBEDDED_NEO4J
        .iter()
        .find(|(name, _)| *name == "0011_change_keys.cypher")
        .unwrap();
    let migration = deploygraph_store::Migration {
        version: 11,
        name: migration.0.to_owned(),
        body: migration.1.to_owned(),
    };
    for _ in 0..2 {
        for statement in migration.statements() {
            graph.run(neo4rs::query(&statement)).await.unwrap();
        }
    }
    assert_eq!(history(60, 10).await, expected(3));
    assert_eq!(history(15, 10).await, expected(2));
    let mut rows = graph
        .execute(
            neo4rs::query(
                "MATCH (c:Change)-[:HAS_KEY]->(k:ChangeKey) WHERE c.uid IN $uids
                 RETURN count(k) AS n, count(DISTINCT [c.uid, k.path]) AS distinct",
            )
            .param("uids", uid_list),
        )
        .await
        .unwrap();
    let row = rows.next().await.unwrap().unwrap();
    assert_eq!(
        (
            row.get::<i64>("n").unwrap(),
            row.get::<i64>("distinct").unwrap()
        ),
        (6, 6)
    );
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &uids).await;
}

/// A store of schema 0010 holding an attribution upgrades to the verdicts' schema: 0011 is the
/// first migration it applies, its TRIGGERS and history stay, and verdicts are then recorded.
#[tokio::test]
async fn the_verdicts_migration_keeps_attributions() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        // The cluster columns (0022) are written by this build's code; they depend on 0003.
        if name.as_str() < "0011" || name.starts_with("0022_") {
            std::fs::copy(source.join(&name), old.join("sqlite").join(&name)).unwrap();
        }
    }
    let path = dir.path().join("upgrade.db");
    let service = unique("upgrade");
    let d = Deployment::test().service(&service).build();
    let alert = Alert::test(&unique("fp"), &service, 30);
    {
        let before = SqliteStore::open(&path, MigrationSource::Directory(old))
            .await
            .unwrap();
        assert_eq!(before.migrate().await.unwrap().len(), 11);
        before.record_deployments(vec![d.clone()]).await.unwrap();
        before.record_alerts(vec![alert.clone()]).await.unwrap();
        // The attribution as the code of schema 0010 wrote it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO triggers (alert_uid, deployment_uid, confidence_score, reasons, computed_at)
             VALUES (?1, ?2, 0.8, '[\"r\"]', '2026-11-20T10:31:00Z')",
            rusqlite::params![alert.uid.as_str(), d.uid.as_str()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        [
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
    assert_eq!(
        store.attribution(&alert.uid).await.unwrap().triggers.len(),
        1
    );
    let history = || async {
        let h = store
            .service_history(&d.service_uid(), minute(60))
            .await
            .unwrap();
        (h.deployments, h.followed_by_alerts)
    };
    assert_eq!(history().await, (1, 1));
    let rejected = verdict(
        &alert,
        SubjectKind::Deployment,
        &d.uid,
        VerdictKind::Rejected,
        "sre",
        None,
        40,
    );
    assert_eq!(
        store.record_verdict(&rejected).await.unwrap().unwrap().kind,
        RecordKind::Created
    );
    assert_eq!(history().await, (1, 0));
}

#[tokio::test]
async fn a_fresh_sqlite_store_is_not_ready_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    assert!(matches!(
        store.ready().await,
        Err(deploygraph_store::Error::NotMigrated { .. })
    ));
    store.migrate().await.unwrap();
    store.ready().await.unwrap();
}

/// Upgrading a store that holds data across the migration that rebuilds the deployments and
/// images tables keeps every row and relationship.
#[tokio::test]
async fn the_optional_commit_migration_keeps_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("migrations");
    std::fs::create_dir_all(old.join("sqlite")).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for name in [
        "0001_init.sql",
        "0002_infra_snapshots.sql",
        "0003_alerts_topology_chaos.sql",
        // The follow-up outbox the current code writes into with every ingest, the changes'
        // tables attribution reads and replaces beside the deployments', and the config
        // changes' start it writes for key history.
        "0007_follow_ups.sql",
        "0010_changes.sql",
        "0012_key_history.sql",
    ] {
        std::fs::copy(source.join(name), old.join("sqlite").join(name)).unwrap();
    }
    let path = dir.path().join("upgrade.db");
    let service = unique("upgrade");
    let first = Deployment::test()
        .service(&service)
        .change("values.a", "1", "2")
        .build();
    let second = Deployment::test()
        .service(&service)
        .image_seed(2)
        .started_at_minute(5)
        .build();
    let alert = Alert::test(&unique("fp"), &service, 10);
    {
        let v3 = SqliteStore::open(&path, MigrationSource::Directory(old.clone()))
            .await
            .unwrap();
        assert_eq!(v3.migrate().await.unwrap().len(), 6);
        cluster_columns(&path, true);
        v3.record_deployments(vec![first.clone(), second.clone()])
            .await
            .unwrap();
        v3.record_alerts(vec![alert.clone()]).await.unwrap();
        v3.replace_attribution(
            &alert.uid,
            &[Trigger {
                subject: SubjectKind::Deployment,
                subject_uid: second.uid.clone(),
                alert_uid: alert.uid.clone(),
                confidence_score: 0.5,
                reasons: vec!["r".into()],
                computed_at: minute(11),
            }],
            None,
        )
        .await
        .unwrap();
    }
    cluster_columns(&path, false);
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied.first().map(|m| m.name.as_str()),
        Some("0004_optional_commit_and_digest.sql"),
        "{applied:?}"
    );
    store.ready().await.unwrap();
    let got = store.get_deployment(&second.uid).await.unwrap().unwrap();
    assert_eq!(got.deployment, second);
    assert_eq!(got.follows, Some(first.uid.clone()));
    assert_eq!(
        store
            .get_deployment(&first.uid)
            .await
            .unwrap()
            .unwrap()
            .deployment
            .changes,
        first.changes
    );
    let history = store
        .service_history(&second.service_uid(), minute(60))
        .await
        .unwrap();
    // Scores of the earlier attribution model are removed by 0008 and their alerts queued for
    // re-attribution, so the new model's probabilities are never mixed with them.
    assert_eq!((history.deployments, history.followed_by_alerts), (2, 0));
    assert!(
        store
            .attribution(&alert.uid)
            .await
            .unwrap()
            .triggers
            .is_empty()
    );
    assert_eq!(
        store
            .follow_up_stats(Some(std::slice::from_ref(&alert.uid)))
            .await
            .unwrap()
            .alerts,
        1,
        "the alert is queued for re-attribution"
    );
    // Recording again after the upgrade is still a no-op.
    assert_eq!(
        store
            .record_deployments(vec![second.clone()])
            .await
            .unwrap()[0]
            .kind,
        RecordKind::Unchanged
    );
}

/// A TCP proxy in front of Neo4j that, when armed, cuts the connection carrying the next
/// BEGIN (Bolt's struct marker `0xB1` and signature `0x11`): a pooled connection that breaks
/// inside a transaction, as a connection reset or a leader stepping down does.
struct CutProxy {
    uri: String,
    armed: Arc<std::sync::atomic::AtomicBool>,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
}

async fn cut_proxy(target: String) -> CutProxy {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("bolt://{}", listener.local_addr().unwrap());
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cuts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (armed_in, cuts_in) = (Arc::clone(&armed), Arc::clone(&cuts));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (armed, cuts) = (Arc::clone(&armed_in), Arc::clone(&cuts_in));
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = client_read.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        let begin = buf[..n].windows(2).any(|w| w == [0xB1, 0x11]);
                        if begin && armed.swap(false, Ordering::SeqCst) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return Ok(());
                        }
                        server_write.write_all(&buf[..n]).await?;
                    }
                };
                let down = tokio::io::copy(&mut server_read, &mut client_write);
                // Whichever ends first, both sockets are dropped: the connection is cut.
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    CutProxy { uri, armed, cuts }
}

/// A connection cut inside a write transaction is not the caller's failure: the store runs
/// the whole transaction again on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_a_transaction_on_a_cut_connection_is_run_again() {
    use std::sync::atomic::Ordering;
    let (_dir, _migrated) = deploygraph_store::testing::neo4j().await;
    let target = std::env::var("NEO4J_TEST_URI").unwrap();
    let target = target
        .split_once("://")
        .map_or(target.as_str(), |(_, rest)| rest)
        .to_owned();
    let proxy = cut_proxy(target).await;
    let store: Arc<dyn GraphStore> = Arc::new(
        deploygraph_store::neo4j::Neo4jStore::connect(
            &proxy.uri,
            "",
            &secrecy::SecretString::from(String::new()),
            deploygraph_store::neo4j::Neo4jOptions::default(),
            MigrationSource::Embedded,
        )
        .unwrap(),
    );
    store.ready().await.unwrap();
    let service = unique("cut");
    let first = Deployment::test().service(&service).build();
    assert_eq!(record_one(&store, first).await, RecordKind::Created);
    let retries = deploygraph_store::retry::retries();
    proxy.armed.store(true, Ordering::SeqCst);
    let second = Deployment::test()
        .service(&service)
        .started_at_minute(5)
        .build();
    let outcome = store.record_deployments(vec![second.clone()]).await;
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy cut a transaction"
    );
    assert_eq!(outcome.unwrap()[0].kind, RecordKind::Created);
    assert!(deploygraph_store::retry::retries() > retries);
    let alert = Alert::test(&unique("fp"), &service, 6);
    proxy.armed.store(true, Ordering::SeqCst);
    store.record_alerts(vec![alert.clone()]).await.unwrap();
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 2);
    assert_eq!(
        store.get_alert(&alert.uid).await.unwrap().map(|a| a.uid),
        Some(alert.uid)
    );
    let items = store
        .list_deployments(&filter_service(&service, 10))
        .await
        .unwrap()
        .items;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].follows.as_ref(), Some(&items[1].deployment.uid));
}
