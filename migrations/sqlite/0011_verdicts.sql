-- Reviewers' verdicts on the suspects of an alert: (DeploymentEvent|Change)-[:CAUSED {by, at,
-- note}]->(Alert) when confirmed, -[:REJECTED {by, at, note}]-> when rejected. One verdict per
-- subject and alert (a later one replaces it); attribution, which rewrites `triggers` and
-- `change_triggers`, never touches these. Each subject keeps a foreign key to its own table,
-- as the triggers do.
CREATE TABLE deployment_verdicts (
    alert_uid      TEXT NOT NULL REFERENCES alerts (uid) ON DELETE CASCADE,
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid),
    verdict        TEXT NOT NULL CHECK (verdict IN ('confirmed', 'rejected')),
    reviewer       TEXT NOT NULL,
    at             TEXT NOT NULL,
    note           TEXT,
    PRIMARY KEY (alert_uid, deployment_uid)
) STRICT, WITHOUT ROWID;
-- A deployment's verdicts, for its service's history.
CREATE INDEX deployment_verdicts_deployment ON deployment_verdicts (deployment_uid, verdict);

CREATE TABLE change_verdicts (
    alert_uid  TEXT NOT NULL REFERENCES alerts (uid) ON DELETE CASCADE,
    change_uid TEXT NOT NULL REFERENCES changes (uid),
    verdict    TEXT NOT NULL CHECK (verdict IN ('confirmed', 'rejected')),
    reviewer   TEXT NOT NULL,
    at         TEXT NOT NULL,
    note       TEXT,
    PRIMARY KEY (alert_uid, change_uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX change_verdicts_change ON change_verdicts (change_uid, verdict);
