package db

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fieldseal/fieldseal"
	"github.com/fieldseal/fieldseal/internal/testkit/pgtest"
)

// The replay in queue assumes each generated method makes exactly one
// sqlc.DBTX call and returns that call's error unchanged. A sqlc upgrade that
// breaks this fails here, not in production.
func TestGeneratedMethodsMakeOneCall(t *testing.T) {
	qt := reflect.TypeOf(&Queries{})
	tested := 0
	for i := range qt.NumMethod() {
		m := qt.Method(i)
		if m.Name == "WithTx" {
			continue
		}
		r := &recorder{}
		args := []reflect.Value{reflect.ValueOf(newQueries(r))}
		for j := 1; j < m.Type.NumIn(); j++ {
			if j == 1 {
				args = append(args, reflect.ValueOf(context.Background()))
				continue
			}
			args = append(args, reflect.Zero(m.Type.In(j)))
		}
		out := m.Func.Call(args)
		err, _ := out[len(out)-1].Interface().(error)
		if r.calls != 1 || err != errRecorded || r.sql == "" {
			t.Errorf("%s: %d sqlc.DBTX calls, error %v; want 1 call and its error returned unchanged", m.Name, r.calls, err)
		}
		tested++
	}
	if tested < 20 {
		t.Errorf("only %d generated methods found", tested)
	}
}

// roundTrips counts what a connection sends: each SendBatch and each
// statement outside a batch is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// tracedStore is a Store on a fresh database whose connections count
// their round trips.
func tracedStore(t *testing.T) (*Store, *roundTrips, pgtest.DB) {
	t.Helper()
	database := pgtest.NewDB(t)
	cfg, err := connConfig(database.AppURL, false, DefaultTimeouts)
	if err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &Store{pool: pool, health: pool, cfg: Config{Throttle: DefaultThrottle, Timeouts: DefaultTimeouts}, exports: make(chan struct{}, 1), dialect: onePostgres{}}, rt, database
}

// Each request takes the round trips the pipeline promises.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	s, rt, _ := tracedStore(t)
	ctx := context.Background()
	alice := fieldseal.Caller{Subject: "alice", TokenID: "t"}
	right, wrong := MustKey(t, KeyA), MustKey(t, KeyB)
	in := fieldseal.RecordInput{Collection: "c", Public: json.RawMessage(`{}`), Secret: json.RawMessage(`{"s":1}`)}
	var rec fieldseal.Record
	for _, tc := range []struct {
		name string
		want int64
		do   func() error
	}{
		{"create", 2, func() (err error) {
			rec, err = s.CreateRecord(ctx, alice, right, fieldseal.NewID(time.Now()), in, nil)
			return err
		}},
		{"read with the key", 1, func() error { _, err := s.GetRecord(ctx, alice, rec.ID, right); return err }},
		{"read without a key", 1, func() error { _, err := s.GetRecord(ctx, alice, rec.ID, fieldseal.Key{}); return err }},
		{"list with the key", 2, func() error {
			_, err := s.ListRecords(ctx, alice, right, fieldseal.ListOptions{Limit: 10})
			return err
		}},
		{"list without a key", 1, func() error {
			_, err := s.ListRecords(ctx, alice, fieldseal.Key{}, fieldseal.ListOptions{Limit: 10})
			return err
		}},
		{"read with a wrong key, and its refusal", 2, func() error {
			if _, err := s.GetRecord(ctx, alice, rec.ID, wrong); fieldseal.ErrorCode(err) != fieldseal.EWRONGKEY {
				return err
			}
			return nil
		}},
	} {
		before := rt.n.Load()
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := rt.n.Load() - before; got != tc.want {
			t.Errorf("%s: %d round trips; want %d", tc.name, got, tc.want)
		}
	}
}

// A read whose entry is not appended is not served, though its
// transaction committed in the first round trip.
func TestReadWithoutItsEntryIsNotServed(t *testing.T) {
	t.Parallel()
	s, _, _ := tracedStore(t)
	ctx := context.Background()
	served := false
	tr := &tx[struct{}]{caller: fieldseal.Caller{Subject: "alice"}, note: auditNote{action: fieldseal.ActionRead, ifDecrypted: true}, commitFirst: true}
	exec(&tr.first, func(q *Queries) error { return q.UseGenericPlans(ctx) }) // decrypts nothing
	tr.answer = func() (struct{}, error) { served = true; return struct{}{}, nil }
	_, err := run(ctx, s, tr)
	if err == nil || !strings.Contains(err.Error(), "audit entry was not appended") {
		t.Errorf("run = %v; want the missing entry reported", err)
	}
	if !served {
		t.Error("answer did not run")
	}
	if fieldseal.ErrorCode(err) != fieldseal.EINTERNAL {
		t.Errorf("code %s; want internal", fieldseal.ErrorCode(err))
	}
}

// A statement that fails in the middle of the first round trip rolls
// back the statements before it, and the connection serves the next
// request.
func TestFailedStatementMidBatchRollsBackAll(t *testing.T) {
	t.Parallel()
	s, _, database := tracedStore(t)
	ctx := context.Background()
	alice := fieldseal.Caller{Subject: "alice", TokenID: "t"}
	in := fieldseal.RecordInput{Collection: "c", Public: json.RawMessage(`{}`), Secret: json.RawMessage(`{"s":1}`)}
	id := fieldseal.NewID(time.Now())
	if _, err := s.CreateRecord(ctx, alice, MustKey(t, KeyA), id, in, nil); err != nil {
		t.Fatal(err)
	}
	// Bob's first create registers his key, then its insert fails (public
	// is not JSON: the handlers would have refused it), in one round trip.
	bad := in
	bad.Public = json.RawMessage(`{`)
	_, err := s.CreateRecord(ctx, fieldseal.Caller{Subject: "bob", TokenID: "t"}, MustKey(t, KeyB), fieldseal.NewID(time.Now()), bad, nil)
	if err == nil || fieldseal.ErrorCode(err) != fieldseal.EINTERNAL {
		t.Fatalf("an insert that fails: %v; want an internal error", err)
	}
	conn, err := pgx.Connect(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var verifiers, entries int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM fieldseal.subjects WHERE subject = 'bob'),
		(SELECT count(*) FROM fieldseal.audit_events WHERE subject = 'bob')`).Scan(&verifiers, &entries); err != nil {
		t.Fatal(err)
	}
	if verifiers != 0 || entries != 0 {
		t.Errorf("after bob's failed create: %d verifiers, %d entries; want nothing kept", verifiers, entries)
	}
	for range 3 { // every pooled connection is usable
		if _, err := s.GetRecord(ctx, alice, id, MustKey(t, KeyA)); err != nil {
			t.Errorf("a read after the failure: %v", err)
		}
	}
}

// then is for transactions that are still open: a transaction that
// commits in its first round trip has none to give it.
func TestCommitFirstTakesNoThen(t *testing.T) {
	t.Parallel()
	s, _, _ := tracedStore(t)
	ran := false
	_, err := run(context.Background(), s, &tx[struct{}]{caller: fieldseal.Caller{Subject: "alice"}, note: auditNote{quiet: true}, commitFirst: true,
		then: func(*Queries, struct{}) (struct{}, error) { ran = true; return struct{}{}, nil }})
	if err == nil || ran {
		t.Errorf("run = %v, then ran %v; want it refused before anything runs", err, ran)
	}
	if !errors.Is(err, errThenAfterCommit) {
		t.Errorf("run = %v; want errThenAfterCommit", err)
	}
}

// A request whose audit entry does not commit fails, writes nothing, and
// is counted (OnAuditFailure: the metric an operator's alert watches); a
// client that hangs up is not counted.
func TestAuditFailureIsCounted(t *testing.T) {
	t.Parallel()
	s, _, database := tracedStore(t)
	ctx := context.Background()
	var failed []string
	var mu sync.Mutex
	s.OnAuditFailure = func(action string) { mu.Lock(); failed = append(failed, action); mu.Unlock() }
	conn, err := pgx.Connect(ctx, database.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The trail refuses broken's entries.
	if _, err := conn.Exec(ctx, `CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.subject = 'broken' THEN RAISE EXCEPTION 'the trail is full'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON fieldseal.audit_events FOR EACH ROW EXECUTE FUNCTION public.refuse()`); err != nil {
		t.Fatal(err)
	}
	in := fieldseal.RecordInput{Collection: "c", Public: json.RawMessage(`{}`), Secret: json.RawMessage(`{"s":1}`)}
	_, err = s.CreateRecord(ctx, fieldseal.Caller{Subject: "broken", TokenID: "t"}, MustKey(t, KeyA), fieldseal.NewID(time.Now()), in, nil)
	if err == nil || fieldseal.ErrorCode(err) != fieldseal.EINTERNAL {
		t.Fatalf("a create whose entry cannot be appended: %v; want an internal error", err)
	}
	var records int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM fieldseal.records WHERE subject = 'broken'`).Scan(&records); err != nil || records != 0 {
		t.Errorf("%d records written without their entry (%v)", records, err)
	}
	// Another subject is not affected; a cancelled request is not counted.
	if _, err := s.CreateRecord(ctx, fieldseal.Caller{Subject: "fine", TokenID: "t"}, MustKey(t, KeyA), fieldseal.NewID(time.Now()), in, nil); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = s.CreateRecord(cancelled, fieldseal.Caller{Subject: "broken", TokenID: "t"}, MustKey(t, KeyA), fieldseal.NewID(time.Now()), in, nil)
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || failed[0] != fieldseal.ActionCreate {
		t.Errorf("audit failures counted: %v; want one record.create", failed)
	}
}
