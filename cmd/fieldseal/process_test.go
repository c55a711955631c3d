package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
)

// server is `fieldseal serve` running as a process of its own.
type server struct {
	cmd  *exec.Cmd
	URL  string
	done chan error
	Log  *apitest.SyncBuffer // everything it wrote to stderr
}

// startServer runs `fieldseal serve` (this test binary, re-executed) with
// vars and waits until it listens.
func startServer(t testing.TB, vars map[string]string) *server {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(os.Environ(), "FIELDSEAL_TEST_RUN_MAIN=1", "FIELDSEAL_LISTEN=127.0.0.1:0")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1), Log: &apitest.SyncBuffer{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			_, _ = s.Log.Write(append(sc.Bytes(), '\n'))
			var line struct{ Msg, Address string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				addr <- line.Address
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	select {
	case s.URL = <-addr:
	case err := <-s.done:
		t.Fatalf("fieldseal serve exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("fieldseal serve did not listen within 30 s")
	}
	return s
}

// adminConn connects to url for the rest of the test.
func adminConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// seedRecords stores n records for subject under key, directly in SQL as
// the admin (far faster than n requests), with the subject's verifier: a
// subject written before keys in layers, whose first rotation moves it to
// them, re-encrypting every record.
func seedRecords(t testing.TB, adminURL, subject, key string, n int) {
	t.Helper()
	ctx := context.Background()
	conn := adminConn(t, adminURL)
	if _, err := conn.Exec(ctx, `INSERT INTO fieldseal.subjects (subject, key_verifier) VALUES ($1, fieldseal.new_key_verifier($2))`, subject, key); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO fieldseal.records (subject, id, collection, public, secret)
		SELECT $1, gen_random_uuid(), 'c', '{}',
		       fieldseal.pgp_sym_encrypt(json_build_object('i', g, 'pad', repeat('x', 180))::text, $2, 'cipher-algo=aes256, s2k-mode=1')
		FROM generate_series(1, $3::int) g`, subject, key, n); err != nil {
		t.Fatal(err)
	}
}

// keyCensus counts subject's records that open under each key, and says
// which key opens the subject's row (its subject key or verifier).
func keyCensus(t testing.TB, adminURL, subject string, keys ...string) (counts []int, verifier int) {
	t.Helper()
	ctx := context.Background()
	conn := adminConn(t, adminURL)
	verifier = -1
	for i, k := range keys {
		var n int
		var v bool
		// Through the keys in layers: what k opens in the subject's row
		// (its subject key, or its verifier), then each record's key.
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM fieldseal.records r
				WHERE r.subject = $1 AND fieldseal.decrypt_or_null(r.secret, fieldseal.record_key(fieldseal.open_subject(s.wrapped_key, s.key_verifier, $2), $2, r.collection, r.key_version)) IS NOT NULL),
			fieldseal.open_subject(s.wrapped_key, s.key_verifier, $2) IS NOT NULL
			FROM fieldseal.subjects s WHERE s.subject = $1`, subject, k).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
		if v {
			verifier = i
		}
	}
	return counts, verifier
}

// waitForStatement waits until a backend of database runs a statement
// containing fragment, and returns its pid.
func waitForStatement(t testing.TB, adminURL, database, fragment string) int {
	t.Helper()
	ctx := context.Background()
	conn := adminConn(t, adminURL)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var pid int
		err := conn.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%' || $2 || '%' AND pid <> pg_backend_pid()`,
			database, fragment).Scan(&pid)
		if err == nil {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no statement with %q began within 30 s", fragment)
	return 0
}

// rotateAsync sends a rotation and returns a channel with its status (0 if
// the connection broke).
func rotateAsync(url, token, current, next string) chan int {
	ch := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/keys/rotate", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Encryption-Key", current)
		req.Header.Set("New-Encryption-Key", next)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- 0
			return
		}
		resp.Body.Close()
		ch <- resp.StatusCode
	}()
	return ch
}

func describe(counts []int, verifier int) string {
	return fmt.Sprintf("records under old key %d, under new key %d; verifier holds key #%d", counts[0], counts[1], verifier)
}
