// Follow-ups (an outbox): the work an ingest leaves to do after its facts are committed.
CREATE CONSTRAINT follow_up_uid IF NOT EXISTS FOR (n:FollowUp) REQUIRE n.uid IS UNIQUE;
CREATE INDEX follow_up_claimable IF NOT EXISTS FOR (n:FollowUp) ON (n.claimable_at_us);
CREATE INDEX follow_up_subject IF NOT EXISTS FOR (n:FollowUp) ON (n.subject);
