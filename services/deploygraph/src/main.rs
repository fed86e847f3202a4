//! `deploygraph`: one binary, many roles — `serve`, `migrate`, `record`, `query`.
//!
//! Thin by design: parse arguments into typed configuration, wire the library crates, run.

mod chaos;
mod cli;
mod commands;
mod gate;
mod helm;
mod insight;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _guard = match telemetry::init(&cli.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(commands::run(cli.command))
}
