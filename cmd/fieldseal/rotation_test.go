package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/devissuer"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
	"github.com/fieldseal/fieldseal/pglocal"
)

// crashRecords is how many records a crash test rotates: enough that the
// re-encryption runs for a while (about 30 µs a record) to be cut off.
const crashRecords = 20000

func dataKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// tokenSetup returns serve's token settings and a token for subject with
// every scope.
func tokenSetup(t testing.TB, subject string) (map[string]string, string) {
	t.Helper()
	k, err := devissuer.LoadOrCreateKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	iss := devissuer.New("https://idp.test", k)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, iss.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"FIELDSEAL_ISSUER": iss.URL, "FIELDSEAL_AUDIENCE": "fieldseal", "FIELDSEAL_JWKS_FILE": jwks}
	issuersMu.Lock()
	issuers[jwks] = iss
	issuersMu.Unlock()
	return tokenSetupWith(t, vars, subject, 0)
}

// issuers remembers the issuer behind each JWKS file tokenSetup wrote.
var (
	issuersMu sync.Mutex
	issuers   = map[string]*devissuer.Issuer{}
)

// tokenSetupWith mints another token under the settings tokenSetup made,
// issued skew from now.
func tokenSetupWith(t testing.TB, vars map[string]string, subject string, skew time.Duration) (map[string]string, string) {
	t.Helper()
	issued := time.Now().Add(skew)
	issuersMu.Lock()
	iss := issuers[vars["FIELDSEAL_JWKS_FILE"]]
	issuersMu.Unlock()
	tok, err := iss.Mint(subject, "fieldseal", devScopes, time.Hour,
		map[string]any{"iat": issued.Unix(), "exp": issued.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return vars, tok
}

// decodeClaims reads a token's claims without verifying it.
func decodeClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// exactlyOneKey fails t unless every record and the verifier are under
// the same one of the two keys; it returns which (0 old, 1 new).
func exactlyOneKey(t *testing.T, adminURL string, oldKey, newKey string) int {
	t.Helper()
	counts, verifier := keyCensus(t, adminURL, "alice", oldKey, newKey)
	switch {
	case counts[0] == crashRecords && counts[1] == 0 && verifier == 0:
		return 0
	case counts[1] == crashRecords && counts[0] == 0 && verifier == 1:
		return 1
	}
	t.Fatalf("a mix of keys: %s (of %d records)", describe(counts, verifier), crashRecords)
	return -1
}

// rotation is a server process in the middle of re-encrypting
// crashRecords records of alice's from oldKey to newKey.
type rotation struct {
	database       pgtest.DB
	vars           map[string]string
	token          string
	oldKey, newKey string
	srv            *server
	status         chan int // the rotation's HTTP status; 0 if the connection broke
}

// rotationUnderWay seeds alice's records, starts a server, sends a
// rotation and returns once PostgreSQL is running its re-encryption.
func rotationUnderWay(t *testing.T) rotation {
	t.Helper()
	r := rotation{database: pgtest.NewDB(t), oldKey: dataKey(t), newKey: dataKey(t)}
	seedRecords(t, r.database.AdminURL, "alice", r.oldKey, crashRecords)
	r.vars, r.token = tokenSetup(t, "alice")
	r.vars["FIELDSEAL_DATABASE_URL"] = r.database.AppURL
	r.srv = startServer(t, r.vars)
	r.status = rotateAsync(r.srv.URL, r.token, r.oldKey, r.newKey)
	waitForStatement(t, r.database.AdminURL, r.database.Name, "record_key((SELECT old_sk FROM k)")
	return r
}

func TestRotationSurvivesKilledServer(t *testing.T) {
	t.Parallel()
	r := rotationUnderWay(t)
	database, vars, tok, oldKey, newKey, srv, status := r.database, r.vars, r.token, r.oldKey, r.newKey, r.srv, r.status
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if s := <-status; s != 0 {
		t.Fatalf("the rotation answered %d although the server was killed", s)
	}
	waitIdle(t, database.AdminURL, database.Name)
	if got := exactlyOneKey(t, database.AdminURL, oldKey, newKey); got != 0 {
		t.Errorf("killed before it could commit, yet the records are under the new key")
	}

	// A new server finishes the job.
	srv = startServer(t, vars)
	if s := <-rotateAsync(srv.URL, tok, oldKey, newKey); s != 200 {
		t.Fatalf("rotation after the crash: %d", s)
	}
	if got := exactlyOneKey(t, database.AdminURL, oldKey, newKey); got != 1 {
		t.Errorf("after a completed rotation, the records are not under the new key")
	}
}

func TestRotationSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database, cluster, dir := pgtest.NewCluster(t, nil)
	oldKey, newKey := dataKey(t), dataKey(t)
	seedRecords(t, cluster.URL("postgres"), "alice", oldKey, crashRecords)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(t, vars)

	status := rotateAsync(srv.URL, tok, oldKey, newKey)
	waitForStatement(t, cluster.URL("postgres"), "postgres", "record_key((SELECT old_sk FROM k)")
	if err := cluster.Stop(); err != nil { // fast shutdown: sessions are ended mid-statement
		t.Fatal(err)
	}
	if s := <-status; s != 503 {
		t.Errorf("the rotation cut off by PostgreSQL's restart answered %d; want 503", s)
	}
	cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	if got := exactlyOneKey(t, cluster.URL("postgres"), oldKey, newKey); got != 0 {
		t.Errorf("cut off before it could commit, yet the records are under the new key")
	}
}

// waitIdle waits until no session of database is inside a transaction: the
// orphaned rotation has ended, one way or the other.
func waitIdle(t *testing.T, adminURL, database string) {
	t.Helper()
	ctx := context.Background()
	conn := adminConn(t, adminURL)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var busy int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`, database).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy == 0 {
			return
		}
	}
	t.Fatal("the orphaned transaction did not end within a minute")
}
