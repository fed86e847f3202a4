//! Infrastructure checks behind `deploygraph gate` and infra snapshots.
//!
//! Each check returns pass, fail or unknown with a detail, its latency and, for certificate
//! checks, the certificates it saw. Checks run concurrently (bounded) under one global deadline
//! ([`runner::run`]); the gate fails closed: unknown counts as a failure unless the policy says
//! otherwise ([`gate::Policy`]).

pub mod apiserver;
pub mod cert;
pub mod check;
pub mod config;
pub mod coredns;
pub mod dns;
pub mod file;
pub mod gate;
pub mod k8s;
pub mod report;
pub mod runner;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use check::{CheckKind, CheckResult, Part, Status};
