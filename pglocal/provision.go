package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/migrations"
)

// Provision makes database, on the server whose superuser URL is
// serverURL (to any of its databases), ready for fieldseal: created if it
// does not exist, migrated, and role a login member of fieldseal_app,
// created with password if it does not exist. It returns the database's
// superuser URL and role's URL. It is how `fieldseal dev`, the tests and
// the bench make their databases (CitusCluster.Provision on Citus).
func Provision(ctx context.Context, serverURL, database, role, password string) (admin, app string, err error) {
	admin, app, err = urls(serverURL, database, role, password)
	if err != nil {
		return "", "", err
	}
	exists, err := databaseExists(ctx, serverURL, database)
	if err == nil && !exists {
		err = run(ctx, serverURL, fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{database}.Sanitize()))
	}
	if err == nil {
		err = migrate(ctx, admin, role, password)
	}
	if err != nil {
		return "", "", fmt.Errorf("provision database %s: %w", database, err)
	}
	return admin, app, nil
}

// Provision is Provision on the cluster: the database is created on every
// node and distributed, and every node knows role's password, for the
// connections Citus makes between nodes as role. It returns the
// coordinator's URLs.
func (cc *CitusCluster) Provision(ctx context.Context, database, role, password string) (admin, app string, err error) {
	admin, app = cc.Coordinator.URL(database), cc.Coordinator.URLAs(role, password, database)
	exists, err := databaseExists(ctx, cc.Coordinator.URL("postgres"), database)
	if err == nil && !exists {
		err = cc.CreateDatabase(ctx, database)
	}
	if err == nil {
		err = migrate(ctx, admin, role, password)
	}
	if err == nil {
		err = cc.NodePassword(ctx, database, role, password)
	}
	if err != nil {
		return "", "", fmt.Errorf("provision distributed database %s: %w", database, err)
	}
	return admin, app, nil
}

// migrate brings the database at admin to the latest migration and lets
// role in.
func migrate(ctx context.Context, admin, role, password string) error {
	if err := migrations.Up(ctx, admin); err != nil {
		return err
	}
	return migrations.EnsureAppLogin(ctx, admin, role, password)
}

// urls are serverURL moved to database, as it is and as role.
func urls(serverURL, database, role, password string) (admin, app string, err error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme == "" {
		return "", "", errors.New("the admin database URL is not a valid URL") // its text could hold a password
	}
	u.Path = "/" + database
	admin = u.String()
	u.User = url.UserPassword(role, password)
	return admin, u.String(), nil
}

func databaseExists(ctx context.Context, serverURL, database string) (bool, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, database).Scan(&exists)
	return exists, err
}
