package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db/sqlc"
)

// Admin is one connection of an admin role (a superuser or a member of
// fieldseal_owner; fieldseal_auditor for the reports), opened once by a
// DBA's command for all of its work: audit verify, checkpoint and
// archive, the grants report, revocations. It is the DBA's side of the
// database, as the Store is the app's; it does not check its role.
type Admin struct {
	conn *pgx.Conn
	db   sqlc.DBTX // conn, or the snapshot's transaction while Snapshot runs
}

// OpenAdmin connects to adminURL.
func OpenAdmin(ctx context.Context, adminURL string) (*Admin, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the admin database: %w", err)
	}
	return &Admin{conn: conn, db: conn}, nil
}

// Close closes the connection.
func (a *Admin) Close(ctx context.Context) error { return a.conn.Close(ctx) }

// Snapshot runs fn in one REPEATABLE READ, read-only transaction: every
// read fn makes through a sees the same moment of the database (audit
// verify: the trail, its heads, where archived chains start and the
// entries checkpoints name, alike).
func (a *Admin) Snapshot(ctx context.Context, fn func() error) error {
	if a.db != sqlc.DBTX(a.conn) {
		return errors.New("db: a snapshot inside a snapshot")
	}
	return pgx.BeginTxFunc(ctx, a.conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		a.db = tx
		defer func() { a.db = a.conn }()
		return fn()
	})
}

// begin starts a transaction of its own on a's connection, for work that
// writes (archive, revoke): never inside a snapshot.
func (a *Admin) begin(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if a.db != sqlc.DBTX(a.conn) {
		return nil, errors.New("db: a write inside a read-only snapshot")
	}
	return a.conn.BeginTx(ctx, opts)
}
