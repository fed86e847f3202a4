-- Rollbacks: (Rollback)-[:UNDID]->(DeploymentEvent) is `deployment_uid`,
-- (Rollback)-[:RESTORED]->(DeploymentEvent) is `restored_uid` (when known); the undone
-- deployment's service is repeated for timelines. `actor` is the rollback's `by`.
CREATE TABLE rollbacks (
    uid              TEXT PRIMARY KEY,
    deployment_uid   TEXT NOT NULL REFERENCES deployments (uid),
    restored_uid     TEXT REFERENCES deployments (uid),
    service_uid      TEXT NOT NULL,
    service          TEXT NOT NULL,
    namespace        TEXT,
    environment      TEXT NOT NULL,
    reason           TEXT NOT NULL,
    actor            TEXT NOT NULL,
    at               TEXT NOT NULL,
    at_us            INTEGER NOT NULL,
    target           TEXT NOT NULL,
    target_namespace TEXT,
    dry_run          INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    payload          TEXT NOT NULL
) STRICT;
CREATE INDEX rollbacks_deployment ON rollbacks (deployment_uid, at_us DESC, uid DESC);
CREATE INDEX rollbacks_service ON rollbacks (service_uid, at_us DESC, uid DESC);
CREATE INDEX rollbacks_restored ON rollbacks (restored_uid);

-- The round that ended a canary analysis (its verdict is the command's). Analyses stored
-- before are not known to be final.
ALTER TABLE canary_analyses ADD COLUMN "final" INTEGER NOT NULL DEFAULT 0 CHECK ("final" IN (0, 1));
