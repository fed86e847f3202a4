//! Topology from where teams keep it, end to end: `deploygraph topology import` of Backstage
//! catalog files (over `--store` and `--server`), and the call graph a real Prometheus
//! (`PROMETHEUS_TEST_URL`, `scripts/services up prometheus`) holds — mesh-shaped series the test
//! serves to it as a scrape target — read by `serve --topology-prometheus-url` and by the
//! one-shot `topology import --prometheus`.

use crate::alerts::{ALERTING, Restore, Stub, env_path, env_url, prometheus_config, require_ready};
use crate::support::{Server, bin, get_json, run, sqlite_uri, stderr, stdout, temp_path, unique};
use serde_json::Value;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "t0pology-e2e";

/// Polls `probe` every 250 ms until it returns `Some`, failing with `diagnostics()` after
/// `timeout`.
fn wait_until<T>(
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
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `(dependency, [sources])` of a service as `GET …/dependencies` answers.
fn edges(server: &str, service: &str, namespace: Option<&str>) -> Vec<(String, Vec<String>)> {
    let ns = namespace.map_or(String::new(), |ns| format!("&namespace={ns}"));
    let (status, body) = get_json(&format!(
        "{server}/v1/services/{service}/dependencies?environment=production{ns}"
    ));
    assert_eq!(status, 200, "{body}");
    body["depends_on"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["source"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn catalog(web: &str, api: &str, db: &str) -> String {
    format!(
        "# A team's catalog-info.yaml
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {web}
  annotations:
    backstage.io/kubernetes-namespace: shop
    deploygraph.io/tier: tier-1
spec:
  type: website
  lifecycle: production
  owner: team-web
  dependsOn:
    - component:{api}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {api}
  annotations:
    backstage.io/kubernetes-namespace: shop
spec:
  type: service
  lifecycle: production
  owner: team-api
  dependsOn:
    - resource:default/{db}
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: {db}
  annotations:
    backstage.io/kubernetes-namespace: shop
spec:
  type: database
  owner: team-data
"
    )
}

#[test]
fn backstage_catalogs_import_over_the_store_and_a_server() {
    let (web, api, db) = (unique("web"), unique("api"), unique("db"));
    let file = temp_path("catalog-info.yaml");
    std::fs::write(&file, catalog(&web, &api, &db)).unwrap();
    let file = file.display().to_string();

    // In-process over --store.
    let store = sqlite_uri();
    let out = run(&["topology", "import", &file, "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "shop/{web} (production) (owner team-web, tier tier-1) depends on shop/{api} (production)"
        )),
        "{text}"
    );
    assert!(
        text.contains("imported 3 entities from 1 file(s): 3 service(s), 2 backstage edge(s)"),
        "{text}"
    );

    // Over a server on the same store: the import is there, and a manual PUT leaves it.
    let server = Server::start(&store, &["--token", TOKEN]);
    assert_eq!(
        edges(&server.url, &web, Some("shop")),
        vec![(api.clone(), vec!["backstage".to_owned()])]
    );
    let topology = temp_path("topology.yaml");
    std::fs::write(
        &topology,
        format!(
            "services:\n  - name: {web}\n    namespace: shop\n    environment: production\n    \
             depends_on: [{api}, {db}]\n"
        ),
    )
    .unwrap();
    let out = run(&[
        "topology",
        "apply",
        &topology.display().to_string(),
        "--server",
        &server.url,
        "--token",
        TOKEN,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        edges(&server.url, &web, Some("shop")),
        vec![
            (
                api.clone(),
                vec!["manual".to_owned(), "backstage".to_owned()]
            ),
            (db.clone(), vec!["manual".to_owned()]),
        ]
    );
    // Importing again through the server, as JSON.
    let out = run(&[
        "topology",
        "import",
        &file,
        "--server",
        &server.url,
        "--token",
        TOKEN,
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["backstage"]["edges"], 2, "{answer}");
    let (_, listing) = get_json(&format!("{}/v1/services", server.url));
    let item = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == web.as_str())
        .unwrap();
    assert_eq!(
        (item["owner"].as_str(), item["tier"].as_str()),
        (Some("team-web"), Some("tier-1"))
    );

    // Bad input: exit 2, naming the file and the entity; nothing is written.
    let bad = temp_path("broken-catalog.yaml");
    std::fs::write(
        &bad,
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {web}\n\
             spec:\n  dependsOn: [{api}]\n"
        ),
    )
    .unwrap();
    let out = run(&[
        "topology",
        "import",
        &bad.display().to_string(),
        "--store",
        &store,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("broken-catalog.yaml: Component")
            && message.contains("spec.dependsOn[0]")
            && message.contains("has no kind"),
        "{message}"
    );
    let missing = run(&[
        "topology",
        "import",
        "/nonexistent/catalog-info.yaml",
        "--store",
        &store,
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("/nonexistent/catalog-info.yaml"));
    let nothing = run(&["topology", "import", "--store", &store]);
    assert_eq!(nothing.status.code(), Some(2), "{}", stderr(&nothing));
}

/// A scrape target serving mesh-shaped counters that grow on every scrape, with the scrape
/// job in the Prometheus config (restored on drop).
struct MeshTarget {
    _config: Restore,
    _target: Stub,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl MeshTarget {
    fn start(prometheus: &str, series: Vec<String>) -> Self {
        let lock = ALERTING.lock().unwrap_or_else(PoisonError::into_inner);
        let scrapes = std::sync::Arc::new(AtomicU64::new(0));
        let target = Stub::start(move |r| {
            if r.method == "GET" && r.path.starts_with("/metrics") {
                let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
                let mut body = String::from(
                    "# TYPE istio_requests_total counter\n\
                     # TYPE traces_service_graph_request_total counter\n",
                );
                for s in &series {
                    body.push_str(&format!("{s} {}\n", n * 10));
                }
                (200, "text/plain; version=0.0.4", body.into_bytes())
            } else {
                (404, "text/plain", b"not found\n".to_vec())
            }
        });
        let rules = temp_path("rules.yml");
        std::fs::write(&rules, "groups: []\n").unwrap();
        let file = env_path("PROMETHEUS_TEST_CONFIG");
        let original = std::fs::read_to_string(&file).unwrap();
        let job = unique("deploygraph-mesh");
        let config = prometheus_config(&original, &job, &target.addr.to_string(), &rules);
        let restore = Restore::rewrite("Prometheus", &file, prometheus, &config);
        Self {
            _config: restore,
            _target: target,
            _lock: lock,
        }
    }
}

#[test]
fn the_call_graph_in_a_real_prometheus_becomes_mesh_dependencies() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let (web, api, db) = (unique("web"), unique("api"), unique("db"));
    let series = vec![
        format!(
            "istio_requests_total{{reporter=\"source\",source_workload=\"{web}-v1\",\
             source_workload_namespace=\"shop\",source_canonical_service=\"{web}\",\
             destination_workload=\"{api}-v2\",destination_workload_namespace=\"shop\",\
             destination_canonical_service=\"{api}\",response_code=\"200\"}}"
        ),
        format!(
            "istio_requests_total{{reporter=\"source\",source_workload=\"unknown\",\
             source_workload_namespace=\"unknown\",destination_workload=\"{web}-v1\",\
             destination_workload_namespace=\"shop\",destination_canonical_service=\"{web}\",\
             response_code=\"200\"}}"
        ),
        format!("traces_service_graph_request_total{{client=\"{api}\",server=\"{db}\"}}"),
    ];
    let _target = MeshTarget::start(&prometheus, series);

    // The server polls every second and records what Prometheus reports.
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            TOKEN,
            "--topology-prometheus-url",
            &prometheus,
            "--topology-prometheus-interval",
            "1s",
            "--topology-prometheus-window",
            "10m",
        ],
    );
    wait_until(
        "the istio edge",
        Duration::from_secs(90),
        || {
            let found = edges(&server.url, &web, Some("shop"));
            (found == vec![(api.clone(), vec!["mesh".to_owned()])]).then_some(())
        },
        || server.logs(),
    );
    wait_until(
        "the service-graph edge",
        Duration::from_secs(30),
        || {
            let found = edges(&server.url, &api, None);
            (found == vec![(db.clone(), vec!["mesh".to_owned()])]).then_some(())
        },
        || server.logs(),
    );
    let metrics = crate::support::http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            "deploygraph_topology_prometheus_queries_total{query=\"istio\",outcome=\"ok\"}"
        ),
        "{metrics}"
    );

    // The one-shot import into another store, through a server without polling.
    let other = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let out = run(&[
        "topology",
        "import",
        "--prometheus",
        &prometheus,
        "--prometheus-window",
        "10m",
        "--server",
        &other.url,
        "--token",
        TOKEN,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("mesh edge(s) from Prometheus"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        edges(&other.url, &web, Some("shop")),
        vec![(api.clone(), vec!["mesh".to_owned()])]
    );
    assert_eq!(
        edges(&other.url, &api, None),
        vec![(db, vec!["mesh".to_owned()])]
    );
}

#[test]
fn a_prometheus_outage_is_counted_and_the_server_keeps_serving() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--topology-prometheus-url",
            &closed,
            "--topology-prometheus-interval",
            "1s",
        ],
    );
    wait_until(
        "the failed queries counted",
        Duration::from_secs(30),
        || {
            let text = crate::support::http()
                .get(format!("{}/metrics", server.url))
                .send()
                .ok()?
                .text()
                .ok()?;
            text.contains(
                "deploygraph_topology_prometheus_queries_total{query=\"istio\",outcome=\"error\"}",
            )
            .then_some(())
        },
        || server.logs(),
    );
    let (status, _) = get_json(&format!("{}/readyz", server.url));
    assert_eq!(status, 200);
    assert!(
        server.logs().contains("Prometheus query failed"),
        "{}",
        server.logs()
    );
    // The one-shot import refuses to write anything and says why (exit 3: unreachable).
    let out = run(&[
        "topology",
        "import",
        "--prometheus",
        &closed,
        "--store",
        &sqlite_uri(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    // A bad URL is a usage error.
    let out = std::process::Command::new(bin())
        .args([
            "topology",
            "import",
            "--prometheus",
            "ftp://x",
            "--store",
            &sqlite_uri(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
