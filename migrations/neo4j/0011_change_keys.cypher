// Key history of changes that are not rollouts: one ChangeKey per key a Change changed,
// `(Change)-[:HAS_KEY]->(ChangeKey {path, at_us, change_uid})`, repeating the change's `at_us`,
// so "the N most recent changes of this key" is one index range, as for ConfigChange (a Change's
// `keys` list is kept for queries, but no index reaches into a list). Backfilled here in batches.
CREATE INDEX change_key_recent IF NOT EXISTS FOR (n:ChangeKey) ON (n.path, n.at_us);
MATCH (c:Change)
WHERE c.keys IS NOT NULL AND size(c.keys) > 0 AND NOT EXISTS { MATCH (c)-[:HAS_KEY]->(:ChangeKey) }
CALL {
  WITH c
  UNWIND c.keys AS path
  MERGE (c)-[:HAS_KEY]->(:ChangeKey {path: path, at_us: c.at_us, change_uid: c.uid})
} IN TRANSACTIONS OF 1000 ROWS;
