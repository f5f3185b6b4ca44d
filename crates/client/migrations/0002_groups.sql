-- Which membership revision this device last distributed its own sender key for, per group:
-- a send to a newer revision distributes a fresh key first.
CREATE TABLE group_state (
    group_id             BLOB PRIMARY KEY,
    distributed_revision INTEGER NOT NULL
);
