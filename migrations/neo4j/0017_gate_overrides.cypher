// Overrides of the admission gate: (GateOverride)-[:ADMITTED]->(DeploymentEvent), made when the
// deployment recorded for the change is stored.
CREATE CONSTRAINT gate_override_uid IF NOT EXISTS FOR (n:GateOverride) REQUIRE n.uid IS UNIQUE;
CREATE INDEX gate_override_workload IF NOT EXISTS FOR (n:GateOverride) ON (n.namespace, n.name, n.at_us);
CREATE INDEX gate_override_at IF NOT EXISTS FOR (n:GateOverride) ON (n.at_us);
