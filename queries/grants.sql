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
