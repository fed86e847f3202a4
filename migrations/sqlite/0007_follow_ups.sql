-- Follow-ups (an outbox): the work an ingest leaves to do after its facts are committed,
-- written in the same transaction as those facts. A worker claims one by moving
-- `claimable_at_us` to the end of its lease, and deletes it when done.
CREATE TABLE follow_ups (
    kind            TEXT NOT NULL CHECK (kind IN ('alert', 'deployment')),
    subject         TEXT NOT NULL,
    enqueued_at_us  INTEGER NOT NULL,
    claimable_at_us INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
) STRICT;
CREATE INDEX follow_ups_claimable ON follow_ups (claimable_at_us, enqueued_at_us);
CREATE INDEX follow_ups_subject ON follow_ups (subject);
