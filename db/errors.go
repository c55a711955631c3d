package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fieldseal/fieldseal"
)

// mapError turns driver errors into fieldseal errors, in one place:
// no rows is ENOTFOUND, pgcrypto's "Wrong key or corrupt data" is ECORRUPT
// (only the subject's row says a key is wrong),
// a lost or refused connection, a closed one, a statement or lock timeout
// and a request deadline that passed are EUNAVAILABLE; a caller that went
// away (context.Canceled) is returned as it is. Anything else is wrapped as
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
	var ce *callerError
	if errors.As(err, &ce) {
		return ce.err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fieldseal.Errorf(fieldseal.ENOTFOUND, "no such record")
	}
	if errors.Is(err, context.Canceled) {
		return err // the caller went away: not the database's fault
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
			// Every decrypt runs under a key the subject's row accepted, so a
			// message that does not open is damaged, never a wrong key.
			return fieldseal.Errorf(fieldseal.ECORRUPT, "a stored record does not open under the subject's verified key: it is damaged")
		case pgErr.Code[:2] == "08", pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03":
			return &unavailableError{err}
		case pgErr.Code == "57014", pgErr.Code == "55P03": // statement_timeout, lock_timeout
			return &unavailableError{err}
		}
		return fmt.Errorf("db: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	// A server that crashed or was killed mid-statement shows up as an
	// unexpected EOF or a closed connection, not as a PgError.
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) {
		return &unavailableError{err}
	}
	return fmt.Errorf("db: %w", err)
}

// lostConnection marks err, the error of work whose connection is closed
// afterwards, as EUNAVAILABLE: a connection that died under a statement
// (a crash, a kill, a terminated backend) means the database was lost,
// whatever text the driver gave the failure. A caller that went away
// keeps its own error.
func lostConnection(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || fieldseal.ErrorCode(err) != fieldseal.EINTERNAL {
		return err
	}
	return &unavailableError{err}
}

// unavailableError is EUNAVAILABLE to the client and keeps the cause for
// the log.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string { return "database unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error {
	return []error{errUnavailable, e.cause}
}

var errUnavailable = &fieldseal.Error{
	Code:       fieldseal.EUNAVAILABLE,
	Message:    "the database cannot be reached or did not answer in time",
	RetryAfter: time.Second,
}

// callerError is an error returned by a caller's function (an export's
// writer): the caller's to judge, never taken for the database's.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

// maxNamed is how many damaged or unreadable records a refusal names, as
// ListDamagedRecords does (LIMIT 20).
const maxNamed = 20

// appendNamed appends v to a refusal's list, up to maxNamed.
func appendNamed[T any](list []T, v T) []T {
	if len(list) < maxNamed {
		list = append(list, v)
	}
	return list
}
