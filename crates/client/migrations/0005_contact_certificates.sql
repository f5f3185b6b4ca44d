-- Each contact's identity certificate (DER) as it was verified to the pinned root, for the
-- identity key the row holds (`confianza cert show ADDRESS` prints it). NULL while the key is
-- known without a certificate: an uncertified sender, or an accepted change not yet seen in a
-- bundle. A different key clears it.
ALTER TABLE contacts ADD COLUMN certificate BLOB;
