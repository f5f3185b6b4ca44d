-- Attachments. Both tables hold sealed rows (AES-256-GCM under the store key, bound to the
-- table and row key), because each carries an attachment's AES and HMAC keys.

-- An upload in progress, keyed by the source file's path: blob id, encrypted temp file,
-- keys, digest and sizes, so an interrupted upload resumes where the server says it stopped.
CREATE TABLE attachment_uploads (
    source TEXT PRIMARY KEY,
    sealed BLOB NOT NULL
);

-- The pointer (blob id, keys, digest, sizes, name, type) of an incoming attachment message.
CREATE TABLE attachment_pointers (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    sealed     BLOB NOT NULL
);
