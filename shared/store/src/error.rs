//! The store's error type.

use std::error::Error as StdError;

type BoxError = Box<dyn StdError + Send + Sync>;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store cannot be reached or cannot take writes now; retrying later may succeed.
    #[error("the {backend} store is unavailable")]
    Unavailable {
        /// `sqlite` or `neo4j`.
        backend: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A store URI that cannot be used.
    #[error("invalid store URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI given.
        uri: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A migration that was applied has been edited since.
    #[error(
        "migration {name} was changed after it was applied (applied checksum {applied}, file checksum {current}); \
         add a new migration instead of editing an applied one"
    )]
    MigrationChanged {
        /// File name of the migration.
        name: String,
        /// Checksum recorded when it was applied.
        applied: String,
        /// Checksum of the file now.
        current: String,
    },
    /// The store has a migration this build does not know: it was migrated by a newer version.
    #[error(
        "the store has migration {version} ({name}) which this build does not know; upgrade deploygraph"
    )]
    UnknownMigration {
        /// Version number.
        version: u32,
        /// Name recorded.
        name: String,
    },
    /// Migrations are pending.
    #[error("{pending} migration(s) are not applied yet; run `deploygraph migrate`")]
    NotMigrated {
        /// How many are pending.
        pending: usize,
    },
    /// Migration files that cannot be loaded.
    #[error("failed to load migrations from {path}: {reason}")]
    MigrationFiles {
        /// Directory or file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A fact names a node that is not stored (a canary analysis of an unknown deployment):
    /// nothing was written.
    #[error("{what} {uid} is not stored")]
    NotFound {
        /// The kind of node named (`deployment`).
        what: &'static str,
        /// Its uid.
        uid: String,
    },
    /// A pagination cursor that was not issued by this store.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A stored record that cannot be decoded.
    #[error("stored record {uid} cannot be decoded")]
    Corrupt {
        /// Its uid.
        uid: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A user query that cannot run as written ([`crate::cypher`]): the database refused it (a
    /// syntax or type error, a write in a read-only query, a missing parameter) or a parameter
    /// cannot be sent. The request's fault: retrying it unchanged fails again. `reason` is meant
    /// for the user and keeps the database's own message, which is the point of this error.
    #[error("the query was refused: {reason}")]
    QueryRefused {
        /// Neo4j's status code (`Neo.ClientError.Statement.SyntaxError`), when the database
        /// refused it.
        code: Option<String>,
        /// Why, in words the user can act on.
        reason: String,
    },
    /// A user query ([`crate::cypher`]) ran longer than its time limit and was stopped.
    #[error("the query timed out after {limit:?} and was stopped")]
    QueryTimedOut {
        /// The limit it exceeded.
        limit: std::time::Duration,
        /// The database's timeout error; `None` when the client-side backstop fired first.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend cannot do this (user Cypher on the embedded store).
    #[error("the {backend} store does not support {what}")]
    Unsupported {
        /// `sqlite` or `neo4j`.
        backend: &'static str,
        /// What was asked for.
        what: &'static str,
    },
    /// Any other backend failure.
    #[error("failed to {operation} in the {backend} store")]
    Backend {
        /// `sqlite` or `neo4j`.
        backend: &'static str,
        /// What was being done.
        operation: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether retrying later may succeed (the HTTP layer answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::NotMigrated { .. })
    }
}

/// Result with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
