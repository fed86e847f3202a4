//! `record change`: a change that is not a rollout, recorded through the store in this process
//! or through a server, becomes the suspect of the alert after it; bad input is a usage error.

use crate::support::{Server, get_json, run, sqlite_uri, stderr, stdout, temp_path, unique};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::time::Instant;

const TOKEN: &str = "ch4nges";

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn succeeded(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "deploygraph {} exited {:?}\n{}",
        args.join(" "),
        out.status.code(),
        stderr(&out)
    );
    stdout(&out)
}

fn notification(fingerprint: &str, service: &str, starts_at: DateTime<Utc>) -> Value {
    let labels = json!({"alertname": "CheckoutErrors", "service": service, "namespace": "prod",
                        "environment": "production", "severity": "critical"});
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"CheckoutErrors\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "deploygraph", "groupLabels": {"alertname": "CheckoutErrors"},
        "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": at(starts_at), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

/// An alert on checkout; then the flag flip five minutes before it is recorded. Through the
/// store in this process and through a server alike, it is recorded once and is the alert's
/// suspect, in JSON and in text.
#[test]
fn a_recorded_change_is_a_suspect_whatever_records_it() {
    for remote in [false, true] {
        let store = sqlite_uri();
        let server = remote.then(|| Server::start(&store, &["--token", TOKEN]));
        let target = match &server {
            Some(server) => strings(&["--server", &server.url, "--token", TOKEN]),
            None => strings(&["--store", &store]),
        };
        let service = unique("checkout");
        let alert_at =
            DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - Duration::minutes(30);
        let fingerprint = format!("{:016x}", rand::random::<u64>());
        let file = temp_path("alert.json");
        std::fs::write(
            &file,
            notification(&fingerprint, &service, alert_at).to_string(),
        )
        .unwrap();
        let mut record_alert = strings(&["record", "alert", &file.display().to_string()]);
        record_alert.extend(target.iter().cloned());
        succeeded(&record_alert);

        let flipped = at(alert_at - Duration::minutes(5));
        let mut record = strings(&[
            "record",
            "change",
            "--service",
            &service,
            "--namespace",
            "prod",
            "--environment",
            "production",
            "--kind",
            "feature_flag",
            "--actor",
            "alice@acme.io",
            "--at",
            &flipped,
            "--key",
            "checkout.new_flow",
            "--before",
            "false",
            "--after",
            "true",
            "--key",
            "checkout.api_token",
            "--after",
            "tok-123",
            "--link",
            "https://flags.acme.io/audit/42",
            "--summary",
            "new checkout flow for 10%",
        ]);
        record.extend(target.iter().cloned());
        let mut as_json = record.clone();
        as_json.extend(strings(&["--output", "json"]));
        let change: Value = serde_json::from_str(&succeeded(&as_json)).unwrap();
        let uid = change["uid"].as_str().unwrap().to_owned();
        assert!(uid.starts_with("change-event-"), "{change}");
        assert_eq!(change["kind"], "feature_flag");
        assert_eq!(change["at"], flipped);
        assert_eq!(
            change["diff"],
            json!([
                {"key": "checkout.api_token", "after": "<redacted>"},
                {"key": "checkout.new_flow", "before": "false", "after": "true"}
            ]),
            "values belong to the --key before them; secrets are redacted"
        );
        // The same change again: recorded once.
        let again = succeeded(&record);
        assert!(
            again.starts_with(&format!(
                "already recorded change {uid} (feature_flag of {service}"
            )),
            "{again}"
        );
        if let Some(server) = &server {
            let (status, read) = get_json(&format!("{}/v1/changes/{uid}", server.url));
            assert_eq!(status, 200, "{read}");
            assert_eq!(read, change);
        }

        let mut suspects = strings(&["query", "suspects", "--alert", &fingerprint]);
        suspects.extend(target.iter().cloned());
        let mut as_json = suspects.clone();
        as_json.extend(strings(&["--output", "json"]));
        let mut view: Value = serde_json::from_str(&succeeded(&as_json)).unwrap();
        // A server's workers may still have the re-attribution pending.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while view["suspects"][0]["uid"] != uid.as_str() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
            view = serde_json::from_str(&succeeded(&as_json)).unwrap();
        }
        let top = &view["suspects"][0];
        assert_eq!(top["uid"], uid.as_str(), "remote={remote}: {view}");
        assert_eq!(top["subject"], "change", "{view}");
        assert_eq!(top["change"], change, "{view}");
        let text = succeeded(&suspects);
        assert!(
            text.contains(&format!(
                "feature_flag change of prod/{service} (production)"
            )),
            "{text}"
        );
        assert!(text.contains("~ checkout.new_flow false -> true"), "{text}");
        assert!(
            text.contains("by alice@acme.io: new checkout flow for 10%"),
            "{text}"
        );
    }
}

/// Bad flags are usage errors (exit 2) naming the flag, and nothing is recorded.
#[test]
fn bad_changes_are_usage_errors() {
    let store = sqlite_uri();
    let base = |extra: &[&str]| {
        let mut args = strings(&[
            "record",
            "change",
            "--store",
            &store,
            "--environment",
            "production",
            "--actor",
            "alice",
        ]);
        args.extend(strings(extra));
        args
    };
    for (extra, flag) in [
        (&["--service", "payments", "--kind", "flag"][..], "--kind"),
        (&["--service", "Payments", "--kind", "hpa"][..], "--service"),
        (
            &["--service", "payments", "--kind", "hpa", "--at", "today"][..],
            "--at",
        ),
        (
            &[
                "--service",
                "payments",
                "--kind",
                "hpa",
                "--link",
                "ftp://x",
            ][..],
            "--link",
        ),
        (
            &["--service", "payments", "--kind", "hpa", "--after", "3"][..],
            "--after",
        ),
        (
            &[
                "--service",
                "payments",
                "--kind",
                "hpa",
                "--key",
                "a",
                "--key",
                "a",
            ][..],
            "--key",
        ),
        (&["--kind", "hpa"][..], "--service"),
    ] {
        let out = run(&base(extra));
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(flag),
            "{extra:?} names {flag}: {}",
            stderr(&out)
        );
    }
    // Nothing was written: the service's timeline is empty.
    let out = run(&strings(&[
        "query",
        "timeline",
        "--service",
        "payments",
        "--store",
        &store,
        "--output",
        "json",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let timeline: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(timeline["events"], json!([]), "{timeline}");
}
