package pglocal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CitusOptions say where a Citus cluster lives and how big it is.
type CitusOptions struct {
	// Dir holds one directory per node: "coordinator", "worker1", ….
	Dir string
	// Workers is how many worker nodes to start beside the coordinator.
	Workers int
	// Settings are extra server settings for every node.
	Settings map[string]string
}

// CitusCluster is a Citus coordinator and its workers: each a Cluster on
// loopback with Citus preloaded, all with one superuser password, so
// that the nodes can connect to each other as that superuser.
type CitusCluster struct {
	Coordinator *Cluster
	Workers     []*Cluster
}

// StartCitus starts a coordinator and opts.Workers workers. Citus must be
// installed in the PostgreSQL whose binaries Start finds.
func StartCitus(ctx context.Context, opts CitusOptions) (*CitusCluster, error) {
	binDir, err := FindBinDir("")
	if err != nil {
		return nil, err
	}
	// Debian's layout (and PostgreSQL's default one): lib beside bin.
	lib := filepath.Join(filepath.Dir(binDir), "lib")
	if _, err := os.Stat(filepath.Join(lib, "citus.so")); err != nil {
		return nil, fmt.Errorf("citus is not installed in %s: build and install it with ../shared/citus/build.sh (make test-citus does)", lib)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	// One password for every node, kept beside them.
	pw, err := ensurePassword(filepath.Join(opts.Dir, "superuser.password"), "")
	if err != nil {
		return nil, err
	}
	settings := map[string]string{
		"shared_preload_libraries": "citus",
		// Nodes talk over loopback; without this libpq would look for
		// client certificates in the home directory of whoever runs us.
		"citus.node_conninfo": "sslmode=disable",
		"max_connections":     "200",
		// As many connections to each worker kept open between
		// transactions as fieldseal's default pool holds (Citus's default
		// is 1); measured here, it changed nothing (docs/scale.md).
		"citus.max_cached_conns_per_worker": "16",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	cc := &CitusCluster{}
	for i := range opts.Workers + 1 {
		name := "coordinator"
		if i > 0 {
			name = fmt.Sprintf("worker%d", i)
		}
		// A node restarts on the port it had: the coordinator's metadata
		// names the workers by host and port.
		portFile := filepath.Join(opts.Dir, name+".port")
		port := 0
		if b, err := os.ReadFile(portFile); err == nil {
			port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		c, err := Start(ctx, Options{Dir: filepath.Join(opts.Dir, name), Settings: settings, Password: pw, Port: port})
		if err == nil && port == 0 {
			err = os.WriteFile(portFile, []byte(strconv.Itoa(c.Port)+"\n"), 0o600)
		}
		if err != nil {
			if c != nil {
				c.Stop()
			}
			cc.Stop()
			return nil, fmt.Errorf("start the Citus %s: %w", name, err)
		}
		if i == 0 {
			cc.Coordinator = c
		} else {
			cc.Workers = append(cc.Workers, c)
		}
	}
	return cc, nil
}

// Nodes returns the coordinator, then the workers.
func (cc *CitusCluster) Nodes() []*Cluster {
	return append([]*Cluster{cc.Coordinator}, cc.Workers...)
}

// CreateDatabase creates database on every node with the citus extension,
// tells every node the superuser's password for connections between
// nodes, and adds the workers to the coordinator's metadata: after it,
// the coordinator's URL(database) is a distributed database.
func (cc *CitusCluster) CreateDatabase(ctx context.Context, database string) error {
	for _, n := range cc.Nodes() {
		if err := run(ctx, n.URL("postgres"), fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{database}.Sanitize())); err != nil {
			return err
		}
		if err := run(ctx, n.URL(database), "CREATE EXTENSION citus"); err != nil {
			return err
		}
	}
	if err := cc.NodePassword(ctx, database, superuser, cc.Coordinator.password); err != nil {
		return err
	}
	stmts := []string{fmt.Sprintf("SELECT citus_set_coordinator_host('127.0.0.1', %d)", cc.Coordinator.Port)}
	for _, w := range cc.Workers {
		stmts = append(stmts, fmt.Sprintf("SELECT citus_add_node('127.0.0.1', %d)", w.Port))
	}
	return run(ctx, cc.Coordinator.URL(database), stmts...)
}

// NodePassword tells every node of database the password role logs in
// with, for the connections Citus makes between nodes as that role (its
// queries' shards, run as the user who sent them).
func (cc *CitusCluster) NodePassword(ctx context.Context, database, role, password string) error {
	for _, n := range cc.Nodes() {
		err := run(ctx, n.URL(database),
			fmt.Sprintf("DELETE FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = %s", quote(role)),
			fmt.Sprintf("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, %s, %s)", quote(role), quote("password="+conninfoValue(password))))
		if err != nil {
			return err
		}
	}
	return nil
}

// Stop stops every node that started.
func (cc *CitusCluster) Stop() error {
	var errs []error
	for _, n := range cc.Nodes() {
		if n != nil {
			errs = append(errs, n.Stop())
		}
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, url string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			// The statement's first words only: some carry a password.
			words := strings.Fields(s)
			return fmt.Errorf("%s: %w", strings.Join(words[:min(3, len(words))], " "), err)
		}
	}
	return nil
}

// conninfoValue quotes v for a libpq connection string.
func conninfoValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// quote is a SQL string literal of s (standard_conforming_strings on).
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
