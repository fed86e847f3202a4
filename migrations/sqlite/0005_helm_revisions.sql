-- (DeploymentEvent)-[:RELEASED_AS]->(HelmRevision): the Helm release revision a deployment
-- rolled out. Its status follows the release (pending-upgrade → deployed → superseded).
CREATE TABLE helm_revisions (
    uid            TEXT PRIMARY KEY,
    deployment_uid TEXT NOT NULL REFERENCES deployments (uid) ON DELETE CASCADE,
    release        TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    chart          TEXT,
    chart_version  TEXT,
    app_version    TEXT,
    status         TEXT NOT NULL
) STRICT;
CREATE INDEX helm_revisions_release ON helm_revisions (namespace, release, revision);
CREATE INDEX helm_revisions_deployment ON helm_revisions (deployment_uid);
