//! Rollbacks against the real API server (`scripts/services up kube`) and the real `helm`
//! (`HELM_TEST_BIN`): a Deployment's template restored to its previous ReplicaSet's, a paused
//! one refused and left as it was, an Argo Rollout's `status.abort` written, a Helm release
//! rolled back to its previous revision's values, and `plan` (`--dry-run`) changing nothing.
//! The API server runs no controllers: the ReplicaSets and the Rollout CRD are made by hand
//! (`deploygraph_k8s::testing::rollback`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_k8s::rollback::{
    Action, Error, Helm, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollbacker, Target,
    rollout_resource,
};
use deploygraph_k8s::testing::{client, rollback as fixtures};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn helm_bin() -> PathBuf {
    PathBuf::from(
        std::env::var("HELM_TEST_BIN")
            .expect("HELM_TEST_BIN is not set: run `eval \"$(scripts/services env)\"`"),
    )
}

fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST"))
}

async fn rollbacker(namespace: &str) -> Rollbacker {
    Rollbacker::new(
        client().await,
        namespace,
        Helm {
            bin: helm_bin(),
            kubeconfig: Some(kubeconfig()),
        },
    )
}

fn template_of(d: &Deployment) -> Value {
    serde_json::to_value(&d.spec.as_ref().unwrap().template).unwrap()
}

#[tokio::test]
async fn a_deployment_gets_its_previous_replica_sets_template_back() {
    let client = client().await;
    let ns = fixtures::namespace(&client, "undo").await;
    fixtures::deployment_with_revisions(&client, &ns, "web", &["web:1", "web:2", "web:3"], false)
        .await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let before = api.get("web").await.unwrap();
    let target: Target = "deployment/web".parse().unwrap();

    let action = rollbacker(&ns).await.execute(&target).await.unwrap();
    let Action::DeploymentUndo {
        from_revision,
        to_revision,
        skipped,
        ..
    } = &action
    else {
        panic!("{action:?}");
    };
    assert_eq!((*from_revision, *to_revision, *skipped), (3, 2, false));

    let after = api.get("web").await.unwrap();
    let template = template_of(&after);
    // Revision 2's template, without the ReplicaSet's pod-template-hash label.
    assert_eq!(template["spec"]["containers"][0]["image"], "web:2");
    assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(template["metadata"]["annotations"]["release"], "web:2");
    assert!(
        !template.to_string().contains(POD_TEMPLATE_HASH_LABEL),
        "{template}"
    );
    let annotations = after.metadata.annotations.clone().unwrap();
    // The revision annotation is the Deployment's; the change cause the ReplicaSet's.
    assert_eq!(annotations[REVISION_ANNOTATION], "3");
    assert_eq!(annotations["kubernetes.io/change-cause"], "release web:2");
    assert_ne!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );

    // Undoing again: the template already matches revision 2 (no controller made revision 4).
    let again = rollbacker(&ns).await.execute(&target).await.unwrap();
    assert!(
        matches!(again, Action::DeploymentUndo { skipped: true, .. }),
        "{again:?}"
    );
    assert_eq!(
        api.get("web").await.unwrap().metadata.resource_version,
        after.metadata.resource_version
    );
}

#[tokio::test]
async fn a_paused_deployment_is_refused_and_left_unchanged() {
    let client = client().await;
    let ns = fixtures::namespace(&client, "undo-paused").await;
    fixtures::deployment_with_revisions(&client, &ns, "web", &["web:1", "web:2"], true).await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let before = api.get("web").await.unwrap();
    let target: Target = "deployment/web".parse().unwrap();
    for dry_run in [true, false] {
        let r = rollbacker(&ns).await;
        let e = if dry_run {
            r.plan(&target).await
        } else {
            r.execute(&target).await
        }
        .expect_err("paused");
        assert!(matches!(e, Error::Paused { .. }), "{e}");
        assert!(e.to_string().contains("is paused"), "{e}");
    }
    let after = api.get("web").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    assert_eq!(
        template_of(&after)["spec"]["containers"][0]["image"],
        "web:2"
    );
}

#[tokio::test]
async fn a_deployment_without_history_or_absent_is_a_clear_error() {
    let client = client().await;
    let ns = fixtures::namespace(&client, "undo-first").await;
    fixtures::deployment_with_revisions(&client, &ns, "web", &["web:1"], false).await;
    let r = rollbacker(&ns).await;
    let e = r
        .execute(&"deployment/web".parse().unwrap())
        .await
        .expect_err("no previous revision");
    assert!(matches!(e, Error::NoPreviousRevision { .. }), "{e}");
    let e = r
        .execute(&"deployment/missing".parse().unwrap())
        .await
        .expect_err("absent");
    assert!(
        matches!(&e, Error::Kube { source, .. } if matches!(source.as_ref(), kube::Error::Api(s) if s.code == 404)),
        "{e}"
    );
}

#[tokio::test]
async fn dry_runs_change_nothing() {
    let client = client().await;
    fixtures::rollout_crd(&client).await;
    let ns = fixtures::namespace(&client, "dry-run").await;
    fixtures::deployment_with_revisions(&client, &ns, "web", &["web:1", "web:2"], false).await;
    fixtures::rollout(&client, &ns, "shop").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &rollout_resource());
    let before = deployments.get("web").await.unwrap();
    let r = rollbacker(&ns).await;

    let planned = r.plan(&"deployment/web".parse().unwrap()).await.unwrap();
    let Action::DeploymentUndo {
        to_revision, patch, ..
    } = &planned
    else {
        panic!("{planned:?}");
    };
    assert_eq!(*to_revision, 1);
    assert_eq!(patch[1]["value"]["spec"]["containers"][0]["image"], "web:1");
    let planned = r.plan(&"rollout/shop".parse().unwrap()).await.unwrap();
    assert!(
        matches!(planned, Action::RolloutAbort { .. }),
        "{planned:?}"
    );

    let after = deployments.get("web").await.unwrap();
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    let rollout = rollouts.get("shop").await.unwrap();
    assert!(
        rollout.data["status"].get("abort").is_none(),
        "{}",
        rollout.data
    );
}

#[tokio::test]
async fn an_argo_rollout_is_aborted_through_its_status() {
    let client = client().await;
    fixtures::rollout_crd(&client).await;
    let ns = fixtures::namespace(&client, "abort").await;
    fixtures::rollout(&client, &ns, "shop").await;
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &rollout_resource());
    let before = rollouts.get("shop").await.unwrap();

    let action = rollbacker(&ns)
        .await
        .execute(&"rollout/shop".parse().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(
            action,
            Action::RolloutAbort {
                subresource: "status",
                ..
            }
        ),
        "{action:?}"
    );
    let after = rollouts.get("shop").await.unwrap();
    assert_eq!(after.data["status"]["abort"], true, "{}", after.data);
    // The controller's status is kept; the spec is untouched (a status write).
    assert_eq!(after.data["status"]["phase"], "Paused");
    assert_eq!(after.data["spec"], before.data["spec"]);
    assert_eq!(after.metadata.generation, before.metadata.generation);

    let e = rollbacker(&ns)
        .await
        .execute(&"rollout/missing".parse().unwrap())
        .await
        .expect_err("absent");
    assert!(matches!(e, Error::Kube { .. }), "{e}");
}

/// The real `helm` against the test API server, with its own home.
fn helm(args: &[&str], home: &Path) -> String {
    let out = std::process::Command::new(helm_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "tag: \"1.0\"\nmode: blue\n").unwrap();
    std::fs::write(
        dir.join("templates/config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop\ndata:\n  tag: {{ .Values.tag | quote }}\n  mode: {{ .Values.mode | quote }}\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_helm_release_is_rolled_back_to_its_previous_revision() {
    let client = client().await;
    let ns = fixtures::namespace(&client, "helm-undo").await;
    let home = tempfile::tempdir().unwrap();
    let chart_dir = home.path().join("chart");
    chart(&chart_dir);
    let chart_arg = chart_dir.display().to_string();
    helm(&["install", "shop", &chart_arg, "-n", &ns], home.path());
    helm(
        &[
            "upgrade",
            "shop",
            &chart_arg,
            "-n",
            &ns,
            "--set",
            "tag=2.0",
            "--set",
            "mode=green",
        ],
        home.path(),
    );
    let r = rollbacker(&ns).await;
    let target: Target = "helm/shop".parse().unwrap();

    // The dry run checks the release and changes nothing.
    let planned = r.plan(&target).await.unwrap();
    assert!(
        matches!(&planned, Action::HelmRollback { args, .. } if args.contains(&"--dry-run".to_owned())),
        "{planned:?}"
    );
    let status: Value = serde_json::from_str(&helm(
        &["status", "shop", "-n", &ns, "-o", "json"],
        home.path(),
    ))
    .unwrap();
    assert_eq!(status["version"], 2);

    let action = r.execute(&target).await.unwrap();
    assert!(matches!(action, Action::HelmRollback { .. }), "{action:?}");
    let status: Value = serde_json::from_str(&helm(
        &["status", "shop", "-n", &ns, "-o", "json"],
        home.path(),
    ))
    .unwrap();
    assert_eq!(status["version"], 3);
    assert_eq!(status["info"]["status"], "deployed");
    let first: Value = serde_json::from_str(&helm(
        &[
            "get",
            "values",
            "shop",
            "-n",
            &ns,
            "--all",
            "-o",
            "json",
            "--revision",
            "1",
        ],
        home.path(),
    ))
    .unwrap();
    let third: Value = serde_json::from_str(&helm(
        &[
            "get",
            "values",
            "shop",
            "-n",
            &ns,
            "--all",
            "-o",
            "json",
            "--revision",
            "3",
        ],
        home.path(),
    ))
    .unwrap();
    assert_eq!(third, first);
    assert_eq!(third["tag"], "1.0");
    let config = helm(&["get", "manifest", "shop", "-n", &ns], home.path());
    assert!(config.contains("mode: \"blue\""), "{config}");

    let e = r
        .execute(&"helm/missing".parse().unwrap())
        .await
        .expect_err("no release");
    assert!(matches!(e, Error::Helm { .. }), "{e}");
}
