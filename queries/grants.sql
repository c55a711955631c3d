-- The grants report (migration 00008's views). Run by the app for
-- GET /v1/audit/grants and by `fieldseal audit grants` over the admin URL.

-- name: ListGrantsDrift :many
SELECT problem::text AS problem, role::text AS role, object_type::text AS object_type,
       object_name::text AS object_name, column_name::text AS column_name, privilege::text AS privilege
FROM fieldseal.grants_drift
ORDER BY 1, 4, 5, 2, 6;

-- name: ListPrivileges :many
SELECT grantee::text AS grantee, object_type::text AS object_type, object_name::text AS object_name,
       column_name::text AS column_name, privilege::text AS privilege
FROM fieldseal.privileges
ORDER BY 3, 4, 1, 5;

-- name: ListBypassers :many
SELECT role::text AS role, how::text AS how, can_login::boolean AS can_login
FROM fieldseal.bypassers
ORDER BY 1;

-- name: ListTableSecurity :many
SELECT table_name::text AS table_name, owner::text AS owner, rls_enabled::boolean AS rls_enabled, rls_forced::boolean AS rls_forced
FROM fieldseal.tables
ORDER BY 1;

-- name: ListRoleMembers :many
SELECT group_name::text AS group_name, member::text AS member, via::text AS via,
       can_login::boolean AS can_login, superuser::boolean AS superuser, bypassrls::boolean AS bypassrls
FROM fieldseal.role_members
ORDER BY 1, 2;

-- name: ListLoggingRisks :many
-- Settings that would put bind values (keys, plaintext) into PostgreSQL's
-- log for fieldseal's sessions: auto_explain's verbose plans with a
-- non-negative log_min_duration (custom plans fold values in; fieldseal
-- plans key-bearing statements generically, but the setting is a trap for
-- any other session), pgaudit's log_parameter, Citus's
-- log_remote_commands and log_local_commands (the statements Citus runs
-- on shards, with an UPDATE's or INSERT's values written in: docs/scale.md),
-- and a log_parameter_max_length other than 0 set for the app's roles. Read from
-- the server's own settings and from ALTER DATABASE / ALTER ROLE settings
-- of this database and of members of fieldseal_app.
WITH s AS (
    SELECT coalesce(r.rolname::text, '') AS role, coalesce(d.datname::text, '') AS database,
           split_part(c, '=', 1) AS name, substr(c, strpos(c, '=') + 1) AS value
    FROM pg_catalog.pg_db_role_setting x
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = x.setrole
    LEFT JOIN pg_catalog.pg_database d ON d.oid = x.setdatabase
    CROSS JOIN LATERAL unnest(x.setconfig) c
    WHERE (x.setdatabase = 0 OR d.datname = current_database())
      AND (x.setrole = 0 OR pg_catalog.pg_has_role(x.setrole, 'fieldseal_app', 'MEMBER'))
    UNION ALL
    SELECT '', '', name::text, setting::text FROM pg_catalog.pg_settings
    WHERE name IN ('auto_explain.log_verbose', 'auto_explain.log_min_duration', 'pgaudit.log_parameter',
                   'citus.log_remote_commands', 'citus.log_local_commands') AND source <> 'default'
)
SELECT s.role::text AS role, s.database::text AS database, s.name::text AS name, s.value::text AS value FROM s
WHERE (s.name = 'auto_explain.log_verbose' AND lower(s.value) IN ('on', 'true', 'yes', '1')
       AND EXISTS (SELECT FROM s m WHERE m.name = 'auto_explain.log_min_duration' AND m.value !~ '^-'))
   OR (s.name IN ('pgaudit.log_parameter', 'citus.log_remote_commands', 'citus.log_local_commands')
       AND lower(s.value) IN ('on', 'true', 'yes', '1'))
   OR (s.name = 'log_parameter_max_length' AND s.value <> '0' AND s.role <> '')
ORDER BY 3, 1, 2;
