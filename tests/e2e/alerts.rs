//! Prometheus/Alertmanager end-to-end: the alert flow through the real servers
//! (`PROMETHEUS_TEST_URL`, `ALERTMANAGER_TEST_URL`, started by
//! `scripts/services up prometheus alertmanager`) into `deploygraph serve`.
//!
//! A metrics target inside the test is scraped by Prometheus; a rule on its gauge fires; the
//! alert travels through Alertmanager's webhook (bearer token) to `/v1/alerts/alertmanager`,
//! where deploygraph stores it, attributes it to the deployment that preceded it, deduplicates
//! a retried delivery and records its resolution. Without those servers the test fails: it never
//! skips.
//!
//! The test rewrites both servers' configs (a scrape job and a rule file for Prometheus, its own
//! receiver for Alertmanager) and restores them on drop, panics included.

use crate::support::{Server, digest, sqlite_uri, temp_path, unique};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOKEN: &str = "am-hook-t0ken";
const SERVICE: &str = "payments";
const NAMESPACE: &str = "prod";
const ENVIRONMENT: &str = "production";

/// Tests of this binary that rewrite the Prometheus or Alertmanager config hold this.
pub(crate) static ALERTING: Mutex<()> = Mutex::new(());

pub(crate) fn env_url(var: &str) -> String {
    let url = std::env::var(var).unwrap_or_default();
    assert!(
        !url.is_empty(),
        "{var} is not set: the Prometheus/Alertmanager end-to-end test needs the real servers; \
         run `scripts/services up prometheus alertmanager && eval \"$(scripts/services env)\"`"
    );
    url.trim_end_matches('/').to_owned()
}

pub(crate) fn env_path(var: &str) -> PathBuf {
    let path = std::env::var(var).unwrap_or_default();
    assert!(
        !path.is_empty(),
        "{var} is not set: run `eval \"$(scripts/services env)\"` after \
         `scripts/services up prometheus alertmanager`"
    );
    PathBuf::from(path)
}

/// Every request of this test is bounded.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub(crate) fn require_ready(name: &str, base: &str) {
    let url = format!("{base}/-/ready");
    match client().get(&url).send() {
        Ok(r) if r.status() == 200 => {}
        Ok(r) => panic!(
            "{name} at {base} is not ready: {url} answered {}",
            r.status()
        ),
        Err(e) => panic!(
            "{name} at {base} is down ({e}); start it with \
             `scripts/services up prometheus alertmanager`"
        ),
    }
}

fn get(url: &str) -> (u16, Value) {
    let r = client()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post(url: &str, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `probe` every 200 ms until it returns `Some`; fails with `diagnostics()` after `timeout`.
fn poll<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    diagnostics: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {value}"))
        .with_timezone(&Utc)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 server on a loopback port: one request per connection.
// ---------------------------------------------------------------------------------------------

pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Vec<u8>,
}

type Handler = dyn Fn(&Request) -> (u16, &'static str, Vec<u8>) + Send + Sync;

pub(crate) struct Stub {
    pub(crate) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    pub(crate) fn start(
        handler: impl Fn(&Request) -> (u16, &'static str, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let handler = Arc::clone(&handler);
                    std::thread::spawn(move || {
                        let _ = serve_one(conn, &*handler);
                    });
                }
            })
        };
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_one(mut conn: TcpStream, handler: &Handler) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let (status, content_type, payload) = handler(&Request { method, path, body });
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Status",
    };
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        payload.len()
    )?;
    conn.write_all(&payload)?;
    conn.flush()
}

// ---------------------------------------------------------------------------------------------
// The alerting rig: target, rule, receivers, and the restoration of both servers' configs.
// ---------------------------------------------------------------------------------------------

/// Puts a config file back and reloads its server when dropped.
pub(crate) struct Restore {
    name: &'static str,
    path: PathBuf,
    original: String,
    reload: String,
}

impl Restore {
    pub(crate) fn rewrite(name: &'static str, path: &Path, base: &str, new: &str) -> Self {
        let original = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{name} config {}: {e}", path.display()));
        let restore = Self {
            name,
            path: path.to_owned(),
            original,
            reload: format!("{base}/-/reload"),
        };
        std::fs::write(path, new).unwrap();
        let (status, body) = post(&restore.reload, Vec::new(), None);
        assert_eq!(status, 200, "{name} rejected the config:\n{new}\n{body}");
        restore
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.original) {
            eprintln!(
                "warning: could not restore {} config {}: {e}",
                self.name,
                self.path.display()
            );
            return;
        }
        match client().post(&self.reload).send() {
            Ok(r) if r.status() == 200 => {}
            Ok(r) => eprintln!(
                "warning: {} reload after restore: {}",
                self.name,
                r.status()
            ),
            Err(e) => eprintln!("warning: {} reload after restore: {e}", self.name),
        }
    }
}

/// The Prometheus config with `rules` added to `rule_files` and a scrape job for `target`.
pub(crate) fn prometheus_config(original: &str, job: &str, target: &str, rules: &Path) -> String {
    let rule_file = format!("  - '{}'\n", rules.display());
    let scrape_job =
        format!("  - job_name: '{job}'\n    static_configs:\n      - targets: ['{target}']\n");
    let (mut saw_rules, mut saw_scrape) = (false, false);
    let mut out = String::new();
    for line in original.lines() {
        out.push_str(line);
        out.push('\n');
        match line.trim_end() {
            "rule_files:" => {
                out.push_str(&rule_file);
                saw_rules = true;
            }
            "scrape_configs:" => {
                out.push_str(&scrape_job);
                saw_scrape = true;
            }
            _ => {}
        }
    }
    if !saw_rules {
        out.push_str("rule_files:\n");
        out.push_str(&rule_file);
    }
    if !saw_scrape {
        out.push_str("scrape_configs:\n");
        out.push_str(&scrape_job);
    }
    out
}

/// A gauge `payments_errors` Prometheus scrapes from the test, a rule that fires while it is
/// above 0, and Alertmanager delivering that alert to `webhook` (with a bearer token) and to a
/// receiver of the test that keeps every body it gets.
struct Rig {
    // Dropped first: Prometheus stops alerting before Alertmanager gets its config back.
    _prometheus_config: Restore,
    _alertmanager_config: Restore,
    alertname: String,
    job: String,
    prometheus: String,
    alertmanager: String,
    value: Arc<AtomicU64>,
    captured: Arc<Mutex<Vec<String>>>,
    _target: Stub,
    _capture: Stub,
    // Released last.
    _lock: MutexGuard<'static, ()>,
}

impl Rig {
    fn start(webhook: &str, token: &str) -> Self {
        Self::start_holding(webhook, token, "0s")
    }

    /// [`Rig::start`] with the rule's `for:` set to `hold`.
    fn start_holding(webhook: &str, token: &str, hold: &str) -> Self {
        Self::start_as(webhook, token, hold, &unique("e2e"))
    }

    /// The job (the scrape target's `job` label) of a rig started with `suffix`.
    fn job_of(suffix: &str) -> String {
        format!("deploygraph-{suffix}")
    }

    /// [`Rig::start_holding`] with `suffix` naming its rule, job ([`Rig::job_of`]) and receiver.
    fn start_as(webhook: &str, token: &str, hold: &str, suffix: &str) -> Self {
        let prometheus = env_url("PROMETHEUS_TEST_URL");
        let alertmanager = env_url("ALERTMANAGER_TEST_URL");
        let prometheus_file = env_path("PROMETHEUS_TEST_CONFIG");
        let alertmanager_file = env_path("ALERTMANAGER_TEST_CONFIG");
        require_ready("Prometheus", &prometheus);
        require_ready("Alertmanager", &alertmanager);
        let lock = ALERTING.lock().unwrap_or_else(PoisonError::into_inner);

        let value = Arc::new(AtomicU64::new(0));
        let target = {
            let value = Arc::clone(&value);
            Stub::start(move |r| {
                if r.method == "GET" && r.path.starts_with("/metrics") {
                    let body = format!(
                        "# HELP payments_errors Errors seen by payments.\n\
                         # TYPE payments_errors gauge\npayments_errors {}\n",
                        value.load(Ordering::SeqCst)
                    );
                    (200, "text/plain; version=0.0.4", body.into_bytes())
                } else {
                    (404, "text/plain", b"not found\n".to_vec())
                }
            })
        };
        let captured = Arc::new(Mutex::new(Vec::new()));
        let capture = {
            let captured = Arc::clone(&captured);
            Stub::start(move |r| {
                if r.method == "POST" {
                    captured
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(String::from_utf8_lossy(&r.body).into_owned());
                }
                (200, "text/plain", Vec::new())
            })
        };

        let alertname = format!("PaymentsErrors_{}", suffix.replace('-', "_"));
        let job = Self::job_of(suffix);
        // Alertmanager's notification log is per receiver name: a fresh name keeps the
        // resolutions of earlier runs' alerts away from this run's receivers.
        let receiver = format!("deploygraph-{suffix}");

        // Alertmanager first, so the alert finds its receivers.
        let am_config = [
            "# written by deploygraph's tests/e2e/alerts.rs; restored when the test ends"
                .to_owned(),
            "route:".to_owned(),
            format!("  receiver: '{receiver}'"),
            "  group_by: ['alertname']".to_owned(),
            "  group_wait: 1s".to_owned(),
            "  group_interval: 1s".to_owned(),
            "  repeat_interval: 1m".to_owned(),
            "receivers:".to_owned(),
            format!("  - name: '{receiver}'"),
            "    webhook_configs:".to_owned(),
            format!("      - url: '{webhook}'"),
            "        send_resolved: true".to_owned(),
            "        http_config:".to_owned(),
            "          authorization:".to_owned(),
            "            type: Bearer".to_owned(),
            format!("            credentials: '{token}'"),
            format!("      - url: '{}'", capture.url("/capture")),
            "        send_resolved: true".to_owned(),
        ]
        .join("\n");
        let alertmanager_restore = Restore::rewrite(
            "Alertmanager",
            &alertmanager_file,
            &alertmanager,
            &am_config,
        );

        let rules = temp_path("rules.yml");
        let rule = [
            "groups:".to_owned(),
            format!("  - name: '{job}'"),
            "    rules:".to_owned(),
            format!("      - alert: '{alertname}'"),
            format!("        expr: 'payments_errors{{job=\"{job}\"}} > 0'"),
            format!("        for: {hold}"),
            "        labels:".to_owned(),
            format!("          service: {SERVICE}"),
            format!("          namespace: {NAMESPACE}"),
            format!("          environment: {ENVIRONMENT}"),
            "          severity: critical".to_owned(),
            "          type: error-rate".to_owned(),
            "        annotations:".to_owned(),
            "          summary: 'payments is returning errors'".to_owned(),
        ]
        .join("\n");
        std::fs::write(&rules, rule).unwrap();
        let original = std::fs::read_to_string(&prometheus_file)
            .unwrap_or_else(|e| panic!("Prometheus config {}: {e}", prometheus_file.display()));
        let new = prometheus_config(&original, &job, &target.addr.to_string(), &rules);
        let prometheus_restore =
            Restore::rewrite("Prometheus", &prometheus_file, &prometheus, &new);

        Self {
            _prometheus_config: prometheus_restore,
            _alertmanager_config: alertmanager_restore,
            alertname,
            job,
            prometheus,
            alertmanager,
            value,
            captured,
            _target: target,
            _capture: capture,
            _lock: lock,
        }
    }

    fn set(&self, value: u64) {
        self.value.store(value, Ordering::SeqCst);
    }

    /// Waits until Prometheus has scraped `value` from the target.
    fn wait_scraped(&self, value: u64, timeout: Duration) {
        let query = format!("payments_errors{{job=\"{}\"}}", self.job);
        let url = format!("{}/api/v1/query", self.prometheus);
        let want = value.to_string();
        poll(
            &format!("Prometheus scrapes {query} = {value}"),
            timeout,
            || {
                let r = client().get(&url).query(&[("query", &query)]).send().ok()?;
                let body: Value = r.json().ok()?;
                (body["data"]["result"][0]["value"][1] == want.as_str()).then_some(())
            },
            || self.diagnostics(),
        );
    }

    /// Our alert in a webhook body.
    fn ours(&self, body: &Value) -> Value {
        body["alerts"]
            .as_array()
            .and_then(|alerts| {
                alerts
                    .iter()
                    .find(|a| a["labels"]["alertname"] == self.alertname.as_str())
            })
            .unwrap_or_else(|| panic!("no {} in {body}", self.alertname))
            .clone()
    }

    /// The first body the capturing receiver got with our alert in `status`: raw and parsed.
    fn delivered(&self, status: &str) -> Option<(String, Value)> {
        let captured = self.captured.lock().unwrap_or_else(PoisonError::into_inner);
        captured.iter().find_map(|raw| {
            let body: Value = serde_json::from_str(raw).ok()?;
            let ours = body["alerts"].as_array()?.iter().any(|a| {
                a["labels"]["alertname"] == self.alertname.as_str() && a["status"] == status
            });
            (ours && body["status"] == status).then(|| (raw.clone(), body))
        })
    }

    /// Waits until Alertmanager has delivered our alert in `status` to the capturing receiver.
    fn wait_delivered(&self, status: &str, timeout: Duration) -> (String, Value) {
        poll(
            &format!("Alertmanager delivers {} {status}", self.alertname),
            timeout,
            || self.delivered(status),
            || self.diagnostics(),
        )
    }

    fn diagnostics(&self) -> String {
        let fetch = |url: String| match client().get(&url).send() {
            Ok(r) => format!("{url} -> {}: {}", r.status(), r.text().unwrap_or_default()),
            Err(e) => format!("{url} -> {e}"),
        };
        let bodies = self
            .captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let am_log = std::env::var("DEPLOYGRAPH_TEST_STATE")
            .ok()
            .and_then(|s| {
                std::fs::read_to_string(Path::new(&s).join("alertmanager/alertmanager.log")).ok()
            })
            .map(|log| {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .unwrap_or_default();
        format!(
            "gauge: {}\n{}\n{}\n{}\ncaptured webhook bodies ({}):\n{}\n\
             Alertmanager log tail:\n{am_log}",
            self.value.load(Ordering::SeqCst),
            fetch(format!(
                "{}/api/v1/query?query=payments_errors",
                self.prometheus
            )),
            fetch(format!("{}/api/v1/alerts", self.prometheus)),
            fetch(format!("{}/api/v2/alerts", self.alertmanager)),
            bodies.len(),
            bodies.join("\n"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// Records a succeeded deployment of `service` that started at `started_at` and took a minute.
fn record_deployment(
    server: &Server,
    service: &str,
    version: &str,
    seed: u32,
    started_at: DateTime<Utc>,
) -> Value {
    let body = json!({
        "service": service, "namespace": NAMESPACE, "environment": ENVIRONMENT, "version": version,
        "commit": {"sha": format!("{seed:040x}"), "repo": format!("github.com/acme/{service}")},
        "images": [{
            "repository": format!("ghcr.io/acme/{service}"), "tag": version, "digest": digest(seed)
        }],
        "status": "succeeded",
        "started_at": rfc3339(started_at),
        "finished_at": rfc3339(started_at + chrono::Duration::minutes(1)),
        "changes": [{"path": "values.errorBudget", "kind": "value", "before": "5", "after": "50"}]
    });
    let (status, created) = post(
        &format!("{}/v1/deployments", server.url),
        serde_json::to_vec(&body).unwrap(),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{created}");
    created
}

/// Our alert among `GET /v1/alerts?service=payments`, all items with its fingerprint.
fn stored_alerts(server: &Server, fingerprint: &str) -> (u16, Vec<Value>) {
    let (status, page) = get(&format!(
        "{}/v1/alerts?service={SERVICE}&limit=100",
        server.url
    ));
    let items = page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|a| a["fingerprint"] == fingerprint)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    (status, items)
}

#[test]
fn prometheus_alertmanager_alert_is_attributed_deduplicated_and_resolved() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.1?}] {what}", started.elapsed());

    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let now = Utc::now();
    // The release before, outside the attribution window: what the older suspect changed is
    // known (a first recorded deployment has nothing to compare with).
    record_deployment(
        &server,
        SERVICE,
        "v2.2.0",
        220,
        now - chrono::Duration::hours(7),
    );
    let older = record_deployment(
        &server,
        SERVICE,
        "v2.3.0",
        230,
        // Well apart from the suspect: the test reads the pipeline, not a near tie of the model.
        now - chrono::Duration::minutes(120),
    );
    let unrelated = record_deployment(
        &server,
        "ledger",
        "v7.0.0",
        700,
        now - chrono::Duration::minutes(3),
    );
    let suspect = record_deployment(
        &server,
        SERVICE,
        "v2.4.0",
        240,
        now - chrono::Duration::minutes(5),
    );
    let suspect_uid = suspect["uid"].as_str().unwrap().to_owned();
    phase("deploygraph serves, deployments recorded");

    let rig = Rig::start(&format!("{}/v1/alerts/alertmanager", server.url), TOKEN);
    phase("Prometheus and Alertmanager reconfigured");
    let diagnostics = || format!("{}\ndeploygraph log:\n{}", rig.diagnostics(), server.logs());
    rig.wait_scraped(0, Duration::from_secs(15));
    phase("Prometheus scrapes the target");

    // The gauge flips: the rule fires and Alertmanager delivers it.
    rig.set(1);
    let (firing_raw, firing) = rig.wait_delivered("firing", Duration::from_secs(30));
    phase("Alertmanager delivered the firing alert");
    assert_eq!(firing["version"], "4", "{firing}");
    let sent = rig.ours(&firing);
    assert_eq!(sent["endsAt"], "0001-01-01T00:00:00Z", "{sent}");
    let fingerprint = sent["fingerprint"].as_str().unwrap().to_owned();
    let starts_at = time(&sent["startsAt"]);

    let alert = poll(
        "deploygraph stores the alert Alertmanager delivered",
        Duration::from_secs(30),
        || stored_alerts(&server, &fingerprint).1.into_iter().next(),
        diagnostics,
    );
    phase("deploygraph stored the alert");
    assert_eq!(alert["name"], rig.alertname.as_str(), "{alert}");
    assert_eq!(alert["type"], "error-rate", "{alert}");
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(time(&alert["starts_at"]), starts_at, "{alert}");
    assert!(alert["ends_at"].is_null(), "{alert}");
    assert_eq!(alert["service"], SERVICE, "{alert}");
    assert_eq!(alert["namespace"], NAMESPACE, "{alert}");
    assert_eq!(alert["environment"], ENVIRONMENT, "{alert}");
    assert_eq!(alert["labels"], sent["labels"], "{alert}");
    assert_eq!(alert["summary"], "payments is returning errors", "{alert}");
    assert_eq!(alert["generator_url"], sent["generatorURL"], "{alert}");

    // Attribution: the payments deployment 5 minutes before the alert, ahead of the one 2
    // hours before; the other service's deployment is no suspect.
    let (status, suspects) = crate::support::settled_suspects(&server.url, &fingerprint);
    assert_eq!(status, 200, "{suspects}");
    assert_eq!(suspects["alert"]["uid"], alert["uid"], "{suspects}");
    assert!(suspects["chaos"].is_null(), "{suspects}");
    let ranked = suspects["suspects"].as_array().unwrap();
    assert!(!ranked.is_empty(), "{suspects}");
    let (status, stored_suspect) = get(&format!("{}/v1/deployments/{suspect_uid}", server.url));
    assert_eq!(status, 200, "{stored_suspect}");
    assert_eq!(ranked[0]["deployment"], stored_suspect, "{suspects}");
    let scores: Vec<f64> = ranked
        .iter()
        .map(|s| s["confidence_score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] > 0.0 && scores[0] <= 1.0, "{suspects}");
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked highest first: {scores:?}"
    );
    for s in ranked {
        let reasons = s["reasons"].as_array().unwrap();
        assert!(
            !reasons.is_empty() && reasons.iter().all(|r| !r.as_str().unwrap().is_empty()),
            "{s}"
        );
        time(&s["computed_at"]);
        assert_ne!(s["deployment"]["uid"], unrelated["uid"], "{suspects}");
    }
    if let Some(pos) = ranked
        .iter()
        .position(|s| s["deployment"]["uid"] == older["uid"])
    {
        assert!(pos > 0 && scores[pos] < scores[0], "{suspects}");
    }

    // A retried delivery is stored once: Alertmanager's exact body again.
    let hook = format!("{}/v1/alerts/alertmanager", server.url);
    let (status, body) = post(&hook, firing_raw.clone().into_bytes(), None);
    assert_eq!(status, 401, "the webhook needs the bearer token: {body}");
    let (status, body) = post(&hook, firing_raw.into_bytes(), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["received"], 1, "{body}");
    assert_eq!(body["created"], 0, "{body}");
    assert_eq!(body["updated"], 0, "{body}");
    assert_eq!(body["unchanged"], 1, "{body}");
    assert_eq!(body["alerts"][0]["outcome"], "unchanged", "{body}");
    assert_eq!(
        body["alerts"][0]["fingerprint"],
        fingerprint.as_str(),
        "{body}"
    );
    assert_eq!(body["alerts"][0]["uid"], alert["uid"], "{body}");
    assert_eq!(body["alerts"][0]["service"], SERVICE, "{body}");
    let (status, same) = stored_alerts(&server, &fingerprint);
    assert_eq!(status, 200);
    assert_eq!(same.len(), 1, "one alert per fingerprint: {same:?}");
    phase("a retried delivery was unchanged");

    // The gauge flips back: Alertmanager sends the resolution, deploygraph records it.
    rig.set(0);
    rig.wait_delivered("resolved", Duration::from_secs(30));
    phase("Alertmanager delivered the resolution");
    let resolved = poll(
        "deploygraph records the resolution",
        Duration::from_secs(30),
        || {
            stored_alerts(&server, &fingerprint)
                .1
                .into_iter()
                .find(|a| a["status"] == "resolved" && !a["ends_at"].is_null())
        },
        diagnostics,
    );
    phase("deploygraph recorded the resolution");
    assert_eq!(resolved["uid"], alert["uid"], "{resolved}");
    assert!(time(&resolved["ends_at"]) >= starts_at, "{resolved}");
    let (_, same) = stored_alerts(&server, &fingerprint);
    assert_eq!(same.len(), 1, "still one alert: {same:?}");
    drop(rig);
    phase("configs restored");
}

/// With `--prometheus`, the alert's rule expression (`payments_errors{job=…} > 0`, from the
/// `generatorURL` Alertmanager delivers) is read without its comparison from the real
/// Prometheus: the gauge's step from 0 to 5 is the alert's metric onset, stored on the alert,
/// counted, and named in the suspects' reasons (before the `for:` hold made the alert fire).
#[test]
fn alert_metric_onset_is_read_from_prometheus() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    // Services' health: payments' is the rig's error gauge, ledger's the target's `up` (steady),
    // vault has none. Each series is picked by the service's name, namespace and cluster, so the
    // template's three placeholders are all filled.
    let suffix = unique("e2e");
    let job = Rig::job_of(&suffix);
    let health = format!(
        "(label_replace(payments_errors{{job=\"{job}\"}}, \"svc\", \"payments/{NAMESPACE}@default\", \"\", \"\") \
         or label_replace(up{{job=\"{job}\"}}, \"svc\", \"ledger/{NAMESPACE}@default\", \"\", \"\")) \
         and on(svc) label_replace(vector(1), \"svc\", \"$service/$namespace@$cluster\", \"\", \"\")"
    );
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            TOKEN,
            "--prometheus",
            &prometheus,
            "--service-health-query",
            &health,
            "--attribution-window",
            "3m",
        ],
    );
    let rig = Rig::start_as(
        &format!("{}/v1/alerts/alertmanager", server.url),
        TOKEN,
        "8s",
        &suffix,
    );
    let diagnostics = || format!("{}\ndeploygraph log:\n{}", rig.diagnostics(), server.logs());
    let response = crate::support::http()
        .put(format!("{}/v1/services/{SERVICE}/dependencies", server.url))
        .bearer_auth(TOKEN)
        .json(&json!({"namespace": NAMESPACE, "environment": ENVIRONMENT, "depends_on": ["ledger", "vault"]}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    rig.wait_scraped(0, Duration::from_secs(15));
    // Some seconds of the level before the step.
    std::thread::sleep(Duration::from_secs(8));
    let earlier = record_deployment(
        &server,
        SERVICE,
        "v3.0.0",
        300,
        Utc::now() - chrono::Duration::minutes(2),
    );
    let culprit = record_deployment(&server, SERVICE, "v3.1.0", 310, Utc::now());
    let stepped = Utc::now();
    rig.set(5);
    let (_, firing) = rig.wait_delivered("firing", Duration::from_secs(40));
    let sent = rig.ours(&firing);
    let fingerprint = sent["fingerprint"].as_str().unwrap().to_owned();
    let (status, suspects) = crate::support::settled_suspects(&server.url, &fingerprint);
    assert_eq!(status, 200, "{suspects}\n{}", diagnostics());

    let alert = poll(
        "deploygraph stores the alert with its onset",
        Duration::from_secs(30),
        || {
            stored_alerts(&server, &fingerprint)
                .1
                .into_iter()
                .find(|a| !a["onset"].is_null())
        },
        diagnostics,
    );
    let onset = &alert["onset"];
    assert_eq!(onset["outcome"], "found", "{alert}\n{}", diagnostics());
    let at = time(&onset["at"]);
    let off = (at - stepped).num_milliseconds().abs();
    assert!(
        off <= 3_000,
        "onset {at} is {off} ms from the step at {stepped}: {alert}"
    );
    assert!(at < time(&alert["starts_at"]), "{alert}");
    assert_eq!(
        onset["query"],
        format!("payments_errors{{job=\"{}\"}}", rig.job)
    );
    assert!(onset["before"].as_f64().unwrap().abs() < 0.5, "{alert}");
    assert!(
        (onset["at_alert"].as_f64().unwrap() - 5.0).abs() < 0.5,
        "{alert}"
    );

    // The reasons say how each suspect stands to the onset.
    let reasons_of = |uid: &Value| -> Vec<String> {
        suspects["suspects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["deployment"]["uid"] == *uid)
            .unwrap_or_else(|| panic!("{uid} is a suspect: {suspects}"))["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let culprit_reasons = reasons_of(&culprit["uid"]);
    assert!(
        culprit_reasons
            .iter()
            .any(|r| r.starts_with("started as the alert's metric `payments_errors")),
        "{culprit_reasons:?}"
    );
    let earlier_reasons = reasons_of(&earlier["uid"]);
    assert!(
        earlier_reasons
            .iter()
            .any(|r| r.starts_with("started 2 min (finished 1 min) before the alert's metric")),
        "{earlier_reasons:?}"
    );
    // The services' health metrics: payments' rose with the step, ledger's stayed steady, vault
    // has none.
    let alert = poll(
        "deploygraph stores the services' health metrics",
        Duration::from_secs(30),
        || {
            stored_alerts(&server, &fingerprint)
                .1
                .into_iter()
                .find(|a| !a["service_metrics"].is_null())
        },
        diagnostics,
    );
    let services = &alert["service_metrics"];
    assert_eq!(services["payments"]["outcome"], "moved", "{alert}");
    let rose = time(&services["payments"]["at"]);
    let off = (rose - stepped).num_milliseconds().abs();
    assert!(
        off <= 3_000,
        "payments rose at {rose}, {off} ms from the step: {alert}"
    );
    assert_eq!(services["ledger"]["outcome"], "steady", "{alert}");
    assert_eq!(services["vault"]["outcome"], "no_series", "{alert}");
    // A second alert on payments from the same moment (another rule of one evaluation, as in
    // a storm): its services' readings are the first one's, reused without a query.
    let second = unique("fp");
    let mut labels = sent["labels"].clone();
    labels["alertname"] = json!("PaymentsLatency");
    let response = crate::support::http()
        .post(format!("{}/v1/alerts/alertmanager", server.url))
        .bearer_auth(TOKEN)
        .json(
            &json!({"version": "4", "status": "firing", "receiver": "deploygraph",
                      "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                      "externalURL": "http://am", "groupKey": "g", "truncatedAlerts": 0,
                      "alerts": [{"status": "firing", "fingerprint": second, "labels": labels,
                                  "annotations": {}, "startsAt": sent["startsAt"],
                                  "endsAt": "0001-01-01T00:00:00Z"}]}),
        )
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let again = poll(
        "deploygraph stores the second alert's services' health metrics",
        Duration::from_secs(30),
        || {
            stored_alerts(&server, &second)
                .1
                .into_iter()
                .find(|a| !a["service_metrics"].is_null())
        },
        diagnostics,
    );
    assert_eq!(again["service_metrics"], *services, "{again}");
    assert!(
        culprit_reasons.iter().any(|r| r
            .starts_with("the health metric of payments began to rise at")
            && r.ends_with(", as it started")),
        "{culprit_reasons:?}"
    );
    assert!(
        earlier_reasons.iter().any(|r| r
            .starts_with("the health metric of payments began to rise at")
            && r.ends_with(", 1 min after it finished")),
        "{earlier_reasons:?}"
    );
    // The incident report names it.
    let (status, report) = get(&format!(
        "{}/v1/reports/incident?alert={fingerprint}",
        server.url
    ));
    assert_eq!(status, 200, "{report}");
    let report = report.as_str().unwrap_or_default();
    assert!(
        report.contains("| Metric onset | `payments_errors{"),
        "{report}"
    );
    assert!(
        report.contains("| Services' health | payments rose at ")
            && report.contains("; steady: ledger |"),
        "{report}"
    );
    let (_, metrics) = get(&format!("{}/metrics", server.url));
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("deploygraph_alert_onsets_total{outcome=\"found\"} 1"),
        "{metrics}"
    );
    for outcome in ["moved", "steady", "no_series"] {
        assert!(
            metrics.contains(&format!(
                "deploygraph_service_metric_reads_total{{outcome=\"{outcome}\"}} 2"
            )),
            "{metrics}"
        );
    }
    // Three services read for two alerts, three queries sent.
    assert!(
        metrics.contains("deploygraph_service_metric_queries_total 3"),
        "{metrics}"
    );
    drop(rig);
}

/// An alert whose rule fires as its metric moves (no `for:`) is attributed moments after the
/// step, before Prometheus holds the points after it: its onset is not there yet. The pipeline
/// defers a revisit of the alert (a minute later by default) instead of leaving the onset
/// unread; the revisit reads the real Prometheus again, finds the step and re-attributes.
#[test]
fn an_onset_not_there_yet_is_read_again_by_a_deferred_revisit() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            TOKEN,
            "--prometheus",
            &prometheus,
            "--attribution-window",
            "3m",
        ],
    );
    // The rig's own rule holds for ten minutes, so it never fires here: the alert is posted
    // the moment the gauge steps, as a rule without `for:` would fire it. Alertmanager's
    // webhook goes nowhere, so alerts it still holds from earlier tests do not reach this
    // server (their revisits would move the gauges read below).
    let rig = Rig::start_holding("http://127.0.0.1:9/unused", TOKEN, "10m");
    let diagnostics = || format!("{}\ndeploygraph log:\n{}", rig.diagnostics(), server.logs());
    rig.wait_scraped(0, Duration::from_secs(15));
    // Some seconds of the level before the step.
    std::thread::sleep(Duration::from_secs(8));
    let culprit = record_deployment(&server, SERVICE, "v4.0.0", 410, Utc::now());
    let stepped = Utc::now();
    rig.set(5);
    let fingerprint = unique("late");
    let expression = format!("payments_errors{{job=\"{}\"}} > 0", rig.job);
    let generator = reqwest::Url::parse_with_params(
        &format!("{prometheus}/graph"),
        &[("g0.expr", expression.as_str()), ("g0.tab", "1")],
    )
    .unwrap();
    let response = crate::support::http()
        .post(format!("{}/v1/alerts/alertmanager", server.url))
        .bearer_auth(TOKEN)
        .json(
            &json!({"version": "4", "status": "firing", "receiver": "deploygraph",
                      "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                      "externalURL": "http://am", "groupKey": "g", "truncatedAlerts": 0,
                      "alerts": [{"status": "firing", "fingerprint": fingerprint,
                                  "labels": {"alertname": "PaymentsErrorsLate", "service": SERVICE,
                                             "namespace": NAMESPACE, "environment": ENVIRONMENT,
                                             "job": rig.job},
                                  "annotations": {},
                                  "startsAt": stepped.to_rfc3339_opts(SecondsFormat::Millis, true),
                                  "endsAt": "0001-01-01T00:00:00Z",
                                  "generatorURL": generator.as_str()}]}),
        )
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", diagnostics());
    let (status, first) = crate::support::settled_suspects(&server.url, &fingerprint);
    assert_eq!(status, 200, "{first}\n{}", diagnostics());

    // The first attribution: no break yet, the onset left unread and a revisit deferred.
    let counters = || get(&format!("{}/metrics", server.url)).1;
    let deferred = poll(
        "the first read finds no break yet and defers a revisit",
        Duration::from_secs(20),
        || {
            let metrics = counters();
            let text = metrics.as_str().unwrap_or_default().to_owned();
            (text.contains("deploygraph_alert_onsets_total{outcome=\"too_early\"} 1")
                && text.contains("deploygraph_follow_ups_deferred 1"))
            .then_some(text)
        },
        diagnostics,
    );
    assert!(
        !deferred.contains("deploygraph_alert_onsets_total{outcome=\"found\"}"),
        "{deferred}"
    );
    let (_, alerts) = stored_alerts(&server, &fingerprint);
    let alert = alerts
        .iter()
        .find(|a| a["fingerprint"] == fingerprint.as_str())
        .unwrap_or_else(|| panic!("the alert is stored: {alerts:?}"));
    assert!(alert["onset"].is_null(), "{alert}");

    // The deferred revisit, a minute later, reads the step.
    let alert = poll(
        "the deferred revisit reads the onset",
        Duration::from_secs(150),
        || {
            stored_alerts(&server, &fingerprint)
                .1
                .into_iter()
                .find(|a| a["fingerprint"] == fingerprint.as_str() && !a["onset"].is_null())
        },
        diagnostics,
    );
    let onset = &alert["onset"];
    assert_eq!(onset["outcome"], "found", "{alert}\n{}", diagnostics());
    let off = (time(&onset["at"]) - stepped).num_milliseconds().abs();
    assert!(
        off <= 3_000,
        "onset {onset} is {off} ms from the step at {stepped}"
    );
    // The culprit's reasons now place it against the onset.
    let suspects = poll(
        "the revisit's answer names the onset",
        Duration::from_secs(30),
        || {
            let (status, body) = get(&format!("{}/v1/alerts/{fingerprint}/suspects", server.url));
            let named = status == 200
                && body["suspects"].as_array().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["deployment"]["uid"] == culprit["uid"]
                            && s["reasons"].as_array().is_some_and(|r| {
                                r.iter().any(|r| {
                                    r.as_str().is_some_and(|r| r.contains("the alert's metric"))
                                })
                            })
                    })
                });
            named.then_some(body)
        },
        diagnostics,
    );
    assert!(suspects["suspects"].as_array().is_some(), "{suspects}");
    let metrics = counters();
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("deploygraph_alerts_received_total{outcome=\"created\"} 1")
            && metrics.contains("deploygraph_alert_onsets_total{outcome=\"found\"} 1")
            && metrics.contains("deploygraph_follow_ups_deferred 0"),
        "{metrics}"
    );
    drop(rig);
}
