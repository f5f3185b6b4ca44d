-- Delivery state of an outgoing group message, per member: when the server's first delivery
-- receipt from one of the member's devices arrived (it fans the one ciphertext out to every
-- member device and sends a receipt per device). NULL: not delivered to any of its devices yet.
-- A receipt from anyone else (this account's own other devices included) changes nothing.
-- Group messages sent before 0006 have no member rows and stay as they were: their receipts
-- cannot be told apart from those of this account's other devices.
ALTER TABLE message_recipients ADD COLUMN delivered_at_ms INTEGER;
