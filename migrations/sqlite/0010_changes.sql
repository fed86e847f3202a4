-- Changes that are not rollouts (feature flags, Terraform applies, migrations, node pools,
-- ConfigMap / Secret / HPA edits): (Change)-[:AFFECTS]->(Service), the keys each changed, and
-- (Change)-[:TRIGGERS]->(Alert). Follow-ups gain the kind `change`.

-- Change. `payload` is the change as recorded (the API's read model); every fact in it is also
-- in the typed columns and tables below.
CREATE TABLE changes (
    uid                 TEXT PRIMARY KEY,
    client_id           TEXT,
    kind                TEXT NOT NULL CHECK (kind IN ('feature_flag', 'terraform', 'migration', 'node_pool', 'config_map', 'secret', 'hpa', 'other')),
    actor               TEXT NOT NULL,
    at                  TEXT NOT NULL,
    at_us               INTEGER NOT NULL,
    link                TEXT,
    summary             TEXT,
    source              TEXT NOT NULL CHECK (source IN ('api', 'cdevents', 'k8s', 'helm')),
    content_fingerprint TEXT NOT NULL,
    payload             TEXT NOT NULL
) STRICT;
CREATE INDEX changes_newest ON changes (at_us DESC, uid DESC);

-- (Change)-[:AFFECTS]->(Service). The change's `at_us` is repeated here, so a service's changes
-- in a window are one index range.
CREATE TABLE change_services (
    change_uid  TEXT NOT NULL REFERENCES changes (uid) ON DELETE CASCADE,
    service_uid TEXT NOT NULL REFERENCES services (uid),
    at_us       INTEGER NOT NULL,
    PRIMARY KEY (change_uid, service_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX change_services_window ON change_services (service_uid, at_us);

-- The keys a change changed, with their values (redacted before they reach the store).
CREATE TABLE change_keys (
    change_uid TEXT NOT NULL REFERENCES changes (uid) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    before     TEXT,
    after      TEXT,
    PRIMARY KEY (change_uid, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX change_keys_key ON change_keys (key);

-- (Change)-[:TRIGGERS {confidence_score, reasons, computed_at}]->(Alert), beside the
-- deployments' `triggers`: each suspect keeps a foreign key to its own table.
CREATE TABLE change_triggers (
    alert_uid        TEXT NOT NULL REFERENCES alerts (uid) ON DELETE CASCADE,
    change_uid       TEXT NOT NULL REFERENCES changes (uid),
    confidence_score REAL NOT NULL CHECK (confidence_score BETWEEN 0.0 AND 1.0),
    reasons          TEXT NOT NULL, -- JSON array of strings
    computed_at      TEXT NOT NULL,
    PRIMARY KEY (alert_uid, change_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX change_triggers_change ON change_triggers (change_uid);

-- Follow-ups of new changes. SQLite cannot alter a CHECK constraint, so the table is rebuilt
-- (nothing references it, and it references nothing).
CREATE TABLE follow_ups_new (
    kind            TEXT NOT NULL CHECK (kind IN ('alert', 'deployment', 'change')),
    subject         TEXT NOT NULL,
    enqueued_at_us  INTEGER NOT NULL,
    claimable_at_us INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
) STRICT;
INSERT INTO follow_ups_new (kind, subject, enqueued_at_us, claimable_at_us, attempts)
    SELECT kind, subject, enqueued_at_us, claimable_at_us, attempts FROM follow_ups;
DROP TABLE follow_ups;
ALTER TABLE follow_ups_new RENAME TO follow_ups;
CREATE INDEX follow_ups_claimable ON follow_ups (claimable_at_us, enqueued_at_us);
CREATE INDEX follow_ups_subject ON follow_ups (subject);
