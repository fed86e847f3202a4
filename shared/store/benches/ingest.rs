//! Ingest benchmark: 10,000 deployment events into Neo4j through the batched path and through
//! one transaction per event, and into SQLite the same two ways; then deploygraph against the
//! official Neo4j Python driver on the very statements deploygraph sends (read off the wire by
//! `deploygraph_store::testing::bolt` and replayed by `benches/neo4j_driver_replay.py`), over
//! `bolt://` and `neo4j://`, in the same run. Prints events/s and ratios as Markdown tables for
//! docs/benchmarks.md.
//!
//! `scripts/services up neo4j && eval "$(scripts/services env)" && cargo bench -p deploygraph-store --bench ingest`
//! Options (environment): `BENCH_EVENTS` (10000), `BENCH_BATCH` (1000), `BENCH_SERVICES` (50),
//! `BENCH_PER_EVENT_EVENTS` (2000, the comparison's one-transaction-per-event path),
//! `BENCH_ROUNDS` (3), `BENCH_PYTHON` (an interpreter with the `neo4j` package; by default one
//! is installed into a venv under `$DEPLOYGRAPH_TEST_CACHE`).
//!
//! **The driver comparison deletes every node of the Neo4j at `NEO4J_TEST_URI`** (all but the
//! migration records) before each of its runs, so that every run starts from the same graph:
//! point it at a test server only.

use deploygraph_model::{Deployment, ValidationResult};
use deploygraph_store::neo4j::{Neo4jOptions, Neo4jStore};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::testing::bolt::{Capture, End, Unit};
use deploygraph_store::{GraphStore, MigrationSource, RecordKind};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

    // host:port of the Neo4j of `scripts/services up neo4j` (NEO4J_TEST_URI).
    let server = deploygraph_store::testing::neo4j_address();
    let neo4j = neo4j_store(&format!("bolt://{server}"));
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

    driver_comparison(&server, (n, batch, services)).await;
}

/// The official Neo4j Python driver the comparison installs (PyPI `neo4j`).
const PYTHON_DRIVER: &str = "6.4.1";

fn run_command(command: &mut std::process::Command) {
    let status = command.status().expect("the command starts");
    assert!(status.success(), "{command:?}: {status}");
}

/// An interpreter with the official driver (and, when `rust_ext`, the driver's official Rust
/// extension `neo4j-rust-ext`, its faster PackStream): `BENCH_PYTHON` for the plain driver, else
/// a venv made once under the test cache (as `scripts/schemathesis` keeps its own).
fn python(rust_ext: bool) -> PathBuf {
    if !rust_ext && let Some(python) = std::env::var_os("BENCH_PYTHON") {
        return python.into();
    }
    let cache = std::env::var_os("DEPLOYGRAPH_TEST_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/deploygraph-test-infra")
        },
        PathBuf::from,
    );
    let suffix = if rust_ext { "-rust-ext" } else { "" };
    let venv = cache.join(format!("neo4j-python-{PYTHON_DRIVER}{suffix}"));
    if !venv.join(".installed").exists() {
        eprintln!(
            "installing the Neo4j Python driver {PYTHON_DRIVER}{suffix} into {}",
            venv.display()
        );
        let _ = std::fs::remove_dir_all(&venv);
        run_command(
            std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv),
        );
        let mut pip = std::process::Command::new(venv.join("bin/pip"));
        pip.args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("neo4j=={PYTHON_DRIVER}"));
        if rust_ext {
            pip.arg(format!("neo4j-rust-ext=={PYTHON_DRIVER}.0"));
        }
        run_command(&mut pip);
        std::fs::write(venv.join(".installed"), "").expect("the venv is marked installed");
    }
    venv.join("bin/python")
}

fn neo4j_store(uri: &str) -> Arc<dyn GraphStore> {
    Arc::new(
        Neo4jStore::connect(
            uri,
            "",
            &SecretString::from(String::new()),
            Neo4jOptions::default(),
            MigrationSource::Embedded,
        )
        .expect("neo4j"),
    )
}

/// Deletes every node but the migration records, so the next run starts from the same graph.
async fn wipe(graph: &neo4rs::Graph) {
    loop {
        let mut rows = graph
            .execute(neo4rs::query(
                "MATCH (n) WHERE NOT n:DeploygraphMigration WITH n LIMIT 5000
                 DETACH DELETE n RETURN count(*) AS c",
            ))
            .await
            .expect("wipe");
        let row = rows.next().await.expect("wipe").expect("a count");
        if row.get::<i64>("c").expect("count") == 0 {
            return;
        }
    }
}

/// What the graph holds, to see that a replay wrote what deploygraph wrote: nodes per label
/// set, relationships per type, and every property's key and value type per label set or type.
async fn shape(graph: &neo4rs::Graph) -> BTreeMap<String, i64> {
    const LABELS: &str = "reduce(s = '', x IN labels(n) | s + ':' + x)";
    let queries = [
        format!("MATCH (n) WHERE NOT n:DeploygraphMigration RETURN 'nodes ' + {LABELS} AS k, count(*) AS c"),
        format!(
            "MATCH (n) WHERE NOT n:DeploygraphMigration UNWIND keys(n) AS p
             RETURN 'node property ' + {LABELS} + '.' + p + ' ' + valueType(n[p]) AS k, count(*) AS c"
        ),
        "MATCH ()-[r]->() RETURN 'relationships ' + type(r) AS k, count(*) AS c".to_owned(),
        "MATCH ()-[r]->() UNWIND keys(r) AS p
         RETURN 'relationship property ' + type(r) + '.' + p + ' ' + valueType(r[p]) AS k, count(*) AS c"
            .to_owned(),
    ];
    let mut shape = BTreeMap::new();
    for q in queries {
        let mut rows = graph.execute(neo4rs::query(&q)).await.expect("shape");
        while let Some(row) = rows.next().await.expect("shape") {
            shape.insert(row.get("k").expect("key"), row.get("c").expect("count"));
        }
    }
    shape
}

fn describe_difference(expected: &BTreeMap<String, i64>, got: &BTreeMap<String, i64>) -> String {
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != got.get(*k))
        .map(|k| format!("{k}: expected {:?}, got {:?}", expected.get(k), got.get(k)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_units(path: &Path, units: &[Unit]) {
    let mut text = String::new();
    for unit in units {
        text.push_str(&unit.to_json().to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("the captured units are written");
}

/// deploygraph's transactions for one path, read off the wire from a wiped graph: the warm-up
/// events batched, then the measured events `batch` per transaction.
struct Captured {
    warm: PathBuf,
    measured: PathBuf,
    units: usize,
    statements: usize,
    shape: BTreeMap<String, i64>,
}

async fn capture(
    server: &str,
    graph: &neo4rs::Graph,
    dir: &Path,
    path: &str,
    (warm, events, batch): (&[Deployment], &[Deployment], usize),
) -> Captured {
    let proxy = Capture::start(server.to_owned())
        .await
        .expect("the capture proxy");
    let store = neo4j_store(&format!("bolt://{}", proxy.address()));
    wipe(graph).await;
    let _ = proxy.take();
    measure(&store, warm.to_vec(), warm.len(), 1).await;
    let warm_log = proxy.take();
    measure(&store, events.to_vec(), batch, 1).await;
    let log = proxy.take();
    for log in [&warm_log, &log] {
        assert!(log.errors.is_empty(), "capture: {:?}", log.errors);
        assert_eq!(log.reset, 0, "no transaction failed while capturing");
        assert!(log.units.iter().all(|u| u.end == End::Commit));
    }
    let captured = Captured {
        warm: dir.join(format!("{path}-warm.jsonl")),
        measured: dir.join(format!("{path}.jsonl")),
        units: log.units.len(),
        statements: log.units.iter().map(|u| u.statements.len()).sum(),
        shape: shape(graph).await,
    };
    write_units(&captured.warm, &warm_log.units);
    write_units(&captured.measured, &log.units);
    captured
}

/// The driver's events/s replaying `captured` from a wiped graph (its warm-up untimed).
async fn driver_rate(
    python: &Path,
    uri: &str,
    captured: &Captured,
    events: usize,
) -> (f64, String) {
    let output = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/neo4j_driver_replay.py"
        ))
        .arg(uri)
        .arg(&captured.warm)
        .arg(&captured.measured)
        .output()
        .await
        .expect("the replay starts");
    assert!(
        output.status.success(),
        "the replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the replay prints its report");
    assert_eq!(report["units"].as_u64(), Some(captured.units as u64));
    assert_eq!(
        report["statements"].as_u64(),
        Some(captured.statements as u64)
    );
    let seconds = report["seconds"].as_f64().expect("seconds");
    let version = report["driver"].as_str().unwrap_or("?").to_owned();
    (events as f64 / seconds, version)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

/// The clients compared: deploygraph's store, the official driver, the official driver with its
/// Rust extension.
const CLIENTS: [&str; 3] = [
    "deploygraph",
    "Python driver",
    "Python driver + neo4j-rust-ext",
];

/// deploygraph against the official Python driver on deploygraph's own statements, both paths,
/// over `bolt://` and `neo4j://` to `server` (`host:port`), each round in another order of the
/// clients: `n` events batched `batch` per transaction over `services` services.
async fn driver_comparison(server: &str, (n, batch, services): (usize, usize, usize)) {
    let n_per_event = env_usize("BENCH_PER_EVENT_EVENTS", 2_000);
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let pythons = [python(false), python(true)];
    let warm_events = 2 * batch.min(1000);
    let graph = neo4rs::Graph::connect(
        neo4rs::ConfigBuilder::default()
            .uri(format!("bolt://{server}"))
            .user("")
            .password("")
            .build()
            .expect("config"),
    )
    .expect("neo4j");
    let dir = std::env::temp_dir().join(format!("deploygraph-bench-{}", run_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let schemes = ["bolt", "neo4j"];
    let stores: Vec<Arc<dyn GraphStore>> = schemes
        .iter()
        .map(|s| neo4j_store(&format!("{s}://{server}")))
        .collect();

    let mut table = Vec::new();
    let mut version = String::new();
    for (path, events_n, path_batch) in [
        ("batched", n, batch),
        ("one transaction per event", n_per_event, 1),
    ] {
        let warm = events(&run_id(), warm_events, services);
        let measured = events(&run_id(), events_n, services);
        let captured = capture(
            server,
            &graph,
            &dir,
            &path.replace(' ', "-"),
            (&warm, &measured, path_batch),
        )
        .await;
        eprintln!(
            "{path}: captured {} transactions, {} statements",
            captured.units, captured.statements
        );
        // rates[scheme][client]: one figure per round.
        let mut rates = vec![vec![Vec::new(); CLIENTS.len()]; schemes.len()];
        for round in 0..rounds {
            for (s, scheme) in schemes.iter().enumerate() {
                for k in 0..CLIENTS.len() {
                    let client = (k + round) % CLIENTS.len();
                    wipe(&graph).await;
                    let rate = if client == 0 {
                        measure(&stores[s], warm.clone(), warm.len(), 1).await;
                        measure(&stores[s], measured.clone(), path_batch, 1).await
                    } else {
                        let (rate, v) = driver_rate(
                            &pythons[client - 1],
                            &format!("{scheme}://{server}"),
                            &captured,
                            events_n,
                        )
                        .await;
                        version = v;
                        rate
                    };
                    let got = shape(&graph).await;
                    assert!(
                        got == captured.shape,
                        "{} over {scheme}:// wrote another graph than the captured run:\n{}",
                        CLIENTS[client],
                        describe_difference(&captured.shape, &got)
                    );
                    eprintln!(
                        "{path}, {scheme}://, {}, round {}: {rate:.0} events/s",
                        CLIENTS[client],
                        round + 1
                    );
                    rates[s][client].push(rate);
                }
            }
        }
        table.push((path, path_batch, captured.units, captured.statements, rates));
    }
    wipe(&graph).await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "\n### deploygraph against the official Neo4j Python driver {version}, on the statements deploygraph sent\n"
    );
    println!(
        "Rounds: {rounds}, each in another order of the clients; every run from a wiped graph \
         after a {warm_events}-event warm-up; the graph checked equal to the captured run's after every run.\n"
    );
    println!(
        "| path | URI | transactions / statements | client | events/s (each round) | median | deploygraph / this client (median of rounds) |"
    );
    println!("|---|---|---:|---|---|---:|---:|");
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (path, path_batch, units, statements, rates) in &table {
        for (s, scheme) in schemes.iter().enumerate() {
            for (client, name) in CLIENTS.iter().enumerate() {
                let own = &rates[s][client];
                let mut ratios: Vec<f64> =
                    rates[s][0].iter().zip(own).map(|(a, b)| a / b).collect();
                let ratio = if client == 0 {
                    String::new()
                } else {
                    format!("{:.1} %", 100.0 * median(&mut ratios))
                };
                println!(
                    "| {path} ({path_batch}/tx) | {scheme}:// | {units} / {statements} | {name} | {} | {:.0} | {ratio} |",
                    list(own),
                    median(&mut own.clone()),
                );
            }
        }
        let dg_bolt = median(&mut rates[0][0].clone());
        let dg_routed = median(&mut rates[1][0].clone());
        println!(
            "| {path} ({path_batch}/tx) | neo4j:// against bolt:// | | deploygraph | | | {:.1} % |",
            100.0 * dg_routed / dg_bolt
        );
    }
}
