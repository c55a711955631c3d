-- What an import may bring back in (issue "What comes back in").
--
-- literal_message tells, before pgcrypto opens a message, whether it is
-- in the form fieldseal writes and holds its data uncompressed. pgcrypto
-- inflates a compressed message whole, in memory: an OpenPGP message of
-- 464 KB opened to 108 MB in 8.7 s, and a list page of such records took
-- fieldseal to 1.6 GB. fieldseal never writes a compressed message
-- (pgp_sym_encrypt's compress-algo is 0), so an import refuses one
-- without opening it; and a message whose data is a literal packet opens
-- to no more octets than it has (pgcrypto refuses a compressed packet
-- after a literal one: "only one cmpr pkt allowed").
--
-- The form (RFC 4880): a symmetric-key session key packet (tag 3, new
-- format, 12 octets: version 4, AES-256, simple salted S2K with SHA-1, no
-- encrypted session key), then a symmetrically encrypted integrity
-- protected data packet (tag 18, version 1) of at least 33 octets in its
-- first part. The key is derived as pgcrypto derives it (the salted
-- S2K's two SHA-1 contexts, the second preloaded with one zero octet),
-- and the first two cipher blocks are opened (CFB with a zero IV: P1 =
-- E(0) xor C1, P2 = E(C1) xor C2). Their octets 15-16 and 17-18 must
-- repeat (OpenPGP's quick check), and octet 19, the first packet's
-- header, must be a literal data packet (0xcb new format, 0xac-0xaf old).
-- The key stays a parameter; nothing derived from it leaves the function.
--
-- decrypt_or_null also turns text that is not valid UTF-8 (or holds a
-- NUL) into NULL: pgcrypto raised 22021 with the offending octets in its
-- message, which PostgreSQL logged and fieldseal answered with a 500.

-- +goose Up
-- pgcrypto's digest and raw encrypt, granted by their owner (the role
-- that created the extension in 00002), as 00016 granted hmac.
GRANT EXECUTE ON FUNCTION fieldseal.digest(bytea, text), fieldseal.encrypt(bytea, bytea, text) TO fieldseal_app;
SET LOCAL ROLE fieldseal_owner;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.literal_message(message bytea, key text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n int := octet_length(message);
    l int;      -- the data packet's first length octet
    o int;      -- offset (0-based) of its body
    k bytea; c1 bytea; c2 bytea; e0 bytea; e1 bytea; h int;
BEGIN
    IF n < 16 + 33 OR substr(message, 1, 6) <> '\xc30c04090102'::bytea OR get_byte(message, 14) <> 210 THEN
        RETURN false;
    END IF;
    l := get_byte(message, 15);
    IF l < 192 THEN
        o := 16;
        IF l < 33 THEN RETURN false; END IF;
    ELSIF l < 224 THEN
        o := 17;                                    -- two octets: 192 or more
    ELSIF l = 255 THEN
        o := 20;
        IF (get_byte(message, 16) | get_byte(message, 17) | get_byte(message, 18)) = 0 AND get_byte(message, 19) < 33 THEN
            RETURN false;
        END IF;
    ELSE
        o := 16;                                    -- a partial length: 2^(l & 31)
        IF l & 31 < 6 THEN RETURN false; END IF;
    END IF;
    IF n < o + 33 OR get_byte(message, o) <> 1 THEN
        RETURN false;
    END IF;
    k := substr(fieldseal.digest(substr(message, 7, 8) || convert_to(key, 'UTF8'), 'sha1')
                || fieldseal.digest('\x00'::bytea || substr(message, 7, 8) || convert_to(key, 'UTF8'), 'sha1'), 1, 32);
    c1 := substr(message, o + 2, 16);
    c2 := substr(message, o + 18, 16);
    e0 := fieldseal.encrypt('\x00000000000000000000000000000000'::bytea, k, 'aes-ecb/pad:none');
    e1 := fieldseal.encrypt(c1, k, 'aes-ecb/pad:none');
    IF (get_byte(e0, 14) # get_byte(c1, 14)) <> (get_byte(e1, 0) # get_byte(c2, 0))
       OR (get_byte(e0, 15) # get_byte(c1, 15)) <> (get_byte(e1, 1) # get_byte(c2, 1)) THEN
        RETURN false;                               -- not this key
    END IF;
    h := get_byte(e1, 2) # get_byte(c2, 2);
    RETURN h = 203 OR h & 252 = 172;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.literal_message(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fieldseal.literal_message(bytea, text) TO fieldseal_app;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.decrypt_or_null(message bytea, key text) RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN fieldseal.pgp_sym_decrypt(message, key);
EXCEPTION
    WHEN external_routine_invocation_exception THEN
        RETURN NULL; -- pgcrypto: "Wrong key or corrupt data"; the key was verified
    WHEN data_exception THEN
        RETURN NULL; -- text PostgreSQL cannot hold: invalid UTF-8, a NUL
END
$$;
-- +goose StatementEnd

INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'function', 'fieldseal.digest(bytea, text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.encrypt(bytea, bytea, text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.literal_message(message bytea, key text)', '', 'EXECUTE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy WHERE object_name IN (
    'fieldseal.digest(bytea, text)', 'fieldseal.encrypt(bytea, bytea, text)', 'fieldseal.literal_message(message bytea, key text)');
DROP FUNCTION fieldseal.literal_message(bytea, text);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION fieldseal.decrypt_or_null(message bytea, key text) RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN fieldseal.pgp_sym_decrypt(message, key);
EXCEPTION WHEN external_routine_invocation_exception THEN
    RETURN NULL; -- pgcrypto: "Wrong key or corrupt data"; the key was verified
END
$$;
-- +goose StatementEnd
RESET ROLE;
REVOKE EXECUTE ON FUNCTION fieldseal.digest(bytea, text), fieldseal.encrypt(bytea, bytea, text) FROM fieldseal_app;
