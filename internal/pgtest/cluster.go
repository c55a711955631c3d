package pgtest

import (
	"context"
	"os"
	"testing"

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
	if err := migrations.Up(ctx, c.URL("postgres")); err != nil {
		t.Fatal(err)
	}
	if err := migrations.EnsureAppLogin(ctx, c.URL("postgres"), "cluster_app", "cluster-app"); err != nil {
		t.Fatal(err)
	}
	return DB{Name: "postgres", AdminURL: c.URL("postgres"), AppURL: c.URLAs("cluster_app", "cluster-app", "postgres"), DirectAppURL: c.URLAs("cluster_app", "cluster-app", "postgres")}, c, dir
}
