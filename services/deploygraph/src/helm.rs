//! `deploygraph helm decode|diff`: Helm release Secrets read offline.

use crate::cli::{HelmDecodeArgs, HelmDiffArgs, Output};
use crate::commands::Failure;
use deploygraph_helm::{Release, ResourceChangeKind, cluster, diff_manifests, diff_values};
use serde_json::json;
use std::io::Read as _;
use std::path::Path;

fn read_release(path: &Path) -> Result<Release, Failure> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?
    };
    deploygraph_helm::decode_secret_json(&text).map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        Failure::usage(format!("{}: {e}{cause}", path.display()))
    })
}

pub fn decode(args: &HelmDecodeArgs) -> Result<(), Failure> {
    let summary = read_release(&args.file)?.summary();
    match args.output {
        Output::Json => crate::outln!("{}", json!(summary))?,
        Output::Text => {
            crate::outln!(
                "release:     {} (namespace {})",
                summary.name,
                summary.namespace
            )?;
            crate::outln!("revision:    {}", summary.revision)?;
            crate::outln!("status:      {}", summary.status)?;
            crate::outln!("chart:       {}", summary.chart.as_deref().unwrap_or("-"))?;
            crate::outln!(
                "app version: {}",
                summary.app_version.as_deref().unwrap_or("-")
            )?;
            if let Some(at) = summary.deployed_at {
                crate::outln!("deployed:    {}", deploygraph_model::format_time(&at))?;
            }
            if let Some(description) = &summary.description {
                crate::outln!("description: {description}")?;
            }
            crate::outln!("resources:   {}", summary.resources)?;
            crate::outln!("values:")?;
            for (path, value) in deploygraph_helm::flatten(&summary.values) {
                crate::outln!("  {path}: {value}")?;
            }
        }
    }
    Ok(())
}

/// The two releases to diff, from files or from the cluster.
async fn releases(args: &HelmDiffArgs) -> Result<(Release, Release), Failure> {
    if let (Some(from), Some(to)) = (&args.from_secret, &args.to_secret) {
        return Ok((read_release(from)?, read_release(to)?));
    }
    let Some(release) = &args.release else {
        return Err(Failure::usage(
            "give RELEASE [-n NAMESPACE], or --from-secret and --to-secret",
        ));
    };
    let client = kube_client(args.kubeconfig.as_deref()).await?;
    let revisions = cluster::revisions(&client, &args.namespace, release)
        .await
        .map_err(|e| Failure::from(anyhow::Error::new(e)))?;
    if revisions.is_empty() {
        return Err(Failure::rejected(format!(
            "no release {release:?} in namespace {:?}",
            args.namespace
        )));
    }
    let available: Vec<String> = revisions.iter().map(|r| r.revision.to_string()).collect();
    let (from, to) = cluster::choose(revisions, args.from, args.to).ok_or_else(|| {
        Failure::rejected(format!(
            "revisions to diff not found for {release:?} (it has {}); pick them with --from and --to",
            available.join(", ")
        ))
    })?;
    let decode = |r: cluster::StoredRevision| {
        r.decoded(release)
            .map_err(|e| Failure::from(anyhow::Error::new(e)))
    };
    Ok((decode(from)?, decode(to)?))
}

pub(crate) async fn kube_client(kubeconfig: Option<&Path>) -> Result<kube::Client, Failure> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Failure::usage(format!("--kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Failure::usage(format!("--kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Failure::usage(format!("no Kubernetes configuration: {e}")))?,
    };
    kube::Client::try_from(config).map_err(|e| Failure::from(anyhow::Error::new(e)))
}

pub async fn diff(args: &HelmDiffArgs) -> Result<(), Failure> {
    let (from, to) = releases(args).await?;
    let values = diff_values(&from.effective_values(), &to.effective_values(), "values");
    let resources = diff_manifests(&from.manifest, &to.manifest, &to.namespace)
        .map_err(|e| Failure::usage(format!("revision {}: {e}", to.version)))?;
    match args.output {
        Output::Json => crate::outln!(
            "{}",
            json!({
                "release": to.name,
                "namespace": to.namespace,
                "from": from.version,
                "to": to.version,
                "values": values,
                "resources": resources,
            })
        )?,
        Output::Text => {
            crate::outln!("{} revision {} → {}", to.name, from.version, to.version)?;
            if values.is_empty() && resources.is_empty() {
                crate::outln!("no changes")?;
            }
            for change in &values {
                crate::outln!("  {}", describe(change))?;
            }
            for resource in &resources {
                match resource.change {
                    ResourceChangeKind::Added => crate::outln!("{} has been added", resource.key)?,
                    ResourceChangeKind::Removed => {
                        crate::outln!("{} has been removed", resource.key)?
                    }
                    ResourceChangeKind::Modified => {
                        crate::outln!("{} has changed:", resource.key)?;
                        for field in &resource.fields {
                            crate::outln!("  {}", describe(field))?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn describe(change: &deploygraph_model::ConfigChange) -> String {
    let before = change.before.as_deref().unwrap_or("∅");
    let after = change.after.as_deref().unwrap_or("∅");
    format!(
        "{} [{}]: {before} → {after}",
        change.path,
        change.kind.as_str()
    )
}
