//! The Helm chart (`deploy/helm/deploygraph`) with the real helm (`HELM_TEST_BIN`): it lints,
//! its schema refuses bad values naming them, it grants exactly the RBAC of deploy/rbac.yaml
//! (the one the watcher's RBAC test runs with), its pod passes the `restricted` Pod Security
//! Standard, and it installs and upgrades into the real API server.

use crate::support::{create_namespace, delete_namespace, temp_path, unique};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

fn chart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/helm/deploygraph")
        .display()
        .to_string()
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

/// The real helm, against the test API server, with a home of its own.
fn helm(args: &[&str]) -> Output {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let home = HOME.get_or_init(|| temp_path("helm-home"));
    let bin = std::env::var("HELM_TEST_BIN")
        .expect("HELM_TEST_BIN is not set: run scripts/test (scripts/services up kube)");
    std::process::Command::new(bin)
        .args(args)
        .env(
            "KUBECONFIG",
            std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST is not set: run scripts/test"),
        )
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.status.success(),
        "helm {args:?}:\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The objects `helm template` renders with these `--set`s.
fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", "dg", &chart, "--namespace", "tools"];
    for set in sets {
        args.extend(["--set", set]);
    }
    yaml_documents(&helm_ok(&args))
}

fn yaml_documents(text: &str) -> Vec<Value> {
    text.split("\n---")
        .filter_map(|doc| serde_norway::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

fn env_of(deployment: &Value) -> Vec<Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone()
}

fn env_value(deployment: &Value, name: &str) -> Option<Value> {
    env_of(deployment).into_iter().find(|e| e["name"] == name)
}

#[test]
fn the_chart_lints_and_renders_a_restricted_pod_for_each_store() {
    let chart = chart();
    helm_ok(&["lint", "--strict", &chart]);
    helm_ok(&[
        "lint",
        "--strict",
        &chart,
        "--set",
        "store.type=neo4j,store.neo4j.uri=neo4j://neo4j.db:7687,store.neo4j.password=s3cret,replicaCount=3",
    ]);
    helm_ok(&[
        "lint",
        "--strict",
        &chart,
        "--set",
        "admission.enabled=true,metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true",
        "--set-json",
        r#"snapshots.config={"tls": ["api.shop.example:443"], "kubernetes": {"tls_secret_namespaces": ["shop"]}}"#,
    ]);

    // The embedded store: one replica on a volume, replaced (never two writers), no PDB.
    let objects = render(&[]);
    assert_eq!(
        kinds(&objects),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = find(&objects, "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    for part in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][part][resource].is_string(),
                "{part}.{resource}"
            );
        }
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["args"], json!(["serve"]));
    assert_eq!(
        env_value(deployment, "DEPLOYGRAPH_STORE").unwrap()["value"],
        "sqlite:///var/lib/deploygraph/data/deploygraph.db"
    );
    assert_eq!(
        env_value(deployment, "DEPLOYGRAPH_TOKEN_FILE").unwrap()["value"],
        "/var/run/secrets/deploygraph/token"
    );
    assert_eq!(
        env_value(deployment, "DEPLOYGRAPH_WATCH_KUBERNETES").unwrap()["value"],
        "true"
    );
    assert_eq!(
        env_value(deployment, "DEPLOYGRAPH_LEASE_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env_value(deployment, "POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The token is generated, 48 characters, and no secret is in the pod's environment.
    let secret = find(&objects, "Secret").unwrap();
    let token = secret["data"]["token"].as_str().unwrap();
    assert_eq!(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, token)
            .unwrap()
            .len(),
        48
    );
    assert!(
        !env_of(deployment)
            .iter()
            .any(|e| e["value"].as_str().is_some_and(|v| v.contains(token)))
    );

    // Neo4j: any number of replicas, rolled one at a time, a PDB, the password from a Secret.
    let objects = render(&[
        "store.type=neo4j,store.neo4j.uri=neo4j://neo4j.db:7687,store.neo4j.existingSecret=neo4j-auth,replicaCount=3,auth.readToken=true",
    ]);
    assert!(find(&objects, "PersistentVolumeClaim").is_none());
    let pdb = find(&objects, "PodDisruptionBudget").unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let deployment = find(&objects, "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        env_value(deployment, "DEPLOYGRAPH_NEO4J_PASSWORD").unwrap()["valueFrom"]["secretKeyRef"],
        json!({"name": "neo4j-auth", "key": "password"})
    );
    assert_eq!(
        env_value(deployment, "DEPLOYGRAPH_READ_TOKEN").unwrap()["valueFrom"]["secretKeyRef"]["key"],
        "read-token"
    );
    assert_eq!(
        find(&objects, "Secret").unwrap()["data"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["read-token", "token"]
    );
}

#[test]
fn the_charts_schema_refuses_bad_values_naming_them() {
    let chart = chart();
    let cases = [
        ("replicaCount=2", "/replicaCount"),
        ("replicaCount=0", "/replicaCount"),
        ("store.type=mysql", "/store/type"),
        ("store.type=neo4j", "/store/neo4j/uri"),
        (
            "store.type=neo4j,store.neo4j.uri=http://neo4j.db:7474",
            "/store/neo4j/uri",
        ),
        (
            "store.type=neo4j,store.neo4j.uri=bolt://neo4j.db:7687",
            "store.neo4j.password",
        ),
        ("image.digest=latest", "/image/digest"),
        ("service.port=70000", "/service/port"),
        ("watch.namespaces={Payments}", "/watch/namespaces/0"),
        ("replicas=2", "'replicas'"),
        ("log.format=xml", "/log/format"),
        ("cluster=-eu", "/cluster"),
        ("admission.mode=block", "/admission/mode"),
        ("admission.failurePolicy=Maybe", "/admission/failurePolicy"),
        ("admission.timeoutSeconds=31", "/admission/timeoutSeconds"),
        ("admission.maxSnapshotAge=soon", "/admission/maxSnapshotAge"),
        (
            "admission.enabled=true,admission.tls.existingSecret=gate-tls",
            "admission.tls.caBundle is required",
        ),
    ];
    for (set, named) in cases {
        let out = helm(&["template", "dg", &chart, "--set", set]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(err.contains(named), "{set}: {err}");
    }
}

/// The chart reads deploy/rbac.yaml: its watcher may do exactly what the watcher's RBAC test
/// (shared/k8s/tests/watcher.rs) proves sufficient, and no more.
#[test]
fn the_charts_rbac_is_the_one_the_watcher_is_tested_with() {
    let shipped = yaml_documents(&repo_file("deploy/rbac.yaml"));
    let rendered = render(&[]);
    for kind in ["ClusterRole", "Role"] {
        assert_eq!(
            find(&rendered, kind).unwrap()["rules"],
            find(&shipped, kind).unwrap()["rules"],
            "{kind}"
        );
    }
    let role = find(&rendered, "ClusterRoleBinding").unwrap();
    assert_eq!(
        role["subjects"],
        json!([{"kind": "ServiceAccount", "name": "dg-deploygraph", "namespace": "tools"}])
    );

    // Undoing failed canaries adds one rule: patch on deployments.
    let rollback = render(&["canary.rollback=true"]);
    let mut rules = find(&shipped, "ClusterRole").unwrap()["rules"]
        .as_array()
        .unwrap()
        .clone();
    rules.push(json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}));
    assert_eq!(
        find(&rollback, "ClusterRole").unwrap()["rules"],
        Value::Array(rules)
    );

    // Without the watcher: no RBAC and no API token in the pod.
    let quiet = render(&["watch.enabled=false"]);
    assert!(find(&quiet, "ClusterRole").is_none() && find(&quiet, "Role").is_none());
    assert_eq!(
        find(&quiet, "Deployment").unwrap()["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );

    // The PrometheusRule holds deploy/prometheus/deploygraph-rules.yaml's groups (the ones
    // promtool checks and tests).
    let monitored = render(&[
        "metrics.prometheusRule.enabled=true,metrics.serviceMonitor.enabled=true,auth.readToken=true",
    ]);
    let rules: Value =
        serde_norway::from_str(&repo_file("deploy/prometheus/deploygraph-rules.yaml")).unwrap();
    assert_eq!(
        find(&monitored, "PrometheusRule").unwrap()["spec"]["groups"],
        rules["groups"]
    );
    let monitor = find(&monitored, "ServiceMonitor").unwrap();
    assert_eq!(
        monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["key"],
        "read-token"
    );
}

/// The installed Deployment's container, run here as a process, as a kubelet would run it:
/// its volumes (Secrets, ConfigMaps, empty directories) written to local directories and the
/// paths under their mount points moved there, fields and Secret references resolved, the
/// listen addresses moved to free loopback ports and the kubeconfig set for this machine. The
/// server is ready, leads the watchers and takes writes with the generated token only; the
/// admission gate's address when it serves one.
fn serves_as_installed(
    runtime: &tokio::runtime::Runtime,
    client: &kube::Client,
    ns: &str,
    deployment: &Deployment,
    token: &[u8],
) -> (crate::support::Server, Option<String>) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let container = &pod.containers[0];
    let root = temp_path("pod");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    // Each mount point and the local directory standing for it.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for (i, mount) in container
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let local = root.join(format!("volume-{i}"));
        std::fs::create_dir_all(&local).unwrap();
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("no volume {}", mount.name));
        let files: Vec<(String, Vec<u8>)> = if let Some(secret) = &volume.secret {
            let data = runtime
                .block_on(secrets.get(secret.secret_name.as_ref().unwrap()))
                .unwrap()
                .data
                .unwrap_or_default();
            match &secret.items {
                Some(items) => items
                    .iter()
                    .map(|k| (k.path.clone(), data[&k.key].0.clone()))
                    .collect(),
                None => data.into_iter().map(|(k, v)| (k, v.0)).collect(),
            }
        } else if let Some(map) = &volume.config_map {
            let data = runtime
                .block_on(config_maps.get(&map.name))
                .unwrap()
                .data
                .unwrap_or_default();
            data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
        } else {
            Vec::new()
        };
        for (name, bytes) in files {
            std::fs::write(local.join(name), bytes).unwrap();
        }
        mounts.push((mount.mount_path.clone(), local));
    }
    let local_path = |path: &str| -> Option<String> {
        mounts.iter().find_map(|(at, local)| {
            path.strip_prefix(at.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(|rest| format!("{}{rest}", local.display()))
        })
    };
    let mut listen = None;
    let mut admission = None;
    let mut env = vec![(
        "DEPLOYGRAPH_WATCH_KUBECONFIG".to_owned(),
        std::env::var("KUBECONFIG_TEST").unwrap(),
    )];
    for var in container.env.clone().unwrap_or_default() {
        let value = match (var.name.as_str(), var.value, var.value_from) {
            ("DEPLOYGRAPH_LISTEN" | "DEPLOYGRAPH_ADMISSION_LISTEN", Some(v), _) => {
                assert!(v.starts_with("0.0.0.0:"), "{v}");
                let here = format!("127.0.0.1:{}", crate::support::free_port());
                if var.name == "DEPLOYGRAPH_LISTEN" {
                    listen = Some(here.clone());
                } else {
                    admission = Some(here.clone());
                }
                here
            }
            ("DEPLOYGRAPH_STORE", Some(v), _) => match v.strip_prefix("sqlite://") {
                Some(path) => format!(
                    "sqlite://{}",
                    local_path(path).expect("the store on a volume")
                ),
                None => v,
            },
            (_, Some(v), _) => local_path(&v).unwrap_or(v),
            (_, None, Some(from)) => {
                if let Some(field) = from.field_ref {
                    match field.field_path.as_str() {
                        "metadata.namespace" => ns.to_owned(),
                        "metadata.name" => "deploygraph-0".to_owned(),
                        other => panic!("field {other}"),
                    }
                } else {
                    let key = from.secret_key_ref.unwrap();
                    let secret = runtime.block_on(secrets.get(&key.name)).unwrap();
                    String::from_utf8(secret.data.unwrap()[&key.key].0.clone()).unwrap()
                }
            }
            (name, None, None) => panic!("{name} has no value"),
        };
        env.push((var.name, value));
    }
    let listen = listen.expect("DEPLOYGRAPH_LISTEN");
    let server =
        crate::support::Server::start_configured(container.args.as_ref().unwrap(), &env, &listen);
    server.wait_for("/readyz", std::time::Duration::from_secs(30));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !crate::support::http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap()
        .contains("deploygraph_watch_leading 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not leading:\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let record = crate::support::deployment(&unique("chart"), 1, 1);
    let url = format!("{}/v1/deployments", server.url);
    assert_eq!(crate::support::post_json(&url, &record, None).0, 401);
    let token = String::from_utf8(token.to_vec()).unwrap();
    assert_eq!(
        crate::support::post_json(&url, &record, Some(&token)).0,
        201
    );
    assert!(
        server.logs().lines().all(|l| l.starts_with('{')),
        "log lines are JSON:\n{}",
        server.logs()
    );
    (server, admission)
}

async fn pod_from_template(
    pods: &Api<Pod>,
    name: &str,
    deployment: &Deployment,
) -> Result<Pod, kube::Error> {
    let template = deployment.spec.as_ref().unwrap().template.clone();
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    pods.create(&PostParams::default(), &pod).await
}

/// A real install into the API server (every object through its validation), in a namespace
/// that enforces the `restricted` Pod Security Standard on the chart's pod; an upgrade keeps
/// the generated token; a second release on Neo4j with three replicas next to it.
#[test]
fn the_chart_installs_into_the_api_server_and_upgrades_keeping_its_token() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("chart");
    create_namespace(
        &runtime,
        &client,
        &ns,
        json!({"pod-security.kubernetes.io/enforce": "restricted",
               "pod-security.kubernetes.io/enforce-version": "latest"}),
    );
    let chart = chart();
    let release = unique("dg");
    helm_ok(&["install", &release, &chart, "-n", &ns]);
    let full = format!("{release}-deploygraph");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let token = |secret: &Secret| secret.data.as_ref().unwrap()["token"].0.clone();
    let (first_token, deployment) = runtime.block_on(async {
        let secret = secrets.get(&format!("{full}-auth")).await.unwrap();
        let deployment = deployments.get(&full).await.unwrap();
        // The pod the Deployment would run is admitted where `restricted` is enforced.
        pod_from_template(&pods, "restricted", &deployment)
            .await
            .unwrap();
        let roles: Api<ClusterRole> = Api::all(client.clone());
        roles.get(&format!("{full}-watcher")).await.unwrap();
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
        policies.get(&full).await.unwrap();
        (token(&secret), deployment)
    });
    assert_eq!(first_token.len(), 48);
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(1));
    let (_server, admission) =
        serves_as_installed(&runtime, &client, &ns, &deployment, &first_token);
    assert!(admission.is_none());

    // The same template made insecure is refused there: the check above can fail.
    let rendered = helm_ok(&[
        "template",
        "x",
        &chart,
        "--set",
        "podSecurityContext.runAsNonRoot=false,securityContext.allowPrivilegeEscalation=true",
    ]);
    let insecure: Deployment = serde_json::from_value(
        yaml_documents(&rendered)
            .into_iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap(),
    )
    .unwrap();
    runtime.block_on(async {
        let refused = pod_from_template(&pods, "insecure", &insecure).await;
        assert!(
            matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("PodSecurity")),
            "{refused:?}"
        );
    });

    // An upgrade changes the pod's settings and keeps the generated token.
    helm_ok(&[
        "upgrade",
        &release,
        &chart,
        "-n",
        &ns,
        "--set",
        "watch.namespaces={payments,checkout},cluster=eu-1",
    ]);
    runtime.block_on(async {
        let secret = secrets.get(&format!("{full}-auth")).await.unwrap();
        assert_eq!(
            token(&secret),
            first_token,
            "the upgrade replaced the token"
        );
        let deployment = serde_json::to_value(deployments.get(&full).await.unwrap()).unwrap();
        assert_eq!(
            env_value(&deployment, "DEPLOYGRAPH_WATCH_NAMESPACES").unwrap()["value"],
            "payments,checkout"
        );
        assert_eq!(
            env_value(&deployment, "DEPLOYGRAPH_CLUSTER").unwrap()["value"],
            "eu-1"
        );
    });

    // Neo4j, three replicas, a read token, egress restricted: every object accepted.
    let second = unique("dgn");
    helm_ok(&[
        "install",
        &second,
        &chart,
        "-n",
        &ns,
        "--set",
        "store.type=neo4j,store.neo4j.uri=neo4j://neo4j.db:7687,store.neo4j.password=s3cret,replicaCount=3,auth.readToken=true,canary.rollback=true",
        "--set-json",
        r#"networkPolicy.egress=[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":7687,"protocol":"TCP"},{"port":443,"protocol":"TCP"}]}]"#,
    ]);
    runtime.block_on(async {
        let full = format!("{second}-deploygraph");
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
        pdbs.get(&full).await.unwrap();
        let secret = secrets.get(&format!("{full}-auth")).await.unwrap();
        assert!(secret.data.as_ref().unwrap().contains_key("read-token"));
        let neo4j = secrets.get(&format!("{full}-neo4j")).await.unwrap();
        assert_eq!(
            neo4j.data.as_ref().unwrap()["password"].0,
            b"s3cret".to_vec()
        );
        let deployment = deployments.get(&full).await.unwrap();
        assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(3));
        pod_from_template(&pods, "restricted-neo4j", &deployment)
            .await
            .unwrap();
    });

    for name in [&release, &second] {
        helm_ok(&["uninstall", name, "-n", &ns]);
    }
    runtime.block_on(async {
        let roles: Api<ClusterRole> = Api::all(client.clone());
        assert!(
            roles
                .get_opt(&format!("{full}-watcher"))
                .await
                .unwrap()
                .is_none()
        );
    });
    delete_namespace(&runtime, &client, &ns);
}

/// With `admission.enabled`: the chart registers the gate as a ValidatingWebhook whose
/// `caBundle` trusts the certificate it generated for the Service's name, keeps both across an
/// upgrade, and the installed server, snapshotting the configured checks on its interval,
/// refuses over that TLS a rollout while a certificate check fails.
#[test]
fn the_charts_admission_gate_is_registered_trusted_and_refuses_on_a_failing_snapshot() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let expiring = runtime.block_on(deploygraph_probe::testing::serve(
        deploygraph_probe::testing::leaf(None, &["127.0.0.1"], -1, 48),
    ));
    let ns = unique("chart-gate");
    create_namespace(&runtime, &client, &ns, json!({}));
    let chart = chart();
    let release = unique("dg");
    let full = format!("{release}-deploygraph");
    // Only namespaces labelled for this test are judged (the API server is shared), and the
    // gate fails open: nothing else in the test cluster depends on it.
    let values = format!(
        "admission.enabled=true,admission.failurePolicy=Ignore,admission.namespaceSelector.matchLabels.deploygraph-chart-gate={ns},snapshots.interval=1s"
    );
    let gate_config = format!(
        r#"snapshots.config={{"checkend": 604800, "allow_untrusted": true, "tls": ["127.0.0.1:{expiring}"]}}"#
    );
    let install = |verb: &str| {
        helm_ok(&[
            verb,
            &release,
            &chart,
            "-n",
            &ns,
            "--set",
            &values,
            "--set-json",
            &gate_config,
        ])
    };
    install("install");
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let read = || {
        runtime.block_on(async {
            let webhook = webhooks.get(&format!("{full}-gate")).await.unwrap();
            let tls = secrets.get(&format!("{full}-admission-tls")).await.unwrap();
            (webhook, tls.data.unwrap())
        })
    };
    let (webhook, tls) = read();
    let hook = &webhook.webhooks.as_ref().unwrap()[0];
    let ca = hook.client_config.ca_bundle.clone().unwrap().0;
    assert_eq!(ca, tls["ca.crt"].0);
    assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(hook.side_effects, "NoneOnDryRun");
    let service = hook.client_config.service.as_ref().unwrap();
    assert_eq!(
        (service.name.as_str(), service.path.as_deref(), service.port),
        (full.as_str(), Some("/v1/admission/validate"), Some(8443))
    );
    let excluded = serde_json::to_value(&hook.namespace_selector).unwrap();
    assert!(
        excluded
            .to_string()
            .contains(&format!(r#"["{ns}","kube-system"]"#)),
        "{excluded}"
    );

    let deployment = runtime.block_on(deployments.get(&full)).unwrap();
    let token = runtime
        .block_on(secrets.get(&format!("{full}-auth")))
        .unwrap()
        .data
        .unwrap()["token"]
        .0
        .clone();
    let (server, admission) = serves_as_installed(&runtime, &client, &ns, &deployment, &token);
    let admission: std::net::SocketAddr = admission.expect("the gate listens").parse().unwrap();
    // The API server's view: the Service's name, trusting only the caBundle.
    let host = format!("{full}.{ns}.svc");
    let tls_client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve(&host, admission)
        .build()
        .unwrap();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "chart-1", "operation": "CREATE", "namespace": "shop", "name": "web",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "userInfo": {"username": "ci"},
            "object": {"metadata": {"name": "web"}, "spec": {"template": {"spec": {
                "containers": [{"name": "web", "image": "registry.local/web:v1"}]}}}}}
    });
    let url = format!("https://{host}:{}/v1/admission/validate", admission.port());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let message = loop {
        let answer: Value = tls_client
            .post(&url)
            .json(&review)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let message = answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // Refused for want of a snapshot until the first one on the interval is taken.
        if message.contains("failed") {
            break message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{answer}\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        message.contains(&format!("tls 127.0.0.1:{expiring}")),
        "{message}"
    );

    // An upgrade keeps the generated certificate and the bundle that trusts it.
    install("upgrade");
    let (webhook, again) = read();
    assert_eq!(again["tls.crt"].0, tls["tls.crt"].0);
    assert_eq!(
        webhook.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .clone()
            .unwrap()
            .0,
        ca
    );
    helm_ok(&["uninstall", &release, "-n", &ns]);
    runtime.block_on(async {
        assert!(
            webhooks
                .get_opt(&format!("{full}-gate"))
                .await
                .unwrap()
                .is_none()
        );
    });
    delete_namespace(&runtime, &client, &ns);
}
