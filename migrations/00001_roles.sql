-- Roles are cluster-wide while migrations run per database, so several
-- databases of one cluster may each run this: every step is idempotent and
-- tolerates another database creating the same role at the same moment
-- (the advisory lock goose takes is per database, not per cluster).

-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['fieldseal_owner', 'fieldseal_app', 'fieldseal_auditor'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created concurrently from another database
            END;
        END IF;
    END LOOP;
    -- A non-superuser admin (CREATEROLE) needs membership in the owner role
    -- to create objects owned by it.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_catalog.pg_has_role(current_user, 'fieldseal_owner', 'MEMBER') THEN
        EXECUTE format('GRANT fieldseal_owner TO %I', current_user);
    END IF;
END
$$;
-- +goose StatementEnd

-- readyz compares the applied version with the binary's; the app role may
-- read the version table and nothing else outside the fieldseal schema.
GRANT USAGE ON SCHEMA fieldseal_migrations TO fieldseal_app, fieldseal_auditor;
GRANT SELECT ON fieldseal_migrations.goose_db_version TO fieldseal_app, fieldseal_auditor;

-- +goose Down
REVOKE SELECT ON fieldseal_migrations.goose_db_version FROM fieldseal_app, fieldseal_auditor;
REVOKE USAGE ON SCHEMA fieldseal_migrations FROM fieldseal_app, fieldseal_auditor;
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['fieldseal_auditor', 'fieldseal_app', 'fieldseal_owner'] LOOP
        BEGIN
            IF r = 'fieldseal_app' AND EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) AND NOT EXISTS (
                SELECT FROM pg_catalog.pg_shdepend d JOIN pg_catalog.pg_roles x ON x.oid = d.refobjid
                WHERE x.rolname = r AND d.dbid <> 0
                  AND d.dbid <> (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
            ) THEN
                -- the last database: its cluster-wide parameter grant goes too
                REVOKE SET ON PARAMETER log_parameter_max_length, log_parameter_max_length_on_error FROM fieldseal_app;
            END IF;
            EXECUTE format('DROP ROLE IF EXISTS %I', r);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role % is still used by another database of this cluster; kept', r;
        END;
    END LOOP;
END
$$;
-- +goose StatementEnd
