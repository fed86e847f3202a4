//! Golden uids: the exact uid every node kind derives from fixed inputs.
//!
//! Uids are the idempotency keys of the graph: a retried delivery, a watcher catching up or a
//! re-recorded run finds its node again only because the same facts derive the same uid.
//! **A failing golden uid means that data already stored would be duplicated, not updated:
//! changing a derivation needs a migration that rewrites the stored uids, never just a new
//! value here.**
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use deploygraph_model::change::change_uid;
use deploygraph_model::deployment::{
    ChangeKind, Commit, ConfigChange, HelmRevision, Image, ValidationResult, deployment_uid,
    service_uid,
};
use deploygraph_model::{
    Alert, CertificateRecord, ChangeType, CheckRecord, Cluster, CommitSha, Environment,
    ImageDigest, InfraSnapshot, KeyChange, ServiceName, ServiceRef, Uid, Verdict, parse_time,
};

fn at(text: &str) -> DateTime<Utc> {
    parse_time(text).unwrap()
}

fn commit() -> Commit {
    Commit {
        sha: CommitSha::parse("9fceb02d0ae598e95dc970b74767f19372d61af8").unwrap(),
        repo: Some("github.com/acme/payments".into()),
        author: Some("dev@acme.io".into()),
        message: Some("raise pool".into()),
        committed_at: Some(at("2026-11-20T10:00:00Z")),
    }
}

fn image() -> Image {
    Image {
        repository: Some("ghcr.io/acme/payments".into()),
        tag: Some("v2.3.0".into()),
        digest: Some(ImageDigest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()),
    }
}

fn check() -> CheckRecord {
    CheckRecord {
        kind: "tls".into(),
        target: "payments.prod.svc:443".into(),
        status: Verdict::Pass,
        detail: "ok".into(),
        latency_ms: 12,
        certificates: vec![],
        uses: Vec::new(),
    }
}

/// Compares every derived uid with its golden value and reports all differences at once.
fn assert_golden(cases: &[(&str, Uid, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(_, derived, golden)| derived.as_str() != *golden)
        .map(|(what, derived, golden)| format!("{what}: derived {derived}, golden {golden}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "uid derivation changed; stored data would be duplicated (write a migration):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_node_kind_derives_its_golden_uid() {
    let service = ServiceName::parse("payments").unwrap();
    let environment = Environment::parse("production").unwrap();
    let started = at("2026-11-20T10:05:00Z");
    let default_cluster = Cluster::default();
    let eu = Cluster::parse("eu-west-1").unwrap();
    let in_prod = ServiceRef {
        name: service.clone(),
        namespace: Some("prod".into()),
        environment: environment.clone(),
        cluster: default_cluster.clone(),
    };
    let in_eu = ServiceRef {
        cluster: eu.clone(),
        ..in_prod.clone()
    };
    let by_event = deployment_uid(None, &in_prod, Some(&commit()), &[image()], &started);
    let by_event_in_eu = deployment_uid(None, &in_eu, Some(&commit()), &[image()], &started);
    let by_id = deployment_uid(Some("ci-run-42"), &in_prod, None, &[], &started);
    let by_reference = deployment_uid(
        None,
        &ServiceRef {
            namespace: None,
            ..in_prod.clone()
        },
        None,
        &[Image {
            repository: Some("ghcr.io/acme/payments".into()),
            tag: Some("v2.3.0".into()),
            digest: None,
        }],
        &started,
    );
    let change = ConfigChange::new(
        "values.redis.pool.size".into(),
        ChangeKind::Value,
        Some("50".into()),
        Some("10".into()),
    );
    let helm = HelmRevision {
        release: "payments".into(),
        namespace: "prod".into(),
        revision: 7,
        chart: Some("payments".into()),
        chart_version: Some("1.2.3".into()),
        app_version: Some("2.3.0".into()),
        status: "deployed".into(),
    };
    let snapshot = InfraSnapshot::new(
        at("2026-11-20T10:04:00Z"),
        Some("prod-eu".into()),
        Some(by_event.clone()),
        vec![check()],
    );
    let unattached = InfraSnapshot::new(at("2026-11-20T10:04:00Z"), None, None, vec![]);
    let certificate = CertificateRecord {
        sha256: "cd".repeat(32),
        subject: "CN=payments".into(),
        issuer: "CN=acme-ca".into(),
        sans: vec!["payments.prod.svc".into()],
        not_before: at("2026-01-01T00:00:00Z"),
        not_after: at("2027-01-01T00:00:00Z"),
        is_ca: false,
    };
    let image_by_reference = Image {
        repository: Some("ghcr.io/acme/payments".into()),
        tag: Some("v2.3.0".into()),
        digest: None,
    };
    let flagged = [in_prod.clone()];
    let flip = [KeyChange::new(
        "checkout.new_flow".into(),
        Some("false".into()),
        Some("true".into()),
        false,
    )];
    let change_by_facts = change_uid(
        None,
        ChangeType::FeatureFlag,
        &flagged,
        "alice@acme.io",
        &started,
        &flip,
    );
    let change_by_id = change_uid(
        Some("flag-audit-42"),
        ChangeType::FeatureFlag,
        &flagged,
        "alice@acme.io",
        &started,
        &flip,
    );
    assert_golden(&[
        (
            "Change from its facts (API, CLI)",
            change_by_facts,
            "change-event-9ac82238999f6d4b55c7e37eb1f3f88b",
        ),
        (
            "Change from a client id",
            change_by_id,
            "change-event-583e863dad55bca0a79e2afdbadc0f86",
        ),
        (
            "Uid::derive primitive",
            Uid::derive("dep", &["a", "b"]),
            "dep-f60760cfaef4d8ae665d7518a94e4f2c",
        ),
        (
            "Service",
            service_uid(&service, Some("prod"), &environment, &default_cluster),
            "service-5e1e13da65ec8cf83f178c8ad3badf7c",
        ),
        (
            "Service without namespace",
            service_uid(&service, None, &environment, &default_cluster),
            "service-21e6c18867072279ed1b8f118c37c3da",
        ),
        (
            "Service in a named cluster",
            in_eu.uid(),
            "service-0eb4d0822a6ec7d40e91c56add36f7b7",
        ),
        (
            "DeploymentEvent from its facts in a named cluster",
            by_event_in_eu,
            "deployment-93718a0ffbf890108a35ed50040e081f",
        ),
        (
            "HelmRevision in a named cluster",
            helm.uid(&eu),
            "helm-revision-b101f7a62a237ea036e5d786b4d87ac3",
        ),
        (
            "DeploymentEvent from its facts (API, CLI)",
            by_event.clone(),
            "deployment-b6e5f2b01d0057e8b0fddd8beb01db4c",
        ),
        (
            "DeploymentEvent from a client id",
            by_id,
            "deployment-32b5c209ec8fb022ea20206091bbb32e",
        ),
        (
            "DeploymentEvent with an image without digest",
            by_reference,
            "deployment-76b3efd7db12a500a2faa8eed85f3cba",
        ),
        (
            "Commit",
            commit().uid(),
            "commit-970c828f9e5bfc2d87cfcfc0454d65f0",
        ),
        (
            "Image by digest",
            image().uid(),
            "image-d342c760d1ec77abf7559096c2c2e83a",
        ),
        (
            "Image by reference",
            image_by_reference.uid(),
            "image-ref-09a93dd0643452673de2b5295e84b9e1",
        ),
        (
            "HelmRevision",
            helm.uid(&default_cluster),
            "helm-revision-10ac6c710e408356721fdf616e3af0d9",
        ),
        (
            "ConfigChange",
            change.uid(&by_event),
            "change-36ad69e5f81eea801e33953fe918f32f",
        ),
        (
            "ValidationResult",
            ValidationResult::uid(&by_event),
            "validation-34dd896e25a6b73e460331e2da36dc38",
        ),
        (
            "Alert",
            Alert::uid_for("3b1d6f0c2a9e4d57", &at("2026-11-20T10:20:00Z")),
            "alert-c4d781147aeb6c777946c6f5d86d4a12",
        ),
        (
            "InfraSnapshot",
            snapshot.uid.clone(),
            "snapshot-dff34e5c86d88526b47533dd71188b44",
        ),
        (
            "InfraSnapshot without cluster or deployment",
            unattached.uid,
            "snapshot-53f5b368c368a341d75651ee749f505a",
        ),
        (
            "Check",
            check().uid(&snapshot.uid),
            "check-5e6eca00cabbaa93796f4c6563d978b5",
        ),
        (
            "Certificate",
            certificate.uid(),
            "certificate-2855675689f75d5fabdc7f07292dfd6b",
        ),
    ]);
}
