-- Requests waiting for an RA officer (manual approval policy) keep the PKCS#10 request they
-- came with (DER) until they are approved or rejected; then it is cleared.
ALTER TABLE ca_requests ADD COLUMN csr BLOB;
CREATE INDEX ca_requests_state ON ca_requests (state, id);
