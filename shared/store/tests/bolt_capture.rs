//! The Bolt capture proxy (`deploygraph_store::testing::bolt`) against the real Neo4j of
//! `scripts/services up neo4j`: what neo4rs encodes is decoded back to the same parameters, and
//! the store's writes are logged as the transactions they were, in commit order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_model::Deployment;
use deploygraph_store::neo4j::{Neo4jOptions, Neo4jStore};
use deploygraph_store::testing::bolt::{Capture, End, Value};
use deploygraph_store::{GraphStore, MigrationSource};
use neo4rs::{BoltType, ConfigBuilder, Graph, query};
use secrecy::SecretString;

/// A migrated store reaching the test Neo4j over `scheme` through a new capture proxy.
async fn through_capture(scheme: &str) -> (Capture, Neo4jStore) {
    let capture = Capture::start(deploygraph_store::testing::neo4j_address())
        .await
        .unwrap();
    let store = Neo4jStore::connect(
        &format!("{scheme}://{}", capture.address()),
        "",
        &SecretString::from(String::new()),
        Neo4jOptions::default(),
        MigrationSource::Embedded,
    )
    .unwrap();
    store.migrate().await.unwrap();
    (capture, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_decode_to_what_neo4rs_sent() {
    let capture = Capture::start(deploygraph_store::testing::neo4j_address())
        .await
        .unwrap();
    let graph = Graph::connect(
        ConfigBuilder::default()
            .uri(format!("bolt://{}", capture.address()))
            .user("")
            .password("")
            .build()
            .unwrap(),
    )
    .unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:11:12.123456789+02:00").unwrap();
    let long = "é".repeat(40_000); // a string32 and a message of several chunks
    let nested: BoltType = vec![
        BoltType::from(1i64),
        BoltType::from("x"),
        BoltType::from(vec![BoltType::from(true)]),
    ]
    .into();
    let params: Vec<(&str, BoltType)> = vec![
        ("tiny", 7i64.into()),
        ("negative", (-100i64).into()),
        ("int16", 30_000i64.into()),
        ("int32", (-2_000_000_000i64).into()),
        ("int64", i64::MAX.into()),
        ("float", 80.0f64.into()),
        ("bool", false.into()),
        ("null", Option::<String>::None.into()),
        ("short", "payments".into()),
        ("long", long.as_str().into()),
        ("list", nested),
        ("bytes", vec![0u8, 255, 7].into()),
        ("utc", at.with_timezone(&chrono::Utc).into()),
        ("zoned", at.into()),
    ];
    let mut expected = neo4rs::BoltMap::new();
    let mut q = query("RETURN size(keys($all)) AS n");
    let mut all = neo4rs::BoltMap::new();
    for (k, v) in &params {
        expected.put((*k).into(), v.clone());
        all.put((*k).into(), v.clone());
        q = q.param(k, v.clone());
    }
    let q = q.param("all", BoltType::Map(all.clone()));
    let mut txn = graph.start_txn().await.unwrap();
    let mut rows = txn.execute(q).await.unwrap();
    let row = rows.next(txn.handle()).await.unwrap().unwrap();
    assert_eq!(row.get::<i64>("n").unwrap(), params.len() as i64);
    drop(rows);
    txn.commit().await.unwrap();

    let log = capture.take();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    let unit = log
        .units
        .iter()
        .find(|u| u.statements.iter().any(|s| s.text.contains("keys($all)")))
        .expect("the transaction is logged");
    assert_eq!(unit.end, End::Commit);
    assert_eq!(unit.statements.len(), 1);
    let Value::Map(sent) = &unit.statements[0].params else {
        panic!("parameters are a map");
    };
    for (k, v) in sent {
        let decoded = v.to_bolt().unwrap();
        if k == "all" {
            assert_eq!(decoded, BoltType::Map(all.clone()), "{k}");
        } else {
            assert_eq!(
                Some(&decoded),
                expected.value.get(&neo4rs::BoltString::from(k.as_str())),
                "{k}"
            );
        }
    }
    assert_eq!(sent.len(), params.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_write_is_logged_as_one_committed_transaction() {
    let (capture, store) = through_capture("bolt").await;
    let _ = capture.take();
    let service = format!("capture-{:08x}", rand::random::<u32>());
    let batch: Vec<Deployment> = (0..3)
        .map(|i| {
            Deployment::test()
                .service(&service)
                .image_seed(i)
                .started_at_minute(i64::try_from(i).unwrap())
                .change("values.replicas", "3", "4")
                .build()
        })
        .collect();
    let uids: Vec<_> = batch.iter().map(|d| d.uid.clone()).collect();
    store.record_deployments(batch).await.unwrap();
    deploygraph_store::testing::discard_follow_ups(&store, &uids).await;

    let log = capture.take();
    assert!(log.errors.is_empty(), "{:?}", log.errors);
    // One committed transaction wrote the batch (a transient failure, another test writing
    // beside this one, would add a rolled-back attempt before it).
    let writes: Vec<_> = log
        .units
        .iter()
        .filter(|u| {
            u.end == End::Commit
                && u.statements
                    .iter()
                    .any(|s| s.text.contains("CREATE (d:DeploymentEvent)"))
        })
        .collect();
    assert_eq!(writes.len(), 1, "one transaction wrote the batch");
    let write = writes[0];
    assert!(!write.read);
    // The three deployments' uids are in the insert's rows.
    let insert = write
        .statements
        .iter()
        .find(|s| s.text.contains("CREATE (d:DeploymentEvent)"))
        .unwrap();
    let json = insert.params.to_json().to_string();
    for uid in &uids {
        assert!(json.contains(uid.as_str()), "{uid} in the insert");
    }
    // Every statement can be sent again as it was.
    for s in &write.statements {
        s.to_query().unwrap();
    }
}

/// What a write costs in messages over each scheme: one BEGIN, its statements and one COMMIT
/// per write, and no routing request per transaction over `neo4j://` (the table is cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_adds_no_message_per_transaction() {
    for scheme in ["bolt", "neo4j"] {
        let (capture, store) = through_capture(scheme).await;
        let service = format!("route-{scheme}-{:08x}", rand::random::<u32>());
        let write = |i: u64| {
            Deployment::test()
                .service(&service)
                .image_seed(i)
                .started_at_minute(i64::try_from(i).unwrap())
                .build()
        };
        // Warm: connections made, the routing table read.
        let mut uids = Vec::new();
        let first = write(0);
        uids.push(first.uid.clone());
        store.record_deployments(vec![first]).await.unwrap();
        let _ = capture.take();
        let n = 20u64;
        for i in 1..=n {
            let d = write(i);
            uids.push(d.uid.clone());
            store.record_deployments(vec![d]).await.unwrap();
        }
        let log = capture.take();
        deploygraph_store::testing::discard_follow_ups(&store, &uids).await;
        assert!(log.errors.is_empty(), "{:?}", log.errors);
        let count = |tag: u8| log.messages.get(&tag).copied().unwrap_or(0);
        let n = usize::try_from(n).unwrap();
        // A write retried after a transient failure (other tests write beside this one) adds a
        // BEGIN and its ROLLBACK.
        assert_eq!(
            count(0x11) - count(0x13),
            n,
            "{scheme}: one BEGIN per write: {:?}",
            log.messages
        );
        assert_eq!(
            count(0x12),
            n,
            "{scheme}: one COMMIT per write: {:?}",
            log.messages
        );
        assert_eq!(
            count(0x66),
            0,
            "{scheme}: no ROUTE per write: {:?}",
            log.messages
        );
        eprintln!("{scheme}: {:?}", log.messages);
    }
}
