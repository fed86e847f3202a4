//! `topology apply` (a topology file, `manual` edges) and `topology import` (Backstage catalog
//! files, `backstage` edges; the call graph in Prometheus, `mesh` edges).
//!
//! Input is read and validated here first, so a bad file never reaches the API (exit 2 naming
//! the file and entity); then each source is one request of the API ([`crate::api`]).

use crate::api::{Local, connect};
use crate::cli::{Output, TopologyApplyArgs, TopologyImportArgs};
use crate::commands::Failure;
use crate::insight::{decode, print_json};
use deploygraph_api::mesh::{self, MeshConfig, MeshError};
use deploygraph_model::backstage::{self, CatalogFile, ImportOptions};
use deploygraph_model::topology::{ServiceTopology, TopologyInput};
use deploygraph_model::{ServiceRef, newtypes::is_dns1123_label};
use serde_json::{Value, json};
use std::path::Path;

type Outcome = Result<(), Failure>;

fn read_topology(path: &Path) -> Result<Vec<ServiceTopology>, Failure> {
    let fail = |e: &dyn std::fmt::Display| {
        Failure::usage(format!("topology file {}: {e}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
    let input: TopologyInput = serde_norway::from_str(&text).map_err(|e| fail(&e))?;
    input.validate().map_err(|e| fail(&e))
}

/// `topology apply`: records every service's `manual` DEPENDS_ON edges from a topology file.
pub async fn apply(args: TopologyApplyArgs) -> Outcome {
    // Validated first: a bad file never reaches the API.
    let services = read_topology(&args.file)?;
    let client = connect(&args.target, Local::default()).await?;
    let mut applied: Vec<ServiceTopology> = Vec::with_capacity(services.len());
    for topology in services {
        let what = format!("failed to record the dependencies of {}", topology.service);
        // Dependencies go out fully qualified: the file's defaults were applied above.
        let answer = client
            .put_dependencies(&topology)
            .await
            .map_err(|e| Failure::from_api(&what, e))?;
        tracing::info!(service = %topology.service, dependencies = topology.depends_on.len(), "dependencies recorded");
        applied.push(decode(&what, answer.body)?);
    }
    match args.output {
        Output::Json => print_json(&json!({ "services": applied })),
        Output::Text => {
            for a in &applied {
                crate::outln!("{} depends on {}", a.service, list(&a.depends_on))?;
            }
            crate::outln!("applied the topology of {} service(s)", applied.len())
        }
    }
}

fn list(refs: &[ServiceRef]) -> String {
    if refs.is_empty() {
        "nothing".to_owned()
    } else {
        refs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads catalog files, each at most [`backstage::MAX_FILE_BYTES`].
fn read_catalog(paths: &[std::path::PathBuf]) -> Result<Vec<CatalogFile>, Failure> {
    if paths.len() > backstage::MAX_FILES {
        return Err(Failure::usage(format!(
            "at most {} catalog files at once",
            backstage::MAX_FILES
        )));
    }
    paths
        .iter()
        .map(|path| {
            let fail = |e: &dyn std::fmt::Display| {
                Failure::usage(format!("catalog file {}: {e}", path.display()))
            };
            let size = std::fs::metadata(path).map_err(|e| fail(&e))?.len();
            if size > backstage::MAX_FILE_BYTES as u64 {
                return Err(fail(&format!(
                    "is larger than {} bytes ({size} bytes)",
                    backstage::MAX_FILE_BYTES
                )));
            }
            Ok(CatalogFile {
                path: path.display().to_string(),
                content: std::fs::read_to_string(path).map_err(|e| fail(&e))?,
            })
        })
        .collect()
}

/// Reads the call graph from Prometheus. Every query must answer: a failure writes nothing
/// (exit 3 when Prometheus cannot be reached, else 1).
async fn observe(
    url: &str,
    window: &str,
    args: &TopologyImportArgs,
) -> Result<mesh::Poll, Failure> {
    let mut config = MeshConfig::new(url, args.environment.clone())
        .map_err(|e| Failure::usage(format!("--prometheus {e}")))?;
    config.cluster = args.cluster.clone();
    config.window = deploygraph_probe::config::parse_duration(window)
        .map_err(|e| Failure::usage(format!("--prometheus-window: {e}")))?;
    if config.window.as_secs() == 0 {
        return Err(Failure::usage("--prometheus-window: must be at least 1s"));
    }
    let http = mesh::http_client(&config).map_err(|e| Failure::from(anyhow::anyhow!(e)))?;
    let poll = mesh::poll(&http, &config, None).await;
    if let Some((query, e)) = poll.failures.first() {
        let text = format!(
            "failed to read the call graph ({} query): {e}",
            query.as_str()
        );
        return Err(match e {
            MeshError::Unreachable { .. } => Failure::unreachable(text),
            _ => Failure::rejected(text),
        });
    }
    Ok(poll)
}

/// `topology import`: Backstage catalog files and/or the call graph in Prometheus.
pub async fn import(args: TopologyImportArgs) -> Outcome {
    if let Some(ns) = args.namespace.as_deref().filter(|ns| !is_dns1123_label(ns)) {
        return Err(Failure::usage(format!(
            "--namespace: {ns:?} is not a DNS-1123 label"
        )));
    }
    let files = read_catalog(&args.files)?;
    let options = ImportOptions {
        environment: args.environment.clone(),
        namespace: args.namespace.clone(),
        cluster: args.cluster.clone(),
    };
    // Validated here first: a bad catalog never reaches the API.
    let catalog = if files.is_empty() {
        None
    } else {
        Some(backstage::parse(&files, &options).map_err(|e| Failure::usage(e.message))?)
    };
    let observed = match &args.prometheus {
        Some(url) => Some(observe(url, &args.prometheus_window, &args).await?),
        None => None,
    };
    let client = connect(&args.target, Local::default()).await?;
    let mut out = serde_json::Map::new();
    if catalog.is_some() {
        let what = "failed to import the Backstage catalog";
        let answer = client
            .import_backstage(
                &args.environment,
                args.namespace.as_deref(),
                &args.cluster,
                &files,
            )
            .await
            .map_err(|e| Failure::from_api(what, e))?;
        out.insert("backstage".into(), answer.body);
    }
    if let Some(poll) = &observed {
        let what = "failed to record the call graph";
        let body = if poll.edges.is_empty() {
            json!({"source": "mesh", "edges": 0})
        } else {
            client
                .import_mesh(&poll.edges)
                .await
                .map_err(|e| Failure::from_api(what, e))?
                .body
        };
        out.insert("mesh".into(), body);
    }
    let out = Value::Object(out);
    if args.output == Output::Json {
        return print_json(&out);
    }
    if let Some(b) = out.get("backstage") {
        for warning in b["warnings"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", warning.as_str().unwrap_or_default());
        }
        for s in b["services"].as_array().into_iter().flatten() {
            let topology: ServiceTopology = decode("the Backstage import", s.clone())?;
            let mut about = Vec::new();
            if let Some(owner) = &topology.owner {
                about.push(format!("owner {owner}"));
            }
            if let Some(tier) = &topology.tier {
                about.push(format!("tier {tier}"));
            }
            let about = if about.is_empty() {
                String::new()
            } else {
                format!(" ({})", about.join(", "))
            };
            crate::outln!(
                "{}{about} depends on {}",
                topology.service,
                list(&topology.depends_on)
            )?;
        }
        crate::outln!(
            "imported {} entities from {} file(s): {} service(s), {} backstage edge(s)",
            b["entities"],
            files.len(),
            b["services"].as_array().map_or(0, Vec::len),
            b["edges"]
        )?;
    }
    if let (Some(m), Some(poll)) = (out.get("mesh"), &observed) {
        if poll.skipped > 0 {
            eprintln!(
                "warning: {} series without a usable service name were left out",
                poll.skipped
            );
        }
        crate::outln!("recorded {} mesh edge(s) from Prometheus", m["edges"])?;
    }
    Ok(())
}
