//! `deploygraph agent` against the real API server, forwarding over HTTPS (a private CA) to a
//! central `deploygraph serve` that holds the store: rollouts made while the central server is
//! stopped wait in the agent's spool and are each recorded once when it is back; an agent
//! killed with SIGKILL in the middle of delivering its spool loses nothing and doubles nothing
//! after its restart.

use crate::support::{bin, create_namespace, free_port, temp_path, unique};
use deploygraph_probe::testing::{Ca, leaf};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "agent-e2e-token";
const CLUSTER: &str = "eu-1";

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)")
}

/// A child process with its log, killed on drop.
pub(crate) struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    pub(crate) fn spawn(args: &[&str]) -> Self {
        let log = temp_path("agent-e2e.log");
        let child = Command::new(bin())
            .args(args)
            .env_remove("DEPLOYGRAPH_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
        }
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit awaited.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL: no chance to finish anything.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The central server's TLS material and the HTTPS client that trusts it.
struct Tls {
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client: reqwest::blocking::Client,
}

fn tls() -> Tls {
    let ca = Ca::new("deploygraph e2e CA");
    let server = leaf(Some(&ca), &["localhost"], -1, 24);
    let (ca_file, cert, key) = (
        temp_path("ca.pem"),
        temp_path("server.pem"),
        temp_path("server-key.pem"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert, &server.pem).unwrap();
    std::fs::write(&key, &server.key_pem).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Tls {
        ca_file,
        cert,
        key,
        client,
    }
}

/// The central server on `port` over TLS, on `store`, with the token.
fn central(store: &str, port: u16, tls: &Tls) -> Process {
    let listen = format!("127.0.0.1:{port}");
    let (cert, key) = (tls.cert.to_str().unwrap(), tls.key.to_str().unwrap());
    let process = Process::spawn(&[
        "serve",
        "--listen",
        &listen,
        "--store",
        store,
        "--token",
        TOKEN,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--log-format",
        "json",
    ]);
    let url = format!("https://localhost:{port}/healthz");
    wait(
        &process,
        "the central server over TLS",
        Duration::from_secs(60),
        || tls.client.get(&url).send().is_ok_and(|r| r.status() == 200),
    );
    process
}

/// The agent watching `namespace`, its spool in `spool`, its metrics on `metrics_port`.
fn agent(
    port: u16,
    tls: &Tls,
    namespace: &str,
    spool: &Path,
    metrics_port: u16,
    batch: usize,
) -> Process {
    let server = format!("https://localhost:{port}");
    let listen = format!("127.0.0.1:{metrics_port}");
    let (kubeconfig, batch) = (kubeconfig(), batch.to_string());
    let process = Process::spawn(&[
        "agent",
        "--server",
        &server,
        "--token",
        TOKEN,
        "--ca-file",
        tls.ca_file.to_str().unwrap(),
        "--cluster",
        CLUSTER,
        "--spool-dir",
        spool.to_str().unwrap(),
        "--listen",
        &listen,
        "--batch",
        &batch,
        "--watch-kubernetes",
        "--watch-kubeconfig",
        &kubeconfig,
        "--watch-namespace",
        namespace,
        "--watch-environment",
        "production",
        "--lease-namespace",
        namespace,
        "--log-format",
        "json",
    ]);
    let url = format!("http://{listen}/healthz");
    wait(&process, "the agent", Duration::from_secs(30), || {
        crate::support::http()
            .get(&url)
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    process
}

fn wait(process: &Process, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            process.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One sample of the agent's metrics (0 when absent).
fn metric(metrics_port: u16, name: &str) -> f64 {
    let text = crate::support::http()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .and_then(reqwest::blocking::Response::text)
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The service's deployments in the central store: each one's image tag, uid and follows.
fn recorded(port: u16, tls: &Tls, service: &str) -> Vec<(String, String, Option<String>)> {
    let page: Value = tls
        .client
        .get(format!(
            "https://localhost:{port}/v1/deployments?service={service}&cluster={CLUSTER}&limit=500"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut items: Vec<(String, String, String, Option<String>)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["started_at"].as_str().unwrap().to_owned(),
                d["images"][0]["tag"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                d["uid"].as_str().unwrap().to_owned(),
                d["follows"].as_str().map(str::to_owned),
            )
        })
        .collect();
    items.sort();
    items
        .into_iter()
        .map(|(_, tag, uid, f)| (tag, uid, f))
        .collect()
}

/// Asserts that the service's deployments are exactly tags `0..=last`, each once, in one
/// FOLLOWS chain, all in the agent's cluster.
fn assert_each_once(port: u16, tls: &Tls, service: &str, last: u32, logs: &str) {
    let items = recorded(port, tls, service);
    let tags: Vec<&str> = items.iter().map(|(t, _, _)| t.as_str()).collect();
    let expected: Vec<String> = (0..=last).map(|i| format!("1.{i}")).collect();
    let mut sorted: Vec<&str> = tags.clone();
    sorted.sort_by_key(|t| t[2..].parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(
        sorted,
        expected.iter().map(String::as_str).collect::<Vec<_>>(),
        "each rollout recorded once; agent log:\n{logs}"
    );
    let uids: BTreeSet<&str> = items.iter().map(|(_, u, _)| u.as_str()).collect();
    assert_eq!(uids.len(), items.len());
    // One chain: one deployment follows none, every other follows a distinct one of them.
    let follows: Vec<&str> = items.iter().filter_map(|(_, _, f)| f.as_deref()).collect();
    let distinct: BTreeSet<&str> = follows.iter().copied().collect();
    assert_eq!(follows.len(), items.len() - 1, "FOLLOWS chain: {items:?}");
    assert_eq!(distinct.len(), follows.len(), "FOLLOWS chain: {items:?}");
    assert!(distinct.is_subset(&uids), "FOLLOWS chain: {items:?}");
}

fn setup(runtime: &tokio::runtime::Runtime, service: &str) -> (String, Api<Deployment>) {
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("e2e-agent");
    create_namespace(runtime, &client, &ns, json!({}));
    runtime.block_on(async {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "shop", "labels": {"app": service}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                         "template": {"metadata": {"labels": {"app": "shop"}},
                                      "spec": {"containers": [{"name": "shop", "image": "registry.local/shop:1.0"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    });
    let api = Api::namespaced(client, &ns);
    (ns, api)
}

/// Rolls out image tag `1.{i}`.
fn roll(runtime: &tokio::runtime::Runtime, api: &Api<Deployment>, i: u32) {
    runtime.block_on(async {
        api.patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "shop", "image": format!("registry.local/shop:1.{i}")}]}}}})),
        )
        .await
        .unwrap();
    });
}

/// Rolls out `range`, each once the agent has spooled the one before (a spool that grew).
fn roll_spooled(
    runtime: &tokio::runtime::Runtime,
    api: &Api<Deployment>,
    range: std::ops::RangeInclusive<u32>,
    agent: &Process,
    metrics_port: u16,
) {
    for i in range {
        let before = metric(metrics_port, "deploygraph_agent_spool_records");
        roll(runtime, api, i);
        wait(
            agent,
            "the rollout in the spool",
            Duration::from_secs(30),
            || metric(metrics_port, "deploygraph_agent_spool_records") > before,
        );
    }
}

#[test]
fn rollouts_during_a_central_outage_are_spooled_and_each_recorded_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = tls();
    let service = unique("shop");
    let (ns, api) = setup(&runtime, &service);
    let store = format!("sqlite://{}", temp_path("central.db").display());
    let (port, metrics_port) = (free_port(), free_port());
    let spool = temp_path("spool");
    let mut server = central(&store, port, &tls);
    let agent = agent(port, &tls, &ns, &spool, metrics_port, 200);
    wait(
        &agent,
        "the first rollout centrally",
        Duration::from_secs(90),
        || recorded(port, &tls, &service).len() == 1,
    );

    // The central server stops; 50 rollouts happen; each waits in the spool.
    server.stop();
    roll_spooled(&runtime, &api, 1..=50, &agent, metrics_port);
    assert_eq!(
        metric(metrics_port, "deploygraph_agent_spool_records"),
        50.0,
        "{}",
        agent.logs()
    );
    assert!(metric(metrics_port, "deploygraph_agent_spool_oldest_age_seconds") > 0.0);
    wait(
        &agent,
        "a forwarding error counted",
        Duration::from_secs(30),
        || metric(metrics_port, "deploygraph_agent_forward_errors_total") > 0.0,
    );

    // Back: the spool drains and every rollout is recorded once, in one chain.
    let _server = central(&store, port, &tls);
    wait(
        &agent,
        "the spool delivered",
        Duration::from_secs(90),
        || metric(metrics_port, "deploygraph_agent_spool_records") == 0.0,
    );
    assert_each_once(port, &tls, &service, 50, &agent.logs());
    assert!(
        metric(metrics_port, "deploygraph_agent_forwarded_total") >= 51.0,
        "{}",
        agent.logs()
    );
}

#[test]
fn an_agent_killed_while_delivering_loses_and_doubles_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = tls();
    let service = unique("shop");
    let (ns, api) = setup(&runtime, &service);
    let store = format!("sqlite://{}", temp_path("central.db").display());
    let (port, metrics_port) = (free_port(), free_port());
    let spool = temp_path("spool");
    let mut server = central(&store, port, &tls);
    // One record per batch: delivering the backlog takes many round trips to cut into.
    let mut first = agent(port, &tls, &ns, &spool, metrics_port, 1);
    wait(
        &first,
        "the first rollout centrally",
        Duration::from_secs(90),
        || recorded(port, &tls, &service).len() == 1,
    );
    server.stop();
    roll_spooled(&runtime, &api, 1..=30, &first, metrics_port);
    let delivered_before = metric(metrics_port, "deploygraph_agent_forwarded_total");
    let _server = central(&store, port, &tls);
    wait(
        &first,
        "delivery under way",
        Duration::from_secs(90),
        || metric(metrics_port, "deploygraph_agent_forwarded_total") >= delivered_before + 3.0,
    );
    first.kill9();
    let left = recorded(port, &tls, &service).len();
    assert!(
        left < 31,
        "killed before the spool was delivered ({left} of 31 recorded)"
    );

    // The same spool, a new process: the rest is delivered, nothing twice.
    let second = agent(port, &tls, &ns, &spool, metrics_port, 1);
    wait(
        &second,
        "the spool delivered",
        Duration::from_secs(120),
        || {
            metric(metrics_port, "deploygraph_agent_spool_records") == 0.0
                && recorded(port, &tls, &service).len() >= 31
        },
    );
    // A rollout after the restart is forwarded too.
    roll(&runtime, &api, 31);
    wait(
        &second,
        "the rollout after the restart",
        Duration::from_secs(90),
        || recorded(port, &tls, &service).len() >= 32,
    );
    assert_each_once(port, &tls, &service, 31, &second.logs());
}
