//! The admission gate against the real API server: `serve --admission-tls-*` registered as a
//! ValidatingWebhook (the test CA in its `caBundle`, its URL on loopback, only this test's
//! namespace selected). A Deployment's image change is refused while a certificate check of
//! the newest snapshot fails, admitted after a passing one, admitted with a recorded override
//! (linked to the deployment the watcher records for it), and scaling is never blocked.

use crate::support::{
    Server, create_namespace, delete_namespace, free_port, http, sqlite_uri, temp_path, unique,
};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "admission-test-token";

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": image}]}}}
    }))
    .unwrap()
}

/// Takes a snapshot whose one check is the TLS endpoint on `port`: fails when its
/// certificate expires within 7 days.
fn snapshot(server: &Server, port: u16) -> Value {
    let (status, _, body) = crate::support::post_json(
        &format!("{}/v1/snapshots", server.url),
        &json!({"config": {"checkend": 604_800, "allow_untrusted": true,
                           "tls": [format!("127.0.0.1:{port}")]}}),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{body}");
    body
}

fn refusal(result: Result<Deployment, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(e)) if e.code == 403 => e.message,
        other => panic!("expected the gate's refusal, got {other:?}"),
    }
}

#[test]
fn the_admission_gate_refuses_admits_and_records_overrides_in_the_real_api_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("gate");
    let ca = deploygraph_probe::testing::Ca::new("deploygraph admission test CA");
    let serving = deploygraph_probe::testing::leaf(Some(&ca), &["127.0.0.1"], -1, 24 * 30);
    let dir = temp_path("admission");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &serving.pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    // The endpoints the snapshots check: one healthy, one whose certificate expires in 2 days.
    let (healthy, expiring) = runtime.block_on(async {
        (
            deploygraph_probe::testing::serve(deploygraph_probe::testing::leaf(
                None,
                &["127.0.0.1"],
                -1,
                24 * 90,
            ))
            .await,
            deploygraph_probe::testing::serve(deploygraph_probe::testing::leaf(
                None,
                &["127.0.0.1"],
                -1,
                48,
            ))
            .await,
        )
    });

    let gate_port = free_port();
    let gate_listen = format!("127.0.0.1:{gate_port}");
    let kubeconfig = std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST");
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            TOKEN,
            "--admission-tls-cert",
            &cert_arg,
            "--admission-tls-key",
            &key_arg,
            "--admission-listen",
            &gate_listen,
            "--admission-timeout",
            "2s",
            "--snapshot-allow-target",
            "127.0.0.1",
            "--watch-kubernetes",
            "--watch-kubeconfig",
            &kubeconfig,
            "--watch-namespace",
            &ns,
            "--lease-namespace",
            &ns,
        ],
    );

    create_namespace(&runtime, &client, &ns, json!({"deploygraph-test-gate": ns}));
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let webhook_name = unique("deploygraph-gate");
    runtime.block_on(async {
        let ca_bundle = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            ca.pem().as_bytes(),
        );
        let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": webhook_name},
            "webhooks": [{
                "name": "gate.deploygraph.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "clientConfig": {
                    "url": format!("https://{gate_listen}/v1/admission/validate"),
                    "caBundle": ca_bundle
                },
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"],
                           "resources": ["deployments", "statefulsets", "daemonsets"],
                           "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"deploygraph-test-gate": ns}}
            }]
        }))
        .unwrap();
        webhooks
            .create(&PostParams::default(), &config)
            .await
            .unwrap();
    });

    // No snapshot yet: a new Deployment is refused, once the API server has the webhook.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_refusal = loop {
        match runtime
            .block_on(deployments.create(&dry_run, &deployment("web", "registry.local/web:v1")))
        {
            Err(kube::Error::Api(e)) if e.code == 403 => break e.message,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the webhook never answered: {other:?}\n{}",
                    server.logs()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(
        first_refusal.contains("no infra snapshot recorded in the last 1h00m"),
        "{first_refusal}"
    );

    // A passing snapshot: the Deployment is admitted.
    assert_eq!(snapshot(&server, healthy)["verdict"], "pass");
    runtime
        .block_on(deployments.create(
            &PostParams::default(),
            &deployment("web", "registry.local/web:v1"),
        ))
        .unwrap();

    // A certificate about to expire: the image change is refused, the check named.
    assert_eq!(snapshot(&server, expiring)["verdict"], "fail");
    let image = |tag: &str| {
        Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": format!("registry.local/web:{tag}")}]}}}}))
    };
    let message =
        refusal(runtime.block_on(deployments.patch("web", &PatchParams::default(), &image("v2"))));
    assert!(
        message.contains("deploygraph gate refused the rollout of Deployment")
            && message.contains(&format!("tls 127.0.0.1:{expiring}"))
            && message.contains("deploygraph.io/gate-override"),
        "{message}"
    );
    // Scaling is not a rollout: never blocked.
    let scaled = runtime
        .block_on(deployments.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        ))
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));

    // Break glass: the change goes through with the annotation, and who and why is recorded.
    let mut overridden = json!({"metadata": {"annotations": {
        "deploygraph.io/gate-override": "INC-7 certificate renewal pending"}}});
    overridden["spec"] = json!({"template": {"spec": {"containers": [
        {"name": "web", "image": "registry.local/web:v2"}]}}});
    runtime
        .block_on(deployments.patch("web", &PatchParams::default(), &Patch::Merge(overridden)))
        .unwrap();
    let url = format!("{}/v1/gate/overrides?namespace={ns}", server.url);
    let deadline = Instant::now() + Duration::from_secs(30);
    let recorded = loop {
        let body: Value = http().get(&url).send().unwrap().json().unwrap();
        let item = body["items"][0].clone();
        if item["deployment_uid"].is_string() {
            break item;
        }
        assert!(
            Instant::now() < deadline,
            "override not linked: {body}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(recorded["kind"], "Deployment");
    assert_eq!(recorded["name"], "web");
    assert_eq!(recorded["operation"], "UPDATE");
    assert_eq!(recorded["reason"], "INC-7 certificate renewal pending");
    assert!(!recorded["user"].as_str().unwrap().is_empty());
    assert!(recorded["refusal"].as_str().unwrap().contains("failed"));
    let admitted: Value = http()
        .get(format!(
            "{}/v1/deployments/{}",
            server.url,
            recorded["deployment_uid"].as_str().unwrap()
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        admitted["images"]
            .to_string()
            .contains("registry.local/web"),
        "{admitted}"
    );
    assert!(admitted.to_string().contains("v2"), "{admitted}");

    // Fixed: a new passing snapshot lets the next change through without the annotation.
    assert_eq!(snapshot(&server, healthy)["verdict"], "pass");
    runtime
        .block_on(deployments.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"deploygraph.io/gate-override": null}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "web", "image": "registry.local/web:v3"}]}}}}),
            ),
        ))
        .unwrap();

    // What is not an AdmissionReview is a 400 naming the field, over the same TLS listener.
    let tls = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = tls
        .post(format!("https://{gate_listen}/v1/admission/validate"))
        .json(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["field"], "request");
    let metrics = http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for decision in ["denied", "allowed", "overridden", "invalid"] {
        assert!(
            metrics.contains(&format!(
                "deploygraph_admission_reviews_total{{decision=\"{decision}\"}}"
            )),
            "{decision}"
        );
    }

    runtime
        .block_on(webhooks.delete(&webhook_name, &DeleteParams::default()))
        .unwrap();
    delete_namespace(&runtime, &client, &ns);
}
