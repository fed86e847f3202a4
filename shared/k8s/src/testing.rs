//! The real API server of `scripts/services up kube` for tests and benchmarks (feature
//! `testing`).

/// A client of the API server whose kubeconfig `KUBECONFIG_TEST` names.
///
/// # Panics
/// Without `KUBECONFIG_TEST` (tests never skip their subject) or with an unusable kubeconfig.
#[allow(clippy::expect_used)]
pub async fn client() -> kube::Client {
    let path = std::env::var("KUBECONFIG_TEST").expect(
        "KUBECONFIG_TEST is not set: these tests need the real API server; run them through \
         scripts/test (or `eval \"$(scripts/services env)\"` after `scripts/services up kube`)",
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(path).expect("a readable kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a client")
}

/// Fixtures of the rollback tests and benchmark: what the deployment controller and the Argo
/// Rollouts CRD would have put in a cluster, made by hand (the test API server runs no
/// controller).
#[allow(clippy::expect_used, clippy::unwrap_used)]
pub mod rollback {
    use crate::rollback::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, DynamicObject, PostParams};
    use serde_json::{Value, json};
    use std::time::Duration;

    /// A new namespace named `PREFIX-RANDOM`.
    pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace"),
            )
            .await
            .expect("create a namespace");
        name
    }

    /// The pod template of revision `image`.
    pub fn template(name: &str, image: &str) -> Value {
        json!({
            "metadata": {"labels": {"app": name}, "annotations": {"release": image}},
            "spec": {"containers": [{"name": "web", "image": image}]},
        })
    }

    /// A Deployment `name` running the last of `images`, with one ReplicaSet per image
    /// (revisions 1, 2, …, each with its pod-template-hash label and an annotation naming its
    /// image, controlled by the Deployment), as the deployment controller leaves them.
    pub async fn deployment_with_revisions(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        images: &[&str],
        paused: bool,
    ) -> Deployment {
        let current = images.last().expect("one image at least");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let created = deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": name, "annotations": {
                        REVISION_ANNOTATION: images.len().to_string(),
                        "kubernetes.io/change-cause": format!("release {current}"),
                    }},
                    "spec": {
                        "replicas": 1,
                        "paused": paused,
                        "selector": {"matchLabels": {"app": name}},
                        "template": template(name, current),
                    },
                }))
                .expect("deployment"),
            )
            .await
            .expect("create a deployment");
        let uid = created.metadata.uid.clone().expect("uid");
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
        for (i, image) in images.iter().enumerate() {
            let hash = format!("h{:x}", rand::random::<u32>());
            let mut template = template(name, image);
            template["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
            sets.create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {
                        "name": format!("{name}-{hash}"),
                        "labels": {"app": name, POD_TEMPLATE_HASH_LABEL: hash},
                        "annotations": {
                            REVISION_ANNOTATION: (i + 1).to_string(),
                            "kubernetes.io/change-cause": format!("release {image}"),
                        },
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                            "name": name, "uid": uid, "controller": true,
                            "blockOwnerDeletion": true}],
                    },
                    "spec": {
                        "replicas": 0,
                        "selector": {"matchLabels": {"app": name, POD_TEMPLATE_HASH_LABEL: hash}},
                        "template": template,
                    },
                }))
                .expect("replica set"),
            )
            .await
            .expect("create a replica set");
        }
        created
    }

    /// Installs a minimal Argo Rollouts `Rollout` CRD (any fields, a status subresource) once,
    /// and waits until a Rollout can be created.
    pub async fn rollout_crd(client: &kube::Client) {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "rollouts.argoproj.io"},
            "spec": {
                "group": "argoproj.io",
                "scope": "Namespaced",
                "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout",
                          "shortNames": ["ro"], "listKind": "RolloutList"},
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}},
                }],
            },
        });
        match crds
            .create(
                &PostParams::default(),
                &serde_json::from_value(crd).expect("crd"),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("create the Rollout CRD: {e}"),
        }
        for _ in 0..100 {
            let established = crds
                .get("rollouts.argoproj.io")
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                // The discovery cache of the API server catches up a moment later.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the Rollout CRD was not established within 10 s");
    }

    /// An Argo Rollout `name` (canary strategy) with a status as its controller would write it.
    pub async fn rollout(client: &kube::Client, namespace: &str, name: &str) -> DynamicObject {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &crate::rollback::rollout_resource(),
        );
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": template(name, "web:2"),
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
            },
        }))
        .expect("rollout");
        let mut last = None;
        for _ in 0..50 {
            match api.create(&PostParams::default(), &object).await {
                Ok(created) => {
                    let status = json!({"status": {"phase": "Paused", "currentStepIndex": 1}});
                    api.patch_status(
                        name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(status),
                    )
                    .await
                    .expect("write the rollout's status");
                    return created;
                }
                // The CRD's endpoint may still be settling.
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("create the rollout: {last:?}");
    }
}
