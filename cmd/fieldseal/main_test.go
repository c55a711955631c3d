package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
	"github.com/fieldseal/fieldseal/migrations"
)

func TestMain(m *testing.M) {
	// Re-executed as the fieldseal binary by tests that need a real server
	// process (to kill it, to read its memory use).
	if os.Getenv("FIELDSEAL_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	pgtest.Main(m)
}

// runCmd runs fieldseal with args and environment vars, returning the exit
// code and what it printed.
func runCmd(t *testing.T, ctx context.Context, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	code := run(ctx, args, &stdout, &stderr, env)
	return code, stdout.String(), stderr.String()
}

func jwksFile(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, devissuer.New("https://idp.example", k).JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeRefusesRolesThatBypassRLS(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	jwks := jwksFile(t)
	for _, tc := range []struct{ name, attributes, want string }{
		{"superuser", "SUPERUSER", "is a superuser"},
		{"bypassrls", "BYPASSRLS IN ROLE fieldseal_app", "has BYPASSRLS"},
		{"owner", "IN ROLE fieldseal_app, fieldseal_owner", "owns fieldseal's schema"},
		{"not app", "", "not a member of fieldseal_app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, context.Background(), map[string]string{
				"FIELDSEAL_DATABASE_URL": pgtest.LoginRole(t, database, tc.attributes),
				"FIELDSEAL_ISSUER":       "https://idp.example", "FIELDSEAL_AUDIENCE": "fieldseal",
				"FIELDSEAL_JWKS_FILE": jwks, "FIELDSEAL_LISTEN": "127.0.0.1:0",
			}, "serve")
			if code != 1 || !strings.Contains(stderr, "refusing to start") || !strings.Contains(stderr, tc.want) {
				t.Errorf("serve as %s: exit %d, stderr %q; want exit 1 saying %q", tc.name, code, stderr, tc.want)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"FIELDSEAL_DATABASE_URL": "postgres://u:p@127.0.0.1:1/db", "FIELDSEAL_ISSUER": "https://idp.example",
		"FIELDSEAL_AUDIENCE": "fieldseal", "FIELDSEAL_JWKS_FILE": "/nonexistent",
	}
	// with returns base with each pair of kv set ("" deletes).
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"no database", with("FIELDSEAL_DATABASE_URL", ""), "FIELDSEAL_DATABASE_URL is required"},
		{"no issuer", with("FIELDSEAL_ISSUER", ""), "FIELDSEAL_ISSUER is required"},
		{"no audience", with("FIELDSEAL_AUDIENCE", ""), "FIELDSEAL_AUDIENCE is required"},
		{"plain http on all interfaces", with("FIELDSEAL_LISTEN", "0.0.0.0:8080"), "not a loopback address"},
		{"bad duration", with("FIELDSEAL_TOKEN_MAX_LIFETIME", "forever"), "FIELDSEAL_TOKEN_MAX_LIFETIME"},
		{"bad log level", with("FIELDSEAL_LOG_LEVEL", "loud"), "FIELDSEAL_LOG_LEVEL"},
		{"half TLS", with("FIELDSEAL_TLS_CERT", "/x.pem"), "go together"},
		{"HMAC allowed", with("FIELDSEAL_TOKEN_ALGORITHMS", "RS256,HS256"), `algorithm "HS256" is not supported`},
		{"encryption required without a key", with("FIELDSEAL_TOKEN_REQUIRE_ENCRYPTION", "true"), "needs FIELDSEAL_TOKEN_DECRYPTION_KEY"},
		{"limits upside down", with("FIELDSEAL_WRONG_KEY_SUBJECT_LIMIT", "2"), "FIELDSEAL_WRONG_KEY_SUBJECT_LIMIT"},
		{"http issuer off loopback", with("FIELDSEAL_JWKS_FILE", "", "FIELDSEAL_ISSUER", "http://idp.example"), "must use https"},
		{"bad request timeout", with("FIELDSEAL_REQUEST_TIMEOUT", "0s"), "FIELDSEAL_REQUEST_TIMEOUT"},
		{"long timeout under the request timeout", with("FIELDSEAL_LONG_REQUEST_TIMEOUT", "1s"), "long-operation timeout"},
		{"direct URL without a pooler", with("FIELDSEAL_DIRECT_DATABASE_URL", "postgres://u:p@127.0.0.1:1/db"), "FIELDSEAL_TRANSACTION_POOLER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, context.Background(), tc.vars, "serve")
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want failure naming %q", code, stderr, tc.want)
			}
		})
	}
	// --help lists every variable.
	code, _, stderr := runCmd(t, context.Background(), nil, "serve", "--help")
	for _, v := range []string{"FIELDSEAL_DATABASE_URL", "FIELDSEAL_ISSUER", "FIELDSEAL_AUDIENCE", "FIELDSEAL_JWKS_URL",
		"FIELDSEAL_JWKS_FILE", "FIELDSEAL_LISTEN", "FIELDSEAL_TLS_CERT", "FIELDSEAL_TLS_KEY", "FIELDSEAL_TRUST_PROXY_TLS"} {
		if code != 0 || !strings.Contains(stderr, v) {
			t.Errorf("serve --help (exit %d) does not list %s", code, v)
		}
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	admin := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": pgtest.NewEmptyDB(t)}
	ctx := context.Background()
	// status prints one line per migration: its file, then pending or applied.
	entries, _ := fs.Glob(migrations.FS, "*.sql")
	newest := entries[len(entries)-1]
	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"migrate", "status"}, []string{"00001_roles.sql", "00003_parameter_logging.sql pending"}},
		{[]string{"migrate", "up"}, []string{"applied 00001_roles.sql", "applied 00003_parameter_logging.sql"}},
		{[]string{"migrate", "up"}, []string{fmt.Sprint("already at the newest version ", migrations.Head())}},
		{[]string{"migrate", "status"}, []string{"00003_parameter_logging.sql applied 2"}},
		{[]string{"migrate", "down"}, []string{"rolled back " + newest}},
		{[]string{"migrate", "--to", "0", "down"}, []string{"rolled back 00002_records.sql", "rolled back 00001_roles.sql"}},
		{[]string{"migrate", "status"}, []string{"00001_roles.sql          pending"}},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, ctx, admin, s.args...)
		for _, want := range s.want {
			if code != 0 || !strings.Contains(stdout, want) {
				t.Fatalf("fieldseal %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(s.args, " "), code, stdout, stderr, want)
			}
		}
	}
	if code, _, stderr := runCmd(t, ctx, nil, "migrate", "up"); code != 1 || !strings.Contains(stderr, "FIELDSEAL_ADMIN_DATABASE_URL is required") {
		t.Errorf("migrate without an admin URL: exit %d, %q", code, stderr)
	}
	if code, _, _ := runCmd(t, ctx, admin, "migrate", "sideways"); code != 2 {
		t.Errorf("migrate sideways: exit %d; want 2", code)
	}
}

// startDev runs `fieldseal dev` until the test ends and returns its banner.
func startDev(t *testing.T, vars map[string]string) (banner string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr apitest.SyncBuffer
	done := make(chan int, 1)
	env := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	go func() { done <- run(ctx, []string{"dev"}, &stdout, &stderr, env) }()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(stdout.String(), "Ctrl-C stops everything") {
		select {
		case code := <-done:
			t.Fatalf("dev exited %d before it was ready: %s", code, stderr.String())
		case <-deadline:
			cancel()
			t.Fatalf("dev not ready within 2 minutes: %s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopped := false
	stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(time.Minute):
			t.Fatal("dev did not stop within a minute")
			return -1
		}
	}
	t.Cleanup(func() { stop() })
	return stdout.String(), stop
}

// pasteCurlLines runs the banner's export and curl lines in bash, as a user
// pasting them would, and returns what they printed.
func pasteCurlLines(t *testing.T, banner string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed: the dev banner's examples use it (apt-get install curl)")
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	sc := bufio.NewScanner(strings.NewReader(banner))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "export ") || strings.HasPrefix(line, "curl ") || strings.HasPrefix(line, "  ") {
			script.WriteString(line + "\n")
		}
	}
	cmd := exec.Command("bash", "-c", script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pasting the banner's lines failed: %v\n%s", err, out)
	}
	return string(out)
}

func TestDevLocalCluster(t *testing.T) {
	t.Parallel()
	// A directory PostgreSQL's user can reach even when the tests run as
	// root (t.TempDir is 0700), so that the cluster lives inside it.
	parent, err := os.MkdirTemp("", "fieldseal-dev-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "dev")
	banner, stop := startDev(t, map[string]string{"FIELDSEAL_DEV_DIR": dir, "FIELDSEAL_LISTEN": "127.0.0.1:0"})
	out := pasteCurlLines(t, banner)
	if !strings.Contains(out, `"secret":{"body":"only my key opens this"}`) || !strings.Contains(out, `"collection":"notes"`) {
		t.Errorf("the curl examples did not store and read back a record:\n%s", out)
	}
	if !regexp.MustCompile(`export KEY='[A-Za-z0-9+/]{43}='`).MatchString(banner) {
		t.Errorf("the banner has no 32-byte base64 data key:\n%s", banner)
	}
	if code := stop(); code != 0 {
		t.Errorf("dev exit code after Ctrl-C = %d; want 0", code)
	}
	// Ctrl-C stopped PostgreSQL too: a cleanly stopped server removes its pid file.
	if _, err := os.Stat(filepath.Join(dir, "postgres", "pgdata", "PG_VERSION")); err != nil {
		t.Fatalf("the cluster is not in FIELDSEAL_DEV_DIR: %v", err)
	}
	pid := filepath.Join(dir, "postgres", "pgdata", "postmaster.pid")
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("PostgreSQL still running after dev stopped (%s: %v)", pid, err)
	}

	// A second run reuses the cluster and the data key: the record is still there.
	banner2, _ := startDev(t, map[string]string{"FIELDSEAL_DEV_DIR": dir, "FIELDSEAL_LISTEN": "127.0.0.1:0"})
	out = pasteCurlLines(t, banner2)
	if strings.Count(out, `"only my key opens this"`) != 2 {
		t.Errorf("after a restart, the list should hold the first run's record and the new one:\n%s", out)
	}
}

func TestDevExternalDatabase(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDB(t)
	app, _ := url.Parse(database.AdminURL)
	role := "fieldseal_devtest_" + strings.TrimPrefix(database.Name, "fieldseal_t_")
	app.User = url.UserPassword(role, "dev-password")
	t.Cleanup(func() {
		_ = exec.Command(filepath.Join(pgtest.BinDir(t), "psql"), "-q", "-d", database.AdminURL, "-c", "DROP ROLE IF EXISTS "+role).Run()
	})
	banner, _ := startDev(t, map[string]string{
		"FIELDSEAL_DEV_DIR": filepath.Join(t.TempDir(), "dev"), "FIELDSEAL_LISTEN": "127.0.0.1:0",
		"FIELDSEAL_DATABASE_URL": app.String(), "FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL,
	})
	if out := pasteCurlLines(t, banner); !strings.Contains(out, `"only my key opens this"`) {
		t.Errorf("dev on an external database: %s", out)
	}
}
