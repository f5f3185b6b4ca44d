-- The per-account blob quota sums an owner's unexpired blobs (MessageStore::blob_usage).
CREATE INDEX blobs_owner ON blobs (owner, expires_at_ms);
