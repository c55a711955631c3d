-- name: GetSessionRole :one
-- What serve checks before it accepts a request: who it is connected as,
-- and whether that role could step around row-level security.
SELECT r.rolname::text AS role_name,
       r.rolsuper AS is_superuser,
       r.rolbypassrls AS bypasses_rls,
       pg_has_role(current_user, 'fieldseal_app', 'USAGE') AS is_app,
       EXISTS (
           SELECT FROM pg_catalog.pg_roles o
           WHERE (o.rolsuper OR o.rolbypassrls) AND o.oid <> r.oid
             AND pg_has_role(current_user, o.oid, 'MEMBER')
       ) AS can_become_privileged,
       EXISTS (
           SELECT FROM pg_catalog.pg_namespace n
           WHERE n.nspname = 'fieldseal' AND pg_has_role(current_user, n.nspowner, 'MEMBER')
       ) OR EXISTS (
           SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'fieldseal' AND pg_has_role(current_user, c.relowner, 'MEMBER')
       ) AS owns_objects
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user;
