//! The Litmus driver against the real API server (`scripts/services up kube`), with the in-test
//! operator playing chaos-operator and the experiment pods. Each test has its own namespace
//! and operator; the CRDs are cluster-wide and installed idempotently by every test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_chaos::litmus::{
    self, AppInfo, EngineRequest, LitmusError, Outcome, engine_resource, result_resource,
};
use deploygraph_chaos::operator::{self, OUTCOME_ANNOTATION, Operator, Scripted};
use deploygraph_model::ChaosVerdict;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::{Client, Config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Bounds every `follow`: a hung test is a failed test.
const FOLLOW_LIMIT: Duration = Duration::from_secs(30);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A client, the CRDs installed, and a fresh namespace.
async fn setup() -> (Client, String) {
    let client = deploygraph_k8s::testing::client().await;
    operator::install_crds(&client).await.unwrap();
    let namespace = unique("litmus");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    (client, namespace)
}

fn probes() -> Vec<Value> {
    vec![
        json!({"name": "web-up", "type": "httpProbe", "mode": "Continuous",
               "httpProbe/inputs": {"url": "http://web.shop.svc:8080/healthz", "insecureSkipVerify": false,
                                    "method": {"get": {"criteria": "==", "responseCode": "200"}}},
               "runProperties": {"probeTimeout": "5s", "interval": "1s", "retry": 1}}),
        json!({"name": "orders-present", "type": "k8sProbe", "mode": "EOT",
               "k8sProbe/inputs": {"group": "apps", "version": "v1", "resource": "deployments",
                                   "namespace": "shop", "labelSelector": "app=web", "operation": "present"},
               "runProperties": {"probeTimeout": "5s", "interval": "1s"}}),
    ]
}

fn request(namespace: &str, experiment: &str, seconds: u32) -> EngineRequest {
    EngineRequest {
        namespace: namespace.to_owned(),
        engine: unique("web-chaos"),
        experiment: experiment.to_owned(),
        app: AppInfo {
            namespace: namespace.to_owned(),
            label: "app=web".into(),
            kind: "deployment".into(),
        },
        service_account: format!("{experiment}-sa"),
        env: BTreeMap::from([
            ("TOTAL_CHAOS_DURATION".into(), seconds.to_string()),
            ("CHAOS_INTERVAL".into(), "1".into()),
        ]),
        probes: probes(),
    }
}

/// An abort channel that never fires (its sender is gone).
fn never() -> watch::Receiver<Option<String>> {
    watch::channel(None).1
}

/// A namespace with `experiment` scripted to end as `outcome`, the operator playing it, and
/// the request for a run of `duration_secs`.
async fn scripted(
    experiment: &str,
    outcome: Scripted,
    duration_secs: u32,
) -> (Client, String, Operator, EngineRequest) {
    let (client, namespace) = setup().await;
    operator::create_experiment(&client, &namespace, experiment, outcome)
        .await
        .unwrap();
    let operator = Operator::spawn(client.clone(), &namespace);
    let req = request(&namespace, experiment, duration_secs);
    (client, namespace, operator, req)
}

async fn follow(
    client: &Client,
    req: &EngineRequest,
    abort: watch::Receiver<Option<String>>,
    ack_timeout: Duration,
) -> Result<Outcome, LitmusError> {
    tokio::time::timeout(
        FOLLOW_LIMIT,
        litmus::follow(
            client,
            &req.namespace,
            &req.engine,
            &req.experiment,
            abort,
            ack_timeout,
        ),
    )
    .await
    .expect("follow returned within its bound")
}

async fn engine(client: &Client, namespace: &str, name: &str) -> DynamicObject {
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &engine_resource())
        .get(name)
        .await
        .unwrap()
}

async fn result(client: &Client, namespace: &str, name: &str) -> Option<DynamicObject> {
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &result_resource())
        .get_opt(name)
        .await
        .unwrap()
}

/// Bounded poll until the operator has picked the engine up.
async fn wait_until_running(client: &Client, req: &EngineRequest) {
    let started = Instant::now();
    let name = litmus::result_name(&req.engine, &req.experiment);
    loop {
        let status =
            engine(client, &req.namespace, &req.engine).await.data["status"]["engineStatus"]
                .clone();
        if status == "initialized" && result(client, &req.namespace, &name).await.is_some() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "engine {} never started running (engineStatus {status})",
            req.engine
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the engine as `create_engine` would, plus an annotation scripting the operator.
async fn create_annotated_engine(client: &Client, req: &EngineRequest, outcome: Scripted) {
    let mut manifest = litmus::engine_manifest(req);
    manifest["metadata"]["annotations"] = json!({OUTCOME_ANNOTATION: outcome.as_str()});
    Api::<DynamicObject>::namespaced_with(client.clone(), &req.namespace, &engine_resource())
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest).unwrap(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_passing_run_reports_pass_with_its_probes() {
    let (client, namespace, _operator, req) = scripted("pod-delete", Scripted::Pass, 1).await;
    let called = chrono::Utc::now();

    litmus::create_engine(&client, &req).await.unwrap();
    let outcome = follow(&client, &req, never(), Duration::from_secs(2))
        .await
        .unwrap();

    assert_eq!(outcome.verdict, ChaosVerdict::Pass);
    assert_eq!(outcome.phase, "Completed");
    assert_eq!(outcome.probe_success_pct, Some(100.0));
    assert_eq!(outcome.error_reason, None);
    let probes: Vec<(&str, Option<&str>, &str)> = outcome
        .probes
        .iter()
        .map(|p| (p.name.as_str(), p.probe_type.as_deref(), p.verdict.as_str()))
        .collect();
    assert_eq!(
        probes,
        vec![
            ("web-up", Some("httpProbe"), "Passed"),
            ("orders-present", Some("k8sProbe"), "Passed")
        ]
    );
    // The result's creation (second precision) starts the run; the chaos lasted a second.
    assert!(
        outcome.started_at >= called - chrono::Duration::seconds(1),
        "{outcome:?}"
    );
    assert!(
        outcome.ended_at - outcome.started_at >= chrono::Duration::milliseconds(900),
        "{outcome:?}"
    );

    // What the operator left, as the real one does.
    let engine = engine(&client, &namespace, &req.engine).await;
    assert_eq!(engine.data["status"]["engineStatus"], "completed");
    assert_eq!(engine.data["spec"]["engineState"], "stop");
    assert_eq!(engine.data["status"]["experiments"][0]["verdict"], "Pass");
    let result = result(
        &client,
        &namespace,
        &litmus::result_name(&req.engine, "pod-delete"),
    )
    .await
    .unwrap();
    assert_eq!(
        result.metadata.labels.unwrap()["chaosUID"],
        engine.metadata.uid.unwrap()
    );
    assert_eq!(result.data["status"]["history"]["passedRuns"], 1);
}

#[tokio::test]
async fn a_probe_failure_is_a_fail_naming_the_failed_probe() {
    let (client, _, _operator, req) = scripted("pod-network-partition", Scripted::Fail, 1).await;

    litmus::create_engine(&client, &req).await.unwrap();
    let outcome = follow(&client, &req, never(), Duration::from_secs(2))
        .await
        .unwrap();

    assert_eq!(outcome.verdict, ChaosVerdict::Fail);
    assert_eq!(outcome.phase, "Completed_With_Probe_Failure");
    assert_eq!(outcome.probe_success_pct, Some(50.0));
    assert_eq!(outcome.probes[0].verdict, "Failed");
    assert_eq!(outcome.probes[1].verdict, "Passed");
    let reason = outcome.error_reason.unwrap();
    assert!(
        reason.starts_with("probe web-up failed: Actual value: 503"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_experiment_error_reports_errorcode_reason() {
    let (client, namespace, _operator, req) = scripted("pod-memory-hog", Scripted::Error, 1).await;

    litmus::create_engine(&client, &req).await.unwrap();
    let outcome = follow(&client, &req, never(), Duration::from_secs(2))
        .await
        .unwrap();

    assert_eq!(outcome.verdict, ChaosVerdict::Error);
    assert_eq!(outcome.phase, "Error");
    assert_eq!(outcome.probe_success_pct, Some(0.0));
    assert!(
        outcome.probes.iter().all(|p| p.verdict == "N/A"),
        "{outcome:?}"
    );
    // litmus-go's JSON error, unwrapped.
    let reason = outcome.error_reason.unwrap();
    assert!(
        reason.starts_with("no target pod found with label app=web"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "(target {{appLabel: app=web, namespace: {namespace}}})"
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn a_missing_experiment_is_a_clear_error_and_creates_no_engine() {
    let (client, namespace) = setup().await;
    operator::create_experiment(&client, &namespace, "container-kill", Scripted::Pass)
        .await
        .unwrap();
    let req = request(&namespace, "pod-delete", 1);

    let err = litmus::create_engine(&client, &req).await.unwrap_err();

    match &err {
        LitmusError::ExperimentMissing {
            experiment,
            namespace: ns,
            installed,
        } => {
            assert_eq!(experiment, "pod-delete");
            assert_eq!(ns, &namespace);
            assert_eq!(installed, "container-kill");
        }
        other => panic!("expected ExperimentMissing, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("ChaosExperiment pod-delete not found")
            && message.contains(&format!("namespace {namespace}")),
        "{message}"
    );
    let engines =
        Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &engine_resource())
            .list(&ListParams::default())
            .await
            .unwrap();
    assert!(engines.items.is_empty(), "no engine was created");
    litmus::ensure_experiment(&client, &namespace, "container-kill")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_abort_mid_run_stops_the_engine_with_the_reason() {
    let (client, namespace, _operator, req) = scripted("pod-delete", Scripted::Pass, 60).await;
    litmus::create_engine(&client, &req).await.unwrap();
    let (abort, signal) = watch::channel(None);

    let following = tokio::spawn({
        let client = client.clone();
        let req = req.clone();
        async move { follow(&client, &req, signal, Duration::from_secs(5)).await }
    });
    wait_until_running(&client, &req).await;
    let aborted = Instant::now();
    abort
        .send(Some(
            "abort condition: alert HighErrorRate firing on web".into(),
        ))
        .unwrap();
    let outcome = following.await.unwrap().unwrap();

    assert!(
        aborted.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    assert_eq!(outcome.verdict, ChaosVerdict::Stopped);
    assert_eq!(outcome.phase, "Stopped");
    assert_eq!(
        outcome.error_reason.as_deref(),
        Some("abort condition: alert HighErrorRate firing on web")
    );
    assert!(
        outcome.probes.iter().all(|p| p.verdict == "N/A"),
        "{outcome:?}"
    );
    let engine = engine(&client, &namespace, &req.engine).await;
    assert_eq!(engine.data["spec"]["engineState"], "stop");
    assert_eq!(engine.data["status"]["engineStatus"], "stopped");
    assert_eq!(
        engine.data["status"]["experiments"][0]["status"],
        "Forcefully Aborted"
    );
    let result = result(
        &client,
        &namespace,
        &litmus::result_name(&req.engine, "pod-delete"),
    )
    .await
    .unwrap();
    assert_eq!(
        result.data["status"]["experimentStatus"]["verdict"],
        "Stopped"
    );
    assert_eq!(result.data["status"]["history"]["stoppedRuns"], 1);
}

#[tokio::test]
async fn an_unacknowledged_abort_gives_up_after_the_ack_timeout() {
    let (client, namespace, _operator, req) = scripted("pod-cpu-hog", Scripted::Pass, 1).await;
    // An operator that never finishes and ignores the stop.
    create_annotated_engine(&client, &req, Scripted::Hang).await;
    let (abort, signal) = watch::channel(None);

    let following = tokio::spawn({
        let client = client.clone();
        let req = req.clone();
        async move { follow(&client, &req, signal, Duration::from_secs(1)).await }
    });
    wait_until_running(&client, &req).await;
    let aborted = Instant::now();
    abort
        .send(Some("deploygraph is shutting down".into()))
        .unwrap();
    let outcome = following.await.unwrap().unwrap();

    let waited = aborted.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert_eq!(outcome.verdict, ChaosVerdict::Stopped);
    assert_eq!(outcome.phase, "Stopped");
    let reason = outcome.error_reason.unwrap();
    assert!(
        reason.starts_with("deploygraph is shutting down (stop not acknowledged"),
        "{reason}"
    );
    let engine = engine(&client, &namespace, &req.engine).await;
    assert_eq!(
        engine.data["spec"]["engineState"], "stop",
        "the stop was asked for"
    );
    assert_eq!(engine.data["status"]["engineStatus"], "initialized");
}

#[tokio::test]
async fn an_engine_that_ends_without_a_result_is_an_error() {
    let (client, namespace) = setup().await;
    let _operator = Operator::spawn(client.clone(), &namespace);
    let req = request(&namespace, "pod-dns-error", 1);
    // The experiment disappeared between the check and the run: created without the check.
    create_annotated_engine(&client, &req, Scripted::Pass).await;

    let outcome = follow(&client, &req, never(), Duration::from_secs(1))
        .await
        .unwrap();

    assert_eq!(outcome.verdict, ChaosVerdict::Error);
    assert_eq!(outcome.phase, "ChaosExperiment Not Found");
    let reason = outcome.error_reason.unwrap();
    assert!(
        reason.contains("completed without a final ChaosResult"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_result_left_by_an_earlier_engine_is_not_this_runs_outcome() {
    let (client, namespace) = setup().await;
    operator::create_experiment(&client, &namespace, "pod-delete", Scripted::Fail)
        .await
        .unwrap();
    let req = request(&namespace, "pod-delete", 1);
    // A final Pass from an earlier engine of the same name, still in the namespace.
    Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &result_resource())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "litmuschaos.io/v1alpha1", "kind": "ChaosResult",
                "metadata": {"name": litmus::result_name(&req.engine, "pod-delete"),
                             "labels": {"chaosUID": "5f0c-earlier-engine"}},
                "spec": {"engine": req.engine, "experiment": "pod-delete"},
                "status": {"experimentStatus": {"phase": "Completed", "verdict": "Pass", "probeSuccessPercentage": "100"},
                           "history": {"passedRuns": 3, "failedRuns": 0, "stoppedRuns": 0}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let _operator = Operator::spawn(client.clone(), &namespace);

    litmus::create_engine(&client, &req).await.unwrap();
    let outcome = follow(&client, &req, never(), Duration::from_secs(2))
        .await
        .unwrap();

    assert_eq!(outcome.verdict, ChaosVerdict::Fail);
    let result = result(
        &client,
        &namespace,
        &litmus::result_name(&req.engine, "pod-delete"),
    )
    .await
    .unwrap();
    assert_eq!(
        result.data["status"]["history"],
        json!({"passedRuns": 3, "failedRuns": 1, "stoppedRuns": 0})
    );
}

#[tokio::test]
async fn an_abort_already_signalled_stops_at_once() {
    let (client, namespace, _operator, req) = scripted("pod-delete", Scripted::Pass, 60).await;
    litmus::create_engine(&client, &req).await.unwrap();
    wait_until_running(&client, &req).await;
    // The sender is gone, but its last word was an abort.
    let (abort, signal) = watch::channel(None);
    abort
        .send(Some("steady state lost before start".into()))
        .unwrap();
    drop(abort);

    let outcome = follow(&client, &req, signal, Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(outcome.verdict, ChaosVerdict::Stopped);
    assert_eq!(
        outcome.error_reason.as_deref(),
        Some("steady state lost before start")
    );
    assert_eq!(
        engine(&client, &namespace, &req.engine).await.data["status"]["engineStatus"],
        "stopped"
    );
}

/// Answers every request as kube-apiserver answers a path under an API group it does not serve
/// (checked against the test server: `404 page not found`, text/plain, no `Status`).
async fn server_without_litmus() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    if stream.readable().await.is_err() {
                        return;
                    }
                    match stream.try_read(&mut buffer) {
                        Ok(0) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => return,
                    }
                    // GETs have no body: one blank line ends each request.
                    while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        request.drain(..end + 4);
                        let response = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 19\r\n\r\n404 page not found\n";
                        let mut written = 0;
                        while written < response.len() {
                            if stream.writable().await.is_err() {
                                return;
                            }
                            match stream.try_write(&response[written..]) {
                                Ok(n) => written += n,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(_) => return,
                            }
                        }
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_cluster_without_the_litmus_crds_is_a_clear_error() {
    let url = server_without_litmus().await;
    let client = Client::try_from(Config::new(url.parse().unwrap())).unwrap();

    let err = litmus::ensure_experiment(&client, "shop", "pod-delete")
        .await
        .unwrap_err();

    assert!(
        matches!(&err, LitmusError::CrdMissing { crd, experiment, namespace }
            if crd == "chaosexperiments.litmuschaos.io" && experiment == "pod-delete" && namespace == "shop"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("CRD chaosexperiments.litmuschaos.io is not installed"),
        "{err}"
    );
}
