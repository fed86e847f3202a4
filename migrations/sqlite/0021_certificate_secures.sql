-- (Certificate)-[:SECURES {via}]->(Service): a TLS Secret's certificate (its leaf) and the
-- Services the Ingresses and Gateways using it route to, as last seen by a snapshot.
CREATE TABLE certificate_secures (
    certificate_uid TEXT NOT NULL REFERENCES certificates (uid),
    service_uid     TEXT NOT NULL,
    via             TEXT NOT NULL,
    snapshot_uid    TEXT NOT NULL,
    seen_at_us      INTEGER NOT NULL,
    PRIMARY KEY (certificate_uid, service_uid, via)
) STRICT;
CREATE INDEX certificate_secures_service ON certificate_secures (service_uid, seen_at_us DESC);
