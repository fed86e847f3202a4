#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use axum::http::{HeaderValue, StatusCode};
use deploygraph_model::{AlertStatus, DeploymentStatus, Source, Uid};
use serde_json::json;

const DIGEST: &str = "0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427";

fn purl() -> String {
    format!("pkg:oci/payments@sha256%3A{DIGEST}?repository_url=ghcr.io/acme/payments&tag=v2.3.0")
}

/// A service event as the 0.5 spec writes it.
fn service_event(kind: &str) -> Value {
    json!({
        "context": {"specversion": "0.5.1", "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
                    "source": "/ci/pipeline", "type": format!("dev.cdevents.service.{kind}.0.3.0"),
                    "timestamp": "2026-11-20T14:27:05.315384Z"},
        "subject": {"id": "payments", "source": "/ci/pipeline",
                    "content": {"environment": {"id": "production"}, "artifactId": purl()}}
    })
}

fn incident_event(kind: &str, at: &str) -> Value {
    json!({
        "context": {"specversion": "0.5.1", "id": format!("ev-{kind}"), "source": "/monitoring/prod1",
                    "type": format!("dev.cdevents.incident.{kind}.0.3.0"), "timestamp": at},
        "subject": {"id": "incident-123", "source": "/monitoring/prod1",
                    "content": {"description": "Response time above 100ms",
                                "environment": {"id": "prod/eu/cluster-a"},
                                "service": {"id": "/clusterA/namespaceB/Payments_API"},
                                "artifactId": format!("pkg:oci/payments@sha256%3A{DIGEST}")}},
        "customData": {"metric": "responseTime", "value": 200, "severity": "critical", "nested": {"x": 1}}
    })
}

fn bare(event: Value) -> Result<Event, ApiError> {
    read(&HeaderMap::new(), event)
}

fn deployment(event: Value) -> Deployment {
    match bare(event) {
        Ok(Event::Deployment(d)) => *d,
        other => panic!("not a deployment: {other:?}"),
    }
}

fn incident(event: Value) -> Incident {
    match bare(event) {
        Ok(Event::Incident(i)) => *i,
        other => panic!("not an incident: {other:?}"),
    }
}

fn error_field(result: Result<Event, ApiError>) -> (StatusCode, String) {
    let err = result.expect_err("an error");
    (err.status, err.field.unwrap_or_default())
}

#[test]
fn a_deployed_event_without_custom_data_is_a_succeeded_deployment_without_commit() {
    let d = deployment(service_event("deployed"));
    assert_eq!(d.service.as_str(), "payments");
    assert_eq!(d.environment.as_str(), "production");
    assert_eq!(d.status, DeploymentStatus::Succeeded);
    assert_eq!(d.source, Source::Cdevents);
    assert_eq!(d.commit, None);
    assert_eq!(
        d.images[0].repository.as_deref(),
        Some("ghcr.io/acme/payments")
    );
    assert_eq!(
        d.images[0].digest.as_ref().map(|x| x.as_str().to_owned()),
        Some(format!("sha256:{DIGEST}"))
    );
    assert_eq!(d.version.as_deref(), Some("v2.3.0"));
    assert_eq!(
        d.id.as_deref(),
        Some("271069a8-fc18-44f1-b38f-9d70a1695819")
    );
    let origin = d.origin.expect("the origin is kept");
    assert_eq!(origin.source, "/ci/pipeline");
    assert_eq!(origin.event_type, "dev.cdevents.service.deployed.0.3.0");
}

#[test]
fn the_commit_comes_from_custom_data_else_from_the_artifacts_vcs_url() {
    let mut e = service_event("upgraded");
    e["customData"] = json!({"commit": "9FCEB02D0AE598E9"});
    assert_eq!(deployment(e).commit_sha(), Some("9fceb02d0ae598e9"));

    let mut e = service_event("upgraded");
    e["customData"] = json!({"commit": {"sha": "9fceb02", "repo": "github.com/acme/payments"}});
    let d = deployment(e);
    assert_eq!(
        d.commit.and_then(|c| c.repo).as_deref(),
        Some("github.com/acme/payments")
    );

    let mut e = service_event("upgraded");
    e["subject"]["content"]["artifactId"] = json!(format!(
        "pkg:oci/payments@sha256%3A{DIGEST}?vcs_url=git%2Bhttps%3A%2F%2Fgithub.com%2Facme%2Fpayments.git%40abc1234def"
    ));
    let d = deployment(e);
    assert_eq!(d.commit_sha(), Some("abc1234def"));
    assert_eq!(
        d.commit.and_then(|c| c.repo).as_deref(),
        Some("github.com/acme/payments")
    );
}

#[test]
fn service_names_are_normalized_and_the_producers_name_is_kept() {
    let mut e = service_event("deployed");
    e["subject"]["id"] = json!("mySubject123");
    let d = deployment(e);
    assert_eq!(d.service.as_str(), "mysubject123");
    let origin = d.origin.unwrap();
    assert_eq!(origin.source_name, "mySubject123");
    assert_eq!(origin.subject, "mySubject123");

    let mut e = service_event("deployed");
    e["subject"]["id"] = json!("default/Payments_API");
    let d = deployment(e);
    assert_eq!(d.service.as_str(), "payments-api");
    assert_eq!(d.origin.unwrap().source_name, "default/Payments_API");

    let mut e = service_event("deployed");
    e["customData"] = json!({"service": "Checkout"});
    let d = deployment(e);
    assert_eq!(d.service.as_str(), "checkout");
    assert_eq!(d.origin.unwrap().source_name, "Checkout");

    let mut e = service_event("deployed");
    e["subject"]["id"] = json!("___");
    assert_eq!(
        error_field(bare(e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "subject.id".into())
    );
}

#[test]
fn the_environment_id_is_kept_whole() {
    let mut prod = service_event("deployed");
    prod["subject"]["content"]["environment"]["id"] = json!("prod/eu/cluster-a");
    let mut staging = service_event("deployed");
    staging["subject"]["content"]["environment"]["id"] = json!("staging/eu/cluster-a");
    staging["context"]["id"] = json!("another-event");
    let (prod, staging) = (deployment(prod), deployment(staging));
    assert_eq!(prod.environment.as_str(), "prod/eu/cluster-a");
    assert_eq!(staging.environment.as_str(), "staging/eu/cluster-a");
    assert_ne!(prod.service_uid(), staging.service_uid());
}

#[test]
fn idempotency_is_on_source_and_id() {
    let first = deployment(service_event("deployed"));
    assert_eq!(
        first.uid,
        deployment(service_event("deployed")).uid,
        "a retry"
    );
    let mut other_source = service_event("deployed");
    other_source["context"]["source"] = json!("/another/ci");
    assert_ne!(first.uid, deployment(other_source).uid);
    let mut other_id = service_event("deployed");
    other_id["context"]["id"] = json!("another-id");
    assert_ne!(first.uid, deployment(other_id).uid);
    // A producer reusing one id for another event of the subject records another event.
    assert_ne!(first.uid, deployment(service_event("rolledback")).uid);
    // The same event sent by a newer SDK (another spec version) is the same event.
    let mut newer = service_event("deployed");
    newer["context"]["specversion"] = json!("0.6.0-draft");
    let newer = deployment(newer);
    assert_eq!(first.uid, newer.uid);
    assert_eq!(first.content_fingerprint(), newer.content_fingerprint());
    // Derived from the CloudEvents key, no longer from the id alone.
    assert_eq!(
        first.uid,
        Uid::derive(
            "deployment",
            &[
                "cdevents",
                "/ci/pipeline",
                "271069a8-fc18-44f1-b38f-9d70a1695819",
                "service.deployed"
            ]
        )
    );
}

#[test]
fn a_rolledback_event_is_rolled_back_and_a_removed_event_is_a_removal() {
    assert_eq!(
        deployment(service_event("rolledback")).status,
        DeploymentStatus::RolledBack
    );
    let mut removed = service_event("removed");
    removed["subject"]["content"]
        .as_object_mut()
        .unwrap()
        .remove("artifactId");
    let d = deployment(removed);
    assert_eq!(d.status, DeploymentStatus::Removed);
    assert!(d.images.is_empty());
    assert_eq!(d.version, None);
}

#[test]
fn artifacts_that_are_not_images_give_a_version() {
    let mut e = service_event("deployed");
    e["subject"]["content"]["artifactId"] = json!("pkg:maven/org.acme/billing@3.1.0");
    let d = deployment(e);
    assert!(d.images.is_empty());
    assert_eq!(d.version.as_deref(), Some("3.1.0"));
    let mut e = service_event("deployed");
    e["subject"]["content"]["artifactId"] = json!("pkg:docker/acme/billing@1.4.2");
    let d = deployment(e);
    assert_eq!(d.images[0].tag.as_deref(), Some("1.4.2"));
    assert_eq!(d.images[0].digest, None);
}

#[test]
fn an_incident_is_an_alert_keyed_by_source_and_incident_id() {
    let detected = incident(incident_event("detected", "2026-11-20T10:00:00Z"));
    let a = &detected.alert;
    assert!(!detected.resolved);
    assert_eq!(a.status, AlertStatus::Firing);
    assert_eq!(
        a.fingerprint,
        Uid::derive("incident", &["/monitoring/prod1", "incident-123"]).to_string()
    );
    assert_eq!(a.name, "incident-123");
    assert_eq!(a.alert_type, "incident");
    assert_eq!(a.severity.as_deref(), Some("critical"));
    assert_eq!(
        a.service
            .as_ref()
            .map(deploygraph_model::ServiceName::as_str),
        Some("payments-api")
    );
    assert_eq!(
        a.environment.as_ref().map(|e| e.as_str()),
        Some("prod/eu/cluster-a")
    );
    assert_eq!(a.summary.as_deref(), Some("Response time above 100ms"));
    assert_eq!(a.labels["service"], "/clusterA/namespaceB/Payments_API");
    assert_eq!(a.labels["cdevents_source"], "/monitoring/prod1");
    assert_eq!(a.labels["value"], "200");
    assert!(!a.labels.contains_key("nested"));

    let resolved = incident(incident_event("resolved", "2026-11-20T10:30:00Z"));
    assert!(resolved.resolved);
    assert_eq!(
        resolved.alert.uid, detected.alert.uid,
        "one incident, one alert"
    );
    assert_eq!(resolved.alert.status, AlertStatus::Resolved);
    // Resolved over the stored detection: it started when it was detected.
    let merged = resolved.clone().over(Some(&detected.alert));
    assert_eq!(merged.starts_at, detected.alert.starts_at);
    assert_eq!(merged.ends_at, resolved.alert.ends_at);
    // Resolved first: it started and ended then; a late detection moves the start back.
    let late = detected.clone().over(Some(&resolved.alert));
    assert_eq!(late.starts_at, detected.alert.starts_at);

    let mut elsewhere = incident_event("detected", "2026-11-20T10:00:00Z");
    elsewhere["context"]["source"] = json!("/monitoring/prod2");
    assert_ne!(
        incident(elsewhere).alert.fingerprint,
        detected.alert.fingerprint
    );
}

#[test]
fn other_event_types_are_ignored_with_a_fixed_label() {
    let cases = [
        (
            "dev.cdevents.pipelinerun.finished.0.2.0",
            "pipelinerun.finished",
        ),
        ("dev.cdevents.taskrun.started.0.1.1", "taskrun.started"),
        ("dev.cdevents.service.published.0.3.0", "service.published"),
        ("dev.cdevents.incident.reported.0.3.0", "incident.reported"),
        ("dev.cdevents.madeup.thing.0.1.0", "other"),
        ("dev.cdeventsx.mytool-resource.created.0.1.0", "custom"),
    ];
    for (event_type, label) in cases {
        // Only the context is read: the subject of an ignored type is not checked.
        let event = json!({"context": {"specversion": "0.5.1", "id": "1", "source": "/x",
                                        "type": event_type, "timestamp": "2026-11-20T10:00:00Z"}});
        match bare(event) {
            Ok(Event::Ignored {
                event_type: t,
                kind,
            }) => {
                assert_eq!((t.as_str(), kind), (event_type, label));
            }
            other => panic!("{event_type}: {other:?}"),
        }
    }
}

#[test]
fn unsupported_versions_are_named() {
    let mut e = service_event("deployed");
    e["context"]["specversion"] = json!("0.9.0");
    assert_eq!(
        error_field(bare(e)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "context.specversion".into()
        )
    );
    let mut e = service_event("deployed");
    let context = e["context"].as_object_mut().unwrap();
    context.remove("specversion");
    context.insert("version".into(), json!("1.0.0"));
    assert_eq!(error_field(bare(e)).1, "context.version");
    let mut e = service_event("deployed");
    e["context"].as_object_mut().unwrap().remove("specversion");
    assert_eq!(error_field(bare(e)).1, "context.specversion");
    let mut e = service_event("deployed");
    e["context"]["type"] = json!("dev.cdevents.service.deployed.0.9.0");
    assert_eq!(error_field(bare(e)).1, "context.type");
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.4.1", "0.5.1", "0.6.0-draft"] {
        let mut e = service_event("deployed");
        e["context"]["specversion"] = json!(version);
        assert!(bare(e).is_ok(), "{version}");
    }
}

#[test]
fn malformed_events_name_the_field() {
    type Mutation = fn(&mut Value);
    let cases: [(Mutation, &str); 13] = [
        (|e| e["context"] = json!(null), "context"),
        (
            |e| _ = e["context"].as_object_mut().unwrap().remove("id"),
            "context.id",
        ),
        (|e| e["context"]["id"] = json!(""), "context.id"),
        (
            |e| e["context"]["timestamp"] = json!("yesterday"),
            "context.timestamp",
        ),
        (
            |e| e["context"]["type"] = json!("com.example.deployed"),
            "context.type",
        ),
        (
            |e| {
                _ = e["subject"]["content"]
                    .as_object_mut()
                    .unwrap()
                    .remove("artifactId")
            },
            "subject.content.artifactId",
        ),
        (
            |e| e["subject"]["content"]["artifactId"] = json!("myapp:1.0"),
            "subject.content.artifactId",
        ),
        (
            |e| e["subject"]["content"]["artifactId"] = json!("pkg:oci/x@sha256%3Aabc"),
            "subject.content.artifactId",
        ),
        (
            |e| {
                _ = e["subject"]["content"]
                    .as_object_mut()
                    .unwrap()
                    .remove("environment")
            },
            "subject.content.environment.id",
        ),
        (
            |e| e["subject"]["content"]["environment"]["id"] = json!("prod//eu"),
            "subject.content.environment.id",
        ),
        (
            |e| e["customData"] = json!({"commit": {"sha": "xyz"}}),
            "customData.commit.sha",
        ),
        // Characters the schema does not allow are refused, not dropped ("rÑ]<é" is not "r").
        (
            |e| e["customData"] = json!({"service": "r\u{d1}]<\u{e9}"}),
            "customData.service",
        ),
        (
            |e| e["subject"]["id"] = json!("shop/caf\u{e9}"),
            "subject.id",
        ),
    ];
    for (mutate, field) in cases {
        let mut e = service_event("deployed");
        mutate(&mut e);
        assert_eq!(
            error_field(bare(e)),
            (StatusCode::UNPROCESSABLE_ENTITY, field.to_owned()),
            "{field}"
        );
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    map
}

fn envelope(event: &Value) -> Value {
    json!({"specversion": "1.0", "id": event["context"]["id"], "source": event["context"]["source"],
           "type": event["context"]["type"], "datacontenttype": "application/json", "data": event})
}

#[test]
fn both_cloudevents_modes_give_the_same_deployment() {
    let event = service_event("deployed");
    let structured = read(
        &headers(&[("content-type", "application/cloudevents+json")]),
        envelope(&event),
    );
    let binary = read(
        &headers(&[
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
            ("ce-id", "271069a8-fc18-44f1-b38f-9d70a1695819"),
            ("ce-source", "/ci/pipeline"),
            ("ce-type", "dev.cdevents.service.deployed.0.3.0"),
        ]),
        event.clone(),
    );
    let (Ok(Event::Deployment(a)), Ok(Event::Deployment(b))) = (structured, binary) else {
        panic!("both modes are read");
    };
    assert_eq!(a, b);
    assert_eq!(*a, deployment(event.clone()));
    // Data sent as a JSON string is read as the event it holds.
    let mut as_text = envelope(&event);
    as_text["data"] = json!(event.to_string());
    let Ok(Event::Deployment(c)) = read(
        &headers(&[("content-type", "application/cloudevents+json")]),
        as_text.clone(),
    ) else {
        panic!("data as a string is read");
    };
    assert_eq!(c, a);
    as_text["data"] = json!("not json");
    assert_eq!(
        error_field(read(
            &headers(&[("content-type", "application/cloudevents+json")]),
            as_text
        ))
        .1,
        "data"
    );
}

#[test]
fn envelopes_that_contradict_the_cdevent_are_refused() {
    let event = service_event("deployed");
    let ce = headers(&[("content-type", "application/cloudevents+json")]);
    let mut e = envelope(&event);
    e["type"] = json!("dev.cdevents.service.removed.0.3.0");
    assert_eq!(error_field(read(&ce, e)).1, "type");
    let mut e = envelope(&event);
    e["specversion"] = json!("0.3");
    assert_eq!(error_field(read(&ce, e)).1, "specversion");
    let mut e = envelope(&event);
    e.as_object_mut().unwrap().remove("data");
    assert_eq!(error_field(read(&ce, e)).1, "data");
    let mut e = envelope(&event);
    e.as_object_mut().unwrap().remove("source");
    assert_eq!(error_field(read(&ce, e)).1, "source");
    let mut e = envelope(&event);
    e["datacontenttype"] = json!("application/xml");
    assert_eq!(error_field(read(&ce, e)).1, "datacontenttype");

    let binary = |pairs: &[(&'static str, &str)]| read(&headers(pairs), event.clone());
    let base = [
        ("ce-specversion", "1.0"),
        ("ce-id", "271069a8-fc18-44f1-b38f-9d70a1695819"),
        ("ce-source", "/ci/pipeline"),
        ("ce-type", "dev.cdevents.service.deployed.0.3.0"),
    ];
    let mut other_id = base;
    other_id[1].1 = "other";
    assert_eq!(error_field(binary(&other_id)).1, "ce-id");
    assert_eq!(error_field(binary(&base[..3])).1, "ce-type");
    let mut old = base;
    old[0].1 = "0.3";
    assert_eq!(error_field(binary(&old)).1, "ce-specversion");

    let batch = headers(&[("content-type", "application/cloudevents-batch+json")]);
    assert_eq!(
        error_field(read(&batch, json!([envelope(&event)]))).0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}
