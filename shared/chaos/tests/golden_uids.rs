//! Golden uid of a chaos run. Re-recording a run updates its node only because the scenario
//! and start derive the same uid. **A failing golden uid means that data already stored would
//! be duplicated, not updated: changing the derivation needs a migration that rewrites the
//! stored uids, never just a new value here.**
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_chaos::run::run_uid;
use deploygraph_model::parse_time;

#[test]
fn a_chaos_run_derives_its_golden_uid() {
    let started = parse_time("2026-11-20T10:30:00Z").unwrap();
    assert_eq!(
        run_uid("payments-pod-delete", &started).as_str(),
        "chaos-run-e2c338a70a52a636257200cbda49bbe0",
        "uid derivation changed; stored chaos runs would be duplicated (write a migration)"
    );
}
