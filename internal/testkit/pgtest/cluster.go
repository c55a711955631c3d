package pgtest

import (
	"context"
	"os"
	"testing"

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
	admin, app, err := pglocal.Provision(ctx, c.URL("postgres"), "postgres", "cluster_app", "cluster-app")
	if err != nil {
		t.Fatal(err)
	}
	return DB{Name: "postgres", AdminURL: admin, AppURL: app, DirectAppURL: app}, c, dir
}
