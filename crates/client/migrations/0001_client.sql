-- A Confianza client profile. Secret columns (`sealed`) hold AES-256-GCM rows under the store
-- key (see src/sealing.rs); everything else is public or local metadata.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- The enrolled account: one row.
CREATE TABLE account (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    address         TEXT    NOT NULL,
    device_id       INTEGER NOT NULL,
    registration_id INTEGER NOT NULL,
    server          TEXT    NOT NULL,
    server_name     TEXT    NOT NULL,
    -- The server's Noise static key, cached after the first contact for IK.
    server_key      BLOB,
    certificate     BLOB    NOT NULL,
    enrolled_at_ms  INTEGER NOT NULL
);

-- The pinned CA: position 0 is the root, then the chain from the issuing CA up.
CREATE TABLE ca_certificates (
    position INTEGER PRIMARY KEY,
    der      BLOB NOT NULL
);

-- Identity key pair, Noise device key: sealed snapshots by name.
CREATE TABLE secrets (
    name   TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE signed_pre_keys (
    id     INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE one_time_pre_keys (
    id     INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL
);

CREATE TABLE kyber_pre_keys (
    id          INTEGER PRIMARY KEY,
    last_resort INTEGER NOT NULL,
    sealed      BLOB    NOT NULL
);

-- Next ids for prekeys (monotonic, never reused).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE sessions (
    address   TEXT    NOT NULL,
    device_id INTEGER NOT NULL,
    sealed    BLOB    NOT NULL,
    PRIMARY KEY (address, device_id)
);

CREATE TABLE sender_keys (
    sender    TEXT    NOT NULL,
    device_id INTEGER NOT NULL,
    group_id  BLOB    NOT NULL,
    sealed    BLOB    NOT NULL,
    PRIMARY KEY (sender, device_id, group_id)
);

-- What the user knows of each contact's identity.
CREATE TABLE contacts (
    address              TEXT PRIMARY KEY,
    identity_key         BLOB    NOT NULL,
    -- 1 when the identity key came with a certificate valid to the pinned root.
    certified            INTEGER NOT NULL DEFAULT 0,
    -- 1 when the user compared safety numbers.
    verified             INTEGER NOT NULL DEFAULT 0,
    -- A different identity key seen for this address, refused until the user accepts it.
    pending_identity_key BLOB,
    updated_at_ms        INTEGER NOT NULL
);

-- Envelopes held back because their sender's identity key changed; replayed on acceptance.
CREATE TABLE held_envelopes (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    sender            TEXT    NOT NULL,
    sender_device_id  INTEGER NOT NULL,
    ciphertext_type   INTEGER NOT NULL,
    body              BLOB    NOT NULL,
    client_message_id BLOB    NOT NULL,
    server_at_ms      INTEGER NOT NULL,
    UNIQUE (sender, client_message_id)
);

-- Conversation history.
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The peer's address for 1:1, 'group:' || hex(group id) for groups.
    conversation      TEXT    NOT NULL,
    outgoing          INTEGER NOT NULL,
    peer              TEXT    NOT NULL,
    peer_device_id    INTEGER NOT NULL,
    client_message_id BLOB    NOT NULL,
    kind              TEXT    NOT NULL,
    body              TEXT    NOT NULL,
    sent_at_ms        INTEGER NOT NULL,
    server_at_ms      INTEGER,
    stored_at_ms      INTEGER NOT NULL,
    -- 'verified', 'certified' or 'unverified': what the client knew of the sender's key.
    verification      TEXT    NOT NULL,
    delivered         INTEGER NOT NULL DEFAULT 0,
    -- One incoming message per (sender, client message id): redeliveries are dropped.
    UNIQUE (outgoing, peer, client_message_id)
);

CREATE INDEX messages_by_conversation ON messages (conversation, id);
