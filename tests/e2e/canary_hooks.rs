//! The canary hooks of `deploygraph serve` against a real Prometheus (`PROMETHEUS_TEST_URL`):
//! `GET /v1/canary/judge` (Argo Rollouts' web metric provider) and `POST /v1/canary/flagger`
//! (Flagger's webhook). The test target serves a healthy canary, an error spike (as
//! `service`/`track` series for the judge's default selectors) and Flagger's pods (as
//! `namespace`/`pod` series named like Flagger's Deployments); a service without series has no
//! data. Verdicts are polled until the window holds enough scrapes, bounded.

use crate::alerts::{env_url, require_ready};
use crate::canary::{COMBINED_TEMPLATE, Target, Track, track_exposition, wait_for_selector};
use crate::support::{Server, deployment, http, post_json, sqlite_uri, temp_path, unique};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "canary-hooks-token";

/// GETs `url` with `token`; the status, `Retry-After` and body.
fn get(url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = http().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().unwrap_or(Value::Null))
}

fn judge_url(server: &Server, params: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(&format!("{}/v1/canary/judge", server.url)).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// Asks until the verdict is `want` (the window fills with scrapes), at most 30 s; the answer.
fn until_verdict(want: &str, mut ask: impl FnMut() -> (u16, Value)) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ask();
        if body["verdict"] == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no {want} verdict within 30 s; last answer {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The target's series: `service`/`track` tracks of two services, and Flagger's pods of
/// `podinfo` (canary, with an error spike) and `podinfo-primary` in namespace `ns`.
fn exposition(healthy: &str, spike: &str, ns: &str, t: f64) -> String {
    let ok = Track::healthy();
    let spiking = Track {
        ok: 180.0,
        errors: 20.0,
        ..ok
    };
    let mut body = String::new();
    for (service, stable, canary) in [(healthy, ok, ok), (spike, ok, spiking)] {
        for (track, series) in [("stable", stable), ("canary", canary)] {
            track_exposition(
                &mut body,
                &format!("service=\"{service}\",track=\"{track}\""),
                &series,
                t,
            );
        }
    }
    // 60 requests a second a side: a 5 s window holds 300, below the template's 500.
    let sparse = |errors: f64| Track {
        ok: 60.0 - errors,
        errors,
        latency: None,
        gauge: None,
    };
    for (pod, series) in [
        ("podinfo-7c9d5b6f4-x2k9q", spiking),
        ("podinfo-primary-5d9f7c8b6-a1b2c", ok),
        ("quiet-6b8c9d7f5-q1w2e", sparse(6.0)),
        ("quiet-primary-4c7d8e9f6-r3t4y", sparse(0.3)),
    ] {
        track_exposition(
            &mut body,
            &format!("namespace=\"{ns}\",pod=\"{pod}\""),
            &series,
            t,
        );
    }
    body
}

fn templates_dir() -> String {
    let dir = temp_path("canary-templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("errors-and-latency.yaml"), COMBINED_TEMPLATE).unwrap();
    dir.display().to_string()
}

#[test]
fn the_argo_and_flagger_hooks_judge_against_a_real_prometheus() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let id = unique("h");
    let (healthy, spike, missing, ns) = (
        format!("{id}-ok"),
        format!("{id}-spike"),
        format!("{id}-none"),
        format!("{id}-ns"),
    );
    let _target = {
        let (h, s, n) = (healthy.clone(), spike.clone(), ns.clone());
        Target::serve(&prometheus, move |t| exposition(&h, &s, &n, t))
    };
    let dir = templates_dir();
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            TOKEN,
            "--prometheus",
            &prometheus,
            "--canary-templates",
            &dir,
        ],
    );
    wait_for_selector(&prometheus, &format!("service=\"{spike}\""));
    wait_for_selector(&prometheus, &format!("namespace=\"{ns}\""));

    // A healthy canary passes, with a template of the server's directory.
    let pass = until_verdict("Pass", || {
        let (s, _, b) = get(
            &judge_url(
                &server,
                &[
                    ("service", healthy.as_str()),
                    ("template", "errors-and-latency"),
                    ("window", "5s"),
                ],
            ),
            Some(TOKEN),
        );
        (s, b)
    });
    assert_eq!(pass["template"], "errors-and-latency", "{pass}");
    assert_eq!(pass["window"], "5s", "{pass}");
    assert_eq!(pass["baseline"]["kind"], "side_by_side", "{pass}");
    assert_eq!(
        pass["canary"]["selector"],
        format!("service=\"{healthy}\",track=\"canary\""),
        "{pass}"
    );
    let metrics = pass["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{pass}");
    assert_eq!(metrics[0]["outcome"], "pass", "{pass}");
    assert!(
        metrics[0]["canary"]["samples"].as_u64().unwrap() >= 200,
        "{pass}"
    );
    assert_eq!(metrics[0]["queries"].as_array().unwrap().len(), 4, "{pass}");
    assert!(pass.get("recorded").is_none(), "{pass}");

    // An error spike fails, and with `deployment` the analysis is recorded as the deployment's.
    let (status, _, recorded) = post_json(
        &format!("{}/v1/deployments", server.url),
        &deployment(&spike, 5, 5),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{recorded}");
    let uid = recorded["uid"].as_str().unwrap().to_owned();
    let fail = until_verdict("Fail", || {
        let (s, _, b) = get(
            &judge_url(
                &server,
                &[
                    ("service", spike.as_str()),
                    ("template", "http-error-ratio"),
                    ("window", "5s"),
                    ("deployment", uid.as_str()),
                ],
            ),
            Some(TOKEN),
        );
        (s, b)
    });
    assert_eq!(fail["metrics"][0]["outcome"], "fail", "{fail}");
    assert_eq!(fail["metrics"][0]["critical"], true, "{fail}");
    assert_eq!(fail["recorded"]["deployment"], uid, "{fail}");
    let analysis_uid = fail["recorded"]["uid"].as_str().unwrap().to_owned();
    let (status, _, stored) = get(&format!("{}/v1/deployments/{uid}/canary", server.url), None);
    assert_eq!(status, 200, "{stored}");
    let analyses = stored["analyses"].as_array().unwrap();
    let analysis = analyses
        .iter()
        .find(|a| a["uid"] == analysis_uid.as_str())
        .unwrap_or_else(|| panic!("the recorded analysis is stored: {stored}"));
    assert_eq!(analysis["verdict"], "fail", "{stored}");
    assert_eq!(analysis["template"], "http-error-ratio", "{stored}");
    assert_eq!(analysis["metrics"][0]["outcome"], "fail", "{stored}");

    // A service without series: no data (200: the caller's conditions decide).
    let (status, _, none) = get(
        &judge_url(
            &server,
            &[
                ("service", missing.as_str()),
                ("template", "http-error-ratio"),
                ("window", "5s"),
            ],
        ),
        Some(TOKEN),
    );
    assert_eq!(
        (status, none["verdict"].as_str()),
        (200, Some("NoData")),
        "{none}"
    );

    // Flagger: the canary's pods (podinfo-…) have the spike, the primary's do not: 412 with
    // the evidence; selectors from the pod-name convention.
    let flagger = format!("{}/v1/canary/flagger", server.url);
    let payload = json!({
        "name": "podinfo", "namespace": ns, "phase": "Progressing", "checksum": "7f9c",
        "metadata": {"template": "http-error-ratio", "window": "5s"}
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let (status, _, body) = post_json(&flagger, &payload, Some(TOKEN));
        if status == 412 {
            break body;
        }
        assert!(
            status == 200 && Instant::now() < deadline,
            "no 412 within 30 s: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(failed["verdict"], "Fail", "{failed}");
    assert_eq!(
        failed["canary"]["selector"],
        format!("namespace=\"{ns}\",pod=~\"podinfo-[0-9a-zA-Z]+-[0-9a-zA-Z]+\""),
        "{failed}"
    );
    assert_eq!(
        failed["baseline"]["selector"],
        format!("namespace=\"{ns}\",pod=~\"podinfo-primary-[0-9a-zA-Z]+-[0-9a-zA-Z]+\""),
        "{failed}"
    );
    assert_eq!(failed["flagger"]["phase"], "Progressing", "{failed}");
    assert_eq!(failed["flagger"]["checksum"], "7f9c", "{failed}");
    // The primary judged against itself is no worse: 200 (Pass); the template in the query.
    let (status, _, passed) = post_json(
        &format!("{flagger}?template=http-error-ratio&window=5s"),
        &json!({
            "name": "podinfo", "namespace": ns, "phase": "Progressing",
            "metadata": {"canary_selector": format!("namespace=\"{ns}\",pod=~\"podinfo-primary-.*\""),
                         "baseline_selector": format!("namespace=\"{ns}\",pod=~\"podinfo-primary-.+\"")}
        }),
        Some(TOKEN),
    );
    assert_eq!(
        (status, passed["verdict"].as_str()),
        (200, Some("Pass")),
        "{passed}"
    );
    // No data is not a failed check: 200.
    let (status, _, idle) = post_json(
        &flagger,
        &json!({"name": "idle", "namespace": ns, "phase": "Progressing",
                "metadata": {"template": "http-error-ratio", "window": "5s"}}),
        Some(TOKEN),
    );
    assert_eq!(
        (status, idle["verdict"].as_str()),
        (200, Some("NoData")),
        "{idle}"
    );

    // A quiet canary (no 5 s window holds the template's 500 requests): each call of one
    // rollout (one checksum) is inconclusive on its window, until the run since the server
    // first judged it holds enough to fail the sequential test.
    let quiet = json!({
        "name": "quiet", "namespace": ns, "phase": "Progressing", "checksum": "q1",
        "metadata": {"template": "http-error-ratio", "window": "5s"}
    });
    let (status, _, first) = post_json(&flagger, &quiet, Some(TOKEN));
    assert_eq!(status, 200, "{first}");
    assert_ne!(first["verdict"], "Fail", "{first}");
    assert!(first["metrics"][0].get("sequential").is_none(), "{first}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let caught = loop {
        std::thread::sleep(Duration::from_secs(1));
        let (status, _, body) = post_json(&flagger, &quiet, Some(TOKEN));
        if status == 412 {
            break body;
        }
        assert!(
            status == 200 && Instant::now() < deadline,
            "no 412 within 40 s: {status} {body}"
        );
    };
    let metric = &caught["metrics"][0];
    assert_eq!(metric["sequential"]["outcome"], "fail", "{caught}");
    assert!(
        metric["rule"]
            .as_str()
            .unwrap()
            .contains("; in the last window: too little traffic"),
        "{caught}"
    );
    // Another revision of the canary is another run: its first call judges its window only.
    let mut next = quiet.clone();
    next["checksum"] = json!("q2");
    let (status, _, fresh) = post_json(&flagger, &next, Some(TOKEN));
    assert_eq!(status, 200, "{fresh}");
    assert!(fresh["metrics"][0].get("sequential").is_none(), "{fresh}");

    // Argo: the same quiet canary through the web metric provider, its calls named by `run`
    // (the canary's pod-template-hash): one window at first, then the run since the first call.
    let quiet_judge = |run: &str| {
        judge_url(
            &server,
            &[
                ("service", "quiet"),
                ("template", "http-error-ratio"),
                ("window", "5s"),
                (
                    "canary_selector",
                    &format!("namespace=\"{ns}\",pod=~\"quiet-[0-9a-zA-Z]+-[0-9a-zA-Z]+\""),
                ),
                (
                    "baseline_selector",
                    &format!("namespace=\"{ns}\",pod=~\"quiet-primary-[0-9a-zA-Z]+-[0-9a-zA-Z]+\""),
                ),
                ("run", run),
            ],
        )
    };
    let (status, _, first) = get(&quiet_judge("6b8c9d7f5"), Some(TOKEN));
    assert_eq!(status, 200, "{first}");
    assert_ne!(first["verdict"], "Fail", "{first}");
    assert!(first["metrics"][0].get("sequential").is_none(), "{first}");
    let caught = until_verdict("Fail", || {
        std::thread::sleep(Duration::from_millis(500));
        let (s, _, b) = get(&quiet_judge("6b8c9d7f5"), Some(TOKEN));
        (s, b)
    });
    assert_eq!(
        caught["metrics"][0]["sequential"]["outcome"], "fail",
        "{caught}"
    );
    let (status, _, bad) = get(&quiet_judge("not a run"), Some(TOKEN));
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (422, Some("run")),
        "{bad}"
    );

    // Each analysis is counted by hook and verdict.
    let metrics = http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for series in [
        r#"deploygraph_canary_hook_analyses_total{hook="argo",verdict="pass"}"#,
        r#"deploygraph_canary_hook_analyses_total{hook="argo",verdict="fail"}"#,
        r#"deploygraph_canary_hook_analyses_total{hook="argo",verdict="no_data"}"#,
        r#"deploygraph_canary_hook_analyses_total{hook="flagger",verdict="fail"}"#,
        r#"deploygraph_canary_hook_analyses_total{hook="flagger",verdict="no_data"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
}

#[test]
fn the_hooks_need_the_write_token_and_refuse_bad_input_naming_it() {
    let prometheus = env_url("PROMETHEUS_TEST_URL");
    require_ready("Prometheus", &prometheus);
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--token",
            TOKEN,
            "--read-token",
            "reader",
            "--prometheus",
            &prometheus,
        ],
    );
    let ok = [("service", "payments"), ("template", "http-error-ratio")];
    // Auth: none, the read token and a wrong one are 401; the write token passes.
    for token in [None, Some("reader"), Some("wrong")] {
        let (status, _, body) = get(&judge_url(&server, &ok), token);
        assert_eq!(status, 401, "{token:?}: {body}");
        let (status, _, body) = post_json(
            &format!("{}/v1/canary/flagger?template=http-error-ratio", server.url),
            &json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing"}),
            token,
        );
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    let (status, _, body) = get(&judge_url(&server, &ok), Some(TOKEN));
    assert_eq!(status, 200, "{body}");

    // Bad input: 422 naming the parameter (404 for what does not exist), nothing run.
    let unknown_deployment = format!("deployment-{}", "0".repeat(32));
    for (params, status, field) in [
        (
            vec![("service", "payments"), ("template", "no-such-template")],
            404,
            "template",
        ),
        (
            vec![("service", "payments"), ("template", "../../etc/passwd")],
            422,
            "template",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("canary_selector", "app=\"web\"} or vector(1"),
            ],
            422,
            "canary_selector",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("baseline_selector", "__name__=\"up\""),
            ],
            422,
            "baseline_selector",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("canary_selector", "app=\"web\""),
                ("baseline_selector", "app = \"web\""),
            ],
            422,
            "baseline_selector",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("window", "1h30m"),
            ],
            422,
            "window",
        ),
        (
            vec![("service", "Pay Ments"), ("template", "http-error-ratio")],
            422,
            "service",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("deployment", "nope"),
            ],
            422,
            "deployment",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("deployment", unknown_deployment.as_str()),
            ],
            404,
            "deployment",
        ),
        (
            vec![
                ("service", "payments"),
                ("template", "http-error-ratio"),
                ("selector", "x"),
            ],
            422,
            "selector",
        ),
        (vec![("template", "http-error-ratio")], 422, ""),
    ] {
        let (got, _, body) = get(&judge_url(&server, &params), Some(TOKEN));
        assert_eq!(got, status, "{params:?}: {body}");
        if !field.is_empty() {
            assert_eq!(body["error"]["field"], field, "{params:?}: {body}");
        }
    }
    let flagger = format!("{}/v1/canary/flagger", server.url);
    for (url, payload, field) in [
        (
            flagger.clone(),
            json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing"}),
            "template",
        ),
        (
            format!("{flagger}?template=http-error-ratio"),
            json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing",
                   "metadata": {"template": "http-latency-p99"}}),
            "metadata.template",
        ),
        (
            flagger.clone(),
            json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing",
                   "metadata": {"tempalte": "http-error-ratio"}}),
            "metadata.tempalte",
        ),
        (
            format!("{flagger}?template=http-error-ratio"),
            json!({"name": "Podinfo", "namespace": "prod", "phase": "Progressing"}),
            "name",
        ),
        (
            flagger.clone(),
            json!({"name": "podinfo", "namespace": "prod", "phase": "Progressing",
                   "metadata": {"template": "http-error-ratio", "window": "soon"}}),
            "metadata.window",
        ),
    ] {
        let (status, _, body) = post_json(&url, &payload, Some(TOKEN));
        assert_eq!(status, 422, "{payload}: {body}");
        assert_eq!(body["error"]["field"], field, "{payload}: {body}");
    }

    // Prometheus that does not answer: 503 with Retry-After, naming the query.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let unreachable = Server::start(&sqlite_uri(), &["--token", TOKEN, "--prometheus", &closed]);
    let (status, retry, body) = get(&judge_url(&unreachable, &ok), Some(TOKEN));
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some(), "Retry-After: {body}");
    assert_eq!(body["error"]["code"], "prometheus_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{body}"
    );

    // No Prometheus configured: 404 unsupported, saying how to configure it.
    let bare = Server::start(&sqlite_uri(), &["--token", TOKEN]);
    let (status, _, body) = get(&judge_url(&bare, &ok), Some(TOKEN));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unsupported")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--prometheus"),
        "{body}"
    );
    // No token configured: the hooks are off (403), like user Cypher.
    let open = Server::start(&sqlite_uri(), &["--prometheus", &prometheus]);
    let (status, _, body) = get(&judge_url(&open, &ok), None);
    assert_eq!(status, 403, "{body}");
}

#[test]
fn a_broken_templates_directory_stops_serve_naming_the_file_and_field() {
    let dir = temp_path("broken-templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "name: b\nmetrics:\n  - name: m\n    kind: ratio\n    direction: sideways\n",
    )
    .unwrap();
    let out = crate::support::run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &sqlite_uri(),
        "--canary-templates",
        &dir.display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        crate::support::stderr(&out)
    );
    let stderr = crate::support::stderr(&out);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("metrics[0].direction"),
        "{stderr}"
    );
}
