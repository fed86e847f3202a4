-- Overrides of the admission gate: (GateOverride)-[:ADMITTED]->(DeploymentEvent) is
-- `deployment_uid`, set when the deployment recorded for the change is stored.
CREATE TABLE gate_overrides (
    uid            TEXT PRIMARY KEY,
    at_us          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    name           TEXT NOT NULL,
    template_hash  TEXT,
    deployment_uid TEXT REFERENCES deployments (uid),
    payload        TEXT NOT NULL
) STRICT;
CREATE INDEX gate_overrides_workload ON gate_overrides (namespace, name, kind, at_us);
CREATE INDEX gate_overrides_at ON gate_overrides (at_us DESC, uid DESC);
CREATE INDEX gate_overrides_deployment ON gate_overrides (deployment_uid);
