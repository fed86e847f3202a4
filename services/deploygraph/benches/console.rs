//! Console benchmark: how long headless Chromium (Debian's `chromium`) takes to load a service
//! timeline of 1,000 events from a running `serve` and render it, against the same page with
//! 100 events and with none in the same run, and what a first visit weighs.
//!
//! `cargo bench -p deploygraph --bench console`
//!
//! Each measurement is the wall time of one `chromium --headless=new --dump-dom` run, from start
//! to the printed page (the page is complete when it says so: `data-ready`); the run with no
//! events gives the browser's own start and stop, so "render" is a run's time minus the median
//! empty run's: fetching the timeline from the API and building the page. Seven runs each, the
//! median and the worst reported. Options: `BENCH_RUNS` (7), `BENCH_EVENTS` (1000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let store = format!("sqlite://{}", dir.path().join("bench.db").display());
    let child = Command::new(env!("CARGO_BIN_EXE_deploygraph"))
        .args([
            "serve", "--listen", &listen, "--store", &store, "--token", "bench",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{url}/readyz"))
        .send()
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        child,
        url,
        _dir: dir,
    }
}

/// Records `events` timeline events on `service` within the last 20 hours: four in five
/// deployments (each with a config change), one in five alerts.
fn record(server: &Server, service: &str, events: usize) {
    let client = reqwest::blocking::Client::new();
    let now = chrono::Utc::now();
    let alerts = events / 5;
    let deployments = events - alerts;
    let spread =
        |i: usize, n: usize| now - chrono::Duration::seconds((72_000 * (i + 1) / (n + 1)) as i64);
    for i in 0..deployments {
        let body = json!({
            "service": service, "namespace": "prod", "environment": "production",
            "version": format!("v1.{i}.0"),
            "commit": {"sha": format!("{:040x}", i + 1)},
            "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{i}.0"),
                        "digest": format!("sha256:{:064x}", i + 1)}],
            "changes": [{"path": "values.pool.size", "kind": "value", "before": i.to_string(), "after": (i + 1).to_string()}],
            "status": "succeeded", "started_at": spread(i, deployments).to_rfc3339(),
        });
        let r = client
            .post(format!("{}/v1/deployments", server.url))
            .bearer_auth("bench")
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
    let items: Vec<Value> = (0..alerts)
        .map(|i| {
            json!({"status": "firing",
                   "labels": {"alertname": "BenchErrors", "service": service, "namespace": "prod",
                              "environment": "production", "n": i.to_string()},
                   "annotations": {"summary": format!("errors {i}")},
                   "startsAt": spread(i, alerts).to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z",
                   "generatorURL": "http://prometheus/graph", "fingerprint": format!("{:016x}", events * 100_000 + i + 1)})
        })
        .collect();
    if !items.is_empty() {
        let r = client
            .post(format!("{}/v1/alerts/alertmanager", server.url))
            .bearer_auth("bench")
            .json(&json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
                          "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
                          "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": items}))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
    }
}

/// Waits until the server has no follow-up left (the alerts' attributions run after their
/// webhook is answered): the page is measured on a quiet server. How long that took.
fn settle(server: &Server) -> Duration {
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    loop {
        let text = client
            .get(format!("{}/metrics", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let pending: f64 = text
            .lines()
            .filter(|l| l.contains("follow_ups_pending") || l.contains("follow_ups_queue_depth"))
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum();
        if pending == 0.0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "follow-ups still pending after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One browser run on `url`: its wall time and the rows of the rendered page's table.
fn browse(url: &str) -> (Duration, usize) {
    let profile = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new("/usr/bin/chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("/usr/bin/chromium runs (apt-get install chromium)");
    let took = started.elapsed();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page did not finish: {dom}"
    );
    let rows = dom.matches("<tr>").count().saturating_sub(1);
    (took, rows)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let server = serve();
    let client = reqwest::blocking::Client::new();
    let weight: usize = ["/", "/console/console.js", "/console/console.css"]
        .iter()
        .map(|p| {
            client
                .get(format!("{}{p}", server.url))
                .send()
                .unwrap()
                .bytes()
                .unwrap()
                .len()
        })
        .sum();
    let sizes = [0, events / 10, events];
    let mut medians = Vec::new();
    println!(
        "| events on the timeline | rows rendered | browser run, median / worst | render (minus the empty page's median), median / worst | timeline API alone, median |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let service = format!("bench-{n}");
        record(&server, &service, n);
        if n == 0 {
            // A service whose only deployment is outside the page's range: an empty timeline.
            let r = client
                .post(format!("{}/v1/deployments", server.url))
                .bearer_auth("bench")
                .json(&json!({"service": service, "environment": "production", "status": "succeeded",
                              "commit": {"sha": format!("{:040x}", 7)},
                              "images": [{"repository": "ghcr.io/acme/empty", "digest": format!("sha256:{:064x}", 7)}],
                              "started_at": (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339()}))
                .send()
                .unwrap();
            assert!(r.status().is_success());
        }
        let settled = settle(&server);
        eprintln!(
            "{n} events recorded; follow-ups done {:.1} s later",
            settled.as_secs_f64()
        );
        let url = format!(
            "{}/#/service/{service}?environment=production&range=24h",
            server.url
        );
        let mut times = Vec::new();
        let mut rows = 0;
        browse(&url); // warm the server's caches and the page cache once
        for _ in 0..runs {
            let (took, r) = browse(&url);
            times.push(took);
            rows = r;
        }
        let mut api = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let r = client
                .get(format!(
                    "{}/v1/services/{service}/timeline?environment=production",
                    server.url
                ))
                .send()
                .unwrap();
            assert!(r.status().is_success());
            let _ = r.bytes().unwrap();
            api.push(started.elapsed());
        }
        times.sort();
        api.sort();
        let median = times[times.len() / 2];
        let worst = *times.last().unwrap();
        medians.push(median);
        let empty = medians[0];
        println!(
            "| {n} | {rows} | {:.0} / {:.0} ms | {} | {:.1} ms |",
            millis(median),
            millis(worst),
            if n == 0 {
                "– (the baseline)".to_owned()
            } else {
                format!(
                    "{:.0} / {:.0} ms",
                    millis(median.saturating_sub(empty)),
                    millis(worst.saturating_sub(empty))
                )
            },
            millis(api[api.len() / 2])
        );
        assert!(n == 0 || rows >= n, "{rows} rows for {n} events");
    }
    println!();
    println!(
        "Initial page weight (the page, its script and its style sheet, uncompressed): {weight} bytes ({:.1} KiB; budget 500 KiB).",
        weight as f64 / 1024.0
    );
}
