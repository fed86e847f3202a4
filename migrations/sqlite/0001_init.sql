-- deploygraph embedded store, schema v1: typed tables for the graph's nodes and relationships.

CREATE TABLE services (
    uid         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    namespace   TEXT,
    environment TEXT NOT NULL,
    sla_tier    TEXT
) STRICT;
CREATE INDEX services_name ON services (name, environment);

CREATE TABLE commits (
    uid          TEXT PRIMARY KEY,
    sha          TEXT NOT NULL,
    repo         TEXT,
    author       TEXT,
    message      TEXT,
    committed_at TEXT
) STRICT;
CREATE INDEX commits_sha ON commits (sha);

CREATE TABLE images (
    uid        TEXT PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    repository TEXT,
    tag        TEXT
) STRICT;

-- DeploymentEvent. `payload` is the normalized event as recorded (the API's read model);
-- every fact in it is also in the typed columns and tables below.
CREATE TABLE deployments (
    uid                 TEXT PRIMARY KEY,
    client_id           TEXT,
    service_uid         TEXT NOT NULL REFERENCES services (uid),
    service             TEXT NOT NULL,
    namespace           TEXT,
    environment         TEXT NOT NULL,
    version             TEXT,
    commit_uid          TEXT NOT NULL REFERENCES commits (uid),
    commit_sha          TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed', 'rolled_back')),
    source              TEXT NOT NULL CHECK (source IN ('api', 'cdevents', 'k8s', 'helm')),
    actor               TEXT,
    started_at          TEXT NOT NULL,
    started_at_us       INTEGER NOT NULL,
    finished_at         TEXT,
    follows_uid         TEXT REFERENCES deployments (uid),
    content_fingerprint TEXT NOT NULL,
    payload             TEXT NOT NULL
) STRICT;
CREATE INDEX deployments_newest ON deployments (started_at_us DESC, uid DESC);
CREATE INDEX deployments_service_newest ON deployments (service, started_at_us DESC, uid DESC);
CREATE INDEX deployments_chain ON deployments (service_uid, started_at_us, uid);
CREATE INDEX deployments_status ON deployments (status, started_at_us DESC);

-- (DeploymentEvent)-[:RUNS]->(Image)
CREATE TABLE deployment_images (
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid) ON DELETE CASCADE,
    image_uid      TEXT NOT NULL REFERENCES images (uid),
    PRIMARY KEY (deployment_uid, image_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX deployment_images_image ON deployment_images (image_uid);

-- (DeploymentEvent)-[:CHANGED]->(ConfigChange)
CREATE TABLE config_changes (
    uid            TEXT PRIMARY KEY,
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid) ON DELETE CASCADE,
    path           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    before         TEXT,
    after          TEXT
) STRICT;
CREATE INDEX config_changes_deployment ON config_changes (deployment_uid);
CREATE INDEX config_changes_path ON config_changes (path);

-- (DeploymentEvent)-[:VALIDATED_BY]->(ValidationResult)
CREATE TABLE validation_results (
    uid             TEXT PRIMARY KEY,
    deployment_uid  TEXT NOT NULL UNIQUE REFERENCES deployments (uid) ON DELETE CASCADE,
    coverage_pct    REAL,
    sast_findings   INTEGER,
    tests_passed    INTEGER,
    tests_failed    INTEGER,
    chaos_pass_rate REAL
) STRICT;
