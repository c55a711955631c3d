-- The client key's life: portable export needs pgcrypto's armor() (the
-- ASCII-armored OpenPGP message that stock gpg reads); key rotation needs
-- nothing new (UPDATE of records.secret and subjects.key_verifier is
-- already granted).

-- +goose Up
GRANT EXECUTE ON FUNCTION fieldseal.armor(bytea) TO fieldseal_app;

-- +goose Down
REVOKE EXECUTE ON FUNCTION fieldseal.armor(bytea) FROM fieldseal_app;
