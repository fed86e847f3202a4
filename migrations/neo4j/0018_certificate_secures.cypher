// (Certificate)-[:SECURES {via, snapshot_uid, seen_at, seen_at_us}]->(Service): a TLS Secret's
// certificate and the Services the Ingresses and Gateways using it route to.
CREATE INDEX service_name_namespace IF NOT EXISTS FOR (n:Service) ON (n.name, n.namespace);
