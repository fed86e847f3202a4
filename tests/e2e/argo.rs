//! Argo Rollouts' real analysis controller (`scripts/services up kube argo`) evaluating
//! AnalysisRuns whose `web` metric calls `GET /v1/canary/judge` of a `deploygraph serve`, with
//! the README's AnalysisTemplate: `jsonPath: "{$.verdict}"`, `successCondition: result ==
//! "Pass"`, `failureCondition: result == "Fail"`, the bearer token from a Secret through an
//! argument into the `Authorization` header. The canary's metrics come from a real Prometheus
//! scraping the test target: a healthy canary makes the run Successful, an error spike Failed,
//! and a service without series (`NoData`, matching neither condition) Inconclusive.

use crate::alerts::{env_url, require_ready};
use crate::canary::{Target, Track, track_exposition, wait_for_selector};
use crate::support::{Server, create_namespace, http, sqlite_uri, unique};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "argo-analysis-token";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind),
        plural,
    )
}

/// The README's AnalysisTemplate's spec, calling `server`.
fn template_spec(server: &str) -> Value {
    json!({
        "args": [
            {"name": "service"},
            {"name": "deploygraph-token", "valueFrom": {"secretKeyRef": {"name": "deploygraph", "key": "token"}}}
        ],
        "metrics": [{
            "name": "deploygraph-judge",
            "interval": "1s",
            "count": 2,
            "successCondition": "result == \"Pass\"",
            "failureCondition": "result == \"Fail\"",
            "provider": {"web": {
                "url": format!("{server}/v1/canary/judge?service={{{{args.service}}}}&template=http-error-ratio&window=5s"),
                "headers": [{"key": "Authorization", "value": "Bearer {{args.deploygraph-token}}"}],
                "timeoutSeconds": 20,
                "jsonPath": "{$.verdict}"
            }}
        }]
    })
}

/// The AnalysisRun the Rollouts controller would make from the template for `service`.
fn run_of(template: &Value, name: &str, service: &str) -> Value {
    let mut spec = template.clone();
    spec["args"][0]["value"] = json!(service);
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": spec
    })
}

/// Waits (at most 90 s) for the run's phase to leave Pending/Running; its status.
fn finished(runtime: &tokio::runtime::Runtime, api: &Api<DynamicObject>, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let run = runtime.block_on(api.get(name)).unwrap();
        let status = run.data.get("status").cloned().unwrap_or(Value::Null);
        let phase = status["phase"].as_str().unwrap_or("");
        if !matches!(phase, "" | "Pending" | "Running") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "AnalysisRun {name} not finished within 90 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asks the endpoint until `service`'s verdict is `want` (the window holds enough scrapes).
fn until_verdict(server: &Server, service: &str, want: &str) {
    let url = format!(
        "{}/v1/canary/judge?service={service}&template=http-error-ratio&window=5s",
        server.url
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = http()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .and_then(reqwest::blocking::Response::json)
            .unwrap_or(Value::Null);
        if body["verdict"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "no {want} for {service}: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn argo_rollouts_analysis_runs_follow_the_judges_verdict() {
    let metrics = std::env::var("ARGO_TEST_METRICS").unwrap_or_default();
    let up = !metrics.is_empty()
        && http()
            .get(&metrics)
            .send()
            .is_ok_and(|r| r.status().is_success());
    assert!(
        up,
        "Argo Rollouts' controller is not running (ARGO_TEST_METRICS={metrics:?}); start it with \
         `scripts/services up kube argo && eval \"$(scripts/services env)\"`"
    );
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("argo");
    let (healthy, spike, missing) = (
        format!("{id}-ok"),
        format!("{id}-spike"),
        format!("{id}-none"),
    );
    let _target = {
        let (h, s) = (healthy.clone(), spike.clone());
        Target::serve(&prometheus, move |t| {
            let ok = Track::healthy();
            let spiking = Track {
                ok: 180.0,
                errors: 20.0,
                ..ok
            };
            let mut body = String::new();
            for (service, stable, canary) in [(&h, ok, ok), (&s, ok, spiking)] {
                for (track, series) in [("stable", stable), ("canary", canary)] {
                    let labels = format!("service=\"{service}\",track=\"{track}\"");
                    track_exposition(&mut body, &labels, &series, t);
                }
            }
            body
        })
    };
    let server = Server::start(
        &sqlite_uri(),
        &["--token", TOKEN, "--prometheus", &prometheus],
    );
    wait_for_selector(&prometheus, &format!("service=\"{spike}\""));
    until_verdict(&server, &healthy, "Pass");
    until_verdict(&server, &spike, "Fail");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("e2e-argo");
    create_namespace(&runtime, &client, &ns, json!({}));
    runtime.block_on(async {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "deploygraph"},
                                               "stringData": {"token": TOKEN}}))
                .unwrap(),
            )
            .await
            .unwrap();
    });
    // The template is accepted by Argo's CRD schema as the README writes it.
    let spec = template_spec(&server.url);
    let templates: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &resource("AnalysisTemplate", "analysistemplates"),
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "deploygraph-canary"}, "spec": spec
    }))
    .unwrap();
    runtime
        .block_on(templates.create(&PostParams::default(), &template))
        .unwrap();

    let runs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &resource("AnalysisRun", "analysisruns"),
    );
    for (name, service) in [
        ("healthy", &healthy),
        ("spike", &spike),
        ("missing", &missing),
    ] {
        let run: DynamicObject = serde_json::from_value(run_of(&spec, name, service)).unwrap();
        runtime
            .block_on(runs.create(&PostParams::default(), &run))
            .unwrap();
    }
    for (name, phase, value) in [
        ("healthy", "Successful", "\"Pass\""),
        ("spike", "Failed", "\"Fail\""),
        ("missing", "Inconclusive", "\"NoData\""),
    ] {
        let status = finished(&runtime, &runs, name);
        assert_eq!(
            status["phase"],
            phase,
            "{name}: {status}\nserve log:\n{}",
            server.logs()
        );
        let measurement = &status["metricResults"][0]["measurements"][0];
        assert_eq!(measurement["value"], value, "{name}: {status}");
    }
}
