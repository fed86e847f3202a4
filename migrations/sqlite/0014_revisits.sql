-- Revisits: a new alert asks for the re-attribution of the alerts of its storm attributed
-- before it was recorded (follow-up kind 'revisit'). SQLite cannot change a CHECK constraint in
-- place: the table is rebuilt with its rows.
CREATE TABLE follow_ups_new (
    kind            TEXT NOT NULL CHECK (kind IN ('alert', 'deployment', 'change', 'revisit')),
    subject         TEXT NOT NULL,
    enqueued_at_us  INTEGER NOT NULL,
    claimable_at_us INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
) STRICT;
INSERT INTO follow_ups_new (kind, subject, enqueued_at_us, claimable_at_us, attempts)
    SELECT kind, subject, enqueued_at_us, claimable_at_us, attempts FROM follow_ups;
DROP TABLE follow_ups;
ALTER TABLE follow_ups_new RENAME TO follow_ups;
CREATE INDEX follow_ups_claimable ON follow_ups (claimable_at_us, enqueued_at_us);
CREATE INDEX follow_ups_subject ON follow_ups (subject);
