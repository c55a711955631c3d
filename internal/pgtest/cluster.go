package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/migrations"
	"github.com/fieldseal/fieldseal/pglocal"
)

// NewCluster starts a PostgreSQL cluster of t's own, with extra server
// settings, migrates its "postgres" database and creates an app login
// role: for tests that read the server's log or stop and restart it. The
// cluster stops when t ends. Start it again with pglocal.Start and dir.
func NewCluster(t testing.TB, settings map[string]string) (db DB, c *pglocal.Cluster, dir string) {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fieldseal-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err = pglocal.Start(ctx, pglocal.Options{Dir: dir, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	m, err := migrations.Open(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Up(ctx)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE ROLE cluster_app LOGIN PASSWORD 'cluster-app' IN ROLE fieldseal_app`); err != nil {
		t.Fatal(err)
	}
	return DB{Name: "postgres", AdminURL: c.URL("postgres"), AppURL: c.URLAs("cluster_app", "cluster-app", "postgres")}, c, dir
}
