-- deploygraph: foreign-keys-off
-- A CDEvents `service.removed` is recorded as a deployment with status `removed`. SQLite cannot
-- alter a CHECK constraint, so the table is rebuilt (the documented procedure, as in 0004:
-- foreign keys off, copy, drop, rename, recreate the indexes, check every foreign key).

CREATE TABLE deployments_new (
    uid                 TEXT PRIMARY KEY,
    client_id           TEXT,
    service_uid         TEXT NOT NULL REFERENCES services (uid),
    service             TEXT NOT NULL,
    namespace           TEXT,
    environment         TEXT NOT NULL,
    version             TEXT,
    commit_uid          TEXT REFERENCES commits (uid),
    commit_sha          TEXT,
    status              TEXT NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed', 'rolled_back', 'removed')),
    source              TEXT NOT NULL CHECK (source IN ('api', 'cdevents', 'k8s', 'helm')),
    actor               TEXT,
    started_at          TEXT NOT NULL,
    started_at_us       INTEGER NOT NULL,
    finished_at         TEXT,
    follows_uid         TEXT REFERENCES deployments (uid),
    content_fingerprint TEXT NOT NULL,
    payload             TEXT NOT NULL
) STRICT;
INSERT INTO deployments_new
    SELECT uid, client_id, service_uid, service, namespace, environment, version, commit_uid,
           commit_sha, status, source, actor, started_at, started_at_us, finished_at, follows_uid,
           content_fingerprint, payload
    FROM deployments;
DROP TABLE deployments;
ALTER TABLE deployments_new RENAME TO deployments;
CREATE INDEX deployments_newest ON deployments (started_at_us DESC, uid DESC);
CREATE INDEX deployments_service_newest ON deployments (service, started_at_us DESC, uid DESC);
CREATE INDEX deployments_chain ON deployments (service_uid, started_at_us, uid);
CREATE INDEX deployments_status ON deployments (status, started_at_us DESC);
