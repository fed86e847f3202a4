-- Release summaries: (ReleaseSummary)-[:SUMMARIZES]->(DeploymentEvent) is `deployment_uid`; one
-- per deployment and template (the uid is derived from both), replaced on a later record. The
-- deployment's service, environment and start are repeated for the history read (a canary's
-- baseline: the summaries of the service's earlier deployments on a template, newest first).
CREATE TABLE release_summaries (
    uid            TEXT PRIMARY KEY,
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid),
    service        TEXT NOT NULL,
    environment    TEXT NOT NULL,
    template       TEXT NOT NULL,
    deployed_at_us INTEGER NOT NULL,
    settled_at     TEXT NOT NULL,
    settled_at_us  INTEGER NOT NULL,
    payload        TEXT NOT NULL,
    UNIQUE (deployment_uid, template)
) STRICT;
CREATE INDEX release_summaries_history
    ON release_summaries (service, environment, template, deployed_at_us DESC, deployment_uid DESC);
