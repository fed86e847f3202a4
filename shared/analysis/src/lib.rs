//! Root-cause analysis over the graph's facts: which deployment or other change caused an
//! alert.
//!
//! The deciding logic is pure ([`attribution`] with its [`model`], [`factors`], [`dora`], [`report`]): facts in,
//! decisions with their reasons out. [`engine`] gathers the facts from a store and writes the
//! attribution back; [`pipeline`] does the follow-ups every ingest leaves in the store (attribution,
//! re-attribution, snapshots) with bounded workers; [`views`] are the answers the HTTP API and the CLI share.

pub mod ask;
pub mod attribution;
pub mod change_candidates;
pub mod dora;
pub mod engine;
pub mod factors;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod symptom;
pub mod timeline;
pub mod views;
