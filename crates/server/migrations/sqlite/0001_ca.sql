-- The CA database: every certificate the CA issued, revocations, RA officers, enrollment
-- codes (hashes only), requests with their history, counters and the current CRLs.
-- Times are Unix seconds (UTC). Serials are lower-case hex, as `openssl x509 -serial` prints
-- them (lower-cased). Key identifiers are the lower-case hex SHA-1 of the issuer's key.

CREATE TABLE ca_counters (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
INSERT INTO ca_counters (name, value) VALUES ('request', 0);

CREATE TABLE ra_officers (
    name              TEXT PRIMARY KEY NOT NULL,
    credential_serial TEXT NOT NULL UNIQUE,
    kinds             TEXT NOT NULL,  -- comma-separated certificate kind names
    domains           TEXT NOT NULL,  -- comma-separated domains, empty = any
    created_at        INTEGER NOT NULL,
    disabled_at       INTEGER
);

CREATE TABLE ca_requests (
    id         INTEGER PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'issued')),
    created_at INTEGER NOT NULL
);

CREATE TABLE ca_request_events (
    request_id INTEGER NOT NULL REFERENCES ca_requests (id),
    seq        INTEGER NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    at         INTEGER NOT NULL,
    comment    TEXT,
    PRIMARY KEY (request_id, seq)
);

CREATE TABLE certificates (
    serial          TEXT PRIMARY KEY NOT NULL,
    issuer_key_id   TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    sans            TEXT NOT NULL,  -- comma-separated subjectAltName values
    key_sha256      TEXT NOT NULL,  -- SHA-256 of the SubjectPublicKeyInfo DER
    not_before      INTEGER NOT NULL,
    not_after       INTEGER NOT NULL,
    approved_by     TEXT NOT NULL,
    approved_at     INTEGER NOT NULL,
    previous_serial TEXT REFERENCES certificates (serial),
    request_id      INTEGER REFERENCES ca_requests (id),
    revoked_at      INTEGER,
    revocation_reason INTEGER,
    revoked_by      TEXT,
    der             BLOB NOT NULL
);
CREATE INDEX certificates_subject ON certificates (subject);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked ON certificates (issuer_key_id, revoked_at);
CREATE INDEX certificates_previous ON certificates (previous_serial);

CREATE TABLE enrollment_codes (
    hash       BLOB PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_by TEXT NOT NULL,  -- RA officer name
    created_by_serial TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX enrollment_codes_address ON enrollment_codes (address);

CREATE TABLE crls (
    issuer_key_id TEXT NOT NULL,
    number        INTEGER NOT NULL,
    this_update   INTEGER NOT NULL,
    next_update   INTEGER NOT NULL,
    der           BLOB NOT NULL,
    PRIMARY KEY (issuer_key_id, number)
);
CREATE TABLE crl_numbers (
    issuer_key_id TEXT PRIMARY KEY NOT NULL,
    last_number   INTEGER NOT NULL
);
