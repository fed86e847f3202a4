//! Alert storm benchmark: 5,000 alerts in 50 Alertmanager notifications delivered in parallel
//! to the API over TCP (the router `serve` runs, with its follow-up pipeline), while a reader
//! keeps listing alerts and deployments. Measures accepted alerts/s, webhook latency, the time
//! until every alert has its suspects and until the revisits its later alerts ask for are done, the readers' latency meanwhile, and how many deliveries
//! got 503 (retried as Alertmanager retries). Baseline, in the same run: the same notifications
//! delivered one after another.
//!
//! `scripts/services up neo4j && eval "$(scripts/services env)" && cargo bench -p deploygraph-api --bench storm`
//! Options (environment): `BENCH_ALERTS` (5000), `BENCH_NOTIFICATIONS` (50), `BENCH_SERVICES`
//! (20), `BENCH_STORES` (`sqlite,neo4j`). `BENCH_SERVICE_HEALTH=1`: each service also depends on
//! the next two (so an alert's services within the attribution depth are its own and six
//! below it), and every storm is delivered twice, without and then with a service health query
//! read from the Prometheus at `PROMETHEUS_TEST_URL` (`scripts/services up prometheus`), with
//! the services' health readings and the range queries sent for them counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_api::{ApiConfig, AppState};
use deploygraph_model::{Alert, Uid};
use deploygraph_store::GraphStore;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "st0rm";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn at(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Storm {
    notifications: Vec<Value>,
    alerts: Vec<Uid>,
    deployments: Vec<Value>,
    services: Vec<String>,
}

/// A service health query on the test Prometheus: one steady series per service.
const HEALTH_QUERY: &str = r#"label_replace(sum(up), "service", "$service", "", "")"#;

/// Three deployments per service in the two hours before the storm, then `alerts` alerts over
/// the services, `alerts / notifications` per notification.
fn storm(run: &str, alerts: usize, notifications: usize, services: usize) -> Storm {
    // Whole seconds: alerts carry their start to the second, and their uids derive from it.
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0)
        .expect("now is a valid time")
        - chrono::Duration::minutes(30);
    let names: Vec<String> = (0..services).map(|i| format!("{run}-svc-{i}")).collect();
    let mut deployments = Vec::new();
    for (i, service) in names.iter().enumerate() {
        for k in 0..3u32 {
            let seed = i * 3 + k as usize;
            deployments.push(json!({
                "service": service, "namespace": "prod", "environment": "production",
                "version": format!("v1.{k}.0"),
                "commit": {"sha": format!("{:040x}", seed + 1)},
                "images": [{"repository": format!("ghcr.io/acme/{service}"),
                            "digest": format!("sha256:{:064x}", seed + 1)}],
                "status": "succeeded",
                "started_at": at(start - chrono::Duration::minutes(100 - 40 * i64::from(k))),
                "changes": [{"path": "values.pool.size", "kind": "value",
                             "before": "50", "after": (10 + k).to_string()}]
            }));
        }
    }
    let per = alerts.div_ceil(notifications);
    let mut uids = Vec::with_capacity(alerts);
    let mut bodies = Vec::with_capacity(notifications);
    for n in 0..notifications {
        let mut items = Vec::with_capacity(per);
        for j in 0..per {
            let index = n * per + j;
            if index >= alerts {
                break;
            }
            let service = &names[index % services];
            let fingerprint = format!("{:016x}", rand::random::<u64>());
            let starts = start + chrono::Duration::seconds((index % 600) as i64);
            uids.push(Alert::uid_for(&fingerprint, &starts));
            items.push(json!({
                "status": "firing",
                "labels": {"alertname": format!("Alert{}", index % 7), "service": service,
                           "namespace": "prod", "environment": "production",
                           "severity": "critical", "pod": format!("{service}-{j}")},
                "annotations": {"summary": "error budget burning"},
                "startsAt": at(starts), "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint
            }));
        }
        bodies.push(json!({
            "version": "4", "groupKey": format!("{{}}:{{group=\"{n}\"}}"), "truncatedAlerts": 0,
            "status": "firing", "receiver": "deploygraph", "groupLabels": {"group": n.to_string()},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "alerts": items
        }));
    }
    Storm {
        notifications: bodies,
        alerts: uids,
        deployments,
        services: names,
    }
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

struct Figures {
    alerts_per_second: f64,
    webhook_p50_ms: f64,
    webhook_p99_ms: f64,
    /// Until no alert of the storm waits for its first attribution.
    first_attributed_after_s: f64,
    attributed_after_s: f64,
    reads: usize,
    read_p99_ms: f64,
    unavailable: usize,
    /// Services' health readings for the storm's alerts, and range queries sent for them.
    health_reads: u64,
    health_queries: u64,
}

/// The sum of the samples of `name` in a Prometheus text exposition.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Delivers the storm to a fresh server over `store`, `parallel` notifications at a time.
/// With `health` (a Prometheus URL), the server reads the services' health metrics
/// ([`HEALTH_QUERY`]) before each alert's attribution.
async fn deliver(
    store: &Arc<dyn GraphStore>,
    storm: &Storm,
    parallel: usize,
    health: Option<&str>,
) -> Figures {
    let mut state = AppState::new(
        Arc::clone(store),
        ApiConfig {
            token: Some(SecretString::from(TOKEN.to_owned())),
            ..ApiConfig::default()
        },
    );
    if let Some(url) = health {
        let config = deploygraph_canary::prometheus::PrometheusConfig {
            timeout: Duration::from_secs(5),
            ..deploygraph_canary::prometheus::PrometheusConfig::new(url).unwrap()
        };
        let prometheus = deploygraph_canary::prometheus::Prometheus::new(config).unwrap();
        state = state.with_onsets(prometheus, Some(HEALTH_QUERY.to_owned()));
    }
    let stop = CancellationToken::new();
    let pipeline = state.pipeline();
    let workers = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop.cancelled_owned()).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn({
        let stop = stop.clone();
        let router = deploygraph_api::router(state);
        async move {
            deploygraph_api::serve(
                listener,
                router,
                stop.cancelled_owned(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        }
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let mut recorded = Vec::new();
    for d in &storm.deployments {
        let r = client
            .post(format!("{base}/v1/deployments"))
            .bearer_auth(TOKEN)
            .json(d)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let body: Value = r.json().await.unwrap();
        recorded.push(Uid::from_stored(body["uid"].as_str().unwrap()));
    }
    if health.is_some() {
        let n = storm.services.len();
        for (i, service) in storm.services.iter().enumerate() {
            let below: Vec<&String> = [1, 2]
                .into_iter()
                .map(|k| &storm.services[(i + k) % n])
                .filter(|s| *s != service)
                .collect();
            let r = client
                .put(format!("{base}/v1/services/{service}/dependencies"))
                .bearer_auth(TOKEN)
                .json(
                    &json!({"namespace": "prod", "environment": "production", "depends_on": below}),
                )
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    }
    // The deployments' follow-ups out of the way: the storm is the alerts'.
    while store
        .follow_up_stats(Some(&recorded))
        .await
        .unwrap()
        .total()
        > 0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(
        store.get_alert(&storm.alerts[0]).await.unwrap().is_none(),
        "a new storm"
    );
    let storming = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = tokio::spawn({
        let client = client.clone();
        let base = base.clone();
        let storming = Arc::clone(&storming);
        let reads = Arc::clone(&reads);
        let services = storm.services.clone();
        async move {
            let mut latencies = Vec::new();
            let mut i = 0usize;
            while storming.load(Ordering::SeqCst) {
                let service = &services[i % services.len()];
                let path = if i.is_multiple_of(2) {
                    format!("{base}/v1/alerts?service={service}&limit=20")
                } else {
                    format!("{base}/v1/services/{service}/deployments?limit=20")
                };
                i += 1;
                let started = Instant::now();
                let status = client.get(&path).send().await.map(|r| r.status());
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                if status.is_ok_and(|s| s.is_success()) {
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            }
            latencies
        }
    });

    let unavailable = Arc::new(AtomicUsize::new(0));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(parallel));
    let started = Instant::now();
    let mut deliveries = tokio::task::JoinSet::new();
    for body in &storm.notifications {
        let client = client.clone();
        let url = format!("{base}/v1/alerts/alertmanager");
        let body = body.clone();
        let semaphore = Arc::clone(&semaphore);
        let unavailable = Arc::clone(&unavailable);
        deliveries.spawn(async move {
            let _permit = semaphore.acquire_owned().await.unwrap();
            let mut latencies = Vec::new();
            // As Alertmanager: a 5xx is delivered again, after a pause.
            loop {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                let status = response.status();
                if status.is_success() {
                    return latencies;
                }
                assert!(
                    status.is_server_error(),
                    "{status}: {}",
                    response.text().await.unwrap()
                );
                unavailable.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    let mut webhook = Vec::new();
    while let Some(done) = deliveries.join_next().await {
        webhook.extend(done.unwrap());
    }
    let accepted = started.elapsed();
    assert!(
        store.get_alert(&storm.alerts[0]).await.unwrap().is_some(),
        "the storm's alerts are where the benchmark looks for them"
    );
    // First attributions are claimed before the revisits they ask for (older enqueue times):
    // every alert has an answer once none is pending, a final one once no revisit is.
    let mut first = None;
    loop {
        let pending = store.follow_up_stats(Some(&storm.alerts)).await.unwrap();
        if pending.alerts == 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if pending.total() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attributed = started.elapsed();
    let first = first.unwrap_or(attributed);
    storming.store(false, Ordering::SeqCst);
    let mut read_latencies = reader.await.unwrap();
    let exposition = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.cancel();
    workers.await.unwrap();
    server.await.unwrap();
    Figures {
        alerts_per_second: storm.alerts.len() as f64 / accepted.as_secs_f64(),
        webhook_p50_ms: percentile(&mut webhook.clone(), 50.0),
        webhook_p99_ms: percentile(&mut webhook, 99.0),
        first_attributed_after_s: first.as_secs_f64(),
        attributed_after_s: attributed.as_secs_f64(),
        reads: reads.load(Ordering::SeqCst),
        read_p99_ms: percentile(&mut read_latencies, 99.0),
        unavailable: unavailable.load(Ordering::SeqCst),
        health_reads: counter(&exposition, "deploygraph_service_metric_reads_total"),
        health_queries: counter(&exposition, "deploygraph_service_metric_queries_total"),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let alerts = env_usize("BENCH_ALERTS", 5000);
    let notifications = env_usize("BENCH_NOTIFICATIONS", 50);
    let services = env_usize("BENCH_SERVICES", 20);
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "sqlite,neo4j".into());
    let health_url = (std::env::var("BENCH_SERVICE_HEALTH").as_deref() == Ok("1")).then(|| {
        std::env::var("PROMETHEUS_TEST_URL").expect(
            "BENCH_SERVICE_HEALTH=1 reads from PROMETHEUS_TEST_URL: run `scripts/services up prometheus && eval \"$(scripts/services env)\"`",
        )
    });
    let healths: Vec<Option<&str>> = match &health_url {
        Some(url) => vec![None, Some(url.as_str())],
        None => vec![None],
    };
    println!(
        "| store | services' health | delivery | accepted alerts/s | webhook p50 ms | webhook p99 ms | every alert answered after s | every revisit done after s | reads during | read p99 ms | 503s | health readings | range queries sent |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for name in stores.split(',') {
        let (_dir, store) = match name {
            "sqlite" => deploygraph_store::testing::sqlite().await,
            "neo4j" => deploygraph_store::testing::neo4j().await,
            other => panic!("BENCH_STORES: unknown store {other:?}"),
        };
        for &health in &healths {
            for (label, parallel) in [("parallel", notifications), ("sequential (baseline)", 1)] {
                let run = format!("storm{:06x}", rand::random::<u32>() & 0xff_ffff);
                let storm = storm(&run, alerts, notifications, services);
                let f = deliver(&store, &storm, parallel, health).await;
                println!(
                    "| {name} | {} | {label} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.0} | {} | {} | {} |",
                    if health.is_some() { "read" } else { "not read" },
                    f.alerts_per_second,
                    f.webhook_p50_ms,
                    f.webhook_p99_ms,
                    f.first_attributed_after_s,
                    f.attributed_after_s,
                    f.reads,
                    f.read_p99_ms,
                    f.unavailable,
                    f.health_reads,
                    f.health_queries
                );
            }
        }
    }
}
