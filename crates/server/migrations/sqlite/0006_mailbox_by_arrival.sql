-- The mailbox clustered by arrival (issue 3). With migration 0005 a commit of the writer still
-- rewrote about a page per recipient device several times over: entries were clustered by
-- (device, delivery_id), so a batch for a hundred devices touched a hundred leaf pages, and the
-- counters lived in the device rows, which carry certificates (about four rows per page).
-- SQLite writes every page a transaction dirtied to the WAL, so the store thread spent a third
-- of its time in pwrite. Now:
--
-- * Entries are clustered by an arrival sequence (`seq`, the row id): a batch appends to the
--   right end of the table, and the acknowledgements of recent entries delete from the same
--   few pages. A narrow index (device, delivery_id) finds a device's entries.
-- * The per-device counters live in a table of their own, a few bytes per device.
-- * No dedupe index: client message ids are random, so such an index took each new entry at a
--   random page. The message store keeps it in memory (src/store/sqlite/dedupe.rs) and writes
--   a token into `mailbox_owner`, so that a second store on the same file is noticed.
--
-- Queued entries, their delivery ids and the counters are carried over.

CREATE TABLE mailbox_counters (
    device INTEGER PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    -- The last delivery id given to an entry of this device's mailbox (messages and receipts
    -- share the sequence). Never reused, so an acknowledgement cannot hit a later entry.
    last_delivery_id INTEGER NOT NULL,
    -- Entries queued now (messages and receipts), for the queue limit.
    queued INTEGER NOT NULL
);

INSERT INTO mailbox_counters (device, last_delivery_id, queued)
SELECT id, last_delivery_id, queued FROM devices
WHERE last_delivery_id <> 0 OR queued <> 0;

CREATE TABLE mailbox_by_arrival (
    -- Arrival order; the row id, so rows are stored in this order.
    seq INTEGER PRIMARY KEY,
    device INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    delivery_id INTEGER NOT NULL,
    -- 0: a message; 1: a delivery receipt.
    kind INTEGER NOT NULL,
    -- A message's sender, or the device a receipt reports the delivery to.
    peer_address TEXT NOT NULL,
    peer_device_id INTEGER NOT NULL,
    -- A message's 16-byte client message id; a receipt's ids, concatenated.
    client_message_ids BLOB NOT NULL,
    server_timestamp_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    -- Messages only (NULL for receipts); exactly one of `body` and `shared_body` is set.
    ciphertext_type INTEGER,
    body BLOB,
    shared_body INTEGER,
    group_id BLOB
);

INSERT INTO mailbox_by_arrival (device, delivery_id, kind, peer_address, peer_device_id,
                                client_message_ids, server_timestamp_ms, expires_at_ms,
                                ciphertext_type, body, shared_body, group_id)
SELECT device, delivery_id, kind, peer_address, peer_device_id, client_message_ids,
       server_timestamp_ms, expires_at_ms, ciphertext_type, body, shared_body, group_id
FROM mailbox
ORDER BY server_timestamp_ms, device, delivery_id;

DROP TABLE mailbox;
ALTER TABLE mailbox_by_arrival RENAME TO mailbox;

CREATE UNIQUE INDEX mailbox_delivery ON mailbox (device, delivery_id);
-- Hourly expiry. New entries land at its right end (expiry grows with time).
CREATE INDEX mailbox_expiry ON mailbox (expires_at_ms);

-- Written by the message store that holds the mailbox's dedupe index in memory.
CREATE TABLE mailbox_owner (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token BLOB NOT NULL
);

ALTER TABLE devices DROP COLUMN last_delivery_id;
ALTER TABLE devices DROP COLUMN queued;
