//! `record change`: a change that is not a rollout, posted to `POST /v1/changes` (a server's,
//! or the router in this process over `--store`).

use crate::cli::{Output, RecordChangeArgs};
use crate::commands::Failure;
use deploygraph_model::chaos::ServiceRefInput;
use deploygraph_model::{ChangeEventInput, Environment, ServiceName, Source, format_time};
use serde_json::Value;

/// Names a model field by the flag that set it (`services[1].name` → `--service`).
fn flag_for(field: &str) -> String {
    let flag = match field {
        f if f.ends_with(".namespace") => "namespace",
        f if f.ends_with(".environment") => "environment",
        f if f.starts_with("services") => "service",
        f if f.ends_with(".before") => "before",
        f if f.ends_with(".after") => "after",
        f if f.starts_with("diff") => "key",
        f => f,
    };
    format!("--{}", flag.replace('_', "-"))
}

/// The request body from the flags; a bad service name or environment is a usage error naming
/// its flag.
fn change_input(args: &RecordChangeArgs) -> Result<ChangeEventInput, Failure> {
    let environment = Environment::parse(&args.environment)
        .map_err(|e| Failure::usage(format!("--environment: {}", e.message)))?;
    let services = args
        .services
        .iter()
        .map(|name| {
            Ok(ServiceRefInput {
                name: ServiceName::parse(name)
                    .map_err(|e| Failure::usage(format!("--service: {}", e.message)))?,
                namespace: args.namespace.clone(),
                environment: environment.clone(),
                cluster: args.cluster.clone(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(ChangeEventInput {
        id: args.id.clone(),
        kind: Some(args.kind.clone()),
        services: Some(services),
        actor: Some(args.actor.clone()),
        // Now, once: a retry (--server) sends the same time, so it finds the same change.
        at: Some(
            args.at
                .clone()
                .unwrap_or_else(|| format_time(&chrono::Utc::now())),
        ),
        diff: (!args.diff.is_empty()).then(|| args.diff.clone()),
        link: args.link.clone(),
        summary: args.summary.clone(),
    })
}

fn print(output: Output, status: &str, change: &Value) -> Result<(), Failure> {
    match output {
        Output::Json => crate::outln!("{change}"),
        Output::Text => {
            let services: Vec<&str> = change["services"]
                .as_array()
                .map(|s| s.iter().filter_map(|s| s["name"].as_str()).collect())
                .unwrap_or_default();
            crate::outln!(
                "{status} change {} ({} of {} in {} at {} by {})",
                change["uid"].as_str().unwrap_or("?"),
                change["kind"].as_str().unwrap_or("?"),
                services.join(", "),
                change["services"][0]["environment"].as_str().unwrap_or("?"),
                change["at"].as_str().unwrap_or("?"),
                change["actor"].as_str().unwrap_or("?"),
            )?;
            for key in change["diff"].as_array().into_iter().flatten() {
                crate::outln!(
                    "  ~ {} {} -> {}",
                    key["key"].as_str().unwrap_or("?"),
                    key["before"].as_str().unwrap_or("∅"),
                    key["after"].as_str().unwrap_or("∅"),
                )?;
            }
            Ok(())
        }
    }
}

/// Records the change; prints it (`recorded` or `already recorded`).
pub async fn run(args: RecordChangeArgs) -> Result<(), Failure> {
    let input = change_input(&args)?;
    // Validate locally first: a usage error never reaches the API.
    input
        .validate(Source::Api)
        .map_err(|e| Failure::usage(format!("{}: {}", flag_for(&e.field), e.message)))?;
    let client = crate::api::connect(&args.target, crate::api::Local::default()).await?;
    let accepted = client
        .record_change(&input)
        .await
        .map_err(|e| Failure::from_api("failed to record the change", e))?;
    let status = if accepted.status == 201 {
        "recorded"
    } else {
        "already recorded"
    };
    print(args.output, status, &accepted.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_fields_are_named_by_their_flags() {
        for (field, flag) in [
            ("services", "--service"),
            ("services[0].namespace", "--namespace"),
            ("services[1].environment", "--environment"),
            ("diff[2].key", "--key"),
            ("diff[0].before", "--before"),
            ("diff[0].after", "--after"),
            ("kind", "--kind"),
            ("at", "--at"),
            ("link", "--link"),
        ] {
            assert_eq!(flag_for(field), flag, "{field}");
        }
    }
}
