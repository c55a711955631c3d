package db

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldseal/fieldseal"
)

// mapError turns driver errors into fieldseal errors, in one place:
// no rows is ENOTFOUND, pgcrypto's "Wrong key or corrupt data" is EWRONGKEY,
// a lost or refused connection is EUNAVAILABLE. Anything else is wrapped as
// an internal error; its text (which never holds parameter values: pgx
// errors carry SQL text with placeholders only) goes to the log, not to
// the client.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var fe *fieldseal.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fieldseal.Errorf(fieldseal.ENOTFOUND, "no such record")
	}
	// Checked before PgError: a server's refusal to connect (shutting down,
	// too many clients, database closed) arrives as a PgError inside it.
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return &unavailableError{err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "39000": // external_routine_invocation_exception: pgcrypto
			return errWrongKey
		case pgErr.Code[:2] == "08", pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			return &unavailableError{err}
		}
		return fmt.Errorf("db: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.Timeout(err) {
		return &unavailableError{err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("db: %w", err)
}

// unavailableError is EUNAVAILABLE to the client and keeps the cause for
// the log.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string { return "database unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error {
	return []error{fieldseal.Errorf(fieldseal.EUNAVAILABLE, "the database cannot be reached"), e.cause}
}
