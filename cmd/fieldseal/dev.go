package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fieldseal/fieldseal/auth"
	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/pglocal"
)

const (
	devAudience = "fieldseal"
	devSubject  = "dev-user"
	devAppRole  = "fieldseal_dev"
	devScopes   = "records:read records:write keys:rotate audit:read"
)

func devCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	var c serveConfig
	f := newFlags("dev", "A working local service in one command: a PostgreSQL cluster (unless FIELDSEAL_DATABASE_URL is set),\nmigrations, an app login role, a dev token issuer, and the API server. Ctrl-C stops everything.", stderr, env)
	serveFlags(f, &c)
	devDir := f.String("dev-dir", "./.fieldseal", "where dev keeps its PostgreSQL cluster, signing key and data key")
	adminURL := f.String("admin-database-url", "", "with FIELDSEAL_DATABASE_URL: an admin URL to migrate with and to create the app login role")
	binDir := f.String("pg-bindir", "", "directory of initdb and postgres (default: found under /usr/lib/postgresql or on PATH)")
	citus := f.Bool("citus", false, "start a Citus coordinator and two workers instead of one PostgreSQL (Citus must be installed; docs/scale.md says what runs there)")
	if err := f.parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	// 0711: when dev runs as root, PostgreSQL runs as another user and must
	// traverse this directory to reach its cluster; every file here is 0600.
	if err := os.MkdirAll(*devDir, 0o711); err != nil {
		return err
	}

	switch {
	case *citus && c.databaseURL != "":
		return errors.New("--citus starts its own cluster: leave FIELDSEAL_DATABASE_URL unset")
	case *citus:
		pw, err := readOrCreate(filepath.Join(*devDir, "app.password"), func() string { return randomHex(18) })
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, "fieldseal dev: starting a Citus coordinator and two workers in", filepath.Join(*devDir, "citus"))
		cc, err := pglocal.StartCitus(ctx, pglocal.CitusOptions{Dir: filepath.Join(*devDir, "citus"), Workers: 2})
		if err != nil {
			return err
		}
		defer cc.Stop()
		if _, c.databaseURL, err = cc.Provision(ctx, "fieldseal", devAppRole, pw); err != nil {
			return err
		}
	case c.databaseURL == "":
		fmt.Fprintln(stderr, "fieldseal dev: starting PostgreSQL in", filepath.Join(*devDir, "postgres"))
		cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(*devDir, "postgres"), BinDir: *binDir})
		if err != nil {
			return err
		}
		defer cluster.Stop()
		pw, err := readOrCreate(filepath.Join(*devDir, "app.password"), func() string { return randomHex(18) })
		if err != nil {
			return err
		}
		if _, c.databaseURL, err = pglocal.Provision(ctx, cluster.URL("postgres"), "fieldseal", devAppRole, pw); err != nil {
			return err
		}
	case *adminURL != "":
		// A database of the user's: migrated, and FIELDSEAL_DATABASE_URL's
		// user let in.
		a, errA := url.Parse(*adminURL)
		u, errU := url.Parse(c.databaseURL)
		if errA != nil || errU != nil || u.User == nil || u.User.Username() == "" {
			return errors.New("with --admin-database-url, both it and FIELDSEAL_DATABASE_URL must be URLs, FIELDSEAL_DATABASE_URL naming a user")
		}
		pw, _ := u.User.Password()
		if _, _, err := pglocal.Provision(ctx, *adminURL, strings.TrimPrefix(a.Path, "/"), u.User.Username(), pw); err != nil {
			return err
		}
	default:
		fmt.Fprintln(stderr, "fieldseal dev: no FIELDSEAL_ADMIN_DATABASE_URL: not migrating; the database must be migrated already")
	}

	key, err := devissuer.LoadOrCreateKey(filepath.Join(*devDir, "dev-signing-key.pem"))
	if err != nil {
		return err
	}
	issLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	iss := devissuer.New("http://"+issLn.Addr().String(), key)
	issSrv := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = issSrv.Serve(issLn) }()
	defer issSrv.Close()

	c.issuer, c.audience, c.jwksURL, c.jwksFile = iss.URL, devAudience, "", ""
	if err := c.validate(); err != nil {
		return err
	}
	token, err := iss.Mint(devSubject, devAudience, devScopes, time.Hour, nil)
	if err != nil {
		return err
	}
	dataKey, err := readOrCreate(filepath.Join(*devDir, "dev-data.key"), func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	})
	if err != nil {
		return err
	}
	return serve(ctx, c, auth.KeySource{Issuer: c.issuer}, log, func(addr string) {
		scheme := "http"
		if c.tlsCert != "" {
			scheme = "https"
		}
		// Listening on every interface (a container): show a loopback URL.
		if host, port, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host).IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		printDevBanner(stdout, scheme+"://"+addr, token, dataKey)
	})
}

func printDevBanner(w io.Writer, base, token, dataKey string) {
	fmt.Fprintf(w, `
fieldseal dev is ready. Paste these into a shell:

export FIELDSEAL_URL=%s
export TOKEN='%s'
export KEY='%s'

# store a record (the secret is encrypted under $KEY inside PostgreSQL)
curl -sS -X POST "$FIELDSEAL_URL/v1/records" -H "Authorization: Bearer $TOKEN" -H "Encryption-Key: $KEY" \
  -H 'Content-Type: application/json' \
  -d '{"collection":"notes","public":{"title":"hello"},"secret":{"body":"only my key opens this"}}'

# list records, decrypted; without the Encryption-Key header you get public data only
curl -sS "$FIELDSEAL_URL/v1/records" -H "Authorization: Bearer $TOKEN" -H "Encryption-Key: $KEY"

The token (subject %q, every scope) is valid for one hour; restart dev for a new one.
The data key is this dev directory's: lose it and its records are lost too. Ctrl-C stops everything.

`, base, token, dataKey, devSubject)
}

// readOrCreate returns the trimmed content of path, creating it (0600)
// with gen() first if it does not exist.
func readOrCreate(path string, gen func() string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	v := gen()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", err
	}
	return v, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
