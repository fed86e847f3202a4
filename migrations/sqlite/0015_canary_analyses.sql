-- Canary analyses: (CanaryAnalysis)-[:ANALYZED]->(DeploymentEvent) is `deployment_uid`, the
-- deployment's service repeated for timelines; (CanaryAnalysis)-[:MEASURED]->(MetricVerdict) is
-- one `metric_verdicts` row per metric. A later record of an analysis replaces its row and its
-- metric rows.
CREATE TABLE canary_analyses (
    uid            TEXT PRIMARY KEY,
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid),
    service_uid    TEXT NOT NULL,
    service        TEXT NOT NULL,
    namespace      TEXT,
    environment    TEXT NOT NULL,
    template       TEXT NOT NULL,
    verdict        TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'inconclusive', 'no_data')),
    baseline_kind  TEXT NOT NULL CHECK (baseline_kind IN ('side_by_side', 'history')),
    started_at     TEXT NOT NULL,
    started_at_us  INTEGER NOT NULL,
    decided_at     TEXT NOT NULL,
    decided_at_us  INTEGER NOT NULL,
    analyses       INTEGER NOT NULL CHECK (analyses >= 1),
    rule           TEXT NOT NULL,
    payload        TEXT NOT NULL
) STRICT;
CREATE INDEX canary_analyses_deployment ON canary_analyses (deployment_uid, started_at_us DESC, uid DESC);
CREATE INDEX canary_analyses_service ON canary_analyses (service_uid, started_at_us DESC, uid DESC);
CREATE INDEX canary_analyses_newest ON canary_analyses (started_at_us DESC, uid DESC);

CREATE TABLE metric_verdicts (
    analysis_uid TEXT NOT NULL REFERENCES canary_analyses (uid),
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('ratio', 'distribution')),
    outcome      TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'inconclusive', 'no_data')),
    critical     INTEGER NOT NULL CHECK (critical IN (0, 1)),
    rule         TEXT NOT NULL,
    evidence     TEXT NOT NULL,
    PRIMARY KEY (analysis_uid, name)
) STRICT;
CREATE INDEX metric_verdicts_failing ON metric_verdicts (outcome, name);
