//! `deploygraph`: one binary, many roles — `serve`, `migrate`, `record`, `query`.
//!
//! Thin by design: parse arguments into typed configuration, wire the library crates, run.

mod api;
mod changes;
mod chaos;
mod cli;
mod commands;
mod gate;
mod helm;
mod insight;
mod out;
mod telemetry;
mod topology;

use clap::{CommandFactory as _, FromArgMatches as _};
use std::process::ExitCode;

/// The command line, with the exit-code table after every command's help.
fn command() -> clap::Command {
    fn with_exit_codes(command: clap::Command) -> clap::Command {
        command
            .after_help(commands::EXIT_CODES)
            .mut_subcommands(with_exit_codes)
    }
    with_exit_codes(cli::Cli::command())
}

fn main() -> ExitCode {
    let cli = match cli::Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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
