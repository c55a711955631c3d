package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fieldseal/fieldseal/db"
	"github.com/fieldseal/fieldseal/internal/testkit/apitest"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// Making a collection searchable is online (issue "What comes back in",
// item 5): these tests stop a reindex on purpose, by holding one record
// of its second batch (of 500) in a transaction of the test's own, and
// look at the subject meanwhile.

// reindexFixture is a subject with reindexRecords records in collection
// "big", each secret {"email": "u<n>@example.org"}, and their ids in the
// order a reindex reaches them.
type reindexFixture struct {
	a        *api
	tok, key string
	ids      []string          // sorted: the reindex's order
	email    map[string]string // id -> its email
	admin    *pgx.Conn         // lockWaiters' connection
}

const reindexRecords = 1200 // three batches of db's 500

func newReindexFixture(t *testing.T) *reindexFixture {
	// Lock waits long enough that a request the reindex held up would
	// show as slow, not as a 503 at the lock timeout.
	to := db.DefaultTimeouts
	to.Lock = 30 * time.Second
	a := startAPI(t, newDB(t), apitest.Options{Timeouts: to})
	f := &reindexFixture{a: a, tok: a.token("clinic-app", allScopes), key: newKey(t), email: map[string]string{}}
	for lo := 0; lo < reindexRecords; lo += 400 {
		var recs []any
		for i := lo; i < lo+400; i++ {
			recs = append(recs, map[string]any{"collection": "big", "secret": map[string]any{"email": fmt.Sprintf("u%d@example.org", i), "n": i}})
		}
		r := a.do(req{method: "POST", path: "/v1/records/batch", token: f.tok, key: f.key, body: map[string]any{"records": recs}})
		if r.status != http.StatusCreated {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		var out struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil || len(out.Items) != 400 {
			t.Fatalf("batch answer: %v %s", err, r.body)
		}
		for i, it := range out.Items {
			f.ids = append(f.ids, it.ID)
			f.email[it.ID] = fmt.Sprintf("u%d@example.org", lo+i)
		}
	}
	slices.Sort(f.ids) // uuid order is the order of their hex text
	return f
}

// hold locks record id FOR UPDATE in a transaction of its own until the
// returned function is called (or the test ends).
func (f *reindexFixture) hold(t *testing.T, id string) (release func()) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.a.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM fieldseal.records WHERE subject = 'clinic-app' AND id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
			conn.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// start sends r in the background; its answer (status 0 and the error's
// text if it got none) arrives on the channel.
func (f *reindexFixture) start(ctx context.Context, r req) <-chan response {
	out := make(chan response, 1)
	go func() {
		hr, _, err := f.a.request(ctx, r)
		if err != nil {
			out <- response{body: []byte(err.Error())}
			return
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			out <- response{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	return out
}

// put is the PUT of collection big's settings.
func (f *reindexFixture) put(ctx context.Context, searchable string) <-chan response {
	return f.start(ctx, req{method: "PUT", path: "/v1/collections/big", token: f.tok, key: f.key, body: `{"searchable":` + searchable + `}`})
}

// indexing is what GET /v1/collections/big says of a reindex (nil: none).
func (f *reindexFixture) indexing(t *testing.T) map[string]any {
	t.Helper()
	r := f.a.do(req{method: "GET", path: "/v1/collections/big", token: f.tok})
	if r.status != http.StatusOK {
		t.Fatalf("GET collection: %d %s", r.status, r.body)
	}
	m, _ := r.json(t)["indexing"].(map[string]any)
	return m
}

// waitIndexed waits until the reindex has tagged n records.
func (f *reindexFixture) waitIndexed(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := f.indexing(t)
		if got != nil && got["records"] == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reindex did not reach %d records: %v", n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockWaiters is how many of fieldseal's sessions wait for a lock, asked
// on one connection of the test's (a.count opens one per call).
func (f *reindexFixture) lockWaiters(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	if f.admin == nil {
		conn, err := pgx.Connect(ctx, f.a.db.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		f.admin = conn
	}
	q := `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fieldseal' AND wait_event_type = 'Lock'`
	if pgtest.Citus() {
		// A coordinator's session waits for a worker, not for a lock of
		// its own: Citus's view of waits across the nodes. (The test's
		// own transaction holds, it never waits.)
		q = `SELECT count(DISTINCT waiting_gpid) FROM citus_lock_waits`
	}
	var n int
	if err := f.admin.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitLockWaiters waits until n of fieldseal's sessions wait for a lock.
func (f *reindexFixture) waitLockWaiters(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for f.lockWaiters(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of fieldseal's sessions never waited for a lock at once", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// found is the emails a search of big's email finds.
func (f *reindexFixture) found(t *testing.T, key, email string) []string {
	t.Helper()
	return secrets(t, f.a.search(f.tok, key, "collection=big&secret.email="+email), "email")
}

// TestReindexIsOnline: while a reindex of a collection is under way, the
// subject's creates, replaces, lists, searches of other collections and
// key checks answer at once; a search of the field being indexed answers
// 409 still_indexing; GET shows how far it has gone; and what was
// written meanwhile is found once it ends. (Before, the reindex held the
// subject's key verifier FOR UPDATE from start to end: every one of these
// waited for it, and answered 503 at the lock timeout.)
func TestReindexIsOnline(t *testing.T) {
	f := newReindexFixture(t)
	a, tok, key := f.a, f.tok, f.key
	a.create(tok, key, `{"collection":"small","secret":{"email":"s@example.org"}}`)
	if r := a.setSearchable(tok, key, "small", `{"searchable":{"email":{}}}`); r.status != http.StatusOK {
		t.Fatalf("PUT small: %d %s", r.status, r.body)
	}

	release := f.hold(t, f.ids[700])
	put := f.put(context.Background(), `{"email":{}}`)
	f.waitIndexed(t, 500)
	if got := f.indexing(t); !slices.Equal(got["fields"].([]any), []any{"email"}) || got["total"] != float64(reindexRecords) {
		t.Errorf("GET during the reindex: %v", got)
	}
	wantProblem(t, a.search(tok, key, "collection=big&secret.email=u1@example.org"), http.StatusConflict, "still_indexing")

	first, last := f.ids[3], f.ids[1100] // tagged already; not reached yet
	during := []struct {
		name   string
		r      req
		status int
	}{
		{"create", req{method: "POST", path: "/v1/records", token: tok, key: key, body: `{"collection":"big","secret":{"email":"during@example.org"}}`}, http.StatusCreated},
		{"replace a record tagged", req{method: "PUT", path: "/v1/records/" + first, token: tok, key: key, body: `{"collection":"big","secret":{"email":"moved@example.org"}}`}, http.StatusOK},
		{"replace a record not reached", req{method: "PUT", path: "/v1/records/" + last, token: tok, key: key, body: `{"collection":"big","secret":{"email":"later@example.org"}}`}, http.StatusOK},
		{"search another collection", req{method: "GET", path: "/v1/records?collection=small&secret.email=s@example.org", token: tok, key: key}, http.StatusOK},
		{"keyed list", req{method: "GET", path: "/v1/records?collection=big&limit=10", token: tok, key: key}, http.StatusOK},
		{"read", req{method: "GET", path: "/v1/records/" + f.ids[0], token: tok, key: key}, http.StatusOK},
		{"verify the key", req{method: "POST", path: "/v1/keys/verify", token: tok, key: key}, http.StatusNoContent},
	}
	for _, d := range during {
		began := time.Now()
		r := a.do(d.r)
		if took := time.Since(began); r.status != d.status || took > 3*time.Second {
			t.Errorf("%s during a reindex: %d in %s; want %d at once (%s)", d.name, r.status, took, d.status, r.body)
		}
	}
	select {
	case r := <-put:
		t.Fatalf("the reindex ended while one of its records was held: %d %s", r.status, r.body)
	default:
	}

	release()
	r := <-put
	if r.status != http.StatusOK || r.json(t)["indexed"] != float64(reindexRecords+1) {
		t.Fatalf("PUT big: %d %s", r.status, r.body)
	}
	if got := f.indexing(t); got != nil {
		t.Errorf("an ended reindex still shows: %v", got)
	}
	for email, want := range map[string]int{
		"u5@example.org": 1, "u1199@example.org": 1, "during@example.org": 1, "moved@example.org": 1, "later@example.org": 1,
		f.email[first]: 0, f.email[last]: 0,
	} {
		if got := f.found(t, key, email); len(got) != want {
			t.Errorf("search %s after the reindex: %q; want %d", email, got, want)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE field = 'email'`); n != reindexRecords+2 {
		t.Errorf("%d email tags; want one per record (%d)", n, reindexRecords+2)
	}
}

// TestReindexStopsAndGoesOn: a reindex stopped by its client's hang-up,
// or by the loss of its connection (a crash, a restart), stops at once,
// keeps what it did, leaves the new field answering 409, and the same
// settings PUT again finish it.
func TestReindexStopsAndGoesOn(t *testing.T) {
	f := newReindexFixture(t)
	a := f.a

	// A hang-up: the statement waiting for the held record stops within
	// a second (a cancel request), not at the lock timeout.
	release := f.hold(t, f.ids[700])
	ctx, hangUp := context.WithCancel(context.Background())
	put := f.put(ctx, `{"email":{"case_insensitive":true}}`)
	f.waitIndexed(t, 500)
	f.waitLockWaiters(t, 1) // its second batch waits for the held record
	hangUp()
	<-put
	deadline := time.Now().Add(time.Second)
	for f.lockWaiters(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a second after its client hung up, the reindex still waits for a lock in PostgreSQL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	if got := f.indexing(t); got == nil || got["records"] != float64(500) {
		t.Fatalf("after a hang-up: %v; want the reindex shown stopped at 500", got)
	}
	wantProblem(t, a.search(f.tok, f.key, "collection=big&secret.email=u1@example.org"), http.StatusConflict, "still_indexing")

	// The connection lost mid-batch: the PUT answers 503, and the
	// batches before stay done.
	release = f.hold(t, f.ids[1100])
	put = f.put(context.Background(), `{"email":{"case_insensitive":true}}`)
	f.waitIndexed(t, 1000)
	f.waitLockWaiters(t, 1)
	a.exec("", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fieldseal' AND wait_event_type = 'Lock'`)
	if r := <-put; r.status != http.StatusServiceUnavailable {
		t.Errorf("PUT whose connection was lost: %d %s; want 503", r.status, r.body)
	}
	release()
	if got := f.indexing(t); got == nil || got["records"] != float64(1000) {
		t.Fatalf("after a lost connection: %v; want the reindex shown stopped at 1000", got)
	}

	// The same settings again: it ends, and every record is found.
	r := <-f.put(context.Background(), `{"email":{"case_insensitive":true}}`)
	if r.status != http.StatusOK || r.json(t)["indexed"] != float64(reindexRecords) {
		t.Fatalf("PUT again: %d %s", r.status, r.body)
	}
	if got := f.indexing(t); got != nil {
		t.Errorf("an ended reindex still shows: %v", got)
	}
	for _, email := range []string{"U0@EXAMPLE.ORG", "u600@example.org", "u1199@example.org"} {
		if got := f.found(t, f.key, email); len(got) != 1 {
			t.Errorf("search %s: %q", email, got)
		}
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags`); n != reindexRecords {
		t.Errorf("%d tags; want %d", n, reindexRecords)
	}
}

// TestReindexMeetsOtherChanges: other settings PUT during a reindex win
// (the first PUT answers 409 settings_changed); a key rotation during
// one tags everything under the new key and so ends it.
func TestReindexMeetsOtherChanges(t *testing.T) {
	f := newReindexFixture(t)
	a, tok := f.a, f.tok

	release := f.hold(t, f.ids[700])
	first := f.put(context.Background(), `{"email":{}}`)
	f.waitIndexed(t, 500)
	f.waitLockWaiters(t, 1) // its second batch waits for the held record
	second := f.put(context.Background(), `{"n":{}}`)
	f.waitLockWaiters(t, 2) // the first's batch waits for the held record, the second for that batch
	release()
	// The first answers 409 if the second's settings came before its next
	// batch, or 200 if its last batch came first (each batch takes the
	// verifier FOR SHARE, and may pass a PUT waiting FOR UPDATE): either
	// way the later settings are the collection's.
	if r := <-first; r.status != http.StatusOK {
		wantProblem(t, r, http.StatusConflict, "settings_changed")
	}
	if r := <-second; r.status != http.StatusOK {
		t.Fatalf("the later PUT: %d %s", r.status, r.body)
	}
	if r := a.search(tok, f.key, "collection=big&secret.n=42"); r.status != http.StatusOK || !strings.Contains(string(r.body), "u42@example.org") {
		t.Errorf("search of the later settings' field: %d %s", r.status, r.body)
	}
	wantProblem(t, a.search(tok, f.key, "collection=big&secret.email=u42@example.org"), http.StatusBadRequest, "invalid_request")
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags WHERE field <> 'n'`); n != 0 {
		t.Errorf("%d tags of the earlier settings' field remain", n)
	}

	// A rotation that rewraps the subject key waits for the batch it
	// meets; the reindex stops there (its key is no longer the
	// subject's: 409, nothing counted as a wrong key), and a PUT of the
	// same settings with the new key goes on where it stopped.
	release = f.hold(t, f.ids[700])
	put := f.put(context.Background(), `{"n":{},"email":{}}`)
	f.waitIndexed(t, 500)
	f.waitLockWaiters(t, 1)
	next := newKey(t)
	rotated := f.start(context.Background(), req{method: "POST", path: "/v1/keys/rotate", token: tok, key: f.key, header: map[string]string{"New-Encryption-Key": next}})
	f.waitLockWaiters(t, 2) // the reindex's batch waits for the held record, the rotation for that batch
	release()
	if r := <-rotated; r.status != http.StatusOK {
		t.Fatalf("rotate during a reindex: %d %s", r.status, r.body)
	}
	if r := <-put; r.status != http.StatusOK {
		wantProblem(t, r, http.StatusConflict, "settings_changed")
		if !strings.Contains(string(r.body), "PUT them again with the new key") {
			t.Errorf("the stopped PUT does not say how to go on: %s", r.body)
		}
		f.key = next
		if r := <-f.put(context.Background(), `{"n":{},"email":{}}`); r.status != http.StatusOK {
			t.Fatalf("PUT again with the new key: %d %s", r.status, r.body)
		}
	}
	f.key = next
	if got := f.indexing(t); got != nil {
		t.Errorf("a reindex PUT again still shows: %v", got)
	}
	if got := f.found(t, next, "u1100@example.org"); len(got) != 1 {
		t.Errorf("search under the new key: %q", got)
	}

	// One that replaces the subject's keys tags every record under its
	// new data keys, and the reindex ends with it.
	release = f.hold(t, f.ids[700])
	put = f.put(context.Background(), `{"email":{}}`) // n is dropped
	f.waitIndexed(t, 500)
	f.waitLockWaiters(t, 1)
	next = newKey(t)
	rotated = f.start(context.Background(), req{method: "POST", path: "/v1/keys/rotate", token: tok, key: f.key, header: map[string]string{"New-Encryption-Key": next},
		body: map[string]any{"reencrypt": true}})
	f.waitLockWaiters(t, 2)
	release()
	if r := <-rotated; r.status != http.StatusOK {
		t.Fatalf("rotate (reencrypt) during a reindex: %d %s", r.status, r.body)
	}
	if r := <-put; r.status != http.StatusOK {
		t.Fatalf("PUT ended by a rotation: %d %s", r.status, r.body)
	}
	if got := f.indexing(t); got != nil {
		t.Errorf("a reindex a rotation ended still shows: %v", got)
	}
	if got := f.found(t, next, "u1100@example.org"); len(got) != 1 {
		t.Errorf("search under the new keys: %q", got)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.search_tags`); n != reindexRecords {
		t.Errorf("%d tags; want %d", n, reindexRecords)
	}
	if n := a.count(`SELECT count(*) FROM fieldseal.key_failures`); n != 0 {
		t.Errorf("the reindex's old key was counted as a wrong key %d times", n)
	}
}

// TestHangUpMidImport: a client that hangs up while its import runs
// leaves nothing held in PostgreSQL: a retry with the same
// Idempotency-Key runs at once (it waited for the first to time out,
// then answered 409, when a hang-up left a statement running).
func TestHangUpMidImport(t *testing.T) {
	f := newReindexFixture(t)
	exported := f.a.do(req{method: "GET", path: "/v1/export", token: f.tok})
	if exported.status != http.StatusOK {
		t.Fatalf("export: %d", exported.status)
	}
	for i, after := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond} {
		// Another subject with the same key imports the export.
		tok := f.a.token(fmt.Sprintf("restore-%d", i), allScopes)
		imp := req{method: "POST", path: "/v1/import", token: tok, key: f.key, body: string(exported.body),
			header: map[string]string{"Content-Type": "application/x-ndjson", "Idempotency-Key": "restore"}}
		ctx, hangUp := context.WithCancel(context.Background())
		first := f.start(ctx, imp)
		time.Sleep(after)
		hangUp()
		<-first
		began := time.Now()
		r := <-f.start(context.Background(), imp)
		if took := time.Since(began); r.status != http.StatusOK || took > 2*time.Second {
			t.Errorf("retry %s after a hang-up: %d in %s (%s); want 200 at once", after, r.status, took, r.body)
		}
	}
}
