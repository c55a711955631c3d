package db

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// SchemaVersion returns the migration version applied to the database, read
// from goose's version table (outside sqlc's view: it is goose's table, not
// part of the migrations; the app role may only read it). Like Ping, it
// runs on a connection of its own, never waiting for the request pool.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.health.QueryRow(ctx,
		`SELECT coalesce(max(version_id), 0) FROM fieldseal_migrations.goose_db_version WHERE is_applied`).Scan(&v)
	return v, mapError(err)
}

// checkSessionRole refuses a connection role that could step around
// fieldseal's protections: a superuser, a BYPASSRLS role (or one that can
// become either), an owner of fieldseal's objects, or a role without the
// privileges of fieldseal_app. Open asks, on its first connection.
func (s *Store) checkSessionRole(ctx context.Context) error {
	r, err := newQueries(s.pool).GetSessionRole(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" && strings.Contains(pgErr.Message, "log_parameter_max_length") {
		// Only fieldseal_app may switch parameter logging off (migration 00003).
		user := s.pool.Config().ConnConfig.User
		return fmt.Errorf("role %q may not turn off parameter logging: it is not a member of fieldseal_app, or the migrations have not run (run `fieldseal migrate up`, then GRANT fieldseal_app TO %s)", user, user)
	}
	if err != nil {
		return fmt.Errorf("read the connection's role: %w", mapError(err))
	}
	switch {
	case r.IsSuperuser.Bool:
		return fmt.Errorf("role %q is a superuser: superusers bypass row-level security; connect as a login role that is a member of fieldseal_app", r.RoleName)
	case r.BypassesRls.Bool:
		return fmt.Errorf("role %q has BYPASSRLS: it would bypass row-level security; connect as a login role that is a member of fieldseal_app", r.RoleName)
	case r.CanBecomePrivileged:
		return fmt.Errorf("role %q is a member of a superuser or BYPASSRLS role and could bypass row-level security; use a role that is only a member of fieldseal_app", r.RoleName)
	case r.OwnsObjects.Bool:
		return fmt.Errorf("role %q owns fieldseal's schema or tables (it is fieldseal_owner or a member of it): owners can disable row-level security; connect as a login role that is a member of fieldseal_app only", r.RoleName)
	case !r.IsApp:
		return fmt.Errorf("role %q is not a member of fieldseal_app (run `fieldseal migrate up`, then GRANT fieldseal_app TO %s)", r.RoleName, r.RoleName)
	}
	return nil
}

// Ping reports whether the database answers, on the health connection.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.health.Ping(ctx); err != nil {
		return mapError(err)
	}
	return nil
}
