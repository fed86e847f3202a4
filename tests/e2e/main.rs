//! End-to-end tests: the `deploygraph` binary as a user runs it, against the embedded store and
//! a real Neo4j server (`NEO4J_TEST_URI`, started by `scripts/services up neo4j`); the alert
//! flow and `canary analyze` against real Prometheus and Alertmanager servers (`PROMETHEUS_TEST_URL`,
//! `ALERTMANAGER_TEST_URL`, started by `scripts/services up prometheus alertmanager`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admission;
mod agent;
mod alerts;
mod argo;
mod ask;
mod browser;
mod canary;
mod canary_history;
mod canary_hooks;
mod canary_watch;
mod changes;
mod chaos;
mod chart;
mod ci;
mod cli;
mod clusters;
mod console;
mod dashboards;
mod follow_ups;
mod gate;
mod helm;
mod image;
mod neo4j;
mod outage;
mod quickstart;
mod rca;
mod serve;
mod servers;
mod support;
mod topology;
mod verdicts;
mod watch;
