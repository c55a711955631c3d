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
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
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
	used := cpuSeconds(t, pid) - before
	if used > 0.2 {
		t.Errorf("%s, the idle server used %.2f s of CPU in 2 s; want under 0.2 s", when, used)
	}
	t.Logf("%s, the idle server used %.2f s of CPU in 2 s", when, used)
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
	waitFor(t, 5*time.Second, "the second outage's warning", func() bool {
		return logLines(srv.Log.String(), "revocation listener lost its connection") >= 2
	})
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

// PostgreSQL terminated, crashed and restarted under load: every answer is
// 2xx or 503 (with Retry-After), never 500; clients that retry their
// creates with the same Idempotency-Key end with exactly one record each,
// whether the answer they lost had committed or not.
func TestCrashesUnderLoadAnswer503AndRetriesMakeNoDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database, cluster, dir := pgtest.NewCluster(t, nil)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(t, vars)
	key := dataKey(t)
	if s, _, b := call(t, "POST", srv.URL+"/v1/records", tok, key, `{"collection":"c","secret":{}}`, nil); s != 201 {
		t.Fatalf("first create: %d %s", s, b)
	}

	const clients = 4
	faultsOver := make(chan struct{}) // clients create until the faults are over
	type outcome struct {
		statuses map[int]int
		no503RA  int
		keys     []string
		gaveUp   int
	}
	results := make(chan outcome, clients)
	// What the clients have seen so far, for the faults to wait on: a fault
	// comes when creates are succeeding, and the next when the service has
	// felt the last (answers failed) and come back (creates succeed again).
	var created, failed atomic.Int64
	createdSince := func(n int64) func() bool {
		from := created.Load()
		return func() bool { return created.Load() >= from+n }
	}
	stop := time.Now().Add(90 * time.Second) // every loop ends by itself
	for c := range clients {
		go func() {
			o := outcome{statuses: map[int]int{}}
			client := &http.Client{Timeout: 20 * time.Second}
			for i := 0; time.Now().Before(stop); i++ {
				select {
				case <-faultsOver:
					results <- o
					return
				default:
				}
				idem := fmt.Sprintf("c%d-%d", c, i)
				body := fmt.Sprintf(`{"collection":"c","public":{"k":%q},"secret":{"i":%d}}`, idem, i)
				for {
					req, _ := http.NewRequest("POST", srv.URL+"/v1/records", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Encryption-Key", key)
					req.Header.Set("Idempotency-Key", idem)
					resp, err := client.Do(req)
					if err != nil || resp.StatusCode != 201 {
						failed.Add(1)
					} else {
						created.Add(1)
					}
					if err != nil {
						o.statuses[0]++
					} else {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						o.statuses[resp.StatusCode]++
						if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
							o.no503RA++
						}
						if resp.StatusCode == 201 {
							o.keys = append(o.keys, idem)
							break
						}
					}
					if time.Now().After(stop) {
						o.gaveUp++
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			results <- o
		}()
	}

	admin := adminConn(t, database.AdminURL)
	waitFor(t, 30*time.Second, "creates under way", createdSince(2*clients))
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'cluster_app'`); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	waitFor(t, 30*time.Second, "creates after the terminated connections", createdSince(clients))
	outage := failed.Load()
	cluster.Crash() // as pg_ctl stop -m immediate
	waitFor(t, 30*time.Second, "clients meet the crash", func() bool { return failed.Load() >= outage+clients })
	var err error
	if cluster, err = pglocal.Start(ctx, pglocal.Options{Dir: dir, Port: cluster.Port}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "creates after the crash", createdSince(clients))
	if err := cluster.Stop(); err != nil { // fast shutdown, as pg_ctl restart -m fast
		t.Fatal(err)
	}
	if cluster, err = pglocal.Start(ctx, pglocal.Options{Dir: dir, Port: cluster.Port}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop() })
	waitFor(t, 30*time.Second, "creates after the restart", createdSince(clients))
	close(faultsOver)

	total := map[int]int{}
	var acknowledged []string
	for range clients {
		o := <-results
		for s, n := range o.statuses {
			total[s] += n
		}
		if o.no503RA > 0 {
			t.Errorf("%d answers 503 without Retry-After", o.no503RA)
		}
		if o.gaveUp > 0 {
			t.Errorf("%d creates never succeeded within 90 s", o.gaveUp)
		}
		acknowledged = append(acknowledged, o.keys...)
	}
	for s, n := range total {
		if s != 201 && s != 503 {
			t.Errorf("%d answers %d; want only 201 and 503 (0: connection error)", n, s)
		}
	}
	if total[503] == 0 {
		t.Error("no 503 at all: the faults missed the load, and the test proved nothing")
	}
	admin = adminConn(t, cluster.URL("postgres"))
	rows, err := admin.Query(ctx, `SELECT public->>'k', count(*) FROM fieldseal.records WHERE public ? 'k' GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		stored[k] = n
	}
	for k, n := range stored {
		if n != 1 {
			t.Errorf("%d records for Idempotency-Key %s; want 1", n, k)
		}
	}
	for _, k := range acknowledged {
		if stored[k] != 1 {
			t.Errorf("the acknowledged create %s is missing", k)
		}
	}
	if len(stored) != len(acknowledged) {
		t.Errorf("%d keys stored, %d acknowledged", len(stored), len(acknowledged))
	}
	// Every record that exists has its audit entry: none was answered
	// (or committed) without it, crashes included.
	var unaudited int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM fieldseal.records r WHERE NOT EXISTS (
		SELECT FROM fieldseal.audit_events a WHERE a.subject = r.subject AND a.record_id = r.id AND a.action = 'record.create' AND a.outcome = 'ok')`).Scan(&unaudited); err != nil {
		t.Fatal(err)
	}
	if unaudited != 0 {
		t.Errorf("%d records without their create's audit entry after the crashes", unaudited)
	}
	if logLines(srv.Log.String(), `"level":"ERROR"`) != 0 {
		t.Errorf("errors logged:\n%s", srv.Log.String())
	}
	t.Logf("answers: %v; %d creates acknowledged", total, len(acknowledged))
}

// A client that hangs up before its answer is logged as 499 at INFO, and
// counted outside the 5xx.
func TestClientThatHangsUpIs499(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database := pgtest.NewDB(t)
	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = database.AppURL
	srv := startServer(t, vars)
	key := dataKey(t)
	const rec = `{"collection":"c","public":{},"secret":{}}`
	if s, _, _ := call(t, "POST", srv.URL+"/v1/records", tok, key, rec, nil); s != 201 {
		t.Fatalf("create: %d", s)
	}
	admin := adminConn(t, database.AdminURL)
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE fieldseal.records IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, "POST", srv.URL+"/v1/records", strings.NewReader(rec))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Encryption-Key", key)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the create answered %d under the lock before the client gave up", resp.StatusCode)
	}
	waitFor(t, 5*time.Second, "the server logs the hung-up request", func() bool {
		return logLines(srv.Log.String(), `"status":499`) == 1
	})
	if n := logLines(srv.Log.String(), `"status":499`, `"level":"INFO"`, `"code":"client_closed_request"`); n != 1 {
		t.Errorf("the 499 is not logged at INFO with code client_closed_request:\n%s", srv.Log.String())
	}
	if n := logLines(srv.Log.String(), `"level":"ERROR"`); n != 0 {
		t.Errorf("a client that hung up was logged as an error:\n%s", srv.Log.String())
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(l, "fieldseal_http_requests_total") && strings.Contains(l, `status="5`) {
			t.Errorf("a hung-up request counted as a server error: %s", l)
		}
	}
	if !strings.Contains(string(metrics), `status="499"`) {
		t.Error("the 499 is not in the request metrics")
	}
}

// fieldseal serve behind PgBouncer in transaction mode: the API works,
// PostgreSQL's log (log_statement = all) holds no key, and revocations
// arrive by polling, or at once with a direct URL to LISTEN on.
func TestServeBehindPgBouncer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	database, cluster, _ := pgtest.NewCluster(t, map[string]string{"log_statement": "all", "log_min_error_statement": "error"})
	dir, err := os.MkdirTemp("", "fieldseal-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bouncer, err := pglocal.StartPgBouncer(ctx, dir, cluster.Port, map[string]string{"cluster_app": "cluster-app"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bouncer.Stop)
	pooled := strings.Replace(database.AppURL, fmt.Sprintf(":%d/", cluster.Port), fmt.Sprintf(":%d/", bouncer.Port), 1)

	vars, tok := tokenSetup(t, "alice")
	vars["FIELDSEAL_DATABASE_URL"] = pooled
	// Without the pooler setting, serve stops saying what to set.
	if code, _, errOut := runCmdEnv(t, vars, "serve"); code == 0 || !strings.Contains(errOut, "FIELDSEAL_TRANSACTION_POOLER=true") {
		t.Errorf("serve through PgBouncer without FIELDSEAL_TRANSACTION_POOLER: exit %d, %q; want a failure that says to set it", code, errOut)
	}
	vars["FIELDSEAL_TRANSACTION_POOLER"] = "true"
	polling := startServer(t, vars)
	direct := map[string]string{}
	for k, v := range vars {
		direct[k] = v
	}
	direct["FIELDSEAL_DIRECT_DATABASE_URL"] = database.AppURL
	listening := startServer(t, direct)

	key := dataKey(t)
	status, h, body := call(t, "POST", polling.URL+"/v1/records", tok, key, `{"collection":"c","secret":{"s":"bouncer-plaintext"}}`, map[string]string{"Idempotency-Key": "b1"})
	if status != 201 {
		t.Fatalf("create through PgBouncer: %d %s", status, body)
	}
	if s, _, b := call(t, "GET", listening.URL+h.Get("Location"), tok, key, "", nil); s != 200 || !strings.Contains(b, "bouncer-plaintext") {
		t.Errorf("read through PgBouncer: %d %s", s, b)
	}
	if s, h2, _ := call(t, "POST", listening.URL+"/v1/records", tok, key, `{"collection":"c","secret":{"s":"bouncer-plaintext"}}`, map[string]string{"Idempotency-Key": "b1"}); s != 201 || h2.Get("Idempotent-Replayed") != "true" {
		t.Errorf("idempotent retry through PgBouncer on another instance: %d, replayed %q", s, h2.Get("Idempotent-Replayed"))
	}

	revoke := map[string]string{"FIELDSEAL_ADMIN_DATABASE_URL": database.AdminURL}
	if code, _, errOut := runCmd(t, ctx, revoke, "token", "revoke", "--jti", decodeClaims(t, tok)["jti"].(string)); code != 0 {
		t.Fatalf("token revoke: %s", errOut)
	}
	refusedWithin(t, time.Second, tok, listening)
	refusedWithin(t, db.PollInterval+2*time.Second, tok, polling)

	bouncer.Stop()
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(cluster.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "pgp_sym_encrypt") {
		t.Fatal("the log does not hold the statements: the test would prove nothing")
	}
	for _, secret := range []string{key, "bouncer-plaintext"} {
		if strings.Contains(string(log), secret) {
			t.Errorf("PostgreSQL's log holds %q", secret)
		}
	}
}
