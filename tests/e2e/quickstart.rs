//! The README's examples, run as written: the quick start (every block marked
//! `<!-- quickstart … -->`) in a fresh directory on the embedded store, and the blocks marked
//! `<!-- tested: … against a server -->` against a running server. The commands are read from
//! README.md at test time, so the walk-through cannot rot.

use crate::support::{Server, bin, sqlite_uri, temp_path};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The commands of every ```sh block preceded by a line starting with `marker`, in order, with
/// continuation lines joined.
fn commands(readme: &str, marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with(marker) {
            continue;
        }
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "a sh block follows the `{marker}` marker"
        );
        let mut command = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            if command.is_empty() && line.trim().is_empty() {
                continue;
            }
            command.push_str(line.strip_suffix('\\').unwrap_or(line));
            if line.ends_with('\\') {
                command.push(' ');
            } else if command.matches('\'').count() % 2 == 1 {
                // Inside a single-quoted argument that spans lines.
                command.push('\n');
            } else {
                out.push(std::mem::take(&mut command));
            }
        }
        assert!(command.is_empty(), "a block ends inside a command");
    }
    out
}

/// Runs `command` with bash in `dir`, the built `deploygraph` first on the PATH.
fn sh(command: &str, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", command])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("DEPLOYGRAPH_STORE")
        .env_remove("DEPLOYGRAPH_SERVER")
        .env_remove("DEPLOYGRAPH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "`{command}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

#[test]
fn the_quick_start_runs_as_written_from_a_deployment_to_its_incident_report() {
    let commands = commands(&readme(), "<!-- quickstart");
    assert_eq!(commands.len(), 4, "{commands:#?}");
    assert!(
        commands[0].starts_with("deploygraph record deployment")
            && commands[0].contains("--change"),
        "{}",
        commands[0]
    );
    // A fresh directory, with the repository's example files.
    let dir = temp_path("quickstart");
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    std::fs::copy(
        repo().join("examples/alertmanager-alert.json"),
        dir.join("examples/alertmanager-alert.json"),
    )
    .unwrap();
    let outputs: Vec<String> = commands
        .iter()
        .map(|c| String::from_utf8_lossy(&sh(c, &dir, &[]).stdout).into_owned())
        .collect();
    assert!(
        outputs[0].starts_with("recorded deployment"),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[1].contains("created alert 4e2a1c9d7b3f8a60 on payments"),
        "{}",
        outputs[1]
    );
    let suspects = &outputs[2];
    assert!(
        suspects.contains("1. ")
            && suspects.contains("payments production v2.3.1")
            && suspects.contains("~ values.redis.pool.size [value] 50 -> 10"),
        "{suspects}"
    );
    let report = &outputs[3];
    assert!(
        report.contains("# values.redis.pool.size [value]\n- 50\n+ 10")
            && report.contains("9fceb02"),
        "{report}"
    );
    assert!(
        dir.join("deploygraph.db").exists(),
        "the quick start works on deploygraph.db in the current directory"
    );

    // With --server, the same answers from a server on that store.
    let store = format!("sqlite://{}", dir.join("deploygraph.db").display());
    let server = Server::start(&store, &[]);
    let remote = sh(
        &format!("{} --server {}", commands[2], server.url),
        &dir,
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&remote.stdout), *suspects);
}

#[test]
fn the_readmes_recording_examples_run_as_written_against_a_server() {
    let token = "readme-t0ken";
    let server = Server::start(&sqlite_uri(), &["--token", token]);
    let commands = commands(&readme(), "<!-- tested:");
    assert_eq!(commands.len(), 4, "{commands:#?}");
    let dir = temp_path("readme");
    std::fs::create_dir_all(&dir).unwrap();
    let mut outputs = Vec::new();
    for command in &commands {
        assert!(
            command.contains("http://127.0.0.1:8080"),
            "the examples name the default address: {command}"
        );
        let command = command.replace("http://127.0.0.1:8080", &server.url);
        let out = sh(&command, &dir, &[("DEPLOYGRAPH_TOKEN", token)]);
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert!(
        outputs[0].starts_with("recorded deployment"),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[1].starts_with("recorded change change-event-")
            && outputs[1].contains("(feature_flag of checkout in production")
            && outputs[1].contains("~ checkout.new_flow false -> true"),
        "{}",
        outputs[1]
    );
    let posted: serde_json::Value = serde_json::from_str(&outputs[2])
        .unwrap_or_else(|e| panic!("the curl example's answer ({e}): {}", outputs[2]));
    assert!(posted["uid"].is_string(), "{posted}");
    assert_eq!(posted["changes"][0]["path"], "values.redis.pool.size");
    let listed: serde_json::Value = serde_json::from_str(&outputs[3]).unwrap();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "both examples are recorded, neither collides with the other: {listed}"
    );
}
