//! Time from a final `Fail` decision to the rollback request being accepted, against the real
//! API server (`scripts/services up kube`) and the real helm (`HELM_TEST_BIN`): what
//! `canary analyze --rollback` does right after its decision ([`Rollbacker::execute`]).
//!
//! - Deployment undo: read the Deployment, list its namespace's ReplicaSets, pick the previous
//!   revision, send the JSON patch; the clock stops when the API server answered the patch.
//!   Before each (untimed) the Deployment is put back on its newest template.
//! - Argo Rollout abort: the merge patch on `rollouts/status`; before each (untimed) the
//!   abort is cleared.
//! - Helm rollback: `helm rollback RELEASE -n NS` until it exits (a new revision stored).
//! - The Deployment undo's plan alone (`--dry-run`: the read and the list, no patch).
//! - Baseline in the same run: a plain GET of the Deployment (the floor of any request).
//!
//! `cargo bench -p deploygraph-k8s --bench rollback` (`BENCH_ROLLBACKS`, default 50; helm
//! runs a fifth as many, at least 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_k8s::rollback::{Helm, Rollbacker, Target, rollout_resource};
use deploygraph_k8s::testing::{client, rollback as fixtures};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        mean,
        ms.last().copied().unwrap_or_default()
    );
}

fn helm(bin: &Path, kubeconfig: &Path, args: &[&str]) {
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_ROLLBACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let helm_runs = (n / 5).max(5);
    let client = client().await;
    let helm_bin = PathBuf::from(std::env::var("HELM_TEST_BIN").expect("HELM_TEST_BIN"));
    let kubeconfig = PathBuf::from(std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST"));
    fixtures::rollout_crd(&client).await;
    let ns = fixtures::namespace(&client, "bench-rollback").await;
    // Ten revisions, as a Deployment with a default revisionHistoryLimit keeps.
    let images: Vec<String> = (1..=10).map(|i| format!("web:{i}")).collect();
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    fixtures::deployment_with_revisions(&client, &ns, "web", &images, false).await;
    fixtures::rollout(&client, &ns, "shop").await;
    let rollbacker = Rollbacker::new(
        client.clone(),
        &ns,
        Helm {
            bin: helm_bin.clone(),
            kubeconfig: Some(kubeconfig.clone()),
        },
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &rollout_resource());

    let mut floor = Vec::with_capacity(n);
    let mut planned = Vec::with_capacity(n);
    let mut undo = Vec::with_capacity(n);
    let mut abort = Vec::with_capacity(n);
    let deployment: Target = "deployment/web".parse().unwrap();
    let rollout: Target = "rollout/shop".parse().unwrap();
    for _ in 0..n {
        let t = Instant::now();
        deployments.get("web").await.unwrap();
        floor.push(t.elapsed().as_secs_f64() * 1000.0);

        let t = Instant::now();
        rollbacker.plan(&deployment).await.unwrap();
        planned.push(t.elapsed().as_secs_f64() * 1000.0);

        // Back on the newest template (untimed), then the undo.
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"template": fixtures::template("web", "web:10")}})),
            )
            .await
            .unwrap();
        let t = Instant::now();
        rollbacker.execute(&deployment).await.unwrap();
        undo.push(t.elapsed().as_secs_f64() * 1000.0);

        rollouts
            .patch_status(
                "shop",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"abort": false}})),
            )
            .await
            .unwrap();
        let t = Instant::now();
        rollbacker.execute(&rollout).await.unwrap();
        abort.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let home = tempfile::tempdir().unwrap();
    let chart = home.path().join("chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "tag: \"1\"\n").unwrap();
    std::fs::write(
        chart.join("templates/config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop\ndata:\n  tag: {{ .Values.tag | quote }}\n",
    )
    .unwrap();
    let chart_arg = chart.display().to_string();
    helm(
        &helm_bin,
        &kubeconfig,
        &["install", "shop", &chart_arg, "-n", &ns],
    );
    helm(
        &helm_bin,
        &kubeconfig,
        &["upgrade", "shop", &chart_arg, "-n", &ns, "--set", "tag=2"],
    );
    let release: Target = "helm/shop".parse().unwrap();
    let mut helm_ms = Vec::with_capacity(helm_runs);
    for _ in 0..helm_runs {
        let t = Instant::now();
        rollbacker.execute(&release).await.unwrap();
        helm_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    println!("| request | n | p50 ms | p99 ms | mean ms | max ms |");
    println!("|---|---|---|---|---|---|");
    report("GET the Deployment (floor)", floor);
    report(
        "Deployment undo planned (--dry-run: read, list ReplicaSets)",
        planned,
    );
    report("Deployment undo (read, list ReplicaSets, JSON patch)", undo);
    report("Argo Rollout abort (merge patch on status)", abort);
    report("helm rollback (process, to the previous revision)", helm_ms);

    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &Default::default())
        .await;
}
