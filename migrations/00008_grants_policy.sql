-- The least-privilege policy, as data beside the migrations that grant it,
-- and views comparing it with what the catalogs say, so a DBA can ask
-- "who can touch what?" and "what drifted?" from psql:
--
--   SELECT * FROM fieldseal.grants_drift;     -- empty when all is as designed
--   SELECT * FROM fieldseal.privileges;       -- every privilege on fieldseal's objects
--   SELECT * FROM fieldseal.bypassers;        -- roles that step around it all
--
-- A migration that grants something adds the matching policy rows; the
-- test suite fails on a fresh install with any drift, so they cannot
-- diverge unnoticed.

-- +goose Up
SET LOCAL ROLE fieldseal_owner;

CREATE TABLE fieldseal.grants_policy (
    grantee     text NOT NULL,
    object_type text NOT NULL CHECK (object_type IN ('schema', 'table', 'view', 'sequence', 'column', 'function', 'parameter')),
    object_name text NOT NULL,
    column_name text NOT NULL DEFAULT '',
    privilege   text NOT NULL,
    PRIMARY KEY (grantee, object_type, object_name, column_name, privilege)
);
CREATE TABLE fieldseal.rls_policy (
    table_name text PRIMARY KEY,
    rls        boolean NOT NULL -- true: row-level security enabled and forced
);

INSERT INTO fieldseal.rls_policy VALUES
    ('fieldseal.subjects', true), ('fieldseal.records', true), ('fieldseal.key_failures', true),
    ('fieldseal.audit_events', true), ('fieldseal.revocations', false),
    ('fieldseal.grants_policy', false), ('fieldseal.rls_policy', false);

INSERT INTO fieldseal.grants_policy (grantee, object_type, object_name, column_name, privilege) VALUES
    ('fieldseal_app', 'schema', 'fieldseal', '', 'USAGE'),
    ('fieldseal_auditor', 'schema', 'fieldseal', '', 'USAGE'),
    ('fieldseal_app', 'schema', 'fieldseal_migrations', '', 'USAGE'),
    ('fieldseal_auditor', 'schema', 'fieldseal_migrations', '', 'USAGE'),
    ('fieldseal_app', 'table', 'fieldseal_migrations.goose_db_version', '', 'SELECT'),
    ('fieldseal_auditor', 'table', 'fieldseal_migrations.goose_db_version', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.subjects', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.subjects', '', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.subjects', 'key_verifier', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.subjects', 'updated_at', 'UPDATE'),
    ('fieldseal_app', 'table', 'fieldseal.records', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.records', '', 'INSERT'),
    ('fieldseal_app', 'table', 'fieldseal.records', '', 'DELETE'),
    ('fieldseal_app', 'column', 'fieldseal.records', 'collection', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.records', 'public', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.records', 'secret', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.records', 'version', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.records', 'updated_at', 'UPDATE'),
    ('fieldseal_auditor', 'column', 'fieldseal.records', 'subject', 'SELECT'),
    ('fieldseal_auditor', 'column', 'fieldseal.records', 'id', 'SELECT'),
    ('fieldseal_auditor', 'column', 'fieldseal.records', 'collection', 'SELECT'),
    ('fieldseal_auditor', 'column', 'fieldseal.records', 'version', 'SELECT'),
    ('fieldseal_auditor', 'column', 'fieldseal.records', 'created_at', 'SELECT'),
    ('fieldseal_auditor', 'column', 'fieldseal.records', 'updated_at', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.key_failures', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.key_failures', '', 'INSERT'),
    ('fieldseal_app', 'table', 'fieldseal.key_failures', '', 'DELETE'),
    ('fieldseal_app', 'column', 'fieldseal.key_failures', 'window_start', 'UPDATE'),
    ('fieldseal_app', 'column', 'fieldseal.key_failures', 'failures', 'UPDATE'),
    ('fieldseal_app', 'table', 'fieldseal.revocations', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.revocations', '', 'DELETE'),
    ('fieldseal_app', 'table', 'fieldseal.audit_events', '', 'SELECT'),
    ('fieldseal_auditor', 'table', 'fieldseal.audit_events', '', 'SELECT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'action', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'outcome', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'record_id', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'record_count', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'token_id', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'client_id', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'request_id', 'INSERT'),
    ('fieldseal_app', 'column', 'fieldseal.audit_events', 'client_addr', 'INSERT'),
    ('fieldseal_app', 'function', 'fieldseal.pgp_sym_encrypt(text, text, text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.pgp_sym_decrypt(bytea, text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.armor(bytea)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.new_key_verifier(key text)', '', 'EXECUTE'),
    ('fieldseal_app', 'function', 'fieldseal.key_matches(verifier bytea, key text)', '', 'EXECUTE'),
    ('fieldseal_app', 'parameter', 'log_parameter_max_length', '', 'SET'),
    ('fieldseal_app', 'parameter', 'log_parameter_max_length_on_error', '', 'SET'),
    ('fieldseal_app', 'table', 'fieldseal.grants_policy', '', 'SELECT'),
    ('fieldseal_auditor', 'table', 'fieldseal.grants_policy', '', 'SELECT'),
    ('fieldseal_app', 'table', 'fieldseal.rls_policy', '', 'SELECT'),
    ('fieldseal_auditor', 'table', 'fieldseal.rls_policy', '', 'SELECT'),
    ('fieldseal_app', 'view', 'fieldseal.privileges', '', 'SELECT'),
    ('fieldseal_auditor', 'view', 'fieldseal.privileges', '', 'SELECT'),
    ('fieldseal_app', 'view', 'fieldseal.bypassers', '', 'SELECT'),
    ('fieldseal_auditor', 'view', 'fieldseal.bypassers', '', 'SELECT'),
    ('fieldseal_app', 'view', 'fieldseal.role_members', '', 'SELECT'),
    ('fieldseal_auditor', 'view', 'fieldseal.role_members', '', 'SELECT'),
    ('fieldseal_app', 'view', 'fieldseal.tables', '', 'SELECT'),
    ('fieldseal_auditor', 'view', 'fieldseal.tables', '', 'SELECT'),
    ('fieldseal_app', 'view', 'fieldseal.grants_drift', '', 'SELECT'),
    ('fieldseal_auditor', 'view', 'fieldseal.grants_drift', '', 'SELECT');

-- Every privilege granted on fieldseal's objects, to anyone but the
-- object's owner; a NULL ACL is read as PostgreSQL's default (functions:
-- EXECUTE to PUBLIC), so nothing granted implicitly is missed.
CREATE VIEW fieldseal.privileges AS
WITH acl AS (
    SELECT 'schema'::text AS object_type, n.nspname::text AS object_name, ''::text AS column_name,
           n.nspowner AS owner, coalesce(n.nspacl, acldefault('n'::"char", n.nspowner)) AS acl
      FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('fieldseal', 'fieldseal_migrations')
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'table' END,
           n.nspname || '.' || c.relname, '', c.relowner,
           coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('fieldseal', 'fieldseal_migrations') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT 'column', n.nspname || '.' || c.relname, a.attname::text, c.relowner, a.attacl
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('fieldseal', 'fieldseal_migrations') AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
    UNION ALL
    SELECT 'function', n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', '',
           p.proowner, coalesce(p.proacl, acldefault('f'::"char", p.proowner))
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'fieldseal'
    UNION ALL
    SELECT 'parameter', pa.parname::text, '', 10::oid, pa.paracl
      FROM pg_catalog.pg_parameter_acl pa
)
SELECT CASE e.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(e.grantee)::text END AS grantee,
       acl.object_type, acl.object_name, acl.column_name, e.privilege_type::text AS privilege,
       pg_catalog.pg_get_userbyid(e.grantor)::text AS grantor
  FROM acl, LATERAL aclexplode(acl.acl) e
 WHERE e.grantee <> acl.owner
   AND (acl.object_type <> 'parameter' OR e.grantee IN (SELECT oid FROM pg_catalog.pg_roles WHERE rolname LIKE 'fieldseal\_%'));

-- Roles that step around the design: superusers and BYPASSRLS roles ignore
-- row-level security; owners (members of fieldseal_owner) can disable it.
CREATE VIEW fieldseal.bypassers AS
SELECT r.rolname::text AS role,
       concat_ws(', ',
           CASE WHEN r.rolsuper THEN 'superuser' END,
           CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END,
           CASE WHEN o.oid IS NOT NULL AND pg_catalog.pg_has_role(r.oid, o.oid, 'MEMBER') AND r.rolname <> 'fieldseal_owner' THEN 'member of fieldseal_owner' END,
           CASE WHEN r.rolname = 'fieldseal_owner' THEN 'owns the schema' END) AS how,
       r.rolcanlogin AS can_login
  FROM pg_catalog.pg_roles r
  LEFT JOIN pg_catalog.pg_roles o ON o.rolname = 'fieldseal_owner'
 WHERE r.rolsuper OR r.rolbypassrls OR (o.oid IS NOT NULL AND pg_catalog.pg_has_role(r.oid, o.oid, 'MEMBER'));

-- Who holds the group roles' privileges through membership, directly or
-- through other roles.
CREATE VIEW fieldseal.role_members AS
WITH RECURSIVE members(group_name, member, via) AS (
    SELECT g.rolname::text COLLATE "default", m.member, ''::text COLLATE "default"
      FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
     WHERE g.rolname IN ('fieldseal_owner', 'fieldseal_app', 'fieldseal_auditor')
    UNION
    SELECT members.group_name, m.member, pg_catalog.pg_get_userbyid(members.member)::text COLLATE "default"
      FROM pg_catalog.pg_auth_members m JOIN members ON m.roleid = members.member
)
SELECT m.group_name, r.rolname::text AS member, m.via, r.rolcanlogin AS can_login,
       r.rolsuper AS superuser, r.rolbypassrls AS bypassrls
  FROM members m JOIN pg_catalog.pg_roles r ON r.oid = m.member;

-- Row-level security and ownership of each table.
CREATE VIEW fieldseal.tables AS
SELECT n.nspname || '.' || c.relname AS table_name, pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
       c.relrowsecurity AS rls_enabled, c.relforcerowsecurity AS rls_forced
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'fieldseal' AND c.relkind IN ('r', 'p');

-- Everything that differs from the design. Empty means: as designed.
CREATE VIEW fieldseal.grants_drift AS
SELECT 'unexpected privilege' AS problem, p.grantee AS role, p.object_type, p.object_name, p.column_name, p.privilege
  FROM fieldseal.privileges p
 WHERE NOT EXISTS (SELECT 1 FROM fieldseal.grants_policy g WHERE g.grantee = p.grantee AND g.object_type = p.object_type
                     AND g.object_name = p.object_name AND g.column_name = p.column_name AND g.privilege = p.privilege)
UNION ALL
SELECT 'missing privilege', g.grantee, g.object_type, g.object_name, g.column_name, g.privilege
  FROM fieldseal.grants_policy g
 WHERE NOT EXISTS (SELECT 1 FROM fieldseal.privileges p WHERE g.grantee = p.grantee AND g.object_type = p.object_type
                     AND g.object_name = p.object_name AND g.column_name = p.column_name AND g.privilege = p.privilege)
UNION ALL
SELECT CASE WHEN NOT t.rls_enabled THEN 'row-level security disabled' ELSE 'row-level security not forced' END,
       t.owner, 'table', t.table_name, '', ''
  FROM fieldseal.tables t JOIN fieldseal.rls_policy r ON r.table_name = t.table_name
 WHERE r.rls AND NOT (t.rls_enabled AND t.rls_forced)
UNION ALL
SELECT 'table not in the policy', t.owner, 'table', t.table_name, '', ''
  FROM fieldseal.tables t WHERE NOT EXISTS (SELECT 1 FROM fieldseal.rls_policy r WHERE r.table_name = t.table_name)
UNION ALL
SELECT 'owned by another role', t.owner, 'table', t.table_name, '', 'OWNER'
  FROM fieldseal.tables t WHERE t.owner <> 'fieldseal_owner'
UNION ALL
SELECT 'default privileges', pg_catalog.pg_get_userbyid(d.defaclrole)::text, 'default', coalesce(n.nspname, '(all schemas)'), '',
       d.defaclobjtype::text
  FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
 WHERE n.nspname = 'fieldseal' OR pg_catalog.pg_get_userbyid(d.defaclrole) LIKE 'fieldseal\_%'
UNION ALL
SELECT 'bypasses row-level security but is a member of ' || m.group_name, r.rolname::text, 'role', m.group_name, '',
       CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'BYPASSRLS' END
  FROM (
      -- every direct or indirect member of the app and auditor roles
      WITH RECURSIVE members(group_name, member) AS (
          SELECT g.rolname::text, m.member FROM pg_catalog.pg_auth_members m
            JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
           WHERE g.rolname IN ('fieldseal_app', 'fieldseal_auditor')
          UNION
          SELECT members.group_name, m.member FROM pg_catalog.pg_auth_members m
            JOIN members ON m.roleid = members.member
      )
      SELECT group_name, member FROM members
  ) m JOIN pg_catalog.pg_roles r ON r.oid = m.member
 WHERE r.rolsuper OR r.rolbypassrls;

GRANT SELECT ON fieldseal.grants_policy, fieldseal.rls_policy, fieldseal.privileges, fieldseal.bypassers,
    fieldseal.role_members, fieldseal.tables, fieldseal.grants_drift TO fieldseal_app, fieldseal_auditor;
RESET ROLE;

-- +goose Down
SET LOCAL ROLE fieldseal_owner;
DROP VIEW fieldseal.grants_drift;
DROP VIEW fieldseal.tables;
DROP VIEW fieldseal.role_members;
DROP VIEW fieldseal.bypassers;
DROP VIEW fieldseal.privileges;
DROP TABLE fieldseal.rls_policy;
DROP TABLE fieldseal.grants_policy;
RESET ROLE;
