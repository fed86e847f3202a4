//! Logging: `tracing` to stderr, text or one JSON object per line; colour only on a terminal.

use crate::cli::{LogFormat, TelemetryOptions};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// Keeps telemetry alive for the life of the process.
pub struct Guard;

/// Installs the global subscriber. The filter comes from `--log-level` (or `RUST_LOG`), with
/// the chatty HTTP and TLS crates muted.
pub fn init(options: &TelemetryOptions) -> anyhow::Result<Guard> {
    let filter = EnvFilter::try_new(format!(
        "{},hyper=warn,h2=warn,rustls=warn,neo4rs=warn,tower_http=info",
        options.log_level
    ))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: files, pipes and CI logs get plain text.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match options.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("failed to install the log subscriber: {e}"))?;
    Ok(Guard)
}
