-- The mailbox rebuilt for a cheap hot path (issue 3): a relayed message used to cost about
-- fifteen B-tree operations on the store's one thread. Now:
--
-- * Messages and delivery receipts share one table (`kind`), so an acknowledgement is one
--   DELETE whatever the entry is, and `pending` reads one table.
-- * A one-to-one message keeps its ciphertext in its entry row; only a body queued for several
--   devices at once (group fan-out, a sender's other devices) is stored once in
--   `shared_bodies`, with a reference count instead of an index to find orphans.
-- * The queue depth is a counter on the device (`queued`) kept in the transactions that add and
--   delete entries, instead of two COUNT(*) over the mailbox per recipient per send.
--
-- Queued messages and receipts are carried over; bodies nobody references are dropped.

ALTER TABLE devices ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;

-- No foreign key from `mailbox.shared_body` to here: SQLite would scan the whole mailbox for
-- references on every delete of a body (nothing indexes the column); `refs` says it instead.
CREATE TABLE shared_bodies (
    id INTEGER PRIMARY KEY,
    -- How many mailbox entries point here; the body goes with the last one.
    refs INTEGER NOT NULL,
    body BLOB NOT NULL
);

CREATE TABLE mailbox (
    device INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- Messages and receipts share the device's sequence (devices.last_delivery_id).
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
    group_id BLOB,
    PRIMARY KEY (device, delivery_id)
) WITHOUT ROWID;
-- One queued copy per (recipient device, sender device, client message id); receipts are not
-- deduplicated and stay out of the index.
CREATE UNIQUE INDEX mailbox_dedupe
    ON mailbox (device, peer_address, peer_device_id, client_message_ids) WHERE kind = 0;
-- Hourly expiry. New entries land at its right end (expiry grows with time), so keeping it up
-- costs little.
CREATE INDEX mailbox_expiry ON mailbox (expires_at_ms);

INSERT INTO shared_bodies (id, refs, body)
SELECT b.id, COUNT(*), b.body
FROM message_bodies b JOIN mailbox_entries e ON e.body = b.id
GROUP BY b.id
HAVING COUNT(*) > 1;

INSERT INTO mailbox (device, delivery_id, kind, peer_address, peer_device_id, client_message_ids,
                     server_timestamp_ms, expires_at_ms, ciphertext_type, body, shared_body,
                     group_id)
SELECT e.device, e.delivery_id, 0, e.sender_address, e.sender_device_id, e.client_message_id,
       b.server_timestamp_ms, e.expires_at_ms, b.ciphertext_type,
       CASE WHEN s.id IS NULL THEN b.body END, s.id, b.group_id
FROM mailbox_entries e
JOIN message_bodies b ON b.id = e.body
LEFT JOIN shared_bodies s ON s.id = e.body;

INSERT INTO mailbox (device, delivery_id, kind, peer_address, peer_device_id, client_message_ids,
                     server_timestamp_ms, expires_at_ms)
SELECT device, delivery_id, 1, recipient, recipient_device_id, client_message_ids,
       server_timestamp_ms, expires_at_ms
FROM receipts;

UPDATE devices SET queued = (SELECT COUNT(*) FROM mailbox m WHERE m.device = devices.id);

DROP TABLE mailbox_entries;
DROP TABLE receipts;
DROP TABLE message_bodies;
