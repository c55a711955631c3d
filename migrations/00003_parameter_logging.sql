-- Keys and plaintext reach PostgreSQL as bind parameters, which PostgreSQL
-- writes to its log when a statement is logged (log_statement,
-- log_min_duration_statement) or fails (log_min_error_statement), up to
-- log_parameter_max_length[_on_error] bytes. fieldseal's sessions set both
-- to 0 at connection start; these settings are superuser-only, so the app
-- role is granted SET on exactly these two (PostgreSQL 15+).
--
-- Parameter privileges are cluster-wide, like roles: the Down step keeps
-- them while another database of the cluster still uses fieldseal's roles
-- (the roles migration revokes them when it drops the role).

-- +goose Up
-- Two databases of one cluster migrating at once both update the shared
-- catalog row of this grant ("tuple concurrently updated"): goose's
-- advisory lock is per database, so retry briefly instead.
-- +goose StatementBegin
DO $$
BEGIN
    FOR attempt IN 1..50 LOOP
        BEGIN
            GRANT SET ON PARAMETER log_parameter_max_length, log_parameter_max_length_on_error TO fieldseal_app;
            RETURN;
        EXCEPTION WHEN internal_error OR unique_violation OR serialization_failure THEN
            IF attempt = 50 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.01 + random() * 0.05);
        END;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_shdepend d JOIN pg_catalog.pg_roles r ON r.oid = d.refobjid
        WHERE r.rolname = 'fieldseal_app'
          AND d.dbid NOT IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
    ) THEN
        REVOKE SET ON PARAMETER log_parameter_max_length, log_parameter_max_length_on_error FROM fieldseal_app;
    END IF;
END
$$;
-- +goose StatementEnd
