-- Infrastructure snapshots: (InfraSnapshot)-[:INCLUDES]->(Check)-[:OBSERVED]->(Certificate) and
-- TAKEN_FOR a deployment by uid (the deployment may be recorded after its snapshot).

CREATE TABLE infra_snapshots (
    uid            TEXT PRIMARY KEY,
    taken_at       TEXT NOT NULL,
    taken_at_us    INTEGER NOT NULL,
    verdict        TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'unknown')),
    cluster        TEXT,
    deployment_uid TEXT,
    payload        TEXT NOT NULL
) STRICT;
CREATE INDEX infra_snapshots_deployment ON infra_snapshots (deployment_uid, taken_at_us DESC);
CREATE INDEX infra_snapshots_newest ON infra_snapshots (taken_at_us DESC);

CREATE TABLE checks (
    uid          TEXT PRIMARY KEY,
    snapshot_uid TEXT NOT NULL REFERENCES infra_snapshots (uid) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    target       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pass', 'fail', 'unknown')),
    detail       TEXT NOT NULL,
    latency_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX checks_snapshot ON checks (snapshot_uid);
CREATE INDEX checks_target ON checks (kind, target);

CREATE TABLE certificates (
    uid        TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL UNIQUE,
    subject    TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    sans       TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    is_ca      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX certificates_not_after ON certificates (not_after);

-- (Check)-[:OBSERVED]->(Certificate)
CREATE TABLE check_certificates (
    check_uid       TEXT NOT NULL REFERENCES checks (uid) ON DELETE CASCADE,
    certificate_uid TEXT NOT NULL REFERENCES certificates (uid),
    position        INTEGER NOT NULL,
    PRIMARY KEY (check_uid, certificate_uid)
) STRICT, WITHOUT ROWID;
