package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/pgtest"
	"github.com/fieldseal/fieldseal/pglocal"
)

// cpuSeconds is the CPU time (user and system) a process has used.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 a second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	user, _ := strconv.ParseFloat(f[11], 64)
	sys, _ := strconv.ParseFloat(f[12], 64)
	return (user + sys) / 100
}

// idleCPU fails t if the process uses more than a tenth of a core over 2 s.
func idleCPU(t *testing.T, pid int, when string) {
	t.Helper()
	before := cpuSeconds(t, pid)
	time.Sleep(2 * time.Second)
	if used := cpuSeconds(t, pid) - before; used > 0.2 {
		t.Errorf("%s, the idle server used %.2f s of CPU in 2 s; want under 0.2 s", when, used)
	}
}

// logLines counts the lines of log holding every one of words.
func logLines(log string, words ...string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all && l != "" {
			n++
		}
	}
	return n
}

// waitFor polls cond every 20 ms until it holds, failing t after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// The revocation listener survives a terminated connection and a stopped
// server: it neither spins nor floods the log, it LISTENs again (a
// revocation arrives within a second, far inside the 30 s re-read), and it
// says once that the connection was lost and once that it is back.
func TestRevocationListenerReconnects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database, cluster, dir := pgtest.NewCluster(t, nil)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(t, vars)
	admin := adminConn(t, database.AdminURL)
	listening := func() bool {
		var n int
		_ = admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, db.ListenerName).Scan(&n)
		return n == 1
	}
	waitFor(t, 5*time.Second, "the listener connects", listening)

	// Its connection terminated: it comes back and hears the next revocation.
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, db.ListenerName); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the listener reconnects", func() bool {
		return logLines(srv.Log.String(), "revocation listener reconnected") == 1
	})
	idleCPU(t, srv.cmd.Process.Pid, "after its listening connection was terminated")
	_, tok2 := tokenSetupWith(t, vars, "bob", 0)
	claims := decodeClaims(t, tok)
	revoke := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	if code, _, errOut := runCmd(t, ctx, revoke, "token", "revoke", "--jti", claims["jti"].(string)); code != 0 {
		t.Fatalf("token revoke: %s", errOut)
	}
	refusedWithin(t, time.Second, tok, srv)

	// PostgreSQL down for a while: quiet and cheap, one warning.
	admin.Close(ctx)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	idleCPU(t, srv.cmd.Process.Pid, "while PostgreSQL was down")
	time.Sleep(time.Second)
	if n := logLines(srv.Log.String(), "revocation listener lost its connection"); n != 2 {
		t.Errorf("%d warnings of a lost listener after two outages; want 2 (one each):\n%s", n, srv.Log.String())
	}
	if n := logLines(srv.Log.String(), `"level":"WARN"`); n > 3 {
		t.Errorf("%d WARN lines; want one per outage (and at most one for the read it was doing)", n)
	}
	cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Port: cluster.Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	waitFor(t, 45*time.Second, "the listener reconnects after the restart", func() bool {
		return logLines(srv.Log.String(), "revocation listener reconnected") == 2
	})
	claims2 := decodeClaims(t, tok2)
	if code, _, errOut := runCmd(t, ctx, revoke, "token", "revoke", "--jti", claims2["jti"].(string)); code != 0 {
		t.Fatalf("token revoke: %s", errOut)
	}
	refusedWithin(t, time.Second, tok2, srv)
}

// call sends one request and returns its status, headers and body.
func call(t *testing.T, method, url, token, key string, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Encryption-Key", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// timed is one request's answer and how long it took.
type timed struct {
	status     int
	retryAfter string
	took       time.Duration
}

func timedCall(t *testing.T, method, url, token, key, body string) timed {
	start := time.Now()
	status, h, _ := call(t, method, url, token, key, body, nil)
	return timed{status, h.Get("Retry-After"), time.Since(start)}
}

// Nothing waits without bound: a table lock held by a DBA answers 503
// after the lock timeout (or the request deadline, whichever is first); a
// full pool answers 503 after the pool timeout, with Retry-After; /readyz
// answers at once whatever the pool is doing.
func TestTimeoutsBoundEveryWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := pgtest.NewDB(t)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL + "&pool_max_conns=4"
	vars["FIELDSEAL_LOCK_TIMEOUT"] = "3s"
	vars["FIELDSEAL_REQUEST_TIMEOUT"] = "8s"
	vars["FIELDSEAL_POOL_TIMEOUT"] = "300ms"
	srv := startServer(t, vars)
	short := map[string]string{}
	for k, v := range vars {
		short[k] = v
	}
	short["FIELDSEAL_LOCK_TIMEOUT"], short["FIELDSEAL_REQUEST_TIMEOUT"] = "30s", "1s"
	shortSrv := startServer(t, short)
	key := dataKey(t)
	const rec = `{"collection":"c","public":{},"secret":{"s":1}}`
	if got := timedCall(t, "POST", srv.URL+"/v1/records", tok, key, rec); got.status != 201 {
		t.Fatalf("create before the lock: %d", got.status)
	}

	admin := adminConn(t, database.AdminURL)
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE fieldseal.records IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan timed, 4)
	for range 4 {
		go func() { blocked <- timedCall(t, "POST", srv.URL+"/v1/records", tok, key, rec) }()
	}
	lockWaiters := func() int {
		var n int
		_ = adminConn(t, database.AdminURL).QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, database.Name).Scan(&n)
		return n
	}
	waitFor(t, 2*time.Second, "four creates wait on the lock", func() bool { return lockWaiters() == 4 })

	// Every connection of the pool waits on the lock now.
	if got := timedCall(t, "POST", srv.URL+"/v1/keys/verify", tok, key, ""); got.status != 503 || got.retryAfter == "" || got.took > 1500*time.Millisecond {
		t.Errorf("a request with the pool full: %d (Retry-After %q) after %s; want 503 with Retry-After within the 300ms pool timeout", got.status, got.retryAfter, got.took)
	}
	start := time.Now()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) > time.Second {
		t.Errorf("/readyz with the pool full: %d after %s; want 200 within 1 s", resp.StatusCode, time.Since(start))
	}
	// The request deadline cuts a wait shorter than the lock timeout.
	if got := timedCall(t, "POST", shortSrv.URL+"/v1/records", tok, key, rec); got.status != 503 || got.retryAfter == "" || got.took > 3*time.Second {
		t.Errorf("a create under the lock with a 1 s request timeout: %d (Retry-After %q) after %s; want 503 within about 1 s", got.status, got.retryAfter, got.took)
	}
	for range 4 {
		got := <-blocked
		if got.status != 503 || got.retryAfter == "" || got.took < 2*time.Second || got.took > 6*time.Second {
			t.Errorf("a create under the lock: %d (Retry-After %q) after %s; want 503 with Retry-After after the 3 s lock timeout", got.status, got.retryAfter, got.took)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := timedCall(t, "POST", srv.URL+"/v1/records", tok, key, rec); got.status != 201 {
		t.Errorf("create after the lock was released: %d", got.status)
	}
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM fieldseal.records`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d records (%v); want 2: the ones answered 503 wrote nothing", n, err)
	}
	if strings.Contains(srv.Log.String(), `"status":500`) {
		t.Errorf("a 500 in the log:\n%s", srv.Log.String())
	}
}

// Clients that open an export and stop reading cannot take the pool: only
// a quarter of it streams exports at once (the rest answer 503 with
// Retry-After), each write must go through within the request timeout,
// and meanwhile every other request is served.
func TestSlowExportReadersCannotTakeThePool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := pgtest.NewDB(t)
	vars, tok := tokenSetup(t, "alice")
	_, bobTok := tokenSetupWith(t, vars, "bob", 0)
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL + "&pool_max_conns=8"
	vars["FIELDSEAL_REQUEST_TIMEOUT"] = "2s"
	srv := startServer(t, vars)
	seedRecords(t, database.AdminURL, "alice", dataKey(t), 20000) // about 14 MB of export: more than socket buffers hold

	var conns []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
		conns = append(conns, c)
	}
	statuses := map[string]int{}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
		if err != nil {
			t.Fatalf("reading an export's status line: %v", err)
		}
		statuses[strings.TrimSpace(line)]++
	}
	if statuses["HTTP/1.1 200 OK"] != 2 || statuses["HTTP/1.1 503 Service Unavailable"] != 6 {
		t.Errorf("8 exports at once on a pool of 8 answered %v; want 2 streaming and 6 × 503", statuses)
	}
	key := dataKey(t)
	if got := timedCall(t, "POST", srv.URL+"/v1/records", bobTok, key, `{"collection":"c","public":{},"secret":{}}`); got.status != 201 || got.took > time.Second {
		t.Errorf("another subject's create while exports stall: %d after %s", got.status, got.took)
	}
	admin := adminConn(t, database.AdminURL)
	waitFor(t, 10*time.Second, "the stalled exports give their connections back", func() bool {
		var n int
		_ = admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%armor(%' AND state <> 'idle' AND pid <> pg_backend_pid()`, database.Name).Scan(&n)
		return n == 0
	})
	waitFor(t, 5*time.Second, "the server logs the cut exports", func() bool {
		return logLines(srv.Log.String(), "export cut", `"level":"INFO"`) == 2
	})
	if logLines(srv.Log.String(), `"level":"ERROR"`) != 0 {
		t.Errorf("stalled clients logged as server errors:\n%s", srv.Log.String())
	}
}
