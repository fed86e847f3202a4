//! Root-cause analysis from the command line: `query alerts|suspects|timeline|common-factors|
//! dora|cypher`, `report incident` and `topology apply`, each run against the store itself
//! (`--store`) and against `deploygraph serve` on the same store (`--server`), with alerts
//! delivered as Alertmanager webhook notifications to `/v1/alerts/alertmanager`.

use crate::support::{
    NEO4J, Server, deployment, digest, neo4j_uri, post_json, run, sqlite_uri, stderr, stdout,
    temp_path, unique,
};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

const TOKEN: &str = "rca-t0ken";
const OLDER_COMMIT: &str = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SUSPECT_COMMIT: &str = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now, to the second (times in the store have no sub-second digits here).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn fingerprint() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn args(fixed: &[&str], more: &[String]) -> Vec<String> {
    fixed
        .iter()
        .map(|a| (*a).to_owned())
        .chain(more.iter().cloned())
        .collect()
}

/// Runs the CLI, which must succeed, and returns its standard output.
fn ok(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "deploygraph {} exited {:?}\nstderr:\n{}\nstdout:\n{}",
        args.join(" "),
        out.status.code(),
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

fn ok_json(args: &[String]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("deploygraph {}: not JSON ({e}): {text}", args.join(" ")))
}

/// Runs the CLI, which must exit with `code`; returns its standard error.
fn fails(args: &[String], code: i32) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "deploygraph {}\nstderr:\n{}\nstdout:\n{}",
        args.join(" "),
        stderr(&out),
        stdout(&out)
    );
    stderr(&out)
}

/// `--store URI` and `--server URL --token T`: the two ways every command runs.
fn targets(store: &str, server: &Server) -> [Vec<String>; 2] {
    [
        vec!["--store".into(), store.into()],
        vec![
            "--server".into(),
            server.url.clone(),
            "--token".into(),
            TOKEN.into(),
        ],
    ]
}

/// `record deployment --store` of `service` in production; returns the recorded deployment.
fn record(store: &str, service: &str, commit: &str, started: DateTime<Utc>, seed: u32) -> Value {
    let image = format!("ghcr.io/acme/{service}@{}", digest(seed));
    let started_at = at(started);
    let finished_at = at(started + Duration::minutes(2));
    ok_json(&args(
        &[
            "record",
            "deployment",
            "--store",
            store,
            "--service",
            service,
            "--environment",
            "production",
            "--commit",
            commit,
            "--image",
            &image,
            "--status",
            "succeeded",
            "--started-at",
            &started_at,
            "--finished-at",
            &finished_at,
            "--output",
            "json",
        ],
        &[],
    ))
}

/// An Alertmanager webhook notification (version 4) with one alert on `service`.
fn notification(
    fingerprint: &str,
    service: &str,
    starts: DateTime<Utc>,
    ends: Option<DateTime<Utc>>,
) -> Value {
    let status = if ends.is_some() { "resolved" } else { "firing" };
    let labels = json!({"alertname": "HighErrorRate", "service": service,
                        "environment": "production", "severity": "critical"});
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "deploygraph", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status, "labels": labels,
            "annotations": {"summary": format!("{service} answers 5xx to over 5% of requests")},
            "startsAt": at(starts),
            "endsAt": ends.map_or("0001-01-01T00:00:00Z".to_owned(), at),
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint
        }]
    })
}

fn deliver(server: &Server, notification: &Value) {
    let url = format!("{}/v1/alerts/alertmanager", server.url);
    let (status, _, body) = post_json(&url, notification, Some(TOKEN));
    assert_eq!(status, 200, "{body}\n{}", server.logs());
}

fn items(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
}

#[test]
fn rca_queries_answer_alike_from_the_store_and_the_server() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", TOKEN]);
    let service = unique("pay");
    let alert_at = now() - Duration::hours(1);
    // The release before, outside the attribution window, the timeline's default day and
    // DORA's default month: what the older suspect changed is known (a first recorded
    // deployment has nothing to compare with).
    record(
        &store,
        &service,
        "0000000000000000000000000000000000000abc",
        alert_at - Duration::days(31),
        3,
    );
    let older = record(
        &store,
        &service,
        OLDER_COMMIT,
        // Well apart from the suspect: the test reads the pipeline, not a near tie of the model.
        alert_at - Duration::minutes(100),
        1,
    );
    let suspect = record(
        &store,
        &service,
        SUSPECT_COMMIT,
        alert_at - Duration::minutes(5),
        2,
    );
    let fp = fingerprint();
    deliver(&server, &notification(&fp, &service, alert_at, None));
    let since = at(alert_at - Duration::hours(2));
    let until = at(alert_at + Duration::minutes(30));
    let window = ["--since", since.as_str(), "--until", until.as_str()];

    let mut answers = Vec::new();
    for target in targets(&store, &server) {
        let alerts = ok_json(&args(
            &["query", "alerts", "--service", &service, "--output", "json"],
            &target,
        ));
        let list = items(&alerts["items"]);
        assert_eq!(list.len(), 1, "{alerts}");
        assert_eq!(list[0]["fingerprint"], fp.as_str());
        assert_eq!(list[0]["starts_at"], at(alert_at).as_str());
        let text = ok(&args(&["query", "alerts", "--fingerprint", &fp], &target));
        assert!(text.starts_with("STARTS_AT"), "{text}");
        assert!(
            text.contains(&fp) && text.contains("HighErrorRate") && text.contains("firing"),
            "{text}"
        );
        let none = ok_json(&args(
            &[
                "query",
                "alerts",
                "--service",
                &service,
                "--until",
                &since,
                "--output",
                "json",
            ],
            &target,
        ));
        assert!(items(&none["items"]).is_empty(), "{none}");

        // The suspect is the deployment just before the alert.
        let suspects = ok_json(&args(
            &["query", "suspects", "--alert", &fp, "--output", "json"],
            &target,
        ));
        let ranked = items(&suspects["suspects"]);
        assert!(!ranked.is_empty(), "{suspects}");
        assert_eq!(ranked[0]["deployment"]["uid"], suspect["uid"], "{suspects}");
        assert_eq!(ranked[0]["deployment"]["commit"]["sha"], SUSPECT_COMMIT);
        assert_eq!(suspects["alert"]["fingerprint"], fp.as_str());
        if let Some(second) = ranked.get(1) {
            assert_eq!(second["deployment"]["uid"], older["uid"]);
            assert!(ranked[0]["confidence_score"].as_f64() > second["confidence_score"].as_f64());
        }
        let text = ok(&args(&["query", "suspects", "--alert", &fp], &target));
        assert!(text.contains("HighErrorRate"), "{text}");
        assert!(text.contains(&format!("commit {SUSPECT_COMMIT}")), "{text}");
        // Finished two minutes after it started: it landed three minutes before the alert.
        assert!(
            text.contains("landed 3 min before the alert started"),
            "{text}"
        );
        let at_start = ok_json(&args(
            &[
                "query",
                "suspects",
                "--alert",
                &fp,
                "--starts-at",
                &at(alert_at),
                "--output",
                "json",
            ],
            &target,
        ));
        assert_eq!(at_start, suspects);

        // The timeline holds both deployments and the alert, oldest first.
        let timeline = ok_json(&args(
            &[
                "query",
                "timeline",
                "--service",
                &service,
                "--output",
                "json",
            ],
            &[&window.map(str::to_owned)[..], &target].concat(),
        ));
        let events: Vec<(String, String)> = items(&timeline["events"])
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["uid"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ("deployment".into(), older["uid"].as_str().unwrap().into()),
                ("deployment".into(), suspect["uid"].as_str().unwrap().into()),
                (
                    "alert_firing".into(),
                    list[0]["uid"].as_str().unwrap().into()
                ),
            ],
            "{timeline}"
        );
        // Without a window: the last 24 hours, which hold the same.
        let recent = ok_json(&args(
            &[
                "query",
                "timeline",
                "--service",
                &service,
                "--output",
                "json",
            ],
            &target,
        ));
        assert_eq!(items(&recent["events"]).len(), 3, "{recent}");
        let text = ok(&args(
            &["query", "timeline", "--service", &service],
            &target,
        ));
        assert!(
            text.contains("alert_firing") && text.contains("HighErrorRate fired"),
            "{text}"
        );
        assert!(text.contains("commit 2222222bbbbb"), "{text}");

        // DORA: two deployments in a window of 2.5 hours.
        let dora = ok_json(&args(
            &["query", "dora", "--service", &service, "--output", "json"],
            &[&window.map(str::to_owned)[..], &target].concat(),
        ));
        let rows = items(&dora["services"]);
        assert_eq!(rows.len(), 1, "{dora}");
        assert_eq!(rows[0]["service"], service.as_str());
        assert_eq!(rows[0]["environment"], "production");
        assert_eq!(rows[0]["deployments"], 2);
        assert_eq!(rows[0]["deployment_frequency_per_day"], 19.2, "{dora}");
        let month = ok_json(&args(
            &["query", "dora", "--service", &service, "--output", "json"],
            &target,
        ));
        assert_eq!(month["services"][0]["deployments"], 2, "{month}");
        let text = ok(&args(&["query", "dora", "--service", &service], &target));
        assert!(
            text.contains(&format!("{service} (production): 2 deployment(s)")),
            "{text}"
        );

        // The incident report names the suspect's commit and draws the graph.
        let markdown = ok(&args(
            &["report", "incident", "--alert", &fp, "--format", "markdown"],
            &target,
        ));
        assert!(
            markdown.starts_with("# Incident review (draft)"),
            "{markdown}"
        );
        assert!(
            markdown.contains(&format!("commit `{SUSPECT_COMMIT}`")),
            "{markdown}"
        );
        assert!(
            markdown.contains("```mermaid\nflowchart LR\n"),
            "{markdown}"
        );
        assert!(markdown.contains("TRIGGERS"), "{markdown}");
        let report = ok_json(&args(
            &["report", "incident", "--alert", &fp, "--output", "json"],
            &target,
        ));
        assert_eq!(
            report["suspects"]["suspects"][0]["deployment"]["uid"],
            suspect["uid"]
        );
        assert!(
            report["mermaid"]
                .as_str()
                .unwrap()
                .starts_with("flowchart LR"),
            "{report}"
        );
        assert_eq!(report["dora"]["services"][0]["deployments"], 2);

        // An alert that was never received is a failed check.
        for command in [
            &["query", "suspects", "--alert", "0000000000000000"][..],
            &["report", "incident", "--alert", "0000000000000000"][..],
        ] {
            let err = fails(&args(command, &target), 1);
            assert!(err.contains("no alert with fingerprint"), "{err}");
        }
        answers.push((suspects, timeline, dora));
    }
    assert_eq!(
        answers[0], answers[1],
        "--store and --server print the same JSON"
    );
}

#[test]
fn topology_apply_then_recompute_ranks_a_dependency_deployment() {
    let topology = temp_path("topology.yaml");
    std::fs::write(
        &topology,
        "services:\n  - name: checkout\n    environment: production\n    depends_on: [payments]\n",
    )
    .unwrap();
    for remote in [false, true] {
        let store = sqlite_uri();
        let server = Server::start(&store, &["--token", TOKEN]);
        let target = targets(&store, &server)[usize::from(remote)].clone();
        let alert_at = now() - Duration::hours(1);
        let payments = record(
            &store,
            "payments",
            SUSPECT_COMMIT,
            alert_at - Duration::minutes(10),
            3,
        );
        let fp = fingerprint();
        deliver(&server, &notification(&fp, "checkout", alert_at, None));
        let suspects = [
            "query",
            "suspects",
            "--alert",
            fp.as_str(),
            "--output",
            "json",
        ];

        let before = ok_json(&args(&suspects, &target));
        assert!(items(&before["suspects"]).is_empty(), "{before}");

        let file = topology.display().to_string();
        let applied = ok_json(&args(
            &["topology", "apply", &file, "--output", "json"],
            &target,
        ));
        assert_eq!(
            applied,
            json!({"services": [{
                "service": {"name": "checkout", "environment": "production"},
                "depends_on": [{"name": "payments", "environment": "production"}]
            }]})
        );
        let text = ok(&args(&["topology", "apply", &file], &target));
        assert!(
            text.contains("checkout (production) depends on payments (production)"),
            "{text}"
        );

        // The stored attribution stays until it is recomputed.
        let unchanged = ok_json(&args(&suspects, &target));
        assert!(items(&unchanged["suspects"]).is_empty(), "{unchanged}");
        if remote {
            // Recomputing writes: without the token the server refuses (exit 1, as for
            // every refusal).
            let err = fails(
                &args(
                    &[
                        "query",
                        "suspects",
                        "--alert",
                        &fp,
                        "--recompute",
                        "--server",
                        &server.url,
                    ],
                    &[],
                ),
                1,
            );
            assert!(err.contains("401"), "{err}");
        }
        let after = ok_json(&args(&[&suspects[..], &["--recompute"]].concat(), &target));
        let ranked = items(&after["suspects"]);
        assert_eq!(ranked.len(), 1, "{after}");
        assert_eq!(ranked[0]["deployment"]["uid"], payments["uid"]);
        assert!(
            items(&ranked[0]["reasons"]).contains(&json!("1 hop: checkout → payments")),
            "{after}"
        );
        // The recomputed attribution is stored: the other side reads it too.
        let other = targets(&store, &server)[usize::from(!remote)].clone();
        assert_eq!(ok_json(&args(&suspects, &other)), after);
    }
}

/// A failed deployment of `service` posted to the server, with a config change shared by all
/// and one of its own.
fn failed_deployment(service: &str, started: DateTime<Utc>, seed: u32) -> Value {
    json!({
        "service": service, "environment": "production", "version": format!("v2.{seed}"),
        "commit": {"sha": format!("{seed:07x}abcdef"), "author": "dev@acme.example",
                   "committed_at": at(started - Duration::hours(1))},
        "images": [{"repository": "ghcr.io/acme/orders", "tag": format!("v2.{seed}"), "digest": digest(seed)}],
        "status": "failed",
        "started_at": at(started),
        "finished_at": at(started + Duration::minutes(10)),
        "changes": [
            {"path": "values.db.pool_size", "kind": "value", "before": "10", "after": "50"},
            {"path": format!("values.feature_{seed}"), "kind": "value", "before": "false", "after": "true"}
        ]
    })
}

#[test]
fn common_factors_and_dora_on_three_failed_deployments_sharing_a_config_key() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", TOKEN]);
    let service = unique("orders");
    let base = now() - Duration::hours(6);
    let url = format!("{}/v1/deployments", server.url);
    let mut good = failed_deployment(&service, base, 10);
    good["status"] = json!("succeeded");
    good["changes"] =
        json!([{"path": "values.replicas", "kind": "value", "before": "2", "after": "3"}]);
    let mut uids = Vec::new();
    for body in [
        good,
        failed_deployment(&service, base + Duration::hours(1), 11),
        failed_deployment(&service, base + Duration::hours(2), 12),
        failed_deployment(&service, base + Duration::hours(3), 13),
    ] {
        let (status, _, recorded) = post_json(&url, &body, Some(TOKEN));
        assert_eq!(status, 201, "{recorded}");
        uids.push(recorded["uid"].clone());
    }
    // Resolved after 30 minutes: the time to restore.
    let alert_at = base + Duration::hours(3) + Duration::minutes(5);
    deliver(
        &server,
        &notification(
            &fingerprint(),
            &service,
            alert_at,
            Some(alert_at + Duration::minutes(30)),
        ),
    );

    for target in targets(&store, &server) {
        let factors = ok_json(&args(
            &[
                "query",
                "common-factors",
                "--service",
                &service,
                "--output",
                "json",
            ],
            &target,
        ));
        assert_eq!(
            factors["deployments"],
            json!([uids[3], uids[2], uids[1]]),
            "the last 3 failed, newest first: {factors}"
        );
        let list = items(&factors["factors"]);
        let pool = list
            .iter()
            .find(|f| f["kind"] == "config_key" && f["value"] == "values.db.pool_size")
            .unwrap_or_else(|| panic!("no shared config key: {factors}"));
        assert_eq!(pool["count"], 3);
        assert_eq!(pool["deployments"].as_array().unwrap().len(), 3);
        assert!(
            list.iter()
                .any(|f| f["kind"] == "author" && f["count"] == 3),
            "{factors}"
        );
        assert!(
            !list.iter().any(|f| f["value"] == "values.feature_11"),
            "a key only one deployment changed is not a common factor: {factors}"
        );
        let text = ok(&args(
            &["query", "common-factors", "--service", &service],
            &target,
        ));
        assert!(
            text.contains(&format!("3 failed deployment(s) of {service} examined")),
            "{text}"
        );
        assert!(text.contains("3/3  config_key"), "{text}");
        assert!(text.contains("values.db.pool_size"), "{text}");
        let two = ok_json(&args(
            &[
                "query",
                "common-factors",
                "--service",
                &service,
                "--last",
                "2",
                "--output",
                "json",
            ],
            &target,
        ));
        assert_eq!(two["deployments"], json!([uids[3], uids[2]]));

        // One day holding the four deployments.
        let (since, until) = (
            at(base - Duration::hours(1)),
            at(base + Duration::hours(23)),
        );
        let dora = ok_json(&args(
            &[
                "query",
                "dora",
                "--service",
                &service,
                "--since",
                &since,
                "--until",
                &until,
                "--output",
                "json",
            ],
            &target,
        ));
        let m = &dora["services"][0];
        assert_eq!(m["deployments"], 4, "{dora}");
        assert_eq!(m["deployment_frequency_per_day"], 4.0);
        assert_eq!(m["failed_changes"], 3);
        assert_eq!(m["change_failure_rate"], 0.75);
        // Committed an hour before the start, finished ten minutes after it.
        assert_eq!(
            m["lead_time"],
            json!({"samples": 4, "median_seconds": 4200.0, "p90_seconds": 4200.0})
        );
        assert_eq!(
            m["time_to_restore"],
            json!({"samples": 1, "median_seconds": 1800.0, "p90_seconds": 1800.0})
        );
        let text = ok(&args(
            &[
                "query",
                "dora",
                "--service",
                &service,
                "--since",
                &since,
                "--until",
                &until,
            ],
            &target,
        ));
        assert!(
            text.contains("4 deployment(s), 4.000/day")
                && text.contains("change failure rate 75.0% (3 failed)")
                && text.contains("time to restore median 30m00s"),
            "{text}"
        );
    }
}

#[test]
fn bad_flags_and_values_exit_2_naming_the_flag() {
    let store = sqlite_uri();
    let bad_topology = temp_path("bad.yaml");
    std::fs::write(
        &bad_topology,
        "services:\n  - name: checkout\n    depends_on: []\n",
    )
    .unwrap();
    let bad_topology = bad_topology.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "query",
                "timeline",
                "--service",
                "payments",
                "--since",
                "yesterday",
            ],
            "--since",
        ),
        (
            vec!["query", "timeline", "--service", "Pay_ments"],
            "--service",
        ),
        (vec!["query", "timeline"], "--service"),
        (vec!["query", "alerts", "--limit", "0"], "--limit"),
        (vec!["query", "alerts", "--until", "noon"], "--until"),
        (
            vec![
                "query",
                "alerts",
                "--since",
                "2026-11-02T00:00:00Z",
                "--until",
                "2026-11-01T00:00:00Z",
            ],
            "--since",
        ),
        (vec!["query", "alerts", "--output", "yaml"], "--output"),
        (vec!["query", "suspects"], "--alert"),
        (vec!["query", "suspects", "--alert", ""], "--alert"),
        (
            vec![
                "query",
                "suspects",
                "--alert",
                "ab12",
                "--starts-at",
                "soon",
            ],
            "--starts-at",
        ),
        (
            vec![
                "query",
                "suspects",
                "--alert",
                "ab12",
                "--attribution-window",
                "a while",
            ],
            "--attribution-window",
        ),
        (
            vec![
                "query",
                "common-factors",
                "--service",
                "payments",
                "--last",
                "0",
            ],
            "--last",
        ),
        (
            vec!["query", "dora", "--until", "2026-13-01T00:00:00Z"],
            "--until",
        ),
        (
            vec!["query", "cypher", "RETURN 1", "--param", "novalue"],
            "--param",
        ),
        (
            vec!["query", "cypher", "RETURN 1", "--param-json", "n={"],
            "--param-json",
        ),
        (
            vec!["query", "cypher", "RETURN 1", "--timeout", "0s"],
            "--timeout",
        ),
        (
            vec![
                "query",
                "cypher",
                "RETURN $a",
                "--param",
                "a=1",
                "--param-json",
                "a=1",
            ],
            "--param-json",
        ),
        (
            vec!["report", "incident", "--alert", "ab12", "--format", "pdf"],
            "--format",
        ),
        (
            vec!["topology", "apply", "/nonexistent/topology.yaml"],
            "topology file",
        ),
        (
            vec!["topology", "apply", &bad_topology],
            "services[0].environment",
        ),
    ];
    for (command, flag) in cases {
        let err = fails(&args(&command, &["--store".into(), store.clone()]), 2);
        assert!(err.contains(flag), "{command:?}: {err}");
    }
}

#[test]
fn cypher_runs_read_only_on_neo4j_from_the_store_and_the_server() {
    let _shared = NEO4J
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // User Cypher needs the token.
    let server = Server::start(&neo4j_uri(), &["--token", "cy-token"]);
    server.wait_for("/readyz", std::time::Duration::from_secs(60));
    let service = unique("cypher");
    for (minute, seed) in [(0, 1), (1, 2)] {
        let (status, _, body) = post_json(
            &format!("{}/v1/deployments", server.url),
            &deployment(&service, minute, seed),
            Some("cy-token"),
        );
        assert_eq!(status, 201, "{body}");
    }
    let query = "MATCH (d:DeploymentEvent)-[:DEPLOYS]->(s:Service {name: $name}) \
                 RETURN s.name AS service, d.version AS version ORDER BY version";
    let name = format!("name={service}");
    let marker = unique("written");
    let id = format!("id={marker}");
    for target in [
        vec!["--store".to_owned(), neo4j_uri()],
        vec![
            "--server".to_owned(),
            server.url.clone(),
            "--token".to_owned(),
            "cy-token".to_owned(),
        ],
    ] {
        let result = ok_json(&args(
            &[
                "query", "cypher", query, "--param", &name, "--output", "json",
            ],
            &target,
        ));
        assert_eq!(
            result,
            json!({"columns": ["service", "version"],
                   "rows": [[service, "v1.0"], [service, "v1.1"]], "truncated": false})
        );
        let text = ok(&args(
            &["query", "cypher", query, "--param", &name],
            &target,
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                format!("{:<w$}  version", "service", w = service.len()),
                format!("{service}  v1.0"),
                format!("{service}  v1.1"),
                "(2 rows)".to_owned(),
            ],
            "{text}"
        );

        let out = run(&args(
            &[
                "query", "cypher", query, "--param", &name, "--limit", "1", "--output", "json",
            ],
            &target,
        ));
        assert!(out.status.success(), "{}", stderr(&out));
        let limited: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(limited["rows"], json!([[service, "v1.0"]]));
        assert_eq!(limited["truncated"], true);
        assert!(stderr(&out).contains("cut at 1 rows"), "{}", stderr(&out));

        let counted = ok_json(&args(
            &[
                "query",
                "cypher",
                "MATCH (d:DeploymentEvent)-[:DEPLOYS]->(:Service {name: $name}) \
                 WHERE d.version IN $versions RETURN count(d) AS n",
                "--param",
                &name,
                "--param-json",
                r#"versions=["v1.1", "v9"]"#,
                "--timeout",
                "5s",
                "--output",
                "json",
            ],
            &target,
        ));
        assert_eq!(counted["rows"], json!([[1]]), "{counted}");

        // A write is refused from its plan, naming the operator.
        let err = fails(
            &args(
                &[
                    "query",
                    "cypher",
                    "CREATE (n:RcaProbe {id: $id}) RETURN n",
                    "--param",
                    &id,
                ],
                &target,
            ),
            2,
        );
        assert!(err.contains("\"Create\""), "{err}");
        let written = ok_json(&args(
            &[
                "query",
                "cypher",
                "MATCH (n:RcaProbe {id: $id}) RETURN count(n) AS n",
                "--param",
                &id,
                "--output",
                "json",
            ],
            &target,
        ));
        assert_eq!(written["rows"], json!([[0]]), "nothing was written");
    }
}

#[test]
fn cypher_on_the_embedded_store_is_refused_with_exit_2() {
    let store = sqlite_uri();
    let server = Server::start(&store, &["--token", "cy-token"]);
    for target in [
        vec!["--store".to_owned(), store.clone()],
        vec![
            "--server".to_owned(),
            server.url.clone(),
            "--token".to_owned(),
            "cy-token".to_owned(),
        ],
    ] {
        let err = fails(&args(&["query", "cypher", "RETURN 1"], &target), 2);
        assert!(
            err.contains("the sqlite store does not support Cypher queries"),
            "{err}"
        );
    }
}

#[test]
fn a_timed_out_query_through_the_server_fails_once_with_the_servers_message() {
    let _shared = NEO4J
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = Server::start(
        &neo4j_uri(),
        &["--token", "cy-token", "--cypher-timeout", "2s"],
    );
    server.wait_for("/readyz", std::time::Duration::from_secs(60));
    let command: Vec<String> = [
        "query",
        "cypher",
        "UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b \
         WITH a, b WHERE a * b = -1 RETURN count(*) AS n",
        "--server",
        &server.url,
        "--token",
        "cy-token",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Exit 2: the query has to change (or its --timeout), like any query the server refuses.
    let err = fails(&command, 2);
    assert!(err.contains("504"), "{err}");
    assert!(err.contains("timed out after 2s"), "{err}");
    assert!(!err.contains("could not be reached"), "{err}");
    // Sent once: the server logged one refusal of the query, no retry.
    let logs = server.logs();
    assert_eq!(logs.matches("user query not answered").count(), 1, "{logs}");
}
