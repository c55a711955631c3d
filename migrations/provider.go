package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also database/sql driver "pgx", for goose
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// VersionTable is goose's version table. It has a schema of its own so that
// nothing lands in public and the fieldseal schema holds only what the
// migrations create.
const VersionTable = "fieldseal_migrations.goose_db_version"

// Migrator runs the embedded migrations on one database.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
	// everywhere runs down migrations, and on Citus the upgrades of a
	// distributed schema, with DDL propagation on; provider then runs a
	// fresh install on the coordinator alone (propagation off). Without
	// Citus they are the same.
	everywhere   *goose.Provider
	localDB      *sql.DB // on Citus: provider's connections
	everywhereDB *sql.DB // on Citus: everywhere's
	// citus: a Citus coordinator (citus.go).
	citus    bool
	adminURL string
}

// Open connects to adminURL (a role that may create roles, schemas and
// extensions) and prepares the migrations. Concurrent runs against the same
// database are serialised by a PostgreSQL advisory lock held for the run.
func Open(ctx context.Context, adminURL string) (*Migrator, error) {
	db, err := sql.Open("pgx", adminURL)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to the admin database: %w", err)
	}
	citus, err := onCitus(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS fieldseal_migrations`); err != nil && !isDuplicate(err) {
		db.Close()
		return nil, fmt.Errorf("create schema fieldseal_migrations: %w", err)
	}
	m := &Migrator{db: db, citus: citus, adminURL: adminURL}
	if !citus {
		if m.provider, err = newProvider(db); err != nil {
			db.Close()
			return nil, err
		}
		m.everywhere = m.provider
		return m, nil
	}
	// Up with DDL propagation off (citus.go); down, and upgrades of a
	// distributed schema, with it on, so that what they change reaches the
	// workers. A down migration may create a trigger again, which Citus
	// takes only with unsafe triggers on, and changes DDL and functions in
	// one transaction, which needs Citus's shard commands on one
	// connection per node.
	if m.localDB, err = openWith(adminURL, map[string]string{"citus.enable_ddl_propagation": "off"}); err == nil {
		m.everywhereDB, err = openWith(adminURL, map[string]string{
			"citus.enable_unsafe_triggers": "on", "citus.multi_shard_modify_mode": "sequential",
		})
	}
	if err == nil {
		m.provider, err = newProvider(m.localDB)
	}
	if err == nil {
		m.everywhere, err = newProvider(m.everywhereDB)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// openWith is a pool of adminURL's connections with settings at start.
func openWith(adminURL string, settings map[string]string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	maps.Copy(cfg.RuntimeParams, settings)
	return stdlib.OpenDB(*cfg), nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, FS,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
}

// isDuplicate reports a concurrent creation of the same object.
func isDuplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P06" || pgErr.Code == "23505")
}

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) (res []*goose.MigrationResult, err error) {
	if !m.citus {
		return m.provider.Up(ctx)
	}
	// A fresh install is made on the coordinator alone, then distributed;
	// an upgrade of a distributed schema changes it everywhere, as the
	// owner (ownerLogin), like a down migration.
	distributed, err := isDistributed(ctx, m.db)
	if err != nil {
		return nil, err
	}
	if distributed {
		err = ownerLogin(ctx, m.adminURL, func() (err error) {
			res, err = m.everywhere.Up(ctx)
			return err
		})
	} else {
		res, err = m.provider.Up(ctx)
	}
	if err == nil {
		err = distribute(ctx, m.adminURL)
	}
	return res, err
}

// Down rolls back the newest applied migration.
func (m *Migrator) Down(ctx context.Context) (*goose.MigrationResult, error) {
	if !m.citus {
		return m.provider.Down(ctx)
	}
	v, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		return nil, errors.New("no migration to roll back")
	}
	res, err := m.DownTo(ctx, v-1)
	if len(res) == 0 {
		return nil, err
	}
	return res[0], err
}

// DownTo rolls back every migration newer than version (0: all of them).
func (m *Migrator) DownTo(ctx context.Context, version int64) (res []*goose.MigrationResult, err error) {
	err = m.withOwnerLogin(ctx, func() error {
		// On Citus, below 00002 fieldseal's schema and pgcrypto go, as
		// the superuser, in the same transaction as the owner's last
		// drops: over two connections to each worker, which deadlock.
		// They go with propagation off, and then from the workers.
		to := version
		if m.citus {
			to = max(version, 2)
		}
		r, err := m.everywhere.DownTo(ctx, to)
		res = append(res, r...)
		if err != nil || to == version {
			return err
		}
		if r, err = m.provider.DownTo(ctx, version); err != nil {
			return err
		}
		res = append(res, r...)
		return dropFromWorkers(ctx, m.adminURL)
	})
	return res, err
}

// withOwnerLogin runs down migrations. On Citus they run with DDL
// propagation on, so that what they drop or change goes from the
// workers too, over connections of the current role, the owner, which
// cannot log in: for the run it may (ownerLogin). What is left is
// distributed again (a table a down migration made anew, say).
func (m *Migrator) withOwnerLogin(ctx context.Context, down func() error) error {
	if !m.citus {
		return down()
	}
	if err := ownerLogin(ctx, m.adminURL, down); err != nil {
		return err
	}
	if v, err := m.provider.GetDBVersion(ctx); err != nil || v == 0 {
		return err
	}
	return distribute(ctx, m.adminURL)
}

// Status lists every embedded migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]*goose.MigrationStatus, error) {
	return m.provider.Status(ctx)
}

// Close closes the admin connection.
func (m *Migrator) Close() error {
	for _, db := range []*sql.DB{m.localDB, m.everywhereDB} {
		if db != nil {
			db.Close()
		}
	}
	return m.db.Close()
}
