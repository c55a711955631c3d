-- Wrong-key counters are reset only by their window passing. Logged in as
-- the app role, one could delete a subject's counters or set them to 0,
-- lifting the throttle on guessing its key. Now each row keeps its own
-- window's length: a row may be deleted only once its window has passed
-- (a restrictive row-level security policy), and within its window an
-- update may only add failures (a trigger), never lower them, move the
-- window or change its length.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;
ALTER TABLE fieldseal.key_failures ADD COLUMN window_seconds integer NOT NULL DEFAULT 60 CHECK (window_seconds > 0);
CREATE POLICY delete_expired ON fieldseal.key_failures AS RESTRICTIVE FOR DELETE
    USING (window_start <= now() - make_interval(secs => window_seconds));
GRANT UPDATE (window_seconds) ON fieldseal.key_failures TO fieldseal_app;
-- +goose StatementBegin
CREATE FUNCTION fieldseal.key_failures_only_grow() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF OLD.window_start > now() - make_interval(secs => OLD.window_seconds)
       AND (NEW.failures < OLD.failures OR NEW.window_start <> OLD.window_start OR NEW.window_seconds <> OLD.window_seconds
            OR NEW.subject <> OLD.subject OR NEW.token_id <> OLD.token_id) THEN
        RAISE EXCEPTION 'wrong-key counters only grow until their window has passed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION fieldseal.key_failures_only_grow() FROM PUBLIC;
CREATE TRIGGER only_grow BEFORE UPDATE ON fieldseal.key_failures
    FOR EACH ROW EXECUTE FUNCTION fieldseal.key_failures_only_grow();
INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'column', 'fieldseal.key_failures', 'window_seconds', 'UPDATE');
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DELETE FROM fieldseal.grants_policy WHERE object_name = 'fieldseal.key_failures' AND column_name = 'window_seconds';
DROP TRIGGER only_grow ON fieldseal.key_failures;
DROP FUNCTION fieldseal.key_failures_only_grow();
DROP POLICY delete_expired ON fieldseal.key_failures;
ALTER TABLE fieldseal.key_failures DROP COLUMN window_seconds;
RESET ROLE;
