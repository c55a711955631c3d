package pglocal

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMissingBinariesSayWhatToInstall(t *testing.T) {
	_, err := FindBinDir(t.TempDir())
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install postgresql postgresql-contrib") {
		t.Errorf("FindBinDir(empty dir) = %v; want ErrNoBinaries saying what to install", err)
	}
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), BinDir: "/nonexistent"})
	if !errors.Is(err, ErrNoBinaries) {
		t.Errorf("Start with no binaries = %v; want ErrNoBinaries", err)
	}
}

// TestStartReuseAndUnreachableDir starts a cluster in a directory that the
// server's user cannot reach when the test runs as root (a 0700 parent, as
// a clone under /root would be), checks it works, stops it, and starts it
// again from the same directory: same data, same password.
func TestStartReuseAndUnreachableDir(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir() // 0700
	dir := filepath.Join(parent, "pg")
	c, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if !strings.HasPrefix(c.DataDir, dir) {
			os.RemoveAll(filepath.Dir(c.DataDir))
		}
	})
	if os.Geteuid() == 0 && strings.HasPrefix(c.DataDir, dir) {
		t.Errorf("as root, the data directory %s is under a 0700 directory the server's user cannot reach", c.DataDir)
	}
	exec := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE TABLE kept (x int)`)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	c2, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer c2.Stop()
	if c2.DataDir != c.DataDir {
		t.Errorf("restart used %s; want the same data directory %s", c2.DataDir, c.DataDir)
	}
	c = c2
	exec(`SELECT * FROM kept`)
	// Loopback only, no Unix socket.
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var listen, sockets string
	_ = conn.QueryRow(ctx, `SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories')`).Scan(&listen, &sockets)
	if listen != "127.0.0.1" || sockets != "" {
		t.Errorf("listen_addresses=%q unix_socket_directories=%q; want 127.0.0.1 and none", listen, sockets)
	}
}

// A port taken between picking it and postgres binding it makes Start try
// another one.
func TestStartRetriesATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	pick := freePort
	picks := 0
	freePort = func() (int, error) {
		picks++
		if picks == 1 {
			return taken, nil
		}
		return pick()
	}
	defer func() { freePort = pick }()
	c, err := Start(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Start with its first port taken: %v", err)
	}
	defer c.Stop()
	if c.Port == taken || picks != 2 {
		t.Errorf("listening on %d after %d picks; want another port than the taken %d, on the second pick", c.Port, picks, taken)
	}
}
