//! Ingest benchmark: 10,000 deployment events into Neo4j through the batched path and through
//! one transaction per event, and into SQLite the same two ways. Prints events/s and ratios as
//! a Markdown table for docs/benchmarks.md.
//!
//! `scripts/services up neo4j && eval "$(scripts/services env)" && cargo bench -p deploygraph-store --bench ingest`
//! Options (environment): `BENCH_EVENTS` (10000), `BENCH_BATCH` (1000), `BENCH_SERVICES` (50).

use deploygraph_model::{Deployment, ValidationResult};
use deploygraph_store::neo4j::{Neo4jOptions, Neo4jStore};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{GraphStore, MigrationSource, RecordKind};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `events` realistic events spread over `services` services, each with its own commit and
/// image, two config changes and validation results, started one minute apart per service.
fn events(run: &str, events: usize, services: usize) -> Vec<Deployment> {
    (0..events)
        .map(|i| {
            let service = format!("{run}-svc-{}", i % services);
            Deployment::test()
                .service(&service)
                .image_seed(i as u64)
                .commit(&format!("{:040x}", i + 1))
                .started_at_minute((i / services) as i64)
                .change("values.redis.pool.size", "50", &(i % 100).to_string())
                .change("values.replicas", "3", "4")
                .validation(ValidationResult {
                    coverage_pct: Some(80.0),
                    tests_passed: Some(400),
                    tests_failed: Some(0),
                    ..ValidationResult::default()
                })
                .build()
        })
        .collect()
}

/// Events per second recording `events` in batches of `batch` by `writers` concurrent writers,
/// each owning a disjoint set of services (so writers never share a FOLLOWS chain).
async fn measure(
    store: &Arc<dyn GraphStore>,
    events: Vec<Deployment>,
    batch: usize,
    writers: usize,
) -> f64 {
    let n = events.len();
    let mut partitions: Vec<Vec<Deployment>> = vec![Vec::new(); writers.max(1)];
    let count = partitions.len();
    for d in events {
        let w = d.service.as_str().bytes().map(usize::from).sum::<usize>() % count;
        partitions[w].push(d);
    }
    let started = Instant::now();
    let tasks: Vec<_> = partitions
        .into_iter()
        .map(|events| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for chunk in events.chunks(batch) {
                    let outcomes = store
                        .record_deployments(chunk.to_vec())
                        .await
                        .expect("record");
                    assert!(
                        outcomes.iter().all(|o| o.kind == RecordKind::Created),
                        "every event is new"
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn run_id() -> String {
    format!("b{:07x}", rand::random::<u32>() >> 4)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; nothing else is parsed.
    let n = env_usize("BENCH_EVENTS", 10_000);
    let batch = env_usize("BENCH_BATCH", 1_000);
    let services = env_usize("BENCH_SERVICES", 50);
    let mut rows = Vec::new();

    let dir = std::env::temp_dir().join(format!("deploygraph-bench-{}", run_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (label, batch_size) in [
        ("SQLite, batched", batch),
        ("SQLite, one transaction per event", 1),
    ] {
        let store: Arc<dyn GraphStore> = Arc::new(
            SqliteStore::open(
                &dir.join(format!("{batch_size}.db")),
                MigrationSource::Embedded,
            )
            .await
            .expect("sqlite"),
        );
        store.migrate().await.expect("migrate");
        let rate = measure(&store, events(&run_id(), n, services), batch_size, 1).await;
        eprintln!("{label}: {rate:.0} events/s");
        rows.push((label, batch_size, rate));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let uri = std::env::var("NEO4J_TEST_URI")
        .expect("NEO4J_TEST_URI: start Neo4j with scripts/services up neo4j");
    let neo4j: Arc<dyn GraphStore> = Arc::new(
        Neo4jStore::connect(
            &uri,
            "",
            &SecretString::from(String::new()),
            Neo4jOptions::default(),
            MigrationSource::Embedded,
        )
        .expect("neo4j"),
    );
    neo4j.migrate().await.expect("migrate");
    // Warm-up: the first transactions compile the queries.
    measure(
        &neo4j,
        events(&run_id(), 2 * batch.min(1000), services),
        batch,
        1,
    )
    .await;
    for (label, batch_size, writers) in [
        ("Neo4j, batched", batch, 1),
        ("Neo4j, one transaction per event", 1, 1),
        ("Neo4j, batched, 2 concurrent writers", batch, 2),
    ] {
        let rate = measure(&neo4j, events(&run_id(), n, services), batch_size, writers).await;
        eprintln!("{label}: {rate:.0} events/s");
        rows.push((label, batch_size, rate));
    }

    println!("Machine: {}", machine());
    println!("Events: {n} over {services} services (1 image, 2 config changes, validation each)\n");
    println!("| path | events per transaction | events/s |");
    println!("|---|---:|---:|");
    for (label, batch_size, rate) in &rows {
        println!("| {label} | {batch_size} | {rate:.0} |");
    }
    let rate = |label: &str| rows.iter().find(|r| r.0 == label).map_or(f64::NAN, |r| r.2);
    println!(
        "\nNeo4j batched / per-event: {:.1}x; SQLite batched / per-event: {:.1}x",
        rate("Neo4j, batched") / rate("Neo4j, one transaction per event"),
        rate("SQLite, batched") / rate("SQLite, one transaction per event"),
    );
}
