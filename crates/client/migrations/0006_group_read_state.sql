-- Read state of an outgoing group message, per member: who it was sent to (the other members
-- when it was sent) and when each of them said, in an encrypted read receipt, that they saw it.
-- A receipt from anyone else changes nothing. Group messages sent before this table existed
-- have no rows and keep the one `messages.read_at_ms` ("read by at least one member");
-- `messages.read_at_ms` stays the first read of the message for every kind.
CREATE TABLE message_recipients (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient  TEXT    NOT NULL,
    read_at_ms INTEGER,
    PRIMARY KEY (message_id, recipient)
) WITHOUT ROWID;
