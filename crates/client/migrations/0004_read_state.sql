-- Read state, per history row. For an outgoing message: when a recipient's encrypted read
-- receipt said it was seen. For an incoming one: when this user saw it (and, if read receipts
-- are on, a receipt was sent to its sender). NULL: not (yet) read.
ALTER TABLE messages ADD COLUMN read_at_ms INTEGER;
