//! Golden uids of the deployments the Kubernetes and Helm watchers record.
//!
//! A watcher that restarts or catches up finds the rollouts it already recorded only because
//! the same objects derive the same uids. **A failing golden uid means that data already
//! stored would be duplicated, not updated: changing a derivation needs a migration that
//! rewrites the stored uids, never just a new value here.**
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_helm::Release;
use deploygraph_k8s::helm_watch::release_to_deployment;
use deploygraph_k8s::observe::{decide, observe_deployment, rollout_uid};
use deploygraph_model::{Environment, parse_time};
use k8s_openapi::api::apps::v1::Deployment as K8sDeployment;
use serde_json::json;

fn environment() -> Environment {
    Environment::parse("production").unwrap()
}

fn workload(revision: Option<&str>) -> K8sDeployment {
    let mut annotations =
        json!({"deploygraph.io/commit": "9fceb02d0ae598e95dc970b74767f19372d61af8"});
    if let Some(revision) = revision {
        annotations["deployment.kubernetes.io/revision"] = json!(revision);
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "0b6c1f8e-7a51-4d2b-9a3e-5f1c2d3e4f50",
                     "generation": 4, "labels": {"app.kubernetes.io/name": "payments"},
                     "annotations": annotations},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:v1"}]}}},
        "status": {"observedGeneration": 4, "updatedReplicas": 3,
                   "conditions": [{"type": "Available", "status": "True"}]}
    }))
    .unwrap()
}

#[test]
fn a_kubernetes_rollout_derives_its_golden_uid() {
    let at = parse_time("2026-11-20T10:05:00Z").unwrap();
    for (revision, golden) in [
        (Some("7"), "k8s-rollout-51c5944bb44d0ef4e7043e2754e80172"),
        (None, "k8s-rollout-9b84d69066f89ce5ee50d4a90cf7ae06"),
    ] {
        let observation = observe_deployment(&workload(revision)).unwrap();
        let uid = rollout_uid(&observation, &deploygraph_model::Cluster::default());
        assert_eq!(
            uid.as_str(),
            golden,
            "uid derivation changed; stored rollouts would be duplicated (write a migration)"
        );
        let recorded = decide(
            None,
            &observation,
            &environment(),
            &deploygraph_model::Cluster::default(),
            at,
        )
        .unwrap();
        assert_eq!(
            recorded.uid, uid,
            "the recorded deployment has the rollout's uid"
        );
    }
}

#[test]
fn a_helm_revision_derives_its_golden_uids() {
    let release: Release = serde_json::from_value(json!({
        "name": "payments", "namespace": "prod", "version": 7,
        "info": {"status": "deployed", "last_deployed": "2026-11-20T10:05:00Z"},
        "chart": {"metadata": {"name": "payments", "version": "1.2.3", "appVersion": "2.3.0"}},
        "config": {"replicas": 3}, "manifest": ""
    }))
    .unwrap();
    let default = deploygraph_model::Cluster::default();
    let recorded = release_to_deployment(&release, None, &environment(), &default).unwrap();
    let helm = recorded.helm.as_ref().unwrap();
    assert_eq!(
        (recorded.uid.as_str(), helm.uid(&default).as_str()),
        (
            "helm-release-bdf40c17876cd6398b2e7f4b1296b0de",
            "helm-revision-10ac6c710e408356721fdf616e3af0d9"
        ),
        "uid derivation changed; stored releases would be duplicated (write a migration)"
    );
    // The same release in another cluster is another deployment.
    let eu = deploygraph_model::Cluster::parse("eu-west-1").unwrap();
    let elsewhere = release_to_deployment(&release, None, &environment(), &eu).unwrap();
    assert_eq!(
        elsewhere.uid.as_str(),
        "helm-release-064c9fc90ca8fb48c9664ea263537d75",
        "uid derivation changed; stored releases would be duplicated (write a migration)"
    );
    assert_eq!(elsewhere.cluster, eu);
    assert_ne!(elsewhere.service_uid(), recorded.service_uid());
}
