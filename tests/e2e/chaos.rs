//! `deploygraph chaos …` against the real API server with the in-test Litmus operator: a run is
//! recorded against the live release with its verdict and probes, a dry run creates nothing, an
//! operator abort and an alert on the target stop runs, the alert is RAISED by the run, and the
//! resilience trend reads it all back.

use crate::support::{
    Server, digest, post_json, run, sqlite_uri, stderr, stdout, temp_path, unique,
};
use deploygraph_chaos::operator::{Operator, Scripted, create_experiment, install_crds};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)")
}

fn scenario(
    ns: &str,
    service: &str,
    name: &str,
    experiment: &str,
    duration: &str,
    extra: &str,
) -> String {
    let path = temp_path(&format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}\ntarget: {{service: {service}, environment: production, namespace: {ns}, labels: {{app: {service}}}}}\n\
             driver: litmus\nexperiment: {experiment}\nduration: {duration}\nallowed_namespaces: [{ns}]\n\
             probes:\n  - {{name: up, type: httpProbe, mode: Continuous, 'httpProbe/inputs': {{url: 'http://x', method: {{get: {{criteria: '==', responseCode: '200'}}}}}}, runProperties: {{probeTimeout: 1s, interval: 1s}}}}\n{extra}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn json_out(args: &[&str]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn chaos_runs_are_recorded_per_release_and_can_be_stopped() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("chaos");
    let service = unique("pay");
    let _operator = runtime.block_on(async {
        install_crds(&client).await.unwrap();
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
        create_experiment(&client, &ns, "pod-delete", Scripted::Pass)
            .await
            .unwrap();
        create_experiment(&client, &ns, "pod-cpu-hog", Scripted::Hang)
            .await
            .unwrap();
        Operator::spawn(client.clone(), ns.clone())
    });
    let store = sqlite_uri();
    let kubeconfig = kubeconfig();
    let image = format!("ghcr.io/acme/pay@{}", digest(7));
    let deployed = json_out(&[
        "record",
        "deployment",
        "--store",
        &store,
        "--service",
        &service,
        "--environment",
        "production",
        "--namespace",
        &ns,
        "--commit",
        "abcdef1",
        "--image",
        &image,
        "--status",
        "succeeded",
        "--output",
        "json",
    ]);
    let release = deployed["uid"].as_str().unwrap().to_owned();
    // A newer release is recorded, but the Pods still run the first one's image: the run is
    // against what runs.
    let newer_image = format!("ghcr.io/acme/pay@{}", digest(8));
    let newer = json_out(&[
        "record",
        "deployment",
        "--store",
        &store,
        "--service",
        &service,
        "--environment",
        "production",
        "--namespace",
        &ns,
        "--commit",
        "abcdef2",
        "--image",
        &newer_image,
        "--status",
        "succeeded",
        "--started-at",
        &(chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339(),
        "--output",
        "json",
    ]);
    assert_ne!(newer["uid"], deployed["uid"]);
    runtime.block_on(async {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "pay-1", "labels": {"app": service}},
                "spec": {"containers": [{"name": "pay", "image": "ghcr.io/acme/pay:1"}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
        pods.patch_status(
            "pay-1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"containerStatuses": [{"name": "pay", "image": "ghcr.io/acme/pay:1",
                "imageID": format!("ghcr.io/acme/pay@{}", digest(7)), "ready": true, "restartCount": 0}]}})),
        )
        .await
        .unwrap();
    });

    // A dry run prints the ChaosEngine and creates nothing.
    let passing = scenario(&ns, &service, "pay-pod-delete", "pod-delete", "2s", "");
    let manifest = json_out(&["chaos", "run", &passing, "--dry-run", "--output", "json"]);
    assert_eq!(manifest["kind"], "ChaosEngine");
    assert_eq!(
        manifest["spec"]["appinfo"]["applabel"],
        format!("app={service}")
    );
    let engines: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &deploygraph_chaos::litmus::engine_resource(),
    );
    assert!(
        runtime
            .block_on(engines.list(&Default::default()))
            .unwrap()
            .items
            .is_empty()
    );

    // A run to its end, against the live release.
    let done = json_out(&[
        "chaos",
        "run",
        &passing,
        "--wait",
        "--store",
        &store,
        "--kubeconfig",
        &kubeconfig,
        "--recovery-timeout",
        "5s",
        "--output",
        "json",
    ]);
    assert_eq!(done["verdict"], "Pass", "{done}");
    assert_eq!(done["against"], release.as_str());
    assert_eq!(done["probe_success_pct"], 100.0);
    assert_eq!(done["probes"][0]["verdict"], "Passed");
    assert!(done["recovery_seconds"].as_f64().is_some(), "{done}");
    let run_uid = done["uid"].as_str().unwrap().to_owned();
    let shown = json_out(&[
        "chaos", "show", &run_uid, "--store", &store, "--output", "json",
    ]);
    assert_eq!(shown, done);
    let listed = json_out(&[
        "chaos",
        "list",
        "--service",
        &service,
        "--store",
        &store,
        "--output",
        "json",
    ]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Started without --wait, then aborted by an operator.
    let hanging = scenario(&ns, &service, "pay-cpu-hog", "pod-cpu-hog", "60s", "");
    let left = json_out(&[
        "chaos",
        "run",
        &hanging,
        "--store",
        &store,
        "--kubeconfig",
        &kubeconfig,
        "--output",
        "json",
    ]);
    assert_eq!(left["verdict"], "Awaited");
    let aborted = run(&[
        "chaos",
        "abort",
        left["uid"].as_str().unwrap(),
        "--reason",
        "game day over",
        "--store",
        &store,
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert!(aborted.status.success(), "{}", stderr(&aborted));
    let shown = json_out(&[
        "chaos",
        "show",
        left["uid"].as_str().unwrap(),
        "--store",
        &store,
        "--output",
        "json",
    ]);
    assert_eq!(
        (shown["verdict"].as_str(), shown["error_reason"].as_str()),
        (Some("Stopped"), Some("game day over"))
    );

    // A critical alert on the target stops a run; the alert is the run's, not a deployment's.
    let server = Server::start(&store, &[]);
    let stoppable = scenario(
        &ns,
        &service,
        "pay-pod-delete-long",
        "pod-delete",
        "60s",
        "abort: {alert_severity: critical, deadline: 2m}\n",
    );
    let chaos = std::process::Command::new(crate::support::bin())
        .args([
            "chaos",
            "run",
            &stoppable,
            "--wait",
            "--store",
            &store,
            "--kubeconfig",
            &kubeconfig,
            "--ack-timeout",
            "10s",
            "--recovery-timeout",
            "3s",
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running = json_out(&[
            "chaos",
            "list",
            "--service",
            &service,
            "--store",
            &store,
            "--output",
            "json",
        ]);
        if running["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["scenario"] == "pay-pod-delete-long")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the long run was not recorded as started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let fingerprint = unique("fp");
    let (status, _, body) = post_json(
        &format!("{}/v1/alerts/alertmanager", server.url),
        &json!({"version": "4", "status": "firing", "receiver": "deploygraph", "groupLabels": {},
                "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "groupKey": "g",
                "truncatedAlerts": 0,
                "alerts": [{"status": "firing", "fingerprint": fingerprint,
                            "labels": {"alertname": "PaymentsDown", "service": service, "namespace": ns,
                                       "environment": "production", "severity": "critical"},
                            "annotations": {}, "startsAt": chrono::Utc::now().to_rfc3339(),
                            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom"}]}),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let out = chaos.wait_with_output().unwrap();
    let stopped: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.code(),
        Some(1),
        "Stopped is not the expected Pass"
    );
    assert_eq!(stopped["verdict"], "Stopped", "{stopped}");
    assert!(
        stopped["error_reason"]
            .as_str()
            .unwrap()
            .contains("PaymentsDown"),
        "{stopped}"
    );
    let (_, suspects) = crate::support::settled_suspects(&server.url, &fingerprint);
    assert_eq!(suspects["chaos"]["run_uid"], stopped["uid"], "{suspects}");
    assert!(suspects["suspects"].as_array().unwrap().is_empty());

    // The resilience trend of the release.
    let trend = json_out(&[
        "query",
        "resilience",
        "--service",
        &service,
        "--store",
        &store,
        "--output",
        "json",
    ]);
    let verdicts: Vec<(&str, &str)> = trend["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scenario"].as_str().unwrap(),
                r["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(verdicts.contains(&("pay-pod-delete", "Pass")), "{trend}");
    assert!(
        verdicts.contains(&("pay-pod-delete-long", "Stopped")),
        "{trend}"
    );
    let text = run(&[
        "query",
        "resilience",
        "--service",
        &service,
        "--store",
        &store,
    ]);
    assert!(
        stdout(&text).contains("pay-pod-delete"),
        "{}",
        stdout(&text)
    );

    // Outside the allow-list nothing is created.
    let outside = temp_path("outside.yaml");
    std::fs::write(
        &outside,
        std::fs::read_to_string(&passing).unwrap().replace(
            &format!("allowed_namespaces: [{ns}]"),
            "allowed_namespaces: [elsewhere]",
        ),
    )
    .unwrap();
    let refused = run(&[
        "chaos",
        "run",
        outside.to_str().unwrap(),
        "--wait",
        "--store",
        &store,
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("allowed_namespaces"),
        "{}",
        stderr(&refused)
    );
}

fn local_scenario(name: &str, duration: &str, fault: &str) -> String {
    let path = temp_path(&format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}\ntarget: {{service: {name}, environment: production}}\ndriver: local\n\
             experiment: {name}\nduration: {duration}\nallowed_namespaces: [host]\nlocal:\n{fault}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn cpu_hog_cgroups() -> Vec<String> {
    let mut found = Vec::new();
    for root in [
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        if let Ok(entries) = std::fs::read_dir(root) {
            found.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("deploygraph-chaos-cpu-hog")),
            );
        }
    }
    found
}

#[test]
fn local_faults_run_to_their_end_or_stop_on_sigterm_and_are_reverted() {
    let store = sqlite_uri();
    // A process kill: the worker is gone, the run passes.
    let mut victim = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid_file = temp_path("worker.pid");
    std::fs::write(&pid_file, victim.id().to_string()).unwrap();
    let kill = local_scenario(
        &unique("kill"),
        "1s",
        &format!(
            "  fault: process-kill\n  target: {{pid_file: {}}}\n",
            pid_file.display()
        ),
    );
    let done = json_out(&[
        "chaos",
        "run",
        &kill,
        "--wait",
        "--store",
        &store,
        "--recovery-timeout",
        "1s",
        "--output",
        "json",
    ]);
    assert_eq!(done["verdict"], "Pass", "{done}");
    assert!(
        victim.try_wait().unwrap().is_some(),
        "the process was killed"
    );

    // A CPU hog stopped by SIGTERM: recorded Stopped, its workers and cgroup gone.
    let hog = local_scenario(&unique("hog"), "60s", "  fault: cpu-hog\n  workers: 1\n");
    let mut chaos = std::process::Command::new(crate::support::bin())
        .args([
            "chaos",
            "run",
            &hog,
            "--wait",
            "--store",
            &store,
            "--recovery-timeout",
            "1s",
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cpu_hog_cgroups().is_empty() {
        assert!(Instant::now() < deadline, "the hog never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &chaos.id().to_string()])
        .status()
        .unwrap();
    let status = chaos.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(chaos.stdout.as_mut().unwrap(), &mut out).unwrap();
    let stopped: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(status.code(), Some(1), "Stopped is not the expected Pass");
    assert_eq!(
        (
            stopped["verdict"].as_str(),
            stopped["error_reason"].as_str()
        ),
        (Some("Stopped"), Some("interrupted"))
    );
    assert!(
        cpu_hog_cgroups().is_empty(),
        "reverted: {:?}",
        cpu_hog_cgroups()
    );
}
