//! `deploygraph`: one binary, many roles — `serve`, `migrate`, `record`, `query`, `canary`, ….
//!
//! Thin by design: parse arguments into typed configuration, wire the library crates, run.

mod agent;
mod api;
mod canary;
mod canary_history;
mod canary_record;
mod canary_rollback;
mod canary_watch;
mod changes;
mod chaos;
mod cli;
mod commands;
mod gate;
mod helm;
mod insight;
mod out;
mod record_change;
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
    let mut command = command();
    let matches = command.get_matches_mut();
    let mut cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `record change` pairs each --before and --after with the --key before it: by position
    // on the command line, which only the matches know.
    if let cli::Command::Record(cli::RecordCommand::Change(args)) = &mut cli.command
        && let Some(change) = matches
            .subcommand_matches("record")
            .and_then(|m| m.subcommand_matches("change"))
    {
        match cli::key_diffs(change) {
            Ok(diff) => args.diff = diff,
            Err(message) => {
                let kind = clap::error::ErrorKind::ArgumentConflict;
                match command
                    .find_subcommand_mut("record")
                    .and_then(|r| r.find_subcommand_mut("change"))
                {
                    Some(change) => change.error(kind, message).exit(),
                    None => command.error(kind, message).exit(),
                }
            }
        }
    }
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
