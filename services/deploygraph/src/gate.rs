//! `deploygraph gate`: flags and config file into check options, run, report, exit code.

use crate::cli::{GateArgs, GateOutput};
use crate::commands::Failure;
use chrono::Duration;
use deploygraph_probe::config::{self, GateConfig};
use deploygraph_probe::dns::{DnsCheck, DnsTarget};
use deploygraph_probe::gate::{Policy, verdict};
use deploygraph_probe::report;
use deploygraph_probe::runner::{Check, RunOptions};
use deploygraph_probe::tls::{TlsOptions, TlsTarget, roots_from_bundle, system_roots};
use std::io::IsTerminal as _;
use std::sync::Arc;

fn load_config(args: &GateArgs) -> Result<Option<GateConfig>, Failure> {
    let Some(path) = &args.config else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("--config {}: {e}", path.display())))?;
    config::parse(&text)
        .map(Some)
        .map_err(|e| Failure::usage(format!("--config {}: {e}", path.display())))
}

fn options(
    args: &GateArgs,
    file: Option<&GateConfig>,
) -> Result<(Vec<Check>, RunOptions, Policy), Failure> {
    let duration = |flag: &str,
                    value: &Option<String>,
                    from_file: Option<std::time::Duration>,
                    default: u64| {
        match value {
            Some(v) => {
                config::parse_duration(v).map_err(|e| Failure::usage(format!("--{flag}: {e}")))
            }
            None => Ok(from_file.unwrap_or(std::time::Duration::from_secs(default))),
        }
    };
    let deadline = duration(
        "deadline",
        &args.deadline,
        file.and_then(|f| f.deadline),
        30,
    )?;
    let timeout = duration("timeout", &args.timeout, file.and_then(|f| f.timeout), 10)?;
    let checkend = args
        .checkend
        .or(file.and_then(|f| f.checkend))
        .unwrap_or(86_400);
    let checkend = Duration::seconds(
        i64::try_from(checkend).map_err(|_| Failure::usage("--checkend: too large"))?,
    );
    let concurrency = args
        .concurrency
        .or(file.and_then(|f| f.concurrency))
        .unwrap_or(32);
    if concurrency == 0 {
        return Err(Failure::usage("--concurrency: must be at least 1"));
    }
    let ca_file = args
        .ca_file
        .clone()
        .or_else(|| file.and_then(|f| f.ca_file.clone()));
    let roots = match &ca_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Failure::usage(format!("--ca-file {}: {e}", path.display())))?;
            roots_from_bundle(&bytes)
                .map_err(|e| Failure::usage(format!("--ca-file {}: {e}", path.display())))?
        }
        None => system_roots(),
    };
    let mut checks: Vec<Check> = Vec::new();
    for target in file.map(|f| f.tls.clone()).unwrap_or_default() {
        checks.push(Check::Tls(target));
    }
    for raw in &args.tls {
        let target: TlsTarget = raw
            .parse()
            .map_err(|e| Failure::usage(format!("--tls: {e}")))?;
        checks.push(Check::Tls(target));
    }
    for path in file
        .map(|f| f.cert_files.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(args.cert_files.clone())
    {
        checks.push(Check::File(path));
    }
    for dns in file.map(|f| f.dns.clone()).unwrap_or_default() {
        checks.push(Check::Dns(dns));
    }
    for raw in &args.dns {
        let target: DnsTarget = raw
            .parse()
            .map_err(|e| Failure::usage(format!("--dns: {e}")))?;
        checks.push(Check::Dns(DnsCheck::resolves(target)));
    }
    let read_ca = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Failure::usage(format!("{flag} {}: {e}", path.display())))
    };
    for entry in file.map(|f| f.apiserver.clone()).unwrap_or_default() {
        let ca_pem = entry
            .ca_file
            .as_deref()
            .map(|p| read_ca("apiserver.ca_file", p))
            .transpose()?;
        checks.push(Check::Apiserver {
            url: entry.url,
            ca_pem,
        });
    }
    let apiserver_ca = args
        .apiserver_ca
        .as_deref()
        .map(|p| read_ca("--apiserver-ca", p))
        .transpose()?;
    for url in &args.apiservers {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(Failure::usage(format!(
                "--apiserver: {url:?} is not an http(s) URL"
            )));
        }
        checks.push(Check::Apiserver {
            url: url.clone(),
            ca_pem: apiserver_ca.clone(),
        });
    }
    if checks.is_empty() {
        return Err(Failure::usage(
            "nothing to check: give --tls, --cert-file, --dns, --apiserver or --config",
        ));
    }
    let policy = Policy {
        allow_unknown: args.allow_unknown || file.and_then(|f| f.allow_unknown).unwrap_or(false),
    };
    let untrusted_fails =
        !(args.allow_untrusted || file.and_then(|f| f.allow_untrusted).unwrap_or(false));
    let run = RunOptions {
        tls: TlsOptions {
            checkend,
            roots: Arc::new(roots),
            untrusted_fails,
            timeout,
        },
        concurrency,
        deadline,
    };
    Ok((checks, run, policy))
}

pub async fn run(args: GateArgs) -> Result<(), Failure> {
    let file = load_config(&args)?;
    let (checks, options, policy) = options(&args, file.as_ref())?;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "checking {} target(s), deadline {:?}…",
            checks.len(),
            options.deadline
        );
    }
    let results = deploygraph_probe::runner::run(&checks, &options).await;
    let verdict = verdict(&results, policy);
    match args.output {
        GateOutput::Text => print!("{}", report::text(&results, &verdict)),
        GateOutput::Json => println!("{}", report::json(&results, &verdict)),
        GateOutput::Junit => print!("{}", report::junit(&results)),
    }
    tracing::info!(
        passed = verdict.passed,
        failed = verdict.failed,
        unknown = verdict.unknown,
        pass = verdict.pass,
        "gate finished"
    );
    if verdict.pass {
        Ok(())
    } else {
        Err(Failure::rejected(format!(
            "gate failed: {} failed, {} unknown of {} checks",
            verdict.failed,
            verdict.unknown,
            results.len()
        )))
    }
}
