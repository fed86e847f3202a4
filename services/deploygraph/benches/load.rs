//! Load, measured (issue #17 item 5): simulated agents of many clusters forwarding rollouts to
//! two `deploygraph serve` processes on one store, and an Alertmanager storm at the same time.
//!
//! `cargo bench -p deploygraph --bench load` — on the Neo4j of `scripts/services up neo4j`
//! (`NEO4J_TEST_URI`) and on one SQLite file (`-- sqlite`, `-- neo4j`, default both). Tunables:
//! `BENCH_AGENTS` (20 clusters), `BENCH_ROLLOUTS_PER_MINUTE` (100 per agent), `BENCH_ALERTS`
//! (5,000), `BENCH_SECONDS` (60: the length of the load; the storm spreads over it),
//! `BENCH_SERVICES` (10 per cluster).
//!
//! Each simulated agent does what `deploygraph agent`'s forwarder does — it queues the rollouts
//! its cluster makes and sends what is queued in one batch to `POST /v1/agent/records`, again
//! on any failure — and alternates between the two servers. Measured: acknowledged events per
//! second (rollouts and alerts), the forwarding lag (a rollout's creation to its batch's 200)
//! p50/p99, the storm's notifications' answer time p99, the p99 of API reads issued during the
//! load (alerts, deployments, an alert's suspects), how long after the load every alert has its
//! suspects (no follow-up pending in the store), and each server's peak resident memory.

use chrono::{DateTime, Utc};
use deploygraph_model::Deployment;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const TOKEN: &str = "load-bench-token";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Settings {
    agents: usize,
    rollouts_per_minute: u64,
    alerts: usize,
    seconds: u64,
    services: usize,
}

/// A `serve` process.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

async fn start(store: &str, log: &std::path::Path) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_deploygraph"))
        .args([
            "serve",
            "--listen",
            &listen,
            "--store",
            store,
            "--token",
            TOKEN,
            "--log-format",
            "json",
            "--log-level",
            "warn",
        ])
        .env_remove("DEPLOYGRAPH_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("deploygraph serve starts");
    let server = Server {
        child,
        url: format!("http://{listen}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", server.url)).send().await
            && r.status() == 200
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "serve not ready: see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Peak and current resident memory of `pid`, MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// What the run measured.
#[derive(Default)]
struct Measured {
    rollouts_acked: AtomicU64,
    alerts_acked: AtomicU64,
    failures: AtomicU64,
    lag_ms: Mutex<Vec<f64>>,
    storm_ms: Mutex<Vec<f64>>,
    api_ms: Mutex<Vec<f64>>,
}

/// One simulated agent: its cluster's rollouts queued as they happen, the queue sent in one
/// batch at a time, alternating servers.
async fn agent(
    i: usize,
    settings: Arc<Settings>,
    servers: Arc<Vec<String>>,
    measured: Arc<Measured>,
    run: String,
    base: DateTime<Utc>,
) {
    let client = reqwest::Client::new();
    let cluster = format!("c{i:02}");
    let total = settings.rollouts_per_minute * settings.seconds / 60;
    let every = Duration::from_secs_f64(60.0 / settings.rollouts_per_minute as f64);
    let queue: Arc<Mutex<Vec<(u64, Value, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let made = {
        let (queue, cluster, run, settings) = (
            Arc::clone(&queue),
            cluster.clone(),
            run.clone(),
            Arc::clone(&settings),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            for n in 0..total {
                tick.tick().await;
                let service = format!("{run}-svc{}", n as usize % settings.services);
                let d: Deployment = Deployment::test()
                    .service(&service)
                    .cluster(&cluster)
                    .image_seed(n + 1 + (i as u64) * 1_000_000)
                    .started_at(base + chrono::Duration::milliseconds((n * 600) as i64))
                    .build();
                let record = json!({"deployment": d});
                queue.lock().await.push((n + 1, record, Instant::now()));
            }
        })
    };
    let mut turn = i;
    loop {
        let batch: Vec<(u64, Value, Instant)> = std::mem::take(&mut *queue.lock().await);
        if batch.is_empty() {
            if made.is_finished() && queue.lock().await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let records: Vec<Value> = batch
            .iter()
            .map(|(seq, record, _)| {
                let mut r = record.clone();
                r["seq"] = json!(seq);
                r
            })
            .collect();
        let body = json!({"cluster": cluster, "records": records});
        loop {
            turn += 1;
            let url = format!("{}/v1/agent/records", servers[turn % servers.len()]);
            let sent = client
                .post(&url)
                .bearer_auth(TOKEN)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 200 => break,
                _ => {
                    measured.failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let now = Instant::now();
        let mut lag = measured.lag_ms.lock().await;
        for (_, _, at) in &batch {
            lag.push(now.duration_since(*at).as_secs_f64() * 1000.0);
        }
        measured
            .rollouts_acked
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}

/// The storm: `alerts` alerts in notifications of 100, spread over the load.
async fn storm(
    settings: Arc<Settings>,
    servers: Arc<Vec<String>>,
    measured: Arc<Measured>,
    run: String,
    base: DateTime<Utc>,
) -> Vec<String> {
    let client = reqwest::Client::new();
    let notifications = settings.alerts.div_ceil(100);
    let every = Duration::from_secs_f64(settings.seconds as f64 / notifications as f64);
    let mut tick = tokio::time::interval(every);
    let mut fingerprints = Vec::new();
    let mut tasks = Vec::new();
    for n in 0..notifications {
        tick.tick().await;
        let mut alerts = Vec::new();
        for k in 0..100.min(settings.alerts - n * 100) {
            let a = n * 100 + k;
            let cluster = format!("c{:02}", a % settings.agents);
            let service = format!("{run}-svc{}", a % settings.services);
            let fingerprint = format!("{run}-fp{a}");
            let starts = base
                + chrono::Duration::seconds(
                    20 + (a as i64 * settings.seconds as i64) / settings.alerts as i64,
                );
            alerts.push(json!({"status": "firing",
                "labels": {"alertname": "HighErrorRate", "service": service, "namespace": "prod",
                           "environment": "production", "cluster": cluster, "severity": "critical"},
                "annotations": {}, "startsAt": starts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": fingerprint}));
            fingerprints.push(fingerprint);
        }
        let body = json!({"version": "4", "groupKey": format!("{{}}:{{n=\"{n}\"}}"), "truncatedAlerts": 0,
            "status": "firing", "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts});
        let url = format!("{}/v1/alerts/alertmanager", servers[n % servers.len()]);
        let (client, measured) = (client.clone(), Arc::clone(&measured));
        tasks.push(tokio::spawn(async move {
            let count = body["alerts"].as_array().map_or(0, Vec::len) as u64;
            let started = Instant::now();
            loop {
                match client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => break,
                    _ => {
                        measured.failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            measured
                .storm_ms
                .lock()
                .await
                .push(started.elapsed().as_secs_f64() * 1000.0);
            measured.alerts_acked.fetch_add(count, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    fingerprints
}

/// Reads during the load, every 100 ms, alternating servers.
async fn reader(
    servers: Arc<Vec<String>>,
    measured: Arc<Measured>,
    run: String,
    stop: Arc<AtomicU64>,
) {
    let client = reqwest::Client::new();
    let mut n = 0usize;
    while stop.load(Ordering::Relaxed) == 0 {
        n += 1;
        let base = &servers[n % servers.len()];
        let path = match n % 3 {
            0 => "/v1/alerts?limit=50".to_owned(),
            1 => "/v1/deployments?limit=50".to_owned(),
            _ => format!("/v1/alerts/{run}-fp{}/suspects", n % 100),
        };
        let started = Instant::now();
        if let Ok(r) = client
            .get(format!("{base}{path}"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
        {
            let _ = r.bytes().await;
            measured
                .api_ms
                .lock()
                .await
                .push(started.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pending follow-ups of the store, as a server reports them.
async fn pending(server: &str) -> Option<f64> {
    let text = reqwest::get(format!("{server}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("deploygraph_follow_ups_pending{"))
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(
        lines
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

async fn run_on(label: &str, store: &str, settings: Arc<Settings>) {
    let dir = std::env::temp_dir();
    let run = format!("load{:06x}", rand::random::<u32>() & 0xff_ffff);
    let servers = [
        start(store, &dir.join(format!("{run}-a.log"))).await,
        start(store, &dir.join(format!("{run}-b.log"))).await,
    ];
    let urls = Arc::new(servers.iter().map(|s| s.url.clone()).collect::<Vec<_>>());
    let measured = Arc::new(Measured::default());
    let base = Utc::now() - chrono::Duration::hours(1);
    let stop = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let reading = tokio::spawn(reader(
        Arc::clone(&urls),
        Arc::clone(&measured),
        run.clone(),
        Arc::clone(&stop),
    ));
    let mut agents = Vec::new();
    for i in 0..settings.agents {
        agents.push(tokio::spawn(agent(
            i,
            Arc::clone(&settings),
            Arc::clone(&urls),
            Arc::clone(&measured),
            run.clone(),
            base,
        )));
    }
    let fingerprints = storm(
        Arc::clone(&settings),
        Arc::clone(&urls),
        Arc::clone(&measured),
        run.clone(),
        base,
    )
    .await;
    for a in agents {
        let _ = a.await;
    }
    let load = started.elapsed();
    stop.store(1, Ordering::Relaxed);
    let _ = reading.await;
    // Every alert attributed: no follow-up pending, five reports (each at most 2 s old) in a row.
    let settled_from = Instant::now();
    let mut zero = 0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while zero < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        zero = if pending(&urls[0]).await == Some(0.0) {
            zero + 1
        } else {
            0
        };
    }
    let settled = settled_from
        .elapsed()
        .saturating_sub(Duration::from_secs(3));
    // A sample of the alerts: suspects present.
    let client = reqwest::Client::new();
    let mut with_suspects = 0;
    let sample: Vec<&String> = fingerprints
        .iter()
        .step_by((fingerprints.len() / 50).max(1))
        .collect();
    for f in &sample {
        if let Ok(r) = client
            .get(format!("{}/v1/alerts/{f}/suspects", urls[0]))
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && v["attribution_pending"] == json!(false)
        {
            with_suspects += 1;
        }
    }
    let rollouts = measured.rollouts_acked.load(Ordering::Relaxed);
    let alerts = measured.alerts_acked.load(Ordering::Relaxed);
    let mut lag = measured.lag_ms.lock().await.clone();
    let mut storm_ms = measured.storm_ms.lock().await.clone();
    let mut api = measured.api_ms.lock().await.clone();
    let memories: Vec<String> = servers
        .iter()
        .map(|s| {
            let (peak, now) = memory(s.child.id());
            format!("{peak:.0} MiB peak ({now:.0} now)")
        })
        .collect();
    println!(
        "\n### {label}: {} agents × {} rollouts/min, {} alerts, {} s of load, two servers\n",
        settings.agents, settings.rollouts_per_minute, settings.alerts, settings.seconds
    );
    println!("| measure | value |\n|---|---:|");
    println!("| rollouts acknowledged | {rollouts} |");
    println!("| alerts acknowledged | {alerts} |");
    println!(
        "| acknowledged events/s over the load | {:.1} |",
        (rollouts + alerts) as f64 / load.as_secs_f64()
    );
    println!(
        "| failed sends (retried) | {} |",
        measured.failures.load(Ordering::Relaxed)
    );
    println!(
        "| forwarding lag p50 / p99 | {:.0} ms / {:.0} ms |",
        percentile(&mut lag, 50.0),
        percentile(&mut lag, 99.0)
    );
    println!(
        "| storm notification answered p50 / p99 | {:.0} ms / {:.0} ms |",
        percentile(&mut storm_ms, 50.0),
        percentile(&mut storm_ms, 99.0)
    );
    println!(
        "| API reads during the load p50 / p99 ({} reads) | {:.0} ms / {:.0} ms |",
        api.len(),
        percentile(&mut api, 50.0),
        percentile(&mut api, 99.0)
    );
    println!(
        "| every alert attributed, after the load | {:.1} s |",
        settled.as_secs_f64()
    );
    println!(
        "| sampled alerts with their answer | {with_suspects} / {} |",
        sample.len()
    );
    println!("| server A memory | {} |", memories[0]);
    println!("| server B memory | {} |", memories[1]);
}

fn main() {
    let settings = Arc::new(Settings {
        agents: env_or("BENCH_AGENTS", 20),
        rollouts_per_minute: env_or("BENCH_ROLLOUTS_PER_MINUTE", 100),
        alerts: env_or("BENCH_ALERTS", 5000),
        seconds: env_or("BENCH_SECONDS", 60),
        services: env_or("BENCH_SERVICES", 10),
    });
    let which = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "both".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        if which == "sqlite" || which == "both" {
            let path = std::env::temp_dir().join(format!("load-{:08x}.db", rand::random::<u32>()));
            run_on(
                "Embedded store (one SQLite file)",
                &format!("sqlite://{}", path.display()),
                Arc::clone(&settings),
            )
            .await;
        }
        if which == "neo4j" || which == "both" {
            let uri = std::env::var("NEO4J_TEST_URI").expect(
                "NEO4J_TEST_URI: scripts/services up neo4j, then eval \"$(scripts/services env)\"",
            );
            run_on("Neo4j", &uri, Arc::clone(&settings)).await;
        }
    });
}
