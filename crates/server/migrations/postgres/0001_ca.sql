-- The CA database: every certificate the CA issued, revocations, RA officers, enrollment
-- codes (hashes only), requests with their history, counters and the current CRLs.
-- Times are Unix seconds (UTC). Serials are lower-case hex, as `openssl x509 -serial` prints
-- them (lower-cased). Key identifiers are the lower-case hex SHA-1 of the issuer's key.

CREATE TABLE ca_counters (
    name  TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO ca_counters (name, value) VALUES ('request', 0);

CREATE TABLE ra_officers (
    name              TEXT PRIMARY KEY NOT NULL,
    credential_serial TEXT NOT NULL UNIQUE,
    kinds             TEXT NOT NULL,  -- comma-separated certificate kind names
    domains           TEXT NOT NULL,  -- comma-separated domains, empty = any
    created_at        BIGINT NOT NULL,
    disabled_at       BIGINT
);

CREATE TABLE ca_requests (
    id         BIGINT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'issued')),
    created_at BIGINT NOT NULL
);

CREATE TABLE ca_request_events (
    request_id BIGINT NOT NULL REFERENCES ca_requests (id),
    seq        BIGINT NOT NULL,
    action     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    at         BIGINT NOT NULL,
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
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    approved_by     TEXT NOT NULL,
    approved_at     BIGINT NOT NULL,
    previous_serial TEXT REFERENCES certificates (serial),
    request_id      BIGINT REFERENCES ca_requests (id),
    revoked_at      BIGINT,
    revocation_reason BIGINT,
    revoked_by      TEXT,
    der             BYTEA NOT NULL
);
CREATE INDEX certificates_subject ON certificates (subject);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked ON certificates (issuer_key_id, revoked_at);
CREATE INDEX certificates_previous ON certificates (previous_serial);

CREATE TABLE enrollment_codes (
    hash       BYTEA PRIMARY KEY NOT NULL,
    address    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_by TEXT NOT NULL,  -- RA officer name
    created_by_serial TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX enrollment_codes_address ON enrollment_codes (address);

CREATE TABLE crls (
    issuer_key_id TEXT NOT NULL,
    number        BIGINT NOT NULL,
    this_update   BIGINT NOT NULL,
    next_update   BIGINT NOT NULL,
    der           BYTEA NOT NULL,
    PRIMARY KEY (issuer_key_id, number)
);
CREATE TABLE crl_numbers (
    issuer_key_id TEXT PRIMARY KEY NOT NULL,
    last_number   BIGINT NOT NULL
);
