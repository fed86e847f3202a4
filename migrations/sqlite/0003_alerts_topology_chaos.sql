-- Alerts and root-cause analysis: (Alert)-[:FIRED_ON]->(Service), (Service)-[:DEPENDS_ON]->(Service),
-- (DeploymentEvent)-[:TRIGGERS]->(Alert), and chaos runs (ChaosRun)-[:TARGETED|AGAINST|RAISED].

-- Alert: one row per occurrence (fingerprint + starts_at). `payload` is the read model.
CREATE TABLE alerts (
    uid          TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL,
    severity     TEXT,
    status       TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at    TEXT NOT NULL,
    starts_at_us INTEGER NOT NULL,
    ends_at      TEXT,
    service      TEXT,
    namespace    TEXT,
    environment  TEXT,
    summary      TEXT,
    payload      TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_fingerprint ON alerts (fingerprint, starts_at_us DESC);
CREATE INDEX alerts_service_newest ON alerts (service, starts_at_us DESC);
CREATE INDEX alerts_newest ON alerts (starts_at_us DESC);
CREATE INDEX alerts_type ON alerts (type);

-- (Alert)-[:FIRED_ON]->(Service)
CREATE TABLE alert_services (
    alert_uid   TEXT NOT NULL REFERENCES alerts (uid) ON DELETE CASCADE,
    service_uid TEXT NOT NULL REFERENCES services (uid),
    PRIMARY KEY (alert_uid, service_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX alert_services_service ON alert_services (service_uid);

-- (Service)-[:DEPENDS_ON]->(Service)
CREATE TABLE service_dependencies (
    service_uid    TEXT NOT NULL REFERENCES services (uid),
    depends_on_uid TEXT NOT NULL REFERENCES services (uid),
    PRIMARY KEY (service_uid, depends_on_uid)
) STRICT, WITHOUT ROWID;

-- (DeploymentEvent)-[:TRIGGERS {confidence_score, reasons, computed_at}]->(Alert)
CREATE TABLE triggers (
    alert_uid        TEXT NOT NULL REFERENCES alerts (uid) ON DELETE CASCADE,
    deployment_uid   TEXT NOT NULL REFERENCES deployments (uid),
    confidence_score REAL NOT NULL CHECK (confidence_score BETWEEN 0.0 AND 1.0),
    reasons          TEXT NOT NULL, -- JSON array of strings
    computed_at      TEXT NOT NULL,
    PRIMARY KEY (alert_uid, deployment_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX triggers_deployment ON triggers (deployment_uid);

-- ChaosRun, TARGETED its service, AGAINST the deployment live on the target (by uid; the
-- deployment may be recorded later).
CREATE TABLE chaos_runs (
    uid               TEXT PRIMARY KEY,
    scenario          TEXT NOT NULL,
    experiment        TEXT NOT NULL,
    engine            TEXT,
    service_uid       TEXT NOT NULL REFERENCES services (uid),
    service           TEXT NOT NULL,
    namespace         TEXT,
    environment       TEXT NOT NULL,
    verdict           TEXT NOT NULL CHECK (verdict IN ('Awaited', 'Pass', 'Fail', 'Stopped', 'Error')),
    phase             TEXT NOT NULL,
    probe_success_pct REAL,
    started_at        TEXT NOT NULL,
    started_at_us     INTEGER NOT NULL,
    ended_at          TEXT,
    ended_at_us       INTEGER,
    recovery_seconds  REAL,
    error_reason      TEXT,
    against_uid       TEXT,
    payload           TEXT NOT NULL
) STRICT;
CREATE INDEX chaos_runs_service ON chaos_runs (service_uid, started_at_us DESC);
CREATE INDEX chaos_runs_newest ON chaos_runs (started_at_us DESC);
CREATE INDEX chaos_runs_against ON chaos_runs (against_uid);

-- (ChaosRun)-[:RAISED {reason}]->(Alert)
CREATE TABLE chaos_raised (
    run_uid   TEXT NOT NULL REFERENCES chaos_runs (uid) ON DELETE CASCADE,
    alert_uid TEXT NOT NULL REFERENCES alerts (uid) ON DELETE CASCADE,
    reason    TEXT NOT NULL,
    PRIMARY KEY (run_uid, alert_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX chaos_raised_alert ON chaos_raised (alert_uid);
