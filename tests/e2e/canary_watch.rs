//! `serve --watch-kubernetes --prometheus` analyses the rollouts of workloads annotated
//! `deploygraph.io/canary-template`, against the real API server and a real Prometheus: the
//! test target serves each version's series under its `pod_template_hash`, the test creates the
//! Deployments and (no controller manager runs here) the ReplicaSets their controller would,
//! and the verdicts are read back from `GET /v1/deployments/{uid}/canary`.

use crate::alerts::{env_url, require_ready};
use crate::canary::{Target, Track, track_exposition, wait_for_selector};
use crate::support::{
    Server, create_namespace, free_port, get_json, sqlite_uri, temp_path, unique,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)")
}

/// A Deployment of `app` annotated with `annotations`.
fn deployment(app: &str, annotations: &Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": app, "labels": {"app": app}, "annotations": annotations},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}},
                              "spec": {"containers": [{"name": app, "image": format!("registry.local/{app}:2.0")}]}}}
    }))
    .unwrap()
}

/// The ReplicaSet the Deployment controller would make for revision `revision` (the
/// Deployment's image is `:2.0`; revision 1 ran `:1.0`).
fn replica_set(owner: &Deployment, revision: u32, hash: &str, replicas: i32) -> ReplicaSet {
    let app = owner.metadata.name.clone().unwrap();
    let image = format!("registry.local/{app}:{revision}.0");
    // The controller copies the Deployment's annotations to its ReplicaSets (so an undo, which
    // copies them back, keeps them).
    let mut annotations = owner.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        "deployment.kubernetes.io/revision".into(),
        revision.to_string(),
    );
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{app}-{hash}"),
            "labels": {"app": app, "pod-template-hash": hash},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                                 "uid": owner.metadata.uid.clone().unwrap(), "controller": true}]
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app, "pod-template-hash": hash}},
                 "template": {"metadata": {"labels": {"app": app, "pod-template-hash": hash}},
                              "spec": {"containers": [{"name": app, "image": image}]}}}
    }))
    .unwrap()
}

/// A track with 10 % errors.
fn spiking() -> Track {
    Track {
        ok: 180.0,
        errors: 20.0,
        ..Track::healthy()
    }
}

/// The scrape target serving each version's series under its `pod_template_hash`.
fn versions(prometheus: &str, sides: Vec<(String, Track)>) -> Target {
    Target::serve(prometheus, move |t| {
        let mut body = String::new();
        for (hash, track) in &sides {
            track_exposition(
                &mut body,
                &format!("pod_template_hash=\"{hash}\""),
                track,
                t,
            );
        }
        body
    })
}

/// The uid of `service`'s first recorded rollout (the one the test made).
fn first_rollout(server: &Server, service: &str) -> Option<String> {
    let listed = get_json(&format!("{}/v1/deployments?service={service}", server.url)).1;
    listed["items"]
        .as_array()?
        .iter()
        .min_by_key(|d| d["started_at"].as_str().unwrap_or_default().to_owned())
        .and_then(|d| d["uid"].as_str().map(str::to_owned))
}

/// Waits (at most 90 s) until `check` holds of `GET /v1/deployments/{uid}/canary` of
/// `service`'s first rollout (its newest analysis is `analyses[0]`); that answer. `logs` says
/// what the analysing processes logged, when it does not.
fn until_analysis(
    server: &Server,
    service: &str,
    check: impl Fn(&Value) -> bool,
    logs: &dyn Fn() -> String,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = Value::Null;
    loop {
        if let Some(uid) = first_rollout(server, service) {
            last = get_json(&format!("{}/v1/deployments/{uid}/canary", server.url)).1;
            if check(&last) {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no such analysis of {service} within 90 s; last answer {last}; log:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Creates `app`'s Deployment with `annotations` and the two ReplicaSets its controller would
/// (no controller manager runs here): the previous version `old` still runs one Pod beside
/// the new one, `new`.
async fn roll_out(
    deployments: &Api<Deployment>,
    replica_sets: &Api<ReplicaSet>,
    app: &str,
    annotations: &Value,
    (old, new): (&str, &str),
) {
    let created = deployments
        .create(&PostParams::default(), &deployment(app, annotations))
        .await
        .unwrap();
    for (revision, hash, replicas) in [(1, old, 1), (2, new, 1)] {
        replica_sets
            .create(
                &PostParams::default(),
                &replica_set(&created, revision, hash, replicas),
            )
            .await
            .unwrap();
    }
}

#[test]
fn serve_analyses_the_rollouts_of_annotated_workloads() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("cw");
    // Version hashes: each workload's old and new Pods.
    let (spike_old, spike_new, ok_old, ok_new, undo_old, undo_new) = (
        format!("{id}-s1"),
        format!("{id}-s2"),
        format!("{id}-h1"),
        format!("{id}-h2"),
        format!("{id}-u1"),
        format!("{id}-u2"),
    );
    let _target = versions(
        &prometheus,
        vec![
            (spike_old.clone(), Track::healthy()),
            (spike_new.clone(), spiking()),
            (ok_old.clone(), Track::healthy()),
            (ok_new.clone(), Track::healthy()),
            (undo_old.clone(), Track::healthy()),
            (undo_new.clone(), spiking()),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("e2e-canary-watch");
    create_namespace(&runtime, &client, &ns, json!({}));
    let kubeconfig = kubeconfig();
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            "canary-watch-token",
            "--prometheus",
            &prometheus,
            "--watch-kubernetes",
            "--watch-kubeconfig",
            &kubeconfig,
            "--watch-namespace",
            &ns,
            "--lease-namespace",
            &ns,
            "--canary-rollback",
        ],
    );
    wait_for_selector(&prometheus, &format!("pod_template_hash=\"{spike_new}\""));
    wait_for_selector(&prometheus, &format!("pod_template_hash=\"{ok_old}\""));
    let annotations = json!({
        "deploygraph.io/canary-template": "http-error-ratio",
        "deploygraph.io/canary-window": "5s",
        "deploygraph.io/canary-interval": "1s",
        "deploygraph.io/canary-max-duration": "40s",
    });
    let (spike, healthy, broken, plain, undone) = (
        format!("{id}-spike"),
        format!("{id}-ok"),
        format!("{id}-broken"),
        format!("{id}-plain"),
        format!("{id}-undone"),
    );
    // The spike's rollback is only planned; the other failing canary is undone.
    let with = |key: &str, value: &str| {
        let mut a = annotations.clone();
        a[key] = json!(value);
        a
    };
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    runtime.block_on(async {
        for (app, old, new, annotations) in [
            (
                &spike,
                &spike_old,
                &spike_new,
                with("deploygraph.io/canary-rollback", "dry-run"),
            ),
            (&healthy, &ok_old, &ok_new, annotations.clone()),
            (
                &undone,
                &undo_old,
                &undo_new,
                with("deploygraph.io/canary-rollback", "true"),
            ),
        ] {
            roll_out(&api, &replica_sets, app, &annotations, (old, new)).await;
        }
        // A template that does not exist, and a workload that does not opt in.
        api.create(
            &PostParams::default(),
            &deployment(
                &broken,
                &json!({"deploygraph.io/canary-template": "no-such-template"}),
            ),
        )
        .await
        .unwrap();
        api.create(&PostParams::default(), &deployment(&plain, &json!({})))
            .await
            .unwrap();
    });

    // The error spike fails against the previous version's Pods, side by side; its rollback
    // is planned and recorded as a dry run, the Deployment is left as it is.
    let answer = until_analysis(
        &server,
        &spike,
        |c| c["analyses"][0]["verdict"] == "fail" && c["rollbacks"][0]["dry_run"] == true,
        &|| server.logs(),
    );
    let failed = &answer["analyses"][0];
    assert_eq!(failed["final"], true, "{answer}");
    assert_eq!(failed["baseline_kind"], "side_by_side", "{failed}");
    assert_eq!(failed["template"], "http-error-ratio", "{failed}");
    let metric = &failed["metrics"][0];
    assert_eq!(metric["outcome"], "fail", "{failed}");
    let queries = metric["evidence"]["queries"].to_string();
    assert!(
        queries.contains(&format!("pod_template_hash=\\\"{spike_new}\\\""))
            && queries.contains(&format!("pod_template_hash=\\\"{spike_old}\\\"")),
        "the canary and baseline are the two ReplicaSets' Pods: {queries}"
    );

    let planned = &answer["rollbacks"][0];
    assert_eq!(planned["by"], "deploygraph serve", "{answer}");
    assert_eq!(planned["target"], format!("deployment/{spike}"), "{answer}");
    let image = |name: &str| {
        runtime.block_on(async {
            api.get(name)
                .await
                .unwrap()
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .containers[0]
                .image
                .clone()
                .unwrap()
        })
    };
    assert_eq!(image(&spike), format!("registry.local/{spike}:2.0"));

    // The other failing canary is undone to its previous ReplicaSet's template, the Rollback
    // recorded and its rollout rolled_back.
    // The rollback is done and recorded before the final round is (a rollback does not wait
    // for the graph), so the answer is awaited with both.
    let answer = until_analysis(
        &server,
        &undone,
        |c| c["rollbacks"][0]["dry_run"] == false && c["analyses"][0]["verdict"] == "fail",
        &|| server.logs(),
    );
    assert_eq!(answer["analyses"][0]["final"], true, "{answer}");
    assert_eq!(image(&undone), format!("registry.local/{undone}:1.0"));
    let uid = first_rollout(&server, &undone).unwrap();
    let rollout = get_json(&format!("{}/v1/deployments/{uid}", server.url)).1;
    assert_eq!(rollout["status"], "rolled_back", "{rollout}");
    // The undo is a rollout of its own (the restored version): analysed, never rolled back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .logs()
        .lines()
        .any(|l| l.contains("analysed, never rolled back") && l.contains(&undone))
    {
        assert!(
            Instant::now() < deadline,
            "the restored rollout of {undone} was not analysed:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The healthy canary passes for good once a whole window lies within its analysis (an
    // earlier round may already read `pass`, not final: on a loaded machine its first round
    // can find a window's data).
    let passed = until_analysis(
        &server,
        &healthy,
        |c| c["analyses"][0]["verdict"] == "pass" && c["analyses"][0]["final"] == true,
        &|| server.logs(),
    );
    let passed = &passed["analyses"][0];
    assert_eq!(passed["baseline_kind"], "side_by_side", "{passed}");
    assert!(passed["analyses"].as_u64().unwrap() >= 2, "{passed}");

    // Neither the broken opt-in nor the plain workload has an analysis; the broken one is
    // named in the log with its annotation once the watcher recorded it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = server.logs();
        if logs.contains("deploygraph.io/canary-template names no usable template")
            && logs.contains(&broken)
            && logs.contains("no-such-template")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no warning about {broken}'s template within 30 s:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for app in [&broken, &plain] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let uid = loop {
            let listed = get_json(&format!("{}/v1/deployments?service={app}", server.url)).1;
            if let Some(uid) = listed["items"][0]["uid"].as_str() {
                break uid.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the rollout of {app} is not recorded within 30 s: {listed}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let analyses = get_json(&format!("{}/v1/deployments/{uid}/canary", server.url)).1;
        assert_eq!(
            analyses["analyses"].as_array().map(Vec::len),
            Some(0),
            "{analyses}"
        );
    }
}

/// `deploygraph agent --prometheus` analyses the rollouts of its cluster's annotated workloads
/// as `serve` does, and records every round and rollback on the central server: the failing
/// canary's final `fail` and its planned rollback (`by: deploygraph agent`), the healthy one's
/// final `pass`, read back from the central server's API. The central server has no
/// Prometheus and watches nothing.
#[test]
fn an_agent_analyses_its_clusters_rollouts_and_records_them_centrally() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("ca");
    let (spike_old, spike_new, ok_old, ok_new) = (
        format!("{id}-s1"),
        format!("{id}-s2"),
        format!("{id}-h1"),
        format!("{id}-h2"),
    );
    let _target = versions(
        &prometheus,
        vec![
            (spike_old.clone(), Track::healthy()),
            (spike_new.clone(), spiking()),
            (ok_old.clone(), Track::healthy()),
            (ok_new.clone(), Track::healthy()),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("e2e-agent-canary");
    create_namespace(&runtime, &client, &ns, json!({}));
    const TOKEN: &str = "agent-canary-token";
    let server = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let (kubeconfig, spool) = (kubeconfig(), temp_path("agent-spool"));
    let listen = format!("127.0.0.1:{}", free_port());
    let agent = crate::agent::Process::spawn(&[
        "agent",
        "--server",
        &server.url,
        "--token",
        TOKEN,
        "--cluster",
        "agent-canary",
        "--spool-dir",
        spool.to_str().unwrap(),
        "--listen",
        &listen,
        "--prometheus",
        &prometheus,
        "--watch-kubernetes",
        "--watch-kubeconfig",
        &kubeconfig,
        "--watch-namespace",
        &ns,
        "--lease-namespace",
        &ns,
    ]);
    let agent_logs = || agent.logs();
    wait_for_selector(&prometheus, &format!("pod_template_hash=\"{spike_new}\""));
    wait_for_selector(&prometheus, &format!("pod_template_hash=\"{ok_old}\""));
    let annotations = json!({
        "deploygraph.io/canary-template": "http-error-ratio",
        "deploygraph.io/canary-window": "5s",
        "deploygraph.io/canary-interval": "1s",
        "deploygraph.io/canary-max-duration": "40s",
        "deploygraph.io/canary-rollback": "dry-run",
    });
    let (spike, healthy) = (format!("{id}-spike"), format!("{id}-ok"));
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    runtime.block_on(async {
        for (app, old, new) in [
            (&spike, &spike_old, &spike_new),
            (&healthy, &ok_old, &ok_new),
        ] {
            roll_out(&api, &replica_sets, app, &annotations, (old, new)).await;
        }
    });
    // While the healthy canary is analysed, its Deployment becomes available: the watcher
    // queues an update of the same rollout, which must not start its analysis again.
    let started = |app: &str| {
        agent_logs()
            .lines()
            .filter(|l| l.contains("canary analysis of the rollout started") && l.contains(app))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while started(&healthy) == 0 {
        assert!(
            Instant::now() < deadline,
            "no analysis of {healthy} started within 60 s:\n{}",
            agent_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    runtime.block_on(async {
        api.patch_status(
            &healthy,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 1, "replicas": 2,
                "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Available", "status": "True"}]}})),
        )
        .await
        .unwrap();
    });
    let logs = || format!("agent:\n{}\ncentral:\n{}", agent_logs(), server.logs());
    // The spike fails side by side; its rollback is planned and recorded, by the agent.
    let answer = until_analysis(
        &server,
        &spike,
        |c| c["analyses"][0]["verdict"] == "fail" && c["rollbacks"][0]["dry_run"] == true,
        &logs,
    );
    let failed = &answer["analyses"][0];
    assert_eq!(failed["final"], true, "{answer}");
    assert_eq!(failed["baseline_kind"], "side_by_side", "{failed}");
    let queries = failed["metrics"][0]["evidence"]["queries"].to_string();
    assert!(
        queries.contains(&format!("pod_template_hash=\\\"{spike_new}\\\"")),
        "{queries}"
    );
    assert_eq!(
        answer["rollbacks"][0]["by"], "deploygraph agent",
        "{answer}"
    );
    assert_eq!(
        answer["rollbacks"][0]["target"],
        format!("deployment/{spike}"),
        "{answer}"
    );
    // The healthy canary passes for good.
    let passed = until_analysis(
        &server,
        &healthy,
        |c| c["analyses"][0]["verdict"] == "pass" && c["analyses"][0]["final"] == true,
        &logs,
    );
    assert_eq!(
        passed["analyses"][0]["baseline_kind"], "side_by_side",
        "{passed}"
    );
    // The update reached the central server, and the analysis was not started again.
    let uid = first_rollout(&server, &healthy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_json(&format!("{}/v1/deployments/{uid}", server.url)).1["status"] != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "the healthy rollout's update did not arrive:\n{}",
            agent_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(started(&healthy), 1, "{}", agent_logs());
    assert_eq!(started(&spike), 1, "{}", agent_logs());
}
