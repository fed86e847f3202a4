//! The Neo4j store as a cluster would have it, against the real Neo4j of `scripts/services up
//! neo4j`: over `neo4j://` (the routing protocol — a standalone server answers it, naming
//! itself writer, reader and router), writes go to the writer and reads to a reader after
//! them (bookmarks); through a fault-injecting TCP proxy, connections cut in the middle of
//! transactions and a slow member cost retries, never a lost or doubled write. Neo4j Enterprise
//! (a real cluster, a leader switch) is not available on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_model::Deployment;
use deploygraph_store::neo4j::{Neo4jOptions, Neo4jStore};
use deploygraph_store::{DeploymentFilter, GraphStore, MigrationSource, RecordKind};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn store(uri: &str) -> Arc<Neo4jStore> {
    let store = Neo4jStore::connect(
        uri,
        "",
        &SecretString::from(String::new()),
        Neo4jOptions {
            connection_timeout: Duration::from_secs(3),
            ..Neo4jOptions::default()
        },
        MigrationSource::Embedded,
    )
    .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A TCP proxy to `upstream` that can cut every open connection at once and delay what the
/// server sends.
struct Proxy {
    address: SocketAddr,
    /// Cancelled to cut every connection open now; replaced for the ones after.
    cut: std::sync::Mutex<CancellationToken>,
    /// Added before each chunk the server sends, in milliseconds.
    delay_ms: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: String) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Self {
            address: listener.local_addr().unwrap(),
            cut: std::sync::Mutex::new(CancellationToken::new()),
            delay_ms: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
        });
        let accepting = Arc::clone(&proxy);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                let cut = accepting.cut.lock().unwrap().clone();
                let delay = Arc::clone(&accepting.delay_ms);
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = client_read.read(&mut buf).await?;
                            if n == 0 {
                                return std::io::Result::Ok(());
                            }
                            server_write.write_all(&buf[..n]).await?;
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = server_read.read(&mut buf).await?;
                            if n == 0 {
                                return std::io::Result::Ok(());
                            }
                            let ms = delay.load(Ordering::SeqCst);
                            if ms > 0 {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            client_write.write_all(&buf[..n]).await?;
                        }
                    };
                    // Whichever ends first (or the cut) drops both sockets.
                    tokio::select! {
                        () = cut.cancelled() => {}
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        proxy
    }

    /// Cuts every connection open now (mid-transaction for those in one).
    fn cut_all(&self) {
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    fn uri(&self) -> String {
        format!("bolt://{}", self.address)
    }
}

/// Over `neo4j://` the driver follows the server's routing table: a write, then a read of it
/// right after (routed to a reader, after the write's bookmark), then the same on a second
/// store instance that never wrote (no bookmark: it reads what is committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_writes_are_read_back_at_once() {
    let routed = store(&format!(
        "neo4j://{}",
        deploygraph_store::testing::neo4j_address()
    ))
    .await;
    let other = store(&format!(
        "neo4j://{}",
        deploygraph_store::testing::neo4j_address()
    ))
    .await;
    let service = unique("routed");
    for i in 0..20u64 {
        let d = Deployment::test()
            .service(&service)
            .image_seed(i + 1)
            .started_at_minute(i64::try_from(i).unwrap())
            .build();
        let outcome = routed.record_deployments(vec![d.clone()]).await.unwrap();
        assert_eq!(outcome[0].kind, RecordKind::Created);
        let read = routed.get_deployment(&d.uid).await.unwrap();
        assert!(read.is_some(), "read {i} after its write");
        let page = routed
            .list_deployments(&DeploymentFilter {
                service: Some(d.service.clone()),
                limit: 100,
                ..DeploymentFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), usize::try_from(i).unwrap() + 1);
    }
    let page = other
        .list_deployments(&DeploymentFilter {
            service: Some(deploygraph_model::ServiceName::parse(&service).unwrap()),
            limit: 100,
            ..DeploymentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 20);
    assert!(routed.ready().await.is_ok());
}

/// Writes and reads while a proxy cuts every connection every 150 ms (in the middle of
/// transactions): each is retried from its start and lands once; a write whose commit landed
/// but whose answer was cut is found `unchanged` when it runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_transaction_lose_and_double_nothing() {
    let proxy = Proxy::start(deploygraph_store::testing::neo4j_address()).await;
    let store = store(&proxy.uri()).await;
    let service = unique("cut");
    let cutting = CancellationToken::new();
    let cutter = {
        let (proxy, cutting) = (Arc::clone(&proxy), cutting.clone());
        tokio::spawn(async move {
            while !cutting.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(150)).await;
                proxy.cut_all();
            }
        })
    };
    let deployments: Vec<Deployment> = (0..60u64)
        .map(|i| {
            Deployment::test()
                .service(&service)
                .image_seed(i + 1)
                .started_at_minute(i64::try_from(i).unwrap())
                .build()
        })
        .collect();
    let mut writers = Vec::new();
    for chunk in deployments.chunks(10) {
        let (store, chunk) = (Arc::clone(&store), chunk.to_vec());
        writers.push(tokio::spawn(async move {
            for d in chunk {
                // The store's own retries first; a write refused as unavailable (its retry
                // budget spent while connections kept being cut) is the caller's to send again.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match store.record_deployments(vec![d.clone()]).await {
                        Ok(outcome) => {
                            assert!(
                                matches!(
                                    outcome[0].kind,
                                    RecordKind::Created | RecordKind::Unchanged
                                ),
                                "{:?}",
                                outcome[0]
                            );
                            break;
                        }
                        Err(e) if e.is_unavailable() && attempts < 20 => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("write {} failed for good: {e}", d.uid),
                    }
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    cutting.cancel();
    cutter.await.unwrap();
    assert!(
        proxy.connections.load(Ordering::SeqCst) > 1,
        "connections were cut and made again"
    );
    assert!(
        deploygraph_store::retry::retries() > 0,
        "transactions cut midway were run again"
    );
    let page = store
        .list_deployments(&DeploymentFilter {
            service: Some(deployments[0].service.clone()),
            limit: 200,
            ..DeploymentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 60, "every write once");
    // One FOLLOWS chain in start order, whatever the retries.
    let mut items = page.items;
    items.sort_by_key(|s| s.deployment.started_at);
    for pair in items.windows(2) {
        assert_eq!(pair[1].follows.as_ref(), Some(&pair[0].deployment.uid));
    }
    deploygraph_store::testing::discard_follow_ups(
        store.as_ref(),
        &deployments
            .iter()
            .map(|d| d.uid.clone())
            .collect::<Vec<_>>(),
    )
    .await;
}

/// A slow member (every answer delayed 200 ms) is slow, not down: reads and writes succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_is_slow_not_down() {
    let proxy = Proxy::start(deploygraph_store::testing::neo4j_address()).await;
    let store = store(&proxy.uri()).await;
    proxy.delay_ms.store(200, Ordering::SeqCst);
    let d = Deployment::test().service(&unique("slow")).build();
    let outcome = store.record_deployments(vec![d.clone()]).await.unwrap();
    assert_eq!(outcome[0].kind, RecordKind::Created);
    assert!(store.get_deployment(&d.uid).await.unwrap().is_some());
    assert!(store.ready().await.is_ok());
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), std::slice::from_ref(&d.uid))
        .await;
}
