package db

import "github.com/fieldseal/fieldseal/db/sqlc"

// Queries is sqlc's generated queries (package db/sqlc) on a
// transaction's connection, with that connection for the few statements
// sqlc cannot shape: an export streamed row by row, Citus's SET LOCAL.
type Queries struct {
	*sqlc.Queries
	db sqlc.DBTX
}

func newQueries(db sqlc.DBTX) *Queries { return &Queries{sqlc.New(db), db} }
