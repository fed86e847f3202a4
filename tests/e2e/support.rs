//! Running the binary: a server on a free loopback port, CLI invocations, shared Neo4j access.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

/// Tests that use the shared Neo4j server hold a read guard; the outage test, which stops the
/// server, holds the write guard.
pub static NEO4J: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_deploygraph")
}

pub fn neo4j_uri() -> String {
    std::env::var("NEO4J_TEST_URI").expect(
        "NEO4J_TEST_URI is not set: the end-to-end tests need a real Neo4j; run scripts/test \
         (or `scripts/services up neo4j && eval \"$(scripts/services env)\"`)",
    )
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Temporary directories of this test process, removed when it exits.
static DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

pub fn temp_path(name: &str) -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    DIRS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir);
    path
}

pub fn sqlite_uri() -> String {
    format!("sqlite://{}", temp_path("store.db").display())
}

pub fn digest(seed: u32) -> String {
    format!("sha256:{seed:064x}")
}

/// `record deployment --server URL --service S --environment production --commit abcdef1
/// --image ghcr.io/acme/payments@<digest of seed> --status STATUS`, then `extra`.
pub fn record_args(
    server: &str,
    service: &str,
    seed: u32,
    status: &str,
    extra: &[&str],
) -> Vec<String> {
    let image = format!("ghcr.io/acme/payments@{}", digest(seed));
    let mut args: Vec<String> = [
        "record",
        "deployment",
        "--server",
        server,
        "--service",
        service,
        "--environment",
        "production",
        "--commit",
        "abcdef1",
        "--image",
        &image,
        "--status",
        status,
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// Runs the CLI to completion.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("DEPLOYGRAPH_STORE")
        .env_remove("DEPLOYGRAPH_TOKEN")
        .env_remove("DEPLOYGRAPH_SERVER")
        .output()
        .unwrap()
}

/// Runs the CLI, which must succeed (else the test fails with its exit code and standard
/// error); its standard output.
pub fn succeeded<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = run(args);
    let line: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        out.status.success(),
        "deploygraph {} exited {:?}\n{}",
        line.join(" "),
        out.status.code(),
        stderr(&out)
    );
    stdout(&out)
}

/// Owned copies of `args`, to extend a command line.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// `t` as the API writes times: RFC 3339, whole seconds, `Z`.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An Alertmanager notification (webhook version 4) of one firing alert `name` on `service` in
/// prod/production, with `summary` as its annotation when given.
pub fn firing(
    name: &str,
    fingerprint: &str,
    service: &str,
    starts_at: chrono::DateTime<chrono::Utc>,
    summary: Option<&str>,
) -> serde_json::Value {
    let labels = serde_json::json!({"alertname": name, "service": service, "namespace": "prod",
                                    "environment": "production", "severity": "critical"});
    let annotations = summary.map_or_else(
        || serde_json::json!({}),
        |s| serde_json::json!({"summary": s}),
    );
    serde_json::json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"), "truncatedAlerts": 0,
        "status": "firing", "receiver": "deploygraph", "groupLabels": {"alertname": name},
        "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                    "startsAt": rfc3339(starts_at), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `deploygraph serve`, stopped with SIGTERM on drop.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(store: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "serve",
            "--listen",
            &listen,
            "--store",
            store,
            "--log-format",
            "json",
        ];
        args.extend_from_slice(extra);
        let mut command = Command::new(bin());
        command.args(&args).env_remove("DEPLOYGRAPH_TOKEN");
        Self::spawn(command, &listen)
    }

    /// Runs `command` (its output in a log of its own) and waits for `/healthz` on `listen`.
    fn spawn(mut command: Command, listen: &str) -> Self {
        let log = temp_path("serve.log");
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Self {
            child: Some(child),
            url: format!("http://{listen}"),
            log,
        };
        server.wait_for("/healthz", Duration::from_secs(30));
        server
    }

    /// `deploygraph ARGS` with exactly this environment (besides `PATH`), listening on `listen`
    /// (as its environment says): a server configured as a deployment manifest configures it.
    pub fn start_configured(args: &[String], env: &[(String, String)], listen: &str) -> Self {
        let mut command = Command::new(bin());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)));
        Self::spawn(command, listen)
    }

    /// Polls `path` until it answers 200, bounded by `timeout`.
    pub fn wait_for(&self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("{}{path}", self.url);
        loop {
            if let Ok(r) = http().get(&url).send()
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} not 200 within {timeout:?}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("server did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking HTTP client for the tests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs JSON and returns the status, `Retry-After` and body.
pub fn post_json(url: &str, body: &Value, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = http().post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send() {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, retry, r.json().unwrap_or(Value::Null))
        }
        Err(e) => panic!("request to {url} failed: {e}"),
    }
}

/// `GET {server}/v1/alerts/{fingerprint}/suspects` once the server's follow-up workers have
/// attributed the alert (its answer no longer says `attribution_pending`); at most 30 s.
pub fn settled_suspects(server: &str, fingerprint: &str) -> (u16, Value) {
    let url = format!("{server}/v1/alerts/{fingerprint}/suspects");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get_json(&url);
        if status != 200 || body["attribution_pending"] != Value::Bool(true) {
            return (status, body);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the attribution of {fingerprint} is still pending after 30 s: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GETs JSON.
pub fn get_json(url: &str) -> (u16, Value) {
    let r = http().get(url).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

pub fn deployment(service: &str, minute: u32, seed: u32) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production", "version": format!("v1.{minute}"),
        "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8", "repo": "github.com/acme/payments"},
        "images": [{"repository": "ghcr.io/acme/payments", "tag": "v1", "digest": digest(seed)}],
        "status": "succeeded",
        "started_at": format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + minute / 1440, (minute / 60) % 24, minute % 60),
        "changes": [{"path": "values.redis.password", "kind": "value", "before": "old-secret", "after": "new-secret"}]
    })
}

/// Creates the namespace `name` with `labels` in the test API server.
pub fn create_namespace(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    name: &str,
    labels: Value,
) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    let namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    runtime
        .block_on(namespaces.create(&kube::api::PostParams::default(), &namespace))
        .unwrap();
}

/// Deletes the namespace `name` (and what is in it) from the test API server.
pub fn delete_namespace(runtime: &tokio::runtime::Runtime, client: &kube::Client, name: &str) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    runtime
        .block_on(namespaces.delete(name, &kube::api::DeleteParams::default()))
        .unwrap();
}
