//! Stores for tests and benchmarks (feature `testing`): a migrated SQLite store in a temporary
//! directory, and the real Neo4j of `scripts/services up neo4j` (`NEO4J_TEST_URI`).

use crate::neo4j::{Neo4jOptions, Neo4jStore};
use crate::sqlite::SqliteStore;
use crate::{GraphStore, MigrationSource};
use secrecy::SecretString;
use std::sync::Arc;

pub mod bolt;

/// A store, and the temporary directory a SQLite store lives in (removed when dropped).
pub type TestStore = (Option<tempfile::TempDir>, Arc<dyn GraphStore>);

/// A migrated SQLite store in a new temporary directory.
///
/// # Panics
/// When the directory or the store cannot be made.
#[allow(clippy::expect_used)]
pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("store.db"), MigrationSource::Embedded)
        .await
        .expect("the SQLite store opens");
    store.migrate().await.expect("the SQLite store migrates");
    (Some(dir), Arc::new(store))
}

/// `host:port` of the Neo4j at `NEO4J_TEST_URI`, for tests that put something between the
/// store and the server (a proxy) or name another scheme.
///
/// # Panics
/// Without `NEO4J_TEST_URI` (tests never skip their subject), or a URI without `://`.
#[allow(clippy::expect_used)]
#[must_use]
pub fn neo4j_address() -> String {
    let uri = std::env::var("NEO4J_TEST_URI").expect(
        "NEO4J_TEST_URI is not set: these tests need a real Neo4j server; run them through \
         scripts/test (or `eval \"$(scripts/services env)\"` after `scripts/services up neo4j`)",
    );
    uri.split("://")
        .nth(1)
        .expect("NEO4J_TEST_URI is scheme://host:port")
        .trim_end_matches('/')
        .to_owned()
}

/// The migrated Neo4j store at `NEO4J_TEST_URI`.
///
/// # Panics
/// Without `NEO4J_TEST_URI` (tests never skip their subject) or when it cannot be migrated.
#[allow(clippy::expect_used)]
pub async fn neo4j() -> TestStore {
    let uri = std::env::var("NEO4J_TEST_URI").expect(
        "NEO4J_TEST_URI is not set: these tests need a real Neo4j server; run them through \
         scripts/test (or `eval \"$(scripts/services env)\"` after `scripts/services up neo4j`)",
    );
    let store = Neo4jStore::connect(
        &uri,
        "",
        &SecretString::from(String::new()),
        Neo4jOptions::default(),
        MigrationSource::Embedded,
    )
    .expect("the Neo4j URI is usable");
    store.migrate().await.expect("the Neo4j store migrates");
    (None, Arc::new(store))
}

/// Removes the pending follow-ups about `subjects` without doing them: a test that writes
/// thousands of facts into the shared Neo4j database, and is not about their follow-ups, leaves
/// no backlog for the pipelines of the tests after it.
///
/// # Panics
/// When the store fails.
#[allow(clippy::expect_used)]
pub async fn discard_follow_ups(store: &dyn GraphStore, subjects: &[deploygraph_model::Uid]) {
    for chunk in subjects.chunks(1000) {
        loop {
            let claimed = store
                .claim_follow_ups(crate::Claim {
                    subjects: Some(chunk),
                    limit: 1000,
                    now: chrono::Utc::now(),
                    lease: chrono::Duration::seconds(60),
                })
                .await
                .expect("follow-ups are claimed");
            if claimed.is_empty() {
                break;
            }
            for f in claimed {
                store
                    .finish_follow_up(f.kind, &f.subject, f.enqueued_at)
                    .await
                    .expect("a follow-up is finished");
            }
        }
    }
}

/// Runs each named `async fn(Arc<dyn GraphStore>)` of the calling test file as a test on both
/// stores: `sqlite::NAME` on a fresh [`sqlite`] store, `neo4j::NAME` on the [`neo4j`] one (the
/// caller needs `tokio` with the `macros` and `rt-multi-thread` features).
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_dir, store) = $crate::testing::sqlite().await;
                super::$name(store).await;
            })*
        }
        mod neo4j {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_dir, store) = $crate::testing::neo4j().await;
                super::$name(store).await;
            })*
        }
    };
}
