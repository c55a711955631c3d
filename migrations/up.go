package migrations

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Up connects to adminURL, applies every pending migration and closes the
// connection: what `fieldseal dev`, the tests and the bench need.
func Up(ctx context.Context, adminURL string) error {
	m, err := Open(ctx, adminURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// EnsureAppLogin makes user a login role that is a member of fieldseal_app,
// over adminURL: created with password if it does not exist (password
// then required), else granted fieldseal_app. The statement is quoted by
// PostgreSQL's format(), so no password is spliced into SQL here.
func EnsureAppLogin(ctx context.Context, adminURL, user, password string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to the admin database: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, user).Scan(&exists); err != nil {
		return err
	}
	stmt := fmt.Sprintf("GRANT fieldseal_app TO %s", pgx.Identifier{user}.Sanitize())
	if !exists {
		if password == "" {
			return fmt.Errorf("role %q does not exist and there is no password to create it with", user)
		}
		if err := conn.QueryRow(ctx, `SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE fieldseal_app', $1::text, $2::text)`, user, password).Scan(&stmt); err != nil {
			return err
		}
	}
	_, err = conn.Exec(ctx, stmt)
	return err
}
