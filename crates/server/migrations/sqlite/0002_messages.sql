-- The messaging tables: devices, the prekey directory, mailboxes (bodies stored once, one entry
-- per recipient device), delivery receipts, groups and blob metadata.
--
-- Integers are INTEGER (64-bit); the store converts to the API's unsigned types and reports a
-- row that does not fit as corrupt. Every index below serves a query of store/sqlite.rs.

CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    registration_id INTEGER NOT NULL,
    noise_key BLOB NOT NULL UNIQUE,
    identity_key BLOB NOT NULL,
    certificate BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    -- The last delivery id given to an entry of this device's mailbox (messages and receipts
    -- share the sequence). Never reused, so an acknowledgement cannot hit a later entry.
    last_delivery_id INTEGER NOT NULL DEFAULT 0,
    UNIQUE (address, device_id)
);

CREATE TABLE signed_pre_keys (
    device INTEGER PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL
);

-- Claimed lowest key id first: the (device, key_id) index serves the claim and the count.
CREATE TABLE one_time_pre_keys (
    id INTEGER PRIMARY KEY,
    device INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    UNIQUE (device, key_id)
);

CREATE TABLE kyber_pre_keys (
    id INTEGER PRIMARY KEY,
    device INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL,
    UNIQUE (device, key_id)
);

CREATE TABLE kyber_last_resort_keys (
    device INTEGER PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL,
    -- Served since it was uploaded: the device should replace it.
    last_resort_used INTEGER NOT NULL DEFAULT 0
);

-- A ciphertext, stored once however many devices it is queued for (group fan-out).
CREATE TABLE message_bodies (
    id INTEGER PRIMARY KEY,
    ciphertext_type INTEGER NOT NULL,
    body BLOB NOT NULL,
    server_timestamp_ms INTEGER NOT NULL,
    group_id BLOB
);

CREATE TABLE mailbox_entries (
    device INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    delivery_id INTEGER NOT NULL,
    body INTEGER NOT NULL REFERENCES message_bodies (id),
    sender_address TEXT NOT NULL,
    sender_device_id INTEGER NOT NULL,
    client_message_id BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, delivery_id)
) WITHOUT ROWID;
-- One queued copy per (recipient device, sender device, client message id).
CREATE UNIQUE INDEX mailbox_entries_dedupe
    ON mailbox_entries (device, sender_address, sender_device_id, client_message_id);
-- Finding the bodies nobody references any more.
CREATE INDEX mailbox_entries_body ON mailbox_entries (body);
CREATE INDEX mailbox_entries_expiry ON mailbox_entries (expires_at_ms);

CREATE TABLE receipts (
    device INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    delivery_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    recipient_device_id INTEGER NOT NULL,
    -- The 16-byte client message ids, concatenated.
    client_message_ids BLOB NOT NULL,
    server_timestamp_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, delivery_id)
) WITHOUT ROWID;
CREATE INDEX receipts_expiry ON receipts (expires_at_ms);

CREATE TABLE chat_groups (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    revision INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id BLOB NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    admin INTEGER NOT NULL,
    -- Members are listed in joining order; the earliest member becomes admin when the last
    -- admin goes.
    joined_revision INTEGER NOT NULL,
    PRIMARY KEY (group_id, address)
);
CREATE INDEX group_members_address ON group_members (address);

CREATE TABLE blobs (
    id BLOB PRIMARY KEY,
    owner TEXT NOT NULL,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX blobs_expiry ON blobs (expires_at_ms);
