//! The follow-up pipeline over both stores: an ingest's follow-ups never depend on its client
//! staying connected, a late deployment re-attributes its dependents' alerts, and the work is
//! bounded — what does not fit waits in the store, through a stop and a restart, and is done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_analysis::pipeline::{Observer, Outcome, Pipeline, PipelineConfig};
use deploygraph_api::{ApiConfig, AppState, router, router_with_inline_follow_ups};
use deploygraph_model::{Alert, Uid};
use deploygraph_store::{Claim, FollowUp, FollowUpKind, FollowUpStats, GraphStore};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const TOKEN: &str = "f0llow";

fn config() -> ApiConfig {
    ApiConfig {
        token: Some(SecretString::from(TOKEN.to_owned())),
        // Room for the large notification below on any default.
        max_body_bytes: 8 * 1024 * 1024,
        ..ApiConfig::default()
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn at(minute: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap();
    (base + chrono::Duration::minutes(minute))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn send(app: &Router, method: &str, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    let body = match body {
        Some(b) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

fn deployment(service: &str, minute: i64, seed: u8) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xfeed0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "status": "succeeded", "started_at": at(minute), "finished_at": at(minute + 2),
        "changes": [{"path": "values.pool.size", "kind": "value", "before": "50", "after": "10"}]
    })
}

fn notification(service: &str, fingerprints: &[String], minute: i64) -> Value {
    let alerts: Vec<Value> = fingerprints
        .iter()
        .map(|fp| {
            json!({
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "service": service, "namespace": "prod",
                           "environment": "production", "severity": "critical"},
                "annotations": {"summary": format!("{service} 5xx above 5%")},
                "startsAt": at(minute), "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": fp
            })
        })
        .collect();
    json!({"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
           "status": "firing", "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
           "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": alerts})
}

fn alert_uid(fingerprint: &str, minute: i64) -> Uid {
    let starts = chrono::DateTime::parse_from_rfc3339(&at(minute))
        .unwrap()
        .to_utc();
    Alert::uid_for(fingerprint, &starts)
}

/// Waits (bounded) until no follow-up about `subjects` is pending.
async fn settled(store: &Arc<dyn GraphStore>, subjects: &[Uid], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let stats = store.follow_up_stats(Some(subjects)).await.unwrap();
        if stats.total() == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "follow-ups still pending after {within:?}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Alertmanager's delivery is cut: the client sends the notification and goes away without
/// reading the answer, then Alertmanager delivers it again. Every alert ends up attributed —
/// the retried delivery answers `unchanged` for those already stored, and their follow-ups were
/// stored with them.
async fn alerts_of_a_cut_delivery_are_all_attributed(store: Arc<dyn GraphStore>) {
    let state = AppState::new(Arc::clone(&store), config());
    let app = router(state.clone());
    let stop = CancellationToken::new();
    let pipeline = state.pipeline();
    let workers = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop.cancelled_owned()).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn({
        let app = app.clone();
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        }
    });

    let service = unique("cut");
    let (status, body) = send(
        &app,
        "POST",
        "/v1/deployments",
        Some(&deployment(&service, -5, 7)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deployment_uid = body["uid"].as_str().unwrap().to_owned();
    let fingerprints: Vec<String> = (0..500).map(|_| unique("fp")).collect();
    let body = notification(&service, &fingerprints, 0).to_string();

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/alerts/alertmanager HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);

    // Alertmanager delivers again, and again after a 503 (the cut delivery may still be
    // writing the same alerts).
    let body: Value = serde_json::from_str(&body).unwrap();
    let mut attempts = 0;
    let answer = loop {
        attempts += 1;
        let (status, answer) = send(&app, "POST", "/v1/alerts/alertmanager", Some(&body)).await;
        if status == StatusCode::SERVICE_UNAVAILABLE && attempts < 10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{answer}");
        break answer;
    };
    assert_eq!(
        answer["created"].as_u64().unwrap() + answer["unchanged"].as_u64().unwrap(),
        500,
        "{answer}"
    );

    let uids: Vec<Uid> = fingerprints.iter().map(|fp| alert_uid(fp, 0)).collect();
    settled(&store, &uids, Duration::from_secs(120)).await;
    for uid in &uids {
        let attribution = store.attribution(uid).await.unwrap();
        assert_eq!(
            attribution.triggers.first().map(|t| t.subject_uid.as_str()),
            Some(deployment_uid.as_str()),
            "alert {uid} is attributed to the deployment before it"
        );
    }
    let (status, suspects) = send(
        &app,
        "GET",
        &format!("/v1/alerts/{}/suspects", fingerprints[0]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(suspects["attribution_pending"], false, "{suspects}");

    // The work is on /metrics: every alert's follow-up done, nothing left pending.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = send(&app, "GET", "/metrics", None).await;
        let text = metrics.as_str().unwrap().to_owned();
        let done = text
            .lines()
            .find(|l| {
                l.starts_with("deploygraph_follow_ups_total{kind=\"alert\",outcome=\"done\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        // The Neo4j database is shared with other tests, whose follow-ups may be pending.
        let idle = store.backend() != "sqlite"
            || (text.contains("deploygraph_follow_ups_pending{kind=\"alert\"} 0")
                && text.contains("deploygraph_follow_ups_queue_depth 0"));
        if done >= 500
            && idle
            && text.contains("deploygraph_follow_ups_pending{kind=\"alert\"}")
            && text.contains("deploygraph_follow_ups_queue_depth")
        {
            assert!(text.contains("deploygraph_follow_ups_oldest_age_seconds"));
            break;
        }
        assert!(Instant::now() < deadline, "metrics never settled:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    workers.await.unwrap();
    server.await.unwrap();
}

/// web → api: an alert on web, then a deployment of api reported late (it started before the
/// alert). The alert of the dependent service is re-attributed to it.
async fn a_late_deployment_of_a_dependency_reattributes_its_dependents_alerts(
    store: Arc<dyn GraphStore>,
) {
    let app = router_with_inline_follow_ups(
        AppState::new(Arc::clone(&store), config()),
        Duration::from_secs(30),
    );
    let (web, api) = (unique("web"), unique("api"));
    let (status, body) = send(
        &app,
        "PUT",
        &format!("/v1/services/{web}/dependencies"),
        Some(&json!({"environment": "production", "namespace": "prod", "depends_on": [api]})),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    let fp = unique("fp");
    let (status, _) = send(
        &app,
        "POST",
        "/v1/alerts/alertmanager",
        Some(&notification(&web, std::slice::from_ref(&fp), 0)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = send(&app, "GET", &format!("/v1/alerts/{fp}/suspects"), None).await;
    assert!(
        before["suspects"].as_array().unwrap().is_empty(),
        "{before}"
    );

    let (status, body) = send(
        &app,
        "POST",
        "/v1/deployments",
        Some(&deployment(&api, -10, 3)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, after) = send(&app, "GET", &format!("/v1/alerts/{fp}/suspects"), None).await;
    assert_eq!(
        after["suspects"][0]["deployment"]["uid"], body["uid"],
        "the dependency's late deployment is the suspect: {after}"
    );
}

/// Counts what a pipeline does about `ours` (the Neo4j database is shared with other tests,
/// whose follow-ups it may do too), and the deepest its queue got.
#[derive(Default)]
struct Watch {
    ours: BTreeSet<Uid>,
    deepest: AtomicUsize,
    done: Mutex<Vec<Uid>>,
}

impl Observer for Watch {
    fn queue_depth(&self, depth: usize) {
        self.deepest.fetch_max(depth, Ordering::SeqCst);
    }
    fn pending(&self, _: &FollowUpStats) {}
    fn finished(&self, follow_up: &FollowUp, outcome: Outcome) {
        // First attributions: the revisits they ask for of one another are counted apart.
        if outcome == Outcome::Done
            && follow_up.kind == FollowUpKind::Alert
            && self.ours.contains(&follow_up.subject)
        {
            self.done.lock().unwrap().push(follow_up.subject.clone());
        }
    }
}

impl Watch {
    fn done(&self) -> usize {
        self.done.lock().unwrap().len()
    }
}

/// Alerts written straight to the store (as a watcher or another process writes), five of their
/// follow-ups held by a worker that died: a pipeline with one worker and room for four queues
/// no more than four, is stopped half-way (its process dies), and the next one does the rest —
/// the dead worker's five too, once their lease ends.
async fn work_is_bounded_and_what_waits_stays_in_the_store(store: Arc<dyn GraphStore>) {
    let service = unique("bounded");
    let fingerprints: Vec<String> = (0..40).map(|_| unique("fp")).collect();
    let alerts: Vec<Alert> = fingerprints
        .iter()
        .enumerate()
        .map(|(i, fp)| Alert::test(fp, &service, i64::try_from(i).unwrap()))
        .collect();
    let uids: Vec<Uid> = alerts.iter().map(|a| a.uid.clone()).collect();
    store.record_alerts(alerts).await.unwrap();
    let held = store
        .claim_follow_ups(Claim {
            subjects: Some(&uids),
            limit: 5,
            now: chrono::Utc::now(),
            lease: chrono::Duration::seconds(2),
        })
        .await
        .unwrap();
    assert_eq!(held.len(), 5);

    let config = PipelineConfig {
        workers: 1,
        queue: 4,
        poll: Duration::from_millis(100),
        ..PipelineConfig::default()
    };
    let watch = || Watch {
        ours: uids.iter().cloned().collect(),
        ..Watch::default()
    };
    let first = Arc::new(watch());
    let pipeline = Pipeline::builder(Arc::clone(&store), config)
        .observer(first.clone())
        .build();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop.cancelled_owned()).await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.done() < 10 {
        assert!(Instant::now() < deadline, "the first pipeline did nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    run.await.unwrap();
    let left = store.follow_up_stats(Some(&uids)).await.unwrap().alerts;
    assert!(left > 0, "the stop came before the work was done");
    assert_eq!(left as usize, 40 - first.done());

    let second = Arc::new(watch());
    let pipeline = Pipeline::builder(Arc::clone(&store), config)
        .observer(second.clone())
        .build();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { pipeline.run(stop.cancelled_owned()).await }
    });
    settled(&store, &uids, Duration::from_secs(60)).await;
    stop.cancel();
    run.await.unwrap();

    assert_eq!(first.done() + second.done(), 40, "each follow-up done once");
    let mut all: Vec<Uid> = first.done.lock().unwrap().clone();
    all.extend(second.done.lock().unwrap().iter().cloned());
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40);
    for watch in [&first, &second] {
        // Four waiting for the worker, and the one it does.
        assert!(
            watch.deepest.load(Ordering::SeqCst) <= 5,
            "the queue stays within its bound"
        );
    }
}

deploygraph_store::both_stores!(
    alerts_of_a_cut_delivery_are_all_attributed,
    a_late_deployment_of_a_dependency_reattributes_its_dependents_alerts,
);

/// On its own store: the pipelines of tests running beside it on the shared Neo4j database
/// claim every pending follow-up there, so counting what each of this test's pipelines did
/// needs a database of its own. That claims are exclusive on Neo4j is the conformance suite's
/// `concurrent_claimers_never_share_a_follow_up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_is_bounded_and_what_waits_stays_in_the_store_on_sqlite() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    work_is_bounded_and_what_waits_stays_in_the_store(store).await;
}

/// An onset source whose alerts' metric shows no break at an alert's first read (a rule
/// without `for:` fires as its metric moves) and shows it from its second read on.
#[derive(Default)]
struct LateOnset {
    reads: Mutex<Vec<Uid>>,
}

#[async_trait::async_trait]
impl deploygraph_analysis::pipeline::Onsets for LateOnset {
    async fn onset(
        &self,
        alert: &Alert,
        _: chrono::Duration,
    ) -> Option<deploygraph_model::MetricOnset> {
        let read_before = {
            let mut reads = self.reads.lock().unwrap();
            let before = reads.contains(&alert.uid);
            reads.push(alert.uid.clone());
            before
        };
        read_before.then(|| deploygraph_model::MetricOnset::Found {
            at: alert.starts_at - chrono::Duration::minutes(3),
            query: "sum(rate(errors[5m]))".into(),
            before: 0.01,
            at_alert: 0.2,
        })
    }
}

/// An alert whose metric onset cannot be read yet at its first attribution is attributed again
/// by a deferred revisit, which reads it; meanwhile the alert is not shown as pending, and its
/// follow-ups end with the onset stored. An alert older than the span is not deferred.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onset_not_there_yet_is_read_again_by_a_deferred_revisit() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let fresh = {
        let mut a = Alert::test(&unique("fp"), &unique("late"), 0);
        a.starts_at = chrono::Utc::now() - chrono::Duration::seconds(5);
        a.uid = Alert::uid_for(&a.fingerprint, &a.starts_at);
        a
    };
    // Twenty minutes old: past the span, so what it could not read stands.
    let old = {
        let mut a = Alert::test(&unique("fp"), &unique("old"), 0);
        a.starts_at = chrono::Utc::now() - chrono::Duration::minutes(20);
        a.uid = Alert::uid_for(&a.fingerprint, &a.starts_at);
        a
    };
    store
        .record_alerts(vec![fresh.clone(), old.clone()])
        .await
        .unwrap();
    let config = PipelineConfig {
        poll: Duration::from_millis(100),
        read_again: Duration::from_secs(2),
        read_again_until: Duration::from_secs(10 * 60),
        ..PipelineConfig::default()
    };
    let onsets = Arc::new(LateOnset::default());
    let pipeline = Pipeline::builder(Arc::clone(&store), config)
        .onsets(onsets.clone())
        .build();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        let pipeline = pipeline.clone();
        async move { pipeline.run(stop.cancelled_owned()).await }
    });
    let one = std::slice::from_ref(&fresh.uid);
    // The first attribution is done, with no onset yet, and a revisit deferred.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = store.follow_up_stats(Some(one)).await.unwrap();
        if stats.deferred == 1 && stats.total() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no deferred revisit: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.get_alert(&fresh.uid).await.unwrap().unwrap().onset,
        None
    );
    // About two seconds later the revisit reads the onset, and nothing is left.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alert = store.get_alert(&fresh.uid).await.unwrap().unwrap();
        let stats = store.follow_up_stats(Some(one)).await.unwrap();
        if alert.onset.is_some() && stats.deferred == 0 && stats.total() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the onset was not read again: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    run.await.unwrap();
    let old_stats = store
        .follow_up_stats(Some(std::slice::from_ref(&old.uid)))
        .await
        .unwrap();
    assert_eq!(
        (old_stats.total(), old_stats.deferred),
        (0, 0),
        "{old_stats:?}"
    );
    // The fresh alert read twice, the old one once: nothing read again for it.
    let reads = onsets.reads.lock().unwrap().clone();
    let count = |uid: &Uid| reads.iter().filter(|r| *r == uid).count();
    assert_eq!((count(&fresh.uid), count(&old.uid)), (2, 1), "{reads:?}");
}

#[test]
fn reads_again_after_the_first_delay_then_half_the_alert_s_age_until_the_span() {
    use deploygraph_analysis::pipeline::read_again_at;
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
        .unwrap()
        .to_utc();
    let m = chrono::Duration::minutes;
    let (first, until) = (Duration::from_secs(60), Duration::from_secs(15 * 60));
    assert_eq!(
        read_again_at(start, start + m(0), first, until),
        Some(start + m(1))
    );
    assert_eq!(
        read_again_at(start, start + m(2), first, until),
        Some(start + m(3))
    );
    assert_eq!(
        read_again_at(start, start + m(8), first, until),
        Some(start + m(12))
    );
    assert_eq!(
        read_again_at(start, start + m(12), first, until),
        Some(start + m(15))
    );
    assert_eq!(read_again_at(start, start + m(15), first, until), None);
}
