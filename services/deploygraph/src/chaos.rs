//! `deploygraph chaos …` and `deploygraph query resilience`.

use crate::api::{Local, connect};
use crate::cli::{ChaosListArgs, ChaosShowArgs, Output};
use crate::commands::{Failure, open_migrated};
use crate::insight::{decode, print_json};
use deploygraph_model::{ChaosRun, Uid};
use std::fmt::Write as _;

/// One run as text.
pub fn run_text(run: &ChaosRun) -> String {
    let mut out = format!(
        "{}  {} ({}) against {}\n  verdict {}  phase {}",
        run.uid,
        run.scenario,
        run.experiment,
        run.target,
        run.verdict.as_str(),
        run.phase
    );
    if let Some(p) = run.probe_success_pct {
        let _ = write!(out, "  probes {p:.0}%");
    }
    let _ = write!(
        out,
        "\n  started {}",
        deploygraph_model::format_time(&run.started_at)
    );
    if let Some(end) = run.ended_at {
        let _ = write!(out, "  ended {}", deploygraph_model::format_time(&end));
    }
    if let Some(r) = run.recovery_seconds {
        let _ = write!(out, "  recovered after {r:.1} s");
    }
    if let Some(d) = &run.against {
        let _ = write!(out, "\n  against deployment {d}");
    }
    if let Some(reason) = &run.error_reason {
        let _ = write!(out, "\n  reason: {reason}");
    }
    for p in &run.probes {
        let _ = write!(out, "\n  probe {}: {}", p.name, p.verdict);
    }
    out.push('\n');
    out
}

/// `chaos list`: `GET /v1/chaos/runs`.
pub async fn list(args: ChaosListArgs) -> Result<(), Failure> {
    let client = connect(&args.target, Local::default()).await?;
    let what = "failed to list chaos runs";
    let answer = client
        .list_chaos_runs(
            args.service.as_ref(),
            (args.environment.as_ref(), args.cluster.as_ref()),
            args.limit,
            args.cursor.as_deref(),
        )
        .await
        .map_err(|e| Failure::from_api(what, e))?;
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Runs {
        items: Vec<ChaosRun>,
        #[serde(default)]
        truncated: bool,
        #[serde(default)]
        next_cursor: Option<String>,
    }
    let runs = decode::<Runs>(what, answer.body)?;
    match args.output {
        Output::Json => print_json(&runs),
        Output::Text => {
            if runs.items.is_empty() {
                crate::outln!("no chaos runs recorded")?;
            }
            for run in &runs.items {
                crate::out!("{}", run_text(run))?;
            }
            if runs.truncated {
                crate::insight::note_truncated("chaos runs", runs.next_cursor.as_deref());
            }
            Ok(())
        }
    }
}

/// `chaos show`.
pub async fn show(args: ChaosShowArgs) -> Result<(), Failure> {
    let store = open_migrated(&args.store).await?;
    let uid = Uid::parse(&args.run).map_err(|e| Failure::usage(format!("RUN: {e}")))?;
    let run = store
        .get_chaos_run(&uid)
        .await
        .map_err(|e| Failure::from_store("failed to read the store", e))?
        .ok_or_else(|| Failure::rejected(format!("no chaos run {uid}")))?;
    // A Litmus run left to the operator is refreshed from its ChaosResult.
    let run = if run.ended_at.is_none() && run.engine.is_some() {
        match crate::helm::kube_client(args.kubeconfig.as_deref()).await {
            Ok(client) => {
                match deploygraph_chaos::run::refresh(store.as_ref(), &client, &run).await {
                    Ok(Some(updated)) => updated,
                    Ok(None) => run,
                    Err(e) => {
                        eprintln!("warning: cannot refresh the run from the cluster: {e}");
                        run
                    }
                }
            }
            Err(_) => run,
        }
    } else {
        run
    };
    match args.output {
        Output::Json => print_json(&run),
        Output::Text => {
            crate::out!("{}", run_text(&run))?;
            Ok(())
        }
    }
}

fn kube_needed(scenario: &deploygraph_chaos::scenario::Scenario) -> bool {
    scenario.driver == deploygraph_chaos::scenario::Driver::Litmus
}

fn duration(flag: &str, value: &str) -> Result<std::time::Duration, Failure> {
    deploygraph_probe::config::parse_duration(value)
        .map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// `chaos run`.
pub async fn run(args: crate::cli::ChaosRunArgs) -> Result<(), Failure> {
    use deploygraph_chaos::run::{Context, RunError, Settings, dry_run, execute};
    let mut scenario = deploygraph_chaos::scenario::load(&args.scenario)
        .map_err(|e| Failure::usage(e.to_string()))?;
    if let Some(cluster) = &args.cluster {
        scenario.target.service.cluster = cluster.clone();
    }
    let settings = Settings {
        ack_timeout: duration("--ack-timeout", &args.ack_timeout)?,
        recovery_timeout: duration("--recovery-timeout", &args.recovery_timeout)?,
        ..Settings::default()
    };
    if args.dry_run {
        let manifest =
            dry_run(&scenario, chrono::Utc::now()).map_err(|e| Failure::usage(e.to_string()))?;
        match args.output {
            Output::Json => print_json(&manifest)?,
            Output::Text => crate::outln!(
                "{}",
                serde_norway::to_string(&manifest).map_err(|e| Failure::usage(e.to_string()))?
            )?,
        }
        return Ok(());
    }
    let store = open_migrated(&args.store).await?;
    let kube = if kube_needed(&scenario) {
        Some(crate::helm::kube_client(args.kubeconfig.as_deref()).await?)
    } else {
        None
    };
    let signal = tokio_util::sync::CancellationToken::new();
    let on_signal = signal.clone();
    tokio::spawn(async move {
        crate::commands::shutdown_signal().await;
        eprintln!("stopping the experiment…");
        on_signal.cancel();
    });
    let ctx = Context {
        store,
        kube,
        settings,
        signal,
    };
    eprintln!(
        "running {} ({}) against {}",
        scenario.name, scenario.experiment, scenario.target.service
    );
    let run = execute(&scenario, &ctx, args.wait)
        .await
        .map_err(|e| match e {
            RunError::NotSteady(_) => Failure::rejected(e.to_string()),
            other => Failure::usage(other.to_string()),
        })?;
    match args.output {
        Output::Json => print_json(&run)?,
        Output::Text => crate::out!("{}", run_text(&run))?,
    }
    if run.ended_at.is_some() && run.verdict != scenario.expected_verdict {
        return Err(Failure::rejected(format!(
            "verdict {} where the scenario expects {}",
            run.verdict.as_str(),
            scenario.expected_verdict.as_str()
        )));
    }
    Ok(())
}

/// `chaos abort`.
pub async fn abort(args: crate::cli::ChaosAbortArgs) -> Result<(), Failure> {
    let store = open_migrated(&args.store).await?;
    let uid = Uid::parse(&args.run).map_err(|e| Failure::usage(format!("RUN: {e}")))?;
    let run = store
        .get_chaos_run(&uid)
        .await
        .map_err(|e| Failure::from_store("failed to read the store", e))?
        .ok_or_else(|| Failure::rejected(format!("no chaos run {uid}")))?;
    let client = crate::helm::kube_client(args.kubeconfig.as_deref()).await?;
    let stopped = deploygraph_chaos::run::abort(store.as_ref(), &client, &run, &args.reason)
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    crate::out!("{}", run_text(&stopped))?;
    Ok(())
}
